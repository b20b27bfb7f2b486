//! The integration runtime's middleware chain against wiremock providers: circuit breaker,
//! rate-limit scheduler, connection auth, retry, logging and metrics.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use prometheus::proto::MetricType;
use reqwest::Method;
use serde_json::json;
use stepwise_integrations::http::TlsOptions;
use stepwise_integrations::providers::ConnectionValues;
use stepwise_integrations::runtime::circuit::CircuitConfig;
use stepwise_integrations::runtime::retry::RetryPolicy;
use stepwise_integrations::runtime::scheduler::{InMemoryBuckets, RateLimitMode};
use stepwise_integrations::runtime::{IntegrationPolicy, MetricsRegistry, RuntimeConfig};
use stepwise_integrations::{
    ActionContext, ActionError, ActionOutcome, ActionServices, ConnectionAuth, ConnectionProvider,
    IntegrationCall, IntegrationResponse, IntegrationRuntime, Registry, ResolvedConnection,
    SecretValue,
};
use support::{client, invocation};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SERVICE: &str = "svc";

/// A runtime whose `svc` integration opens its circuit after `threshold` failures, retries with
/// millisecond backoff, and paces only what the provider states.
struct Fixture {
    metrics: MetricsRegistry,
    services: Arc<ActionServices>,
}

impl Fixture {
    fn new(policy: IntegrationPolicy) -> Self {
        Self::with(policy, RuntimeConfig::default(), None)
    }

    fn with(
        policy: IntegrationPolicy,
        mut config: RuntimeConfig,
        connections: Option<Arc<dyn ConnectionProvider>>,
    ) -> Self {
        config.policies.insert(SERVICE.to_owned(), policy);
        let metrics = MetricsRegistry::new();
        let runtime = IntegrationRuntime::with_config(
            client(true),
            config,
            Arc::new(InMemoryBuckets::new()),
            &metrics,
        )
        .expect("runtime");
        let mut services = ActionServices::new(runtime);
        if let Some(connections) = connections {
            services = services.with_connections(connections);
        }
        Self {
            metrics,
            services: Arc::new(services),
        }
    }

    fn context(&self) -> ActionContext {
        ActionContext::new(
            invocation("call", 1),
            self.services.clone(),
            CancellationToken::new(),
        )
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        connection: Option<&str>,
    ) -> Result<ActionOutcome<IntegrationResponse>, ActionError> {
        let ctx = self.context();
        let mut request = ctx.http().request(method, url)?;
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let call = IntegrationCall::new(SERVICE, "svc.call", request)
            .connection(connection.map(str::to_owned));
        ctx.send(call).await
    }

    async fn get(&self, url: &str) -> Result<ActionOutcome<IntegrationResponse>, ActionError> {
        self.send(Method::GET, url, &[], None).await
    }

    /// The value of a counter or gauge with exactly these labels; 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: HashMap<&str, &str> = labels.iter().copied().collect();
        self.metrics
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| {
                let kind = family.get_field_type();
                family.get_metric().iter().map(move |metric| (kind, metric))
            })
            .filter(|(_, metric)| {
                let pairs: HashMap<&str, &str> = metric
                    .get_label()
                    .iter()
                    .map(|pair| (pair.name(), pair.value()))
                    .collect();
                wanted.iter().all(|(k, v)| pairs.get(k) == Some(v))
            })
            .map(|(kind, metric)| match kind {
                MetricType::COUNTER => metric.get_counter().get_value(),
                MetricType::GAUGE => metric.get_gauge().get_value(),
                MetricType::HISTOGRAM => metric.get_histogram().get_sample_count() as f64,
                other => panic!("{name} is a {other:?}"),
            })
            .sum()
    }

    fn requests(&self, outcome: &str) -> f64 {
        self.value(
            "stepwise_integration_requests_total",
            &[("integration", SERVICE), ("outcome", outcome)],
        )
    }
}

fn policy(threshold: u32, cool_down: Duration, max_attempts: u32) -> IntegrationPolicy {
    IntegrationPolicy {
        rate_limit: RateLimitMode::Learned(
            stepwise_integrations::ratelimit::ProviderProfile::generic(),
        ),
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            budget: Duration::from_secs(3),
        },
        circuit: CircuitConfig {
            failure_threshold: threshold,
            window: Duration::from_secs(60),
            cool_down,
        },
        tls_min: None,
    }
}

fn done(outcome: Result<ActionOutcome<IntegrationResponse>, ActionError>) -> IntegrationResponse {
    match outcome {
        Ok(ActionOutcome::Done(response)) => response,
        other => panic!("expected a response, got {other:?}"),
    }
}

