//! `github.*`: the GitHub REST API through a connection.

mod comment;
mod create_issue;
mod link;
mod list_issues;

pub use comment::{Comment, CommentInput, CommentOutput};
pub use create_issue::{CreateIssue, CreateIssueInput, CreateIssueOutput};
pub use list_issues::{Issue, ListIssues, ListIssuesInput, ListIssuesOutput};

use chrono::Utc;
use reqwest::{Method, RequestBuilder, Url};
use serde::Deserialize;

use crate::context::ActionContext;
use crate::error::ActionError;
use crate::providers::ProviderSpec;
use crate::ratelimit::parse_with_body;
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(CreateIssue);
    registry.register(Comment);
    registry.register(ListIssues);
}

/// A request to `base` + the path `segments` (each percent-encoded); GitHub's media type and
/// API version are the declaration's static headers (`provider.yaml`).
async fn request(
    ctx: &ActionContext,
    connection: &str,
    method: Method,
    segments: &[&str],
) -> Result<RequestBuilder, ActionError> {
    let url = url(ctx, connection, segments).await?;
    request_to(ctx, method, &url)
}

/// The connection's base URL + the path `segments` (each percent-encoded).
async fn url(ctx: &ActionContext, connection: &str, segments: &[&str]) -> Result<Url, ActionError> {
    let base = ctx.base_url(provider!(), connection).await?;
    let mut url = Url::parse(&base)
        .map_err(|error| ActionError::Permanent(format!("invalid GitHub base URL: {error}")))?;
    url.path_segments_mut()
        .map_err(|()| ActionError::Permanent("invalid GitHub base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A request to `url`.
fn request_to(
    ctx: &ActionContext,
    method: Method,
    url: &Url,
) -> Result<RequestBuilder, ActionError> {
    ctx.http().request(method, url.as_str())
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
        &crate::providers::provider(provider!())
            .map(ProviderSpec::rate_limit_profile)
            .unwrap_or_default(),
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
