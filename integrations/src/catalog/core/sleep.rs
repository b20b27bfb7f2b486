//! `core.sleep`: a durable timer. Rather than holding a worker, the action returns
//! [`ActionOutcome::Suspend`]; the engine parks the step and invokes it again at the wake-up
//! time with [`ActionContext::wake_at`] set, so the sleep survives restarts and deploys.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::{Action, ActionOutcome};
use crate::catalog::deadline_after;
use crate::context::ActionContext;
use crate::error::ActionError;

pub struct Sleep;

/// Exactly one of `duration` and `until`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["duration"]}, {"required": ["until"]}]))]
pub struct SleepInput {
    /// How long to sleep, e.g. `30s`, `15m` or `1h 30m`; `0s` does not sleep.
    #[serde(default)]
    pub duration: Option<String>,
    /// When to wake up, as an RFC 3339 timestamp such as `2026-01-01T09:00:00Z`; a time in the
    /// past does not sleep.
    #[serde(default)]
    #[schemars(extend("format" = "date-time"))]
    pub until: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SleepOutput {
    /// When the sleep ended, as an RFC 3339 timestamp.
    #[schemars(extend("format" = "date-time"))]
    pub slept_until: String,
}

#[async_trait]
impl Action for Sleep {
    type Input = SleepInput;
    type Output = SleepOutput;

    const NAME: &'static str = "core.sleep";
    const DESCRIPTION: &'static str =
        "Pause the run for a duration or until a time, without holding a worker.";
    const PURE: bool = true;

    fn example() -> Option<Value> {
        Some(json!({"duration": "1h 30m"}))
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: SleepInput,
    ) -> Result<ActionOutcome<SleepOutput>, ActionError> {
        let now = Utc::now();
        // On the wake-up invocation the target is the one chosen the first time: recomputing
        // `now + duration` would sleep forever.
        let until = match ctx.wake_at() {
            Some(wake_at) => wake_at,
            None => wake_up_time(&input, now)?,
        };
        Ok(if until <= now {
            ActionOutcome::Done(SleepOutput {
                slept_until: until.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            })
        } else {
            ActionOutcome::Suspend { until }
        })
    }
}

fn wake_up_time(input: &SleepInput, now: DateTime<Utc>) -> Result<DateTime<Utc>, ActionError> {
    match (&input.duration, &input.until) {
        (Some(duration), None) => deadline_after("duration", duration, now),
        (None, Some(until)) => DateTime::parse_from_rfc3339(until)
            .map(|until| until.with_timezone(&Utc))
            .map_err(|error| {
                ActionError::InvalidInput(format!(
                    "`until`: `{until}` is not an RFC 3339 timestamp: {error}"
                ))
            }),
        _ => Err(ActionError::InvalidInput(
            "set exactly one of `duration` and `until`".to_owned(),
        )),
    }
}
