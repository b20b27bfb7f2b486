//! Turning a declared action's input into the parts of its request.

use reqwest::Url;
use serde_json::{Map, Value};

use super::spec::{ActionSpec, Body, Param};
use crate::error::ActionError;

/// A request's parts, kept apart so each page of a listing can change one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parts {
    pub url: Url,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Payload>,
}

/// An encoded request body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    Json(Map<String, Value>),
    Encoded {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// The parts of `spec`'s request for `input` against `base` (the connection's API base URL).
pub(crate) fn parts(
    spec: &ActionSpec,
    base: &str,
    input: &Map<String, Value>,
) -> Result<Parts, ActionError> {
    let mut url = Url::parse(base)
        .map_err(|error| ActionError::Permanent(format!("invalid API base URL: {error}")))?;
    let segments = spec
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|segment| fill(segment, input))
        .collect::<Result<Vec<_>, _>>()?;
    url.path_segments_mut()
        .map_err(|()| ActionError::Permanent("invalid API base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    let texts = |params: &[Param]| -> Vec<(String, String)> {
        present(params, input, false)
            .map(|(wire, value)| (wire.to_owned(), query_text(value)))
            .collect()
    };
    let body = spec.body.as_ref().map(|body| {
        let fields = present(body.params(), input, body.is_json());
        match body {
            Body::JsonValue(_) => Payload::Json(
                fields
                    .filter_map(|(_, value)| value.as_object())
                    .flatten()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            ),
            Body::Json(_) => Payload::Json(
                fields
                    .map(|(wire, value)| (wire.to_owned(), value.clone()))
                    .collect(),
            ),
            Body::Form(_) => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (wire, value) in fields {
                    append_form(&mut form, wire.to_owned(), value);
                }
                Payload::Encoded {
                    content_type: "application/x-www-form-urlencoded".into(),
                    bytes: form.finish().into_bytes(),
                }
            }
            Body::Multipart(_) => multipart(fields),
        }
    });
    Ok(Parts {
        url,
        query: texts(&spec.query),
        headers: texts(&spec.headers),
        body,
    })
}

/// The params whose input is set, in declaration order, with their wire name. `null` is not
/// set, nor is an empty list outside JSON (a query or form has no way to write one).
fn present<'a>(
    params: &'a [Param],
    input: &'a Map<String, Value>,
    json: bool,
) -> impl Iterator<Item = (&'a str, &'a Value)> {
    params.iter().filter_map(move |param| {
        input
            .get(&param.input)
            .filter(|value| match value {
                Value::Null => false,
                Value::Array(items) => json || !items.is_empty(),
                _ => true,
            })
            .map(|value| (param.wire.as_str(), value))
    })
}

/// A path segment with every `{name}` replaced by input `name`'s text.
fn fill(segment: &str, input: &Map<String, Value>) -> Result<String, ActionError> {
    let mut filled = String::new();
    let mut rest = segment;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|close| open + close)
            .ok_or_else(|| ActionError::Permanent(format!("unclosed `{{` in path `{segment}`")))?;
        filled.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = input
            .get(name)
            .filter(|value| !value.is_null())
            .ok_or_else(|| ActionError::InvalidInput(format!("`{name}` is required")))?;
        let text = query_text(value);
        if text.is_empty() {
            return Err(ActionError::InvalidInput(format!("`{name}` is empty")));
        }
        filled.push_str(&text);
        rest = &rest[close + 1..];
    }
    filled.push_str(rest);
    Ok(filled)
}

/// A value as one parameter's text: strings as they are, a list's items joined with commas
/// (what GitHub's and Slack's list parameters take), objects as JSON.
pub(crate) fn query_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(query_text).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `value` under `key` in a form body: objects as `key[sub]`, lists as `key[0]` (Stripe's
/// encoding), scalars as their text.
fn append_form(form: &mut form_urlencoded::Serializer<'_, String>, key: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Object(fields) => {
            for (sub, value) in fields {
                append_form(form, format!("{key}[{sub}]"), value);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                append_form(form, format!("{key}[{index}]"), value);
            }
        }
        Value::String(text) => {
            form.append_pair(&key, text);
        }
        other => {
            form.append_pair(&key, &other.to_string());
        }
    }
}

