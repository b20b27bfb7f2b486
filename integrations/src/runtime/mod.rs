//! The integration runtime: the one middleware chain every outbound integration call goes
//! through (ARCHITECTURE.md, `integrations/`), in this order:
//!
//! 1. **circuit breaker** per (tenant, integration), and per host for plain `http`
//!    ([`circuit`]): an open circuit fails fast with a retryable error naming the integration
//!    and the next probe;
//! 2. **rate-limit scheduler** ([`scheduler`]): one bucket per connection (else per tenant and
//!    integration, per host for plain `http`); a wait up to [`RuntimeConfig::max_inline_wait`]
//!    sleeps in the request, a longer one parks the step ([`ActionOutcome::Suspend`], which
//!    holds no worker and spends no retry attempt) and asks again on waking;
//! 3. **auth**: the connection's credentials from the token manager, refreshed once on a 401;
//! 4. **retry** ([`retry`]): transient statuses and transport errors only, full-jitter
//!    exponential backoff, `Retry-After` honoured, a small per-call budget; a non-idempotent
//!    request (POST/PATCH without `Idempotency-Key`) is repeated only when it never reached the
//!    server. Beyond the budget the last response (or error) is returned and the action's
//!    retryable error hands the wait to the engine's durable step retry;
//! 5. **logging**: one tracing line per request: integration, action, method, URL without
//!    query or credentials, status, latency, attempt; never a header or body;
//! 6. **metrics** ([`metrics`]) into the registry given at build time, and the same
//!    observations per tenant and minute into the runtime's [`HealthRecorder`] (memory only;
//!    the engine flushes it to its database);
//! 7. **HTTP**: [`HttpClient`] (rustls, SSRF guard).
//!
//! Retried attempts go through the circuit and the scheduler again, so retries spend (and are
//! paced by) the same quota, and a circuit that opens mid-call stops the retries. Every
//! response's rate-limit headers are fed back to the scheduler. Circuits live in this process's
//! memory; buckets live where the [`BucketStore`] keeps them: [`InMemoryBuckets`] per process,
//! the engine's store in Postgres, shared by every process.

pub mod circuit;
pub mod health;
pub mod metrics;
pub mod retry;
pub mod scheduler;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Request, RequestBuilder, Response, StatusCode, Url};

pub use prometheus::{Error as MetricsError, Registry as MetricsRegistry};

use crate::action::ActionOutcome;
use crate::connections::ConnectionAuth;
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::http::{
    HttpClient, SendFailure, TlsOptions, TlsVersion, build_request, classify_transport_error,
    display_url, error_for_status, is_retryable_status, retry_after,
};
use crate::providers::ProviderSpec;
use crate::ratelimit::{ProviderProfile, parse_with_body};
use circuit::{Admission, Circuit, CircuitConfig, CircuitState, Verdict};
use health::HealthRecorder;
use metrics::{Outcome, RuntimeMetrics, WaitKind};
use retry::{Failure, RetryPolicy, is_idempotent};
use scheduler::{Acquisition, BucketKey, BucketStore, InMemoryBuckets, RateLimitMode};

/// The integration name of `http.request`: its circuits and buckets are per host.
pub const HTTP_INTEGRATION: &str = "http";

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How the runtime treats one integration.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationPolicy {
    pub rate_limit: RateLimitMode,
    pub retry: RetryPolicy,
    pub circuit: CircuitConfig,
    /// The lowest TLS version this integration's servers may use; `None` keeps the client's
    /// (TLS 1.3). A connection's own `tls_min` wins.
    pub tls_min: Option<TlsVersion>,
}

impl IntegrationPolicy {
    /// The built-in policy of `integration`: its declaration's (`providers.rs`: a declared
    /// rate limit seeds the buckets, declared overrides replace the defaults); any other
    /// integration is paced only once its responses state a limit.
    pub fn builtin(integration: &str) -> Self {
        Self::of(crate::providers::provider(integration))
    }

    /// The policy of a declaration (`None`: an undeclared integration).
    fn of(spec: Option<&ProviderSpec>) -> Self {
        spec.map_or_else(
            || Self {
                rate_limit: RateLimitMode::Learned(ProviderProfile::generic()),
                retry: RetryPolicy::default(),
                circuit: CircuitConfig::default(),
                tls_min: None,
            },
            ProviderSpec::policy,
        )
    }
}