async fn received(server: &MockServer) -> usize {
    server.received_requests().await.expect("recording").len()
}

#[tokio::test]
async fn the_circuit_opens_after_transient_failures_and_then_fails_fast() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(3, Duration::from_secs(600), 1));

    for _ in 0..3 {
        assert_eq!(done(fixture.get(&server.uri()).await).status, 500);
    }
    let error = fixture.get(&server.uri()).await.expect_err("open circuit");
    let ActionError::Retryable {
        message,
        retry_after: Some(retry_after),
    } = &error
    else {
        panic!("expected a retryable error with a delay, got {error:?}");
    };
    assert!(message.contains("integration `svc`"), "{message}");
    assert!(message.contains("circuit is open"), "{message}");
    assert!(message.contains("next probe goes out at"), "{message}");
    assert!(*retry_after > Duration::from_secs(590), "{retry_after:?}");
    assert_eq!(received(&server).await, 3, "no request while open");
    assert_eq!(fixture.requests("circuit_open"), 1.0);
    assert_eq!(fixture.requests("server_error"), 3.0);
    let state = [("integration", SERVICE), ("tenant", "tenant-1")];
    assert_eq!(
        fixture.value("stepwise_integration_circuit_state", &state),
        2.0
    );
}

#[tokio::test]
async fn a_half_open_probe_that_gets_an_answer_closes_the_circuit() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // No cool-down: the call after the circuit opens is its probe.
    let fixture = Fixture::new(policy(2, Duration::ZERO, 1));

    for _ in 0..2 {
        assert_eq!(done(fixture.get(&server.uri()).await).status, 503);
    }
    assert_eq!(done(fixture.get(&server.uri()).await).status, 200);
    assert_eq!(done(fixture.get(&server.uri()).await).status, 200);
    let transitions = |state| {
        fixture.value(
            "stepwise_integration_circuit_transitions_total",
            &[("integration", SERVICE), ("state", state)],
        )
    };
    assert_eq!(
        (
            transitions("open"),
            transitions("half_open"),
            transitions("closed")
        ),
        (1.0, 1.0, 1.0)
    );
    let state = [("integration", SERVICE), ("tenant", "tenant-1")];
    assert_eq!(
        fixture.value("stepwise_integration_circuit_state", &state),
        0.0
    );
}

#[tokio::test]
async fn client_errors_and_rate_limit_answers_never_open_the_circuit() {
    let server = MockServer::start().await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    Mock::given(path("/forbidden"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(2, Duration::from_secs(600), 1));

    for _ in 0..3 {
        let missing = format!("{}/missing", server.uri());
        assert_eq!(done(fixture.get(&missing).await).status, 404);
        let forbidden = format!("{}/forbidden", server.uri());
        assert_eq!(done(fixture.get(&forbidden).await).status, 403);
        let busy = format!("{}/busy", server.uri());
        assert_eq!(done(fixture.get(&busy).await).status, 429);
    }
    assert_eq!(fixture.requests("circuit_open"), 0.0);
    assert_eq!(fixture.requests("client_error"), 3.0);
    assert_eq!(
        fixture.requests("auth_error"),
        3.0,
        "refused credentials are a class"
    );
    assert_eq!(fixture.requests("rate_limited"), 3.0);
    assert_eq!(received(&server).await, 9);
}

#[tokio::test]
async fn retry_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(5, Duration::from_secs(600), 3));

    let started = Instant::now();
    assert_eq!(done(fixture.get(&server.uri()).await).status, 200);
    // A lower bound only: the wait is a floor, never a ceiling.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(received(&server).await, 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_goes_to_the_engine_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(5, Duration::from_secs(600), 3));

    let response = done(fixture.get(&server.uri()).await);
    assert_eq!(received(&server).await, 1);
    let error = response
        .error_for_status("unavailable")
        .expect("503 is an error");
    assert_eq!(
        error,
        ActionError::Retryable {
            message: "unavailable".to_owned(),
            retry_after: Some(Duration::from_secs(120)),
        }
    );
}

#[tokio::test]
async fn unavailable_is_retried_with_backoff() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(5, Duration::from_secs(600), 3));

    assert_eq!(done(fixture.get(&server.uri()).await).status, 200);
    assert_eq!(received(&server).await, 3);
    assert_eq!(fixture.requests("server_error"), 2.0);
    assert_eq!(fixture.requests("success"), 1.0);
}

