//! The baseline: bare durable commits, one single-row INSERT per transaction, through sqlx on
//! the same database and with the same pool settings as the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::db::RawPool;
use crate::stats::{Summary, summarize};

#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub workers: usize,
    pub commits: usize,
    pub per_second: f64,
    /// Latency of one commit transaction (begin, insert, commit), in ms.
    pub latency: Summary,
}

pub async fn prepare(pool: &RawPool) -> Result<()> {
    match pool {
        RawPool::Sqlite(pool) => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_commit (id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, created_at BIGINT NOT NULL)",
            )
            .execute(pool)
            .await?;
        }
        RawPool::Postgres(pool) => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS bench_commit (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, created_at BIGINT NOT NULL)",
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

async fn one_commit(pool: &RawPool, n: usize) -> Result<()> {
    let payload = format!("bench-{n}");
    let now = n as i64;
    match pool {
        RawPool::Sqlite(pool) => {
            // Same transaction mode as the engine's writers.
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query("INSERT INTO bench_commit (payload, created_at) VALUES (?, ?)")
                .bind(payload)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        RawPool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO bench_commit (payload, created_at) VALUES ($1, $2)")
                .bind(payload)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Runs up to `count` commits from `workers` concurrent tasks, stopping at `limit`.
pub async fn run(
    pool: &RawPool,
    count: usize,
    workers: usize,
    limit: Duration,
) -> Result<Baseline> {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let pool = pool.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                one_commit(&pool, n).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Baseline {
        workers: workers.max(1),
        commits: latencies.len(),
        per_second: latencies.len() as f64 / elapsed,
        latency: summarize(&latencies),
    })
}

/// The durability settings the baseline (and the engine) commit under, for the report.
pub async fn settings(pool: &RawPool) -> Result<String> {
    match pool {
        RawPool::Sqlite(pool) => {
            let version: String = sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(pool)
                .await?;
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await?;
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await?;
            let synchronous = match synchronous {
                0 => "OFF",
                1 => "NORMAL",
                2 => "FULL",
                3 => "EXTRA",
                _ => "?",
            };
            Ok(format!(
                "SQLite {version}, journal_mode={journal}, synchronous={synchronous}"
            ))
        }
        RawPool::Postgres(pool) => {
            let version: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(pool)
                .await?;
            let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(pool).await?;
            let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(pool)
                .await?;
            Ok(format!(
                "PostgreSQL {version}, fsync={fsync}, synchronous_commit={synchronous_commit}"
            ))
        }
    }
}
