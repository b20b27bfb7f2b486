//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses a different subset

use std::sync::Arc;

use chrono::{DateTime, Utc};
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{ActionContext, ActionServices, IntegrationRuntime, StepInvocation};
use tokio_util::sync::CancellationToken;

/// A client with the SSRF guard on (`allow_private_networks: false`) or lifted.
pub fn client(allow_private_networks: bool) -> HttpClient {
    HttpClient::new(HttpConfig {
        allow_private_networks,
        ..HttpConfig::default()
    })
    .expect("the HTTP client builds")
}

pub fn invocation(step_id: &str, attempt: u32) -> StepInvocation {
    StepInvocation {
        tenant_id: "tenant-1".to_owned(),
        run_id: "run-1".to_owned(),
        step_id: step_id.to_owned(),
        attempt,
        idempotency_key: format!("run-1:{step_id}"),
        wake_at: None,
        connection: None,
    }
}

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
