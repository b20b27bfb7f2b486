//! `core.set`: names values so later steps can read them as `steps.<id>.output.<key>`.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;

pub struct Set;

/// Any JSON object; each key becomes a field of the step's output.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SetValues(pub Map<String, Value>);

#[async_trait]
impl Action for Set {
    type Input = SetValues;
    type Output = SetValues;

    const NAME: &'static str = "core.set";
    const DESCRIPTION: &'static str =
        "Output the given object, so later steps can read its keys from this step's output.";
    const PURE: bool = true;

    fn example() -> Option<Value> {
        Some(json!({"customer_id": 42, "tags": ["vip"]}))
    }

    async fn execute(
        &self,
        _ctx: &ActionContext,
        input: SetValues,
    ) -> Result<ActionOutcome<SetValues>, ActionError> {
        Ok(ActionOutcome::Done(input))
    }
}