#[tokio::test]
async fn permanent_statuses_are_never_retried() {
    for status in [400, 403, 404, 422] {
        let server = MockServer::start().await;
        Mock::given(path("/"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        let fixture = Fixture::new(policy(5, Duration::from_secs(600), 3));

        assert_eq!(done(fixture.get(&server.uri()).await).status, status);
        assert_eq!(received(&server).await, 1, "{status}");
    }
}

#[tokio::test]
async fn a_post_is_retried_only_with_an_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(50, Duration::from_secs(600), 3));

    let response = done(fixture.send(Method::POST, &server.uri(), &[], None).await);
    assert_eq!(response.status, 502);
    assert_eq!(received(&server).await, 1, "no key: sent once");

    let keyed = [("Idempotency-Key", "run-1:call")];
    done(
        fixture
            .send(Method::POST, &server.uri(), &keyed, None)
            .await,
    );
    assert_eq!(received(&server).await, 1 + 3, "with a key: every attempt");
}

#[tokio::test]
async fn a_post_is_retried_when_the_connection_was_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let fixture = Fixture::new(policy(50, Duration::from_secs(600), 3));

    let url = format!("http://127.0.0.1:{port}/charge");
    let error = fixture
        .send(Method::POST, &url, &[], None)
        .await
        .expect_err("refused");
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        fixture.requests("connection_error"),
        3.0,
        "never reached the server"
    );
}

/// Hands out `old` until a 401 makes the runtime ask for a refresh, then `new`.
struct RotatingToken {
    refreshes: AtomicUsize,
    current: Mutex<&'static str>,
}

impl RotatingToken {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            refreshes: AtomicUsize::new(0),
            current: Mutex::new(CANARY_OLD),
        })
    }

    fn bearer(&self) -> ConnectionAuth {
        let token = *self.current.lock().expect("lock");
        ConnectionAuth::Bearer(SecretValue::new(token))
    }
}

const CANARY_OLD: &str = "canary-old-token-7f3a";
const CANARY_NEW: &str = "canary-new-token-91bc";

#[async_trait]
impl ConnectionProvider for RotatingToken {
    async fn resolve(
        &self,
        _tenant: &str,
        _connection: &str,
    ) -> Result<ResolvedConnection, ActionError> {
        Ok(ResolvedConnection {
            auth: self.bearer(),
            tls: TlsOptions::default(),
            base_url: None,
            values: ConnectionValues::default(),
        })
    }

    async fn refresh_rejected(
        &self,
        _tenant: &str,
        _connection: &str,
        _rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *self.current.lock().expect("lock") = CANARY_NEW;
        Ok(self.bearer())
    }
}

fn with_tokens(tokens: Arc<RotatingToken>) -> Fixture {
    Fixture::with(
        policy(50, Duration::from_secs(600), 3),
        RuntimeConfig::default(),
        Some(tokens),
    )
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh() {
    let server = MockServer::start().await;
    Mock::given(header(
        "authorization",
        format!("Bearer {CANARY_OLD}").as_str(),
    ))
    .respond_with(ResponseTemplate::new(401))
    .mount(&server)
    .await;
    Mock::given(header(
        "authorization",
        format!("Bearer {CANARY_NEW}").as_str(),
    ))
    .respond_with(ResponseTemplate::new(200))
    .mount(&server)
    .await;
    let tokens = RotatingToken::new();
    let fixture = with_tokens(tokens.clone());

    let response = done(
        fixture
            .send(Method::GET, &server.uri(), &[], Some("crm"))
            .await,
    );
    assert_eq!(response.status, 200);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(received(&server).await, 2);
}

#[tokio::test]
async fn a_second_401_is_returned_without_another_refresh() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let tokens = RotatingToken::new();
    let fixture = with_tokens(tokens.clone());

    let response = done(
        fixture
            .send(Method::GET, &server.uri(), &[], Some("crm"))
            .await,
    );
    assert_eq!(response.status, 401);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(received(&server).await, 2);
}

