//! Group commit of run starts. `Engine::start_run`, `rerun` and webhook `ingest` hand their
//! request to a committer task, which applies every request waiting at that moment in one
//! write transaction, commits once, then answers each caller. The requests that arrive during a
//! commit share the next one, so run starts per second no longer depend on commit latency; a
//! caller still gets its run ids only after the commit that holds its runs.
//!
//! A batch's new runs are inserted together just before the commit, one multi-row statement
//! per table (see [`NewRows`]). A failing request does not fail its neighbours: the batch is
//! then rolled back and applied again with a savepoint per request and every row written at
//! once, so only the failing request is refused.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::db::Backend;
use crate::engine::EngineInner;
use crate::error::EngineError;
use crate::executor::Applied;
use crate::ingest_cache::VerifyingSource;
use crate::store::run_state::NewRows;
use crate::store::runs::{self, NewRun};
use crate::store::webhooks::{self as webhook_store, NewDelivery};
use crate::store::workflows::VersionRef;
use crate::webhooks::TRIGGER_KIND as WEBHOOK_TRIGGER;

/// Requests one transaction applies at most; the rest wait for the next one.
const MAX_BATCH: usize = 256;

/// A run of the latest version of a tenant's workflow.
pub(crate) struct RunRequest {
    pub tenant_id: String,
    pub workflow: String,
    pub input: Value,
    pub trigger_kind: String,
    pub trigger: Value,
    pub rerun_of: Option<String>,
}

/// A verified webhook delivery and the workflow versions it starts (with their inputs).
pub(crate) struct DeliveryRequest {
    pub source: Arc<VerifyingSource>,
    pub delivery_id: Option<String>,
    pub event: Option<String>,
    pub trigger: Value,
    pub subscribed: Vec<(VersionRef, Value)>,
}

enum Work {
    Run(RunRequest),
    Delivery(Box<DeliveryRequest>),
}

/// What a committed request started.
#[derive(Debug)]
pub(crate) struct Started {
    pub run_ids: Vec<String>,
    /// A delivery already accepted: `run_ids` are those of its first copy.
    pub duplicate: bool,
}

type Reply = oneshot::Sender<Result<Started, EngineError>>;

struct Request {
    work: Work,
    reply: Reply,
}

/// The queue of the committer tasks.
pub(crate) struct Starts {
    queue: mpsc::UnboundedSender<Request>,
}

/// Committers of one engine: one on SQLite (one writer anyway), a few on Postgres so one
/// batch's statements overlap another's commit.
fn committers(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    }
}

impl Starts {
    /// Spawns the committer tasks on the current runtime. They hold the engine weakly and end
    /// when it is dropped.
    pub(crate) fn spawn(inner: Weak<EngineInner>, backend: Backend) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..committers(backend) {
            tokio::spawn(committer(inner.clone(), receiver.clone()));
        }
        Self { queue }
    }

    pub(crate) async fn run(&self, request: RunRequest) -> Result<String, EngineError> {
        let started = self.submit(Work::Run(request)).await?;
        started
            .run_ids
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::Corrupt("a committed start has no run".into()))
    }

    pub(crate) async fn delivery(&self, request: DeliveryRequest) -> Result<Started, EngineError> {
        self.submit(Work::Delivery(Box::new(request))).await
    }

    async fn submit(&self, work: Work) -> Result<Started, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { work, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> EngineError {
    EngineError::Config("the engine's run-start committer has stopped".into())
}

async fn committer(
    inner: Weak<EngineInner>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Request>>>,
) {
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            batch
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.commit_batch(batch).await;
    }
}

/// What one transaction of run starts carries from request to request.
struct Batch {
    /// Latest versions read, by (tenant, workflow name).
    versions: HashMap<(String, String), VersionRef>,
    /// The new runs' rows, inserted together just before the commit. `None` when each request
    /// has its own savepoint: a request rolled back must take its rows with it.
    new_rows: Option<NewRows>,
    /// Sources, by (tenant, name), on which no step was waiting when this transaction looked.
    sources_without_waits: HashSet<(String, String)>,
}

impl Batch {
    fn new(new_rows: Option<NewRows>) -> Self {
        Self {
            versions: HashMap::new(),
            new_rows,
            sources_without_waits: HashSet::new(),
        }
    }

    fn deferred_runs(&self) -> usize {
        self.new_rows.as_ref().map_or(0, NewRows::runs)
    }
}

fn fail_all(batch: Vec<Request>, error: &impl std::fmt::Display) {
    for request in batch {
        let _ = request.reply.send(Err(commit_failed(error)));
    }
}

fn commit_failed(error: &impl std::fmt::Display) -> EngineError {
    EngineError::Database(sea_orm::DbErr::Custom(format!(
        "the transaction holding this run start failed: {error}"
    )))
}

