//! `bench.touch`: a step with side effects that does no work. Like `core.set` it outputs its
//! input, but it is not pure, so the engine sends every such step through the queue (claim,
//! execute, commit): the figures of a `bench.touch` chain are the engine's overhead for an
//! integration step, without any network time.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stepwise_integrations::{Action, ActionContext, ActionError, ActionOutcome};

pub struct Touch;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Values(pub Map<String, Value>);

#[async_trait]
impl Action for Touch {
    type Input = Values;
    type Output = Values;

    const NAME: &'static str = "bench.touch";
    const DESCRIPTION: &'static str = "Output the input, as a step with side effects would.";

    async fn execute(
        &self,
        _ctx: &ActionContext,
        input: Values,
    ) -> Result<ActionOutcome<Values>, ActionError> {
        Ok(ActionOutcome::Done(input))
    }
}
