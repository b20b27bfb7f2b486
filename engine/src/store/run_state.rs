//! A run's rows held in memory while one write transaction moves the run forward.
//!
//! The executor reads the run and its steps once, under the run's lock (or creates them), then
//! every step result, skip, cancellation and queueing of that transaction changes these rows in
//! memory; [`RunState::flush`] writes what changed in a few statements. A chain of pure steps
//! executed inline therefore costs one read and one write per table, not a dozen statements
//! per step.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Iterable,
    ModelTrait, NotSet, QueryFilter, Set,
};
use serde_json::Value;

use super::entities::{run, step, step_attempt};
use super::now_ms;
use super::outbox::StepTask;
use crate::error::EngineError;
use crate::status::{RunStatus, StepStatus};

/// Rows per multi-row INSERT: well under SQLite's limit of bound parameters per statement.
const INSERT_CHUNK: usize = 500;

/// The row id of item `index` of `for_each` step `step_id`. Step ids never contain brackets,
/// so an item row cannot clash with a step's.
pub fn item_id(step_id: &str, index: usize) -> String {
    format!("{step_id}[{index}]")
}

/// The step id and index of an item row's id; `None` for a step's own row.
pub fn parse_item_id(row_id: &str) -> Option<(&str, usize)> {
    let (step_id, rest) = row_id.split_once('[')?;
    Some((step_id, rest.strip_suffix(']')?.parse().ok()?))
}

/// How an attempt ended.
pub struct AttemptEnd<'a> {
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub error_class: Option<&'a str>,
    pub logs: Option<Value>,
}

#[derive(Debug)]
pub struct RunState {
    pub run: run::Model,
    pub steps: Vec<step::Model>,
    /// The rows as stored when the state was read; `None` for a run this transaction creates.
    stored: Option<(run::Model, Vec<step::Model>)>,
    /// Attempt rows to upsert, keyed by (step id, attempt).
    attempts: BTreeMap<(String, i32), step_attempt::Model>,
    /// Steps whose earlier attempts still marked `running` belonged to a worker that died:
    /// (step id, first attempt not lost).
    lost_attempts: Vec<(String, i32)>,
    /// `for_each` steps whose item rows are in `steps`.
    items_loaded: HashSet<String>,
    /// Item rows read without their JSON columns (see [`super::steps::items_of`]).
    brief: HashSet<String>,
    /// Rows whose JSON columns were set here: written whole, since a brief row's stored copy
    /// does not know them.
    json_written: HashSet<String>,
    /// This transaction made the run wait on a webhook or start a child run.
    awaits_started: bool,
}

impl RunState {
    /// The state of a run this transaction creates: everything is inserted on flush.
    pub fn created(run: run::Model, steps: Vec<step::Model>) -> Self {
        Self {
            run,
            steps,
            stored: None,
            attempts: BTreeMap::new(),
            lost_attempts: Vec::new(),
            items_loaded: HashSet::new(),
            brief: HashSet::new(),
            json_written: HashSet::new(),
            awaits_started: false,
        }
    }