/// A `multipart/form-data` body (RFC 7578) of text parts.
fn multipart<'a>(fields: impl Iterator<Item = (&'a str, &'a Value)>) -> Payload {
    let boundary = format!("stepwise-{:032x}", rand::random::<u128>());
    let mut bytes = Vec::new();
    for (name, value) in fields {
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let name = name.replace(['"', '\r', '\n'], "_");
        bytes.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{text}\r\n"
            )
            .as_bytes(),
        );
    }
    bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Payload::Encoded {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(yaml: &str) -> ActionSpec {
        serde_saphyr::from_str(&format!(
            "description: d\ninput: {{type: object}}\noutput: {{schema: {{type: object}}, fields: {{}}}}\n{yaml}"
        ))
        .expect("spec")
    }

    fn input(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn path_query_and_headers_are_filled_from_the_input() {
        let spec = spec(
            "method: GET\npath: /repos/{owner}/{repo}/issues/{number}:watch\n\
             query: [state, labels, {perPage: per_page}, missing]\nheaders: [{x-trace: trace}]\n",
        );
        let parts = parts(
            &spec,
            "https://api.example.com/v3/",
            &input(
                json!({"owner": "acme", "repo": "web site/x", "number": 7, "state": "all",
                          "labels": ["bug", "ui"], "per_page": 50, "missing": null, "trace": "t1"}),
            ),
        )
        .expect("parts");
        assert_eq!(
            parts.url.as_str(),
            "https://api.example.com/v3/repos/acme/web%20site%2Fx/issues/7:watch"
        );
        assert_eq!(
            parts.query,
            [
                ("state".into(), "all".into()),
                ("labels".into(), "bug,ui".into()),
                ("perPage".into(), "50".into())
            ]
        );
        assert_eq!(parts.headers, [("x-trace".to_owned(), "t1".to_owned())]);
        assert_eq!(parts.body, None);
        let missing = parts_error(&spec, json!({"owner": "acme", "number": 1}));
        assert_eq!(
            missing,
            ActionError::InvalidInput("`repo` is required".into())
        );
        let empty = parts_error(&spec, json!({"owner": "", "repo": "r", "number": 1}));
        assert_eq!(empty, ActionError::InvalidInput("`owner` is empty".into()));
    }

    fn parts_error(spec: &ActionSpec, value: Value) -> ActionError {
        parts(spec, "https://api.example.com", &input(value)).expect_err("refused")
    }

    #[test]
    fn bodies_are_encoded_as_declared() {
        let values = input(
            json!({"email": "ada@example.com", "name": null, "amount": 1500,
                                  "metadata": {"plan": "pro"}, "expand": ["charge"], "live": true}),
        );
        let json_body = parts(
            &spec("method: POST\npath: /x\nbody: {json: [email, name, metadata]}\n"),
            "https://h",
            &values,
        )
        .expect("json");
        assert_eq!(
            json_body.body,
            Some(Payload::Json(input(
                json!({"email": "ada@example.com", "metadata": {"plan": "pro"}})
            )))
        );
        let whole = parts(
            &spec("method: PATCH\npath: /x\nbody: {json_value: metadata}\n"),
            "https://h",
            &values,
        )
        .expect("json value");
        assert_eq!(
            whole.body,
            Some(Payload::Json(input(json!({"plan": "pro"}))))
        );
        let form = parts(
            &spec(
                "method: POST\npath: /x\nbody: {form: [email, amount, metadata, expand, live]}\n",
            ),
            "https://h",
            &values,
        )
        .expect("form");
        assert_eq!(
            form.body,
            Some(Payload::Encoded {
                content_type: "application/x-www-form-urlencoded".into(),
                bytes: b"email=ada%40example.com&amount=1500&metadata%5Bplan%5D=pro&expand%5B0%5D=charge&live=true"
                    .to_vec(),
            })
        );
        let multipart = parts(
            &spec("method: POST\npath: /x\nbody: {multipart: [email, metadata]}\n"),
            "https://h",
            &values,
        )
        .expect("multipart");
        let Some(Payload::Encoded {
            content_type,
            bytes,
        }) = multipart.body
        else {
            panic!("multipart")
        };
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("boundary");
        assert_eq!(
            String::from_utf8(bytes).expect("text"),
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nada@example.com\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"plan\":\"pro\"}}\r\n\
                 --{boundary}--\r\n"
            )
        );
    }
}
