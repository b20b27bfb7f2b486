//! The built-in actions: one folder per provider, one file per action. Adding an action is one
//! file, one line in its provider's `register`, and one fixture in `tests/conformance.rs`.

pub mod core;
pub mod github;
pub mod http;
pub mod slack;
pub mod stripe;

use std::time::Duration;

use crate::error::ActionError;
use crate::registry::Registry;

pub(crate) fn register_all(registry: &mut Registry) {
    core::register(registry);
    github::register(registry);
    http::register(registry);
    slack::register(registry);
    stripe::register(registry);
}

/// Parses a humantime duration (`30s`, `1h 30m`) from input `field`.
pub(crate) fn parse_duration(field: &str, value: &str) -> Result<Duration, ActionError> {
    humantime::parse_duration(value).map_err(|error| {
        ActionError::InvalidInput(format!(
            "`{field}`: `{value}` is not a duration like `30s` or `1h 30m`: {error}"
        ))
    })
}
