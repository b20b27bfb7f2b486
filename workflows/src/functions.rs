//! The functions and filters Stepwise adds to minijinja's built-ins. `EXPRESSIONS.md` documents
//! each one with an example, and the tests evaluate every documented example.
//!
//! Security: none of them compiles or renders a string; values from the context stay data.

use std::fmt::{Display, Write as _};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::format::StrftimeItems;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, State, Value};
use sha2::{Digest, Sha256};

/// Functions that read the state of the step's dependencies or of the run. The engine provides
/// what they read only when it evaluates a step's `if`, so they are valid nowhere else.
pub const STATUS_FUNCTIONS: &[&str] = &["always", "success", "failure", "cancelled"];

/// Format of `date_format` without a format argument: RFC 3339 in UTC, whole seconds.
const RFC3339_UTC: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Registers helpers that take a value first, both as a filter (`x | name(args)`) and as a
/// function (`name(x, args)`), so either style reads naturally.
macro_rules! value_helpers {
    ($($name:literal => $function:path,)*) => {
        /// Names of the helpers that are both a filter and a function; the documentation test
        /// checks each has a section (filters cannot be listed from the environment).
        #[cfg(test)]
        const VALUE_HELPERS: &[&str] = &[$($name),*];

        fn add_value_helpers(env: &mut Environment<'static>) {
            $(
                env.add_filter($name, $function);
                env.add_function($name, $function);
            )*
        }
    };
}

value_helpers! {
    "fromjson" => fromjson,
    "to_timestamp" => to_timestamp,
    "date_format" => date_format,
    "add_duration" => add_duration,
    "startswith" => startswith,
    "endswith" => endswith,
    "contains" => contains,
    "b64encode" => b64encode,
    "b64decode" => b64decode,
    "urlencode" => urlencode,
    "sha256" => sha256,
    "slugify" => slugify,
}

pub(crate) fn register(env: &mut Environment<'static>) {
    add_value_helpers(env);
    env.add_function("now", now);
    env.add_function("always", always);
    env.add_function("success", success);
    env.add_function("failure", failure);
    env.add_function("cancelled", cancelled);
}

/// An error that names the function that raised it.
fn invalid(function: &str, message: impl Display) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{function}: {message}"),
    )
}

/// The string in argument `argument` of `function`.
fn text<'v>(function: &str, argument: &str, value: &'v Value) -> Result<&'v str, Error> {
    value.as_str().ok_or_else(|| {
        invalid(
            function,
            format!("`{argument}` must be a string, found {}", value.kind()),
        )
    })
}

fn fromjson(value: &Value) -> Result<Value, Error> {
    let text = text("fromjson", "value", value)?;
    serde_json::from_str::<serde_json::Value>(text)
        .map(|json| Value::from_serialize(&json))
        .map_err(|error| invalid("fromjson", format!("invalid JSON: {error}")))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A point in time: RFC 3339 text, a `YYYY-MM-DD` date (midnight UTC), or epoch seconds as a
/// number or a string of digits (webhook headers carry them as text).
fn instant(function: &str, value: &Value) -> Result<DateTime<Utc>, Error> {
    let parsed = match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()).ok().and_then(from_epoch),
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default().trim();
            match text.parse::<f64>() {
                Ok(seconds) => from_epoch(seconds),
                Err(_) => DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&Utc))
                    .ok()
                    .or_else(|| {
                        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
                        Some(date.and_hms_opt(0, 0, 0)?.and_utc())
                    }),
            }
        }
        _ => None,
    };
    parsed.ok_or_else(|| {
        invalid(
            function,
            format!("`{value}` is not an RFC 3339 date-time, a date or epoch seconds"),
        )
    })
}

fn from_epoch(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || seconds.abs() > i64::MAX as f64 {
        return None;
    }
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9) as u32;
    DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))
}

fn to_timestamp(value: &Value) -> Result<i64, Error> {
    Ok(instant("to_timestamp", value)?.timestamp())
}

