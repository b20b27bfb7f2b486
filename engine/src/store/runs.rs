//! Runs: creation (with their steps and the first outbox rows, in one transaction), keyset
//! listing, detail with steps and attempts, cancellation and deadline expiry.

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, Statement,
};
use serde::Serialize;
use serde_json::Value;

use super::entities::{run, step, step_attempt};
use super::now_ms;
use super::outbox::StepTask;
use super::run_state::{RunState, parse_item_id, pending_row};
use super::workflows::VersionRef;
use crate::error::EngineError;
use crate::machine;
use crate::status::{RunStatus, StepStatus};

#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// From [`new_run_id`]; taken before the run is created where it is recorded first (by
    /// the webhook delivery that starts the run).
    pub id: uuid::Uuid,
    pub tenant_id: &'a str,
    pub workflow: &'a VersionRef,
    pub input: Value,
    pub trigger_kind: &'a str,
    pub trigger: Value,
    /// The run this one re-runs.
    pub rerun_of: Option<&'a str>,
    /// The run and step (`workflow.run`) that started this one.
    pub parent: Option<(&'a str, &'a str)>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    pub workflow_version: i32,
    pub status: RunStatus,
    pub trigger_kind: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// Times the run was retried from its failed steps.
    pub retries: i32,
    /// The run this one re-runs with the same input.
    pub rerun_of: Option<String>,
    /// The run whose `workflow.run` step started this one.
    pub parent_run_id: Option<String>,
    /// The rendered `concurrency.key`, when the workflow limits concurrency.
    pub concurrency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub status: String,
    /// The worker (process) that ran the attempt.
    pub worker: Option<String>,
    pub error: Option<String>,
    pub error_class: Option<String>,
    pub logs: Option<Value>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub id: String,
    pub status: StepStatus,
    pub attempts: i32,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub wake_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempt_history: Vec<AttemptView>,
    /// The step's action, and the steps it waits for (from the run's workflow version).
    pub uses: String,
    pub needs: Vec<String>,
    /// A `for_each` step's items in index order (ids `step[index]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub items: Vec<StepView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The workflow version the run is pinned to.
    pub workflow_version_id: String,
    pub input: Value,
    pub trigger: Value,
    pub output: Option<Value>,
    pub deadline_at: Option<i64>,
    pub steps: Vec<StepView>,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    /// `trigger_kind`: `manual`, `webhook`, `cron`, `workflow`.
    pub trigger: Option<String>,
    /// Runs created at or after this time (epoch ms).
    pub created_from: Option<i64>,
    /// Runs created before this time (epoch ms).
    pub created_before: Option<i64>,
}

