//! Connection tests (`testConnection`): one cheap authenticated request, sent through the same
//! middleware chain as every action's (circuit breaker, rate limit, auth with its refresh on a
//! 401, retry, logging, metrics), and read the way the provider spec says.
//!
//! The request is the connection's own `probe_url` (a GET) when it has one, else the
//! integration's [`ProbeSpec`](crate::providers::ProbeSpec) against the API base URL. An
//! integration with neither (`generic` without `probe_url`) is tested only as far as its
//! credentials can be obtained (an OAuth 2.0 token due for refresh is refreshed).

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::action::ActionOutcome;
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::providers::{ProbeCheck, provider};
use crate::runtime::{IntegrationCall, IntegrationResponse};

/// The action name a probe carries in logs and metrics.
pub const PROBE_ACTION: &str = "test_connection";

/// Slack error codes that say the token itself is no good (revoked, expired, deactivated).
const SLACK_AUTH_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
];

/// What a connection test found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProbeReport {
    pub ok: bool,
    /// The HTTP status of the probe's last response; `None` when no response arrived or no
    /// request was needed.
    pub status: Option<u16>,
    pub message: String,
    /// Time spent, a token refresh and retries included.
    pub latency_ms: u64,
    /// The provider refused the credentials (HTTP 401 after the one refresh, or Slack's
    /// `invalid_auth` and kin): they were revoked or are wrong.
    #[serde(skip)]
    pub credentials_rejected: bool,
}

struct Finding {
    ok: bool,
    status: Option<u16>,
    message: String,
    credentials_rejected: bool,
}

impl Finding {
    fn failed(error: &ActionError) -> Self {
        Self {
            ok: false,
            status: None,
            message: error.to_string(),
            credentials_rejected: false,
        }
    }
}

/// Tests the tenant's connection `connection` of `integration` from `ctx` (whose connection
/// provider serves its credentials). Never fails: every problem is a report with `ok: false`.
pub async fn test_connection(
    ctx: &ActionContext,
    integration: &str,
    connection: &str,
    probe_url: Option<&str>,
) -> ProbeReport {
    let started = Instant::now();
    let finding = probe(ctx, integration, connection, probe_url).await;
    ProbeReport {
        ok: finding.ok,
        status: finding.status,
        message: finding.message,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        credentials_rejected: finding.credentials_rejected,
    }
}

async fn probe(
    ctx: &ActionContext,
    integration: &str,
    connection: &str,
    probe_url: Option<&str>,
) -> Finding {
    let spec = provider(integration).and_then(|spec| spec.probe.as_ref());
    let (method, url, check) = match (probe_url, spec) {
        (Some(url), _) => (Method::GET, url.to_owned(), ProbeCheck::Status),
        (None, Some(spec)) => {
            let base = match ctx.base_url(integration, connection).await {
                Ok(base) => base,
                Err(error) => return Finding::failed(&error),
            };
            let method = if spec.method == "POST" {
                Method::POST
            } else {
                Method::GET
            };
            (method, format!("{base}{}", spec.path), spec.check)
        }
        (None, None) => {
            return match ctx.connection_auth(connection).await {
                Ok(_) => Finding {
                    ok: true,
                    status: None,
                    message: format!(
                        "the connection's credentials are available; integration \
                         `{integration}` has no probe request, so they were not tried at the \
                         provider (set the connection's `probe_url` to do that)"
                    ),
                    credentials_rejected: false,
                },
                Err(error) => Finding::failed(&error),
            };
        }
    };
    let request = match ctx.http().request(method, &url) {
        Ok(request) => request,
        Err(error) => return Finding::failed(&error),
    };
    let call = IntegrationCall::new(integration, PROBE_ACTION, request)
        .connection(Some(connection.to_owned()));
    match ctx.send(call).await {
        Ok(ActionOutcome::Done(response)) => read(&response, check),
        Ok(ActionOutcome::Suspend { until }) => Finding {
            ok: false,
            status: None,
            message: format!(
                "the connection's rate limit allows the next request at {}; test it again then",
                until.to_rfc3339()
            ),
            credentials_rejected: false,
        },
        Ok(ActionOutcome::Await { .. }) => Finding {
            ok: false,
            status: None,
            message: "the probe did not complete".into(),
            credentials_rejected: false,
        },
        Err(error) => Finding::failed(&error),
    }
}

#[derive(Deserialize)]
struct OkEnvelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

fn read(response: &IntegrationResponse, check: ProbeCheck) -> Finding {
    let url = response.display_url();
    let status = response.status;
    let finding = |ok, message, credentials_rejected| Finding {
        ok,
        status: Some(status.as_u16()),
        message,
        credentials_rejected,
    };
    if status == StatusCode::UNAUTHORIZED {
        return finding(
            false,
            format!("{url} refused the credentials (HTTP 401)"),
            true,
        );
    }
    if !status.is_success() {
        return finding(false, format!("{url} answered HTTP {status}"), false);
    }
    match check {
        ProbeCheck::Status => finding(true, format!("{url} answered HTTP {status}"), false),
        ProbeCheck::OkField => match serde_json::from_slice::<OkEnvelope>(&response.body) {
            Ok(OkEnvelope { ok: true, .. }) => {
                finding(true, format!("{url} answered ok: true"), false)
            }
            Ok(OkEnvelope { error, .. }) => {
                let code = error.unwrap_or_else(|| "unknown_error".into());
                let rejected = SLACK_AUTH_ERRORS.contains(&code.as_str());
                let message = if rejected {
                    format!("{url} refused the credentials (ok: false, error: {code})")
                } else {
                    format!("{url} answered ok: false, error: {code}")
                };
                finding(false, message, rejected)
            }
            Err(_) => finding(
                false,
                format!("{url} answered HTTP {status} without the expected JSON `ok` field"),
                false,
            ),
        },
    }
}