impl EngineInner {
    async fn commit_batch(self: &Arc<Self>, mut batch: Vec<Request>) {
        // Deliveries in one order in every transaction: two committers on Postgres holding
        // copies of the same deliveries wait for each other instead of deadlocking.
        batch.sort_by(|a, b| delivery_key(&a.work).cmp(&delivery_key(&b.work)));
        // Requests rarely fail, so the batch is first applied without a savepoint per request
        // (two statements fewer per run); if one fails, the transaction is rolled back and the
        // batch applied again with savepoints, so the others still commit.
        let tx = match crate::db::begin_write(&self.db.conn).await {
            Ok(tx) => tx,
            Err(error) => return fail_all(batch, &error),
        };
        let mut state = Batch::new(Some(NewRows::default()));
        let mut applied_requests = Vec::with_capacity(batch.len());
        for request in &batch {
            match self.apply_work(&tx, &mut state, &request.work).await {
                Ok(applied) => applied_requests.push(applied),
                Err(error) if batch.len() == 1 => {
                    // Dropping the transaction rolls it back.
                    drop(tx);
                    if let Some(request) = batch.pop() {
                        let _ = request.reply.send(Err(error));
                    }
                    return;
                }
                Err(_) => {
                    drop(tx);
                    return self.commit_isolated(batch).await;
                }
            }
        }
        if let Some(new_rows) = state.new_rows
            && let Err(error) = new_rows.insert(&tx).await
        {
            tracing::warn!(
                message = "Inserting a batch's new runs failed; applying its requests one by one.",
                %error,
            );
            drop(tx);
            return self.commit_isolated(batch).await;
        }
        let replies = batch.into_iter().map(|request| request.reply);
        if let Err(error) = tx.commit().await {
            for reply in replies {
                let _ = reply.send(Err(commit_failed(&error)));
            }
            return;
        }
        for (reply, (started, applied)) in replies.zip(applied_requests) {
            for applied in applied {
                self.committed(applied);
            }
            let _ = reply.send(Ok(started));
        }
    }

    /// [`Self::commit_batch`] with a savepoint per request: a failing request is rolled back
    /// alone and answered with its error; the others commit.
    async fn commit_isolated(self: &Arc<Self>, batch: Vec<Request>) {
        let tx = match crate::db::begin_write(&self.db.conn).await {
            Ok(tx) => tx,
            Err(error) => return fail_all(batch, &error),
        };
        let mut state = Batch::new(None);
        let mut applied_requests = Vec::with_capacity(batch.len());
        let mut broken = None;
        for request in batch {
            if let Some(error) = &broken {
                let _ = request.reply.send(Err(commit_failed(error)));
                continue;
            }
            match self
                .apply_in_savepoint(&tx, &mut state, &request.work)
                .await
            {
                Ok(outcome) => applied_requests.push((request.reply, outcome)),
                Err(error) => {
                    broken = Some(error.to_string());
                    let _ = request.reply.send(Err(error.into()));
                }
            }
        }
        if let Err(error) = tx.commit().await {
            for (reply, outcome) in applied_requests {
                let _ = reply.send(outcome.and(Err(commit_failed(&error))));
            }
            return;
        }
        for (reply, outcome) in applied_requests {
            let answer = outcome.map(|(started, applied)| {
                for applied in applied {
                    self.committed(applied);
                }
                started
            });
            let _ = reply.send(answer);
        }
    }

    /// Applies one request of a batch inside its own savepoint. The outer error is a failure
    /// of the savepoint itself, which leaves the transaction unusable.
    async fn apply_in_savepoint(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut Batch,
        work: &Work,
    ) -> Result<Result<(Started, Vec<Applied>), EngineError>, sea_orm::DbErr> {
        let savepoint = tx.begin().await?;
        let outcome = self.apply_work(&savepoint, state, work).await;
        match outcome {
            Ok(_) => savepoint.commit().await?,
            Err(_) => savepoint.rollback().await?,
        }
        Ok(outcome)
    }

    async fn apply_work(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut Batch,
        work: &Work,
    ) -> Result<(Started, Vec<Applied>), EngineError> {
        match work {
            Work::Run(request) => {
                let (run_id, applied) = self.start_run_in(tx, state, request).await?;
                Ok((
                    Started {
                        run_ids: vec![run_id],
                        duplicate: false,
                    },
                    vec![applied],
                ))
            }
            Work::Delivery(request) => self.accept_delivery(tx, state, request).await,
        }
    }

    /// [`EngineInner::start_in`] within a batch: the run's rows may wait for the batch's
    /// insert.
    async fn start_in_batch(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut Batch,
        new: NewRun<'_>,
    ) -> Result<(String, Applied), EngineError> {
        let deferred = state.deferred_runs();
        let started = self.start_in(tx, new, state.new_rows.as_mut()).await?;
        if state.deferred_runs() == deferred {
            // A run written at once may have started waiting on a source.
            state.sources_without_waits.clear();
        }
        Ok(started)
    }

