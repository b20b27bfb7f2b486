//! Cron triggers: one scheduler pass fires every due slot, each claim in one write
//! transaction that records the fire, creates the run and advances the schedule. Any number
//! of processes run passes at once; each slot fires exactly once (see `store::schedules`).

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use serde_json::json;
use stepwise_workflows::Overlap;

use crate::cron::{self, Schedule};
use crate::engine::{Engine, EngineInner};
use crate::error::EngineError;
use crate::executor::Applied;
use crate::store::now_ms;
use crate::store::runs::{self, NewRun};
use crate::store::schedules::{self as store, Due, FireOutcome, ScheduleInfo};
use crate::store::workflows::VersionRef;

/// The run's `trigger_kind` for cron runs.
pub const TRIGGER_KIND: &str = "cron";

/// Due schedules one pass claims at most; the next pass continues.
const CLAIMS_PER_PASS: usize = 64;

/// Fires shown per schedule by [`Engine::schedules`].
const RECENT_FIRES: u64 = 20;

/// What one scheduler pass did, counted by slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerPass {
    pub started: usize,
    pub skipped: usize,
    pub queued: usize,
    pub failed: usize,
}

impl SchedulerPass {
    fn count(&mut self, outcome: FireOutcome) {
        match outcome {
            FireOutcome::Started => self.started += 1,
            FireOutcome::Skipped => self.skipped += 1,
            FireOutcome::Queued => self.queued += 1,
            FireOutcome::Failed => self.failed += 1,
        }
    }
}

/// The state of one claim's transaction: the schedule, its workflow's latest version and
/// what the commit publishes.
struct Claim<'a> {
    tx: &'a DatabaseTransaction,
    due: Due,
    schedule: Schedule,
    version: Option<VersionRef>,
    published: Vec<Applied>,
    pass: SchedulerPass,
}

impl Engine {
    /// One scheduler pass at `now_ms` (epoch ms): fires the due slots of every due schedule
    /// under its catch-up and overlap policies, then starts queued slots whose schedule has no
    /// active run. The runtime calls this on a timer with the clock's time; tests pass their
    /// own time to simulate downtime.
    pub async fn fire_due_schedules(&self, now_ms: i64) -> Result<SchedulerPass, EngineError> {
        self.inner.scheduler_pass(now_ms).await
    }

    /// The schedules of a workflow with their next fire times and recent fires; `None` when
    /// the tenant has no such workflow.
    pub async fn schedules(
        &self,
        tenant_id: &str,
        workflow: &str,
    ) -> Result<Option<Vec<ScheduleInfo>>, EngineError> {
        store::for_workflow(&self.inner.db.conn, tenant_id, workflow, RECENT_FIRES).await
    }
}

impl EngineInner {
    pub(crate) async fn scheduler_pass(
        self: &Arc<Self>,
        now: i64,
    ) -> Result<SchedulerPass, EngineError> {
        let mut pass = SchedulerPass::default();
        // Read before the write transactions: on SQLite they hold the only connection.
        if store::any_due(&self.db.conn, now).await? {
            for _ in 0..CLAIMS_PER_PASS {
                let Some(claimed) = self.fire_one_due(now).await? else {
                    break;
                };
                add(&mut pass, claimed);
            }
        }
        for schedule_id in store::with_queued(&self.db.conn, CLAIMS_PER_PASS as u64).await? {
            add(&mut pass, self.start_queued(&schedule_id).await?);
        }
        Ok(pass)
    }

    /// Claims one due schedule and fires its due slots; `None` when nothing is due.
    async fn fire_one_due(
        self: &Arc<Self>,
        now: i64,
    ) -> Result<Option<SchedulerPass>, EngineError> {
        let tx = crate::db::begin_write(&self.db.conn).await?;
        let Some(due) = store::claim_due(&tx, now).await? else {
            return Ok(None);
        };
        let Some(mut claim) = self.open_claim(&tx, due).await? else {
            tx.commit().await?;
            return Ok(Some(SchedulerPass::default()));
        };
        let next_fire_at = claim.due.row.next_fire_at.unwrap_or(now);
        let plan = cron::plan(
            &claim.schedule,
            claim.due.catch_up,
            u32::try_from(claim.due.row.max_catch_up).unwrap_or(1),
            next_fire_at,
            now,
        );
        for slot in plan.fire {
            let outcome = match claim.due.overlap {
                Overlap::Allow => FireOutcome::Started,
                Overlap::Skip if store::has_active_run(&tx, &claim.due).await? => {
                    FireOutcome::Skipped
                }
                Overlap::Skip => FireOutcome::Started,
                // Behind queued slots, or behind an active run: wait, in slot order.
                Overlap::Queue
                    if store::oldest_queued(&tx, &claim.due.row.id)
                        .await?
                        .is_some()
                        || store::has_active_run(&tx, &claim.due).await? =>
                {
                    FireOutcome::Queued
                }
                Overlap::Queue => FireOutcome::Started,
            };
            let Some(fire_id) = store::insert_fire(&tx, &claim.due, slot, outcome, now).await?
            else {
                continue;
            };
            if outcome == FireOutcome::Started {
                self.start(&mut claim, &fire_id, slot).await?;
            } else {
                claim.pass.count(outcome);
            }
        }
        store::set_next_fire(&tx, &claim.due.row.id, plan.next_fire_at, now).await?;
        let Claim {
            published, pass, ..
        } = claim;
        tx.commit().await?;
        Ok(Some(self.published(published, pass)))
    }

