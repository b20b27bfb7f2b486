//! The engine facade the API and CLI use, and the process-local state shared by its workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::Serialize;
use serde_json::Value;
use stepwise_integrations::{ActionServices, Registry, SecretValue, SecretValues};
use stepwise_workflows::expr::Evaluator;
use stepwise_workflows::{SecretsRead, Workflow, parse_workflow};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::db::{Backend, Database};
use crate::error::EngineError;
use crate::executor::Applied;
use crate::ingest_cache::IngestCache;
use crate::limits::DataLimits;
use crate::machine;
use crate::oauth::tokens::TokenManager;
use crate::runtime::WorkerStatus;
use crate::starts::{RunRequest, Starts};
use crate::status::{RunStatus, StepStatus};
use crate::store::now_ms;
use crate::store::rate_limits::DatabaseBuckets;
use crate::store::run_state::{NewRows, RunState, parse_item_id};
use crate::store::runs::{NewRun, Page, RunDetail, RunFilter, RunSummary};
use crate::store::secrets::{RewrapReport, SecretInfo, SecretWritten};
use crate::store::tenants::Tenant;
use crate::store::workflows::{Deployed, LatestVersion, VersionInfo, VersionRef, WorkflowSummary};
use crate::store::{runs, secrets, sessions, steps, tenants, workflows};
use crate::vault::{KeyProvider, Vault};

/// Progress notifications of this process, for live views (`stepwise run`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    Step {
        run_id: String,
        step_id: String,
        status: StepStatus,
        attempt: i32,
        error: Option<String>,
    },
    Run {
        run_id: String,
        status: RunStatus,
    },
    /// A run was created (emitted once its transaction committed).
    Started {
        run_id: String,
        workflow: String,
        trigger_kind: String,
    },
}

/// Receives every [`RunEvent`] of this process, synchronously and in order, as it is emitted
/// (metrics, for instance). Unlike [`Engine::subscribe`] it never misses one; keep it cheap.
pub trait RunObserver: Send + Sync {
    fn observe(&self, event: &RunEvent);
}