#[tokio::test]
async fn an_exhausted_quota_parks_the_next_call_until_the_reset() {
    let server = MockServer::start().await;
    let reset = Utc::now().timestamp() + 600;
    Mock::given(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Limit", "100")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(5, Duration::from_secs(600), 3));

    done(fixture.get(&server.uri()).await);
    let parked = fixture.get(&server.uri()).await.expect("parked");
    let ActionOutcome::Suspend { until } = parked else {
        panic!("expected the call to park, got {parked:?}");
    };
    assert!(
        until.timestamp() >= reset,
        "{until} before the reset {reset}"
    );
    assert_eq!(received(&server).await, 1, "the parked call sent nothing");
    let parks = [("integration", SERVICE), ("kind", "park")];
    assert_eq!(
        fixture.value("stepwise_integration_rate_limit_waits_total", &parks),
        1.0
    );
    assert_eq!(fixture.requests("rate_limited"), 1.0);
}

#[tokio::test]
async fn a_near_reset_delays_the_next_call_in_the_request() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Limit", "100")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset-After", "1"),
        )
        .mount(&server)
        .await;
    let config = RuntimeConfig {
        max_inline_wait: Duration::from_secs(10),
        ..RuntimeConfig::default()
    };
    let fixture = Fixture::with(policy(5, Duration::from_secs(600), 3), config, None);

    done(fixture.get(&server.uri()).await);
    let started = Instant::now();
    done(fixture.get(&server.uri()).await);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(received(&server).await, 2);
    let sleeps = [("integration", SERVICE), ("kind", "sleep")];
    assert_eq!(
        fixture.value("stepwise_integration_rate_limit_waits_total", &sleeps),
        1.0
    );
}

#[tokio::test]
async fn latency_is_measured_per_request() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let fixture = Fixture::new(policy(5, Duration::from_secs(600), 3));

    for _ in 0..4 {
        let response = done(fixture.get(&server.uri()).await);
        assert_eq!(response.body, br#"{"ok":true}"#);
    }
    let labels = [("integration", SERVICE), ("action", "svc.call")];
    assert_eq!(
        fixture.value("stepwise_integration_request_duration_seconds", &labels),
        4.0
    );
    assert_eq!(fixture.requests("success"), 4.0);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_reach_logs_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(path("/unauthorized"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/failing"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    let tokens = RotatingToken::new();
    let fixture = with_tokens(tokens);

    let mut errors = Vec::new();
    for route in ["unauthorized", "failing"] {
        let url = format!("{}/{route}?api_key=query-canary", server.uri());
        match fixture.send(Method::GET, &url, &[], Some("crm")).await {
            Ok(ActionOutcome::Done(response)) => {
                let message = format!("HTTP {} from {}", response.status, response.display_url());
                errors.extend(response.error_for_status(message));
            }
            other => panic!("{route}: {other:?}"),
        }
    }
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://127.0.0.1:{refused}/?api_key=query-canary");
    errors.push(
        fixture
            .send(Method::GET, &url, &[], Some("crm"))
            .await
            .expect_err("refused"),
    );

    let logs = captured.text();
    assert!(logs.contains("Integration request."), "{logs}");
    assert!(logs.contains("status=401"), "{logs}");
    for canary in [CANARY_OLD, CANARY_NEW] {
        assert!(!logs.contains(canary), "{canary} in the logs:\n{logs}");
    }
    let ours: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("stepwise_integrations"))
        .collect();
    assert!(!ours.is_empty(), "{logs}");
    for line in ours {
        assert!(
            !line.contains("query-canary"),
            "query in our log line: {line}"
        );
    }
    assert_eq!(errors.len(), 3, "{errors:?}");
    for error in errors {
        let text = format!("{error} {error:?}");
        for canary in [CANARY_OLD, CANARY_NEW, "query-canary"] {
            assert!(!text.contains(canary), "{canary} in {text}");
        }
    }
}

#[tokio::test]
async fn http_request_goes_through_the_chain_with_its_connection() {
    let server = MockServer::start().await;
    Mock::given(header(
        "authorization",
        format!("Bearer {CANARY_OLD}").as_str(),
    ))
    .respond_with(ResponseTemplate::new(401))
    .mount(&server)
    .await;
    Mock::given(header(
        "authorization",
        format!("Bearer {CANARY_NEW}").as_str(),
    ))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1})))
    .mount(&server)
    .await;
    let tokens = RotatingToken::new();
    let fixture = with_tokens(tokens.clone());
    let registry = Registry::builtin();
    let action = registry.get("http.request").expect("registered");

    let outcome = action
        .execute_json(
            &fixture.context(),
            json!({"url": server.uri(), "connection": "crm"}),
        )
        .await
        .expect("200");
    let ActionOutcome::Done(output) = outcome else {
        panic!("expected an output, got {outcome:?}");
    };
    assert_eq!(
        (&output["status"], &output["body"]),
        (&json!(200), &json!({"id": 1}))
    );
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    let labels = [("integration", "http"), ("action", "http.request")];
    assert_eq!(
        fixture.value("stepwise_integration_requests_total", &labels),
        2.0
    );
}