    /// Reads a stored run and its steps, for moving on from task row `task_row` (a step or a
    /// `for_each` item): every step row, plus the task's own row and the brief item rows of
    /// its `for_each` step. Other steps' items are read when needed
    /// ([`RunState::ensure_items`]).
    pub async fn load(
        db: &impl ConnectionTrait,
        run_id: &str,
        task_row: Option<&str>,
    ) -> Result<Self, EngineError> {
        let run = run::Entity::find_by_id(run_id.to_owned())
            .one(db)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("run {run_id} not found")))?;
        let steps = super::steps::for_execution(db, run_id, task_row.unwrap_or_default()).await?;
        let mut state = Self {
            stored: Some((run.clone(), steps.clone())),
            run,
            steps,
            attempts: BTreeMap::new(),
            lost_attempts: Vec::new(),
            items_loaded: HashSet::new(),
            brief: HashSet::new(),
            json_written: HashSet::new(),
            awaits_started: false,
        };
        if let Some(task_row) = task_row {
            let step_id = parse_item_id(task_row).map_or(task_row, |(step_id, _)| step_id);
            state.ensure_items(db, step_id).await?;
        }
        Ok(state)
    }

    /// Makes sure the item rows of `for_each` step `step_id` are in memory (brief).
    pub async fn ensure_items(
        &mut self,
        db: &impl ConnectionTrait,
        step_id: &str,
    ) -> Result<(), EngineError> {
        if !self.items_loaded.insert(step_id.to_owned()) {
            return Ok(());
        }
        let Some((_, stored_steps)) = &mut self.stored else {
            // A run created in this transaction has nothing stored yet.
            return Ok(());
        };
        let present: HashSet<String> = self.steps.iter().map(|row| row.step_id.clone()).collect();
        for row in super::steps::items_of(db, &self.run.id, step_id, true).await? {
            if present.contains(&row.step_id) {
                continue;
            }
            self.brief.insert(row.step_id.clone());
            stored_steps.push(row.clone());
            self.steps.push(row);
        }
        Ok(())
    }

    /// Reads the JSON columns of the brief item rows of `step_id` (to assemble its output).
    pub async fn load_item_results(
        &mut self,
        db: &impl ConnectionTrait,
        step_id: &str,
    ) -> Result<(), EngineError> {
        let Some((_, stored_steps)) = &mut self.stored else {
            return Ok(());
        };
        let full = super::steps::items_of(db, &self.run.id, step_id, false).await?;
        let full: HashMap<&str, &step::Model> =
            full.iter().map(|row| (row.step_id.as_str(), row)).collect();
        let (brief, json_written) = (&self.brief, &self.json_written);
        for row in self.steps.iter_mut().chain(stored_steps.iter_mut()) {
            if !brief.contains(&row.step_id) {
                continue;
            }
            let is_stored_copy_or_untouched = !json_written.contains(&row.step_id);
            if let Some(loaded) = full.get(row.step_id.as_str())
                && is_stored_copy_or_untouched
            {
                row.input.clone_from(&loaded.input);
                row.output.clone_from(&loaded.output);
                row.error.clone_from(&loaded.error);
                row.sealed_unmasked.clone_from(&loaded.sealed_unmasked);
            }
        }
        self.brief
            .retain(|row_id| parse_item_id(row_id).is_none_or(|(step, _)| step != step_id));
        Ok(())
    }

    pub fn step(&self, step_id: &str) -> Result<&step::Model, EngineError> {
        self.steps
            .iter()
            .find(|row| row.step_id == step_id)
            .ok_or_else(|| EngineError::Corrupt(format!("step {step_id} has no row")))
    }

    fn step_mut(&mut self, step_id: &str) -> Result<&mut step::Model, EngineError> {
        self.steps
            .iter_mut()
            .find(|row| row.step_id == step_id)
            .ok_or_else(|| EngineError::Corrupt(format!("step {step_id} has no row")))
    }

    /// Replaces a step's row with an updated copy.
    pub fn set_step(&mut self, row: step::Model) -> Result<(), EngineError> {
        let step_id = row.step_id.clone();
        *self.step_mut(&step_id)? = row;
        self.json_written.insert(step_id);
        Ok(())
    }

    /// The statuses of the run's steps (not of `for_each` items).
    pub fn statuses(&self) -> Result<BTreeMap<String, StepStatus>, EngineError> {
        self.steps
            .iter()
            .filter(|row| parse_item_id(&row.step_id).is_none())
            .map(|row| Ok((row.step_id.clone(), row.status.parse()?)))
            .collect()
    }

    /// The item rows of `for_each` step `step_id`, in index order.
    pub fn items(&self, step_id: &str) -> Vec<&step::Model> {
        let mut items: Vec<(usize, &step::Model)> = self
            .steps
            .iter()
            .filter_map(|row| match parse_item_id(&row.step_id) {
                Some((parent, index)) if parent == step_id => Some((index, row)),
                _ => None,
            })
            .collect();
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, row)| row).collect()
    }

    /// Gives `for_each` step `step_id` exactly `count` item rows, all pending except those that
    /// already succeeded (a retried step re-runs only the items that did not succeed).
    pub fn expand(&mut self, step_id: &str, count: usize) -> Result<(), EngineError> {
        let position = self.step(step_id)?.position;
        let mut present = vec![false; count];
        let json_written = &mut self.json_written;
        self.steps
            .retain_mut(|row| match parse_item_id(&row.step_id) {
                Some((parent, index)) if parent == step_id => {
                    if index >= count {
                        return false;
                    }
                    present[index] = true;
                    if row.status != StepStatus::Succeeded.as_str() {
                        json_written.insert(row.step_id.clone());
                        *row = step::Model {
                            attempts: row.attempts,
                            attempt_offset: row.attempts,
                            dispatch: row.dispatch,
                            ..pending_row(&row.run_id, &row.step_id, position)
                        };
                    }
                    true
                }
                _ => true,
            });
        let run_id = self.run.id.clone();
        self.items_loaded.insert(step_id.to_owned());
        for index in (0..count).filter(|index| !present[*index]) {
            self.steps
                .push(pending_row(&run_id, &item_id(step_id, index), position));
        }
        Ok(())
    }

    /// The in-memory twin of [`super::steps::claim`]: moves the task's step to `running` if
    /// the task is current and the step runnable. Returns the attempt, or `None` when the
    /// claim fails.
    pub fn claim(&mut self, task: &StepTask) -> Result<Option<i32>, EngineError> {
        let row = self.step_mut(&task.step_id)?;
        let claimable = [StepStatus::Queued, StepStatus::Waiting, StepStatus::Running]
            .iter()
            .any(|status| status.as_str() == row.status);
        if row.dispatch != task.dispatch || !claimable {
            return Ok(None);
        }
        row.status = StepStatus::Running.to_string();
        if row.wake_at.is_none() {
            row.attempts += 1;
        }
        row.started_at = Some(now_ms());
        Ok(Some(row.attempts))
    }

    /// Records the start of an attempt claimed in this transaction.
    pub fn start_attempt(&mut self, step_id: &str, attempt: i32, worker: &str) {
        if attempt > 1 {
            self.lost_attempts.push((step_id.to_owned(), attempt));
        }
        self.attempts.insert(
            (step_id.to_owned(), attempt),
            step_attempt::Model {
                id: 0,
                run_id: self.run.id.clone(),
                step_id: step_id.to_owned(),
                attempt,
                status: "running".into(),
                worker: Some(worker.to_owned()),
                error: None,
                error_class: None,
                logs: None,
                started_at: now_ms(),
                finished_at: None,
            },
        );
    }

    /// Records how an attempt ended; the attempt row may have been written by an earlier
    /// transaction (a claim), which the flush's upsert then updates.
    pub fn finish_attempt(&mut self, step_id: &str, attempt: i32, worker: &str, end: AttemptEnd) {
        let now = now_ms();
        let run_id = self.run.id.clone();
        let row = self
            .attempts
            .entry((step_id.to_owned(), attempt))
            .or_insert_with(|| step_attempt::Model {
                id: 0,
                run_id,
                step_id: step_id.to_owned(),
                attempt,
                status: String::new(),
                worker: Some(worker.to_owned()),
                error: None,
                error_class: None,
                logs: None,
                started_at: now,
                finished_at: None,
            });
        row.status = end.status.to_owned();
        row.error = end.error.map(str::to_owned);
        row.error_class = end.error_class.map(str::to_owned);
        row.logs = end.logs;
        row.finished_at = Some(now);
    }

    /// Gives steps that never ran a terminal status (skipped or cancelled).
    pub fn mark(&mut self, step_ids: &[String], status: StepStatus) {
        let now = now_ms();
        for row in self
            .steps
            .iter_mut()
            .filter(|row| step_ids.contains(&row.step_id))
        {
            row.status = status.to_string();
            row.finished_at = Some(now);
        }
    }

    /// Queues the pending steps among `step_ids` and returns their tasks, each with the next
    /// dispatch number (a step queued again after a retry never reuses an earlier task's
    /// idempotency key).
    pub fn queue_pending(&mut self, step_ids: &[String]) -> Vec<StepTask> {
        let now = now_ms();
        let run_id = self.run.id.clone();
        self.steps
            .iter_mut()
            .filter(|row| {
                step_ids.contains(&row.step_id) && row.status == StepStatus::Pending.as_str()
            })
            .map(|row| {
                row.status = StepStatus::Queued.to_string();
                row.dispatch += 1;
                row.queued_at = Some(now);
                StepTask {
                    run_id: run_id.clone(),
                    step_id: row.step_id.clone(),
                    dispatch: row.dispatch,
                }
            })
            .collect()
    }

    /// Whether this transaction creates the run (nothing of it is stored yet).
    pub fn is_new(&self) -> bool {
        self.stored.is_none()
    }

    /// Records that this transaction made the run wait on a webhook or start a child: rows
    /// that name the run (a wait, a child's parent) now exist.
    pub fn mark_awaits_started(&mut self) {
        self.awaits_started = true;
    }

    /// Whether nothing but this state's own rows refers to the run: created in this
    /// transaction, waiting on nothing, parent of no child.
    pub fn stands_alone(&self) -> bool {
        self.is_new() && !self.awaits_started
    }

    /// Puts the steps [`Self::queue_pending`] queued back to pending, for a run this
    /// transaction creates that must not start yet.
    pub fn unqueue(&mut self, tasks: &[StepTask]) {
        for row in self.steps.iter_mut().filter(|row| {
            tasks
                .iter()
                .any(|task| task.step_id == row.step_id && task.dispatch == row.dispatch)
        }) {
            row.status = StepStatus::Pending.to_string();
            row.dispatch -= 1;
            row.queued_at = None;
        }
    }

    /// Ends the run with `status`, cancelling every step that has not started. The output's
    /// unmasked values, if masking changed it, are set by the caller.
    pub fn finish(&mut self, status: RunStatus, error: Option<String>, output: Option<Value>) {
        let now = now_ms();
        self.run.status = status.to_string();
        self.run.error = error;
        self.run.output = output;
        self.run.sealed_unmasked = None;
        self.run.finished_at = Some(now);
        let unstarted = [
            StepStatus::Pending.as_str(),
            StepStatus::Queued.as_str(),
            StepStatus::Waiting.as_str(),
        ];
        for row in self
            .steps
            .iter_mut()
            .filter(|row| unstarted.contains(&row.status.as_str()))
        {
            row.status = StepStatus::Cancelled.to_string();
            row.finished_at = Some(now);
        }
    }

    /// Writes what changed since the state was read: inserts for a new run; otherwise one
    /// update per changed row, setting only the changed columns (a concurrent claim of
    /// another step of the run writes that step's row outside the run lock); then one upsert
    /// of the attempts.
    pub async fn flush(self, db: &impl ConnectionTrait) -> Result<(), EngineError> {
        let run_id = self.run.id.clone();
        match self.stored {
            None => {
                run::Entity::insert(self.run.into_active_model().reset_all())
                    .exec_without_returning(db)
                    .await?;
                insert_steps(db, &self.steps).await?;
            }
            Some((stored_run, stored_steps)) => {
                if let Some(changes) = changed_columns(&stored_run, &self.run) {
                    run::Entity::update_many()
                        .set(changes)
                        .filter(run::Column::Id.eq(&self.run.id))
                        .exec(db)
                        .await?;
                }
                let mut stored: HashMap<&str, &step::Model> = stored_steps
                    .iter()
                    .map(|row| (row.step_id.as_str(), row))
                    .collect();
                let mut added = Vec::new();
                for row in &self.steps {
                    // A brief row's stored copy does not know its JSON columns: once set
                    // here they are written whole.
                    let json_unknown = self.brief.contains(&row.step_id)
                        && self.json_written.contains(&row.step_id);
                    match stored.remove(row.step_id.as_str()) {
                        None => added.push(row.clone()),
                        // Comparing whole rows first is cheap; most rows did not change.
                        Some(before) if before == row && !json_unknown => {}
                        Some(before) => {
                            let mut changes = changed_columns(before, row);
                            if json_unknown {
                                let changes = changes
                                    .get_or_insert_with(|| before.clone().into_active_model());
                                changes.input = Set(row.input.clone());
                                changes.output = Set(row.output.clone());
                                changes.error = Set(row.error.clone());
                                changes.sealed_unmasked = Set(row.sealed_unmasked.clone());
                            }
                            if let Some(changes) = changes {
                                step::Entity::update_many()
                                    .set(changes)
                                    .filter(step::Column::RunId.eq(&row.run_id))
                                    .filter(step::Column::StepId.eq(&row.step_id))
                                    .exec(db)
                                    .await?;
                            }
                        }
                    }
                }
                if !stored.is_empty() {
                    step::Entity::delete_many()
                        .filter(step::Column::RunId.eq(&run_id))
                        .filter(step::Column::StepId.is_in(stored.into_keys()))
                        .exec(db)
                        .await?;
                }
                insert_steps(db, &added).await?;
                if stored_run.status == RunStatus::Running.as_str()
                    && self.run.status != RunStatus::Running.as_str()
                {
                    // The run ended: item rows that were never read are cancelled too.
                    cancel_unstarted(db, &run_id, self.run.finished_at.unwrap_or_else(now_ms))
                        .await?;
                }
            }
        }
        for (step_id, attempt) in &self.lost_attempts {
            step_attempt::Entity::update_many()
                .col_expr(step_attempt::Column::Status, Expr::value("lost"))
                .col_expr(step_attempt::Column::FinishedAt, Expr::value(now_ms()))
                .filter(step_attempt::Column::RunId.eq(&run_id))
                .filter(step_attempt::Column::StepId.eq(step_id))
                .filter(step_attempt::Column::Attempt.lt(*attempt))
                .filter(step_attempt::Column::Status.eq("running"))
                .exec(db)
                .await?;
        }
        if self.attempts.is_empty() {
            return Ok(());
        }
        let rows: Vec<step_attempt::ActiveModel> = self
            .attempts
            .into_values()
            .map(|row| {
                let mut active = row.into_active_model().reset_all();
                active.id = NotSet;
                active
            })
            .collect();
        for chunk in rows.chunks(INSERT_CHUNK) {
            step_attempt::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        step_attempt::Column::RunId,
                        step_attempt::Column::StepId,
                        step_attempt::Column::Attempt,
                    ])
                    .update_columns([
                        step_attempt::Column::Status,
                        step_attempt::Column::Worker,
                        step_attempt::Column::Error,
                        step_attempt::Column::ErrorClass,
                        step_attempt::Column::Logs,
                        step_attempt::Column::FinishedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        Ok(())
    }
}

