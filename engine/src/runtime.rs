//! The background machinery of a process: apalis workers that execute step tasks, the outbox
//! relay that feeds them, the sweeper that enforces run deadlines and hands a dead worker's
//! tasks on, the cron scheduler, and the flusher that writes integration health counts.
//!
//! Every loop survives database errors: the relay, sweeper, scheduler and flusher log and try
//! again on their next tick; the step worker, which apalis stops on its first backend error,
//! is restarted by a supervisor with capped exponential backoff, and its state is published
//! ([`Engine::worker_status`]).
//!
//! Shutdown drains ([`Runtime::shutdown`]): nothing new is claimed, in-flight steps get
//! [`RuntimeOptions::shutdown_grace`] to finish, and whatever is left is handed back to the
//! queue at once instead of after missed heartbeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{
    BoxDynError, Data, Event, EventListenerExt, WorkerBuilder, WorkerBuilderExt, WorkerContext,
    WorkerError,
};
use apalis_core::backend::ext::BackendExt;
use apalis_core::backend::ext::poll_strategy::Strategy;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::Pool;
use crate::engine::{Engine, EngineInner};
use crate::executor::Slot;
use crate::health::FLUSH_INTERVAL;
use crate::retention::Retention;
use crate::status::RunStatus;
use crate::store::outbox::{self, QUEUE, StepTask};
use crate::store::{now_ms, runs};

/// Heartbeats a worker may miss before its tasks are handed to another worker.
pub const MISSED_HEARTBEATS: u32 = 2;

/// First wait before restarting a stopped step worker; doubled per consecutive failure.
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(200);

/// Longest wait between restarts. A worker that ran at least this long before failing
/// starts over from [`RESTART_BACKOFF_MIN`].
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Steps this process executes at once.
    pub concurrency: usize,
    /// Fallback poll interval of the queue (delayed tasks, work committed by other processes
    /// when no notification arrives).
    pub poll_interval: Duration,
    /// How often workers report liveness (at least 1 s). A worker silent for
    /// [`MISSED_HEARTBEATS`] intervals counts as dead: the sweeper of any live process hands
    /// its tasks on within a second, so this bounds how long a crash delays a step. Every
    /// process sharing a database must use the same value.
    pub heartbeat_interval: Duration,
    /// How often this process fires due cron slots; `None` fires none (tests that drive
    /// [`Engine::fire_due_schedules`] with their own clock).
    pub scheduler_interval: Option<Duration>,
    /// How long accepted webhook deliveries and cron fire rows are kept.
    pub retention: Retention,
    /// How long [`Runtime::shutdown`] lets in-flight steps finish before handing them to
    /// other processes.
    pub shutdown_grace: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll_interval: Duration::from_millis(200),
            heartbeat_interval: Duration::from_secs(5),
            scheduler_interval: Some(Duration::from_millis(250)),
            retention: Retention::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Default of [`RuntimeOptions::shutdown_grace`]: Kubernetes' default termination grace
/// period, so a pod's in-flight steps finish before it is killed.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Whether this process' step worker is fetching tasks: [`Engine::worker_status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    pub state: WorkerState,
    /// Times the worker was restarted after an error since the process started.
    pub restarts: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WorkerState {
    /// No runtime was started in this process.
    #[default]
    NotStarted,
    /// Fetching and executing steps.
    Up,
    /// Stopped by an error; restarted after a backoff, and up again once it has registered
    /// with the queue.
    Down {
        /// The error that stopped the last attempt (a database driver message).
        error: String,
        /// Consecutive failed attempts.
        failures: u32,
        /// When the worker went down, epoch milliseconds.
        since_ms: i64,
    },
    /// Stopped by [`Runtime::shutdown`].
    Stopped,
}

impl WorkerStatus {
    pub fn is_up(&self) -> bool {
        self.state == WorkerState::Up
    }
}

/// The running background tasks; stop them with [`Runtime::shutdown`].
pub struct Runtime {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Stopped after the step worker has drained, so the health counts of the last steps are
    /// written too.
    flush_shutdown: CancellationToken,
    flusher: JoinHandle<()>,
}

