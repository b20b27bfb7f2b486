//! Helpers shared by the integration tests: the provider helpers of `src/testing.rs` (which the
//! provider folders' own tests use as `crate::testing`) and a few more.
#![allow(dead_code)] // each test crate uses a different subset

include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/testing.rs"));

use chrono::{DateTime, Utc};

/// Services over `http` with the default runtime, its metrics in a registry of their own.
pub fn services(http: HttpClient) -> Arc<ActionServices> {
    let runtime =
        IntegrationRuntime::new(http, &MetricsRegistry::new()).expect("integration runtime");
    Arc::new(ActionServices::new(runtime))
}

pub fn context(http: HttpClient, invocation: StepInvocation) -> ActionContext {
    ActionContext::new(invocation, services(http), CancellationToken::new())
}

pub fn context_waking_at(wake_at: Option<DateTime<Utc>>) -> ActionContext {
    let mut invocation = invocation("sleep", 1);
    invocation.wake_at = wake_at;
    context(client(false), invocation)
}
