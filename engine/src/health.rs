//! Integration health over time (issue 6). The integration runtime counts every call in
//! memory per tenant, integration and minute ([`HealthRecorder`]; the token manager adds its
//! refreshes); the runtime's flusher task drains those counts into `integration_health` every
//! [`FLUSH_INTERVAL`] and at shutdown, adding them to the rows other processes write
//! (`store/health.rs`). [`Engine::integration_health`] reads a window back as totals and a
//! series of points per integration, with each circuit's live state in this process.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stepwise_integrations::runtime::circuit::CircuitState;
use stepwise_integrations::runtime::health::{HealthCounts, HealthRecorder};

use crate::engine::{Engine, EngineInner};
use crate::error::EngineError;
use crate::store::health::{self, HealthRow};

/// How often a process writes its counts.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

const MINUTE_MS: i64 = 60_000;

/// The span a health report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum HealthWindow {
    /// The last hour, a point per minute.
    #[serde(rename = "1h")]
    Hour,
    /// The last 24 hours, a point per 15 minutes.
    #[serde(rename = "24h")]
    Day,
}

impl HealthWindow {
    fn span_ms(self) -> i64 {
        match self {
            Self::Hour => 60 * MINUTE_MS,
            Self::Day => 24 * 60 * MINUTE_MS,
        }
    }

    fn step_ms(self) -> i64 {
        match self {
            Self::Hour => MINUTE_MS,
            Self::Day => 15 * MINUTE_MS,
        }
    }
}

/// Integration health of one tenant over a window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub window: HealthWindow,
    /// The window's start (inclusive) and end (exclusive), epoch milliseconds; the last point
    /// is the current, unfinished one.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The span of one point.
    pub step_ms: i64,
    /// Integrations with calls in the window or a circuit in this process, by name.
    pub integrations: Vec<IntegrationHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IntegrationHealth {
    pub integration: String,
    /// The circuit's state in this process now (`closed`, `half_open` or `open`; the worst
    /// host's for plain `http`); `closed` when no call has made one.
    pub circuit: String,
    pub totals: HealthTotals,
    /// One point per step of the window, oldest first, empty steps included.
    pub points: Vec<HealthPoint>,
}

