//! The step handler: claim a step, evaluate its condition and input, run its action, then
//! commit the result, every status change it implies and the outbox rows of the steps it makes
//! ready, in one transaction. That commit also claims one ready side-effecting step of the run
//! for the worker that made it (eager dispatch), which then executes it at once, without the
//! queue round trip; its outbox row stays, held, in case the worker dies.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};
use serde_json::{Map, Value, json};
use stepwise_integrations::catalog::workflow::RunWorkflow;
use stepwise_integrations::{
    Action, ActionContext, ActionError, ActionOutcome, AwaitTarget, Redactor, SecretValues,
    StepInvocation,
};
use stepwise_workflows::{SecretsRead, Step, Workflow};
use tokio_util::sync::CancellationToken;

use crate::awaits::EndedRun;
use crate::engine::{EngineInner, RunEvent};
use crate::error::EngineError;
use crate::machine::{self, StepEvent, StepOutcome};
use crate::status::{RunStatus, StepStatus};
use crate::store::entities::{run, step};
use crate::store::outbox::{self, Held, StepTask};
use crate::store::run_state::{AttemptEnd, NewRows, RunState, item_id, parse_item_id};
use crate::store::unmasked::{self, Owner, Unmasked};
use crate::store::{now_ms, runs, steps};

/// How often a long-running action checks whether its run was ended elsewhere.
const CANCELLATION_POLL: Duration = Duration::from_secs(2);

/// At most this many pure steps execute inside one transaction; the rest go through the
/// queue, so a long chain of pure steps cannot hold the write lock for long.
const INLINE_STEP_LIMIT: usize = 256;

/// At most this many steps one queue task executes eagerly one after the other; then the next
/// goes through the queue, so a long chain does not keep one worker slot from other runs.
const EAGER_STEP_LIMIT: usize = 256;

/// The worker slot a queue task is handled in.
pub(crate) struct Slot<'a> {
    /// The queue's name of the worker (the current generation of this process' worker): it
    /// holds the outbox rows of the steps claimed for it.
    pub(crate) worker: &'a str,
    /// The worker is shutting down: claim nothing more for it.
    pub(crate) stopping: &'a (dyn Fn() -> bool + Send + Sync),
}

/// A step the commit that made it ready claimed for the worker that made the commit, with
/// the rows its templates read as that commit wrote them.
#[derive(Debug)]
pub(crate) struct EagerStep {
    task: StepTask,
    attempt: i32,
    wake_at: Option<i64>,
    run: run::Model,
    steps: Vec<step::Model>,
}

/// What executing a step's action produced, before the state machine sees it.
pub(crate) enum Execution {
    Output {
        input: Value,
        output: Value,
    },
    ConditionFalse,
    Suspended {
        input: Value,
        until_ms: i64,
    },
    Failed {
        input: Option<Value>,
        error: ActionError,
    },
    /// A `for_each` step's list was rendered: its items run as item rows of their own.
    Expanded {
        items: Vec<Value>,
    },
    /// The action waits for something the engine observes (a child run, a webhook delivery).
    Awaiting {
        input: Value,
        target: AwaitTarget,
        until_ms: Option<i64>,
    },
}

/// An execution with what it needs at commit time.
pub(crate) struct Executed {
    pub(crate) execution: Execution,
    pub(crate) logs: Vec<stepwise_integrations::LogLine>,
    /// Masks the secrets the step resolved and the connection credentials it fetched: what is
    /// stored of the step must not show them.
    pub(crate) redactor: Redactor,
    /// The row's sealed unmasked values (`store::unmasked`) when masking changes its output or
    /// rendered list.
    pub(crate) unmasked: Option<Vec<u8>>,
}

impl Executed {
    /// A step that failed before its action ran, with nothing to mask.
    fn failed(error: ActionError) -> Self {
        Self {
            execution: Execution::Failed { input: None, error },
            logs: Vec::new(),
            redactor: Redactor::default(),
            unmasked: None,
        }
    }
}

impl Execution {
    fn redacted(self, redactor: &Redactor) -> Self {
        match self {
            Execution::Output { input, output } => Execution::Output {
                input: redactor.redacted_json(&input),
                output: redactor.redacted_json(&output),
            },
            Execution::Suspended { input, until_ms } => Execution::Suspended {
                input: redactor.redacted_json(&input),
                until_ms,
            },
            Execution::Awaiting {
                input,
                target,
                until_ms,
            } => Execution::Awaiting {
                input: redactor.redacted_json(&input),
                target: match target {
                    AwaitTarget::Run { workflow, input } => AwaitTarget::Run {
                        workflow,
                        input: redactor.redacted_json(&input),
                    },
                    AwaitTarget::Webhook {
                        source,
                        events,
                        matches,
                    } => AwaitTarget::Webhook {
                        source,
                        events,
                        matches: redactor
                            .redacted_json(&Value::Object(matches))
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    },
                },
                until_ms,
            },
            Execution::ConditionFalse => Execution::ConditionFalse,
            Execution::Expanded { items } => Execution::Expanded {
                items: items
                    .iter()
                    .map(|item| redactor.redacted_json(item))
                    .collect(),
            },
            Execution::Failed { input, error } => Execution::Failed {
                input: input.map(|input| redactor.redacted_json(&input)),
                error: error.redacted(redactor),
            },
        }
    }
}

/// Whether the step was claimed before its action ran, or is claimed by the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    Claimed(i32),
    InCommit,
}

/// At most this many items in one `for_each`.
const MAX_ITEMS: usize = 10_000;

/// The definition of a step row: a step's own, or for a `for_each` item row its step's, with
/// the item's index.
fn step_definition<'w>(
    workflow: &'w Workflow,
    row_id: &str,
) -> Result<(&'w Step, Option<usize>), EngineError> {
    let (step_id, index) = match parse_item_id(row_id) {
        Some((step_id, index)) => (step_id, Some(index)),
        None => (row_id, None),
    };
    workflow
        .step(step_id)
        .map(|step| (step, index))
        .ok_or_else(|| EngineError::Corrupt(format!("step {step_id} not in workflow")))
}

/// The expression context of a run: `inputs`, `trigger`, `run` (with `status`, and `error`
/// once the run is failing), `workflow`, `steps.<id>` and, when the workflow reads them,
/// `secrets`.
pub(crate) fn expression_context(
    workflow: &Workflow,
    run: &run::Model,
    steps: &[step::Model],
    secrets: &SecretValues,
) -> Value {
    let step_map: Map<String, Value> = steps
        .iter()
        .filter(|s| parse_item_id(&s.step_id).is_none())
        .map(|s| {
            (
                s.step_id.clone(),
                json!({ "status": s.status, "output": s.output.clone().unwrap_or(Value::Null) }),
            )
        })
        .collect();
    let mut run_view = json!({
        "id": run.id,
        "workflow": run.workflow_name,
        "version": run.workflow_version,
        "status": RunStatus::Running.as_str(),
    });
    if let Some(error) = failure_message(workflow, steps) {
        run_view["error"] = Value::String(error);
    }
    let mut context = json!({
        "inputs": run.input,
        "trigger": run.trigger,
        "run": run_view,
        "workflow": { "name": run.workflow_name, "version": run.workflow_version },
        "steps": step_map,
    });
    if !secrets.is_empty() {
        context["secrets"] = secrets.expose_as_json();
    }
    context
}

