//! Steps that wait on the engine itself: `workflow.run` (a child run) and
//! `core.wait_for_webhook` (a delivery on a webhook source), and what follows from a run's end.
//!
//! A waiting step is a `waiting` row and nothing else: no worker, no connection, no queue task
//! unless it has a timeout. What it waits for is set up in the transaction that parks it (the
//! child run is created there; the webhook subscription row is written there), and it is resumed
//! in the transaction that produces its result (the child's last commit; the commit that accepts
//! the delivery). So a crash anywhere leaves either the step still waiting with its child or
//! subscription in place, or the step resumed: never a child started twice or an event lost.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde_json::{Value, json};
use stepwise_integrations::{ActionError, AwaitTarget, Redactor};
use stepwise_workflows::Workflow;

use crate::engine::{EngineInner, RunEvent};
use crate::error::EngineError;
use crate::executor::{Applied, Claim, Executed, Execution, Next};
use crate::status::{RunStatus, StepStatus};
use crate::store::entities::run;
use crate::store::now_ms;
use crate::store::outbox::StepTask;
use crate::store::run_state::{AttemptEnd, RunState};
use crate::store::runs::{self, NewRun};
use crate::store::unmasked::{self, Owner, Unmasked};
use crate::store::waits::{self, WebhookWait};

/// `trigger_kind` of a run started by a `workflow.run` step.
pub const CHILD_TRIGGER_KIND: &str = "workflow";

/// How deep `workflow.run` may nest: a workflow that runs itself stops here instead of
/// recursing inside one transaction.
const MAX_CHILD_DEPTH: u64 = 16;

/// A step whose action returned [`stepwise_integrations::ActionOutcome::Await`], claimed as
/// `attempt`, with what it waits for.
pub(crate) struct Awaiting {
    pub(crate) task: StepTask,
    pub(crate) attempt: i32,
    pub(crate) input: Value,
    pub(crate) target: AwaitTarget,
    pub(crate) until_ms: Option<i64>,
    pub(crate) logs: Option<Value>,
}

/// What a delivery did to the steps waiting on its source.
pub(crate) struct Resumed {
    /// Steps that were waiting on the source, matching the delivery or not.
    pub waiting: usize,
    pub resumed: usize,
}

/// A run that ended in the current transaction, with what its end affects.
pub(crate) struct EndedRun {
    id: String,
    workflow_id: String,
    workflow_version_id: String,
    concurrency_key: Option<String>,
    parent: Option<(String, String)>,
    /// The run was created in the same transaction, by a parent that reads its result itself.
    created_here: bool,
    /// Nothing names the run (see [`RunState::stands_alone`]): it has no wait and no child.
    stands_alone: bool,
    result: Result<Value, ActionError>,
    /// The true values behind `result`'s masked output.
    unmasked: Option<ChildUnmasked>,
}

/// A succeeded child run's sealed unmasked output, for the parent step that reads it.
pub(crate) struct ChildUnmasked {
    run_id: String,
    sealed: Vec<u8>,
}

impl ChildUnmasked {
    fn of(run: &run::Model) -> Option<Self> {
        let sealed = run.sealed_unmasked.clone()?;
        (run.status == RunStatus::Succeeded.as_str()).then(|| Self {
            run_id: run.id.clone(),
            sealed,
        })
    }
}

impl EndedRun {
    pub(crate) fn of(run: &run::Model, created_here: bool) -> Self {
        Self {
            id: run.id.clone(),
            workflow_id: run.workflow_id.clone(),
            workflow_version_id: run.workflow_version_id.clone(),
            concurrency_key: run.concurrency_key.clone(),
            parent: run.parent_run_id.clone().zip(run.parent_step_id.clone()),
            created_here,
            stands_alone: false,
            result: child_result(run),
            unmasked: ChildUnmasked::of(run),
        }
    }

    /// The run's end resumes no parent step (the parent stopped waiting for it).
    fn without_parent(self) -> Self {
        Self {
            parent: None,
            ..self
        }
    }

    pub(crate) fn standing_alone(self, stands_alone: bool) -> Self {
        Self {
            stands_alone,
            ..self
        }
    }
}

