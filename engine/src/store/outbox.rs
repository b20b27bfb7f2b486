//! The step outbox: rows written in the same transaction as the state change that makes a step
//! ready, then relayed into the apalis queue. The relay pushes the tasks and deletes the rows in
//! one sqlx transaction, so each row becomes exactly one task (guarantee 2 of ARCHITECTURE.md); the
//! task's idempotency key `{run}:{step}:{dispatch}` makes a re-push after a lost commit a no-op.
//!
//! A row may be *held* (`held_by`): the worker that wrote it claimed its step in the same
//! commit and executes it at once (eager dispatch). The relay skips held rows; the commit of
//! the step's result deletes its row; if the holder dies, the sweeper releases the row once
//! the holder has missed its heartbeats, and the step goes through the queue like any other
//! (at least once, as for a task whose worker died).

use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::entities::step_outbox;
use super::now_ms;
use crate::db::Pool;
use crate::error::EngineError;

/// The queue name every Stepwise worker consumes.
pub const QUEUE: &str = "stepwise-steps";

/// How many outbox rows one relay transaction moves.
const RELAY_BATCH: i64 = 512;

/// The payload of an apalis task: run step `step_id` of `run_id`, dispatch number `dispatch`.
/// A step is dispatched again for each retry; a task whose dispatch is stale does nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTask {
    pub run_id: String,
    pub step_id: String,
    pub dispatch: i32,
}

impl StepTask {
    pub(crate) fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.run_id, self.step_id, self.dispatch)
    }
}

/// A task claimed in the commit that makes it ready, and the worker executing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub task: StepTask,
    pub worker: String,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    tasks: &[(StepTask, i64)],
) -> Result<(), EngineError> {
    insert_holding(db, tasks, None).await
}

