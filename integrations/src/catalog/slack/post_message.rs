//! `slack.post_message`: `chat.postMessage`.

use async_trait::async_trait;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::check;
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct PostMessage;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessageInput {
    /// The channel: an ID (`C0123456789`), a name (`#sales`) or a user ID for a direct message.
    pub channel: String,
    /// The message text (mrkdwn); with `blocks`, the notification fallback. One of `text` and
    /// `blocks` is required.
    #[serde(default)]
    pub text: Option<String>,
    /// Block Kit blocks.
    #[serde(default)]
    pub blocks: Option<Vec<Value>>,
    /// Reply in the thread of the message with this timestamp.
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// The Slack connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PostMessageOutput {
    /// The ID of the channel the message was posted to.
    pub channel: String,
    /// The message's timestamp, its ID within the channel.
    pub ts: String,
}

#[derive(Debug, Deserialize)]
struct Posted {
    channel: String,
    ts: String,
}

#[async_trait]
impl Action for PostMessage {
    type Input = PostMessageInput;
    type Output = PostMessageOutput;

    const NAME: &'static str = "slack.post_message";
    const DESCRIPTION: &'static str = "Post a message to a Slack channel, thread or user.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: PostMessageInput,
    ) -> Result<ActionOutcome<PostMessageOutput>, ActionError> {
        if input.text.is_none() && input.blocks.is_none() {
            return Err(ActionError::InvalidInput(
                "set `text`, `blocks` or both".to_owned(),
            ));
        }
        let connection = ctx.connection_name(input.connection)?;
        let base = ctx.base_url(provider!(), &connection).await?;
        let mut body = Map::new();
        body.insert("channel".into(), Value::String(input.channel));
        if let Some(text) = input.text {
            body.insert("text".into(), Value::String(text));
        }
        if let Some(blocks) = input.blocks {
            body.insert("blocks".into(), Value::Array(blocks));
        }
        if let Some(thread_ts) = input.thread_ts {
            body.insert("thread_ts".into(), Value::String(thread_ts));
        }
        let request = ctx
            .http()
            .request(Method::POST, &format!("{base}/chat.postMessage"))?
            .json(&body);
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("chat.postMessage", &response)?;
        let posted: Posted = serde_json::from_slice(&response.body).map_err(|error| {
            ActionError::Permanent(format!("Slack chat.postMessage answered oddly: {error}"))
        })?;
        Ok(ActionOutcome::Done(PostMessageOutput {
            channel: posted.channel,
            ts: posted.ts,
        }))
    }
}
