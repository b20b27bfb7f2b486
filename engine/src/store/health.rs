//! Integration health rows: one per (tenant, integration, minute), counts and sums only.
//! Every process adds its drained in-memory counts with one upsert per row
//! (`ON CONFLICT ... DO UPDATE SET c = c + excluded.c`, the same statement on SQLite and
//! Postgres), so rows written by several processes sum up.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult};
use stepwise_integrations::runtime::health::{HealthCounts, HealthKey, LATENCY_BUCKETS};

use crate::db::begin_write;
use crate::error::EngineError;

const TABLE: &str = "integration_health";

const KEY_COLUMNS: [&str; 3] = ["tenant_id", "integration", "minute_ms"];

/// The count columns in the order of [`to_columns`] and [`from_columns`].
const COUNT_COLUMNS: [&str; 25] = [
    "ok",
    "client_error",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "circuit_open",
    "latency_le_10ms",
    "latency_le_25ms",
    "latency_le_50ms",
    "latency_le_100ms",
    "latency_le_250ms",
    "latency_le_500ms",
    "latency_le_1000ms",
    "latency_le_2500ms",
    "latency_le_5000ms",
    "latency_le_10000ms",
    "latency_over_10000ms",
    "latency_total_ms",
    "refreshes_ok",
    "refreshes_failed",
    "rate_limit_waits",
    "rate_limit_wait_ms",
    "circuit_opened",
    "circuit_closed",
];

/// Rows per insert statement (28 bound values each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 200;

/// The index of the first latency bucket column in [`COUNT_COLUMNS`].
const LATENCY_START: usize = 7;

fn to_columns(counts: &HealthCounts) -> [u64; COUNT_COLUMNS.len()] {
    let mut values = [0; COUNT_COLUMNS.len()];
    values[..LATENCY_START].copy_from_slice(&[
        counts.ok,
        counts.client_error,
        counts.rate_limited,
        counts.server_error,
        counts.timeout,
        counts.connection_error,
        counts.circuit_open,
    ]);
    values[LATENCY_START..LATENCY_START + LATENCY_BUCKETS].copy_from_slice(&counts.latency);
    values[LATENCY_START + LATENCY_BUCKETS..].copy_from_slice(&[
        counts.latency_total_ms,
        counts.refreshes_ok,
        counts.refreshes_failed,
        counts.rate_limit_waits,
        counts.rate_limit_wait_ms,
        counts.circuit_opened,
        counts.circuit_closed,
    ]);
    values
}

fn from_columns(values: [u64; COUNT_COLUMNS.len()]) -> HealthCounts {
    let tail = &values[LATENCY_START + LATENCY_BUCKETS..];
    let mut latency = [0; LATENCY_BUCKETS];
    latency.copy_from_slice(&values[LATENCY_START..LATENCY_START + LATENCY_BUCKETS]);
    HealthCounts {
        ok: values[0],
        client_error: values[1],
        rate_limited: values[2],
        server_error: values[3],
        timeout: values[4],
        connection_error: values[5],
        circuit_open: values[6],
        latency,
        latency_total_ms: tail[0],
        refreshes_ok: tail[1],
        refreshes_failed: tail[2],
        rate_limit_waits: tail[3],
        rate_limit_wait_ms: tail[4],
        circuit_opened: tail[5],
        circuit_closed: tail[6],
    }
}