/// Inserts the outbox rows of `tasks`; the row of `held`'s task (one of `tasks`) is held by
/// its worker.
pub async fn insert_holding(
    db: &impl ConnectionTrait,
    tasks: &[(StepTask, i64)],
    held: Option<&Held>,
) -> Result<(), EngineError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    // Well under SQLite's limit of bound parameters per statement.
    for chunk in tasks.chunks(1000) {
        let rows = chunk
            .iter()
            .map(|(task, available_at)| step_outbox::ActiveModel {
                run_id: Set(task.run_id.clone()),
                step_id: Set(task.step_id.clone()),
                dispatch: Set(task.dispatch),
                available_at: Set(*available_at),
                created_at: Set(now),
                held_by: Set(held
                    .filter(|held| held.task == *task)
                    .map(|held| held.worker.clone())),
                ..Default::default()
            });
        step_outbox::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Deletes the held row of `task`, in the transaction that commits the step's result.
pub async fn delete_held(db: &impl ConnectionTrait, task: &StepTask) -> Result<(), EngineError> {
    step_outbox::Entity::delete_many()
        .filter(step_outbox::Column::RunId.eq(&task.run_id))
        .filter(step_outbox::Column::StepId.eq(&task.step_id))
        .filter(step_outbox::Column::Dispatch.eq(task.dispatch))
        .filter(step_outbox::Column::HeldBy.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Lets the relay have the held row of `task`: its holder could not finish the step.
pub async fn release_held(db: &impl ConnectionTrait, task: &StepTask) -> Result<(), EngineError> {
    step_outbox::Entity::update_many()
        .col_expr(step_outbox::Column::HeldBy, Expr::cust("NULL"))
        .filter(step_outbox::Column::RunId.eq(&task.run_id))
        .filter(step_outbox::Column::StepId.eq(&task.step_id))
        .filter(step_outbox::Column::Dispatch.eq(task.dispatch))
        .exec(db)
        .await?;
    Ok(())
}

/// Releases the rows held by workers that have not beaten for `orphaned_after` (or are gone):
/// their steps go through the queue. Returns how many.
pub(crate) async fn release_orphaned_holds(
    pool: &Pool,
    orphaned_after: Duration,
) -> Result<u64, EngineError> {
    // The queue's heartbeats are whole seconds; rounding up never takes a live worker's step.
    let seconds = orphaned_after.as_millis().div_ceil(1000) as i64;
    let released = match pool {
        Pool::Sqlite(pool) => sqlx::query(
            "UPDATE step_outbox SET held_by = NULL WHERE held_by IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM Workers WHERE Workers.id = step_outbox.held_by \
              AND strftime('%s', 'now') - Workers.last_seen < ?)",
        )
        .bind(seconds)
        .execute(pool)
        .await?
        .rows_affected(),
        Pool::Postgres(pool) => sqlx::query(
            "UPDATE step_outbox SET held_by = NULL WHERE held_by IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM apalis.workers w WHERE w.id = step_outbox.held_by \
              AND NOW() - w.last_seen < make_interval(secs => $1))",
        )
        .bind(seconds as f64)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(released)
}

type ApalisTask = apalis_core::task::Task<Vec<u8>>;

fn to_apalis_task(task: &StepTask, available_at_ms: i64) -> Result<ApalisTask, EngineError> {
    // apalis schedules in whole seconds: a due task gets the current second (rounding up
    // would delay it by up to a second), a future one rounds up so it never starts early.
    let available_at_ms = available_at_ms.max(0) as u64;
    let run_at = if available_at_ms as i64 <= now_ms() {
        available_at_ms / 1000
    } else {
        available_at_ms.div_ceil(1000)
    };
    Ok(
        apalis_core::task::builder::TaskBuilder::new(serde_json::to_vec(task)?)
            .idempotency_key(task.idempotency_key())
            .run_at_timestamp(run_at)
            .build(),
    )
}

/// Reads outbox rows into their ids and the queue tasks they become.
fn parse_rows<R: Row>(rows: &[R]) -> Result<(Vec<i64>, Vec<ApalisTask>), EngineError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let mut ids = Vec::with_capacity(rows.len());
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.try_get("id")?);
        let task = StepTask {
            run_id: row.try_get("run_id")?,
            step_id: row.try_get("step_id")?,
            dispatch: row.try_get("dispatch")?,
        };
        tasks.push(to_apalis_task(&task, row.try_get("available_at")?)?);
    }
    Ok((ids, tasks))
}

/// Moves one batch of outbox rows into the queue; returns how many it moved.
pub(crate) async fn relay(pool: &Pool) -> Result<usize, EngineError> {
    match pool {
        Pool::Sqlite(pool) => {
            // IMMEDIATE takes the write lock up front: a deferred transaction that reads first
            // could not upgrade to a writer once another connection has committed.
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let rows = sqlx::query(
                "SELECT id, run_id, step_id, dispatch, available_at FROM step_outbox WHERE held_by IS NULL ORDER BY id LIMIT ?",
            )
            .bind(RELAY_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let (ids, tasks) = parse_rows(&rows)?;
            apalis_sqlite::queries::push_tasks(&mut *tx, QUEUE, &tasks)
                .await
                .map_err(|error| EngineError::Queue(error.to_string()))?;
            let placeholders = vec!["?"; ids.len()].join(",");
            let delete = format!("DELETE FROM step_outbox WHERE id IN ({placeholders})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(delete));
            for id in &ids {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
            tx.commit().await?;
            crate::crash_point("relay.after_commit");
            Ok(ids.len())
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            // SKIP LOCKED lets relays of several processes work side by side without pushing
            // the same row twice.
            let rows = sqlx::query(
                "SELECT id, run_id, step_id, dispatch, available_at FROM step_outbox WHERE held_by IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(RELAY_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let (ids, tasks) = parse_rows(&rows)?;
            apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, tasks)
                .await
                .map_err(|error| EngineError::Queue(error.to_string()))?;
            sqlx::query("DELETE FROM step_outbox WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            crate::crash_point("relay.after_commit");
            Ok(ids.len())
        }
    }
}

/// Deletes finished queue tasks older than `older_than_secs`. Run state lives in our tables;
/// a finished task is only the record that a step execution was delivered, so the queue table
/// would otherwise grow by one row per step execution forever.
pub(crate) async fn purge_finished(pool: &Pool, older_than_secs: i64) -> Result<u64, EngineError> {
    let cutoff = chrono::Utc::now().timestamp() - older_than_secs;
    let deleted = match pool {
        Pool::Sqlite(pool) => sqlx::query(
            "DELETE FROM Jobs WHERE job_type = ? AND status IN ('Done', 'Killed') AND done_at < ?",
        )
        .bind(QUEUE)
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected(),
        Pool::Postgres(pool) => sqlx::query(
            "DELETE FROM apalis.jobs WHERE job_type = $1 AND status IN ('Done', 'Killed') AND done_at < to_timestamp($2)",
        )
        .bind(QUEUE)
        .bind(cutoff as f64)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(deleted)
}

/// Puts the tasks of workers whose last heartbeat is at least `orphaned_after` old back in
/// the queue (apalis' own query, the one its heartbeats run); returns how many.
pub(crate) async fn reenqueue_orphaned(
    pool: &Pool,
    orphaned_after: Duration,
) -> Result<u64, EngineError> {
    // apalis compares whole seconds; rounding up never takes a live worker's tasks early.
    let seconds = orphaned_after.as_millis().div_ceil(1000) as u64;
    match pool {
        Pool::Sqlite(pool) => apalis_sqlite::queries::reenqueue_orphaned(
            pool,
            seconds as i64,
            QUEUE,
            &apalis_core::backend::WorkerFilter::None,
        )
        .await
        .map_err(EngineError::from),
        Pool::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            apalis_postgres::queries::reenqueue_orphaned(&mut *conn, QUEUE, seconds)
                .await
                .map_err(|error| EngineError::Queue(error.to_string()))
        }
    }
}

/// Puts the unfinished tasks locked to `worker` (a stopped generation of this process'
/// worker, whose handlers are gone) back in the queue, and releases the outbox rows it held;
/// returns how many tasks and rows.
pub(crate) async fn release_worker_tasks(pool: &Pool, worker: &str) -> Result<u64, EngineError> {
    let released = match pool {
        Pool::Sqlite(pool) => {
            sqlx::query(
                "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
                 WHERE lock_by = ? AND status IN ('Queued', 'Running')",
            )
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
                + sqlx::query("UPDATE step_outbox SET held_by = NULL WHERE held_by = ?")
                    .bind(worker)
                    .execute(pool)
                    .await?
                    .rows_affected()
        }
        Pool::Postgres(pool) => {
            sqlx::query(
                "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
                 WHERE lock_by = $1 AND status IN ('Queued', 'Running')",
            )
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
                + sqlx::query("UPDATE step_outbox SET held_by = NULL WHERE held_by = $1")
                    .bind(worker)
                    .execute(pool)
                    .await?
                    .rows_affected()
        }
    };
    Ok(released)
}

/// Puts the tasks locked to `worker` back in the queue, except those whose idempotency keys
/// are in `running` (steps it is executing): a draining worker hands back at once what it
/// fetched but has not started. Returns how many.
pub(crate) async fn release_unstarted(
    pool: &Pool,
    worker: &str,
    running: &[String],
) -> Result<u64, EngineError> {
    let released = match pool {
        Pool::Sqlite(pool) => sqlx::query(
            "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
             WHERE lock_by = ? AND status IN ('Queued', 'Running') \
             AND idempotency_key NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(worker)
        .bind(serde_json::to_string(running)?)
        .execute(pool)
        .await?
        .rows_affected(),
        Pool::Postgres(pool) => sqlx::query(
            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
             WHERE lock_by = $1 AND status IN ('Queued', 'Running') \
             AND NOT (idempotency_key = ANY($2))",
        )
        .bind(worker)
        .bind(running)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(released)
}

/// What waits to be executed, shared by every process: [`crate::Engine::queue_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueStats {
    /// Steps due and not yet picked by a worker: queue tasks waiting for a worker and outbox
    /// rows waiting for the relay.
    pub ready_steps: u64,
    /// How long the oldest of them has been due, in seconds; 0 when none is.
    pub oldest_ready_age_seconds: f64,
    /// Step worker processes whose heartbeat is younger than the `alive_within` asked for.
    pub workers_alive: u64,
}

/// How many steps wait somewhere, and the oldest one's due time in epoch milliseconds.
type Waiting = (i64, Option<i64>);

/// Reads [`QueueStats`]: three indexed aggregates, cheap enough for every scrape.
pub(crate) async fn queue_stats(
    pool: &Pool,
    alive_within: Duration,
) -> Result<QueueStats, EngineError> {
    let now = now_ms();
    let alive_seconds = alive_within.as_millis().div_ceil(1000) as i64;
    let (tasks, outbox, workers_alive): (Waiting, Waiting, i64) = match pool {
        Pool::Sqlite(pool) => (
            sqlx::query_as(
                "SELECT COUNT(*), MIN(run_at) * 1000 FROM Jobs \
                 WHERE job_type = ? AND status = 'Pending' AND run_at <= ?",
            )
            .bind(QUEUE)
            .bind(now / 1000)
            .fetch_one(pool)
            .await?,
            sqlx::query_as(
                "SELECT COUNT(*), MIN(available_at) FROM step_outbox \
                 WHERE held_by IS NULL AND available_at <= ?",
            )
            .bind(now)
            .fetch_one(pool)
            .await?,
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM Workers \
                 WHERE worker_type = ? AND strftime('%s', 'now') - last_seen < ?",
            )
            .bind(QUEUE)
            .bind(alive_seconds)
            .fetch_one(pool)
            .await?,
        ),
        Pool::Postgres(pool) => (
            sqlx::query_as(
                "SELECT COUNT(*), (EXTRACT(EPOCH FROM MIN(run_at)) * 1000)::int8 FROM apalis.jobs \
                 WHERE job_type = $1 AND status = 'Pending' AND run_at <= NOW()",
            )
            .bind(QUEUE)
            .fetch_one(pool)
            .await?,
            sqlx::query_as(
                "SELECT COUNT(*), MIN(available_at) FROM step_outbox \
                 WHERE held_by IS NULL AND available_at <= $1",
            )
            .bind(now)
            .fetch_one(pool)
            .await?,
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM apalis.workers \
                 WHERE worker_type = $1 AND NOW() - last_seen < make_interval(secs => $2)",
            )
            .bind(QUEUE)
            .bind(alive_seconds as f64)
            .fetch_one(pool)
            .await?,
        ),
    };
    let oldest = [tasks.1, outbox.1].into_iter().flatten().min();
    Ok(QueueStats {
        ready_steps: (tasks.0 + outbox.0).max(0) as u64,
        oldest_ready_age_seconds: oldest.map_or(0.0, |due| (now - due).max(0) as f64 / 1000.0),
        workers_alive: workers_alive.max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Database;

    async fn count(pool: &Pool) -> i64 {
        match pool {
            Pool::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM Jobs")
                .fetch_one(pool)
                .await
                .unwrap(),
            Pool::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs")
                .fetch_one(pool)
                .await
                .unwrap(),
        }
    }

    /// Pushes one task through the outbox and marks it done long ago, one recent.
    async fn purges_only_old_finished_tasks(db: Database) {
        db.migrate().await.unwrap();
        let task = |step: &str| {
            (
                StepTask {
                    run_id: "r".into(),
                    step_id: step.into(),
                    dispatch: 1,
                },
                now_ms(),
            )
        };
        insert(&db.conn, &[task("old"), task("new"), task("pending")])
            .await
            .unwrap();
        assert_eq!(relay(&db.pool).await.unwrap(), 3);
        let old = chrono::Utc::now().timestamp() - 3600;
        let mark = |key: &str, done_at: i64| {
            let key = key.to_owned();
            let pool = db.pool.clone();
            async move {
                match pool {
                    Pool::Sqlite(pool) => sqlx::query(
                        "UPDATE Jobs SET status = 'Done', done_at = ? WHERE idempotency_key = ?",
                    )
                    .bind(done_at)
                    .bind(key)
                    .execute(&pool)
                    .await
                    .map(drop)
                    .unwrap(),
                    Pool::Postgres(pool) => sqlx::query(
                        "UPDATE apalis.jobs SET status = 'Done', done_at = to_timestamp($1) WHERE idempotency_key = $2",
                    )
                    .bind(done_at as f64)
                    .bind(key)
                    .execute(&pool)
                    .await
                    .map(drop)
                    .unwrap(),
                };
            }
        };
        mark("r:old:1", old).await;
        mark("r:new:1", chrono::Utc::now().timestamp()).await;
        assert_eq!(purge_finished(&db.pool, 600).await.unwrap(), 1);
        assert_eq!(count(&db.pool).await, 2);
    }

    /// A worker row of the queue, last seen `seconds_ago`.
    async fn register_worker(pool: &Pool, worker: &str, seconds_ago: i64) {
        let last_seen = chrono::Utc::now().timestamp() - seconds_ago;
        match pool {
            Pool::Sqlite(pool) => sqlx::query(
                "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen) VALUES (?, ?, 'test', '', ?)",
            )
            .bind(worker)
            .bind(QUEUE)
            .bind(last_seen)
            .execute(pool)
            .await
            .map(drop)
            .unwrap(),
            Pool::Postgres(pool) => sqlx::query(
                "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) VALUES ($1, $2, 'test', '', to_timestamp($3))",
            )
            .bind(worker)
            .bind(QUEUE)
            .bind(last_seen as f64)
            .execute(pool)
            .await
            .map(drop)
            .unwrap(),
        }
    }

    /// Held rows are not relayed while their worker beats; those of a worker that missed its
    /// heartbeats (or has no row) are released and relayed; a committed step deletes its own.
    async fn held_rows_wait_for_their_worker(db: Database) {
        db.migrate().await.unwrap();
        let task = |step: &str| StepTask {
            run_id: "r".into(),
            step_id: step.into(),
            dispatch: 1,
        };
        register_worker(&db.pool, "alive", 0).await;
        register_worker(&db.pool, "silent", 60).await;
        for (step, worker) in [
            ("alive", Some("alive")),
            ("silent", Some("silent")),
            ("ghost", Some("ghost")),
            ("free", None),
        ] {
            let held = worker.map(|worker| Held {
                task: task(step),
                worker: worker.into(),
            });
            insert_holding(&db.conn, &[(task(step), now_ms())], held.as_ref())
                .await
                .unwrap();
        }
        assert_eq!(relay(&db.pool).await.unwrap(), 1, "only the free row");
        let orphaned_after = Duration::from_secs(10);
        assert_eq!(
            release_orphaned_holds(&db.pool, orphaned_after)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            relay(&db.pool).await.unwrap(),
            2,
            "the silent and the ghost worker's rows"
        );
        delete_held(&db.conn, &task("alive")).await.unwrap();
        assert_eq!(
            release_orphaned_holds(&db.pool, orphaned_after)
                .await
                .unwrap(),
            0
        );
        assert_eq!(relay(&db.pool).await.unwrap(), 0);
        assert_eq!(count(&db.pool).await, 3);
    }

    /// A draining worker hands back the tasks locked to it that it has not started, and
    /// keeps those it is executing.
    async fn releases_only_unstarted_tasks(db: Database) {
        db.migrate().await.unwrap();
        let tasks: Vec<_> = ["running", "buffered", "other"]
            .into_iter()
            .map(|step| {
                let task = StepTask {
                    run_id: "r".into(),
                    step_id: step.into(),
                    dispatch: 1,
                };
                (task, now_ms())
            })
            .collect();
        insert(&db.conn, &tasks).await.unwrap();
        assert_eq!(relay(&db.pool).await.unwrap(), 3);
        let lock = |key: &str, worker: &str| {
            let (key, worker, pool) = (key.to_owned(), worker.to_owned(), db.pool.clone());
            async move {
                match pool {
                    Pool::Sqlite(pool) => sqlx::query(
                        "UPDATE Jobs SET status = 'Queued', lock_by = ? WHERE idempotency_key = ?",
                    )
                    .bind(worker)
                    .bind(key)
                    .execute(&pool)
                    .await
                    .map(drop)
                    .unwrap(),
                    Pool::Postgres(pool) => sqlx::query(
                        "UPDATE apalis.jobs SET status = 'Queued', lock_by = $1 WHERE idempotency_key = $2",
                    )
                    .bind(worker)
                    .bind(key)
                    .execute(&pool)
                    .await
                    .map(drop)
                    .unwrap(),
                }
            }
        };
        register_worker(&db.pool, "draining", 0).await;
        register_worker(&db.pool, "another", 0).await;
        lock("r:running:1", "draining").await;
        lock("r:buffered:1", "draining").await;
        lock("r:other:1", "another").await;
        let running = vec!["r:running:1".to_owned()];
        assert_eq!(
            release_unstarted(&db.pool, "draining", &running)
                .await
                .unwrap(),
            1,
            "only the buffered task"
        );
        assert_eq!(
            release_unstarted(&db.pool, "draining", &running)
                .await
                .unwrap(),
            0
        );
        assert_eq!(release_worker_tasks(&db.pool, "draining").await.unwrap(), 1);
    }

    /// Due steps are counted whether they wait in the outbox or in the queue, held and
    /// future ones are not; the oldest's age is from when it became due.
    async fn counts_ready_steps_and_live_workers(db: Database) {
        db.migrate().await.unwrap();
        let task = |step: &str| StepTask {
            run_id: "r".into(),
            step_id: step.into(),
            dispatch: 1,
        };
        let due = now_ms() - 5_000;
        insert(
            &db.conn,
            &[(task("due"), due), (task("later"), now_ms() + 600_000)],
        )
        .await
        .unwrap();
        let held = Held {
            task: task("held"),
            worker: "alive".into(),
        };
        insert_holding(&db.conn, &[(task("held"), due)], Some(&held))
            .await
            .unwrap();
        register_worker(&db.pool, "alive", 0).await;
        register_worker(&db.pool, "silent", 60).await;
        let alive_within = Duration::from_secs(10);
        let stats = queue_stats(&db.pool, alive_within).await.unwrap();
        assert_eq!(
            (stats.ready_steps, stats.workers_alive),
            (1, 1),
            "{stats:?}"
        );
        assert!(
            (4.0..60.0).contains(&stats.oldest_ready_age_seconds),
            "{stats:?}"
        );
        assert_eq!(relay(&db.pool).await.unwrap(), 2);
        let stats = queue_stats(&db.pool, alive_within).await.unwrap();
        assert_eq!(
            stats.ready_steps, 1,
            "the queue task, not the future one: {stats:?}"
        );
        assert!(
            (4.0..60.0).contains(&stats.oldest_ready_age_seconds),
            "{stats:?}"
        );
    }

    async fn sqlite() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("q.db").display());
        let db = Database::connect(&url).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn purge_on_sqlite() {
        let (_dir, db) = sqlite().await;
        purges_only_old_finished_tasks(db).await;
    }

    #[tokio::test]
    async fn held_rows_on_sqlite() {
        let (_dir, db) = sqlite().await;
        held_rows_wait_for_their_worker(db).await;
    }

    #[tokio::test]
    async fn release_unstarted_on_sqlite() {
        let (_dir, db) = sqlite().await;
        releases_only_unstarted_tasks(db).await;
    }

    #[tokio::test]
    async fn release_unstarted_on_postgres() {
        on_postgres(releases_only_unstarted_tasks).await;
    }

    #[tokio::test]
    async fn queue_stats_on_sqlite() {
        let (_dir, db) = sqlite().await;
        counts_ready_steps_and_live_workers(db).await;
    }

    #[tokio::test]
    async fn queue_stats_on_postgres() {
        on_postgres(counts_ready_steps_and_live_workers).await;
    }

    #[tokio::test]
    async fn held_rows_on_postgres() {
        on_postgres(held_rows_wait_for_their_worker).await;
    }

    #[tokio::test]
    async fn purge_on_postgres() {
        on_postgres(purges_only_old_finished_tasks).await;
    }

    /// Runs `test` on a fresh Postgres database, dropped afterwards.
    async fn on_postgres<F: std::future::Future<Output = ()>>(test: impl FnOnce(Database) -> F) {
        let admin = std::env::var("STEPWISE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let Ok(pool) = sqlx::PgPool::connect(&admin).await else {
            assert!(
                std::env::var("CI").map_or(true, |ci| ci != "true"),
                "CI=true but Postgres is unreachable"
            );
            eprintln!("skipping Postgres: {admin} is unreachable");
            return;
        };
        let name = format!("stepwise_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let db = Database::connect(&format!("{base}/{name}")).await.unwrap();
        test(db.clone()).await;
        db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
}