/// The rows of runs created in one transaction, inserted together just before it commits: one
/// multi-row statement per table for the whole batch instead of one per run.
///
/// Only a run that [stands alone](RunState::stands_alone) and has no concurrency key may wait
/// here: until the insert, no statement of the transaction can see its rows, and no statement
/// looks for such a run (admission and queue promotion read only runs with a concurrency
/// key; waits and children are the runs that started them).
#[derive(Default)]
pub struct NewRows {
    runs: Vec<run::Model>,
    steps: Vec<step::Model>,
    attempts: Vec<step_attempt::Model>,
    tasks: Vec<(StepTask, i64)>,
}

impl NewRows {
    /// Takes `state`'s rows and the outbox rows of `tasks`; gives `state` back when its run
    /// may not wait (see the type's documentation).
    pub fn take(&mut self, state: RunState, tasks: &[(StepTask, i64)]) -> Option<RunState> {
        if !state.stands_alone()
            || state.run.concurrency_key.is_some()
            || !state.lost_attempts.is_empty()
        {
            return Some(state);
        }
        self.runs.push(state.run);
        self.steps.extend(state.steps);
        self.attempts.extend(state.attempts.into_values());
        self.tasks.extend_from_slice(tasks);
        None
    }

    /// How many runs wait here.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Inserts every row taken, runs before their steps.
    pub async fn insert(self, db: &impl ConnectionTrait) -> Result<(), EngineError> {
        for chunk in self.runs.chunks(INSERT_CHUNK) {
            run::Entity::insert_many(
                chunk
                    .iter()
                    .map(|row| row.clone().into_active_model().reset_all()),
            )
            .exec_without_returning(db)
            .await?;
        }
        insert_steps(db, &self.steps).await?;
        for chunk in self.attempts.chunks(INSERT_CHUNK) {
            step_attempt::Entity::insert_many(chunk.iter().map(|row| {
                let mut active = row.clone().into_active_model().reset_all();
                active.id = NotSet;
                active
            }))
            .exec_without_returning(db)
            .await?;
        }
        super::outbox::insert(db, &self.tasks).await
    }
}

