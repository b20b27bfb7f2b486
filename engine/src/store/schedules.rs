//! Cron schedules (one row per `on.cron` entry of a workflow's latest version, with its next
//! fire time) and their fires (one row per slot, unique per schedule and slot).
//!
//! A due schedule is claimed with `FOR UPDATE SKIP LOCKED` on Postgres, so processes racing
//! for due schedules each take a different one without waiting; on SQLite the write
//! transaction already serialises them. Either way the fire row's unique (schedule, slot) index
//! is the last word: a slot whose fire row exists is never fired again.

use std::fmt;
use std::str::FromStr;

use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stepwise_workflows::{CatchUp, CronTrigger, Overlap};

use super::entities::{run, schedule, schedule_fire, workflow};
use crate::cron::Schedule;
use crate::error::EngineError;
use crate::status::RunStatus;

/// What became of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FireOutcome {
    /// A run was started.
    Started,
    /// `overlap: skip` and a run of the schedule was still active; never retried.
    Skipped,
    /// `overlap: queue`: waiting for the active run to end; started in slot order.
    Queued,
    /// The run could not be created (for instance, an input without a default).
    Failed,
}

impl FireOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Skipped => "skipped",
            Self::Queued => "queued",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for FireOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FireOutcome {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        word(text)
    }
}

/// A policy or outcome stored as its YAML word.
fn word<T: DeserializeOwned>(text: &str) -> Result<T, EngineError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| EngineError::Corrupt(format!("unknown stored word `{text}`")))
}

fn to_word<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A schedule as the scheduler reads it.
#[derive(Debug, Clone)]
pub struct Due {
    pub row: schedule::Model,
    pub catch_up: CatchUp,
    pub overlap: Overlap,
}

impl Due {
    fn of(row: schedule::Model) -> Result<Self, EngineError> {
        Ok(Self {
            catch_up: word(&row.catch_up)?,
            overlap: word(&row.overlap)?,
            row,
        })
    }
}

/// A schedule for the API: its entry, next fire time and most recent fires.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleInfo {
    pub id: String,
    /// Position in the workflow's `on.cron` list.
    pub entry: i32,
    pub schedule: String,
    pub timezone: String,
    pub catch_up: CatchUp,
    pub max_catch_up: i32,
    pub overlap: Overlap,
    /// Epoch ms; absent when the expression never matches again.
    pub next_fire_at: Option<i64>,
    /// The same instant as RFC 3339 in the schedule's time zone.
    pub next_fire_local: Option<String>,
    /// Newest first.
    pub recent_fires: Vec<FireInfo>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FireInfo {
    /// The slot, epoch ms.
    pub slot_at: i64,
    /// The slot as the run sees it in `trigger.scheduled_at`.
    pub scheduled_at: String,
    pub outcome: FireOutcome,
    pub run_id: Option<String>,
    pub error: Option<String>,
    /// When the slot was claimed.
    pub fired_at: i64,
}

/// Rewrites the workflow's schedules for its new latest version, inside the deploy
/// transaction: entries keep their row (and their fire history) by position; an entry whose
/// expression or zone changed gets a new next fire time from `now`; rows past the new list
/// are deleted with their fires, queued ones included.
pub async fn sync(
    tx: &DatabaseTransaction,
    tenant_id: &str,
    workflow_id: &str,
    workflow_name: &str,
    entries: &[CronTrigger],
    now: i64,
) -> Result<(), EngineError> {
    let existing = schedule::Entity::find()
        .filter(schedule::Column::WorkflowId.eq(workflow_id))
        .all(tx)
        .await?;
    for (index, entry) in entries.iter().enumerate() {
        let parsed = Schedule::of(entry).map_err(EngineError::InvalidInput)?;
        let timezone = entry.timezone.clone().unwrap_or_else(|| "UTC".into());
        let previous = existing.iter().find(|row| row.entry == index as i32);
        let next_fire_at = match previous {
            Some(row) if row.expression == entry.schedule && row.timezone == timezone => {
                row.next_fire_at
            }
            _ => parsed.next_after(now),
        };
        let mut active = match previous {
            Some(row) => schedule::ActiveModel::from(row.clone()),
            None => schedule::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                tenant_id: Set(tenant_id.to_owned()),
                workflow_id: Set(workflow_id.to_owned()),
                entry: Set(index as i32),
                created_at: Set(now),
                ..Default::default()
            },
        };
        active.workflow_name = Set(workflow_name.to_owned());
        active.expression = Set(entry.schedule.clone());
        active.timezone = Set(timezone);
        active.catch_up = Set(to_word(entry.catch_up));
        active.max_catch_up = Set(entry.max_catch_up() as i32);
        active.overlap = Set(to_word(entry.overlap));
        active.next_fire_at = Set(next_fire_at);
        active.updated_at = Set(now);
        if previous.is_some() {
            active.update(tx).await?;
        } else {
            active.insert(tx).await?;
        }
    }
    let removed: Vec<String> = existing
        .into_iter()
        .filter(|row| row.entry as usize >= entries.len())
        .map(|row| row.id)
        .collect();
    if !removed.is_empty() {
        schedule_fire::Entity::delete_many()
            .filter(schedule_fire::Column::ScheduleId.is_in(removed.clone()))
            .exec(tx)
            .await?;
        schedule::Entity::delete_many()
            .filter(schedule::Column::Id.is_in(removed))
            .exec(tx)
            .await?;
    }
    Ok(())
}