impl Runtime {
    /// Drains the process: the relay, sweeper and scheduler stop, the step worker fetches
    /// nothing more and hands back at once the tasks it fetched but has not started, and its
    /// in-flight steps get [`RuntimeOptions::shutdown_grace`] to finish (their successors are
    /// not claimed here). Steps still running then are abandoned and released at once, so
    /// another process runs them again (same idempotency key) without waiting for this one's
    /// heartbeats to be missed. Integration health counts are written last.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.flush_shutdown.cancel();
        let _ = self.flusher.await;
    }
}

/// The step tasks one worker generation is executing. Once it drains, it starts no other,
/// so every other task locked to it can be handed back.
///
/// The queue itself keeps running while it drains: apalis stops polling its backend when
/// stopped or paused with tasks in flight, stranding a fetch that may hold the pool's only
/// SQLite connection (and its heartbeat stops with it). So the handlers refuse new tasks
/// instead, and the queue is stopped once the drain is over.
#[derive(Default)]
struct InFlight {
    state: watch::Sender<InFlightState>,
    /// Cancelled when the drain is over: refused handlers hold their worker slot until then,
    /// so the queue fetches nothing more meanwhile.
    drain_over: CancellationToken,
}

#[derive(Default)]
struct InFlightState {
    draining: bool,
    /// Idempotency keys of the tasks being executed.
    running: Vec<String>,
}

/// One task being executed; dropping it (the handler ended or was abandoned) forgets it.
struct Running {
    in_flight: Arc<InFlight>,
    key: String,
}

impl InFlight {
    /// Registers `task` as executing, unless the worker is draining.
    fn enter(self: &Arc<Self>, task: &StepTask) -> Option<Running> {
        let key = task.idempotency_key();
        let entered = self.state.send_if_modified(|state| {
            if state.draining {
                return false;
            }
            state.running.push(key.clone());
            true
        });
        entered.then(|| Running {
            in_flight: self.clone(),
            key,
        })
    }

    /// Starts no task from now on; returns the keys of those executing.
    fn start_draining(&self) -> Vec<String> {
        self.state.send_modify(|state| state.draining = true);
        self.running()
    }

    /// Ends the drain: refused handlers return. Returns the keys still executing.
    fn end_draining(&self) -> Vec<String> {
        self.drain_over.cancel();
        self.running()
    }

    fn is_draining(&self) -> bool {
        self.state.borrow().draining
    }

    fn running(&self) -> Vec<String> {
        self.state.borrow().running.clone()
    }

    /// Resolves once no task is executing.
    async fn idle(&self) {
        let mut state = self.state.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = state.wait_for(|state| state.running.is_empty()).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.in_flight.state.send_modify(|state| {
            if let Some(index) = state.running.iter().position(|key| *key == self.key) {
                state.running.swap_remove(index);
            }
        });
    }
}

async fn handle_step(
    task: StepTask,
    engine: Data<Arc<EngineInner>>,
    in_flight: Data<Arc<InFlight>>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let Some(_running) = in_flight.enter(&task) else {
        // Fetched while the worker drains: hand it back (with anything else fetched and not
        // started) rather than start it, and keep this slot until the drain is over so the
        // queue fetches nothing more. The acknowledgement that follows finds the task no
        // longer locked to this worker and changes nothing.
        outbox::release_unstarted(&engine.db.pool, worker.name(), &in_flight.running()).await?;
        in_flight.drain_over.cancelled().await;
        return Ok(());
    };
    let stopping = || in_flight.is_draining() || worker.is_shutting_down();
    let slot = Slot {
        worker: worker.name(),
        stopping: &stopping,
    };
    engine.handle_task(task, &slot).await.map_err(|error| {
        tracing::warn!(message = "Step task failed; the queue will deliver it again.", %error);
        BoxDynError::from(error)
    })
}