/// Adds `needs.<id>` (`result`, `output`) for the direct dependencies of `step`, which its
/// `if` reads through `success()`, `failure()` and `needs.<id>.result`.
fn with_needs(
    mut context: Value,
    workflow: &Workflow,
    step: &Step,
    steps: &[step::Model],
) -> Value {
    let needs: Map<String, Value> = step
        .needs
        .iter()
        .filter_map(|need| steps.iter().find(|row| &row.step_id == need))
        .map(|row| {
            let result = row
                .status
                .parse::<StepStatus>()
                .map(|status| machine::conclusion(workflow, &row.step_id, status))
                .map_or_else(|_| row.status.clone(), |status| status.to_string());
            (
                row.step_id.clone(),
                json!({ "result": result, "output": row.output.clone().unwrap_or(Value::Null) }),
            )
        })
        .collect();
    context["needs"] = Value::Object(needs);
    context
}

/// Why a run failed: the first main step (by finish time) that failed without
/// `on_error: continue`, with its error.
pub(crate) fn failure_message(workflow: &Workflow, steps: &[step::Model]) -> Option<String> {
    steps
        .iter()
        .filter(|row| row.status == StepStatus::Failed.as_str())
        .filter(|row| {
            workflow
                .steps
                .iter()
                .any(|s| s.id == row.step_id && s.on_error == stepwise_workflows::OnError::Fail)
        })
        .min_by_key(|row| row.finished_at)
        .map(|row| {
            let message = row
                .error
                .as_ref()
                .and_then(|error| error.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("failed");
            format!("step `{}` failed: {message}", row.step_id)
        })
}

impl EngineInner {
    /// Handles one queue task. Errors are database errors; the queue delivers the task again.
    pub(crate) async fn handle_task(
        self: &Arc<Self>,
        task: StepTask,
        slot: &Slot<'_>,
    ) -> Result<(), EngineError> {
        let run = runs::find_any(&self.db.conn, &task.run_id).await?;
        let workflow = self.definition(&run.workflow_version_id).await?;
        let eager = if self.is_pure(&workflow, &task.step_id) {
            self.handle_pure(task, run, &workflow, slot).await?
        } else {
            self.handle_with_claim(task, &workflow, slot).await?
        };
        self.execute_eagerly(&workflow, slot, eager).await
    }

    /// Executes the step a commit claimed for this worker slot, then the one its own commit
    /// claims, and so on: a chain of side-effecting steps runs in one worker slot at one
    /// commit per step. If a step cannot be finished here (a database error), its held
    /// outbox row is released to the queue, which runs it again.
    async fn execute_eagerly(
        self: &Arc<Self>,
        workflow: &Workflow,
        slot: &Slot<'_>,
        mut next: Option<EagerStep>,
    ) -> Result<(), EngineError> {
        let mut budget = EAGER_STEP_LIMIT;
        while let Some(step) = next.take() {
            budget -= 1;
            let claims_for = (budget > 0 && !(slot.stopping)()).then_some(slot.worker);
            let task = step.task.clone();
            match self.execute_claimed(workflow, step, claims_for).await {
                Ok(claimed) => next = claimed,
                Err(error) => {
                    if let Err(release) = outbox::release_held(&self.db.conn, &task).await {
                        // The row stays held until this worker generation stops beating.
                        tracing::warn!(message = "Releasing an eagerly claimed step failed.", %release);
                    }
                    self.wake_relay();
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Executes a step claimed for this worker by the commit that made it ready, from the
    /// rows that commit wrote (the run is not read again), and commits its result.
    async fn execute_claimed(
        self: &Arc<Self>,
        workflow: &Workflow,
        step: EagerStep,
        claims_for: Option<&str>,
    ) -> Result<Option<EagerStep>, EngineError> {
        crate::crash_point("step.after_eager_claim");
        self.emit_running(&step.task, step.attempt);
        let cancellation = self.cancellation_for(&step.run.id);
        let executed = self
            .execute_step(
                &self.db.conn,
                workflow,
                &step.run,
                &step.steps,
                &step.task.step_id,
                (step.attempt, step.wake_at),
                cancellation,
            )
            .await?;
        crate::crash_point("step.after_eager_action");
        let claim = Claim::Claimed(step.attempt);
        self.commit(
            &step.task,
            workflow,
            claim,
            executed,
            Source::Held,
            claims_for,
        )
        .await
    }

    /// A step whose action has side effects is claimed in its own transaction first, so a
    /// crash mid-action is visible (the step stays `running`) and the attempt is recorded.
    async fn handle_with_claim(
        self: &Arc<Self>,
        task: StepTask,
        workflow: &Workflow,
        slot: &Slot<'_>,
    ) -> Result<Option<EagerStep>, EngineError> {
        let db = &self.db.conn;
        let tx = crate::db::begin_write(db).await?;
        if !steps::claim(&tx, &task).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let run = runs::find_any(&tx, &task.run_id).await?;
        let run_status: RunStatus = run.status.parse()?;
        if run_status.is_terminal() {
            steps::mark(
                &tx,
                &run.id,
                std::slice::from_ref(&task.step_id),
                StepStatus::Cancelled,
            )
            .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let step_rows = steps::for_execution(&tx, &run.id, &task.step_id).await?;
        let this = find_step(&step_rows, &task.step_id)?;
        let attempt = this.attempts;
        let wake_at = this.wake_at;
        steps::start_attempt(&tx, &run.id, &task.step_id, attempt, &self.worker_name).await?;
        tx.commit().await?;
        self.emit_running(&task, attempt);

        let cancellation = self.cancellation_for(&run.id);
        let executed = self
            .execute_step(
                &self.db.conn,
                workflow,
                &run,
                &step_rows,
                &task.step_id,
                (attempt, wake_at),
                cancellation,
            )
            .await?;
        crate::crash_point("step.after_action");
        let claim = Claim::Claimed(attempt);
        self.commit(
            &task,
            workflow,
            claim,
            executed,
            Source::Queue,
            slot.claims_for(),
        )
        .await
    }

    /// A pure step is executed from a snapshot read and claimed in the same transaction that
    /// commits its result: one write transaction instead of two. If another worker got there
    /// first the claim fails and the result is dropped, which is harmless for a pure action.
    async fn handle_pure(
        self: &Arc<Self>,
        task: StepTask,
        run: run::Model,
        workflow: &Workflow,
        slot: &Slot<'_>,
    ) -> Result<Option<EagerStep>, EngineError> {
        if RunStatus::Running.as_str() != run.status {
            return Ok(None);
        }
        let step_rows = steps::for_execution(&self.db.conn, &run.id, &task.step_id).await?;
        let this = find_step(&step_rows, &task.step_id)?;
        let claimable = [StepStatus::Queued, StepStatus::Waiting, StepStatus::Running]
            .iter()
            .any(|status| status.as_str() == this.status);
        if this.dispatch != task.dispatch || !claimable {
            return Ok(None);
        }
        let attempt = if this.wake_at.is_some() {
            this.attempts
        } else {
            this.attempts + 1
        };
        self.emit_running(&task, attempt);
        let cancellation = self.cancellation_for(&run.id);
        let executed = self
            .execute_step(
                &self.db.conn,
                workflow,
                &run,
                &step_rows,
                &task.step_id,
                (attempt, this.wake_at),
                cancellation,
            )
            .await?;
        crate::crash_point("step.after_action");
        let claim = Claim::InCommit;
        self.commit(
            &task,
            workflow,
            claim,
            executed,
            Source::Queue,
            slot.claims_for(),
        )
        .await
    }

    fn emit_running(&self, task: &StepTask, attempt: i32) {
        self.emit(running_event(task, attempt));
    }

    /// Loads what the step's templates may read, then executes it. A tenant secret that cannot
    /// be decrypted fails the step (retrying would not bring the key back); database errors
    /// are returned for the queue to deliver the task again.
    #[allow(clippy::too_many_arguments)]
    async fn execute_step(
        &self,
        db: &impl ConnectionTrait,
        workflow: &Workflow,
        run: &run::Model,
        step_rows: &[step::Model],
        step_id: &str,
        (attempt, wake_at): (i32, Option<i64>),
        cancellation: CancellationToken,
    ) -> Result<Executed, EngineError> {
        let (step, item_index) = step_definition(workflow, step_id)?;
        let read = if workflow.references_secrets() {
            self.evaluator.step_secrets(step)
        } else {
            SecretsRead::Only(Default::default())
        };
        let secrets = match crate::store::secrets::values(db, &self.vault, &run.tenant_id, &read)
            .await
        {
            Ok(secrets) => secrets,
            Err(EngineError::Vault(error)) => {
                let error =
                    ActionError::Permanent(format!("cannot read the tenant's secrets: {error}"));
                return Ok(Executed::failed(error));
            }
            Err(error) => return Err(error),
        };
        let mut redactor = secrets.redactor_for(&read);
        // Templates read what earlier steps really returned, not the masked copy; what was
        // masked there is masked in what this step stores too.
        let step_rows = match self.unmasked_rows(&run.tenant_id, step_rows).await {
            Ok((rows, masked)) => {
                masked.iter().for_each(|value| redactor.add(value));
                rows
            }
            Err(EngineError::Vault(error)) => {
                let error = ActionError::Permanent(format!(
                    "cannot read the unmasked results of earlier steps: {error}"
                ));
                return Ok(Executed::failed(error));
            }
            Err(error) => return Err(error),
        };
        let step_rows = step_rows.as_ref();
        let mut context = with_needs(
            expression_context(workflow, run, step_rows, &secrets),
            workflow,
            step,
            step_rows,
        );
        let (execution, logs, redactor) = match (&step.for_each, item_index) {
            (Some(list), None) => (self.expand(step, list, &context), Vec::new(), redactor),
            (_, Some(index)) => {
                // The step's row holds the rendered list as its input.
                let item = step_rows
                    .iter()
                    .find(|row| row.step_id == step.id)
                    .and_then(|row| row.input.as_ref())
                    .and_then(|items| items.get(index))
                    .cloned()
                    .ok_or_else(|| {
                        EngineError::Corrupt(format!("item {index} of step {} missing", step.id))
                    })?;
                context["item"] = item;
                context["index"] = json!(index);
                let invocation = (step_id, attempt, wake_at);
                self.execute(run, step, invocation, &context, redactor, cancellation)
                    .await
            }
            (None, None) => {
                let invocation = (step_id, attempt, wake_at);
                self.execute(run, step, invocation, &context, redactor, cancellation)
                    .await
            }
        };
        let unmasked = self
            .seal_unmasked(run, step_id, &execution, &redactor)
            .await?;
        Ok(Executed {
            execution,
            logs,
            redactor,
            unmasked,
        })
    }

    /// Renders a `for_each` step's list, after its `if` (evaluated once for the whole step).
    fn expand(&self, step: &Step, list: &Value, context: &Value) -> Execution {
        if let Some(condition) = &step.condition {
            match self.evaluator.condition(condition, context) {
                Ok(true) => {}
                Ok(false) => return Execution::ConditionFalse,
                Err(error) => {
                    let error = ActionError::Permanent(format!("in `if`: {error}"));
                    return Execution::Failed { input: None, error };
                }
            }
        }
        let failed = |message: String| Execution::Failed {
            input: None,
            error: ActionError::Permanent(format!("in `for_each`: {message}")),
        };
        match self.evaluator.render(list, context) {
            Ok(Value::Array(items)) if items.len() > MAX_ITEMS => failed(format!(
                "{} items, more than the limit of {MAX_ITEMS}",
                items.len()
            )),
            Ok(Value::Array(items)) => Execution::Expanded { items },
            Ok(other) => failed(format!("expected a list, got {}", json_type(&other))),
            Err(error) => failed(error.to_string()),
        }
    }

    /// Evaluates the step's `if`, renders its `with` and runs its action (the step's row
    /// `row_id`, its attempt and wake-up time). Returns what happened, the action's log lines
    /// and what masks the secrets and credentials the step used.
    async fn execute(
        &self,
        run: &run::Model,
        step: &Step,
        (row_id, attempt, wake_at): (&str, i32, Option<i64>),
        context: &Value,
        redactor: Redactor,
        cancellation: CancellationToken,
    ) -> (Execution, Vec<stepwise_integrations::LogLine>, Redactor) {
        // A `for_each` step's `if` was evaluated when its list was expanded.
        if let Some(condition) = step.condition.as_ref().filter(|_| step.for_each.is_none()) {
            match self.evaluator.condition(condition, context) {
                Ok(true) => {}
                Ok(false) => return (Execution::ConditionFalse, Vec::new(), redactor),
                Err(error) => {
                    let error = ActionError::Permanent(format!("in `if`: {error}"));
                    return (
                        Execution::Failed { input: None, error },
                        Vec::new(),
                        redactor,
                    );
                }
            }
        }
        let input = match self
            .evaluator
            .render(&Value::Object(step.with.clone()), context)
        {
            Ok(input) => input,
            Err(error) => {
                let error = ActionError::Permanent(format!("in `with`: {error}"));
                return (
                    Execution::Failed { input: None, error },
                    Vec::new(),
                    redactor,
                );
            }
        };
        let Some(action) = self.registry.get(&step.uses) else {
            let error = ActionError::Permanent(format!("unknown action `{}`", step.uses));
            return (
                Execution::Failed {
                    input: Some(input),
                    error,
                },
                Vec::new(),
                redactor,
            );
        };
        let invocation = StepInvocation {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
            step_id: row_id.to_owned(),
            attempt: attempt.max(1) as u32,
            idempotency_key: format!("{}:{row_id}", run.id),
            wake_at: wake_at.and_then(chrono::DateTime::from_timestamp_millis),
            connection: step.connection.clone(),
            http_retry: step.http_retry,
        };
        let step_cancellation = cancellation.child_token();
        let ctx = ActionContext::new(invocation, self.services.clone(), step_cancellation.clone())
            .with_redactor(redactor);
        let limit = self.time_limit(run, step);
        let outcome = tokio::select! {
            result = action.execute_json(&ctx, input.clone()) => result,
            () = tokio::time::sleep(limit) => {
                step_cancellation.cancel();
                Err(ActionError::retryable(format!("step timed out after {limit:?}")))
            }
            () = cancellation.cancelled() => Err(ActionError::Permanent("run cancelled".into())),
            () = self.watch_for_cancellation(&run.id) => {
                step_cancellation.cancel();
                Err(ActionError::Permanent("run cancelled".into()))
            }
        };
        let logs = ctx.take_logs();
        let execution = match outcome {
            Ok(ActionOutcome::Done(output)) => Execution::Output { input, output },
            Ok(ActionOutcome::Suspend { until }) => Execution::Suspended {
                input,
                until_ms: until.timestamp_millis(),
            },
            Ok(ActionOutcome::Await { target, until }) => Execution::Awaiting {
                input,
                target,
                until_ms: until.map(|until| until.timestamp_millis()),
            },
            Err(error) => Execution::Failed {
                input: Some(input),
                error,
            },
        };
        (execution, logs, ctx.redactor())
    }

    /// `rows` with the unmasked input and output of every step row that has them sealed
    /// (item rows are not read by templates and stay as they are), and the values that were
    /// masked in them.
    async fn unmasked_rows<'r>(
        &self,
        tenant_id: &str,
        rows: &'r [step::Model],
    ) -> Result<(Cow<'r, [step::Model]>, Vec<String>), EngineError> {
        let sealed = |row: &step::Model| {
            row.sealed_unmasked.is_some() && parse_item_id(&row.step_id).is_none()
        };
        let mut masked = Vec::new();
        if !rows.iter().any(sealed) {
            return Ok((Cow::Borrowed(rows), masked));
        }
        let mut rows = rows.to_vec();
        for row in rows.iter_mut().filter(|row| sealed(row)) {
            let Some(values) = self.open_row(tenant_id, row).await? else {
                continue;
            };
            if let Some(input) = values.input {
                row.input = Some(input);
            }
            if let Some(output) = values.output {
                row.output = Some(output);
            }
            masked.extend(values.masked);
        }
        Ok((Cow::Owned(rows), masked))
    }

    /// Seals what masking will change of the row's output (or a `for_each` step's list), so
    /// later steps read the true values.
    async fn seal_unmasked(
        &self,
        run: &run::Model,
        row_id: &str,
        execution: &Execution,
        redactor: &Redactor,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        if redactor.is_empty() {
            return Ok(None);
        }
        let values = match execution {
            Execution::Output { output, .. } if redactor.redacted_json(output) != *output => {
                Unmasked {
                    output: Some(output.clone()),
                    ..Unmasked::default()
                }
            }
            Execution::Expanded { items } => {
                let items = Value::Array(items.clone());
                if redactor.redacted_json(&items) == items {
                    return Ok(None);
                }
                Unmasked {
                    input: Some(items),
                    ..Unmasked::default()
                }
            }
            _ => return Ok(None),
        };
        let values = Unmasked {
            masked: redactor.values().map(str::to_owned).collect(),
            ..values
        };
        let owner = Owner::Step {
            run_id: &run.id,
            row_id,
        };
        unmasked::seal(&self.vault, &run.tenant_id, owner, &values)
            .await
            .map(Some)
    }

    /// The sealed unmasked values of a finished `for_each` step whose items or list were
    /// masked: its list and every item's true output.
    async fn for_each_unmasked(
        &self,
        state: &RunState,
        step_id: &str,
        execution: &Execution,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let Execution::Output { output, .. } = execution else {
            return Ok(None);
        };
        let parent = state.step(step_id)?;
        let items = state.items(step_id);
        if parent.sealed_unmasked.is_none() && items.iter().all(|row| row.sealed_unmasked.is_none())
        {
            return Ok(None);
        }
        let tenant_id = &state.run.tenant_id;
        let mut masked = Vec::new();
        let mut input = None;
        if let Some(values) = self.open_row(tenant_id, parent).await? {
            input = values.input;
            masked.extend(values.masked);
        }
        let mut outputs = output.as_array().cloned().unwrap_or_default();
        for (index, item) in items.iter().enumerate() {
            let Some(values) = self.open_row(tenant_id, item).await? else {
                continue;
            };
            masked.extend(values.masked);
            if let (Some(slot), Some(output)) = (outputs.get_mut(index), values.output)
                && item.status == StepStatus::Succeeded.as_str()
            {
                *slot = output;
            }
        }
        masked.sort_unstable();
        masked.dedup();
        let values = Unmasked {
            input,
            output: Some(Value::Array(outputs)),
            masked,
        };
        let owner = Owner::Step {
            run_id: &state.run.id,
            row_id: step_id,
        };
        unmasked::seal(&self.vault, tenant_id, owner, &values)
            .await
            .map(Some)
    }

    /// The sealed unmasked values of a step row, if it has any.
    async fn open_row(
        &self,
        tenant_id: &str,
        row: &step::Model,
    ) -> Result<Option<Unmasked>, EngineError> {
        let Some(sealed) = &row.sealed_unmasked else {
            return Ok(None);
        };
        let owner = Owner::Step {
            run_id: &row.run_id,
            row_id: &row.step_id,
        };
        unmasked::open(&self.vault, tenant_id, owner, sealed)
            .await
            .map(Some)
    }

    /// Ends a run whose steps succeeded: renders the workflow's `outputs` from the steps' true
    /// results and the secrets they read, stores them masked (the secrets they read and what
    /// was masked in the steps they read) and seals the true ones when masking changed them. A
    /// failed rendering fails the run.
    async fn finish_succeeded(
        &self,
        tx: &DatabaseTransaction,
        state: &mut RunState,
        workflow: &Workflow,
        applied: &mut Applied,
    ) -> Result<(), EngineError> {
        let read = self.evaluator.templates_secrets(workflow.outputs.values());
        let secrets =
            match crate::store::secrets::values(tx, &self.vault, &state.run.tenant_id, &read).await
            {
                Ok(secrets) => secrets,
                Err(EngineError::Vault(error)) => {
                    let message =
                        format!("in `outputs`: cannot read the tenant's secrets: {error}");
                    state.finish(RunStatus::Failed, Some(message), None);
                    applied.run_ended = Some((state.run.id.clone(), RunStatus::Failed));
                    return Ok(());
                }
                Err(error) => return Err(error),
            };
        let mut redactor = secrets.redactor_for(&read);
        let (steps, masked) = self
            .unmasked_rows(&state.run.tenant_id, &state.steps)
            .await?;
        masked.iter().for_each(|value| redactor.add(value));
        let context = expression_context(workflow, &state.run, &steps, &secrets);
        let rendered = self
            .evaluator
            .render(&Value::Object(workflow.outputs.clone()), &context);
        let status = match rendered {
            Ok(output) => {
                let shown = redactor.redacted_json(&output);
                if let Err(message) = self.data_limits().check_run_output(&shown) {
                    state.finish(RunStatus::Failed, Some(message), None);
                    applied.run_ended = Some((state.run.id.clone(), RunStatus::Failed));
                    return Ok(());
                }
                let sealed = match shown != output {
                    true => {
                        let values = Unmasked {
                            output: Some(output),
                            masked: redactor.values().map(str::to_owned).collect(),
                            ..Unmasked::default()
                        };
                        let owner = Owner::Run {
                            run_id: &state.run.id,
                        };
                        let tenant_id = &state.run.tenant_id;
                        Some(unmasked::seal(&self.vault, tenant_id, owner, &values).await?)
                    }
                    false => None,
                };
                state.finish(RunStatus::Succeeded, None, Some(shown));
                state.run.sealed_unmasked = sealed;
                RunStatus::Succeeded
            }
            Err(error) => {
                let message = redactor
                    .redact_str(&format!("in `outputs`: {error}"))
                    .into_owned();
                state.finish(RunStatus::Failed, Some(message), None);
                RunStatus::Failed
            }
        };
        applied.run_ended = Some((state.run.id.clone(), status));
        Ok(())
    }

    /// Resolves once the run has ended while this step's action is still executing: a run
    /// cancelled (or timed out) through another process is noticed within one poll.
    async fn watch_for_cancellation(&self, run_id: &str) {
        loop {
            tokio::time::sleep(CANCELLATION_POLL).await;
            let status = run::Entity::find_by_id(run_id.to_owned())
                .one(&self.db.conn)
                .await;
            if let Ok(Some(run)) = status
                && run.status != RunStatus::Running.as_str()
            {
                return;
            }
        }
    }

    /// The step's timeout, capped by what is left of the run's.
    fn time_limit(&self, run: &run::Model, step: &Step) -> Duration {
        let step_limit = step.timeout.unwrap_or(Duration::from_secs(24 * 3600));
        match run.deadline_at {
            Some(deadline) => {
                let left = Duration::from_millis(deadline.saturating_sub(now_ms()).max(0) as u64);
                step_limit.min(left)
            }
            None => step_limit,
        }
    }

    /// Commits one step's result, executes the pure steps it makes ready in the same
    /// transaction, claims one ready side-effecting step for worker `claims_for` (returned,
    /// for the caller to execute at once), then relays the rest and publishes what happened.
    async fn commit(
        self: &Arc<Self>,
        task: &StepTask,
        workflow: &Workflow,
        claim: Claim,
        executed: Executed,
        source: Source,
        claims_for: Option<&str>,
    ) -> Result<Option<EagerStep>, EngineError> {
        let tx = crate::db::begin_write(&self.db.conn).await?;
        tx.execute(&runs::lock_statement(&task.run_id)).await?;
        let mut state = RunState::load(&tx, &task.run_id, Some(&task.step_id)).await?;
        if source == Source::Held {
            outbox::delete_held(&tx, task).await?;
        }
        let mut applied = Applied {
            claims_for: claims_for.map(str::to_owned),
            ..Applied::default()
        };
        let next = self.apply(&mut state, task, workflow, claim, executed, &mut applied)?;
        if !self
            .follow_up(&tx, &mut state, workflow, next, &mut applied)
            .await?
        {
            tx.rollback().await?;
            return Ok(None);
        }
        self.advance(&tx, state, workflow, &mut applied, None)
            .await?;
        tx.commit().await?;
        crate::crash_point("step.after_commit");
        let eager = applied.eager.take();
        if applied.has_queue_work() {
            // Relaying here rather than in the relay task saves a hand-off on every step; the
            // relay task still picks up whatever a crash leaves behind.
            self.relay_now().await;
        }
        self.publish(applied);
        Ok(eager)
    }

    /// Moves the run forward from the ready steps in `applied.tasks`, then writes `state` and
    /// the outbox into `tx`: the due pure steps execute right here, then the pure steps those
    /// make ready, until only side-effecting, delayed or no steps are left (or the run ends);
    /// what is left goes to the outbox. A pure action is safe to execute again, so if the
    /// transaction is lost the whole chain simply runs again; if it commits, every step's
    /// result is stored exactly as if a worker had executed it. This removes the queue round
    /// trip (outbox, relay, fetch, ack) from every pure step, and since the chain works on the
    /// rows in memory, the whole chain is written in a handful of statements.
    ///
    /// A run this transaction creates first goes through `concurrency` admission; a run that
    /// ends here has what follows from its end done here too (see
    /// [`EngineInner::after_run_end`]). Given `new_rows`, a new run's rows may wait there for
    /// the batch's one insert instead of being written now (see [`NewRows`]).
    pub(crate) async fn advance(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        mut state: RunState,
        workflow: &Workflow,
        applied: &mut Applied,
        new_rows: Option<&mut NewRows>,
    ) -> Result<(), EngineError> {
        let created_here = state.is_new();
        if created_here && let Some(concurrency) = &workflow.concurrency {
            self.admit(tx, &mut state, workflow, concurrency, applied)
                .await?;
        }
        if let Some(ended) = self
            .advance_chain(tx, state, workflow, applied, new_rows)
            .await?
        {
            self.after_run_end(tx, ended, applied).await?;
        }
        Ok(())
    }

    /// [`Self::advance`] without admission and without the consequences of the run's end;
    /// returns the run when it ended.
    async fn advance_chain(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        mut state: RunState,
        workflow: &Workflow,
        applied: &mut Applied,
        new_rows: Option<&mut NewRows>,
    ) -> Result<Option<EndedRun>, EngineError> {
        let created_here = state.is_new();
        let mut budget = INLINE_STEP_LIMIT;
        while applied.run_ended.is_none() && budget > 0 {
            let now = now_ms();
            let Some(position) = applied
                .tasks
                .iter()
                .position(|(task, due)| *due <= now && self.is_pure(workflow, &task.step_id))
            else {
                break;
            };
            let (task, _) = applied.tasks.remove(position);
            budget -= 1;
            if let (step, index) = step_definition(workflow, &task.step_id)?
                && (index.is_some() || step.for_each.is_some())
            {
                state.ensure_items(tx, &step.id).await?;
            }
            let this = state.step(&task.step_id)?;
            let attempt = if this.wake_at.is_some() {
                this.attempts
            } else {
                this.attempts + 1
            };
            let wake_at = this.wake_at;
            applied.events.push(running_event(&task, attempt));
            // A pure action finishes (or suspends) at once: there is nothing to cancel.
            let executed = self
                .execute_step(
                    tx,
                    workflow,
                    &state.run,
                    &state.steps,
                    &task.step_id,
                    (attempt, wake_at),
                    CancellationToken::new(),
                )
                .await?;
            let next = self.apply(
                &mut state,
                &task,
                workflow,
                Claim::InCommit,
                executed,
                applied,
            )?;
            self.follow_up(tx, &mut state, workflow, next, applied)
                .await?;
        }
        let ended = applied
            .run_ended
            .is_some()
            .then(|| EndedRun::of(&state.run, created_here).standing_alone(state.stands_alone()));
        let held = self.claim_eagerly(&mut state, workflow, applied)?;
        let state = match new_rows {
            Some(new_rows) => new_rows.take(state, &applied.tasks),
            None => Some(state),
        };
        if let Some(state) = state {
            state.flush(tx).await?;
            outbox::insert_holding(tx, &applied.tasks, held.as_ref()).await?;
        }
        if let Some(held) = held {
            // Its row is held, not for the relay.
            applied.tasks.retain(|(task, _)| *task != held.task);
        }
        Ok(ended)
    }

    /// Claims the first due side-effecting step of the run left in `applied.tasks` for the
    /// worker `applied.claims_for`, in this transaction, and keeps it in `applied.eager`; the
    /// returned hold marks its outbox row. Nothing is claimed once the run has ended, nor a
    /// second step (the worker executes one at a time).
    fn claim_eagerly(
        &self,
        state: &mut RunState,
        workflow: &Workflow,
        applied: &mut Applied,
    ) -> Result<Option<Held>, EngineError> {
        let Some(worker) = applied.claims_for.clone() else {
            return Ok(None);
        };
        if applied.run_ended.is_some() || applied.eager.is_some() {
            return Ok(None);
        }
        let now = now_ms();
        let Some(task) = applied
            .tasks
            .iter()
            .find(|(task, due)| {
                *due <= now && task.run_id == state.run.id && !self.is_pure(workflow, &task.step_id)
            })
            .map(|(task, _)| task.clone())
        else {
            return Ok(None);
        };
        let Some(attempt) = state.claim(&task)? else {
            return Ok(None);
        };
        state.start_attempt(&task.step_id, attempt, &self.worker_name);
        let wake_at = state.step(&task.step_id)?.wake_at;
        // What its templates read, as `steps::for_execution` would: no other item rows.
        let steps = state
            .steps
            .iter()
            .filter(|row| parse_item_id(&row.step_id).is_none() || row.step_id == task.step_id)
            .cloned()
            .collect();
        applied.eager = Some(EagerStep {
            task: task.clone(),
            attempt,
            wake_at,
            run: state.run.clone(),
            steps,
        });
        Ok(Some(Held { task, worker }))
    }

    /// Whether a task can run inside the transaction that made it ready: a pure action's
    /// step or item, or the expansion of a `for_each` step's list.
    fn is_pure(&self, workflow: &Workflow, row_id: &str) -> bool {
        match step_definition(workflow, row_id) {
            Ok((step, None)) if step.for_each.is_some() => true,
            Ok((step, _)) => self
                .registry
                .get(&step.uses)
                .is_some_and(|action| action.is_pure()),
            Err(_) => false,
        }
    }

    /// After a trigger's transaction committed: the relay task picks up its outbox rows (off
    /// the caller's path), and its events are emitted.
    pub(crate) fn committed(&self, applied: Applied) {
        if applied.has_queue_work() {
            self.wake_relay();
        }
        self.publish(applied);
    }

    /// Emits the events of a committed transaction.
    pub(crate) fn publish(&self, applied: Applied) {
        for run_id in applied.cancelled {
            self.cancellation_for(&run_id).cancel();
            self.forget_cancellation(&run_id);
            self.emit(RunEvent::Run {
                run_id,
                status: RunStatus::Cancelled,
            });
        }
        for event in applied.events {
            self.emit(event);
        }
        if let Some((run_id, status)) = applied.run_ended {
            self.forget_cancellation(&run_id);
            self.emit(RunEvent::Run { run_id, status });
        }
    }

    /// Carries out what [`Self::apply`] left to do: a `for_each` step whose last item
    /// finished gets its result, from every item's output. Returns false when the claim of
    /// the applied task failed.
    pub(crate) async fn follow_up(
        self: &Arc<Self>,
        tx: &DatabaseTransaction,
        state: &mut RunState,
        workflow: &Workflow,
        mut next: Next,
        applied: &mut Applied,
    ) -> Result<bool, EngineError> {
        loop {
            for (run_id, row_id) in std::mem::take(&mut applied.abandoned_children) {
                self.cancel_children_of(tx, &run_id, &row_id, applied)
                    .await?;
            }
            match next {
                Next::ClaimLost => return Ok(false),
                Next::Done => return Ok(true),
                Next::FinishForEach {
                    step_id,
                    failed_item,
                    redactor,
                } => {
                    state.load_item_results(tx, &step_id).await?;
                    let (task, mut executed) =
                        for_each_result(state, &step_id, failed_item, redactor)?;
                    executed.unmasked = self
                        .for_each_unmasked(state, &step_id, &executed.execution)
                        .await?;
                    let attempt = state.step(&step_id)?.attempts;
                    next = self.apply(
                        state,
                        &task,
                        workflow,
                        Claim::Claimed(attempt),
                        executed,
                        applied,
                    )?;
                }
                Next::Await(awaiting) => {
                    next = self
                        .begin_await(tx, state, workflow, awaiting, applied)
                        .await?;
                }
                Next::Succeeded => {
                    self.finish_succeeded(tx, state, workflow, applied).await?;
                    next = Next::Done;
                }
            }
        }
    }

    /// Applies one step's (or item's) result to `state`: its row, the attempt, skipped and
    /// cancelled steps, newly ready steps and items (into `applied.tasks`) and the run's end.
    pub(crate) fn apply(
        &self,
        state: &mut RunState,
        task: &StepTask,
        workflow: &Workflow,
        claim: Claim,
        executed: Executed,
        applied: &mut Applied,
    ) -> Result<Next, EngineError> {
        let Executed {
            execution,
            logs,
            redactor,
            unmasked,
        } = executed;
        // Nothing a step stores or reports may contain the value of a secret it resolved.
        let execution = execution.redacted(&redactor);
        let attempt = match claim {
            Claim::Claimed(attempt) => attempt,
            Claim::InCommit => {
                let Some(attempt) = state.claim(task)? else {
                    return Ok(Next::ClaimLost);
                };
                state.start_attempt(&task.step_id, attempt, &self.worker_name);
                attempt
            }
        };
        let logs = (!logs.is_empty())
            .then(|| serde_json::to_value(&logs))
            .transpose()?
            .map(|logs| redactor.redacted_json(&logs));
        let this = state.step(&task.step_id)?.clone();
        if this.status != StepStatus::Running.as_str() || this.dispatch != task.dispatch {
            // Cancelled (or re-dispatched) while the action ran: keep the attempt's record only.
            let end = AttemptEnd {
                status: "discarded",
                error: None,
                error_class: None,
                logs,
            };
            state.finish_attempt(&task.step_id, attempt, &self.worker_name, end);
            return Ok(Next::Done);
        }
        let execution = self
            .data_limits()
            .check(execution, &this, &mut state.run.stored_bytes);
        let (step, item_index) = step_definition(workflow, &task.step_id)?;
        // A `workflow.run` step executed after its wake-up timed out waiting (its child's
        // result resumes it without executing it): the child it started must not run on.
        if this.wake_at.is_some() && step.uses == RunWorkflow::NAME {
            applied
                .abandoned_children
                .push((task.run_id.clone(), task.step_id.clone()));
        }
        if let Execution::Awaiting {
            input,
            target,
            until_ms,
        } = execution
        {
            return Ok(Next::Await(crate::awaits::Awaiting {
                task: task.clone(),
                attempt,
                input,
                target,
                until_ms,
                logs,
            }));
        }
        if let Execution::Expanded { items } = execution {
            let count = items.len();
            let mut row = this;
            row.input = Some(Value::Array(items));
            row.sealed_unmasked = unmasked;
            state.set_step(row)?;
            state.expand(&step.id, count)?;
            return self.fan_out(state, step, &redactor, applied);
        }
        let now = now_ms();
        let event = step_event(&execution, now);
        let run_status: RunStatus = state.run.status.parse()?;
        let jitter = rand::random::<f64>();
        let retry_attempt = (attempt - this.attempt_offset).max(1) as u32;
        let (outcome, transition) = match item_index {
            Some(_) => (
                machine::on_item_event(step, run_status, retry_attempt, &event, jitter),
                None,
            ),
            None => {
                let transition = machine::on_step_event(
                    workflow,
                    run_status,
                    &state.statuses()?,
                    &task.step_id,
                    retry_attempt,
                    &event,
                    jitter,
                );
                let outcome = transition.outcome.unwrap_or(StepOutcome::Failed);
                (outcome, Some(transition))
            }
        };
        let mut row = this;
        let (step_status, attempt_status) = match outcome {
            StepOutcome::Succeeded => (StepStatus::Succeeded, "succeeded"),
            StepOutcome::Skipped => (StepStatus::Skipped, "skipped"),
            StepOutcome::Failed => (StepStatus::Failed, "failed"),
            StepOutcome::Discarded => (StepStatus::Cancelled, "discarded"),
            StepOutcome::RetryAfter(delay) => {
                row.dispatch += 1;
                applied.tasks.push((
                    StepTask {
                        dispatch: row.dispatch,
                        ..task.clone()
                    },
                    now + delay.as_millis() as i64,
                ));
                (StepStatus::Queued, "failed")
            }
            StepOutcome::WakeAfter(delay) => {
                row.dispatch += 1;
                let wake = now + delay.as_millis() as i64;
                applied.tasks.push((
                    StepTask {
                        dispatch: row.dispatch,
                        ..task.clone()
                    },
                    wake,
                ));
                row.wake_at = Some(wake);
                (StepStatus::Waiting, "suspended")
            }
        };
        row.status = step_status.to_string();
        if matches!(
            outcome,
            StepOutcome::RetryAfter(_) | StepOutcome::WakeAfter(_)
        ) {
            row.queued_at = Some(now);
        } else {
            row.finished_at = Some(now);
            row.wake_at = None;
        }
        let mut error_text = None;
        let mut error_class = None;
        match execution {
            Execution::Output { input, output } => {
                row.input = Some(input);
                row.output = Some(output);
                row.error = None;
                row.sealed_unmasked = unmasked;
            }
            Execution::Suspended { input, .. } | Execution::Awaiting { input, .. } => {
                row.input = Some(input)
            }
            Execution::ConditionFalse | Execution::Expanded { .. } => {}
            Execution::Failed { input, error } => {
                if input.is_some() {
                    row.input = input;
                }
                row.error = Some(json!({ "class": error.class(), "message": error.to_string() }));
                error_text = Some(error.to_string());
                error_class = Some(error.class());
            }
        }
        state.set_step(row)?;
        let end = AttemptEnd {
            status: attempt_status,
            error: error_text.as_deref(),
            error_class,
            logs,
        };
        state.finish_attempt(&task.step_id, attempt, &self.worker_name, end);
        applied.events.push(RunEvent::Step {
            run_id: state.run.id.clone(),
            step_id: task.step_id.clone(),
            status: step_status,
            attempt,
            error: error_text,
        });
        let Some(transition) = transition else {
            if step_status.is_terminal() {
                return self.fan_out(state, step, &redactor, applied);
            }
            return Ok(Next::Done);
        };
        state.mark(&transition.skip, StepStatus::Skipped);
        state.mark(&transition.cancel, StepStatus::Cancelled);
        let queued = state.queue_pending(&transition.enqueue);
        applied.tasks.extend(queued.into_iter().map(|t| (t, now)));
        match transition.run {
            // The workflow's `outputs` are rendered by `follow_up`, which can open sealed values.
            Some(RunStatus::Succeeded) => Ok(Next::Succeeded),
            Some(status) => {
                let message = failure_message(workflow, &state.steps);
                state.finish(status, message, None);
                applied.run_ended = Some((state.run.id.clone(), status));
                Ok(Next::Done)
            }
            None => Ok(Next::Done),
        }
    }

    /// Moves a `for_each` step on after its list expanded or one of its items finished:
    /// queues items within `max_parallel`, cancels the rest once an item failed the step, and
    /// once no item is left asks for the step to be finished.
    fn fan_out(
        &self,
        state: &mut RunState,
        step: &Step,
        redactor: &Redactor,
        applied: &mut Applied,
    ) -> Result<Next, EngineError> {
        if state.step(&step.id)?.status != StepStatus::Running.as_str() {
            // The run ended (or the step was re-dispatched) while the item ran.
            return Ok(Next::Done);
        }
        let statuses = state
            .items(&step.id)
            .iter()
            .map(|row| row.status.parse())
            .collect::<Result<Vec<StepStatus>, _>>()?;
        let plan = machine::fan_out(step, &statuses);
        let row_ids = |indexes: &[usize]| -> Vec<String> {
            indexes
                .iter()
                .map(|index| item_id(&step.id, *index))
                .collect()
        };
        state.mark(&row_ids(&plan.cancel), StepStatus::Cancelled);
        let now = now_ms();
        let queued = state.queue_pending(&row_ids(&plan.queue));
        applied.tasks.extend(queued.into_iter().map(|t| (t, now)));
        Ok(match plan.finished {
            None => Next::Done,
            Some(result) => Next::FinishForEach {
                step_id: step.id.clone(),
                failed_item: result.err(),
                redactor: redactor.clone(),
            },
        })
    }
}

/// What is left to do after [`EngineInner::apply`].
pub(crate) enum Next {
    Done,
    /// The claim made in the commit failed: another worker got there first.
    ClaimLost,
    /// Every item of the `for_each` step has finished: the step's result is due.
    FinishForEach {
        step_id: String,
        failed_item: Option<usize>,
        redactor: Redactor,
    },
    /// The run succeeded: its `outputs` are due.
    Succeeded,
    /// The step's action awaits a child run or a webhook delivery: the engine sets it up.
    Await(crate::awaits::Awaiting),
}

/// A finished `for_each` step's result, as if its action had returned it: the items' outputs
/// in order (`null` for an item that did not succeed), or the first failed item's error.
fn for_each_result(
    state: &RunState,
    step_id: &str,
    failed_item: Option<usize>,
    redactor: Redactor,
) -> Result<(StepTask, Executed), EngineError> {
    let parent = state.step(step_id)?;
    let items = state.items(step_id);
    let execution = match failed_item {
        None => Execution::Output {
            input: parent.input.clone().unwrap_or(Value::Null),
            output: items
                .iter()
                .map(|row| match row.status == StepStatus::Succeeded.as_str() {
                    true => row.output.clone().unwrap_or(Value::Null),
                    false => Value::Null,
                })
                .collect(),
        },
        Some(index) => {
            let message = items
                .get(index)
                .and_then(|row| row.error.as_ref())
                .and_then(|error| error.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("failed");
            Execution::Failed {
                input: parent.input.clone(),
                error: ActionError::Permanent(format!("item {index} failed: {message}")),
            }
        }
    };
    let task = StepTask {
        run_id: state.run.id.clone(),
        step_id: step_id.to_owned(),
        dispatch: parent.dispatch,
    };
    let executed = Executed {
        execution,
        logs: Vec::new(),
        redactor,
        unmasked: None,
    };
    Ok((task, executed))
}

/// The state machine's view of an execution.
fn step_event(execution: &Execution, now: i64) -> StepEvent {
    match execution {
        Execution::Output { .. } | Execution::Expanded { .. } => StepEvent::Succeeded,
        Execution::ConditionFalse => StepEvent::ConditionFalse,
        Execution::Suspended { until_ms, .. } => StepEvent::Suspended {
            after: Duration::from_millis(until_ms.saturating_sub(now).max(0) as u64),
        },
        // Set up by the engine before any event is computed (see `Next::Await`).
        Execution::Awaiting { until_ms, .. } => StepEvent::Suspended {
            after: Duration::from_millis(until_ms.unwrap_or(now).saturating_sub(now).max(0) as u64),
        },
        Execution::Failed { error, .. } => StepEvent::Failed {
            retryable: error.is_retryable(),
            retry_after: match error {
                ActionError::Retryable { retry_after, .. } => *retry_after,
                _ => None,
            },
        },
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What a write transaction changed, to act on once it has committed.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Steps to send through the queue, each with the time (epoch ms) it becomes due.
    pub(crate) tasks: Vec<(StepTask, i64)>,
    pub(crate) events: Vec<RunEvent>,
    pub(crate) run_ended: Option<(String, RunStatus)>,
    /// Other runs this transaction cancelled (`concurrency.on_limit: cancel_running`).
    pub(crate) cancelled: Vec<String>,
    /// Tasks of other runs moved forward in the same transaction, already in the outbox.
    pub(crate) outboxed: usize,
    /// Step rows (run id, row id) that stopped waiting for their child run without its
    /// result (timed out): [`EngineInner::follow_up`] cancels the children before the
    /// transaction commits.
    pub(crate) abandoned_children: Vec<(String, String)>,
    /// The worker a ready step of the run may be claimed for (eager dispatch).
    pub(crate) claims_for: Option<String>,
    /// The step claimed for it, to execute once the transaction has committed.
    pub(crate) eager: Option<EagerStep>,
}

impl Applied {
    /// Whether the transaction left tasks in the outbox for the relay.
    pub(crate) fn has_queue_work(&self) -> bool {
        !self.tasks.is_empty() || self.outboxed > 0
    }

    /// Takes in what moving another run forward in the same transaction changed. Its tasks
    /// are in the outbox already (and belong to another run's workflow), so they are only
    /// counted, never executed or written again.
    pub(crate) fn absorb(&mut self, other: Applied) {
        self.outboxed += other.tasks.len() + other.outboxed;
        self.events.extend(other.events);
        self.cancelled.extend(other.cancelled);
        if let Some((run_id, status)) = other.run_ended {
            self.events.push(RunEvent::Run { run_id, status });
        }
    }
}

/// Where the task being committed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Fetched from the queue.
    Queue,
    /// Claimed by the commit that made it ready; its outbox row is held.
    Held,
}

impl Slot<'_> {
    /// The worker a commit made in this slot may claim a ready step for.
    fn claims_for(&self) -> Option<&str> {
        (!(self.stopping)()).then_some(self.worker)
    }
}

fn find_step<'s>(
    step_rows: &'s [step::Model],
    step_id: &str,
) -> Result<&'s step::Model, EngineError> {
    step_rows
        .iter()
        .find(|s| s.step_id == step_id)
        .ok_or_else(|| EngineError::Corrupt(format!("step {step_id} missing")))
}

fn running_event(task: &StepTask, attempt: i32) -> RunEvent {
    RunEvent::Step {
        run_id: task.run_id.clone(),
        step_id: task.step_id.clone(),
        status: StepStatus::Running,
        attempt,
        error: None,
    }
}
