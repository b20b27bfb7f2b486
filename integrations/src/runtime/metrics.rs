//! The runtime's Prometheus metrics, registered once into the registry the composition root
//! passes in.

use prometheus::{
    CounterVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::circuit::CircuitState;

/// What one request (or a call stopped before sending) ended as: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// 401 or 403: the credentials were refused (an alert of its own: they need a
    /// reconnection, not a retry).
    AuthError,
    ClientError,
    ServerError,
    /// A 429 answer, or a call parked by the scheduler before sending.
    RateLimited,
    Timeout,
    ConnectionError,
    /// Refused before sending by an open circuit.
    CircuitOpen,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::AuthError => "auth_error",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::ConnectionError => "connection_error",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// Whether a rate-limit wait slept in the request or parked the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    Sleep,
    Park,
}

impl WaitKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sleep => "sleep",
            Self::Park => "park",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    rate_limit_waits: IntCounterVec,
    rate_limit_wait_seconds: CounterVec,
    circuit_state: IntGaugeVec,
    circuit_transitions: IntCounterVec,
    token_refreshes: IntCounterVec,
}

impl RuntimeMetrics {
    /// Creates the metrics and registers them into `registry`; fails when they already are.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "stepwise_integration_requests_total",
                    "Outbound integration requests by outcome (calls refused before sending included).",
                ),
                &["integration", "action", "outcome"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "stepwise_integration_request_duration_seconds",
                    "Time from sending an integration request to its response body.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["integration", "action"],
            )?,
            rate_limit_waits: IntCounterVec::new(
                Opts::new(
                    "stepwise_integration_rate_limit_waits_total",
                    "Requests the rate-limit scheduler delayed (sleep) or parked (park).",
                ),
                &["integration", "kind"],
            )?,
            rate_limit_wait_seconds: CounterVec::new(
                Opts::new(
                    "stepwise_integration_rate_limit_wait_seconds_total",
                    "Time requests waited for the rate-limit scheduler.",
                ),
                &["integration", "kind"],
            )?,
            circuit_state: IntGaugeVec::new(
                Opts::new(
                    "stepwise_integration_circuit_state",
                    "Circuit breaker state per tenant and integration (and host for plain http): 0 closed, 1 half-open, 2 open.",
                ),
                &["integration", "tenant", "scope"],
            )?,
            circuit_transitions: IntCounterVec::new(
                Opts::new(
                    "stepwise_integration_circuit_transitions_total",
                    "Circuit breaker state changes by the state entered.",
                ),
                &["integration", "state"],
            )?,
            token_refreshes: IntCounterVec::new(
                Opts::new(
                    "stepwise_integration_token_refreshes_total",
                    "OAuth token refreshes sent to a provider, by outcome (ok, failed).",
                ),
                &["integration", "outcome"],
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.latency.clone()))?;
        registry.register(Box::new(metrics.rate_limit_waits.clone()))?;
        registry.register(Box::new(metrics.rate_limit_wait_seconds.clone()))?;
        registry.register(Box::new(metrics.circuit_state.clone()))?;
        registry.register(Box::new(metrics.circuit_transitions.clone()))?;
        registry.register(Box::new(metrics.token_refreshes.clone()))?;
        Ok(metrics)
    }

    pub fn request(&self, integration: &str, action: &str, outcome: Outcome) {
        self.requests
            .with_label_values(&[integration, action, outcome.as_str()])
            .inc();
    }

    pub fn latency(&self, integration: &str, action: &str, seconds: f64) {
        self.latency
            .with_label_values(&[integration, action])
            .observe(seconds);
    }

    pub fn rate_limit_wait(&self, integration: &str, kind: WaitKind, seconds: f64) {
        self.rate_limit_waits
            .with_label_values(&[integration, kind.as_str()])
            .inc();
        self.rate_limit_wait_seconds
            .with_label_values(&[integration, kind.as_str()])
            .inc_by(seconds.max(0.0));
    }

    pub fn circuit_changed(&self, integration: &str, tenant: &str, scope: &str, to: CircuitState) {
        self.circuit_state
            .with_label_values(&[integration, tenant, scope])
            .set(to.gauge());
        self.circuit_transitions
            .with_label_values(&[integration, to.as_str()])
            .inc();
    }

    pub fn token_refresh(&self, integration: &str, succeeded: bool) {
        let outcome = if succeeded { "ok" } else { "failed" };
        self.token_refreshes
            .with_label_values(&[integration, outcome])
            .inc();
    }
}
