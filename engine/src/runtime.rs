//! The background machinery of a process: apalis workers that execute step tasks, the outbox
//! relay that feeds them, the sweeper that enforces run deadlines, the cron scheduler, and the
//! flusher that writes integration health counts.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use apalis_core::backend::ext::BackendExt;
use apalis_core::backend::ext::poll_strategy::Strategy;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::Pool;
use crate::engine::{Engine, EngineInner};
use crate::health::FLUSH_INTERVAL;
use crate::retention::Retention;
use crate::status::RunStatus;
use crate::store::outbox::{self, QUEUE, StepTask};
use crate::store::runs;

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Steps this process executes at once.
    pub concurrency: usize,
    /// Fallback poll interval of the queue (delayed tasks, work committed by other processes
    /// when no notification arrives).
    pub poll_interval: Duration,
    /// How often workers report liveness. The queue hands a dead worker's tasks to another
    /// worker after two missed heartbeats, so this bounds how long a crash delays a step.
    pub heartbeat_interval: Duration,
    /// How often this process fires due cron slots; `None` fires none (tests that drive
    /// [`Engine::fire_due_schedules`] with their own clock).
    pub scheduler_interval: Option<Duration>,
    /// How long accepted webhook deliveries and cron fire rows are kept.
    pub retention: Retention,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll_interval: Duration::from_millis(200),
            heartbeat_interval: Duration::from_secs(5),
            scheduler_interval: Some(Duration::from_millis(250)),
            retention: Retention::default(),
        }
    }
}

