//! `core.wait_for_webhook`: parks the run until a matching delivery arrives on one of the
//! tenant's webhook sources. The engine keeps the subscription in the database and resumes the
//! step from the transaction that accepts the delivery, so the wait survives restarts and holds
//! no worker.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::action::{Action, ActionOutcome, AwaitTarget};
use crate::catalog::await_within;
use crate::context::ActionContext;
use crate::error::ActionError;

pub struct WaitForWebhook;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForWebhookInput {
    /// The name of the webhook source to listen on.
    pub source: String,
    /// Event types to accept, e.g. `pull_request` or `invoice.*`; empty accepts any.
    #[serde(default)]
    pub events: Vec<String>,
    /// Values the delivery must hold, by dotted path into the event, e.g.
    /// `body.pull_request.number: 42`. Compared as JSON values; a missing path never matches.
    #[serde(default, rename = "match")]
    pub matches: Map<String, Value>,
    /// How long to wait, e.g. `30m` or `7d`; without it the step waits until the run ends.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The delivery that resumed the step: the same object a webhook-triggered run sees as
/// `trigger`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookEvent {
    /// The source's name.
    pub source: String,
    /// The provider's event type, when it sends one.
    pub event: Option<String>,
    /// The provider's delivery id (or `Idempotency-Key`).
    pub delivery_id: Option<String>,
    /// The delivery's headers, without signatures, authorization or cookies.
    pub headers: Map<String, Value>,
    /// The body: parsed JSON, or the text as sent.
    pub body: Value,
}

#[async_trait]
impl Action for WaitForWebhook {
    type Input = WaitForWebhookInput;
    type Output = WebhookEvent;

    const NAME: &'static str = "core.wait_for_webhook";
    const DESCRIPTION: &'static str =
        "Pause the run until a matching webhook delivery arrives, without holding a worker.";
    const PURE: bool = true;

    fn example() -> Option<Value> {
        Some(json!({
            "source": "github",
            "events": ["pull_request"],
            "match": {"body.action": "closed", "body.pull_request.number": 42},
            "timeout": "7d",
        }))
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: WaitForWebhookInput,
    ) -> Result<ActionOutcome<WebhookEvent>, ActionError> {
        if input.source.trim().is_empty() {
            return Err(ActionError::InvalidInput("`source` is empty".to_owned()));
        }
        let timed_out = format!(
            "no matching delivery on source `{}` within {}",
            input.source,
            input.timeout.as_deref().unwrap_or_default()
        );
        let target = AwaitTarget::Webhook {
            source: input.source,
            events: input.events,
            matches: input.matches,
        };
        await_within(ctx, target, input.timeout.as_deref(), timed_out)
    }
}