/// Whether any schedule of an enabled workflow is due at `now`: a plain read, so an idle pass
/// takes no write lock.
pub async fn any_due(db: &impl ConnectionTrait, now: i64) -> Result<bool, EngineError> {
    let due: Option<String> = schedule::Entity::find()
        .select_only()
        .column(schedule::Column::Id)
        .filter(schedule::Column::NextFireAt.lte(now))
        .filter(schedule::Column::WorkflowId.in_subquery(super::workflows::enabled_ids()))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(due.is_some())
}

/// Claims the most overdue schedule of an enabled workflow due at `now`: locks its row for the
/// rest of `tx`, skipping rows another process holds (Postgres). A disabled workflow's
/// schedules stay due, so enabling it catches its missed slots up under `catch_up`.
pub async fn claim_due(tx: &DatabaseTransaction, now: i64) -> Result<Option<Due>, EngineError> {
    schedule::Entity::find()
        .filter(schedule::Column::NextFireAt.lte(now))
        .filter(schedule::Column::WorkflowId.in_subquery(super::workflows::enabled_ids()))
        .order_by_asc(schedule::Column::NextFireAt)
        .limit(1)
        .lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        )
        .one(tx)
        .await?
        .map(Due::of)
        .transpose()
}

/// Locks one schedule for the rest of `tx`; `None` when it is gone or another process holds it.
pub async fn claim(
    tx: &DatabaseTransaction,
    schedule_id: &str,
) -> Result<Option<Due>, EngineError> {
    schedule::Entity::find_by_id(schedule_id.to_owned())
        .lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        )
        .one(tx)
        .await?
        .map(Due::of)
        .transpose()
}

pub async fn set_next_fire(
    tx: &DatabaseTransaction,
    schedule_id: &str,
    next_fire_at: Option<i64>,
    now: i64,
) -> Result<(), EngineError> {
    schedule::Entity::update_many()
        .col_expr(schedule::Column::NextFireAt, Expr::value(next_fire_at))
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::Id.eq(schedule_id))
        .exec(tx)
        .await?;
    Ok(())
}

