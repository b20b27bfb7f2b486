//! `core.log`: writes a line to the step's log.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::{Action, ActionOutcome};
use crate::context::{ActionContext, LogLevel};
use crate::error::ActionError;

pub struct Log;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    /// What to log: a string is written as is, any other JSON value as compact JSON.
    pub message: Value,
    /// Severity of the line.
    #[serde(default = "default_level")]
    pub level: LogLevel,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogOutput {
    /// The logged message, as given.
    pub message: Value,
}

fn default_level() -> LogLevel {
    LogLevel::Info
}

#[async_trait]
impl Action for Log {
    type Input = LogInput;
    type Output = LogOutput;

    const NAME: &'static str = "core.log";
    const DESCRIPTION: &'static str = "Write a message to the step's log.";
    const PURE: bool = true;

    fn example() -> Option<Value> {
        Some(json!({"message": {"order": 42}, "level": "warn"}))
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: LogInput,
    ) -> Result<ActionOutcome<LogOutput>, ActionError> {
        // The server log gets the masked line too, never the step's secrets.
        let text = ctx.redact(&match &input.message {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        });
        let step = ctx.invocation();
        let (run_id, step_id) = (step.run_id.as_str(), step.step_id.as_str());
        match input.level {
            LogLevel::Debug => tracing::debug!(message = %text, run_id, step_id),
            LogLevel::Info => tracing::info!(message = %text, run_id, step_id),
            LogLevel::Warn => tracing::warn!(message = %text, run_id, step_id),
            LogLevel::Error => tracing::error!(message = %text, run_id, step_id),
        }
        ctx.log(input.level, text);
        Ok(ActionOutcome::Done(LogOutput {
            message: input.message,
        }))
    }
}
