//! What an action sees of the world: its step's identity, the shared services (the outbound
//! integration runtime and the connections' credentials), cancellation and a log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stepwise_workflows::HttpRetry;
use tokio_util::sync::CancellationToken;

use crate::action::ActionOutcome;
use crate::connections::{ConnectionAuth, ConnectionProvider, ResolvedConnection};
use crate::error::ActionError;
use crate::http::HttpClient;
use crate::redact::Redactor;
use crate::runtime::{IntegrationCall, IntegrationResponse, IntegrationRuntime};

/// Services shared by every action invocation of a process; built once by the composition root.
#[derive(Clone)]
pub struct ActionServices {
    /// The middleware chain every outbound integration call goes through.
    pub runtime: IntegrationRuntime,
    /// Credentials of connections; the engine installs its token manager here.
    pub connections: Option<Arc<dyn ConnectionProvider>>,
}

impl ActionServices {
    /// Services without connections (the engine adds its own when it opens).
    pub fn new(runtime: IntegrationRuntime) -> Self {
        Self {
            runtime,
            connections: None,
        }
    }

    /// The same services with `connections` serving connection credentials.
    pub fn with_connections(mut self, connections: Arc<dyn ConnectionProvider>) -> Self {
        self.connections = Some(connections);
        self
    }

    /// The outbound HTTP client underneath the runtime.
    pub fn http(&self) -> &HttpClient {
        self.runtime.http()
    }
}

/// Identifies one invocation of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInvocation {
    pub tenant_id: String,
    pub run_id: String,
    pub step_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `{run_id}:{step_id}`: the same on every attempt, forwarded to providers that accept one.
    pub idempotency_key: String,
    /// Set when the action earlier returned `Suspend { until }` and is now invoked again.
    pub wake_at: Option<DateTime<Utc>>,
    /// The step's `connection:`.
    pub connection: Option<String>,
    /// The step's `http_retry:`, applied over its integrations' retry policy.
    pub http_retry: Option<HttpRetry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

pub struct ActionContext {
    invocation: StepInvocation,
    services: Arc<ActionServices>,
    cancellation: CancellationToken,
    logs: Mutex<Vec<LogLine>>,
    /// The values of the secrets this step resolved, of what was masked in the earlier results
    /// it read and of the connection credentials it fetched: what its log lines, output and
    /// error must not show.
    redactor: Mutex<Redactor>,
    /// The connections this step resolved, by name: each is read and opened once per step,
    /// however many calls use it.
    resolved: tokio::sync::Mutex<HashMap<String, ResolvedConnection>>,
}

impl ActionContext {
    pub fn new(
        invocation: StepInvocation,
        services: Arc<ActionServices>,
        cancellation: CancellationToken,
    ) -> Self {
        Self {
            invocation,
            services,
            cancellation,
            logs: Mutex::new(Vec::new()),
            redactor: Mutex::new(Redactor::default()),
            resolved: tokio::sync::Mutex::default(),
        }
    }

    /// The same context, masking the values of `redactor` (the secrets the step's templates
    /// resolved, what was masked in the results they read) in what it logs.
    pub fn with_redactor(self, redactor: Redactor) -> Self {
        *self.redactor.lock().unwrap_or_else(PoisonError::into_inner) = redactor;
        self
    }

    /// Masks the step's secrets and the credentials it fetched so far in `text`.
    pub fn redact(&self, text: &str) -> String {
        self.redactor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .redact_str(text)
            .into_owned()
    }

