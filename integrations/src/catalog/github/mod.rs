//! `github.*`: the GitHub REST API through a connection.

mod comment;
mod create_issue;
mod list_issues;

pub use comment::{Comment, CommentInput, CommentOutput};
pub use create_issue::{CreateIssue, CreateIssueInput, CreateIssueOutput};
pub use list_issues::{Issue, ListIssues, ListIssuesInput, ListIssuesOutput};

use reqwest::{Method, RequestBuilder, Url};

use crate::context::ActionContext;
use crate::error::ActionError;
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
    registry.register(CreateIssue);
    registry.register(Comment);
    registry.register(ListIssues);
}

/// A request to `base` + the path `segments` (each percent-encoded), with GitHub's media type
/// and API version.
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

/// A request to `url` with the declaration's headers (media type, API version).
fn request_to(
    ctx: &ActionContext,
    method: Method,
    url: &Url,
) -> Result<RequestBuilder, ActionError> {
    let headers = crate::providers::provider(provider!()).map(|spec| &spec.headers);
    Ok(headers
        .into_iter()
        .flatten()
        .fold(ctx.http().request(method, url.as_str())?, |request, (name, value)| {
            request.header(name.as_str(), value.as_str())
        }))
}

/// GitHub's error answers, read with the declared error envelope: a secondary rate limit is
/// retryable after the time GitHub asks for.
fn check(operation: &str, response: &IntegrationResponse) -> Result<(), ActionError> {
    crate::declarative::check(provider!(), operation, response)
}
