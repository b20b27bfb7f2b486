//! Workflow `concurrency`: at most `limit` running runs per (workflow, rendered `key`).
//!
//! Admission happens in the transaction that creates a run, and promotion of a queued run in the
//! transaction that ends the run whose slot it takes, so no crash can leave a slot taken twice or
//! a queued run behind a free slot. Transactions touching one key are serialised (an advisory
//! lock on Postgres; SQLite's writers are serialised already), so concurrent starts cannot both
//! see the last free slot.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use serde_json::Value;
use stepwise_integrations::SecretValues;
use stepwise_workflows::{Concurrency, OnLimit, Workflow};

use crate::awaits::EndedRun;
use crate::engine::{EngineInner, RunEvent};
use crate::error::EngineError;
use crate::executor::{Applied, expression_context};
use crate::machine;
use crate::status::RunStatus;
use crate::store::entities::run;
use crate::store::now_ms;
use crate::store::run_state::RunState;
use crate::store::runs;

impl EngineInner {
    /// Decides whether `state`, a run this transaction creates, starts now, waits for a slot
    /// (`queue`), is cancelled (`cancel_new`) or cancels the oldest running runs of its key
    /// (`cancel_running`). A key that does not render fails the run.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut RunState,
        workflow: &Workflow,
        concurrency: &Concurrency,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        let key = match self.concurrency_key(workflow, concurrency, &state.run) {
            Ok(key) => key,
            Err(message) => {
                applied.tasks.clear();
                state.finish(RunStatus::Failed, Some(message), None);
                applied.run_ended = Some((state.run.id.clone(), RunStatus::Failed));
                return Ok(());
            }
        };
        state.run.concurrency_key = Some(key.clone());
        let workflow_id = state.run.workflow_id.clone();
        match Self::admission(tx, &workflow_id, &key, concurrency).await? {
            Admission::Start => {}
            Admission::Queue => {
                let tasks: Vec<_> = applied.tasks.drain(..).map(|(task, _)| task).collect();
                state.unqueue(&tasks);
                state.run.status = RunStatus::Queued.to_string();
                state.run.started_at = None;
                state.run.deadline_at = None;
            }
            Admission::Refuse(reason) => {
                applied.tasks.clear();
                state.finish(
                    RunStatus::Cancelled,
                    Some(format!("cancelled: {reason}")),
                    None,
                );
                applied.run_ended = Some((state.run.id.clone(), RunStatus::Cancelled));
            }
            Admission::Replace { excess } => {
                let run_id = state.run.id.clone();
                self.cancel_oldest(tx, &workflow_id, &key, excess, &run_id, applied)
                    .await?;
            }
        }
        Ok(())
    }

    /// Admission of `run`, a failed or cancelled run that `retry_run` reopens in this
    /// transaction with `workflow` (before its row says so, so it is not counted on its key),
    /// like a new run's: returns its key and whether it waits `queued`. Under `cancel_new` the
    /// retry is refused ([`EngineError::ConcurrencyLimit`]); under `cancel_running` the oldest
    /// running runs of the key are cancelled.
    pub(crate) async fn admit_retry(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        workflow: &Workflow,
        run: &run::Model,
        applied: &mut Applied,
    ) -> Result<RetryAdmission, EngineError> {
        let Some(concurrency) = &workflow.concurrency else {
            return Ok(RetryAdmission {
                key: None,
                queued: false,
            });
        };
        let key = self
            .concurrency_key(workflow, concurrency, run)
            .map_err(|message| {
                EngineError::InvalidInput(format!("run {} cannot be retried: {message}", run.id))
            })?;
        let queued = match Self::admission(tx, &run.workflow_id, &key, concurrency).await? {
            Admission::Start => false,
            Admission::Queue => true,
            Admission::Refuse(reason) => {
                return Err(EngineError::ConcurrencyLimit(format!(
                    "run {} cannot be retried now: {reason}",
                    run.id
                )));
            }
            Admission::Replace { excess } => {
                self.cancel_oldest(tx, &run.workflow_id, &key, excess, &run.id, applied)
                    .await?;
                false
            }
        };
        Ok(RetryAdmission {
            key: Some(key),
            queued,
        })
    }

    /// What the limit of `key` says about one more running run, under the key's lock (held
    /// until the transaction ends).
    async fn admission(
        tx: &DatabaseTransaction,
        workflow_id: &str,
        key: &str,
        concurrency: &Concurrency,
    ) -> Result<Admission, EngineError> {
        runs::lock_concurrency_key(tx, workflow_id, key).await?;
        let running = runs::count_with_key(tx, workflow_id, key, RunStatus::Running).await?;
        let queued = runs::count_with_key(tx, workflow_id, key, RunStatus::Queued).await?;
        let limit = u64::from(concurrency.limit);
        if running < limit && queued == 0 {
            return Ok(Admission::Start);
        }
        Ok(match concurrency.on_limit {
            OnLimit::Queue => Admission::Queue,
            OnLimit::CancelNew => Admission::Refuse(format!(
                "{running} run(s) with concurrency key `{key}` already running (limit {limit})"
            )),
            OnLimit::CancelRunning => Admission::Replace {
                excess: (running + 1).saturating_sub(limit),
            },
        })
    }

    /// Cancels the `excess` oldest running runs of `key` to make room for run `by`.
    async fn cancel_oldest(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        workflow_id: &str,
        key: &str,
        excess: u64,
        by: &str,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        let victims =
            runs::oldest_with_key(tx, workflow_id, key, RunStatus::Running, excess).await?;
        for victim in victims {
            let message = format!("cancelled: run {by} took its concurrency slot (key `{key}`)");
            if runs::finish(tx, &victim.id, None, RunStatus::Cancelled, Some(message)).await? {
                applied.cancelled.push(victim.id.clone());
                let victim = runs::find_any(tx, &victim.id).await?;
                Box::pin(self.after_run_end(tx, EndedRun::of(&victim, false), applied)).await?;
            }
        }
        Ok(())
    }

    /// After a run with concurrency key `key` ended in this transaction: starts the oldest
    /// queued runs of the key while slots are free.
    pub(crate) async fn promote_queued(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        workflow_id: &str,
        key: &str,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        runs::lock_concurrency_key(tx, workflow_id, key).await?;
        loop {
            let Some(next) = runs::oldest_with_key(tx, workflow_id, key, RunStatus::Queued, 1)
                .await?
                .pop()
            else {
                return Ok(());
            };
            let definition = self.definition_via(tx, &next.workflow_version_id).await?;
            let limit = definition
                .concurrency
                .as_ref()
                .map_or(u64::MAX, |concurrency| u64::from(concurrency.limit));
            if runs::count_with_key(tx, workflow_id, key, RunStatus::Running).await? >= limit {
                return Ok(());
            }
            let mut state = RunState::load(tx, &next.id, None).await?;
            let startable = machine::startable(&definition, &state.statuses()?);
            let now = now_ms();
            state.run.status = RunStatus::Running.to_string();
            state.run.started_at = Some(now);
            state.run.deadline_at = definition
                .timeout
                .map(|timeout| now.saturating_add(timeout.as_millis() as i64));
            let mut promoted = Applied {
                tasks: state
                    .queue_pending(&startable)
                    .into_iter()
                    .map(|task| (task, now))
                    .collect(),
                ..Applied::default()
            };
            promoted.events.push(RunEvent::Run {
                run_id: next.id.clone(),
                status: RunStatus::Running,
            });
            Box::pin(self.advance(tx, state, &definition, &mut promoted, None)).await?;
            applied.absorb(promoted);
        }
    }

    /// Ends a queued or running run from outside its steps (cancellation, deadline) and lets
    /// queued runs of its key take the slot. Returns false when the run had already ended.
    pub(crate) async fn end_run(
        self: &Arc<Self>,
        run_id: &str,
        tenant_id: Option<&str>,
        status: RunStatus,
        error: &str,
    ) -> Result<bool, EngineError> {
        let tx = crate::db::begin_write(&self.db.conn).await?;
        if !runs::finish(&tx, run_id, tenant_id, status, Some(error.to_owned())).await? {
            return Ok(false);
        }
        let mut applied = Applied::default();
        let run = runs::find_any(&tx, run_id).await?;
        self.after_run_end(&tx, EndedRun::of(&run, false), &mut applied)
            .await?;
        tx.commit().await?;
        self.cancellation_for(run_id).cancel();
        self.forget_cancellation(run_id);
        self.emit(RunEvent::Run {
            run_id: run_id.to_owned(),
            status,
        });
        self.committed(applied);
        Ok(true)
    }

    /// The rendered key (a string as is, any other value as JSON), from the context the run's
    /// steps see, before any step ran.
    fn concurrency_key(
        &self,
        workflow: &Workflow,
        concurrency: &Concurrency,
        run: &run::Model,
    ) -> Result<String, String> {
        let context = expression_context(workflow, run, &[], &SecretValues::new());
        match self
            .evaluator
            .render(&Value::String(concurrency.key.clone()), &context)
        {
            Ok(Value::String(key)) => Ok(key),
            Ok(other) => Ok(other.to_string()),
            Err(error) => Err(format!("in `concurrency.key`: {error}")),
        }
    }
}

/// What the limit of a key says about one more running run.
enum Admission {
    Start,
    Queue,
    /// `cancel_new`, with the reason.
    Refuse(String),
    /// `cancel_running`: so many of the oldest running runs make room.
    Replace {
        excess: u64,
    },
}

/// [`EngineInner::admit_retry`]'s decision.
pub(crate) struct RetryAdmission {
    /// The run's key under the retried version; `None` without `concurrency`.
    pub key: Option<String>,
    /// The run waits `queued` for a slot.
    pub queued: bool,
}

/// Whether a run that ended makes room for queued runs of its key.
pub(crate) fn frees_queue_slot(workflow: &Workflow) -> bool {
    workflow
        .concurrency
        .as_ref()
        .is_some_and(|concurrency| concurrency.on_limit == OnLimit::Queue)
}
