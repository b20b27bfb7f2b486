//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test crate uses a different subset

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use stepwise_integrations::http::{HttpClient, HttpConfig, TlsOptions};
use stepwise_integrations::providers::ConnectionValues;
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{
    ActionContext, ActionError, ActionOutcome, ActionServices, ConnectionAuth, ConnectionProvider,
    IntegrationRuntime, Registry, ResolvedConnection, SecretValue, StepInvocation,
};
use tokio_util::sync::CancellationToken;

/// The bearer token of [`ProviderConnection`].
pub const PROVIDER_TOKEN: &str = "xoxb-test-token";

/// A connection whose OAuth app points the integration at `base_url`.
pub struct ProviderConnection {
    pub base_url: String,
}

#[async_trait]
impl ConnectionProvider for ProviderConnection {
    async fn resolve(
        &self,
        _tenant: &str,
        _connection: &str,
    ) -> Result<ResolvedConnection, ActionError> {
        Ok(ResolvedConnection {
            auth: ConnectionAuth::Bearer(SecretValue::new(PROVIDER_TOKEN)),
            tls: TlsOptions::default(),
            base_url: Some(self.base_url.clone()),
            values: ConnectionValues::default(),
        })
    }

    async fn refresh_rejected(
        &self,
        _tenant: &str,
        connection: &str,
        _rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        Err(ActionError::Permanent(format!(
            "`{connection}` cannot be refreshed"
        )))
    }

}

/// The step `provider` of `run-1` with the connection `acme`, whose API is at `base_url`.
pub fn provider_context(base_url: &str, step: StepInvocation) -> ActionContext {
    let runtime = IntegrationRuntime::new(client(true), &MetricsRegistry::new()).expect("runtime");
    let services = ActionServices::new(runtime).with_connections(Arc::new(ProviderConnection {
        base_url: base_url.to_owned(),
    }));
    ActionContext::new(step, Arc::new(services), CancellationToken::new())
}

/// The first attempt of step `provider` with the connection `acme`.
pub fn provider_step() -> StepInvocation {
    let mut step = invocation("provider", 1);
    step.connection = Some("acme".to_owned());
    step
}

/// Runs the built-in `action` in [`provider_context`] to its output.
pub async fn run_provider_action(
    base_url: &str,
    action: &str,
    input: Value,
) -> Result<Value, ActionError> {
    run_in(&provider_context(base_url, provider_step()), action, input).await
}

/// Runs the built-in `action` in `ctx`; any outcome but `Done` fails the test.
pub async fn run_in(ctx: &ActionContext, action: &str, input: Value) -> Result<Value, ActionError> {
    let registry = Registry::builtin();
    let action = registry.get(action).expect("registered");
    match action.execute_json(ctx, input).await? {
        ActionOutcome::Done(output) => Ok(output),
        other => panic!("the action did not finish: {other:?}"),
    }
}

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
        http_retry: None,
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
