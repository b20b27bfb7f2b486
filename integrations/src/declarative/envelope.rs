//! A provider's error envelope (`errors:` in its `provider.yaml`): where an answer states
//! success, its error code(s), the field at fault and the message, and which codes are
//! transient. One reading for every action of the provider, declared or written in Rust.

use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use super::projection::lookup;
use crate::error::ActionError;
use crate::http::retry_after;
use crate::providers::ProviderSpec;
use crate::ratelimit::parse_with_body;
use crate::runtime::IntegrationResponse;

/// How the provider's error answers are read. Paths are dotted (`error.code`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEnvelope {
    /// A boolean every answer carries; `false` means the call failed even with HTTP 200
    /// (Slack's `ok`).
    #[serde(default)]
    pub success: Option<String>,
    /// Where the error's codes are, most general first (Stripe's `error.type`, `error.code`).
    #[serde(default)]
    pub code: Vec<String>,
    /// Where the name of the input at fault is (Stripe's `error.param`).
    #[serde(default)]
    pub param: Option<String>,
    /// Where the human-readable message is.
    #[serde(default)]
    pub message: Option<String>,
    /// Codes that mean "try again later", whatever the status.
    #[serde(default)]
    pub transient_codes: Vec<String>,
    /// Codes that no retry fixes, whatever the status.
    #[serde(default)]
    pub permanent_codes: Vec<String>,
}

impl ErrorEnvelope {
    /// The answer as an [`ActionError`], or `Ok` when it is a success. A 4xx/5xx is
    /// permanent when a code is permanent (even a 429), transient when the rate-limit reading
    /// calls it a rejection (a 429, GitHub's secondary limit 403) or a code is transient,
    /// else by its status (429/5xx transient); a success flag of `false` is permanent unless its code is
    /// transient.
    pub fn check(
        &self,
        provider: &ProviderSpec,
        operation: &str,
        response: &IntegrationResponse,
    ) -> Result<(), ActionError> {
        let status = response.status;
        let failed_status = status.is_client_error() || status.is_server_error();
        if !failed_status && self.success.is_none() {
            return Ok(());
        }
        let body = serde_json::from_slice::<Value>(&response.body);
        let display = &provider.display_name;
        if !failed_status {
            let body = body.map_err(|error| {
                ActionError::Permanent(format!(
                    "{display} {operation} answered with invalid JSON: {error}"
                ))
            })?;
            let flag = self.success.as_deref().and_then(|path| lookup(&body, path));
            if flag != Some(&Value::Bool(false)) {
                return Ok(());
            }
            let codes = self.codes(&body);
            let code = codes.first().map_or("unknown_error", String::as_str);
            let message = format!("{display} {operation} failed: {code}");
            return Err(if self.is_transient(&codes) == Some(true) {
                ActionError::Retryable {
                    message,
                    retry_after: retry_after(&response.headers, Utc::now()),
                }
            } else {
                ActionError::Permanent(message)
            });
        }
        let body = body.unwrap_or(Value::Null);
        let codes = self.codes(&body);
        let message = format!(
            "{display} {operation} answered HTTP {status}{}",
            self.detail(&body, &codes)
        );
        let now = Utc::now();
        let observation = parse_with_body(
            &response.headers,
            status,
            &response.body,
            now,
            &provider.rate_limit_profile(),
        );
        let transient = self.is_transient(&codes);
        // A permanent code wins over a rejection: OpenAI's 429 `insufficient_quota` is a
        // billing state no wait fixes.
        if observation.rejected && transient != Some(false) {
            return Err(ActionError::Retryable {
                message,
                retry_after: observation
                    .not_before
                    .and_then(|at| (at - now).to_std().ok()),
            });
        }
        Err(match transient {
            Some(true) => ActionError::Retryable {
                message,
                retry_after: retry_after(&response.headers, now),
            },
            Some(false) => ActionError::Permanent(message),
            None => response
                .error_for_status(message.clone())
                .unwrap_or(ActionError::Permanent(message)),
        })
    }

    /// The codes the answer states, in declaration order.
    fn codes(&self, body: &Value) -> Vec<String> {
        self.code
            .iter()
            .filter_map(|path| text(lookup(body, path)?))
            .collect()
    }