/// What a parent's `workflow.run` step receives from its child: the result when it
/// succeeded, else a permanent error naming the child.
fn child_result(run: &run::Model) -> Result<Value, ActionError> {
    if run.status == RunStatus::Succeeded.as_str() {
        Ok(json!({
            "run_id": run.id,
            "status": run.status,
            "output": run.output.clone().unwrap_or(Value::Null),
        }))
    } else {
        Err(ActionError::Permanent(format!(
            "child run {} of workflow `{}` {}: {}",
            run.id,
            run.workflow_name,
            run.status,
            run.error.as_deref().unwrap_or("no error recorded")
        )))
    }
}

enum Child {
    /// The child is running (or queued for a concurrency slot).
    Started,
    /// The child finished inside this transaction, or could not be started.
    Settled(Result<Value, ActionError>, Option<ChildUnmasked>),
}

impl EngineInner {
    /// Sets up what an awaiting step waits for and parks it; a child run that finishes at once
    /// (pure steps) or cannot start settles the step right away instead.
    pub(crate) async fn begin_await(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut RunState,
        workflow: &Workflow,
        awaiting: Awaiting,
        applied: &mut Applied,
    ) -> Result<Next, EngineError> {
        let Awaiting {
            task,
            attempt,
            input,
            target,
            until_ms,
            logs,
        } = awaiting;
        state.mark_awaits_started();
        match target {
            AwaitTarget::Run {
                workflow: name,
                input: child_input,
            } => {
                let child = self
                    .start_child(tx, &state.run, &task.step_id, &name, child_input, applied)
                    .await?;
                if let Child::Settled(result, child) = child {
                    let unmasked = self
                        .parent_unmasked(&state.run, &task.step_id, &result, child)
                        .await?;
                    let execution = match result {
                        Ok(output) => Execution::Output { input, output },
                        Err(error) => Execution::Failed {
                            input: Some(input),
                            error,
                        },
                    };
                    let executed = Executed {
                        execution,
                        logs: Vec::new(),
                        redactor: Redactor::default(),
                        unmasked,
                    };
                    return self.apply(
                        state,
                        &task,
                        workflow,
                        Claim::Claimed(attempt),
                        executed,
                        applied,
                    );
                }
            }
            AwaitTarget::Webhook {
                source,
                events,
                matches,
            } => {
                let wait = WebhookWait {
                    run_id: task.run_id.clone(),
                    step_id: task.step_id.clone(),
                    events,
                    matches,
                };
                waits::insert(tx, &state.run.tenant_id, &source, &wait).await?;
            }
        }
        self.park(state, &task, attempt, input, until_ms, logs, applied)?;
        Ok(Next::Done)
    }

    /// Marks the step `waiting`. The dispatch moves on, so a redelivered task of the attempt
    /// finds nothing to claim; only a timeout has a task, due at the timeout.
    #[allow(clippy::too_many_arguments)]
    fn park(
        &self,
        state: &mut RunState,
        task: &StepTask,
        attempt: i32,
        input: Value,
        until_ms: Option<i64>,
        logs: Option<Value>,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        let mut row = state.step(&task.step_id)?.clone();
        row.input = Some(input);
        row.status = StepStatus::Waiting.to_string();
        row.queued_at = Some(now_ms());
        row.wake_at = until_ms;
        row.dispatch += 1;
        if let Some(until) = until_ms {
            let wake = StepTask {
                dispatch: row.dispatch,
                ..task.clone()
            };
            applied.tasks.push((wake, until));
        }
        state.set_step(row)?;
        let end = AttemptEnd {
            status: "suspended",
            error: None,
            error_class: None,
            logs,
        };
        state.finish_attempt(&task.step_id, attempt, &self.worker_name, end);
        applied.events.push(RunEvent::Step {
            run_id: task.run_id.clone(),
            step_id: task.step_id.clone(),
            status: StepStatus::Waiting,
            attempt,
            error: None,
        });
        Ok(())
    }