/// Adds `rows` to the stored counts in one write transaction. Callers pass the rows sorted
/// by key (as [`HealthRecorder::drain`] returns them), so concurrent writers lock rows in one
/// order and cannot deadlock.
///
/// [`HealthRecorder::drain`]: stepwise_integrations::runtime::health::HealthRecorder::drain
pub async fn add(
    db: &DatabaseConnection,
    rows: &[(HealthKey, HealthCounts)],
) -> Result<(), EngineError> {
    if rows.is_empty() {
        return Ok(());
    }
    let table = Alias::new(TABLE);
    let mut conflict = OnConflict::columns(KEY_COLUMNS.map(Alias::new));
    conflict.values(COUNT_COLUMNS.map(|column| {
        (
            Alias::new(column),
            Expr::col((table.clone(), Alias::new(column)))
                .add(Expr::cust(format!("excluded.{column}"))),
        )
    }));
    let tx = begin_write(db).await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = Query::insert();
        insert
            .into_table(table.clone())
            .columns(KEY_COLUMNS.into_iter().chain(COUNT_COLUMNS).map(Alias::new))
            .on_conflict(conflict.clone());
        for (key, counts) in chunk {
            let mut values: Vec<Expr> = vec![
                key.tenant_id.clone().into(),
                key.integration.clone().into(),
                key.minute_ms.into(),
            ];
            values.extend(
                to_columns(counts)
                    .map(|count| Expr::from(i64::try_from(count).unwrap_or(i64::MAX))),
            );
            insert.values_panic(values);
        }
        tx.execute(&insert).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    pub integration: String,
    pub minute_ms: i64,
    pub counts: HealthCounts,
}

/// The tenant's rows of minutes in `[from_ms, to_ms)`, by integration and minute.
pub async fn read(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<HealthRow>, EngineError> {
    let query = Query::select()
        .columns(
            KEY_COLUMNS[1..]
                .iter()
                .chain(&COUNT_COLUMNS)
                .map(|c| Alias::new(*c)),
        )
        .from(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant_id))
        .and_where(Expr::col(Alias::new("minute_ms")).gte(from_ms))
        .and_where(Expr::col(Alias::new("minute_ms")).lt(to_ms))
        .order_by(Alias::new("integration"), sea_orm::Order::Asc)
        .order_by(Alias::new("minute_ms"), sea_orm::Order::Asc)
        .to_owned();
    db.query_all(&query).await?.iter().map(health_row).collect()
}

fn health_row(row: &QueryResult) -> Result<HealthRow, EngineError> {
    let mut values = [0u64; COUNT_COLUMNS.len()];
    for (index, value) in values.iter_mut().enumerate() {
        let stored: i64 = row.try_get_by_index(index + 2)?;
        *value = u64::try_from(stored).unwrap_or_default();
    }
    Ok(HealthRow {
        integration: row.try_get_by_index(0)?,
        minute_ms: row.try_get_by_index(1)?,
        counts: from_columns(values),
    })
}

/// Deletes rows of minutes before `before` (epoch ms), an hour of minutes per transaction
/// so SQLite's write lock is held briefly; returns how many.
pub async fn prune(db: &DatabaseConnection, before: i64) -> Result<u64, EngineError> {
    const HOUR_MS: i64 = 3_600_000;
    let minute = || Expr::col(Alias::new("minute_ms"));
    let mut deleted = 0;
    loop {
        let oldest = Query::select()
            .expr(minute().min())
            .from(Alias::new(TABLE))
            .and_where(minute().lt(before))
            .to_owned();
        let Some(row) = db.query_one(&oldest).await? else {
            break;
        };
        let Some(oldest): Option<i64> = row.try_get_by_index(0)? else {
            break;
        };
        let until = std::cmp::min(before, oldest.saturating_add(HOUR_MS));
        let tx = begin_write(db).await?;
        let delete = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(minute().lt(until))
            .to_owned();
        deleted += tx.execute(&delete).await?.rows_affected();
        tx.commit().await?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_count_survives_the_columns_round_trip() {
        let mut counts = HealthCounts {
            ok: 1,
            client_error: 2,
            rate_limited: 3,
            server_error: 4,
            timeout: 5,
            connection_error: 6,
            circuit_open: 7,
            latency: [0; LATENCY_BUCKETS],
            latency_total_ms: 8,
            refreshes_ok: 9,
            refreshes_failed: 10,
            rate_limit_waits: 11,
            rate_limit_wait_ms: 12,
            circuit_opened: 13,
            circuit_closed: 14,
        };
        for (index, bucket) in counts.latency.iter_mut().enumerate() {
            *bucket = 100 + index as u64;
        }
        let columns = to_columns(&counts);
        assert_eq!(columns[LATENCY_START], 100);
        assert_eq!(columns[COUNT_COLUMNS.len() - 1], 14);
        assert_eq!(from_columns(columns), counts);
    }
}