    /// `Some(true)` when a code is transient, `Some(false)` when one is permanent.
    fn is_transient(&self, codes: &[String]) -> Option<bool> {
        if codes.iter().any(|code| self.transient_codes.contains(code)) {
            Some(true)
        } else if codes.iter().any(|code| self.permanent_codes.contains(code)) {
            Some(false)
        } else {
            None
        }
    }

    /// ` {codes} param `{param}`: {message}`, each part only when stated.
    fn detail(&self, body: &Value, codes: &[String]) -> String {
        let mut parts = codes.to_vec();
        if let Some(param) = self
            .param
            .as_deref()
            .and_then(|path| text(lookup(body, path)?))
        {
            parts.push(format!("param `{param}`"));
        }
        let message = self
            .message
            .as_deref()
            .and_then(|path| text(lookup(body, path)?));
        match (parts.is_empty(), message) {
            (true, None) => String::new(),
            (true, Some(message)) => format!(": {message}"),
            (false, None) => format!(" {}", parts.join(" ")),
            (false, Some(message)) => format!(" {}: {message}", parts.join(" ")),
        }
    }
}

/// A string, a number's text (some providers' codes are numbers), or a list's texts joined
/// with commas (Salesforce names the fields at fault in a list).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().filter_map(text).collect();
            (!texts.is_empty()).then(|| texts.join(", "))
        }
        _ => None,
    }
}

/// The envelope of a provider that declares none: the status alone decides.
const STATUS_ONLY: ErrorEnvelope = ErrorEnvelope {
    success: None,
    code: Vec::new(),
    param: None,
    message: None,
    transient_codes: Vec::new(),
    permanent_codes: Vec::new(),
};

/// Reads `response` with `spec`'s error envelope (its `errors:`, else the status alone).
pub(crate) fn read(
    spec: &ProviderSpec,
    operation: &str,
    response: &IntegrationResponse,
) -> Result<(), ActionError> {
    spec.errors
        .as_ref()
        .unwrap_or(&STATUS_ONLY)
        .check(spec, operation, response)
}