/// The runtime's settings; built by the composition root.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// The longest rate-limit wait slept inside a request; a longer one parks the step.
    pub max_inline_wait: Duration,
    /// The largest response body kept; a longer one is cut here and flagged truncated.
    pub max_body_bytes: usize,
    /// Overrides of [`IntegrationPolicy::builtin`] by integration name.
    pub policies: HashMap<String, IntegrationPolicy>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_inline_wait: Duration::from_secs(2),
            max_body_bytes: 10 * 1024 * 1024,
            policies: HashMap::new(),
        }
    }
}

/// One outbound call of an action: which integration and action it is for (metrics, logs,
/// circuits, policies), the connection whose credentials and quota it uses, and the request.
pub struct IntegrationCall {
    integration: String,
    action: String,
    connection: Option<String>,
    request: RequestBuilder,
}

impl IntegrationCall {
    /// `request` comes from [`ActionContext::http`]`().request(..)`, which applies the SSRF
    /// guard.
    pub fn new(integration: &str, action: &str, request: RequestBuilder) -> Self {
        Self {
            integration: integration.to_owned(),
            action: action.to_owned(),
            connection: None,
            request,
        }
    }

    /// Authenticates with the tenant's connection `name` (and spends its quota).
    pub fn connection(mut self, name: Option<String>) -> Self {
        self.connection = name;
        self
    }
}

/// A response read in full (up to [`RuntimeConfig::max_body_bytes`]).
#[derive(Debug, Clone)]
pub struct IntegrationResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body was longer than the limit and was cut.
    pub truncated: bool,
    /// The final URL, after redirects.
    pub url: Url,
}

impl IntegrationResponse {
    /// The URL without credentials, query or fragment: safe for messages.
    pub fn display_url(&self) -> String {
        display_url(&self.url)
    }

    /// The error class of a 4xx/5xx status with `message` (a retryable one carries the
    /// response's `Retry-After`), or `None`.
    pub fn error_for_status(&self, message: impl Into<String>) -> Option<ActionError> {
        error_for_status(self.status, &self.headers, message)
    }
}

/// The middleware chain. Cloning is cheap: clones share circuits, buckets and metrics.
#[derive(Clone)]
pub struct IntegrationRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    config: RuntimeConfig,
    buckets: Arc<dyn BucketStore>,
    circuits: Arc<Mutex<HashMap<CircuitKey, Circuit>>>,
    metrics: RuntimeMetrics,
    health: Arc<HealthRecorder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CircuitKey {
    tenant_id: String,
    integration: String,
    /// The host for plain `http`, else empty.
    scope: String,
}

impl IntegrationRuntime {
    /// The runtime with the default settings and in-memory buckets, its metrics registered into
    /// `metrics`.
    pub fn new(http: HttpClient, metrics: &MetricsRegistry) -> Result<Self, MetricsError> {
        Self::with_config(
            http,
            RuntimeConfig::default(),
            Arc::new(InMemoryBuckets::new()),
            metrics,
        )
    }

    pub fn with_config(
        http: HttpClient,
        config: RuntimeConfig,
        buckets: Arc<dyn BucketStore>,
        metrics: &MetricsRegistry,
    ) -> Result<Self, MetricsError> {
        let metrics = RuntimeMetrics::register(metrics)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                buckets,
                circuits: Arc::default(),
                health: Arc::new(HealthRecorder::with_metrics(metrics.clone())),
                metrics,
            }),
        })
    }

    /// The same runtime (client, settings, circuits, metrics) keeping its buckets in `buckets`:
    /// on Postgres the engine installs its shared store this way.
    pub fn with_buckets(&self, buckets: Arc<dyn BucketStore>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                config: inner.config.clone(),
                buckets,
                circuits: inner.circuits.clone(),
                metrics: inner.metrics.clone(),
                health: inner.health.clone(),
            }),
        }
    }

    /// The HTTP client underneath, for building requests (and for the engine's own OAuth
    /// calls, which are not integration calls).
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The per-tenant, per-minute health counts of this process' calls, until the engine
    /// drains them.
    pub fn health(&self) -> &Arc<HealthRecorder> {
        &self.inner.health
    }

    /// The state of each of the tenant's circuits in this process, the worst per integration
    /// (plain `http` has one circuit per host). Integrations without a circuit yet are absent.
    pub fn circuit_states(&self, tenant_id: &str) -> HashMap<String, CircuitState> {
        let circuits = self
            .inner
            .circuits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut states: HashMap<String, CircuitState> = HashMap::new();
        for (key, circuit) in circuits.iter() {
            if key.tenant_id != tenant_id {
                continue;
            }
            let state = circuit.state();
            states
                .entry(key.integration.clone())
                .and_modify(|worst| {
                    if state.gauge() > worst.gauge() {
                        *worst = state;
                    }
                })
                .or_insert(state);
        }
        states
    }

    /// Sends `call` through the chain for the step of `ctx`. Any status comes back as a
    /// response (after retries); the action maps it to its error class.
    pub(crate) async fn send(
        &self,
        ctx: &ActionContext,
        call: IntegrationCall,
    ) -> Result<ActionOutcome<IntegrationResponse>, ActionError> {
        self.inner.send(ctx, call).await
    }
}