impl Engine {
    /// Starts workers, the outbox relay, the deadline sweeper, the cron scheduler and the
    /// integration health flusher.
    pub fn start(&self, mut options: RuntimeOptions) -> Runtime {
        // apalis counts heartbeats in whole seconds; a shorter interval would make every
        // worker look dead.
        options.heartbeat_interval = options.heartbeat_interval.max(Duration::from_secs(1));
        let shutdown = CancellationToken::new();
        let flush_shutdown = CancellationToken::new();
        let flusher = tokio::spawn(health_flush_loop(
            self.inner.clone(),
            flush_shutdown.clone(),
        ));
        let mut tasks = vec![
            tokio::spawn(relay_loop(self.inner.clone(), shutdown.clone())),
            tokio::spawn(sweeper_loop(
                self.inner.clone(),
                options.retention,
                options.heartbeat_interval * MISSED_HEARTBEATS,
                shutdown.clone(),
            )),
            tokio::spawn(supervise_worker(
                self.inner.clone(),
                options.clone(),
                shutdown.clone(),
            )),
        ];
        if let Some(interval) = options.scheduler_interval {
            tasks.push(tokio::spawn(scheduler_loop(
                self.inner.clone(),
                interval,
                shutdown.clone(),
            )));
        }
        Runtime {
            shutdown,
            tasks,
            flush_shutdown,
            flusher,
        }
    }

    /// The steps due and waiting for a worker, across every process, and the step worker
    /// processes that beat within `alive_within` (the queue-depth and workers-alive metrics).
    pub async fn queue_stats(
        &self,
        alive_within: Duration,
    ) -> Result<outbox::QueueStats, crate::EngineError> {
        outbox::queue_stats(&self.inner.db.pool, alive_within).await
    }

    /// Whether this process' step worker is up; `/readyz` and the `stepwise_worker_up`
    /// metric report it.
    pub fn worker_status(&self) -> WorkerStatus {
        self.inner.worker_status().clone()
    }
}

impl EngineInner {
    fn worker_status(&self) -> std::sync::MutexGuard<'_, WorkerStatus> {
        self.worker_status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_worker_state(&self, state: WorkerState) {
        self.worker_status().state = state;
    }

    /// The worker registered or beat: up (again).
    fn worker_heartbeat(&self) {
        let mut status = self.worker_status();
        if status.state != WorkerState::Up {
            status.state = WorkerState::Up;
        }
    }

    fn worker_failed(&self, error: String, failures: u32) {
        let mut status = self.worker_status();
        let since_ms = match &status.state {
            WorkerState::Down { since_ms, .. } => *since_ms,
            _ => now_ms(),
        };
        status.state = WorkerState::Down {
            error,
            failures,
            since_ms,
        };
        status.restarts += 1;
    }
}

