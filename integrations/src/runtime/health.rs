//! Integration health in memory: per tenant, integration and minute, what the runtime saw
//! (requests by outcome, a latency histogram, rate-limit waits, circuit transitions) and what
//! the engine's token manager did (refreshes). The hot path only touches this memory: a shard
//! chosen by (tenant, integration) behind its own mutex, so calls of different integrations
//! rarely contend. The engine drains it periodically into its database, where buckets of
//! several processes add up.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::circuit::CircuitState;
use super::metrics::{Outcome, RuntimeMetrics};

/// Upper bounds (inclusive, milliseconds) of the latency buckets; one more bucket holds the
/// slower requests. Fixed, so buckets of any minutes and processes can be summed.
pub const LATENCY_BOUNDS_MS: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// The number of latency buckets: one per bound and the overflow bucket.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

const MINUTE_MS: i64 = 60_000;

const SHARDS: usize = 16;

/// What one (tenant, integration, minute) saw. Every field is a count or a sum, so two
/// instances of the same key combine with [`HealthCounts::add`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    pub ok: u64,
    pub client_error: u64,
    pub rate_limited: u64,
    pub server_error: u64,
    pub timeout: u64,
    pub connection_error: u64,
    pub circuit_open: u64,
    /// Requests by latency bucket (see [`LATENCY_BOUNDS_MS`]); calls refused before sending
    /// have no latency.
    pub latency: [u64; LATENCY_BUCKETS],
    pub latency_total_ms: u64,
    pub refreshes_ok: u64,
    pub refreshes_failed: u64,
    /// Requests delayed or parked by the rate-limit scheduler, and their total wait.
    pub rate_limit_waits: u64,
    pub rate_limit_wait_ms: u64,
    pub circuit_opened: u64,
    pub circuit_closed: u64,
}

impl HealthCounts {
    pub fn add(&mut self, other: &Self) {
        self.ok += other.ok;
        self.client_error += other.client_error;
        self.rate_limited += other.rate_limited;
        self.server_error += other.server_error;
        self.timeout += other.timeout;
        self.connection_error += other.connection_error;
        self.circuit_open += other.circuit_open;
        for (sum, add) in self.latency.iter_mut().zip(other.latency) {
            *sum += add;
        }
        self.latency_total_ms += other.latency_total_ms;
        self.refreshes_ok += other.refreshes_ok;
        self.refreshes_failed += other.refreshes_failed;
        self.rate_limit_waits += other.rate_limit_waits;
        self.rate_limit_wait_ms += other.rate_limit_wait_ms;
        self.circuit_opened += other.circuit_opened;
        self.circuit_closed += other.circuit_closed;
    }

    /// Requests of every outcome, calls refused before sending included.
    pub fn requests(&self) -> u64 {
        self.ok
            + self.client_error
            + self.rate_limited
            + self.server_error
            + self.timeout
            + self.connection_error
            + self.circuit_open
    }

    fn outcome_mut(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Success => &mut self.ok,
            // The Health page keeps its classes; Prometheus tells refused credentials apart.
            Outcome::AuthError | Outcome::ClientError => &mut self.client_error,
            Outcome::RateLimited => &mut self.rate_limited,
            Outcome::ServerError => &mut self.server_error,
            Outcome::Timeout => &mut self.timeout,
            Outcome::ConnectionError => &mut self.connection_error,
            Outcome::CircuitOpen => &mut self.circuit_open,
        }
    }

    /// The latency below which a fraction `quantile` of the measured requests fall, in
    /// milliseconds, interpolated linearly inside its bucket (as Prometheus'
    /// `histogram_quantile`); the overflow bucket answers with the highest bound. `None`
    /// without measured requests.
    pub fn latency_quantile_ms(&self, quantile: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = quantile.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (index, &count) in self.latency.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = LATENCY_BOUNDS_MS.get(index) else {
                    return Some(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] as f64);
                };
                let lower = index
                    .checked_sub(1)
                    .map_or(0, |previous| LATENCY_BOUNDS_MS[previous]);
                let within = (rank - below as f64) / count as f64;
                return Some(lower as f64 + (upper - lower) as f64 * within);
            }
            below += count;
        }
        Some(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] as f64)
    }
}

fn latency_bucket(latency: Duration) -> usize {
    let ms = latency.as_millis();
    LATENCY_BOUNDS_MS
        .iter()
        .position(|&bound| ms <= u128::from(bound))
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// Which counts a [`HealthCounts`] belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HealthKey {
    pub tenant_id: String,
    pub integration: String,
    /// The minute's start, epoch milliseconds.
    pub minute_ms: i64,
}

/// The start of the minute of `at`, epoch milliseconds.
pub fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(MINUTE_MS) * MINUTE_MS
}

