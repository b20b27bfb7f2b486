//! The process' Prometheus metrics: one [`prometheus::Registry`], created by the composition
//! root and served at `GET /metrics`. Other components register their own collectors into the
//! same registry at start-up (pass them `&Registry`).

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use stepwise_engine::{Engine, RunEvent, RunObserver};
use stepwise_integrations::webhooks::WebhookScheme;

/// Webhook delivery outcomes besides the verifiers' rejection codes.
pub mod outcome {
    pub const ACCEPTED: &str = "accepted";
    pub const DUPLICATE: &str = "duplicate";
    pub const CHALLENGE: &str = "challenge";
    pub const UNKNOWN_SOURCE: &str = "unknown_source";
    pub const TOO_LARGE: &str = "too_large";
    pub const ERROR: &str = "error";
}

/// The API's own metrics, registered in the process registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    webhook_deliveries: IntCounterVec,
}

impl Metrics {
    /// Registers the API's metrics in `registry` and counts the engine's run events.
    pub fn register(registry: &Registry, engine: &Engine) -> Result<Self, prometheus::Error> {
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "stepwise_webhook_deliveries_total",
                "Webhook deliveries received, by provider and outcome (accepted, duplicate, \
                 challenge, or why it was refused).",
            ),
            &["provider", "outcome"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        let runs = RunCounters::register(registry)?;
        engine.observe(Arc::new(runs));
        registry.register(Box::new(WorkerUp::new(engine.clone())?))?;
        Ok(Self {
            registry: registry.clone(),
            webhook_deliveries,
        })
    }

    /// Counts one webhook delivery. `provider` comes from the URL, so only webhook schemes get
    /// their own label (an attacker cannot grow the label set).
    pub fn webhook_delivery(&self, provider: &str, outcome: &str) {
        let provider = if WebhookScheme::NAMES.contains(&provider) {
            provider
        } else {
            "unknown"
        };
        self.webhook_deliveries
            .with_label_values(&[provider, outcome])
            .inc();
    }

    /// Every registered metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

/// Runs started by trigger kind and finished by status, from the engine's run events.
struct RunCounters {
    started: IntCounterVec,
    finished: IntCounterVec,
}

impl RunCounters {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let started = IntCounterVec::new(
            Opts::new(
                "stepwise_runs_started_total",
                "Runs started by this process, by trigger kind.",
            ),
            &["trigger_kind"],
        )?;
        let finished = IntCounterVec::new(
            Opts::new(
                "stepwise_runs_finished_total",
                "Runs that reached a terminal status in this process, by status.",
            ),
            &["status"],
        )?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(finished.clone()))?;
        Ok(Self { started, finished })
    }
}

impl RunObserver for RunCounters {
    fn observe(&self, event: &RunEvent) {
        match event {
            RunEvent::Started { trigger_kind, .. } => {
                self.started.with_label_values(&[trigger_kind]).inc();
            }
            RunEvent::Run { status, .. } if status.is_terminal() => {
                self.finished.with_label_values(&[status.as_str()]).inc();
            }
            RunEvent::Run { .. } | RunEvent::Step { .. } => {}
        }
    }
}

/// `stepwise_worker_up`: 1 while this process' step worker fetches tasks, 0 while it is down
/// (restarting after an error) or not running; read from the engine at each scrape.
struct WorkerUp {
    engine: Engine,
    gauge: IntGauge,
}

impl WorkerUp {
    fn new(engine: Engine) -> Result<Self, prometheus::Error> {
        let gauge = IntGauge::new(
            "stepwise_worker_up",
            "1 while this process' step worker is fetching tasks, 0 while it is down \
             (restarting after an error) or not started.",
        )?;
        Ok(Self { engine, gauge })
    }
}

impl Collector for WorkerUp {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge
            .set(i64::from(self.engine.worker_status().is_up()));
        self.gauge.collect()
    }
}