/// The smallest UUIDv7 text with timestamp `ms`: run ids are UUIDv7, so a creation-time range
/// is an id range, served by the same (tenant, …, id) indexes as the keyset pagination.
/// The Unix millisecond a UUIDv7 carries.
fn id_millis(id: &uuid::Uuid) -> Option<i64> {
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    i64::try_from(seconds)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

fn id_floor(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1) as u64;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn summary(row: &run::Model) -> Result<RunSummary, EngineError> {
    Ok(RunSummary {
        id: row.id.clone(),
        workflow: row.workflow_name.clone(),
        workflow_version: row.workflow_version,
        status: row.status.parse()?,
        trigger_kind: row.trigger_kind.clone(),
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        error: row.error.clone(),
        retries: row.retries,
        rerun_of: row.rerun_of.clone(),
        parent_run_id: row.parent_run_id.clone(),
        concurrency_key: row.concurrency_key.clone(),
    })
}

/// A new run's id: a UUIDv7, so ids sort by creation time.
pub fn new_run_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// A new run and its steps, in memory (written when the transaction that moves it forward
/// flushes it), with the tasks of its root steps, due now.
pub fn create(new: NewRun<'_>) -> (RunState, Vec<(StepTask, i64)>) {
    let definition = &new.workflow.definition;
    // The run's creation time is its id's own millisecond, so the time-range filters (which
    // bound the id) agree with `created_at` even when the clock ticks between the two reads.
    let now = id_millis(&new.id).unwrap_or_else(now_ms);
    let run_id = new.id.to_string();
    let run = run::Model {
        id: run_id.clone(),
        tenant_id: new.tenant_id.to_owned(),
        workflow_id: new.workflow.workflow_id.clone(),
        workflow_version_id: new.workflow.version_id.clone(),
        workflow_name: definition.name.clone(),
        workflow_version: new.workflow.version,
        status: RunStatus::Running.to_string(),
        trigger_kind: new.trigger_kind.to_owned(),
        input: new.input,
        trigger: new.trigger,
        output: None,
        error: None,
        created_at: now,
        started_at: Some(now),
        finished_at: None,
        deadline_at: definition
            .timeout
            .map(|timeout| now.saturating_add(timeout.as_millis() as i64)),
        retries: 0,
        rerun_of: new.rerun_of.map(str::to_owned),
        parent_run_id: new.parent.map(|(run_id, _)| run_id.to_owned()),
        parent_step_id: new.parent.map(|(_, step_id)| step_id.to_owned()),
        concurrency_key: None,
        sealed_unmasked: None,
        stored_bytes: 0,
    };
    let steps = definition
        .all_steps()
        .enumerate()
        .map(|(position, s)| pending_row(&run_id, &s.id, position as i32))
        .collect();
    let mut state = RunState::created(run, steps);
    let tasks = state
        .queue_pending(&machine::initial(definition))
        .into_iter()
        .map(|task| (task, now))
        .collect();
    (state, tasks)
}

pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    filter: &RunFilter,
    cursor: Option<&str>,
    limit: u64,
) -> Result<Page<RunSummary>, EngineError> {
    let limit = limit.clamp(1, 500);
    let mut query = run::Entity::find().filter(run::Column::TenantId.eq(tenant_id));
    if let Some(workflow) = &filter.workflow {
        query = query.filter(run::Column::WorkflowName.eq(workflow));
    }
    if let Some(status) = filter.status {
        query = query.filter(run::Column::Status.eq(status.as_str()));
    }
    if let Some(trigger) = &filter.trigger {
        query = query.filter(run::Column::TriggerKind.eq(trigger));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(run::Column::Id.gte(id_floor(from)));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(run::Column::Id.lt(id_floor(before)));
    }
    if let Some(cursor) = cursor {
        query = query.filter(run::Column::Id.lt(cursor));
    }
    let rows = query
        .order_by_desc(run::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > limit;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(summary)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = has_more
        .then(|| items.last().map(|item| item.id.clone()))
        .flatten();
    Ok(Page { items, next_cursor })
}

pub async fn find(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    run_id: &str,
) -> Result<Option<run::Model>, EngineError> {
    Ok(run::Entity::find_by_id(run_id.to_owned())
        .filter(run::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?)
}

/// A run of any tenant, for the engine's own bookkeeping; missing is corruption.
pub async fn find_any(db: &impl ConnectionTrait, run_id: &str) -> Result<run::Model, EngineError> {
    run::Entity::find_by_id(run_id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| EngineError::Corrupt(format!("run {run_id} missing")))
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    run_id: &str,
) -> Result<Option<RunDetail>, EngineError> {
    let Some(row) = find(db, tenant_id, run_id).await? else {
        return Ok(None);
    };
    let steps = step::Entity::find()
        .filter(step::Column::RunId.eq(run_id))
        .order_by_asc(step::Column::Position)
        .all(db)
        .await?;
    let attempts = step_attempt::Entity::find()
        .filter(step_attempt::Column::RunId.eq(run_id))
        .order_by_asc(step_attempt::Column::Attempt)
        .all(db)
        .await?;
    let steps = steps
        .into_iter()
        .map(|s| {
            Ok(StepView {
                status: s.status.parse()?,
                attempts: s.attempts,
                attempt_history: attempts
                    .iter()
                    .filter(|a| a.step_id == s.step_id)
                    .map(|a| AttemptView {
                        attempt: a.attempt,
                        status: a.status.clone(),
                        worker: a.worker.clone(),
                        error: a.error.clone(),
                        error_class: a.error_class.clone(),
                        logs: a.logs.clone(),
                        started_at: a.started_at,
                        finished_at: a.finished_at,
                    })
                    .collect(),
                id: s.step_id,
                input: s.input,
                output: s.output,
                error: s.error,
                wake_at: s.wake_at,
                queued_at: s.queued_at,
                started_at: s.started_at,
                finished_at: s.finished_at,
                uses: String::new(),
                needs: Vec::new(),
                items: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let (items, mut steps): (Vec<StepView>, Vec<StepView>) = steps
        .into_iter()
        .partition(|view| parse_item_id(&view.id).is_some());
    let mut items: Vec<(usize, StepView)> = items
        .into_iter()
        .filter_map(|view| Some((parse_item_id(&view.id)?.1, view)))
        .collect();
    items.sort_by_key(|(index, _)| *index);
    for (_, item) in items {
        let parent = parse_item_id(&item.id).map(|(step_id, _)| step_id);
        if let Some(step) = steps
            .iter_mut()
            .find(|step| Some(step.id.as_str()) == parent)
        {
            step.items.push(item);
        }
    }
    Ok(Some(RunDetail {
        summary: summary(&row)?,
        workflow_version_id: row.workflow_version_id,
        input: row.input,
        trigger: row.trigger,
        output: row.output,
        deadline_at: row.deadline_at,
        steps,
    }))
}

/// Ends a running (or queued) run with `status` and `error`, cancelling every step that has not started.
/// Returns false when the run was no longer running.
pub async fn finish(
    db: &impl ConnectionTrait,
    run_id: &str,
    tenant_id: Option<&str>,
    status: RunStatus,
    error: Option<String>,
) -> Result<bool, EngineError> {
    let now = now_ms();
    let mut update = run::Entity::update_many()
        .col_expr(run::Column::Status, Expr::value(status.as_str()))
        .col_expr(run::Column::Error, Expr::value(error))
        .col_expr(run::Column::FinishedAt, Expr::value(now))
        .filter(run::Column::Id.eq(run_id))
        .filter(
            run::Column::Status.is_in([RunStatus::Running.as_str(), RunStatus::Queued.as_str()]),
        );
    if let Some(tenant_id) = tenant_id {
        update = update.filter(run::Column::TenantId.eq(tenant_id));
    }
    let updated = update.exec(db).await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    super::run_state::cancel_unstarted(db, run_id, now).await?;
    Ok(true)
}

/// Puts a finished run back to `status` (`running`, or `queued` for a concurrency slot) for a
/// retry, optionally moving it to another version of its workflow.
pub async fn reopen(
    db: &impl ConnectionTrait,
    run_id: &str,
    status: RunStatus,
    version: Option<(&str, i32)>,
    deadline_at: Option<i64>,
) -> Result<(), EngineError> {
    let mut update = run::Entity::update_many()
        .col_expr(run::Column::Status, Expr::value(status.as_str()))
        .col_expr(run::Column::Error, Expr::cust("NULL"))
        .col_expr(run::Column::Output, Expr::cust("NULL"))
        .col_expr(run::Column::SealedUnmasked, Expr::cust("NULL"))
        .col_expr(run::Column::FinishedAt, Expr::cust("NULL"))
        .col_expr(run::Column::DeadlineAt, Expr::value(deadline_at))
        .col_expr(run::Column::Retries, Expr::col(run::Column::Retries).add(1));
    if let Some((version_id, version)) = version {
        update = update
            .col_expr(run::Column::WorkflowVersionId, Expr::value(version_id))
            .col_expr(run::Column::WorkflowVersion, Expr::value(version));
    }
    update.filter(run::Column::Id.eq(run_id)).exec(db).await?;
    Ok(())
}

/// Running runs whose deadline has passed (at most 256 per call).
pub async fn overdue(db: &DatabaseConnection) -> Result<Vec<String>, EngineError> {
    Ok(run::Entity::find()
        .select_only()
        .column(run::Column::Id)
        .filter(run::Column::Status.eq(RunStatus::Running.as_str()))
        .filter(run::Column::DeadlineAt.lt(now_ms()))
        .limit(256)
        .into_tuple()
        .all(db)
        .await?)
}

/// Statement that takes the run's write lock first in a transaction: a row lock on Postgres,
/// the database write lock on SQLite, so what the transaction reads next is current.
pub fn lock_statement(run_id: &str) -> sea_orm::sea_query::UpdateStatement {
    Query::update()
        .table(run::Entity)
        .value(run::Column::Status, Expr::col(run::Column::Status))
        .and_where(run::Column::Id.eq(run_id))
        .to_owned()
}

/// Serialises the transactions that admit or promote runs of one `concurrency` key: on
/// Postgres a transaction-scoped advisory lock on the (workflow, key) pair; SQLite's write
/// transactions are serialised already.
pub async fn lock_concurrency_key(
    tx: &impl ConnectionTrait,
    workflow_id: &str,
    key: &str,
) -> Result<(), EngineError> {
    if tx.get_database_backend() == DbBackend::Postgres {
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("{workflow_id}\u{1f}{key}").into()],
        ))
        .await?;
    }
    Ok(())
}

/// How many runs of the workflow with concurrency key `key` have `status`.
pub async fn count_with_key(
    tx: &impl ConnectionTrait,
    workflow_id: &str,
    key: &str,
    status: RunStatus,
) -> Result<u64, EngineError> {
    Ok(with_key(workflow_id, key, status).count(tx).await?)
}

/// The oldest `limit` runs of the workflow with concurrency key `key` and `status`.
pub async fn oldest_with_key(
    tx: &impl ConnectionTrait,
    workflow_id: &str,
    key: &str,
    status: RunStatus,
    limit: u64,
) -> Result<Vec<run::Model>, EngineError> {
    Ok(with_key(workflow_id, key, status)
        .order_by_asc(run::Column::Id)
        .limit(limit)
        .all(tx)
        .await?)
}

fn with_key(workflow_id: &str, key: &str, status: RunStatus) -> Select<run::Entity> {
    run::Entity::find()
        .filter(run::Column::WorkflowId.eq(workflow_id))
        .filter(run::Column::ConcurrencyKey.eq(key))
        .filter(run::Column::Status.eq(status.as_str()))
}

/// The runs a `workflow.run` step of `run_id` started that have not ended.
pub async fn active_children(
    db: &impl ConnectionTrait,
    run_id: &str,
    step_row: Option<&str>,
) -> Result<Vec<String>, EngineError> {
    let mut query = run::Entity::find()
        .select_only()
        .column(run::Column::Id)
        .filter(run::Column::ParentRunId.eq(run_id))
        .filter(
            run::Column::Status.is_in([RunStatus::Running.as_str(), RunStatus::Queued.as_str()]),
        );
    if let Some(step_row) = step_row {
        query = query.filter(run::Column::ParentStepId.eq(step_row));
    }
    Ok(query.into_tuple().all(db).await?)
}

#[cfg(test)]
mod id_floor_tests {
    use super::{id_floor, id_millis};

    #[test]
    fn a_run_is_created_in_its_ids_millisecond() {
        for _ in 0..1000 {
            let id = uuid::Uuid::now_v7();
            let ms = id_millis(&id).expect("a v7 id has a timestamp");
            assert!(id_floor(ms) <= id.to_string());
            assert!(id.to_string() < id_floor(ms + 1));
        }
    }

    #[test]
    fn id_floors_order_like_uuidv7_ids() {
        let ms = 1_764_000_000_123_i64;
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        ))
        .to_string();
        assert!(id_floor(ms) <= id, "{} <= {id}", id_floor(ms));
        assert!(id < id_floor(ms + 1), "{id} < {}", id_floor(ms + 1));
        assert_eq!(id_floor(0), "00000000-0000-0000-0000-000000000000");
    }
}
