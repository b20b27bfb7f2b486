//! Step claims and step-state writes used by the executor.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    Iterable, QueryFilter, QueryOrder, QuerySelect, Set,
};
use stepwise_workflows::Workflow;

use super::entities::{step, step_attempt};
use super::now_ms;
use super::outbox::StepTask;
use super::run_state::{parse_item_id, pending_row};
use crate::error::EngineError;
use crate::status::StepStatus;

/// Moves the task's step to `running` if the task is current (same dispatch) and the step is
/// still runnable. A step found `running` was claimed by a worker that died (the queue only
/// hands a task out again after its worker stopped heart-beating), so it runs again: at least
/// once. Resuming a parked step (wake_at set) continues the same attempt.
pub async fn claim(db: &impl ConnectionTrait, task: &StepTask) -> Result<bool, EngineError> {
    let updated = step::Entity::update_many()
        .col_expr(
            step::Column::Status,
            Expr::value(StepStatus::Running.as_str()),
        )
        .col_expr(
            step::Column::Attempts,
            Expr::cust("attempts + CASE WHEN wake_at IS NULL THEN 1 ELSE 0 END"),
        )
        .col_expr(step::Column::StartedAt, Expr::value(now_ms()))
        .filter(step::Column::RunId.eq(&task.run_id))
        .filter(step::Column::StepId.eq(&task.step_id))
        .filter(step::Column::Dispatch.eq(task.dispatch))
        .filter(step::Column::Status.is_in([
            StepStatus::Queued.as_str(),
            StepStatus::Waiting.as_str(),
            StepStatus::Running.as_str(),
        ]))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

pub async fn for_run(
    db: &impl ConnectionTrait,
    run_id: &str,
) -> Result<Vec<step::Model>, EngineError> {
    Ok(step::Entity::find()
        .filter(step::Column::RunId.eq(run_id))
        .order_by_asc(step::Column::Position)
        .all(db)
        .await?)
}

/// What a step's templates can read: the run's step rows without `for_each` items, plus
/// `row_id`'s own row when it is an item. A run with a large fan-out is not read whole for
/// every item.
pub async fn for_execution(
    db: &impl ConnectionTrait,
    run_id: &str,
    row_id: &str,
) -> Result<Vec<step::Model>, EngineError> {
    Ok(step::Entity::find()
        .filter(step::Column::RunId.eq(run_id))
        .filter(
            Condition::any()
                .add(step::Column::StepId.not_like("%[%"))
                .add(step::Column::StepId.eq(row_id)),
        )
        .order_by_asc(step::Column::Position)
        .all(db)
        .await?)
}

/// The item rows of `for_each` step `step_id`. With `brief`, their JSON columns (input,
/// output, error) and sealed unmasked values are not read and come back empty: deciding what
/// runs next needs only the statuses, and reading every item's output on every item's commit
/// would make a fan-out quadratic.
pub async fn items_of(
    db: &impl ConnectionTrait,
    run_id: &str,
    step_id: &str,
    brief: bool,
) -> Result<Vec<step::Model>, EngineError> {
    let pattern = format!("{step_id}[%");
    let query = step::Entity::find()
        .filter(step::Column::RunId.eq(run_id))
        .filter(step::Column::StepId.like(pattern));
    if !brief {
        return Ok(query.all(db).await?);
    }
    let null = || Expr::cust("NULL");
    Ok(query
        .select_only()
        .columns(step::Column::iter().filter(|column| {
            !matches!(
                column,
                step::Column::Input
                    | step::Column::Output
                    | step::Column::Error
                    | step::Column::SealedUnmasked
            )
        }))
        .column_as(null(), "input")
        .column_as(null(), "output")
        .column_as(null(), "error")
        .column_as(null(), "sealed_unmasked")
        .into_model::<step::Model>()
        .all(db)
        .await?)
}

/// Records the start of attempt `attempt` (one upsert: a resumed timer continues its attempt
/// row). An earlier attempt still marked running belonged to a worker that died; it is marked
/// `lost`.
pub async fn start_attempt(
    db: &impl ConnectionTrait,
    run_id: &str,
    step_id: &str,
    attempt: i32,
    worker: &str,
) -> Result<(), EngineError> {
    let now = now_ms();
    if attempt > 1 {
        step_attempt::Entity::update_many()
            .col_expr(step_attempt::Column::Status, Expr::value("lost"))
            .col_expr(step_attempt::Column::FinishedAt, Expr::value(now))
            .filter(step_attempt::Column::RunId.eq(run_id))
            .filter(step_attempt::Column::StepId.eq(step_id))
            .filter(step_attempt::Column::Attempt.lt(attempt))
            .filter(step_attempt::Column::Status.eq("running"))
            .exec(db)
            .await?;
    }
    let row = step_attempt::ActiveModel {
        run_id: Set(run_id.to_owned()),
        step_id: Set(step_id.to_owned()),
        attempt: Set(attempt),
        status: Set("running".into()),
        worker: Set(Some(worker.to_owned())),
        error: Set(None),
        error_class: Set(None),
        logs: Set(None),
        started_at: Set(now),
        finished_at: Set(None),
        ..Default::default()
    };
    step_attempt::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                step_attempt::Column::RunId,
                step_attempt::Column::StepId,
                step_attempt::Column::Attempt,
            ])
            .update_columns([
                step_attempt::Column::Status,
                step_attempt::Column::Worker,
                step_attempt::Column::FinishedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Marks steps with a terminal status that never ran (skipped or cancelled).
pub async fn mark(
    db: &impl ConnectionTrait,
    run_id: &str,
    step_ids: &[String],
    status: StepStatus,
) -> Result<(), EngineError> {
    if step_ids.is_empty() {
        return Ok(());
    }
    step::Entity::update_many()
        .col_expr(step::Column::Status, Expr::value(status.as_str()))
        .col_expr(step::Column::FinishedAt, Expr::value(now_ms()))
        .filter(step::Column::RunId.eq(run_id))
        .filter(step::Column::StepId.is_in(step_ids.iter().map(String::as_str)))
        .exec(db)
        .await?;
    Ok(())
}

/// Makes steps runnable again for a retry of their run: pending, with no input, output or
/// error. Their attempt history stays; the retry policy counts attempts from here.
pub async fn reset(
    db: &impl ConnectionTrait,
    run_id: &str,
    step_ids: &[String],
) -> Result<(), EngineError> {
    if step_ids.is_empty() {
        return Ok(());
    }
    let null = || Expr::cust("NULL");
    step::Entity::update_many()
        .col_expr(
            step::Column::Status,
            Expr::value(StepStatus::Pending.as_str()),
        )
        .col_expr(
            step::Column::AttemptOffset,
            Expr::col(step::Column::Attempts),
        )
        .col_expr(step::Column::Input, null())
        .col_expr(step::Column::Output, null())
        .col_expr(step::Column::Error, null())
        .col_expr(step::Column::SealedUnmasked, null())
        .col_expr(step::Column::WakeAt, null())
        .col_expr(step::Column::QueuedAt, null())
        .col_expr(step::Column::StartedAt, null())
        .col_expr(step::Column::FinishedAt, null())
        .filter(step::Column::RunId.eq(run_id))
        .filter(step::Column::StepId.is_in(step_ids.iter().map(String::as_str)))
        .exec(db)
        .await?;
    Ok(())
}

/// Brings a run's step rows in line with `workflow` (a retry on another version): rows of
/// steps it no longer has are deleted, its new steps get pending rows, and positions follow
/// its order. Attempt rows stay as history.
pub async fn align_with(
    db: &impl ConnectionTrait,
    run_id: &str,
    workflow: &Workflow,
    rows: &[step::Model],
) -> Result<(), EngineError> {
    // Item rows of a `for_each` step stay while the step does.
    let gone: Vec<&str> = rows
        .iter()
        .map(|row| row.step_id.as_str())
        .filter(|row_id| {
            let step_id = parse_item_id(row_id).map_or(*row_id, |(step_id, _)| step_id);
            workflow.step(step_id).is_none()
        })
        .collect();
    if !gone.is_empty() {
        step::Entity::delete_many()
            .filter(step::Column::RunId.eq(run_id))
            .filter(step::Column::StepId.is_in(gone))
            .exec(db)
            .await?;
    }
    let mut new_rows = Vec::new();
    for (position, definition) in workflow.all_steps().enumerate() {
        let position = position as i32;
        match rows.iter().find(|row| row.step_id == definition.id) {
            Some(row) if row.position == position => {}
            Some(_) => {
                step::Entity::update_many()
                    .col_expr(step::Column::Position, Expr::value(position))
                    .filter(step::Column::RunId.eq(run_id))
                    .filter(step::Column::StepId.eq(&definition.id))
                    .exec(db)
                    .await?;
            }
            None => new_rows.push(
                pending_row(run_id, &definition.id, position)
                    .into_active_model()
                    .reset_all(),
            ),
        }
    }
    if !new_rows.is_empty() {
        step::Entity::insert_many(new_rows).exec(db).await?;
    }
    Ok(())
}
