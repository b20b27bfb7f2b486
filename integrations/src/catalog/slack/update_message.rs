//! `slack.update_message`: `chat.update`.

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

pub struct UpdateMessage;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMessageInput {
    /// The ID of the channel holding the message (`C0123456789`).
    pub channel: String,
    /// The timestamp of the message to update, as `slack.post_message` returned it.
    pub ts: String,
    /// The new text (mrkdwn); with `blocks`, the notification fallback. One of `text` and
    /// `blocks` is required.
    #[serde(default)]
    pub text: Option<String>,
    /// The new Block Kit blocks.
    #[serde(default)]
    pub blocks: Option<Vec<Value>>,
    /// The Slack connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct UpdateMessageOutput {
    /// The ID of the channel holding the message.
    pub channel: String,
    /// The message's timestamp (unchanged by an update).
    pub ts: String,
    /// The message's text after the update.
    #[serde(default)]
    pub text: Option<String>,
}

#[async_trait]
impl Action for UpdateMessage {
    type Input = UpdateMessageInput;
    type Output = UpdateMessageOutput;

    const NAME: &'static str = "slack.update_message";
    const DESCRIPTION: &'static str = "Replace the text or blocks of a Slack message.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: UpdateMessageInput,
    ) -> Result<ActionOutcome<UpdateMessageOutput>, ActionError> {
        if input.text.is_none() && input.blocks.is_none() {
            return Err(ActionError::InvalidInput(
                "set `text`, `blocks` or both".to_owned(),
            ));
        }
        let connection = ctx.connection_name(input.connection)?;
        let base = ctx.base_url(provider!(), &connection).await?;
        let mut body = Map::new();
        body.insert("channel".into(), Value::String(input.channel));
        body.insert("ts".into(), Value::String(input.ts));
        if let Some(text) = input.text {
            body.insert("text".into(), Value::String(text));
        }
        if let Some(blocks) = input.blocks {
            body.insert("blocks".into(), Value::Array(blocks));
        }
        let request = ctx
            .http()
            .request(Method::POST, &format!("{base}/chat.update"))?
            .json(&body);
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("chat.update", &response)?;
        serde_json::from_slice(&response.body)
            .map(ActionOutcome::Done)
            .map_err(|error| {
                ActionError::Permanent(format!("Slack chat.update answered oddly: {error}"))
            })
    }
}
