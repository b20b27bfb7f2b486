//! The built-in actions: one folder per provider, one file per action. Adding an action is one
//! file, one line in its provider's `register`, and one fixture in `tests/conformance.rs`.

pub mod core;
pub mod github;
pub mod http;
pub mod slack;
pub mod stripe;
pub mod workflow;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::action::{ActionOutcome, AwaitTarget};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::registry::Registry;

pub(crate) fn register_all(registry: &mut Registry) {
    core::register(registry);
    github::register(registry);
    http::register(registry);
    slack::register(registry);
    stripe::register(registry);
    workflow::register(registry);
}

/// Parses a humantime duration (`30s`, `1h 30m`) from input `field`.
pub(crate) fn parse_duration(field: &str, value: &str) -> Result<Duration, ActionError> {
    humantime::parse_duration(value).map_err(|error| {
        ActionError::InvalidInput(format!(
            "`{field}`: `{value}` is not a duration like `30s` or `1h 30m`: {error}"
        ))
    })
}

/// `now` plus the humantime duration in input `field`.
pub(crate) fn deadline_after(
    field: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ActionError> {
    let duration = parse_duration(field, value)?;
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .ok_or_else(|| ActionError::InvalidInput(format!("`{field}`: {duration:?} is too long")))
}

/// The outcome of an action that waits for `target` for at most `timeout`: on the first
/// invocation an [`ActionOutcome::Await`] until the deadline; the engine invokes the action
/// again only when that deadline passed first, which fails the step with `timed_out`.
pub(crate) fn await_within<T>(
    ctx: &ActionContext,
    target: AwaitTarget,
    timeout: Option<&str>,
    timed_out: String,
) -> Result<ActionOutcome<T>, ActionError> {
    if ctx.wake_at().is_some() {
        return Err(ActionError::Permanent(timed_out));
    }
    let until = timeout
        .map(|timeout| deadline_after("timeout", timeout, Utc::now()))
        .transpose()?;
    Ok(ActionOutcome::Await { target, until })
}