    /// Creates the child run of `parent`'s step `step_row` and moves it as far as it goes in
    /// this transaction.
    async fn start_child(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        parent: &run::Model,
        step_row: &str,
        name: &str,
        input: Value,
        applied: &mut Applied,
    ) -> Result<Child, EngineError> {
        let depth = if parent.trigger_kind == CHILD_TRIGGER_KIND {
            parent.trigger["depth"].as_u64().unwrap_or(1) + 1
        } else {
            1
        };
        if depth > MAX_CHILD_DEPTH {
            return Ok(Child::Settled(
                Err(ActionError::Permanent(format!(
                    "`workflow.run` nested more than {MAX_CHILD_DEPTH} levels deep"
                ))),
                None,
            ));
        }
        let Some(version) = self.latest_version_via(tx, &parent.tenant_id, name).await? else {
            return Ok(Child::Settled(
                Err(ActionError::Permanent(format!(
                    "workflow `{name}` not found"
                ))),
                None,
            ));
        };
        if !version.enabled {
            return Ok(Child::Settled(
                Err(ActionError::Permanent(format!(
                    "workflow `{name}` is disabled"
                ))),
                None,
            ));
        }
        let input = match version.definition.prepare_input(input) {
            Ok(input) => input,
            Err(error) => {
                return Ok(Child::Settled(
                    Err(ActionError::InvalidInput(format!(
                        "input of workflow `{name}`: {error}"
                    ))),
                    None,
                ));
            }
        };
        let (child_id, started) = Box::pin(self.start_in(
            tx,
            NewRun {
                id: runs::new_run_id(),
                tenant_id: &parent.tenant_id,
                workflow: &version,
                input,
                trigger_kind: CHILD_TRIGGER_KIND,
                trigger: json!({
                    "parent_run_id": parent.id,
                    "parent_step_id": step_row,
                    "workflow": parent.workflow_name,
                    "depth": depth,
                }),
                rerun_of: None,
                parent: Some((&parent.id, step_row)),
            },
            None,
        ))
        .await?;
        let ended = started.run_ended.is_some();
        applied.absorb(started);
        if !ended {
            return Ok(Child::Started);
        }
        let child = runs::find_any(tx, &child_id).await?;
        Ok(Child::Settled(
            child_result(&child),
            ChildUnmasked::of(&child),
        ))
    }

    /// The sealed unmasked output of parent step `row_id` of `parent` that receives `result`
    /// from a child whose output masking changed: the result with the child's true output.
    async fn parent_unmasked(
        &self,
        parent: &run::Model,
        row_id: &str,
        result: &Result<Value, ActionError>,
        child: Option<ChildUnmasked>,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let (Ok(result), Some(child)) = (result, child) else {
            return Ok(None);
        };
        let tenant_id = &parent.tenant_id;
        let owner = Owner::Run {
            run_id: &child.run_id,
        };
        let values = unmasked::open(&self.vault, tenant_id, owner, &child.sealed).await?;
        let mut output = result.clone();
        output["output"] = values.output.unwrap_or(Value::Null);
        let values = Unmasked {
            input: None,
            output: Some(output),
            masked: values.masked,
        };
        let owner = Owner::Step {
            run_id: &parent.id,
            row_id,
        };
        unmasked::seal(&self.vault, tenant_id, owner, &values)
            .await
            .map(Some)
    }

    /// Resumes the waiting step `row_id` of run `run_id` with `result` as if its action had
    /// returned it, and moves the run on, in `tx`. A step that no longer waits (timed out,
    /// cancelled, run ended) is left alone.
    pub(crate) async fn resume_step(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        run_id: &str,
        row_id: &str,
        (result, child): (Result<Value, ActionError>, Option<ChildUnmasked>),
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        tx.execute(&runs::lock_statement(run_id)).await?;
        let mut state = RunState::load(tx, run_id, Some(row_id)).await?;
        if state.run.status != RunStatus::Running.as_str() {
            return Ok(());
        }
        let mut row = state.step(row_id)?.clone();
        if row.status != StepStatus::Waiting.as_str() {
            return Ok(());
        }
        let definition = self
            .definition_via(tx, &state.run.workflow_version_id)
            .await?;
        row.status = StepStatus::Running.to_string();
        row.dispatch += 1;
        row.wake_at = None;
        let attempt = row.attempts;
        let task = StepTask {
            run_id: run_id.to_owned(),
            step_id: row_id.to_owned(),
            dispatch: row.dispatch,
        };
        let input = row.input.clone();
        state.set_step(row)?;
        let unmasked = self
            .parent_unmasked(&state.run, row_id, &result, child)
            .await?;
        state.start_attempt(row_id, attempt, &self.worker_name);
        let execution = match result {
            Ok(output) => Execution::Output {
                input: input.unwrap_or(Value::Null),
                output,
            },
            Err(error) => Execution::Failed { input, error },
        };
        let executed = Executed {
            execution,
            logs: Vec::new(),
            redactor: Redactor::default(),
            unmasked,
        };
        let mut resumed = Applied::default();
        let next = self.apply(
            &mut state,
            &task,
            &definition,
            Claim::Claimed(attempt),
            executed,
            &mut resumed,
        )?;
        self.follow_up(tx, &mut state, &definition, next, &mut resumed)
            .await?;
        Box::pin(self.advance(tx, state, &definition, &mut resumed, None)).await?;
        applied.absorb(resumed);
        Ok(())
    }

