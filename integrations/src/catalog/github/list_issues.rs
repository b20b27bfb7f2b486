//! `github.list_issues`: `GET /repos/{owner}/{repo}/issues`, following the `Link` header's
//! `rel="next"` across pages, never to another origin than the connection's base URL (the
//! connection's token goes with every page). A step parked between pages starts again from
//! the first page when it wakes.

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::LINK;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check, request_to, url};
use crate::declarative::link;
use crate::action::{Action, ActionOutcome};
use crate::catalog::bounded;
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::{IntegrationCall, IntegrationResponse};

pub struct ListIssues;

const DEFAULT_PER_PAGE: u32 = 100;
const MAX_PER_PAGE: u32 = 100;
const DEFAULT_MAX_PAGES: u32 = 10;
const MAX_PAGES: u32 = 100;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIssuesInput {
    /// The repository's owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// Which issues: `open` (GitHub's default), `closed` or `all`.
    #[serde(default)]
    pub state: Option<IssueState>,
    /// Only issues carrying every one of these label names.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Issues per page, 1 to 100 (default 100).
    #[serde(default)]
    pub per_page: Option<u32>,
    /// Pages fetched at most, 1 to 100 (default 10).
    #[serde(default)]
    pub max_pages: Option<u32>,
    /// The GitHub connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    Open,
    Closed,
    All,
}

impl IssueState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ListIssuesOutput {
    /// The issues of every page fetched, in GitHub's order (newest first by default). GitHub
    /// lists pull requests here too; `is_pull_request` tells them apart.
    pub issues: Vec<Issue>,
    /// `max_pages` stopped the listing before the last page.
    pub has_more: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Issue {
    /// GitHub's global issue ID.
    pub id: u64,
    /// The issue number within the repository.
    pub number: u64,
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// The issue's page.
    pub html_url: String,
    /// The author's login.
    pub user: Option<String>,
    /// Label names.
    pub labels: Vec<String>,
    /// Assignees' logins.
    pub assignees: Vec<String>,
    /// Number of comments.
    pub comments: u64,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub is_pull_request: bool,
}

/// An issue as GitHub returns it (the fields kept).
#[derive(Debug, Deserialize)]
struct RawIssue {
    id: u64,
    number: u64,
    title: String,
    state: String,
    html_url: String,
    #[serde(default)]
    user: Option<Account>,
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    assignees: Vec<Account>,
    #[serde(default)]
    comments: u64,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    closed_at: Option<String>,
    #[serde(default)]
    pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct Account {
    login: String,
}

/// GitHub's schema allows a label as a bare name or as an object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLabel {
    Name(String),
    Object { name: Option<String> },
}

impl From<RawIssue> for Issue {
    fn from(raw: RawIssue) -> Self {
        Self {
            id: raw.id,
            number: raw.number,
            title: raw.title,
            state: raw.state,
            html_url: raw.html_url,
            user: raw.user.map(|user| user.login),
            labels: raw
                .labels
                .into_iter()
                .filter_map(|label| match label {
                    RawLabel::Name(name) => Some(name),
                    RawLabel::Object { name } => name,
                })
                .collect(),
            assignees: raw.assignees.into_iter().map(|user| user.login).collect(),
            comments: raw.comments,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
            closed_at: raw.closed_at,
            is_pull_request: raw.pull_request.is_some(),
        }
    }
}

#[async_trait]
impl Action for ListIssues {
    type Input = ListIssuesInput;
    type Output = ListIssuesOutput;

    const NAME: &'static str = "github.list_issues";
    const DESCRIPTION: &'static str =
        "List a GitHub repository's issues, following GitHub's pagination links.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: ListIssuesInput,
    ) -> Result<ActionOutcome<ListIssuesOutput>, ActionError> {
        let per_page = bounded("per_page", input.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?;
        let max_pages = bounded("max_pages", input.max_pages, DEFAULT_MAX_PAGES, MAX_PAGES)?;
        let connection = ctx.connection_name(input.connection)?;
        let segments = ["repos", input.owner.as_str(), input.repo.as_str(), "issues"];
        let mut page_url = url(ctx, &connection, &segments).await?;
        {
            let mut query = page_url.query_pairs_mut();
            if let Some(state) = input.state {
                query.append_pair("state", state.as_str());
            }
            if !input.labels.is_empty() {
                query.append_pair("labels", &input.labels.join(","));
            }
            query.append_pair("per_page", &per_page.to_string());
        }
        let origin = page_url.origin();
        let mut issues = Vec::new();
        for page in 1..=max_pages {
            let request = request_to(ctx, Method::GET, &page_url)?;
            let call = IntegrationCall::new(provider!(), Self::NAME, request)
                .connection(Some(connection.clone()));
            let response = match ctx.send(call).await?.done_or_wait() {
                Ok(response) => response,
                Err(wait) => return Ok(wait),
            };
            check("list issues", &response)?;
            let raw: Vec<RawIssue> = serde_json::from_slice(&response.body).map_err(|error| {
                ActionError::Permanent(format!("GitHub list issues answered oddly: {error}"))
            })?;
            issues.extend(raw.into_iter().map(Issue::from));
            let Some(next) = next_page(&response)? else {
                break;
            };
            if next.origin() != origin {
                return Err(ActionError::Permanent(format!(
                    "GitHub list issues: the next page link points to {}, not to the \
                     connection's API at {}; refused",
                    next.origin().ascii_serialization(),
                    origin.ascii_serialization()
                )));
            }
            if page == max_pages {
                return Ok(ActionOutcome::Done(ListIssuesOutput {
                    issues,
                    has_more: true,
                }));
            }
            page_url = next;
        }
        Ok(ActionOutcome::Done(ListIssuesOutput {
            issues,
            has_more: false,
        }))
    }
}

/// The `rel="next"` target of the response's `Link` fields, resolved against its URL.
fn next_page(response: &IntegrationResponse) -> Result<Option<reqwest::Url>, ActionError> {
    let fields: Vec<&str> = response
        .headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let links = link::parse(&fields.join(",")).map_err(|error| {
        ActionError::Permanent(format!(
            "GitHub list issues sent an invalid Link header: {error}"
        ))
    })?;
    links
        .into_iter()
        .find(|link| link.has_rel("next"))
        .map(|next| {
            response.url.join(&next.target).map_err(|error| {
                ActionError::Permanent(format!(
                    "GitHub list issues sent an invalid next page link: {error}"
                ))
            })
        })
        .transpose()
}
