//! `core.fail`: fails the step on purpose, e.g. in a branch that detected bad data.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;

pub struct Fail;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailInput {
    /// Why the step fails; shown as the step's error.
    pub message: String,
}

/// `core.fail` never produces an output.
#[derive(Debug, Serialize, JsonSchema)]
pub enum FailOutput {}

#[async_trait]
impl Action for Fail {
    type Input = FailInput;
    type Output = FailOutput;

    const NAME: &'static str = "core.fail";
    const DESCRIPTION: &'static str = "Fail the step with the given message, without retrying it.";
    const PURE: bool = true;

    fn example() -> Option<Value> {
        Some(json!({"message": "order 42 has no lines"}))
    }

    async fn execute(
        &self,
        _ctx: &ActionContext,
        input: FailInput,
    ) -> Result<ActionOutcome<FailOutput>, ActionError> {
        Err(ActionError::Permanent(input.message))
    }
}
