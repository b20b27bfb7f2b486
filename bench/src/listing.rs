//! The runs list with many runs stored: `--list-runs` runs (default 100,000) are written
//! straight into the `runs` table in bulk (the list reads only that table, and starting them
//! through the engine would take minutes), spread over three workflows, five statuses, four
//! trigger kinds and a day of creation times; then each list query the dashboard and API make is
//! timed through `Engine::list_runs`, the call behind `GET /api/v1/runs`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use stepwise_engine::{Engine, RunFilter, RunStatus};

use crate::db::RawPool;
use crate::scenario::epoch_ms;
use crate::stats::{Summary, summarize};

const STATUSES: [&str; 5] = ["succeeded", "failed", "running", "cancelled", "queued"];
const TRIGGERS: [&str; 4] = ["manual", "webhook", "cron", "workflow"];
const ROWS_PER_INSERT: usize = 500;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// A workflow the seeded runs belong to: (name, workflow id, version id).
pub type SeedWorkflow = (String, String, String);

/// One timed list query.
pub struct ListTiming {
    pub query: String,
    pub latency: Summary,
    pub rows: usize,
}

pub struct Listing {
    pub runs: usize,
    pub seed_seconds: f64,
    pub timings: Vec<ListTiming>,
}

/// Writes `count` runs of `workflows` created over the last day, newest last.
pub async fn seed(
    pool: &RawPool,
    tenant: &str,
    workflows: &[SeedWorkflow],
    count: usize,
) -> Result<f64> {
    let started = Instant::now();
    let now = epoch_ms();
    let mut written = 0;
    while written < count {
        let batch = ROWS_PER_INSERT.min(count - written);
        let mut sql = String::from(
            "INSERT INTO runs (id, tenant_id, workflow_id, workflow_version_id, workflow_name, \
             workflow_version, status, trigger_kind, input, trigger, created_at, started_at, \
             finished_at, retries) VALUES ",
        );
        let mut rows = Vec::with_capacity(batch);
        for n in written..written + batch {
            let created = now - DAY_MS + (n as i64 * DAY_MS) / count.max(1) as i64;
            let (name, workflow_id, version_id) = &workflows[n % workflows.len()];
            let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                (created / 1000) as u64,
                ((created % 1000) * 1_000_000) as u32,
            ));
            let status = STATUSES[(n / 3) % STATUSES.len()];
            let trigger = TRIGGERS[(n / 7) % TRIGGERS.len()];
            rows.push(format!(
                "('{id}', '{tenant}', '{workflow_id}', '{version_id}', '{name}', 1, '{status}', \
                 '{trigger}', '{{}}', '{{}}', {created}, {created}, {finished}, 0)",
                finished = created + 250
            ));
        }
        sql.push_str(&rows.join(", "));
        match pool {
            RawPool::Sqlite(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
            }
            RawPool::Postgres(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
            }
        }
        written += batch;
    }
    if let RawPool::Postgres(pool) = pool {
        sqlx::query("ANALYZE runs").execute(pool).await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Times each list query `repeats` times (bounded by `limit` in total).
pub async fn time_queries(
    engine: &Engine,
    tenant: &str,
    workflow: &str,
    repeats: usize,
    limit: Duration,
) -> Result<Vec<ListTiming>> {
    let deadline = Instant::now() + limit;
    let now = epoch_ms();
    let middle = engine
        .list_runs(tenant, &RunFilter::default(), None, 500)
        .await?
        .items
        .last()
        .map(|run| run.id.clone())
        .context("no runs to page through")?;
    let queries: Vec<(String, RunFilter, Option<String>)> = vec![
        ("first page, no filter".into(), RunFilter::default(), None),
        (
            "page after 500 runs (cursor)".into(),
            RunFilter::default(),
            Some(middle),
        ),
        (
            format!("workflow = {workflow}"),
            RunFilter {
                workflow: Some(workflow.to_owned()),
                ..RunFilter::default()
            },
            None,
        ),
        (
            "status = failed".into(),
            RunFilter {
                status: Some(RunStatus::Failed),
                ..RunFilter::default()
            },
            None,
        ),
        (
            "trigger = cron".into(),
            RunFilter {
                trigger: Some("cron".into()),
                ..RunFilter::default()
            },
            None,
        ),
        (
            "workflow + status = running".into(),
            RunFilter {
                workflow: Some(workflow.to_owned()),
                status: Some(RunStatus::Running),
                ..RunFilter::default()
            },
            None,
        ),
        (
            "created 12-13 h ago".into(),
            RunFilter {
                created_from: Some(now - 13 * 3600 * 1000),
                created_before: Some(now - 12 * 3600 * 1000),
                ..RunFilter::default()
            },
            None,
        ),
    ];
    let mut timings = Vec::new();
    for (query, filter, cursor) in queries {
        let mut samples = Vec::with_capacity(repeats);
        let mut rows = 0;
        for _ in 0..repeats {
            if Instant::now() >= deadline {
                break;
            }
            let started = Instant::now();
            let page = engine
                .list_runs(tenant, &filter, cursor.as_deref(), 50)
                .await?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            rows = page.items.len();
        }
        timings.push(ListTiming {
            query,
            latency: summarize(&samples),
            rows,
        });
    }
    Ok(timings)
}
