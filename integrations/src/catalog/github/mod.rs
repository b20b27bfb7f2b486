//! `github.*`: the GitHub REST API through a connection.

mod create_issue;

pub use create_issue::{CreateIssue, CreateIssueInput, CreateIssueOutput};

use chrono::Utc;
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;

use crate::context::ActionContext;
use crate::error::ActionError;
use crate::ratelimit::{ProviderProfile, parse_with_body};
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(CreateIssue);
}

/// The REST API version every request pins.
const API_VERSION: &str = "2022-11-28";

/// A request to `base` + the path `segments` (each percent-encoded), with GitHub's media type
/// and API version.
async fn request(
    ctx: &ActionContext,
    connection: &str,
    method: Method,
    segments: &[&str],
) -> Result<RequestBuilder, ActionError> {
    let base = ctx.base_url("github", connection).await?;
    let mut url = reqwest::Url::parse(&base)
        .map_err(|error| ActionError::Permanent(format!("invalid GitHub base URL: {error}")))?;
    url.path_segments_mut()
        .map_err(|()| ActionError::Permanent("invalid GitHub base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(ctx
        .http()
        .request(method, url.as_str())?
        .header(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        )
        .header("x-github-api-version", API_VERSION))
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
}

/// GitHub's error answers as [`ActionError`]s: a secondary rate limit (403 or 429, told apart
/// from a plain 403 by its headers or body) is retryable after the time GitHub asks for.
fn check(operation: &str, response: &IntegrationResponse) -> Result<(), ActionError> {
    let status = response.status;
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(());
    }
    let detail = serde_json::from_slice::<ErrorBody>(&response.body)
        .ok()
        .and_then(|body| body.message)
        .unwrap_or_default();
    let message = format!("GitHub {operation} answered HTTP {status}: {detail}");
    let now = Utc::now();
    let observation = parse_with_body(
        &response.headers,
        status,
        &response.body,
        now,
        &ProviderProfile::github(),
    );
    if observation.rejected {
        return Err(ActionError::Retryable {
            message,
            retry_after: observation
                .not_before
                .and_then(|at| (at - now).to_std().ok()),
        });
    }
    Err(response
        .error_for_status(message.clone())
        .unwrap_or(ActionError::Permanent(message)))
}
