//! `github.create_issue`: `POST /repos/{owner}/{repo}/issues`.

use async_trait::async_trait;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{check, request};
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct CreateIssue;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIssueInput {
    /// The repository's owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The issue title.
    pub title: String,
    /// The issue body (Markdown).
    #[serde(default)]
    pub body: Option<String>,
    /// Label names to add.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Logins to assign.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// The GitHub connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreateIssueOutput {
    /// The issue number within the repository.
    pub number: u64,
    /// GitHub's global issue ID.
    pub id: u64,
    /// The issue's page.
    pub html_url: String,
    /// `open` or `closed`.
    pub state: String,
}

#[async_trait]
impl Action for CreateIssue {
    type Input = CreateIssueInput;
    type Output = CreateIssueOutput;

    const NAME: &'static str = "github.create_issue";
    const DESCRIPTION: &'static str = "Open an issue in a GitHub repository.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: CreateIssueInput,
    ) -> Result<ActionOutcome<CreateIssueOutput>, ActionError> {
        let connection = ctx.connection_name(input.connection)?;
        let segments = ["repos", input.owner.as_str(), input.repo.as_str(), "issues"];
        let mut body = Map::new();
        body.insert("title".into(), Value::String(input.title));
        if let Some(text) = input.body {
            body.insert("body".into(), Value::String(text));
        }
        if !input.labels.is_empty() {
            body.insert("labels".into(), input.labels.into());
        }
        if !input.assignees.is_empty() {
            body.insert("assignees".into(), input.assignees.into());
        }
        let request = request(ctx, &connection, Method::POST, &segments)
            .await?
            .json(&body);
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("create issue", &response)?;
        serde_json::from_slice(&response.body)
            .map(ActionOutcome::Done)
            .map_err(|error| {
                ActionError::Permanent(format!("GitHub create issue answered oddly: {error}"))
            })
    }
}
