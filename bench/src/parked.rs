//! Parked runs: how much a run costs while it waits in a 1-hour `core.sleep` or in
//! `core.wait_for_webhook`, in process memory (resident set) and in database rows, and how fast
//! runs park. A parked run holds no worker, so the engine's concurrency does not bound how many
//! can wait.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use stepwise_engine::{Engine, RunFilter, RunStatus, StepStatus};

use crate::db::RawPool;

/// The tables a run writes, as (label, SQLite name, Postgres name).
const TABLES: [(&str, &str, &str); 6] = [
    ("runs", "runs", "runs"),
    ("steps", "steps", "steps"),
    ("step_attempts", "step_attempts", "step_attempts"),
    ("step_outbox", "step_outbox", "step_outbox"),
    ("queue jobs", "Jobs", "apalis.jobs"),
    ("webhook_waits", "webhook_waits", "webhook_waits"),
];

pub const SLEEP_WORKFLOW: &str = "bench-parked-sleep";
pub const WEBHOOK_WORKFLOW: &str = "bench-parked-webhook";

pub fn sleep_yaml() -> String {
    format!(
        "name: {SLEEP_WORKFLOW}\nsteps:\n  - {{ id: nap, uses: core.sleep, with: {{ duration: 1h }} }}\n"
    )
}

pub fn webhook_yaml() -> String {
    format!(
        "name: {WEBHOOK_WORKFLOW}\ninputs:\n  n: {{ type: integer }}\nsteps:\n  - id: hook\n    uses: core.wait_for_webhook\n    with: {{ source: bench, events: [order.paid], match: {{ body.order: \"${{{{ inputs.n }}}}\" }}, timeout: 1h }}\n"
    )
}

/// One workflow's parked runs.
pub struct Parked {
    pub workflow: &'static str,
    pub runs: usize,
    pub parked: usize,
    pub park_seconds: f64,
    /// Resident set growth per parked run, in bytes.
    pub rss_per_run: f64,
    /// Rows added per parked run, per table (label, rows).
    pub rows_per_run: Vec<(&'static str, f64)>,
}

/// Starts `runs` runs of `workflow` (input from `input(n)`), waits (bounded by `limit`) until
/// every one's first step is `waiting`, and measures what they added.
pub async fn park(
    engine: &Engine,
    pool: &RawPool,
    tenant: &str,
    workflow: &'static str,
    runs: usize,
    input: impl Fn(usize) -> Value,
    limit: Duration,
) -> Result<Parked> {
    let rows_before = count_rows(pool).await?;
    let rss_before = resident_bytes()?;
    let started = Instant::now();
    let deadline = started + limit;
    let mut ids = Vec::with_capacity(runs);
    for n in 0..runs {
        if Instant::now() >= deadline {
            break;
        }
        ids.push(
            engine
                .start_run(tenant, workflow, input(n), "manual", Value::Null)
                .await?,
        );
    }
    let mut parked = 0;
    for id in &ids {
        loop {
            let run = engine
                .get_run(tenant, id)
                .await?
                .context("a started run is missing")?;
            if run.steps.first().map(|step| step.status) == Some(StepStatus::Waiting) {
                parked += 1;
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let park_seconds = started.elapsed().as_secs_f64();
    let filter = RunFilter {
        workflow: Some(workflow.to_owned()),
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    anyhow::ensure!(
        !engine
            .list_runs(tenant, &filter, None, 1)
            .await?
            .items
            .is_empty()
            || ids.is_empty(),
        "parked runs of {workflow} are not running"
    );
    let rss_after = resident_bytes()?;
    let rows_after = count_rows(pool).await?;
    let count = ids.len().max(1) as f64;
    Ok(Parked {
        workflow,
        runs: ids.len(),
        parked,
        park_seconds,
        rss_per_run: rss_after.saturating_sub(rss_before) as f64 / count,
        rows_per_run: rows_before
            .iter()
            .zip(&rows_after)
            .map(|((label, before), (_, after))| (*label, (after - before) as f64 / count))
            .collect(),
    })
}

pub fn webhook_input(n: usize) -> Value {
    json!({ "n": n })
}

async fn count_rows(pool: &RawPool) -> Result<Vec<(&'static str, i64)>> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for (label, sqlite, postgres) in TABLES {
        let count: i64 = match pool {
            RawPool::Sqlite(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {sqlite}"
                )))
                .fetch_one(pool)
                .await?
            }
            RawPool::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {postgres}"
                )))
                .fetch_one(pool)
                .await?
            }
        };
        counts.push((label, count));
    }
    Ok(counts)
}

/// This process's resident set size, from /proc/self/status (Linux).
fn resident_bytes() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .context("VmRSS not in /proc/self/status")?;
    Ok(kib * 1024)
}
