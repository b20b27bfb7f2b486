// Written with `stepwise_integrations::` paths because `tests/support/mod.rs` includes this
// file too: the provider folders' tests and the integration tests share one copy.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use stepwise_integrations::http::{HttpClient, HttpConfig, TlsOptions};
use stepwise_integrations::providers::ConnectionValues;
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{
    ActionContext, ActionError, ActionOutcome, ActionServices, ConnectionAuth, ConnectionProvider,
    IntegrationRuntime, Registry, ResolvedConnection, SecretValue, StepInvocation,
};
use tokio_util::sync::CancellationToken;

/// The token of [`ProviderConnection`].
pub const PROVIDER_TOKEN: &str = "xoxb-test-token";

/// A connection whose OAuth app points the integration at `base_url`.
pub struct ProviderConnection {
    pub base_url: String,
    /// What its requests carry ([`PROVIDER_TOKEN`] as a bearer token unless a test places it).
    pub auth: ConnectionAuth,
}

#[async_trait]
impl ConnectionProvider for ProviderConnection {
    async fn resolve(
        &self,
        _tenant: &str,
        _connection: &str,
    ) -> Result<ResolvedConnection, ActionError> {
        Ok(ResolvedConnection {
            auth: self.auth.clone(),
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
    let bearer = ConnectionAuth::Bearer(SecretValue::new(PROVIDER_TOKEN));
    provider_context_with(base_url, step, bearer)
}

/// [`provider_context`] with a connection whose requests carry `auth`.
pub fn provider_context_with(
    base_url: &str,
    step: StepInvocation,
    auth: ConnectionAuth,
) -> ActionContext {
    let runtime = IntegrationRuntime::new(client(true), &MetricsRegistry::new()).expect("runtime");
    let services = ActionServices::new(runtime).with_connections(Arc::new(ProviderConnection {
        base_url: base_url.to_owned(),
        auth,
    }));
    ActionContext::new(step, Arc::new(services), CancellationToken::new())
}

/// The first attempt of step `provider` with the connection `acme`.
pub fn provider_step() -> StepInvocation {
    let mut step = invocation("provider", 1);
    step.connection = Some("acme".to_owned());
    step
}

/// [`provider_step`] whose HTTP calls are tried at most `max_attempts` times (1: a retryable
/// answer is the step's error, not retried within the call).
pub fn provider_step_attempting(max_attempts: u32) -> StepInvocation {
    let mut step = provider_step();
    step.http_retry = Some(stepwise_workflows::HttpRetry {
        max_attempts: Some(max_attempts),
        ..stepwise_workflows::HttpRetry::default()
    });
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

/// Runs the built-in `action` against `server`, a stand-in for its provider.
pub async fn run(
    server: &wiremock::MockServer,
    action: &str,
    input: Value,
) -> Result<Value, ActionError> {
    run_provider_action(&server.uri(), action, input).await
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