    /// Starts the schedule's queued slots, oldest first, while it has no active run.
    async fn start_queued(
        self: &Arc<Self>,
        schedule_id: &str,
    ) -> Result<SchedulerPass, EngineError> {
        let tx = crate::db::begin_write(&self.db.conn).await?;
        let Some(due) = store::claim(&tx, schedule_id).await? else {
            return Ok(SchedulerPass::default());
        };
        let Some(mut claim) = self.open_claim(&tx, due).await? else {
            tx.commit().await?;
            return Ok(SchedulerPass::default());
        };
        // A run made only of pure steps ends inside this transaction, so several queued slots
        // may start in one claim; the bound keeps the transaction short.
        for _ in 0..cron::SLOTS_PER_CLAIM {
            if store::has_active_run(&tx, &claim.due).await? {
                break;
            }
            let Some((fire_id, slot)) = store::oldest_queued(&tx, &claim.due.row.id).await? else {
                break;
            };
            self.start(&mut claim, &fire_id, slot).await?;
        }
        let Claim {
            published, pass, ..
        } = claim;
        tx.commit().await?;
        Ok(self.published(published, pass))
    }

    /// Parses the claimed schedule and reads its workflow's latest version inside the
    /// transaction. A schedule whose stored expression no longer parses (a time zone dropped
    /// from the database) is switched off, with a warning, instead of failing every pass.
    async fn open_claim<'a>(
        &self,
        tx: &'a DatabaseTransaction,
        due: Due,
    ) -> Result<Option<Claim<'a>>, EngineError> {
        let schedule = match Schedule::parse(&due.row.expression, &due.row.timezone) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::warn!(
                    message = "Cron schedule cannot be evaluated; switched off.",
                    workflow = due.row.workflow_name,
                    %error,
                );
                store::set_next_fire(tx, &due.row.id, None, now_ms()).await?;
                return Ok(None);
            }
        };
        let version = self
            .latest_version_via(tx, &due.row.tenant_id, &due.row.workflow_name)
            .await?;
        Ok(Some(Claim {
            tx,
            due,
            schedule,
            version,
            published: Vec::new(),
            pass: SchedulerPass::default(),
        }))
    }

    /// Creates the run of a slot whose fire row is `fire_id` and records it on the fire.
    async fn start(
        self: &Arc<Self>,
        claim: &mut Claim<'_>,
        fire_id: &str,
        slot: i64,
    ) -> Result<(), EngineError> {
        let now = now_ms();
        let Some(version) = &claim.version else {
            return Err(EngineError::Corrupt(format!(
                "schedule {} outlived its workflow `{}`",
                claim.due.row.id, claim.due.row.workflow_name
            )));
        };
        let input = match version.definition.prepare_input(json!({})) {
            Ok(input) => input,
            Err(error) => {
                let error = format!("cannot start without input: {error}");
                store::settle_fire(
                    claim.tx,
                    fire_id,
                    FireOutcome::Failed,
                    None,
                    Some(&error),
                    now,
                )
                .await?;
                claim.pass.count(FireOutcome::Failed);
                return Ok(());
            }
        };
        let trigger = json!({
            "kind": TRIGGER_KIND,
            "schedule": claim.due.row.expression,
            "timezone": claim.due.row.timezone,
            "scheduled_at": claim.schedule.format(slot),
        });
        let (run_id, applied) = self
            .start_in(
                claim.tx,
                NewRun {
                    id: runs::new_run_id(),
                    tenant_id: &claim.due.row.tenant_id,
                    workflow: version,
                    input,
                    trigger_kind: TRIGGER_KIND,
                    trigger,
                    rerun_of: None,
                    parent: None,
                },
                None,
            )
            .await?;
        store::settle_fire(
            claim.tx,
            fire_id,
            FireOutcome::Started,
            Some(&run_id),
            None,
            now,
        )
        .await?;
        claim.published.push(applied);
        claim.pass.count(FireOutcome::Started);
        Ok(())
    }

    /// After a claim's commit: hands its runs' work to the relay and emits their events.
    fn published(&self, published: Vec<Applied>, pass: SchedulerPass) -> SchedulerPass {
        for applied in published {
            self.committed(applied);
        }
        pass
    }
}

fn add(total: &mut SchedulerPass, pass: SchedulerPass) {
    total.started += pass.started;
    total.skipped += pass.skipped;
    total.queued += pass.queued;
    total.failed += pass.failed;
}
