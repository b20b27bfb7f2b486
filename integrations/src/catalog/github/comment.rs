//! `github.comment`: `POST /repos/{owner}/{repo}/issues/{issue_number}/comments`.

use async_trait::async_trait;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{check, request};
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct Comment;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// The repository's owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub repo: String,
    /// The issue or pull request number.
    pub issue_number: u64,
    /// The comment (Markdown).
    pub body: String,
    /// The GitHub connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CommentOutput {
    /// The comment's ID.
    pub id: u64,
    /// The comment's anchor on the issue page.
    pub html_url: String,
}

#[async_trait]
impl Action for Comment {
    type Input = CommentInput;
    type Output = CommentOutput;

    const NAME: &'static str = "github.comment";
    const DESCRIPTION: &'static str = "Comment on a GitHub issue or pull request.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: CommentInput,
    ) -> Result<ActionOutcome<CommentOutput>, ActionError> {
        let connection = ctx.connection_name(input.connection)?;
        let number = input.issue_number.to_string();
        let segments = [
            "repos",
            input.owner.as_str(),
            input.repo.as_str(),
            "issues",
            number.as_str(),
            "comments",
        ];
        let request = request(ctx, &connection, Method::POST, &segments)
            .await?
            .json(&json!({"body": input.body}));
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("comment", &response)?;
        serde_json::from_slice(&response.body)
            .map(ActionOutcome::Done)
            .map_err(|error| {
                ActionError::Permanent(format!("GitHub comment answered oddly: {error}"))
            })
    }
}