/// Inserts step rows, a multi-row statement per [`INSERT_CHUNK`] rows.
async fn insert_steps(db: &impl ConnectionTrait, steps: &[step::Model]) -> Result<(), EngineError> {
    for chunk in steps.chunks(INSERT_CHUNK) {
        step::Entity::insert_many(
            chunk
                .iter()
                .map(|row| row.clone().into_active_model().reset_all()),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Cancels every step (and item) row of the run that has not started.
pub async fn cancel_unstarted(
    db: &impl ConnectionTrait,
    run_id: &str,
    now: i64,
) -> Result<(), EngineError> {
    step::Entity::update_many()
        .col_expr(
            step::Column::Status,
            Expr::value(StepStatus::Cancelled.as_str()),
        )
        .col_expr(step::Column::FinishedAt, Expr::value(now))
        .filter(step::Column::RunId.eq(run_id))
        .filter(step::Column::Status.is_in([
            StepStatus::Pending.as_str(),
            StepStatus::Queued.as_str(),
            StepStatus::Waiting.as_str(),
        ]))
        .exec(db)
        .await?;
    Ok(())
}

/// The columns of `current` that differ from `stored`, or `None` when nothing changed.
fn changed_columns<M, A>(stored: &M, current: &M) -> Option<A>
where
    M: ModelTrait + IntoActiveModel<A> + Clone,
    A: ActiveModelTrait<Entity = M::Entity>,
{
    let mut changes = stored.clone().into_active_model();
    let mut changed = false;
    for column in <M::Entity as EntityTrait>::Column::iter() {
        let value = current.get(column);
        if value != stored.get(column) {
            changes.set(column, value);
            changed = true;
        }
    }
    changed.then_some(changes)
}

/// A new step row: pending, never queued.
pub fn pending_row(run_id: &str, step_id: &str, position: i32) -> step::Model {
    step::Model {
        run_id: run_id.to_owned(),
        step_id: step_id.to_owned(),
        position,
        status: StepStatus::Pending.to_string(),
        attempts: 0,
        dispatch: 0,
        input: None,
        output: None,
        error: None,
        wake_at: None,
        queued_at: None,
        started_at: None,
        finished_at: None,
        attempt_offset: 0,
        sealed_unmasked: None,
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Set;

    use super::*;

    #[test]
    fn only_changed_columns_are_written() {
        let stored = pending_row("r", "a", 0);
        let mut current = stored.clone();
        assert!(changed_columns(&stored, &current).is_none());
        current.status = StepStatus::Queued.to_string();
        current.dispatch = 1;
        let changes = changed_columns(&stored, &current).expect("changed");
        assert_eq!(changes.status, Set(StepStatus::Queued.to_string()));
        assert_eq!(changes.dispatch, Set(1));
        assert!(!changes.attempts.is_set());
        assert!(!changes.started_at.is_set());
    }
}
