//! The built-in actions. A provider is one folder, `catalog/{name}/`: its declaration
//! (`provider.yaml`, see `crate::providers`), its declared actions (`actions.yaml`, see
//! `crate::declarative`), one Rust file per action that needs logic, its tests (`tests.rs`) and
//! contract fixtures (`contract/`); adding a provider is that folder and its name in
//! [`providers!`] below. Adding an action is an entry in its provider's `actions.yaml` with an
//! `example:` (or a Rust file and a line in its `register`), a wiremock test in the folder's
//! `tests.rs` and a contract fixture `contract/{action}.json`; `integrations/README.md` walks
//! through it. `core`, `http` and `workflow` are built-in action families, not providers.

/// The provider whose folder holds the calling module (`catalog::{provider}::...`): an
/// action's integration is its folder's, never typed again.
macro_rules! provider {
    () => {
        $crate::catalog::provider_of(module_path!())
    };
}

/// Declares the providers: each name is a folder holding `provider.yaml` and `actions.yaml`
/// (embedded here) and a module whose `register` adds its declared and Rust actions.
macro_rules! providers {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every provider's folder and `provider.yaml`, in registration order.
        pub(crate) const DECLARATIONS: &[(&str, &str)] = &[$((
            stringify!($name),
            include_str!(concat!(stringify!($name), "/provider.yaml")),
        )),*];

        /// Every provider's folder and `actions.yaml` (see `crate::declarative`).
        pub(crate) const ACTION_DECLARATIONS: &[(&str, &str)] = &[$((
            stringify!($name),
            include_str!(concat!(stringify!($name), "/actions.yaml")),
        )),*];

        fn register_providers(registry: &mut Registry) {
            $($name::register(registry);)*
        }
    };
}

pub mod core;
pub mod http;
pub mod workflow;

// One line, so adding a provider is one line here (api/tests/architecture.rs).
#[rustfmt::skip]
providers!(github, slack, stripe, openai, notion, shopify, google_sheets, gmail, outlook, salesforce, generic);

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::action::{ActionOutcome, AwaitTarget};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::registry::Registry;

pub(crate) fn register_all(registry: &mut Registry) {
    core::register(registry);
    http::register(registry);
    workflow::register(registry);
    register_providers(registry);
}

/// The provider segment of a module path under `catalog` (see [`provider!`]).
pub(crate) fn provider_of(module_path: &'static str) -> &'static str {
    let mut segments = module_path
        .split("::")
        .skip_while(|segment| *segment != "catalog");
    segments.nth(1).unwrap_or_default()
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
