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