    /// Resumes every step waiting on the tenant's webhook `source` that this delivery matches,
    /// in the transaction that accepts it.
    pub(crate) async fn resume_webhook_waits(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        tenant_id: &str,
        source: &str,
        event: Option<&str>,
        trigger: &Value,
        applied: &mut Applied,
    ) -> Result<Resumed, EngineError> {
        let waiting = waits::on_source(tx, tenant_id, source).await?;
        let mut resumed = Resumed {
            waiting: waiting.len(),
            resumed: 0,
        };
        for wait in waiting {
            if !crate::webhooks::event_matches(&wait.events, event)
                || !waits::matches(&wait.matches, trigger)
            {
                continue;
            }
            waits::remove(tx, &wait.run_id, &wait.step_id).await?;
            self.resume_step(
                tx,
                &wait.run_id,
                &wait.step_id,
                (Ok(trigger.clone()), None),
                applied,
            )
            .await?;
            resumed.resumed += 1;
        }
        Ok(resumed)
    }

    /// Cancels the active child runs of step row `row_id` of run `run_id`, which stopped
    /// waiting for them in this transaction (the step's row is written by the caller, so the
    /// children's end does not resume it).
    pub(crate) async fn cancel_children_of(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        run_id: &str,
        row_id: &str,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        let message =
            format!("cancelled: step `{row_id}` of its parent run {run_id} stopped waiting for it");
        self.cancel_children(tx, run_id, Some(row_id), &message, applied)
            .await
    }

    /// Cancels the active children of `run_id` (of its step row `step_row` only, if given)
    /// and, through their end, their own children. A child's end resumes no parent step:
    /// the parent's step is no longer waiting for it.
    async fn cancel_children(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        run_id: &str,
        step_row: Option<&str>,
        message: &str,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        for child in runs::active_children(tx, run_id, step_row).await? {
            let error = Some(message.to_owned());
            if runs::finish(tx, &child, None, RunStatus::Cancelled, error).await? {
                applied.cancelled.push(child.clone());
                let child = runs::find_any(tx, &child).await?;
                let ended = EndedRun::of(&child, false).without_parent();
                Box::pin(self.after_run_end(tx, ended, applied)).await?;
            }
        }
        Ok(())
    }

    /// What follows from a run's end, in the transaction that ended it: its webhook
    /// subscriptions go, its active children are cancelled, queued runs of its concurrency key
    /// may start, and a parent waiting in `workflow.run` resumes with its result.
    pub(crate) async fn after_run_end(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        ended: EndedRun,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        if !ended.stands_alone {
            waits::remove_run(tx, &ended.id).await?;
            let message = format!("cancelled: its parent run {} ended", ended.id);
            self.cancel_children(tx, &ended.id, None, &message, applied)
                .await?;
        }
        if let Some(key) = &ended.concurrency_key {
            let definition = self.definition_via(tx, &ended.workflow_version_id).await?;
            if crate::concurrency::frees_queue_slot(&definition) {
                Box::pin(self.promote_queued(tx, &ended.workflow_id, key, applied)).await?;
            }
        }
        if !ended.created_here
            && let Some((parent_run, parent_step)) = ended.parent
        {
            Box::pin(self.resume_step(
                tx,
                &parent_run,
                &parent_step,
                (ended.result, ended.unmasked),
                applied,
            ))
            .await?;
        }
        Ok(())
    }
}