/// Reads `response` with the error envelope of the provider `provider`: for its Rust
/// actions, which share the declared actions' reading.
pub fn check(
    provider: &str,
    operation: &str,
    response: &IntegrationResponse,
) -> Result<(), ActionError> {
    let spec = crate::providers::provider(provider).ok_or_else(|| {
        ActionError::Permanent(format!("integration `{provider}` is not declared"))
    })?;
    read(spec, operation, response)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;
    use serde_json::json;

    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: Value) -> IntegrationResponse {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().expect("header"));
        }
        IntegrationResponse {
            status: StatusCode::from_u16(status).expect("status"),
            headers: map,
            body: serde_json::to_vec(&body).expect("json"),
            truncated: false,
            url: "https://api.example.com/x".parse().expect("url"),
        }
    }

    fn provider(errors: &str) -> ProviderSpec {
        ProviderSpec::parse(&format!(
            "name: acme\ndisplay_name: Acme\nauth: [bearer]\nerrors:\n{errors}"
        ))
        .expect("declaration")
    }

    fn check(spec: &ProviderSpec, response: &IntegrationResponse) -> Result<(), ActionError> {
        spec.errors
            .as_ref()
            .expect("errors")
            .check(spec, "do it", response)
    }

    #[test]
    fn a_false_success_flag_fails_a_200_by_its_code() {
        let spec = provider("  success: ok\n  code: [error]\n  transient_codes: [ratelimited]\n");
        assert_eq!(check(&spec, &answer(200, &[], json!({"ok": true}))), Ok(()));
        assert_eq!(
            check(
                &spec,
                &answer(200, &[], json!({"ok": false, "error": "no_channel"}))
            ),
            Err(ActionError::Permanent(
                "Acme do it failed: no_channel".into()
            ))
        );
        assert_eq!(
            check(
                &spec,
                &answer(
                    200,
                    &[("retry-after", "7")],
                    json!({"ok": false, "error": "ratelimited"})
                )
            ),
            Err(ActionError::Retryable {
                message: "Acme do it failed: ratelimited".into(),
                retry_after: Some(Duration::from_secs(7)),
            })
        );
        let not_json = IntegrationResponse {
            body: b"<html>".to_vec(),
            ..answer(200, &[], Value::Null)
        };
        assert!(
            matches!(check(&spec, &not_json), Err(ActionError::Permanent(m)) if m.contains("invalid JSON"))
        );
    }

    #[test]
    fn codes_param_and_message_are_read_where_declared() {
        let spec = provider(
            "  code: [error.type, error.code]\n  param: error.param\n  message: error.message\n",
        );
        let body = json!({"error": {"type": "invalid_request_error", "code": "email_invalid",
                                    "param": "email", "message": "Invalid email"}});
        assert_eq!(
            check(&spec, &answer(400, &[], body)),
            Err(ActionError::Permanent(
                "Acme do it answered HTTP 400 Bad Request invalid_request_error email_invalid \
                 param `email`: Invalid email"
                    .into()
            ))
        );
        assert!(check(&spec, &answer(500, &[], json!("down"))).is_err_and(|e| e.is_retryable()));
        assert_eq!(
            check(&spec, &answer(404, &[], json!({}))),
            Err(ActionError::Permanent(
                "Acme do it answered HTTP 404 Not Found".into()
            ))
        );
    }

    #[test]
    fn an_array_envelope_is_read_by_index_and_a_list_param_is_joined() {
        let spec = provider(
            "  code: [0.errorCode]\n  param: 0.fields\n  message: 0.message\n  \
             transient_codes: [UNABLE_TO_LOCK_ROW]\n",
        );
        let salesforce = |code: &str, fields: Value| {
            json!([{"message": "Required fields are missing: [Name]", "errorCode": code,
                    "fields": fields}])
        };
        assert_eq!(
            check(
                &spec,
                &answer(
                    400,
                    &[],
                    salesforce("REQUIRED_FIELD_MISSING", json!(["Name", "Type"]))
                )
            ),
            Err(ActionError::Permanent(
                "Acme do it answered HTTP 400 Bad Request REQUIRED_FIELD_MISSING \
                 param `Name, Type`: Required fields are missing: [Name]"
                    .into()
            ))
        );
        assert!(
            check(
                &spec,
                &answer(400, &[], salesforce("UNABLE_TO_LOCK_ROW", json!([])))
            )
            .is_err_and(|e| e.is_retryable())
        );
    }

    #[test]
    fn declared_codes_override_the_status() {
        let spec = provider(
            "  code: [error.status]\n  message: error.message\n  transient_codes: [UNAVAILABLE]\n  \
             permanent_codes: [FAILED_PRECONDITION]\n",
        );
        let google =
            |status, code| json!({"error": {"status": code, "message": "m", "code": status}});
        assert!(
            check(&spec, &answer(400, &[], google(400, "UNAVAILABLE")))
                .is_err_and(|e| e.is_retryable())
        );
        assert!(
            !check(&spec, &answer(503, &[], google(503, "FAILED_PRECONDITION")))
                .is_err_and(|e| e.is_retryable())
        );
        assert!(
            check(&spec, &answer(503, &[], google(503, "INTERNAL")))
                .is_err_and(|e| e.is_retryable())
        );
    }

    #[test]
    fn a_rate_limit_rejection_is_transient_after_the_time_it_names() {
        let spec = provider("  message: message\n");
        let error = check(
            &spec,
            &answer(
                403,
                &[("retry-after", "30")],
                json!({"message": "secondary rate limit"}),
            ),
        )
        .expect_err("limited");
        assert_eq!(
            error,
            ActionError::Retryable {
                message: "Acme do it answered HTTP 403 Forbidden: secondary rate limit".into(),
                retry_after: Some(Duration::from_secs(30)),
            }
        );
        assert!(
            !check(&spec, &answer(403, &[], json!({"message": "no"})))
                .is_err_and(|e| e.is_retryable())
        );
    }

    #[test]
    fn a_permanent_code_wins_over_a_rate_limit_rejection() {
        let spec = provider(
            "  code: [error.type, error.code]\n  message: error.message\n  \
             permanent_codes: [insufficient_quota]\n",
        );
        let openai = |code| json!({"error": {"type": code, "code": code, "message": "m"}});
        assert_eq!(
            check(&spec, &answer(429, &[], openai("insufficient_quota"))),
            Err(ActionError::Permanent(
                "Acme do it answered HTTP 429 Too Many Requests insufficient_quota \
                 insufficient_quota: m"
                    .into()
            ))
        );
        assert!(
            check(&spec, &answer(429, &[], openai("requests"))).is_err_and(|e| e.is_retryable())
        );
    }
}
