//! Located, coded problems found while parsing a workflow file.
//!
//! Codes are part of the user contract (docs, editor integrations, CI greps): a code is never
//! reused for a different problem and never renumbered. `workflows/DIAGNOSTICS.md` documents
//! each one with an example.

use std::fmt;

/// One problem in a workflow file. `line` and `column` are 1-based character positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl Diagnostic {
    /// `path:line:col: CODE message`, the format editors and CI annotators understand.
    pub fn render(&self, path: &str) -> String {
        format!(
            "{path}:{}:{}: {} {}",
            self.line, self.column, self.code, self.message
        )
    }
}

/// A 1-based position in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The candidate closest to `word`, when it is close enough to be what a typo meant.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// `"; did you mean `x`?"` for the candidate closest to `word`, or `""` when none is close.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    closest(word, candidates)
        .map(|candidate| format!("; did you mean `{candidate}`?"))
        .unwrap_or_default()
}

macro_rules! codes {
    ($($name:ident = $code:literal: $description:literal;)*) => {
        /// The stable diagnostic codes, one constant per code.
        pub mod code {
            $(#[doc = $description] pub const $name: &str = $code;)*
        }

        /// Every diagnostic code with a one-line description, in code order.
        pub const CODES: &[(&str, &str)] = &[$(($code, $description)),*];
    };
}

codes! {
    YAML_SYNTAX = "WF0001": "The file is not valid YAML (or exceeds the size and nesting limits).";
    WRONG_TYPE = "WF0002": "A key holds the wrong kind of value (e.g. a list where a string is expected).";
    MISSING_KEY = "WF0003": "A required key is missing (`name`, `steps`, step `id`, `uses`, ...).";
    UNKNOWN_KEY = "WF0004": "A key the language does not define; usually a typo.";
    INVALID_NAME = "WF0005": "The workflow name is not `[a-z0-9-]+`.";
    INVALID_STEP_ID = "WF0006": "A step id is not `[a-z_][a-z0-9_-]*`.";
    DUPLICATE_STEP_ID = "WF0007": "Two steps share an id.";
    UNKNOWN_NEED = "WF0008": "`needs` names a step that does not exist.";
    CYCLE = "WF0009": "Steps depend on each other in a cycle.";
    UNKNOWN_ACTION = "WF0010": "`uses` names an action that is not installed.";
    INVALID_INPUT = "WF0011": "`with` does not match the action's input schema.";
    EXPRESSION_SYNTAX = "WF0012": "A `${{ }}` expression does not parse.";
    INVALID_DURATION = "WF0013": "A duration (timeout, retry delay) is not like `30s`, `5m`, `1h 30m`.";
    INVALID_RETRY = "WF0014": "A retry policy (`retry`, `http_retry`) is invalid (`max_attempts` out of range, unknown `backoff`, delays out of order, `http_retry.budget` over 1m).";
    INVALID_ON_ERROR = "WF0015": "`on_error` is not `fail` or `continue`.";
    INVALID_CRON = "WF0016": "A cron schedule is not a valid 5- or 6-field expression.";
    INVALID_TIMEZONE = "WF0017": "A cron time zone is not an IANA time zone name.";
    NO_STEPS = "WF0018": "`steps` is empty.";
    UNKNOWN_REFERENCE = "WF0019": "An expression names something that does not exist where it runs (unknown step, step that is not an ancestor, unknown context variable).";
    INVALID_VALUE = "WF0020": "A value is outside its allowed set or range (`catch_up`, `overlap`, `limit`, `max_parallel`, ...).";
    INVALID_INPUT_SCHEMA = "WF0021": "An `inputs` property is not a valid JSON Schema.";
    STATUS_FUNCTION_OUTSIDE_IF = "WF0022": "A status function (`always()`, `success()`, `failure()`, `cancelled()`) is used outside a step's `if`.";
    NEEDS_ACROSS_LISTS = "WF0023": "`needs` crosses between `steps` and `on_failure`.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sequential_and_unique() {
        for (index, (code, description)) in CODES.iter().enumerate() {
            assert_eq!(*code, format!("WF{:04}", index + 1));
            assert!(!description.is_empty());
        }
    }

    #[test]
    fn every_code_is_documented() {
        let documentation = include_str!("../DIAGNOSTICS.md");
        for (code, _) in CODES {
            assert!(
                documentation.contains(&format!("## {code}: ")),
                "{code} is missing from DIAGNOSTICS.md"
            );
        }
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("nedds", ["needs", "uses"]),
            "; did you mean `needs`?"
        );
        assert_eq!(did_you_mean("zzz", ["needs", "uses"]), "");
    }

    #[test]
    fn renders_editor_format() {
        let diagnostic = Diagnostic {
            code: code::NO_STEPS,
            message: "`steps` is empty".into(),
            line: 3,
            column: 8,
        };
        assert_eq!(
            diagnostic.render("a.yaml"),
            "a.yaml:3:8: WF0018 `steps` is empty"
        );
    }
}