/// The running background tasks; stop them with [`Runtime::shutdown`].
pub struct Runtime {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Stops fetching new tasks and waits for the running ones to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn handle_step(task: StepTask, engine: Data<Arc<EngineInner>>) -> Result<(), BoxDynError> {
    engine.handle_task(task).await.map_err(|error| {
        tracing::warn!(message = "Step task failed; the queue will deliver it again.", %error);
        BoxDynError::from(error)
    })
}

impl Engine {
    /// Starts workers, the outbox relay, the deadline sweeper, the cron scheduler and the
    /// integration health flusher.
    pub fn start(&self, options: RuntimeOptions) -> Runtime {
        let shutdown = CancellationToken::new();
        let mut tasks = vec![
            tokio::spawn(relay_loop(self.inner.clone(), shutdown.clone())),
            tokio::spawn(sweeper_loop(
                self.inner.clone(),
                options.retention,
                shutdown.clone(),
            )),
            spawn_worker(self.inner.clone(), &options, shutdown.clone()),
            tokio::spawn(health_flush_loop(self.inner.clone(), shutdown.clone())),
        ];
        if let Some(interval) = options.scheduler_interval {
            tasks.push(tokio::spawn(scheduler_loop(
                self.inner.clone(),
                interval,
                shutdown.clone(),
            )));
        }
        Runtime { shutdown, tasks }
    }
}

fn spawn_worker(
    inner: Arc<EngineInner>,
    options: &RuntimeOptions,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let (wake_sender, wake_receiver) = futures::channel::mpsc::channel::<()>(1);
    inner
        .worker_wakeups
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(wake_sender);
    let strategy = Strategy::new()
        .stream(wake_receiver)
        .interval(options.poll_interval);
    let name = inner.worker_name.clone();
    let concurrency = options.concurrency.max(1);
    let heartbeat_interval = options.heartbeat_interval;
    let stop = async move {
        shutdown.cancelled().await;
        Ok::<(), std::io::Error>(())
    };
    // The two backends' config and storage types differ but are built the same way; a macro
    // keeps one copy of that shape without naming apalis' deeply generic types.
    macro_rules! spawn_on {
        ($backend:ident, $storage:ident, $pool:expr, $strategy:expr) => {{
            let config = $backend::Config::default()
                .queue(QUEUE)
                .batch_size(concurrency)
                .heartbeat_interval(heartbeat_interval)
                // Claiming a step in our tables is the lock that matters; apalis' own
                // "running" mark would cost one more write per step.
                .lock_tasks(false);
            let storage = $backend::$storage::<StepTask>::new($pool)
                .with_config(config)
                .poll_with_strategy($strategy);
            let worker = WorkerBuilder::new(name)
                .backend(storage)
                .data(inner)
                .concurrency(concurrency)
                .build(handle_step);
            tokio::spawn(async move {
                if let Err(error) = worker.run_until(stop).await {
                    tracing::error!(message = "Worker stopped.", %error);
                }
            })
        }};
    }
    match inner.db.pool.clone() {
        Pool::Sqlite(pool) => spawn_on!(apalis_sqlite, SqliteStorage, &pool, strategy),
        Pool::Postgres(pool) => {
            // LISTEN/NOTIFY wakes this worker when another process enqueues.
            let strategy =
                strategy.stream(apalis_postgres::Pubsub::new(pool.clone(), QUEUE.into()));
            spawn_on!(apalis_postgres, PostgresStorage, &pool, strategy)
        }
    }
}

async fn relay_loop(inner: Arc<EngineInner>, shutdown: CancellationToken) {
    loop {
        loop {
            match outbox::relay(&inner.db.pool).await {
                Ok(0) => break,
                Ok(_) => inner.wake_workers(),
                Err(error) => {
                    tracing::warn!(message = "Outbox relay failed; retrying.", %error);
                    break;
                }
            }
        }
        tokio::select! {
            () = inner.relay_wakeup.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Finished queue tasks are kept this long (for inspection), then deleted.
const FINISHED_TASK_RETENTION_SECS: i64 = 600;

/// Seconds between retention passes (the first runs a minute after start).
const RETENTION_PERIOD_SECS: u64 = 3600;

async fn sweeper_loop(inner: Arc<EngineInner>, retention: Retention, shutdown: CancellationToken) {
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
        ticks += 1;
        if ticks.is_multiple_of(60)
            && let Err(error) =
                outbox::purge_finished(&inner.db.pool, FINISHED_TASK_RETENTION_SECS).await
        {
            tracing::warn!(message = "Purging finished queue tasks failed.", %error);
        }
        if ticks % RETENTION_PERIOD_SECS == 60 {
            match inner
                .prune_history(crate::store::now_ms(), &retention)
                .await
            {
                Ok(pruned) => tracing::debug!(
                    message = "Retention pass.",
                    deliveries = pruned.deliveries,
                    fires = pruned.fires,
                    health_minutes = pruned.health_minutes,
                ),
                Err(error) => tracing::warn!(message = "Retention pass failed.", %error),
            }
        }
        match runs::overdue(&inner.db.conn).await {
            Ok(overdue) => {
                for run_id in overdue {
                    let ended = inner
                        .end_run(&run_id, None, RunStatus::Failed, "run timed out")
                        .await;
                    if let Err(error) = ended {
                        tracing::warn!(message = "Ending an overdue run failed.", run_id, %error);
                    }
                }
            }
            Err(error) => tracing::warn!(message = "Deadline sweep failed.", %error),
        }
    }
}

/// Fires due cron slots every `interval`. Every process runs this loop; the claim in
/// `store::schedules` makes each slot fire once however many do.
async fn scheduler_loop(inner: Arc<EngineInner>, interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    // After a stall, one pass catches up (per each schedule's policy); a burst would not.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = inner.scheduler_pass(crate::store::now_ms()).await {
            tracing::warn!(message = "Cron scheduler pass failed; retrying next tick.", %error);
        }
    }
}

/// Writes this process' integration health counts every [`FLUSH_INTERVAL`], and once more at
/// shutdown so the last seconds are not lost. A failed write keeps the counts for the next.
async fn health_flush_loop(inner: Arc<EngineInner>, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(FLUSH_INTERVAL) => false,
            () = shutdown.cancelled() => true,
        };
        if let Err(error) = inner.flush_integration_health().await {
            tracing::warn!(message = "Writing integration health counts failed; retrying next flush.", %error);
        }
        if stopping {
            return;
        }
    }
}