pub(crate) struct EngineInner {
    pub(crate) db: Database,
    pub(crate) registry: Arc<Registry>,
    pub(crate) services: Arc<ActionServices>,
    pub(crate) evaluator: Evaluator,
    data_limits: RwLock<DataLimits>,
    pub(crate) vault: Vault,
    pub(crate) tokens: Arc<TokenManager>,
    pub(crate) worker_name: String,
    definitions: Mutex<HashMap<String, Arc<Workflow>>>,
    cancellations: Mutex<HashMap<String, CancellationToken>>,
    events: broadcast::Sender<RunEvent>,
    pub(crate) relay_wakeup: Notify,
    pub(crate) worker_wakeups: Mutex<Vec<futures::channel::mpsc::Sender<()>>>,
    pub(crate) worker_status: Mutex<WorkerStatus>,
    observers: RwLock<Vec<Arc<dyn RunObserver>>>,
    pub(crate) starts: Starts,
    pub(crate) ingest_cache: IngestCache,
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EngineInner {
    pub(crate) fn data_limits(&self) -> DataLimits {
        *self
            .data_limits
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) async fn definition(&self, version_id: &str) -> Result<Arc<Workflow>, EngineError> {
        self.definition_via(&self.db.conn, version_id).await
    }

    /// [`Self::definition`], reading through `db` on a cache miss: inside a write transaction
    /// pass the transaction (on SQLite it holds the only connection).
    pub(crate) async fn definition_via(
        &self,
        db: &impl ConnectionTrait,
        version_id: &str,
    ) -> Result<Arc<Workflow>, EngineError> {
        if let Some(found) = lock(&self.definitions).get(version_id) {
            return Ok(found.clone());
        }
        // Versions are immutable, so caching them forever is safe.
        let definition = Arc::new(workflows::definition(db, version_id).await?);
        lock(&self.definitions).insert(version_id.to_owned(), definition.clone());
        Ok(definition)
    }

    /// The latest version of a tenant's workflow, with its (cached) definition.
    pub(crate) async fn latest_version(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<VersionRef>, EngineError> {
        self.latest_version_via(&self.db.conn, tenant_id, name)
            .await
    }

    /// [`Self::latest_version`], reading through `db` (a transaction, inside one).
    pub(crate) async fn latest_version_via(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<VersionRef>, EngineError> {
        match workflows::latest(db, tenant_id, name).await? {
            Some(latest) => Ok(Some(self.with_definition(db, latest).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn with_definition(
        &self,
        db: &impl ConnectionTrait,
        latest: LatestVersion,
    ) -> Result<VersionRef, EngineError> {
        Ok(VersionRef {
            definition: self.definition_via(db, &latest.version_id).await?,
            workflow_id: latest.workflow_id,
            version_id: latest.version_id,
            version: latest.version,
            enabled: latest.enabled,
        })
    }

    pub(crate) fn cancellation_for(&self, run_id: &str) -> CancellationToken {
        lock(&self.cancellations)
            .entry(run_id.to_owned())
            .or_default()
            .clone()
    }

    pub(crate) fn forget_cancellation(&self, run_id: &str) {
        lock(&self.cancellations).remove(run_id);
    }

    pub(crate) fn emit(&self, event: RunEvent) {
        for observer in self
            .observers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
        {
            observer.observe(&event);
        }
        // No subscriber is the normal case for a server.
        let _ = self.events.send(event);
    }

    /// Creates one run inside `tx` and advances it as far as its pure steps go: the one place
    /// a run is created (manual starts, re-runs, webhook deliveries and cron slots). Returns
    /// the run id and what to publish once `tx` commits.
    pub(crate) async fn start_in(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        new: NewRun<'_>,
        new_rows: Option<&mut NewRows>,
    ) -> Result<(String, Applied), EngineError> {
        let definition = new.workflow.definition.clone();
        let trigger_kind = new.trigger_kind.to_owned();
        let (state, tasks) = runs::create(new);
        let run_id = state.run.id.clone();
        let mut applied = Applied {
            tasks,
            events: vec![RunEvent::Started {
                run_id: run_id.clone(),
                workflow: definition.name.clone(),
                trigger_kind,
            }],
            ..Applied::default()
        };
        // Pure root steps (and the pure steps they make ready) execute right here, in the
        // transaction that creates the run: a run of pure steps never waits for the queue.
        self.advance(tx, state, &definition, &mut applied, new_rows)
            .await?;
        Ok((run_id, applied))
    }

    pub(crate) fn wake_relay(&self) {
        self.relay_wakeup.notify_one();
    }

    /// Moves pending outbox rows into the queue now and wakes this process' workers. A failure
    /// is left to the relay task, which retries.
    pub(crate) async fn relay_now(&self) {
        match crate::store::outbox::relay(&self.db.pool).await {
            Ok(0) => {}
            Ok(_) => self.wake_workers(),
            Err(error) => {
                tracing::warn!(message = "Inline outbox relay failed; the relay task retries.", %error);
                self.wake_relay();
            }
        }
    }

    /// Wakes this process' idle workers so they fetch without waiting for the poll interval.
    pub(crate) fn wake_workers(&self) {
        let mut wakeups = lock(&self.worker_wakeups);
        wakeups.retain(|sender| !sender.is_closed());
        for sender in wakeups.iter_mut() {
            // A full channel already holds a pending wake-up.
            let _ = sender.try_send(());
        }
    }
}

impl Engine {
    /// Connects, migrates, and prepares (but does not start) the engine, with the embedded
    /// default master key: `stepwise.key` next to a SQLite database file, none for Postgres
    /// (see [`crate::vault::key_provider`]).
    pub async fn open(
        database_url: &str,
        registry: Arc<Registry>,
        services: Arc<ActionServices>,
    ) -> Result<Self, EngineError> {
        let keys = crate::vault::key_provider(&Default::default(), database_url)?;
        Self::open_with_keys(database_url, registry, services, keys).await
    }

    /// [`Engine::open`] with the master keys of `keys` (a key file, the environment, a KMS).
    pub async fn open_with_keys(
        database_url: &str,
        registry: Arc<Registry>,
        services: Arc<ActionServices>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, EngineError> {
        let db = Database::connect(database_url).await?;
        db.migrate().await?;
        let (events, _) = broadcast::channel(1024);
        let worker_name = format!(
            "stepwise-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let vault = Vault::new(keys);
        let tokens = Arc::new(TokenManager::new(
            db.conn.clone(),
            vault.clone(),
            services.http().clone(),
            worker_name.clone(),
            services.runtime.health().clone(),
        ));
        // Actions reach connections through their context; the token manager serves them.
        let mut services = ActionServices::clone(&services).with_connections(tokens.clone());
        let backend = db.backend();
        // Every process on a Postgres database paces one quota per bucket; SQLite has one
        // process, whose in-memory buckets are exact and cost no write per request.
        if backend == Backend::Postgres {
            services.runtime = services
                .runtime
                .with_buckets(Arc::new(DatabaseBuckets::new(&db)));
        }
        let services = Arc::new(services);
        // The committer tasks hold the engine weakly: they end when it is dropped.
        let inner = Arc::new_cyclic(|weak| EngineInner {
            starts: Starts::spawn(weak.clone(), backend),
            db,
            registry,
            services,
            evaluator: Evaluator::with_limits(DataLimits::default().expressions()),
            data_limits: RwLock::new(DataLimits::default()),
            vault,
            tokens,
            worker_name,
            definitions: Mutex::default(),
            cancellations: Mutex::default(),
            events,
            relay_wakeup: Notify::new(),
            worker_wakeups: Mutex::default(),
            worker_status: Mutex::new(WorkerStatus::default()),
            observers: RwLock::default(),
            ingest_cache: IngestCache::new(),
        });
        Ok(Self { inner })
    }

    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.events.subscribe()
    }

    /// Adds an observer that sees every later [`RunEvent`] of this process.
    pub fn observe(&self, observer: Arc<dyn RunObserver>) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(observer);
    }

    pub async fn create_tenant(&self, name: &str) -> Result<(Tenant, String), EngineError> {
        let tenant = tenants::create(&self.inner.db.conn, name).await?;
        let key = tenants::issue_key(&self.inner.db.conn, &tenant.id).await?;
        Ok((tenant, key))
    }

    /// Caps what steps store from now on (`--max-step-output-bytes`, `--max-run-data-bytes`).
    pub fn set_data_limits(&self, limits: DataLimits) {
        self.inner.evaluator.set_limits(limits.expressions());
        *self
            .inner
            .data_limits
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = limits;
    }

    /// Creates the `default` tenant on an empty database and returns its first API key.
    pub async fn ensure_default_tenant(&self) -> Result<Option<String>, EngineError> {
        if tenants::find_by_name(&self.inner.db.conn, "default")
            .await?
            .is_some()
        {
            return Ok(None);
        }
        match self.create_tenant("default").await {
            Ok((_, key)) => Ok(Some(key)),
            // Another process created it first.
            Err(EngineError::Conflict(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn tenant(&self, name: &str) -> Result<Option<Tenant>, EngineError> {
        tenants::find_by_name(&self.inner.db.conn, name).await
    }

    pub async fn authenticate(&self, api_key: &str) -> Result<Option<Tenant>, EngineError> {
        tenants::authenticate(&self.inner.db.conn, api_key).await
    }

    /// Logs a dashboard user in with an API key: a new session token (shown only here) of the
    /// key's tenant, valid for `ttl`; `None` for an unknown key.
    pub async fn open_session(
        &self,
        api_key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<(String, Tenant)>, EngineError> {
        let Some(tenant) = tenants::authenticate(&self.inner.db.conn, api_key).await? else {
            return Ok(None);
        };
        let tx = crate::db::begin_write(&self.inner.db.conn).await?;
        let token = sessions::open(&tx, &tenant.id, ttl.as_millis() as i64).await?;
        tx.commit().await?;
        Ok(Some((token, tenant)))
    }

    /// The tenant of a live dashboard session.
    pub async fn session_tenant(&self, token: &str) -> Result<Option<Tenant>, EngineError> {
        sessions::tenant(&self.inner.db.conn, token).await
    }

    /// Ends a dashboard session (logout); unknown tokens are ignored.
    pub async fn close_session(&self, token: &str) -> Result<(), EngineError> {
        sessions::close(&self.inner.db.conn, token).await
    }

    /// Creates the secret `name` or replaces its value. The value is sealed before it is
    /// written and can never be read back through the API.
    pub async fn set_secret(
        &self,
        tenant_id: &str,
        name: &str,
        value: &SecretValue,
    ) -> Result<SecretWritten, EngineError> {
        secrets::set(
            &self.inner.db.conn,
            &self.inner.vault,
            tenant_id,
            name,
            value,
        )
        .await
    }

    /// The tenant's secrets: names and timestamps, never values.
    pub async fn list_secrets(&self, tenant_id: &str) -> Result<Vec<SecretInfo>, EngineError> {
        secrets::list(&self.inner.db.conn, tenant_id).await
    }

    /// Deletes the secret; [`EngineError::NotFound`] when the tenant has none of that name.
    pub async fn delete_secret(&self, tenant_id: &str, name: &str) -> Result<(), EngineError> {
        if secrets::delete(&self.inner.db.conn, tenant_id, name).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!("secret `{name}` not found")))
        }
    }

    /// The decrypted values of every secret of the tenant, for `${{ secrets.NAME }}` in the
    /// executor (and [`SecretValues::redactor_for`] for what it stores and logs). Never hand the
    /// result to a client: the API must not call this (`api/tests/architecture.rs` checks).
    pub async fn tenant_secrets(&self, tenant_id: &str) -> Result<SecretValues, EngineError> {
        secrets::values(
            &self.inner.db.conn,
            &self.inner.vault,
            tenant_id,
            &SecretsRead::All,
        )
        .await
    }

    /// Re-wraps every data key not under the current master key (`stepwise keys rotate`):
    /// per-tenant secrets, webhook sources' signing secrets, OAuth apps' client secrets,
    /// connections' credentials and the sealed unmasked values of steps and runs.
    pub async fn rewrap_secrets(&self, batch_size: u64) -> Result<RewrapReport, EngineError> {
        let mut report =
            secrets::rewrap_all(&self.inner.db.conn, &self.inner.vault, batch_size).await?;
        let (rewrapped, remaining) =
            crate::store::webhooks::rewrap_all(&self.inner.db.conn, &self.inner.vault).await?;
        report.rewrapped += rewrapped;
        report.remaining += remaining;
        let (rewrapped, remaining) =
            crate::store::oauth_apps::rewrap_all(&self.inner.db.conn, &self.inner.vault).await?;
        report.rewrapped += rewrapped;
        report.remaining += remaining;
        let (rewrapped, remaining) =
            crate::store::connections::rewrap_all(&self.inner.db.conn, &self.inner.vault).await?;
        report.rewrapped += rewrapped;
        report.remaining += remaining;
        let (rewrapped, remaining) =
            crate::store::unmasked::rewrap_all(&self.inner.db.conn, &self.inner.vault).await?;
        report.rewrapped += rewrapped;
        report.remaining += remaining;
        Ok(report)
    }

    /// Parses and validates `source`; returns the workflow or every diagnostic.
    pub fn parse(&self, path: &str, source: &str) -> Result<Workflow, EngineError> {
        let parsed = parse_workflow(path, source, self.inner.registry.as_ref());
        match parsed.workflow {
            Some(workflow) if !parsed.has_errors() => Ok(workflow),
            _ => Err(EngineError::InvalidWorkflow(parsed.diagnostics)),
        }
    }

    pub async fn deploy(
        &self,
        tenant_id: &str,
        path: &str,
        source: &str,
    ) -> Result<Deployed, EngineError> {
        let workflow = self.parse(path, source)?;
        let deployed = workflows::deploy(&self.inner.db.conn, tenant_id, &workflow, source).await;
        self.inner.ingest_cache.forget_listeners(tenant_id);
        deployed
    }

    pub async fn list_workflows(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<WorkflowSummary>, EngineError> {
        workflows::list(&self.inner.db.conn, tenant_id).await
    }

    /// Enables or disables the tenant's workflow. While disabled it starts no run (a manual
    /// trigger or re-run answers [`EngineError::WorkflowDisabled`]; webhook deliveries and
    /// `workflow.run` skip it; cron slots wait and are caught up under `catch_up` once it is
    /// enabled); runs in flight go on. Deploying a new version keeps the flag.
    pub async fn set_workflow_enabled(
        &self,
        tenant_id: &str,
        name: &str,
        enabled: bool,
    ) -> Result<WorkflowSummary, EngineError> {
        let not_found = || EngineError::NotFound(format!("workflow `{name}` not found"));
        let switched = workflows::set_enabled(&self.inner.db.conn, tenant_id, name, enabled).await;
        self.inner.ingest_cache.forget_listeners(tenant_id);
        if !switched? {
            return Err(not_found());
        }
        tracing::info!(message = "Workflow switched.", workflow = name, enabled);
        workflows::get(&self.inner.db.conn, tenant_id, name)
            .await?
            .map(|(summary, _)| summary)
            .ok_or_else(not_found)
    }

    pub async fn get_workflow(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<(WorkflowSummary, Vec<VersionInfo>)>, EngineError> {
        workflows::get(&self.inner.db.conn, tenant_id, name).await
    }

    /// Starts a run of the latest version of `workflow`. Returns once the run is committed.
    pub async fn start_run(
        &self,
        tenant_id: &str,
        workflow: &str,
        input: Value,
        trigger_kind: &str,
        trigger: Value,
    ) -> Result<String, EngineError> {
        self.start_run_of(tenant_id, workflow, input, trigger_kind, trigger, None)
            .await
    }

    /// Starts a new run of the run's workflow (its current version) with the same input and
    /// trigger, linked to the original.
    pub async fn rerun(&self, tenant_id: &str, run_id: &str) -> Result<String, EngineError> {
        let run = runs::find(&self.inner.db.conn, tenant_id, run_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("run {run_id} not found")))?;
        self.start_run_of(
            tenant_id,
            &run.workflow_name,
            run.input,
            &run.trigger_kind,
            run.trigger,
            Some(run_id),
        )
        .await
    }

    /// Retries a failed or cancelled run from its failed steps: those steps and every step
    /// depending on them run again, every other step keeps its output. The run stays on its
    /// workflow version unless `latest_version` asks for the current one. The retried run goes
    /// through the workflow's `concurrency` admission like a new run: it may wait `queued`,
    /// be refused ([`EngineError::ConcurrencyLimit`], nothing changed) or cancel running runs.
    /// Returns the run's new status: `running` or `queued`.
    pub async fn retry_run(
        &self,
        tenant_id: &str,
        run_id: &str,
        latest_version: bool,
    ) -> Result<RunStatus, EngineError> {
        let not_found = || EngineError::NotFound(format!("run {run_id} not found"));
        // Definitions are read before the write transaction: on SQLite it holds the only
        // connection.
        let run = runs::find(&self.inner.db.conn, tenant_id, run_id)
            .await?
            .ok_or_else(not_found)?;
        let (version, definition) = if latest_version {
            let latest = self
                .inner
                .latest_version(tenant_id, &run.workflow_name)
                .await?
                .ok_or_else(|| {
                    EngineError::NotFound(format!("workflow `{}` not found", run.workflow_name))
                })?;
            (Some((latest.version_id, latest.version)), latest.definition)
        } else {
            (None, self.inner.definition(&run.workflow_version_id).await?)
        };
        let tx = crate::db::begin_write(&self.inner.db.conn).await?;
        tx.execute(&runs::lock_statement(run_id)).await?;
        let locked = runs::find(&tx, tenant_id, run_id)
            .await?
            .ok_or_else(not_found)?;
        let status: RunStatus = locked.status.parse()?;
        if !matches!(status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(EngineError::Conflict(format!(
                "run {run_id} is {status}; only a failed or cancelled run can be retried"
            )));
        }
        if version.is_none() && locked.workflow_version_id != run.workflow_version_id {
            return Err(EngineError::Conflict(format!(
                "run {run_id} changed version while being retried; try again"
            )));
        }
        let rows = steps::for_run(&tx, run_id).await?;
        let statuses = rows
            .iter()
            .filter(|row| parse_item_id(&row.step_id).is_none())
            .map(|row| Ok((row.step_id.clone(), row.status.parse()?)))
            .collect::<Result<BTreeMap<String, StepStatus>, EngineError>>()?;
        let plan = machine::retry(&definition, &statuses);
        if plan.reset.is_empty() {
            return Err(EngineError::Conflict(format!(
                "run {run_id} has no failed step to retry"
            )));
        }
        // Admission before the run's row is reopened, so the run is not counted on its key.
        let mut applied = Applied::default();
        let admission = self
            .inner
            .admit_retry(&tx, &definition, &locked, &mut applied)
            .await?;
        if version.is_some() {
            steps::align_with(&tx, run_id, &definition, &rows).await?;
        }
        steps::reset(&tx, run_id, &plan.reset).await?;
        // A queued run's deadline starts when it gets its slot (`promote_queued`).
        let (status, deadline) = if admission.queued {
            (RunStatus::Queued, None)
        } else {
            let deadline = definition
                .timeout
                .map(|timeout| now_ms().saturating_add(timeout.as_millis() as i64));
            (RunStatus::Running, deadline)
        };
        runs::reopen(
            &tx,
            run_id,
            status,
            version.as_ref().map(|(id, number)| (id.as_str(), *number)),
            deadline,
        )
        .await?;
        // Read back after the resets: they keep dispatch numbers, so queued tasks never reuse
        // an earlier task's idempotency key.
        let mut state = RunState::load(&tx, run_id, None).await?;
        state.mark(&plan.skip, StepStatus::Skipped);
        state.run.concurrency_key = admission.key;
        // A queued run's steps stay pending until a slot frees (`promote_queued` starts them).
        if !admission.queued {
            let now = now_ms();
            applied.tasks = state
                .queue_pending(&plan.enqueue)
                .into_iter()
                .map(|task| (task, now))
                .collect();
        }
        self.inner
            .advance(&tx, state, &definition, &mut applied, None)
            .await?;
        tx.commit().await?;
        self.inner.emit(RunEvent::Run {
            run_id: run_id.to_owned(),
            status,
        });
        self.inner.committed(applied);
        Ok(status)
    }

    async fn start_run_of(
        &self,
        tenant_id: &str,
        workflow: &str,
        input: Value,
        trigger_kind: &str,
        trigger: Value,
        rerun_of: Option<&str>,
    ) -> Result<String, EngineError> {
        self.inner
            .starts
            .run(RunRequest {
                tenant_id: tenant_id.to_owned(),
                workflow: workflow.to_owned(),
                input,
                trigger_kind: trigger_kind.to_owned(),
                trigger,
                rerun_of: rerun_of.map(str::to_owned),
            })
            .await
    }

    pub async fn list_runs(
        &self,
        tenant_id: &str,
        filter: &RunFilter,
        cursor: Option<&str>,
        limit: u64,
    ) -> Result<Page<RunSummary>, EngineError> {
        runs::list(&self.inner.db.conn, tenant_id, filter, cursor, limit).await
    }

    pub async fn get_run(
        &self,
        tenant_id: &str,
        run_id: &str,
    ) -> Result<Option<RunDetail>, EngineError> {
        let Some(mut run) = runs::get(&self.inner.db.conn, tenant_id, run_id).await? else {
            return Ok(None);
        };
        let definition = self.inner.definition(&run.workflow_version_id).await?;
        for view in &mut run.steps {
            if let Some(step) = definition.step(&view.id) {
                view.uses.clone_from(&step.uses);
                view.needs.clone_from(&step.needs);
            }
            for item in &mut view.items {
                item.uses.clone_from(&view.uses);
            }
        }
        Ok(Some(run))
    }

    pub async fn cancel_run(&self, tenant_id: &str, run_id: &str) -> Result<(), EngineError> {
        if self
            .inner
            .end_run(run_id, Some(tenant_id), RunStatus::Cancelled, "cancelled")
            .await?
        {
            return Ok(());
        }
        match runs::find(&self.inner.db.conn, tenant_id, run_id).await? {
            None => Err(EngineError::NotFound(format!("run {run_id} not found"))),
            Some(row) => Err(EngineError::Conflict(format!(
                "run {run_id} already finished with status {}",
                row.status
            ))),
        }
    }

    /// Waits until the run reaches a terminal status and returns it.
    pub async fn wait_for_run(
        &self,
        tenant_id: &str,
        run_id: &str,
    ) -> Result<RunDetail, EngineError> {
        let mut events = self.subscribe();
        loop {
            let run = self
                .get_run(tenant_id, run_id)
                .await?
                .ok_or_else(|| EngineError::NotFound(format!("run {run_id} not found")))?;
            if run.summary.status.is_terminal() {
                return Ok(run);
            }
            // Events of this process arrive at once; the timeout covers runs that another
            // process finishes.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(250), async {
                loop {
                    match events.recv().await {
                        Ok(RunEvent::Run { run_id: id, .. }) if id == run_id => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            futures::future::pending::<()>().await
                        }
                    }
                }
            })
            .await;
        }
    }
}