/// Runs the step worker until shutdown, restarting it whenever it stops: apalis ends a worker
/// on the first error of its backend (a heartbeat, fetch or acknowledgement that fails), and
/// a process must not stop executing steps over a database hiccup.
async fn supervise_worker(
    inner: Arc<EngineInner>,
    options: RuntimeOptions,
    shutdown: CancellationToken,
) {
    inner.set_worker_state(WorkerState::Up);
    let mut failures: u32 = 0;
    // Stopped generations whose queue tasks are still locked to them.
    let mut unreleased: Vec<String> = Vec::new();
    for generation in 1u64.. {
        // A fresh name per generation: the queue keys registration and task locks by name.
        let name = format!("{}-{generation}", inner.worker_name);
        let started = Instant::now();
        let outcome = match release_tasks(&inner, &unreleased).await {
            Ok(()) => {
                unreleased.clear();
                let outcome = run_worker(&inner, &options, &name, shutdown.clone()).await;
                unreleased.push(name);
                outcome
            }
            Err(error) => Err(error),
        };
        if shutdown.is_cancelled() {
            break;
        }
        let error = match outcome {
            Ok(()) => "the step worker ended by itself".to_owned(),
            Err(error) => error,
        };
        if started.elapsed() >= RESTART_BACKOFF_MAX {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let delay = restart_delay(failures);
        tracing::error!(
            message = "Step worker stopped; restarting it.",
            %error,
            failures,
            retry_in_ms = delay.as_millis() as u64,
        );
        inner.worker_failed(error, failures);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }
    inner.set_worker_state(WorkerState::Stopped);
}

/// [`RESTART_BACKOFF_MIN`] doubled per failure after the first, at most [`RESTART_BACKOFF_MAX`].
fn restart_delay(failures: u32) -> Duration {
    RESTART_BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(RESTART_BACKOFF_MAX)
}

/// Hands the tasks still locked to stopped generations back to the queue at once (the sweeper
/// would, but only after two missed heartbeats); their handlers were dropped with them.
async fn release_tasks(inner: &EngineInner, workers: &[String]) -> Result<(), String> {
    for worker in workers {
        outbox::release_worker_tasks(&inner.db.pool, worker)
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// One generation of the step worker: runs until shutdown, then drains (`Ok`), or until
/// apalis stops it (`Err` with the reason).
async fn run_worker(
    inner: &Arc<EngineInner>,
    options: &RuntimeOptions,
    name: &str,
    shutdown: CancellationToken,
) -> Result<(), String> {
    fail::fail_point!("worker.start", |_| Err(
        "failpoint worker.start refused to start the worker".to_owned()
    ));
    let (wake_sender, wake_receiver) = futures::channel::mpsc::channel::<()>(1);
    inner
        .worker_wakeups
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(wake_sender);
    let strategy = Strategy::new()
        .stream(wake_receiver)
        .interval(options.poll_interval);
    let concurrency = options.concurrency.max(1);
    let heartbeat_interval = options.heartbeat_interval;
    let in_flight = Arc::new(InFlight::default());
    let stop_fetching = CancellationToken::new();
    let stop = {
        let stop_fetching = stop_fetching.clone();
        async move {
            stop_fetching.cancelled().await;
            Ok::<(), std::io::Error>(())
        }
    };
    let status = inner.clone();
    let on_event = move |_: &WorkerContext, event: &Event| {
        if matches!(event, Event::HeartBeat) {
            status.worker_heartbeat();
        }
    };
    // The two backends' config and storage types differ but are built the same way; a macro
    // keeps one copy of that shape without naming apalis' deeply generic types.
    macro_rules! spawn_on {
        ($backend:ident, $storage:ident, $pool:expr, $strategy:expr) => {{
            let config = $backend::Config::default()
                .queue(QUEUE)
                .batch_size(concurrency)
                .heartbeat_interval(heartbeat_interval)
                // apalis-postgres defaults to 10; our promise is two.
                .missed_heartbeats(MISSED_HEARTBEATS as usize)
                // Claiming a step in our tables is the lock that matters; apalis' own
                // "running" mark would cost one more write per step.
                .lock_tasks(false);
            let storage = $backend::$storage::<StepTask>::new($pool)
                .with_config(config)
                .poll_with_strategy($strategy);
            let worker = WorkerBuilder::new(name)
                .backend(storage)
                .data(inner.clone())
                .data(in_flight.clone())
                .concurrency(concurrency)
                .on_event(on_event)
                .build(handle_step);
            // Spawned so that a panicking step handler ends this generation, not the supervisor.
            tokio::spawn(worker.run_until(stop))
        }};
    }
    let mut worker = match inner.db.pool.clone() {
        Pool::Sqlite(pool) => spawn_on!(apalis_sqlite, SqliteStorage, &pool, strategy),
        Pool::Postgres(pool) => {
            // LISTEN/NOTIFY wakes this worker when another process enqueues.
            let strategy =
                strategy.stream(apalis_postgres::Pubsub::new(pool.clone(), QUEUE.into()));
            spawn_on!(apalis_postgres, PostgresStorage, &pool, strategy)
        }
    };
    tokio::select! {
        ended = &mut worker => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(format!("the step worker panicked: {error}")),
        },
        () = shutdown.cancelled() => {
            drain(inner, options, name, &in_flight, &stop_fetching, worker).await;
            Ok(())
        }
    }
}

/// Shuts one worker generation down (see [`Runtime::shutdown`]).
async fn drain(
    inner: &EngineInner,
    options: &RuntimeOptions,
    name: &str,
    in_flight: &InFlight,
    stop_fetching: &CancellationToken,
    mut worker: JoinHandle<Result<(), WorkerError>>,
) {
    let deadline = tokio::time::Instant::now() + options.shutdown_grace;
    let running = in_flight.start_draining();
    match outbox::release_unstarted(&inner.db.pool, name, &running).await {
        Ok(0) => {}
        Ok(tasks) => {
            tracing::info!(
                message = "Handed back the steps fetched but not started.",
                tasks
            )
        }
        Err(error) => {
            tracing::warn!(message = "Handing back the steps fetched but not started failed.", %error)
        }
    }
    tracing::info!(
        message = "Draining: waiting for the steps in flight.",
        steps = running.len(),
        grace_ms = options.shutdown_grace.as_millis() as u64,
    );
    let ended_by_itself = tokio::select! {
        _ = &mut worker => true,
        () = in_flight.idle() => false,
        () = tokio::time::sleep_until(deadline) => false,
    };
    let abandoned = in_flight.end_draining();
    stop_fetching.cancel();
    if !ended_by_itself {
        // Idle: the queue closes (acknowledgements written, its buffer handed back) within
        // what is left of the grace. Otherwise dropping the worker drops its handlers: no
        // abandoned step commits after this.
        let closed =
            abandoned.is_empty() && tokio::time::timeout_at(deadline, &mut worker).await.is_ok();
        if !closed {
            worker.abort();
            let _ = worker.await;
        }
        if !abandoned.is_empty() {
            tracing::warn!(
                message =
                    "Shutdown grace over; handing the steps still running to other processes.",
                steps = abandoned.len(),
            );
        }
    }
    // Abandoned steps, the successors they held and tasks whose acknowledgement was not
    // written go back now, not after this worker's heartbeats are missed.
    if let Err(error) = outbox::release_worker_tasks(&inner.db.pool, name).await {
        tracing::warn!(message = "Handing back this worker's steps failed; other processes take them over after its missed heartbeats.", %error);
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

/// Every second: ends overdue runs and hands the tasks of workers silent for `orphaned_after`
/// to the queue again (apalis checks only at its own heartbeats, which would add up to one
/// more interval to a takeover); every minute and hour, the purge and retention passes.
async fn sweeper_loop(
    inner: Arc<EngineInner>,
    retention: Retention,
    orphaned_after: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
        ticks += 1;
        match outbox::reenqueue_orphaned(&inner.db.pool, orphaned_after).await {
            Ok(0) => {}
            Ok(tasks) => {
                tracing::info!(message = "Took over the tasks of a dead worker.", tasks);
                inner.wake_workers();
            }
            Err(error) => {
                tracing::warn!(message = "Taking over dead workers' tasks failed.", %error)
            }
        }
        match outbox::release_orphaned_holds(&inner.db.pool, orphaned_after).await {
            Ok(0) => {}
            Ok(steps) => {
                tracing::info!(
                    message = "Took over the steps a dead worker had claimed.",
                    steps
                );
                inner.wake_relay();
            }
            Err(error) => {
                tracing::warn!(message = "Taking over dead workers' claimed steps failed.", %error)
            }
        }
        if ticks.is_multiple_of(60)
            && let Err(error) =
                outbox::purge_finished(&inner.db.pool, FINISHED_TASK_RETENTION_SECS).await
        {
            tracing::warn!(message = "Purging finished queue tasks failed.", %error);
        }
        if ticks % RETENTION_PERIOD_SECS == 60 {
            match inner.prune_history(now_ms(), &retention).await {
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
        if let Err(error) = inner.scheduler_pass(now_ms()).await {
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