/// Records the slot; returns the fire's id, or `None` when the slot was already recorded (by
/// another process, or an earlier claim).
pub async fn insert_fire(
    tx: &DatabaseTransaction,
    due: &Due,
    slot_at: i64,
    outcome: FireOutcome,
    now: i64,
) -> Result<Option<String>, EngineError> {
    let id = uuid::Uuid::now_v7().to_string();
    let inserted = schedule_fire::Entity::insert(schedule_fire::ActiveModel {
        id: Set(id.clone()),
        schedule_id: Set(due.row.id.clone()),
        tenant_id: Set(due.row.tenant_id.clone()),
        slot_at: Set(slot_at),
        outcome: Set(outcome.as_str().to_owned()),
        run_id: Set(None),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            schedule_fire::Column::ScheduleId,
            schedule_fire::Column::SlotAt,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(tx)
    .await?;
    Ok((inserted > 0).then_some(id))
}

/// Sets what became of a fire: the run it started, or why it could not.
pub async fn settle_fire(
    tx: &DatabaseTransaction,
    fire_id: &str,
    outcome: FireOutcome,
    run_id: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> Result<(), EngineError> {
    schedule_fire::Entity::update_many()
        .col_expr(
            schedule_fire::Column::Outcome,
            Expr::value(outcome.as_str()),
        )
        .col_expr(schedule_fire::Column::RunId, Expr::value(run_id))
        .col_expr(schedule_fire::Column::Error, Expr::value(error))
        .col_expr(schedule_fire::Column::UpdatedAt, Expr::value(now))
        .filter(schedule_fire::Column::Id.eq(fire_id))
        .exec(tx)
        .await?;
    Ok(())
}

/// Whether a run this schedule started is still running.
pub async fn has_active_run(tx: &DatabaseTransaction, due: &Due) -> Result<bool, EngineError> {
    let started_here = Query::select()
        .column(schedule_fire::Column::RunId)
        .from(schedule_fire::Entity)
        .and_where(schedule_fire::Column::ScheduleId.eq(&due.row.id))
        .and_where(schedule_fire::Column::RunId.is_not_null())
        .to_owned();
    let active = run::Entity::find()
        .filter(run::Column::WorkflowId.eq(&due.row.workflow_id))
        .filter(run::Column::Status.eq(RunStatus::Running.as_str()))
        .filter(run::Column::Id.in_subquery(started_here))
        .count(tx)
        .await?;
    Ok(active > 0)
}

/// The schedule's oldest queued fire: (fire id, slot).
pub async fn oldest_queued(
    tx: &DatabaseTransaction,
    schedule_id: &str,
) -> Result<Option<(String, i64)>, EngineError> {
    Ok(schedule_fire::Entity::find()
        .select_only()
        .column(schedule_fire::Column::Id)
        .column(schedule_fire::Column::SlotAt)
        .filter(schedule_fire::Column::Outcome.eq(FireOutcome::Queued.as_str()))
        .filter(schedule_fire::Column::ScheduleId.eq(schedule_id))
        .order_by_asc(schedule_fire::Column::SlotAt)
        .into_tuple()
        .one(tx)
        .await?)
}

/// Deletes up to `limit` fire rows of slots before `before` (epoch ms) that are no longer
/// queued; returns how many. Safe for "a slot fires once": a schedule's `next_fire_at` is past
/// every slot it fired, so no claim plans those slots again.
pub async fn prune_fires(
    db: &sea_orm::DatabaseConnection,
    before: i64,
    limit: u64,
) -> Result<u64, EngineError> {
    let tx = crate::db::begin_write(db).await?;
    let deleted = schedule_fire::Entity::delete_many()
        .filter(
            schedule_fire::Column::Id.in_subquery(
                Query::select()
                    .column(schedule_fire::Column::Id)
                    .from(schedule_fire::Entity)
                    .and_where(schedule_fire::Column::SlotAt.lt(before))
                    .and_where(schedule_fire::Column::Outcome.ne(FireOutcome::Queued.as_str()))
                    .limit(limit)
                    .to_owned(),
            ),
        )
        .exec(&tx)
        .await?
        .rows_affected;
    tx.commit().await?;
    Ok(deleted)
}

/// Schedules of enabled workflows that have queued fires, at most `limit`.
pub async fn with_queued(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<String>, EngineError> {
    Ok(schedule_fire::Entity::find()
        .select_only()
        .column(schedule_fire::Column::ScheduleId)
        .distinct()
        .filter(schedule_fire::Column::Outcome.eq(FireOutcome::Queued.as_str()))
        .filter(
            schedule_fire::Column::ScheduleId.in_subquery(
                Query::select()
                    .column(schedule::Column::Id)
                    .from(schedule::Entity)
                    .and_where(
                        schedule::Column::WorkflowId.in_subquery(super::workflows::enabled_ids()),
                    )
                    .to_owned(),
            ),
        )
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// The schedules of a tenant's workflow with their `fires` most recent fires each; `None`
/// when there is no such workflow.
pub async fn for_workflow(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    workflow_name: &str,
    fires: u64,
) -> Result<Option<Vec<ScheduleInfo>>, EngineError> {
    let Some(workflow) = workflow::Entity::find()
        .filter(workflow::Column::TenantId.eq(tenant_id))
        .filter(workflow::Column::Name.eq(workflow_name))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let rows = schedule::Entity::find()
        .filter(schedule::Column::WorkflowId.eq(&workflow.id))
        .order_by_asc(schedule::Column::Entry)
        .all(db)
        .await?;
    let mut infos = Vec::with_capacity(rows.len());
    for row in rows {
        let parsed = Schedule::parse(&row.expression, &row.timezone).ok();
        let local = |instant: i64| parsed.as_ref().map(|schedule| schedule.format(instant));
        let recent_fires = schedule_fire::Entity::find()
            .filter(schedule_fire::Column::ScheduleId.eq(&row.id))
            .order_by_desc(schedule_fire::Column::SlotAt)
            .limit(fires)
            .all(db)
            .await?
            .into_iter()
            .map(|fire| {
                Ok(FireInfo {
                    scheduled_at: local(fire.slot_at).unwrap_or_default(),
                    slot_at: fire.slot_at,
                    outcome: fire.outcome.parse()?,
                    run_id: fire.run_id,
                    error: fire.error,
                    fired_at: fire.created_at,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        infos.push(ScheduleInfo {
            catch_up: word(&row.catch_up)?,
            overlap: word(&row.overlap)?,
            next_fire_local: row.next_fire_at.and_then(local),
            id: row.id,
            entry: row.entry,
            schedule: row.expression,
            timezone: row.timezone,
            max_catch_up: row.max_catch_up,
            next_fire_at: row.next_fire_at,
            recent_fires,
        });
    }
    Ok(Some(infos))
}