impl std::fmt::Debug for IntegrationRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What the layers need to know about one call.
struct CallState<'a> {
    integration: String,
    action: String,
    connection: Option<String>,
    ctx: &'a ActionContext,
    policy: IntegrationPolicy,
    circuit: CircuitKey,
    bucket: BucketKey,
    idempotent: bool,
    /// The headers the integration's declaration has every call carry.
    static_headers: &'static HeaderMap,
}

impl Inner {
    async fn send(
        &self,
        ctx: &ActionContext,
        call: IntegrationCall,
    ) -> Result<ActionOutcome<IntegrationResponse>, ActionError> {
        let IntegrationCall {
            integration,
            action,
            connection,
            request,
        } = call;
        let request = build_request(request)?;
        let state = self.call_state(ctx, integration, action, connection, &request);
        let mut auth: Option<ConnectionAuth> = None;
        let mut tls = TlsOptions {
            min_version: state.policy.tls_min,
            identity: None,
        };
        let mut refreshed = false;
        let mut attempt = 0;
        let mut retries = 0;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            let permit = self.admit(&state)?;
            if let Some(until) = self.wait_for_slot(&state).await? {
                return Ok(ActionOutcome::Suspend { until });
            }
            if let (Some(name), None) = (&state.connection, &auth) {
                auth = Some(ctx.connection_auth(name).await?);
                let own = ctx.connection_tls(name).await?;
                tls = TlsOptions {
                    min_version: own.min_version.or(state.policy.tls_min),
                    identity: own.identity,
                };
            }
            let mut sent = request.try_clone().ok_or_else(|| {
                ActionError::Permanent("a streamed request body cannot be sent again".into())
            })?;
            for (name, value) in state.static_headers {
                if !sent.headers().contains_key(name) {
                    sent.headers_mut().insert(name.clone(), value.clone());
                }
            }
            if let Some(auth) = &auth {
                auth.apply_to(&mut sent)?;
            }

            let result = self.exchange(&state, attempt, sent, &tls).await;
            let now = Utc::now();
            let (failure, last) = match result {
                Ok(response) => {
                    self.observe(&state, &response, now).await?;
                    let status = response.status;
                    permit.settle(if status.is_server_error() && is_retryable_status(status) {
                        Verdict::TransientFailure
                    } else {
                        Verdict::Healthy
                    });
                    if status == StatusCode::UNAUTHORIZED
                        && !refreshed
                        && let (Some(name), Some(rejected)) = (&state.connection, &auth)
                    {
                        tracing::info!(
                            message = "Integration request got 401: refreshing the connection's credentials once.",
                            integration = %state.integration,
                            action = %state.action,
                            connection = %name,
                        );
                        auth = Some(ctx.refresh_connection_auth(name, rejected).await?);
                        refreshed = true;
                        continue;
                    }
                    if !is_retryable_status(status) {
                        return Ok(ActionOutcome::Done(response));
                    }
                    let failure = Failure {
                        retry_after: retry_after(&response.headers, now),
                        never_sent: false,
                    };
                    (failure, Ok(response))
                }
                Err(send_failure) => {
                    if send_failure.error.is_retryable() {
                        permit.settle(Verdict::TransientFailure);
                    } else {
                        return Err(send_failure.error);
                    }
                    let failure = Failure {
                        retry_after: None,
                        never_sent: send_failure.never_sent,
                    };
                    (failure, Err(send_failure.error))
                }
            };
            retries += 1;
            let Some(wait) = state.policy.retry.next_wait(
                retries,
                &failure,
                state.idempotent,
                waited,
                rand::random(),
            ) else {
                return last.map(ActionOutcome::Done);
            };
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    fn call_state<'a>(
        &self,
        ctx: &'a ActionContext,
        integration: String,
        action: String,
        connection: Option<String>,
        request: &Request,
    ) -> CallState<'a> {
        let tenant_id = ctx.invocation().tenant_id.clone();
        let host = request.url().host_str().unwrap_or_default().to_owned();
        let plain_http = integration == HTTP_INTEGRATION;
        let bucket_scope = match (&connection, plain_http) {
            (Some(name), _) => format!("connection:{name}"),
            (None, true) => format!("host:{host}"),
            (None, false) => String::new(),
        };
        static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);
        let spec = crate::providers::provider(&integration);
        let mut policy = self
            .config
            .policies
            .get(&integration)
            .cloned()
            .unwrap_or_else(|| IntegrationPolicy::of(spec));
        if let Some(step) = &ctx.invocation().http_retry {
            policy.retry = policy.retry.overridden_by(step);
        }
        CallState {
            policy,
            circuit: CircuitKey {
                tenant_id: tenant_id.clone(),
                integration: integration.clone(),
                scope: if plain_http { host } else { String::new() },
            },
            bucket: BucketKey {
                tenant_id,
                integration: integration.clone(),
                scope: bucket_scope,
            },
            idempotent: is_idempotent(
                request.method(),
                request.headers().contains_key(IDEMPOTENCY_KEY),
            ),
            static_headers: spec.map_or(&*NO_HEADERS, ProviderSpec::static_headers),
            integration,
            action,
            connection,
            ctx,
        }
    }

    /// The circuit's admission, or the fail-fast error of an open circuit.
    fn admit<'a>(&'a self, state: &'a CallState<'_>) -> Result<CircuitPermit<'a>, ActionError> {
        let now = Utc::now();
        let admission = self.with_circuit(state, |circuit| circuit.admit(now));
        let Admission::Rejected { probe_at } = admission else {
            return Ok(CircuitPermit {
                runtime: self,
                state,
                admission,
                settled: false,
            });
        };
        self.count(state, now, Outcome::CircuitOpen, None);
        let name = match state.circuit.scope.as_str() {
            "" => format!("`{}`", state.integration),
            host => format!("`{}` ({host})", state.integration),
        };
        let (when, retry_after) = match probe_at {
            Some(at) => (
                format!("the next probe goes out at {}", at.to_rfc3339()),
                Some((at - now).to_std().unwrap_or_default()),
            ),
            None => ("a probe request is in flight".to_owned(), None),
        };
        Err(ActionError::Retryable {
            message: format!(
                "integration {name} is failing: its circuit is open after repeated transient \
                 failures; {when}"
            ),
            retry_after,
        })
    }

    /// Runs `change` on the call's circuit and reports a state change to the metrics.
    fn with_circuit<T>(&self, state: &CallState<'_>, change: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let circuit = circuits
            .entry(state.circuit.clone())
            .or_insert_with(|| Circuit::new(state.policy.circuit));
        let before = circuit.state();
        let result = change(circuit);
        let after = circuit.state();
        if after != before {
            let key = &state.circuit;
            self.metrics
                .circuit_changed(&key.integration, &key.tenant_id, &key.scope, after);
            self.health
                .circuit_changed(&key.tenant_id, &key.integration, Utc::now(), after);
            if after == CircuitState::Open {
                tracing::warn!(
                    message = "Integration circuit opened.",
                    integration = %key.integration,
                    tenant = %key.tenant_id,
                    scope = %key.scope,
                );
            }
        }
        result
    }

    /// Waits for the scheduler's slot when it is near; returns the park time when it is not.
    async fn wait_for_slot(
        &self,
        state: &CallState<'_>,
    ) -> Result<Option<DateTime<Utc>>, ActionError> {
        let now = Utc::now();
        let integration = &state.integration;
        let acquired = self
            .buckets
            .acquire(
                &state.bucket,
                &state.policy.rate_limit,
                now,
                self.config.max_inline_wait,
            )
            .await?;
        match acquired {
            Acquisition::SendAt(at) => {
                let wait = (at - now).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    self.metrics
                        .rate_limit_wait(integration, WaitKind::Sleep, wait.as_secs_f64());
                    self.health
                        .rate_limit_wait(&state.circuit.tenant_id, integration, now, wait);
                    tokio::time::sleep(wait).await;
                }
                Ok(None)
            }
            Acquisition::ParkUntil(until) => {
                let wait = (until - now).to_std().unwrap_or_default();
                self.metrics
                    .rate_limit_wait(integration, WaitKind::Park, wait.as_secs_f64());
                self.health
                    .rate_limit_wait(&state.circuit.tenant_id, integration, now, wait);
                self.count(state, now, Outcome::RateLimited, None);
                tracing::info!(
                    message = "Integration request parked by the rate-limit scheduler.",
                    integration = %integration,
                    action = %state.action,
                    run = %state.ctx.invocation().run_id,
                    step = %state.ctx.invocation().step_id,
                    until = %until.to_rfc3339(),
                );
                Ok(Some(until))
            }
        }
    }

    async fn observe(
        &self,
        state: &CallState<'_>,
        response: &IntegrationResponse,
        now: DateTime<Utc>,
    ) -> Result<(), ActionError> {
        let mode = &state.policy.rate_limit;
        let observation = parse_with_body(
            &response.headers,
            response.status,
            &response.body,
            now,
            mode.profile(),
        );
        self.buckets
            .observe(&state.bucket, mode, &observation, now)
            .await
    }

    /// One request on the wire, logged and measured.
    async fn exchange(
        &self,
        state: &CallState<'_>,
        attempt: u32,
        request: Request,
        tls: &TlsOptions,
    ) -> Result<IntegrationResponse, SendFailure> {
        let invocation = state.ctx.invocation();
        let method = request.method().clone();
        // A secret the step resolved can be part of the path (a Slack webhook URL).
        let target = state.ctx.redact(&display_url(request.url()));
        let started = Instant::now();
        let result = match self.http.execute_with(request, tls).await {
            Ok(response) => self.read(response).await,
            Err(failure) => Err(failure),
        };
        let latency = started.elapsed();
        self.metrics
            .latency(&state.integration, &state.action, latency.as_secs_f64());
        let latency_ms = latency.as_millis() as u64;
        let now = Utc::now();
        match &result {
            Ok(response) => {
                let outcome = status_outcome(response.status);
                self.count(state, now, outcome, Some(latency));
                tracing::info!(
                    message = "Integration request.",
                    integration = %state.integration,
                    action = %state.action,
                    method = %method,
                    url = %target,
                    status = response.status.as_u16(),
                    outcome = outcome.as_str(),
                    latency_ms,
                    attempt,
                    run = %invocation.run_id,
                    step = %invocation.step_id,
                );
            }
            Err(failure) => {
                let outcome = if failure.timed_out {
                    Outcome::Timeout
                } else {
                    Outcome::ConnectionError
                };
                self.count(state, now, outcome, Some(latency));
                tracing::warn!(
                    message = "Integration request failed.",
                    integration = %state.integration,
                    action = %state.action,
                    method = %method,
                    url = %target,
                    outcome = outcome.as_str(),
                    error = %state.ctx.redact(&failure.error.to_string()),
                    latency_ms,
                    attempt,
                    run = %invocation.run_id,
                    step = %invocation.step_id,
                );
            }
        }
        result
    }

    /// Counts one request (or a call stopped before sending, without `latency`) in the
    /// metrics and the health counts.
    fn count(
        &self,
        state: &CallState<'_>,
        now: DateTime<Utc>,
        outcome: Outcome,
        latency: Option<Duration>,
    ) {
        self.metrics
            .request(&state.integration, &state.action, outcome);
        self.health.request(
            &state.circuit.tenant_id,
            &state.integration,
            now,
            outcome,
            latency,
        );
    }

    /// Reads the body up to the limit; a connection lost mid-body is transient, but the
    /// request did reach the server.
    async fn read(&self, mut response: Response) -> Result<IntegrationResponse, SendFailure> {
        let url = response.url().clone();
        let limit = self.config.max_body_bytes;
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            let chunk = response.chunk().await.map_err(|error| SendFailure {
                never_sent: false,
                timed_out: error.is_timeout(),
                error: classify_transport_error(&error, &display_url(&url)),
            })?;
            let Some(chunk) = chunk else { break };
            let room = limit - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(IntegrationResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body,
            truncated,
            url,
        })
    }
}

/// The circuit's claim on one attempt: settle it with the attempt's verdict; dropping an
/// unsettled probe (parked, cancelled, failed before sending) lets the next call probe.
struct CircuitPermit<'a> {
    runtime: &'a Inner,
    state: &'a CallState<'a>,
    admission: Admission,
    settled: bool,
}

impl CircuitPermit<'_> {
    fn settle(mut self, verdict: Verdict) {
        self.settled = true;
        let now = Utc::now();
        let admission = self.admission;
        self.runtime.with_circuit(self.state, |circuit| {
            circuit.record(now, admission, verdict)
        });
    }
}

impl Drop for CircuitPermit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.admission == Admission::Probe {
            self.runtime
                .with_circuit(self.state, Circuit::abandon_probe);
        }
    }
}

fn status_outcome(status: StatusCode) -> Outcome {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited
    } else if status.is_server_error() {
        Outcome::ServerError
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Outcome::AuthError
    } else if status.is_client_error() {
        Outcome::ClientError
    } else {
        Outcome::Success
    }
}

/// `time + duration`, saturating.
pub(crate) fn after(time: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| time.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
