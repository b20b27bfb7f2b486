//! Turning an `http.request` response into its output: JSON detection, status classification.

use std::collections::BTreeMap;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::Value;

use super::request::HttpResponseOutput;
use crate::context::{ActionContext, LogLevel};
use crate::error::ActionError;
use crate::runtime::IntegrationResponse;

/// How much of an error response's body goes into the error message.
const ERROR_BODY_CHARS: usize = 200;

pub(crate) fn read_response(
    ctx: &ActionContext,
    method: &Method,
    response: IntegrationResponse,
    fail_on_status: bool,
) -> Result<HttpResponseOutput, ActionError> {
    let status = response.status;
    let target = response.display_url();
    ctx.log(LogLevel::Info, format!("{method} {target} -> {status}"));

    let body = decode_body(&response.headers, &response.body);
    if fail_on_status {
        let snippet: String = match &body {
            Value::String(text) => text.chars().take(ERROR_BODY_CHARS).collect(),
            json => json.to_string().chars().take(ERROR_BODY_CHARS).collect(),
        };
        let message = format!("HTTP {status} from {target}: {snippet}");
        if let Some(error) = response.error_for_status(message) {
            return Err(error);
        }
    }
    // Step outputs are stored: a body the runtime had to cut is refused, not kept in part.
    if response.truncated {
        return Err(ActionError::Permanent(format!(
            "response body from {target} exceeds {} MiB",
            response.body.len() / (1024 * 1024)
        )));
    }
    Ok(HttpResponseOutput {
        status: status.as_u16(),
        headers: header_map(&response.headers),
        body,
    })
}

/// Parsed JSON when the content type says JSON and the body parses, else (lossy UTF-8) text.
fn decode_body(headers: &HeaderMap, bytes: &[u8]) -> Value {
    if is_json(headers)
        && let Ok(json) = serde_json::from_slice(bytes)
    {
        return json;
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// `application/json` and the `+json` structured syntax suffix (`application/problem+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Header names are already lower case in `HeaderMap`; repeated headers are joined.
fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        map.insert(name.as_str().to_owned(), values.join(", "));
    }
    map
}