fn date_format(value: &Value, format: Option<&str>) -> Result<String, Error> {
    let time = instant("date_format", value)?;
    let format = format.unwrap_or(RFC3339_UTC);
    let items = StrftimeItems::new(format)
        .parse()
        .map_err(|_| invalid("date_format", format!("invalid format `{format}`")))?;
    let mut formatted = String::new();
    // Writing (unlike `to_string`) reports a format chrono cannot apply instead of panicking.
    write!(formatted, "{}", time.format_with_items(items.iter()))
        .map_err(|_| invalid("date_format", format!("cannot apply format `{format}`")))?;
    Ok(formatted)
}

fn add_duration(value: &Value, duration: &Value) -> Result<String, Error> {
    let time = instant("add_duration", value)?;
    let delta = match duration.as_str() {
        Some(text) => signed_duration(text),
        None => f64::try_from(duration.clone())
            .ok()
            .filter(|seconds| seconds.is_finite() && seconds.abs() < 1e15)
            .map(|seconds| TimeDelta::milliseconds((seconds * 1000.0).round() as i64)),
    }
    .ok_or_else(|| {
        invalid(
            "add_duration",
            format!(
                "`duration` must be like `1h 30m`, `-2d` or a number of seconds, found `{duration}`"
            ),
        )
    })?;
    time.checked_add_signed(delta)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .ok_or_else(|| invalid("add_duration", "the result is out of range"))
}

/// A humantime duration with an optional leading `-`.
fn signed_duration(text: &str) -> Option<TimeDelta> {
    let text = text.trim();
    let (sign, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let delta = TimeDelta::from_std(humantime::parse_duration(magnitude.trim()).ok()?).ok()?;
    Some(delta * sign)
}

fn startswith(value: &Value, prefix: &Value) -> Result<bool, Error> {
    Ok(text("startswith", "value", value)?.starts_with(text("startswith", "prefix", prefix)?))
}

fn endswith(value: &Value, suffix: &Value) -> Result<bool, Error> {
    Ok(text("endswith", "value", value)?.ends_with(text("endswith", "suffix", suffix)?))
}

/// A substring of a string, an element of a list, or a key of a mapping.
fn contains(haystack: &Value, needle: &Value) -> Result<bool, Error> {
    match haystack.kind() {
        ValueKind::String => {
            Ok(text("contains", "value", haystack)?.contains(text("contains", "needle", needle)?))
        }
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => Ok(haystack
            .try_iter()
            .map_err(|error| invalid("contains", error))?
            .any(|item| item == *needle)),
        kind => Err(invalid(
            "contains",
            format!("`value` must be a string, a list or a mapping, found {kind}"),
        )),
    }
}

fn b64encode(value: &Value) -> Result<String, Error> {
    let text = text("b64encode", "value", value)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

/// Standard or URL-safe alphabet, with or without padding: senders differ.
fn b64decode(value: &Value) -> Result<String, Error> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    let text = text("b64decode", "value", value)?.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|error| invalid("b64decode", format!("invalid base64: {error}")))?;
    String::from_utf8(bytes)
        .map_err(|_| invalid("b64decode", "the decoded bytes are not UTF-8 text"))
}

/// Percent-encodes all but RFC 3986 unreserved characters, so the result is safe in a path
/// segment as well as a query value. A mapping becomes a query string.
fn urlencode(value: &Value) -> Result<String, Error> {
    fn encode(text: &str) -> String {
        let mut encoded = String::with_capacity(text.len());
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        encoded
    }
    match value.kind() {
        ValueKind::String | ValueKind::Number | ValueKind::Bool => Ok(encode(&value.to_string())),
        ValueKind::Map => {
            let mut pairs = Vec::new();
            for key in value
                .try_iter()
                .map_err(|error| invalid("urlencode", error))?
            {
                let item = value
                    .get_item(&key)
                    .map_err(|error| invalid("urlencode", error))?;
                if !item.is_none() {
                    pairs.push(format!(
                        "{}={}",
                        encode(&key.to_string()),
                        encode(&item.to_string())
                    ));
                }
            }
            Ok(pairs.join("&"))
        }
        kind => Err(invalid(
            "urlencode",
            format!("`value` must be a string, a number, a boolean or a mapping, found {kind}"),
        )),
    }
}