/// Requests by outcome class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub client_error: u64,
    pub rate_limited: u64,
    pub server_error: u64,
    pub timeout: u64,
    pub connection_error: u64,
    /// Refused before sending by an open circuit.
    pub circuit_open: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthTotals {
    /// Every request, calls refused before sending included.
    pub requests: u64,
    pub outcomes: OutcomeCounts,
    /// `ok / requests`; `null` without requests.
    pub success_rate: Option<f64>,
    /// `(requests - ok) / requests`; `null` without requests.
    pub error_rate: Option<f64>,
    /// Estimated from a histogram (linear within its bucket); `null` without measured
    /// requests.
    pub p95_latency_ms: Option<f64>,
    pub token_refreshes_ok: u64,
    pub token_refreshes_failed: u64,
    /// Requests the rate-limit scheduler delayed or parked, and how long they waited in all.
    pub rate_limit_waits: u64,
    pub rate_limit_wait_ms: u64,
    /// Circuit transitions to open and back to closed.
    pub circuit_opened: u64,
    pub circuit_closed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthPoint {
    /// The step's start, epoch milliseconds.
    pub at_ms: i64,
    pub requests: u64,
    pub outcomes: OutcomeCounts,
    pub p95_latency_ms: Option<f64>,
}

fn outcomes(counts: &HealthCounts) -> OutcomeCounts {
    OutcomeCounts {
        ok: counts.ok,
        client_error: counts.client_error,
        rate_limited: counts.rate_limited,
        server_error: counts.server_error,
        timeout: counts.timeout,
        connection_error: counts.connection_error,
        circuit_open: counts.circuit_open,
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn totals(counts: &HealthCounts) -> HealthTotals {
    let requests = counts.requests();
    HealthTotals {
        requests,
        outcomes: outcomes(counts),
        success_rate: ratio(counts.ok, requests),
        error_rate: ratio(requests - counts.ok, requests),
        p95_latency_ms: counts.latency_quantile_ms(0.95),
        token_refreshes_ok: counts.refreshes_ok,
        token_refreshes_failed: counts.refreshes_failed,
        rate_limit_waits: counts.rate_limit_waits,
        rate_limit_wait_ms: counts.rate_limit_wait_ms,
        circuit_opened: counts.circuit_opened,
        circuit_closed: counts.circuit_closed,
    }
}

/// Folds minute rows into the report of `window` ending with the step that holds `now_ms`.
/// Pure, so the bucketing is tested without a database.
pub fn report(
    window: HealthWindow,
    now_ms: i64,
    rows: impl IntoIterator<Item = HealthRow>,
    circuits: &BTreeMap<String, CircuitState>,
) -> HealthReport {
    let step = window.step_ms();
    let to_ms = (now_ms.div_euclid(step) + 1) * step;
    let from_ms = to_ms - window.span_ms();
    let steps = usize::try_from(window.span_ms() / step).unwrap_or_default();
    let mut series: BTreeMap<String, Vec<HealthCounts>> = circuits
        .keys()
        .map(|name| (name.clone(), vec![HealthCounts::default(); steps]))
        .collect();
    for row in rows {
        if row.minute_ms < from_ms || row.minute_ms >= to_ms {
            continue;
        }
        let index = usize::try_from((row.minute_ms - from_ms) / step).unwrap_or_default();
        series
            .entry(row.integration)
            .or_insert_with(|| vec![HealthCounts::default(); steps])[index]
            .add(&row.counts);
    }
    let integrations = series
        .into_iter()
        .map(|(integration, points)| {
            let mut sum = HealthCounts::default();
            for point in &points {
                sum.add(point);
            }
            IntegrationHealth {
                circuit: circuits
                    .get(&integration)
                    .copied()
                    .unwrap_or(CircuitState::Closed)
                    .as_str()
                    .to_owned(),
                totals: totals(&sum),
                points: points
                    .iter()
                    .zip((0..).map(|index| from_ms + index * step))
                    .map(|(counts, at_ms)| HealthPoint {
                        at_ms,
                        requests: counts.requests(),
                        outcomes: outcomes(counts),
                        p95_latency_ms: counts.latency_quantile_ms(0.95),
                    })
                    .collect(),
                integration,
            }
        })
        .collect();
    HealthReport {
        window,
        from_ms,
        to_ms,
        step_ms: step,
        integrations,
    }
}

impl Engine {
    /// The tenant's integration health over `window` as of `now_ms` (epoch ms): what every
    /// process has flushed, plus this process' counts not written yet, plus the live circuit
    /// states of this process.
    pub async fn integration_health(
        &self,
        tenant_id: &str,
        window: HealthWindow,
        now_ms: i64,
    ) -> Result<HealthReport, EngineError> {
        let runtime = &self.inner.services.runtime;
        let step = window.step_ms();
        let to_ms = (now_ms.div_euclid(step) + 1) * step;
        let from_ms = to_ms - window.span_ms();
        let mut rows = health::read(&self.inner.db.conn, tenant_id, from_ms, to_ms).await?;
        rows.extend(
            runtime
                .health()
                .pending(tenant_id)
                .into_iter()
                .map(|(key, counts)| HealthRow {
                    integration: key.integration,
                    minute_ms: key.minute_ms,
                    counts,
                }),
        );
        let circuits = runtime.circuit_states(tenant_id).into_iter().collect();
        Ok(report(window, now_ms, rows, &circuits))
    }

    /// Writes this process' health counts now (the runtime does every [`FLUSH_INTERVAL`] and
    /// at shutdown); returns how many rows were added to.
    pub async fn flush_integration_health(&self) -> Result<usize, EngineError> {
        self.inner.flush_integration_health().await
    }

    /// The in-memory health counts of this engine's integration runtime.
    pub fn health_recorder(&self) -> &HealthRecorder {
        self.inner.services.runtime.health()
    }
}

impl EngineInner {
    pub(crate) async fn flush_integration_health(&self) -> Result<usize, EngineError> {
        let recorder = self.services.runtime.health();
        let drained = recorder.drain();
        match health::add(&self.db.conn, &drained).await {
            Ok(()) => Ok(drained.len()),
            Err(error) => {
                // Kept for the next flush: counts are lost only if the process dies first.
                recorder.restore(drained);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use stepwise_integrations::runtime::health::LATENCY_BUCKETS;

    use super::*;

    fn row(integration: &str, minute_ms: i64, ok: u64, server_error: u64) -> HealthRow {
        let mut latency = [0; LATENCY_BUCKETS];
        latency[0] = ok + server_error;
        HealthRow {
            integration: integration.to_owned(),
            minute_ms,
            counts: HealthCounts {
                ok,
                server_error,
                latency,
                ..HealthCounts::default()
            },
        }
    }

    #[test]
    fn a_day_folds_minutes_into_quarter_hours_and_drops_rows_outside() {
        let quarter = 15 * MINUTE_MS;
        // 10:07 on some day: the window ends at 10:15 and starts 24 hours earlier.
        let day_start = 1_800_000_000_000 / (24 * 60 * MINUTE_MS) * (24 * 60 * MINUTE_MS);
        let now = day_start + 10 * 60 * MINUTE_MS + 7 * MINUTE_MS;
        let end = day_start + 10 * 60 * MINUTE_MS + quarter;
        let rows = vec![
            row("slack", end - quarter, 3, 1),
            row("slack", end - quarter + 14 * MINUTE_MS, 1, 0),
            row("slack", end - 2 * quarter, 2, 0),
            row("slack", end - 24 * 60 * MINUTE_MS - MINUTE_MS, 50, 50),
        ];
        let circuits = BTreeMap::from([("github".to_owned(), CircuitState::Open)]);
        let report = report(HealthWindow::Day, now, rows, &circuits);
        assert_eq!((report.from_ms, report.to_ms), (end - 96 * quarter, end));
        let names: Vec<_> = report.integrations.iter().map(|i| &i.integration).collect();
        assert_eq!(names, ["github", "slack"]);
        let github = &report.integrations[0];
        assert_eq!(
            (github.circuit.as_str(), github.totals.requests),
            ("open", 0)
        );
        assert_eq!(github.totals.success_rate, None);
        let slack = &report.integrations[1];
        assert_eq!(slack.circuit, "closed");
        assert_eq!(slack.points.len(), 96);
        assert_eq!(slack.points[95].at_ms, end - quarter);
        assert_eq!(slack.points[95].requests, 5);
        assert_eq!(slack.points[94].outcomes.ok, 2);
        assert_eq!(slack.totals.requests, 7);
        assert_eq!(slack.totals.success_rate, Some(6.0 / 7.0));
        assert_eq!(slack.totals.outcomes.server_error, 1);
        assert_eq!(slack.totals.p95_latency_ms, Some(10.0 * 0.95));
    }

    #[test]
    fn an_hour_has_a_point_per_minute_ending_with_the_current_one() {
        let now = 1_800_000_000_000 + 30_000;
        let minute = now / MINUTE_MS * MINUTE_MS;
        let report = report(
            HealthWindow::Hour,
            now,
            vec![
                row("http", minute, 1, 1),
                row("http", minute - 59 * MINUTE_MS, 4, 0),
            ],
            &BTreeMap::new(),
        );
        let http = &report.integrations[0];
        assert_eq!(http.points.len(), 60);
        assert_eq!(http.points[0].outcomes.ok, 4);
        assert_eq!(http.points[59].at_ms, minute);
        assert_eq!(http.totals.error_rate, Some(1.0 / 6.0));
    }
}