/// tenant → integration → minute → counts: lookups borrow the caller's strings, so a call
/// allocates only for a new tenant, integration or minute.
type Shard = HashMap<String, HashMap<String, BTreeMap<i64, HealthCounts>>>;

/// The in-memory aggregation shared by a runtime's clones (and the engine's token manager).
pub struct HealthRecorder {
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
    /// Where token refreshes are counted for Prometheus too: the token manager reports them
    /// only here.
    metrics: Option<RuntimeMetrics>,
}

impl Default for HealthRecorder {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::default()),
            metrics: None,
        }
    }
}

impl std::fmt::Debug for HealthRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRecorder").finish_non_exhaustive()
    }
}

impl HealthRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that also counts token refreshes in the runtime's `metrics`.
    pub(crate) fn with_metrics(metrics: RuntimeMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::default()
        }
    }

    /// One request (or a call refused before sending, without `latency`).
    pub fn request(
        &self,
        tenant_id: &str,
        integration: &str,
        at: DateTime<Utc>,
        outcome: Outcome,
        latency: Option<Duration>,
    ) {
        self.change(tenant_id, integration, at, |counts| {
            *counts.outcome_mut(outcome) += 1;
            if let Some(latency) = latency {
                counts.latency[latency_bucket(latency)] += 1;
                counts.latency_total_ms += latency.as_millis() as u64;
            }
        });
    }

    /// A request the rate-limit scheduler delayed or parked for `wait`.
    pub fn rate_limit_wait(
        &self,
        tenant_id: &str,
        integration: &str,
        at: DateTime<Utc>,
        wait: Duration,
    ) {
        self.change(tenant_id, integration, at, |counts| {
            counts.rate_limit_waits += 1;
            counts.rate_limit_wait_ms += wait.as_millis() as u64;
        });
    }

    /// A circuit of the integration entered `to` (half-open is not counted: it always leads
    /// to open or closed).
    pub fn circuit_changed(
        &self,
        tenant_id: &str,
        integration: &str,
        at: DateTime<Utc>,
        to: CircuitState,
    ) {
        self.change(tenant_id, integration, at, |counts| match to {
            CircuitState::Open => counts.circuit_opened += 1,
            CircuitState::Closed => counts.circuit_closed += 1,
            CircuitState::HalfOpen => {}
        });
    }

    /// A token refresh of one of the tenant's connections to `integration`.
    pub fn token_refresh(
        &self,
        tenant_id: &str,
        integration: &str,
        at: DateTime<Utc>,
        succeeded: bool,
    ) {
        if let Some(metrics) = &self.metrics {
            metrics.token_refresh(integration, succeeded);
        }
        self.change(tenant_id, integration, at, |counts| {
            if succeeded {
                counts.refreshes_ok += 1;
            } else {
                counts.refreshes_failed += 1;
            }
        });
    }

    /// Takes everything recorded so far, in key order (so writers touch rows in one order).
    pub fn drain(&self) -> Vec<(HealthKey, HealthCounts)> {
        let mut drained = Vec::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *lock(shard));
            for (tenant_id, integrations) in taken {
                for (integration, minutes) in integrations {
                    for (minute_ms, counts) in minutes {
                        let key = HealthKey {
                            tenant_id: tenant_id.clone(),
                            integration: integration.clone(),
                            minute_ms,
                        };
                        drained.push((key, counts));
                    }
                }
            }
        }
        drained.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        drained
    }

    /// A copy of the tenant's counts not drained yet.
    pub fn pending(&self, tenant_id: &str) -> Vec<(HealthKey, HealthCounts)> {
        let mut pending = Vec::new();
        for shard in &self.shards {
            let shard = lock(shard);
            let Some(integrations) = shard.get(tenant_id) else {
                continue;
            };
            for (integration, minutes) in integrations {
                for (&minute_ms, counts) in minutes {
                    let key = HealthKey {
                        tenant_id: tenant_id.to_owned(),
                        integration: integration.clone(),
                        minute_ms,
                    };
                    pending.push((key, *counts));
                }
            }
        }
        pending
    }

    /// Adds drained counts back (their write failed), so the next flush writes them.
    pub fn restore(&self, drained: Vec<(HealthKey, HealthCounts)>) {
        for (key, counts) in drained {
            let mut shard = lock(self.shard(&key.tenant_id, &key.integration));
            shard
                .entry(key.tenant_id)
                .or_default()
                .entry(key.integration)
                .or_default()
                .entry(key.minute_ms)
                .or_default()
                .add(&counts);
        }
    }

    fn shard(&self, tenant_id: &str, integration: &str) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one((tenant_id, integration));
        &self.shards[hash as usize % SHARDS]
    }

    fn change(
        &self,
        tenant_id: &str,
        integration: &str,
        at: DateTime<Utc>,
        change: impl FnOnce(&mut HealthCounts),
    ) {
        let minute = minute_of(at);
        let mut shard = lock(self.shard(tenant_id, integration));
        if !shard.contains_key(tenant_id) {
            shard.insert(tenant_id.to_owned(), HashMap::new());
        }
        let integrations = shard
            .get_mut(tenant_id)
            .expect("the tenant's map was just inserted");
        if !integrations.contains_key(integration) {
            integrations.insert(integration.to_owned(), BTreeMap::new());
        }
        let minutes = integrations
            .get_mut(integration)
            .expect("the integration's map was just inserted");
        change(minutes.entry(minute).or_default());
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("valid time")
    }

    /// The token manager reports refreshes only to the recorder; the runtime's recorder
    /// counts them for Prometheus as well.
    #[test]
    fn the_runtime_recorder_counts_refreshes_in_prometheus() {
        let registry = prometheus::Registry::new();
        let recorder = HealthRecorder::with_metrics(RuntimeMetrics::register(&registry).unwrap());
        recorder.token_refresh("t1", "slack", at(60_000), true);
        recorder.token_refresh("t1", "slack", at(60_000), false);
        recorder.token_refresh("t2", "slack", at(60_000), false);
        let refreshes = registry
            .gather()
            .into_iter()
            .find(|family| family.name() == "stepwise_integration_token_refreshes_total")
            .expect("registered");
        let mut counts: Vec<(String, f64)> = refreshes
            .get_metric()
            .iter()
            .map(|metric| {
                let outcome = metric
                    .get_label()
                    .iter()
                    .find(|label| label.name() == "outcome")
                    .map(|label| label.value().to_owned())
                    .unwrap_or_default();
                (outcome, metric.get_counter().get_value())
            })
            .collect();
        counts.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(counts, [("failed".to_owned(), 2.0), ("ok".to_owned(), 1.0)]);
        assert_eq!(
            recorder.drain()[0].1.refreshes_failed,
            1,
            "still in the health counts"
        );
    }

    #[test]
    fn counts_land_in_their_minute_and_drain_empties_the_recorder() {
        let recorder = HealthRecorder::new();
        let ms = Some(Duration::from_millis(40));
        recorder.request("t1", "slack", at(60_000), Outcome::Success, ms);
        recorder.request("t1", "slack", at(119_999), Outcome::ServerError, ms);
        recorder.request("t1", "slack", at(120_000), Outcome::CircuitOpen, None);
        recorder.request("t2", "slack", at(60_000), Outcome::RateLimited, ms);
        recorder.rate_limit_wait("t1", "slack", at(60_500), Duration::from_millis(1500));
        recorder.token_refresh("t1", "slack", at(60_500), false);

        let drained = recorder.drain();
        let keys: Vec<_> = drained
            .iter()
            .map(|(key, _)| (key.tenant_id.as_str(), key.minute_ms))
            .collect();
        assert_eq!(keys, [("t1", 60_000), ("t1", 120_000), ("t2", 60_000)]);
        let first = drained[0].1;
        assert_eq!((first.ok, first.server_error, first.requests()), (1, 1, 2));
        assert_eq!(first.latency[2], 2, "40 ms falls in the 25-50 ms bucket");
        assert_eq!(
            (first.rate_limit_waits, first.rate_limit_wait_ms),
            (1, 1500)
        );
        assert_eq!(first.refreshes_failed, 1);
        assert_eq!(drained[1].1.circuit_open, 1);
        assert_eq!(drained[1].1.latency.iter().sum::<u64>(), 0);
        assert!(recorder.drain().is_empty());
        assert!(recorder.pending("t1").is_empty());

        recorder.restore(drained.clone());
        recorder.request("t1", "slack", at(60_001), Outcome::Success, None);
        assert_eq!(recorder.pending("t1").len(), 2);
        assert_eq!(recorder.pending("t2").len(), 1);
        let again = recorder.drain();
        assert_eq!(again.len(), 3);
        assert_eq!(again[0].1.ok, 2);
    }

    #[test]
    fn p95_interpolates_inside_the_bucket_it_falls_in() {
        let mut counts = HealthCounts::default();
        assert_eq!(counts.latency_quantile_ms(0.95), None);
        // 90 fast requests (<= 10 ms) and 10 in the 100-250 ms bucket: the 95th is the 5th
        // of those 10, half-way through the bucket.
        counts.latency[0] = 90;
        counts.latency[4] = 10;
        assert_eq!(counts.latency_quantile_ms(0.95), Some(175.0));
        assert_eq!(counts.latency_quantile_ms(0.5), Some(10.0 * 50.0 / 90.0));
        counts.latency[LATENCY_BUCKETS - 1] = 1000;
        assert_eq!(counts.latency_quantile_ms(0.95), Some(10_000.0));
    }
}
