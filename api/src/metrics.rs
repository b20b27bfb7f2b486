//! The process' Prometheus metrics: one [`prometheus::Registry`], created by the composition
//! root and served at `GET /metrics`. Other components register their own collectors into the
//! same registry at start-up (pass them `&Registry`).

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use stepwise_engine::{Engine, MISSED_HEARTBEATS, QueueStats, RunEvent, RunObserver};
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
    webhook_handling: HistogramVec,
    queue: QueueGauges,
}

impl Metrics {
    /// Registers the API's metrics in `registry` and counts the engine's run events; a
    /// worker counts as alive for [`MISSED_HEARTBEATS`] of `heartbeat_interval` after it beat.
    pub fn register(
        registry: &Registry,
        engine: &Engine,
        heartbeat_interval: Duration,
    ) -> Result<Self, prometheus::Error> {
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "stepwise_webhook_deliveries_total",
                "Webhook deliveries received, by provider and outcome (accepted, duplicate, \
                 challenge, or why it was refused).",
            ),
            &["provider", "outcome"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        let webhook_handling = HistogramVec::new(
            HistogramOpts::new(
                "stepwise_webhook_handling_duration_seconds",
                "Time from receiving a webhook delivery to its answer being decided (verified \
                 and committed, or refused), by provider; a `?wait=` for the runs is not included.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["provider"],
        )?;
        registry.register(Box::new(webhook_handling.clone()))?;
        let runs = RunCounters::register(registry)?;
        engine.observe(Arc::new(runs));
        registry.register(Box::new(WorkerUp::new(engine.clone())?))?;
        Ok(Self {
            registry: registry.clone(),
            webhook_deliveries,
            webhook_handling,
            queue: QueueGauges::register(registry, heartbeat_interval * MISSED_HEARTBEATS)?,
        })
    }

    /// Counts one webhook delivery. `provider` comes from the URL, so only webhook schemes get
    /// their own label (an attacker cannot grow the label set).
    pub fn webhook_delivery(&self, provider: &str, outcome: &str, handling: Duration) {
        let provider = if WebhookScheme::NAMES.contains(&provider) {
            provider
        } else {
            "unknown"
        };
        self.webhook_deliveries
            .with_label_values(&[provider, outcome])
            .inc();
        self.webhook_handling
            .with_label_values(&[provider])
            .observe(handling.as_secs_f64());
    }

    /// How long a worker counts as alive after its last heartbeat.
    pub fn alive_within(&self) -> Duration {
        self.queue.alive_within
    }

    /// Sets the queue gauges from the engine's figures, read at each scrape.
    pub fn set_queue(&self, stats: &QueueStats) {
        self.queue.ready.set(stats.ready_steps as i64);
        self.queue.oldest_age.set(stats.oldest_ready_age_seconds);
        self.queue.workers_alive.set(stats.workers_alive as i64);
    }

    /// Every registered metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

/// The shared queue as the database sees it, the same from every process: what waits for a
/// worker, for how long, and how many worker processes are alive to take it.
#[derive(Clone)]
struct QueueGauges {
    ready: IntGauge,
    oldest_age: Gauge,
    workers_alive: IntGauge,
    alive_within: Duration,
}

impl QueueGauges {
    fn register(registry: &Registry, alive_within: Duration) -> Result<Self, prometheus::Error> {
        let gauges = Self {
            ready: IntGauge::new(
                "stepwise_queue_ready_steps",
                "Steps due and not yet picked by a worker, across every process.",
            )?,
            oldest_age: Gauge::new(
                "stepwise_queue_oldest_ready_step_age_seconds",
                "How long the oldest step due and not yet picked by a worker has waited; 0 \
                 when none waits.",
            )?,
            workers_alive: IntGauge::new(
                "stepwise_workers_alive",
                "Step worker processes (serve and worker) whose heartbeat is recent, across \
                 every process sharing the database.",
            )?,
            alive_within,
        };
        registry.register(Box::new(gauges.ready.clone()))?;
        registry.register(Box::new(gauges.oldest_age.clone()))?;
        registry.register(Box::new(gauges.workers_alive.clone()))?;
        Ok(gauges)
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