fn sha256(value: &Value) -> Result<String, Error> {
    let digest = Sha256::digest(text("sha256", "value", value)?.as_bytes());
    Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Lowercase ASCII letters and digits; every other run of characters becomes one `-`.
fn slugify(value: &Value) -> Result<String, Error> {
    let text = text("slugify", "value", value)?;
    let mut slug = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    Ok(slug.trim_end_matches('-').to_owned())
}

fn always() -> bool {
    true
}

fn success(state: &State) -> Result<bool, Error> {
    Ok(need_results(state, "success")?
        .iter()
        .all(|result| result == "succeeded"))
}

fn failure(state: &State) -> Result<bool, Error> {
    Ok(need_results(state, "failure")?
        .iter()
        .any(|result| result == "failed"))
}

fn cancelled(state: &State) -> Result<bool, Error> {
    let status = state
        .lookup("run")
        .and_then(|run| run.get_attr("status").ok())
        .filter(|status| !status.is_undefined())
        .ok_or_else(|| unavailable("cancelled"))?;
    Ok(status.as_str() == Some("cancelling"))
}

/// The `result` of every direct dependency, from `needs` in the context.
fn need_results(state: &State, function: &str) -> Result<Vec<String>, Error> {
    let needs = state
        .lookup("needs")
        .filter(|needs| needs.kind() == ValueKind::Map)
        .ok_or_else(|| unavailable(function))?;
    let mut results = Vec::new();
    for id in needs.try_iter().map_err(|error| invalid(function, error))? {
        let result = needs
            .get_item(&id)
            .and_then(|need| need.get_attr("result"))
            .ok()
            .and_then(|result| result.as_str().map(str::to_owned))
            .ok_or_else(|| invalid(function, format!("`needs.{id}.result` is not a string")))?;
        results.push(result);
    }
    Ok(results)
}

fn unavailable(function: &str) -> Error {
    invalid(
        function,
        format!("`{function}()` is only available in a step's `if`"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::expr::Evaluator;

    const DOCUMENTATION: &str = include_str!("../EXPRESSIONS.md");
    const ARROW: &str = "  →  ";

    /// A documented `${{ ... }}  →  result` line, under the heading it belongs to.
    struct Example {
        heading: String,
        template: String,
        expected: serde_json::Value,
    }

    fn examples() -> Vec<Example> {
        let mut examples = Vec::new();
        let mut heading = String::new();
        let mut in_block = false;
        for line in DOCUMENTATION.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
            } else if !in_block && line.starts_with('#') {
                heading = line.trim_start_matches('#').trim().to_owned();
            } else if in_block && let Some((template, expected)) = line.split_once(ARROW) {
                let expected = serde_json::from_str(expected)
                    .unwrap_or_else(|error| panic!("{heading}: `{expected}`: {error}"));
                examples.push(Example {
                    heading: heading.clone(),
                    template: template.to_owned(),
                    expected,
                });
            }
        }
        examples
    }

    /// The first JSON block of the documentation: the context the examples read.
    fn example_context() -> serde_json::Value {
        let start = DOCUMENTATION.find("```json\n").expect("a ```json block") + 8;
        let length = DOCUMENTATION[start..].find("```").expect("closed block");
        serde_json::from_str(&DOCUMENTATION[start..start + length]).unwrap()
    }

    fn documented_names() -> Vec<String> {
        let evaluator = Evaluator::new();
        let mut names: Vec<String> = evaluator.globals().map(str::to_owned).collect();
        names.extend(VALUE_HELPERS.iter().map(|name| (*name).to_owned()));
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_function_and_filter_has_a_section_with_an_example() {
        let examples = examples();
        for name in documented_names() {
            let call = format!("`{name}(");
            let heading = DOCUMENTATION
                .lines()
                .find(|line| line.starts_with('#') && line.contains(&call))
                .unwrap_or_else(|| panic!("`{name}` has no section in EXPRESSIONS.md"));
            let heading = heading.trim_start_matches('#').trim();
            assert!(
                examples
                    .iter()
                    .any(|example| example.heading == heading && example.template.contains(&name)),
                "the section of `{name}` in EXPRESSIONS.md has no example"
            );
        }
    }

    #[test]
    fn documented_examples_give_their_documented_results() {
        let evaluator = Evaluator::new();
        let context = example_context();
        let examples = examples();
        assert!(examples.len() > 40);
        let failures: Vec<String> = examples
            .iter()
            .filter_map(|example| {
                let actual = evaluator.render(&json!(example.template), &context);
                (actual.as_ref() != Ok(&example.expected)).then(|| {
                    format!(
                        "{}: {}\n  expected {}\n  got {actual:?}",
                        example.heading, example.template, example.expected
                    )
                })
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn errors_name_the_function_and_the_argument() {
        let evaluator = Evaluator::new();
        let context = json!({ "needs": {}, "run": { "status": "running" } });
        let cases = [
            ("fromjson('{')", "fromjson: invalid JSON"),
            (
                "fromjson(1)",
                "fromjson: `value` must be a string, found number",
            ),
            (
                "to_timestamp('soon')",
                "to_timestamp: `soon` is not an RFC 3339 date-time",
            ),
            (
                "date_format([1])",
                "date_format: `[1]` is not an RFC 3339 date-time",
            ),
            ("date_format(0, '%Q')", "date_format: invalid format `%Q`"),
            (
                "add_duration(0, 'a while')",
                "add_duration: `duration` must be like",
            ),
            (
                "add_duration(0, '9999999 years')",
                "add_duration: the result is out of range",
            ),
            (
                "startswith('a', 1)",
                "startswith: `prefix` must be a string, found number",
            ),
            (
                "endswith(none, 'a')",
                "endswith: `value` must be a string, found none",
            ),
            (
                "contains('abc', 1)",
                "contains: `needle` must be a string, found number",
            ),
            (
                "contains(1, 1)",
                "contains: `value` must be a string, a list or a mapping",
            ),
            ("b64encode(1)", "b64encode: `value` must be a string"),
            ("b64decode('***')", "b64decode: invalid base64"),
            (
                "b64decode('/w==')",
                "b64decode: the decoded bytes are not UTF-8 text",
            ),
            (
                "urlencode([1])",
                "urlencode: `value` must be a string, a number",
            ),
            (
                "sha256(1)",
                "sha256: `value` must be a string, found number",
            ),
            (
                "slugify(none)",
                "slugify: `value` must be a string, found none",
            ),
        ];
        for (expr, expected) in cases {
            let error = evaluator.condition(expr, &context).unwrap_err().to_string();
            assert!(error.contains(expected), "{expr}: {error}");
        }
    }

    #[test]
    fn status_functions_need_the_step_context() {
        let evaluator = Evaluator::new();
        for function in ["success", "failure", "cancelled"] {
            let error = evaluator
                .condition(&format!("{function}()"), &json!({ "inputs": {} }))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!(
                    "`{function}()` is only available in a step's `if`"
                )),
                "{error}"
            );
        }
        let malformed = json!({ "needs": { "a": { "output": 1 } } });
        let error = evaluator.condition("success()", &malformed).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`needs.a.result` is not a string")
        );
    }

    #[test]
    fn status_functions_follow_the_results_of_the_needs() {
        let evaluator = Evaluator::new();
        let context = |results: &[&str], status: &str| {
            let needs: serde_json::Map<String, serde_json::Value> = results
                .iter()
                .enumerate()
                .map(|(index, result)| (format!("s{index}"), json!({ "result": result })))
                .collect();
            json!({ "needs": needs, "run": { "status": status } })
        };
        let cases = [
            (&[][..], "running", [true, true, false, false]),
            (
                &["succeeded", "succeeded"],
                "running",
                [true, true, false, false],
            ),
            (
                &["succeeded", "skipped"],
                "running",
                [true, false, false, false],
            ),
            (
                &["failed", "succeeded"],
                "running",
                [true, false, true, false],
            ),
            (&["cancelled"], "cancelling", [true, false, false, true]),
        ];
        for (results, status, expected) in cases {
            let context = context(results, status);
            let actual = ["always()", "success()", "failure()", "cancelled()"]
                .map(|expr| evaluator.condition(expr, &context).unwrap());
            assert_eq!(actual, expected, "{results:?} {status}");
        }
    }
}
