//! Retention of history that would otherwise grow without bound: accepted webhook deliveries
//! (their rows are what deduplicates redeliveries, so they must outlive every provider's
//! redelivery window: 7 days by default), cron fire rows (30 days) and integration health
//! minutes (8 days: the dashboard shows at most a day). Rejected deliveries are
//! bounded on write instead (the newest 100 per source). A pass deletes in batches, one short
//! write transaction each, so it never holds SQLite's write lock for long; the runtime's
//! sweeper runs one a minute after start and then hourly.

use std::time::Duration;

use crate::engine::{Engine, EngineInner};
use crate::error::EngineError;
use crate::store::{health, schedules, webhooks};

/// Rows deleted per transaction.
const BATCH: u64 = 1000;

/// How long history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Accepted webhook deliveries (a redelivery after this is accepted again).
    pub deliveries: Duration,
    /// Cron fire rows (fired, skipped or failed slots; queued ones are kept).
    pub fires: Duration,
    /// Integration health minutes.
    pub integration_health: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            deliveries: Duration::from_secs(7 * 24 * 3600),
            fires: Duration::from_secs(30 * 24 * 3600),
            integration_health: Duration::from_secs(8 * 24 * 3600),
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub fires: u64,
    pub health_minutes: u64,
}

fn cutoff(now_ms: i64, keep: Duration) -> i64 {
    now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
}

impl Engine {
    /// Deletes history older than `retention` as of `now_ms` (epoch ms; the runtime passes
    /// the clock's time, tests their own).
    pub async fn prune_history(
        &self,
        now_ms: i64,
        retention: &Retention,
    ) -> Result<Pruned, EngineError> {
        self.inner.prune_history(now_ms, retention).await
    }
}

impl EngineInner {
    pub(crate) async fn prune_history(
        &self,
        now_ms: i64,
        retention: &Retention,
    ) -> Result<Pruned, EngineError> {
        let mut pruned = Pruned::default();
        let before = cutoff(now_ms, retention.deliveries);
        loop {
            let deleted = webhooks::prune_deliveries(&self.db.conn, before, BATCH).await?;
            pruned.deliveries += deleted;
            if deleted < BATCH {
                break;
            }
        }
        let before = cutoff(now_ms, retention.fires);
        loop {
            let deleted = schedules::prune_fires(&self.db.conn, before, BATCH).await?;
            pruned.fires += deleted;
            if deleted < BATCH {
                break;
            }
        }
        let before = cutoff(now_ms, retention.integration_health);
        pruned.health_minutes = health::prune(&self.db.conn, before).await?;
        Ok(pruned)
    }
}
