//! `workflow.run`: starts a run of another workflow of the tenant and waits for its result.
//! The engine creates the child run in the transaction that parks this step and resumes the
//! step from the transaction that ends the child, so nothing is lost or started twice across
//! restarts, and no worker is held while the child runs.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::action::{Action, ActionOutcome, AwaitTarget};
use crate::catalog::await_within;
use crate::context::ActionContext;
use crate::error::ActionError;

pub struct RunWorkflow;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunWorkflowInput {
    /// The name of the workflow to run (its latest version).
    pub workflow: String,
    /// The child run's input, checked against the child workflow's `inputs`.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// How long to wait for the child, e.g. `10m`; without it the step waits as long as the
    /// child runs. A child still running at the timeout is cancelled.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The child run's result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunWorkflowOutput {
    /// The child run's id.
    pub run_id: String,
    /// Always `succeeded`: a child that fails or is cancelled fails the step.
    pub status: String,
    /// The child workflow's `outputs`.
    pub output: Value,
}

#[async_trait]
impl Action for RunWorkflow {
    type Input = RunWorkflowInput;
    type Output = RunWorkflowOutput;

    const NAME: &'static str = "workflow.run";
    const DESCRIPTION: &'static str =
        "Run another workflow as a child of this run and wait for its outputs.";
    const PURE: bool = true;

    fn example() -> Option<Value> {
        Some(json!({"workflow": "refund", "input": {"order": 42}, "timeout": "10m"}))
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: RunWorkflowInput,
    ) -> Result<ActionOutcome<RunWorkflowOutput>, ActionError> {
        if input.workflow.trim().is_empty() {
            return Err(ActionError::InvalidInput("`workflow` is empty".to_owned()));
        }
        let timed_out = format!(
            "the run of workflow `{}` did not finish within {}",
            input.workflow,
            input.timeout.as_deref().unwrap_or_default()
        );
        let target = AwaitTarget::Run {
            workflow: input.workflow,
            input: Value::Object(input.input),
        };
        await_within(ctx, target, input.timeout.as_deref(), timed_out)
    }
}