    /// What masks the step's secrets and every connection credential it fetched, for what
    /// the engine stores of the step.
    pub fn redactor(&self) -> Redactor {
        self.redactor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Credentials handed to the action (or to the runtime's auth layer) are masked from then
    /// on: the secret, and for basic authentication its encoded header too.
    fn masking(&self, auth: ConnectionAuth) -> ConnectionAuth {
        let mut redactor = self.redactor.lock().unwrap_or_else(PoisonError::into_inner);
        redactor.add(auth.secret().expose());
        if let ConnectionAuth::Basic { .. } = auth
            && let Ok((_, header)) = auth.header()
            && let Ok(header) = header.to_str()
        {
            redactor.add(header.trim_start_matches("Basic "));
        }
        drop(redactor);
        auth
    }

    pub fn invocation(&self) -> &StepInvocation {
        &self.invocation
    }

    pub fn idempotency_key(&self) -> &str {
        &self.invocation.idempotency_key
    }

    pub fn wake_at(&self) -> Option<DateTime<Utc>> {
        self.invocation.wake_at
    }

    /// The outbound HTTP client, for building requests that [`ActionContext::send`] sends.
    pub fn http(&self) -> &HttpClient {
        self.services.http()
    }

    /// Sends an integration call through the runtime's middleware chain (circuit breaker,
    /// rate-limit scheduler, connection auth, retry, logging, metrics): the only way an action
    /// reaches the network. Any status comes back as a response; a rate-limit wait too long
    /// to sleep through comes back as [`ActionOutcome::Suspend`], which the action returns.
    pub async fn send(
        &self,
        call: IntegrationCall,
    ) -> Result<ActionOutcome<IntegrationResponse>, ActionError> {
        tokio::select! {
            biased;
            () = self.cancellation.cancelled() => {
                Err(ActionError::retryable("cancelled before the response arrived"))
            }
            result = self.services.runtime.send(self, call) => result,
        }
    }

    /// The credentials of the tenant's connection `name`.
    pub async fn connection_auth(&self, name: &str) -> Result<ConnectionAuth, ActionError> {
        self.with_connection(name, |connection| Ok(connection.auth.clone()))
            .await
    }

    /// The TLS settings (client certificate, lowest version) of the tenant's connection `name`.
    pub async fn connection_tls(&self, name: &str) -> Result<crate::http::TlsOptions, ActionError> {
        self.with_connection(name, |connection| Ok(connection.tls.clone()))
            .await
    }

    /// Fresh credentials after the provider answered 401 to `rejected` (retry once with them);
    /// the step's later calls use them too.
    pub async fn refresh_connection_auth(
        &self,
        name: &str,
        rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        let auth = self
            .connections()?
            .refresh_rejected(&self.invocation.tenant_id, name, rejected)
            .await
            .map(|auth| self.masking(auth))?;
        if let Some(connection) = self.resolved.lock().await.get_mut(name) {
            connection.auth = auth.clone();
        }
        Ok(auth)
    }

    /// The API base URL for `integration` through the connection `name`: the connection's
    /// override, else the provider's default, its `{name}` placeholders filled from the
    /// connection's parameters and kept token values, without a trailing slash.
    pub async fn base_url(&self, integration: &str, name: &str) -> Result<String, ActionError> {
        let spec = crate::providers::provider(integration);
        self.with_connection(name, |connection| {
            let template = connection
                .base_url
                .as_ref()
                .or_else(|| spec?.base_url.as_ref())
                .ok_or_else(|| {
                    ActionError::Permanent(format!(
                        "integration `{integration}` has no API base URL: set `base_url` on \
                         the OAuth app of connection `{name}`"
                    ))
                })?;
            let url = if crate::providers::placeholders(template).is_empty() {
                template.clone()
            } else {
                spec.map_or_else(
                    || Ok(Default::default()),
                    |spec| spec.url_values(&connection.values),
                )
                .and_then(|values| crate::providers::render_url(template, &values))
                .map_err(|error| {
                    ActionError::Permanent(format!(
                        "the API base URL of connection `{name}` cannot be built: {error}"
                    ))
                })?
            };
            Ok(url.trim_end_matches('/').to_owned())
        })
        .await
    }

    /// `read` of the connection `name`, which is resolved on the step's first use of it; the
    /// credentials are masked from then on.
    async fn with_connection<T>(
        &self,
        name: &str,
        read: impl FnOnce(&ResolvedConnection) -> Result<T, ActionError>,
    ) -> Result<T, ActionError> {
        let mut resolved = self.resolved.lock().await;
        if let Some(connection) = resolved.get(name) {
            return read(connection);
        }
        let mut connection = self
            .connections()?
            .resolve(&self.invocation.tenant_id, name)
            .await?;
        connection.auth = self.masking(connection.auth);
        let result = read(&connection);
        resolved.insert(name.to_owned(), connection);
        result
    }

    /// The connection an action uses: its own `connection` input, else the step's
    /// `connection:`.
    pub fn connection_name(&self, input: Option<String>) -> Result<String, ActionError> {
        input
            .or_else(|| self.invocation.connection.clone())
            .ok_or_else(|| {
                ActionError::InvalidInput(
                    "this action needs a connection: set the step's `connection:`".into(),
                )
            })
    }

    fn connections(&self) -> Result<&Arc<dyn ConnectionProvider>, ActionError> {
        self.services.connections.as_ref().ok_or_else(|| {
            ActionError::Permanent("connections are not available in this process".into())
        })
    }

    /// Cancelled when the run is cancelled or the step times out.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancellation
    }

    /// Appends a line to the step's log, which the engine stores with the attempt; the step's
    /// secrets are masked in it.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        let line = LogLine {
            at: Utc::now(),
            level,
            message: self.redact(&message.into()),
        };
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