    async fn start_run_in(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut Batch,
        request: &RunRequest,
    ) -> Result<(String, Applied), EngineError> {
        let key = (request.tenant_id.clone(), request.workflow.clone());
        let version = match state.versions.get(&key) {
            Some(version) => version.clone(),
            None => {
                let version = self
                    .latest_version_via(tx, &request.tenant_id, &request.workflow)
                    .await?
                    .ok_or_else(|| {
                        EngineError::NotFound(format!("workflow `{}` not found", request.workflow))
                    })?;
                state.versions.insert(key, version.clone());
                version
            }
        };
        if !version.enabled {
            return Err(EngineError::WorkflowDisabled(format!(
                "workflow `{}` is disabled; enable it to start runs",
                request.workflow
            )));
        }
        let input = version
            .definition
            .prepare_input(request.input.clone())
            .map_err(|error| EngineError::InvalidInput(error.to_string()))?;
        self.start_in_batch(
            tx,
            state,
            NewRun {
                id: runs::new_run_id(),
                tenant_id: &request.tenant_id,
                workflow: &version,
                input,
                trigger_kind: &request.trigger_kind,
                trigger: request.trigger.clone(),
                rerun_of: request.rerun_of.as_deref(),
                parent: None,
            },
        )
        .await
    }

    /// Records the delivery and starts its runs; a copy of a delivery already recorded
    /// starts nothing and answers with the first copy's runs.
    async fn accept_delivery(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut Batch,
        request: &DeliveryRequest,
    ) -> Result<(Started, Vec<Applied>), EngineError> {
        // The runs' ids are recorded with the delivery, so a copy racing this one answers
        // with them; they are taken now and the runs created with them below.
        let ids: Vec<uuid::Uuid> = request
            .subscribed
            .iter()
            .map(|_| runs::new_run_id())
            .collect();
        let run_ids: Vec<String> = ids.iter().map(uuid::Uuid::to_string).collect();
        let inserted = webhook_store::insert_delivery(
            tx,
            NewDelivery {
                source: &request.source.source,
                delivery_id: request.delivery_id.as_deref(),
                event_type: request.event.as_deref(),
                run_ids: &run_ids,
            },
        )
        .await?;
        if !inserted {
            let id = request.delivery_id.as_deref().unwrap_or_default();
            let run_ids =
                webhook_store::delivery_runs(tx, &request.source.source.info.id, id).await?;
            return Ok((
                Started {
                    run_ids,
                    duplicate: true,
                },
                Vec::new(),
            ));
        }
        let mut published = Vec::with_capacity(request.subscribed.len());
        for ((version, input), id) in request.subscribed.iter().zip(ids) {
            let (_, applied) = self
                .start_in_batch(
                    tx,
                    state,
                    NewRun {
                        id,
                        tenant_id: &request.source.source.tenant_id,
                        workflow: version,
                        input: input.clone(),
                        trigger_kind: WEBHOOK_TRIGGER,
                        trigger: request.trigger.clone(),
                        rerun_of: None,
                        parent: None,
                    },
                )
                .await?;
            published.push(applied);
        }
        // Steps parked in `core.wait_for_webhook` on this source resume in this transaction.
        // A source seen without waiting steps is not looked at again in this transaction
        // unless a run written since may have started waiting.
        let mut resumed = Applied::default();
        let source = &request.source.source;
        let source_key = (source.tenant_id.clone(), source.info.name.clone());
        if !state.sources_without_waits.contains(&source_key) {
            let waits = self
                .resume_webhook_waits(
                    tx,
                    &source.tenant_id,
                    &source.info.name,
                    request.event.as_deref(),
                    &request.trigger,
                    &mut resumed,
                )
                .await?;
            if waits.waiting == 0 {
                state.sources_without_waits.insert(source_key);
            }
            if waits.resumed > 0 {
                // A resumed run may have gone on to wait on another source.
                state.sources_without_waits.clear();
                tracing::debug!(
                    message = "Webhook delivery resumed waiting steps.",
                    source = source.info.name,
                    steps = waits.resumed,
                );
            }
        }
        published.push(resumed);
        Ok((
            Started {
                run_ids,
                duplicate: false,
            },
            published,
        ))
    }
}

/// Orders deliveries by (source, delivery id), after plain run starts.
fn delivery_key(work: &Work) -> Option<(&str, &str)> {
    match work {
        Work::Delivery(request) => Some((
            request.source.source.info.id.as_str(),
            request.delivery_id.as_deref().unwrap_or_default(),
        )),
        Work::Run(_) => None,
    }
}
