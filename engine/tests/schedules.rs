//! Cron triggers on every backend, driven by an injected clock
//! (`Engine::fire_due_schedules(now)`), so minutes and hours of schedule pass instantly:
//! exactly-once slots with several engines racing, catch-up after downtime, overlap policies,
//! and redeploys that change or remove a schedule.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, TimeZone, Utc};
use common::{Harness, databases, services};
use stepwise_engine::vault::{KeyRing, LocalKeyProvider, MasterKey};
use stepwise_engine::{
    Engine, FireOutcome, RunFilter, RunStatus, RuntimeOptions, ScheduleInfo, SchedulerPass,
};
use stepwise_integrations::Registry;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A harness whose runtime fires no schedules: the tests are the clock.
async fn harness(database: &common::TestDatabase) -> Harness {
    Harness::start_with(
        database,
        RuntimeOptions {
            concurrency: 4,
            poll_interval: Duration::from_millis(100),
            scheduler_interval: None,
            ..RuntimeOptions::default()
        },
    )
    .await
}

fn workflow(name: &str, cron: &str, step: &str) -> String {
    format!("name: {name}\non:\n  cron: [{cron}]\nsteps:\n  - {step}\n")
}

const LOG: &str = "{ id: tick, uses: core.log, with: { message: tick } }";
const NAP: &str = "{ id: nap, uses: core.sleep, with: { duration: 1h } }";

async fn schedules(harness: &Harness, name: &str) -> Vec<ScheduleInfo> {
    harness
        .engine
        .schedules(&harness.tenant_id, name)
        .await
        .expect("schedules")
        .expect("workflow exists")
}

async fn next_fire(harness: &Harness, name: &str) -> i64 {
    schedules(harness, name).await[0]
        .next_fire_at
        .expect("a next fire time")
}

async fn pass(harness: &Harness, now: i64) -> SchedulerPass {
    harness
        .engine
        .fire_due_schedules(now)
        .await
        .unwrap_or_else(|error| panic!("[{}] scheduler pass: {error}", harness.label))
}

fn utc(slot: i64) -> String {
    Utc.timestamp_millis_opt(slot)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `trigger.scheduled_at` of every cron run of the workflow, oldest run first.
async fn cron_slots(engine: &Engine, tenant_id: &str, name: &str) -> Vec<String> {
    let page = engine
        .list_runs(
            tenant_id,
            &RunFilter {
                workflow: Some(name.into()),
                ..RunFilter::default()
            },
            None,
            500,
        )
        .await
        .expect("list runs");
    assert!(page.next_cursor.is_none(), "more than 500 runs");
    let mut slots = Vec::new();
    for summary in page.items.iter().rev() {
        assert_eq!(summary.trigger_kind, "cron");
        let run = engine
            .get_run(tenant_id, &summary.id)
            .await
            .expect("get run")
            .expect("run exists");
        slots.push(run.trigger["scheduled_at"].as_str().unwrap().to_owned());
    }
    slots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_slot_fires_once_with_engines_racing() {
    for database in databases().await {
        let harness = harness(&database).await;
        let label = harness.label;
        harness
            .deploy(&workflow(
                "minutely",
                "{ schedule: '* * * * *', catch_up: all, overlap: allow }",
                LOG,
            ))
            .await;
        let keys = Arc::new(LocalKeyProvider::new(KeyRing::new(vec![
            MasterKey::generate(),
        ])));
        let mut engines = vec![harness.engine.clone()];
        for _ in 0..3 {
            engines.push(
                Engine::open_with_keys(
                    &database.url,
                    Arc::new(Registry::builtin()),
                    services(),
                    keys.clone(),
                )
                .await
                .expect("open engine"),
            );
        }
        let first = next_fire(&harness, "minutely").await;
        // Ten on-time minutes, each raced by four engines three times, then 100 minutes of
        // downtime caught up (91 slots, in claims of 32) by the same race.
        let mut clock: Vec<i64> = (0..10).map(|k| first + k * MINUTE + 1_000).collect();
        clock.push(first + 100 * MINUTE);
        let mut started = 0;
        for now in &clock {
            let racers = engines.iter().flat_map(|engine| {
                (0..3).map(move |_| {
                    let engine = engine.clone();
                    let now = *now;
                    tokio::spawn(async move { engine.fire_due_schedules(now).await })
                })
            });
            for result in futures::future::join_all(racers).await {
                started += result.expect("join").expect("pass").started;
            }
            // Claims of 32 may leave slots due: keep passing until none is.
            loop {
                let more = engines[0].fire_due_schedules(*now).await.expect("pass");
                started += more.started;
                if more.started == 0 {
                    break;
                }
            }
        }
        let expected: Vec<String> = (0..=100).map(|k| utc(first + k * MINUTE)).collect();
        let mut fired = cron_slots(&harness.engine, &harness.tenant_id, "minutely").await;
        fired.sort();
        let unique: BTreeSet<&String> = fired.iter().collect();
        assert_eq!(unique.len(), fired.len(), "[{label}] a slot fired twice");
        assert_eq!(fired, expected, "[{label}]");
        assert_eq!(started, expected.len(), "[{label}]");
        for engine in &engines[1..] {
            engine.database().close().await;
        }
        harness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_is_caught_up_per_policy() {
    for database in databases().await {
        let harness = harness(&database).await;
        let label = harness.label;
        let policies = [
            ("none", "catch_up: none"),
            ("latest", "catch_up: latest"),
            ("all-two", "catch_up: all, max_catch_up: 2"),
            ("all", "catch_up: all"),
        ];
        for (name, policy) in policies {
            harness
                .deploy(&workflow(
                    name,
                    &format!("{{ schedule: '0 * * * *', {policy}, overlap: allow }}"),
                    LOG,
                ))
                .await;
        }
        let first = next_fire(&harness, "none").await;
        for (name, _) in policies {
            assert_eq!(next_fire(&harness, name).await, first, "[{label}] {name}");
        }
        // Down from before `first` until half past the third hour after it.
        let now = first + 3 * HOUR + 30 * MINUTE;
        let done = pass(&harness, now).await;
        assert_eq!(done.started, 1 + 2 + 4, "[{label}]");
        let slots = |hours: &[i64]| {
            hours
                .iter()
                .map(|h| utc(first + h * HOUR))
                .collect::<Vec<_>>()
        };
        let engine = &harness.engine;
        let tenant = &harness.tenant_id;
        assert_eq!(
            cron_slots(engine, tenant, "none").await,
            slots(&[]),
            "[{label}]"
        );
        assert_eq!(
            cron_slots(engine, tenant, "latest").await,
            slots(&[3]),
            "[{label}]"
        );
        assert_eq!(
            cron_slots(engine, tenant, "all-two").await,
            slots(&[2, 3]),
            "[{label}]"
        );
        assert_eq!(
            cron_slots(engine, tenant, "all").await,
            slots(&[0, 1, 2, 3]),
            "[{label}]"
        );
        for (name, _) in policies {
            assert_eq!(
                next_fire(&harness, name).await,
                first + 4 * HOUR,
                "[{label}] {name}"
            );
        }
        // Back up: the next slot fires on time under every policy, `none` included.
        let done = pass(&harness, first + 4 * HOUR + 200).await;
        assert_eq!(done.started, 4, "[{label}]");
        assert_eq!(
            cron_slots(engine, tenant, "none").await,
            slots(&[4]),
            "[{label}]"
        );
        harness.stop().await;
    }
}

/// The outcome and run of each fire of the workflow's first schedule, oldest first.
async fn fire_outcomes(harness: &Harness, name: &str) -> Vec<(FireOutcome, Option<String>)> {
    let mut fires = schedules(harness, name).await.remove(0).recent_fires;
    fires.reverse();
    fires
        .into_iter()
        .map(|fire| (fire.outcome, fire.run_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_policies_skip_allow_and_queue() {
    use FireOutcome::{Queued, Skipped, Started};
    for database in databases().await {
        let harness = harness(&database).await;
        let label = harness.label;
        let engine = &harness.engine;
        let tenant = &harness.tenant_id;
        // One policy at a time; each schedule is removed before the next starts, so a pass
        // only ever fires the schedule under test.
        for policy in ["skip", "allow", "queue"] {
            let cron = format!("{{ schedule: '* * * * *', catch_up: all, overlap: {policy} }}");
            harness.deploy(&workflow(policy, &cron, NAP)).await;
            let first = next_fire(&harness, policy).await;
            for minute in 0..3 {
                pass(&harness, first + minute * MINUTE + 1_000).await;
            }
            let outcomes: Vec<FireOutcome> = fire_outcomes(&harness, policy)
                .await
                .into_iter()
                .map(|(outcome, _)| outcome)
                .collect();
            let expected = match policy {
                "skip" => vec![Started, Skipped, Skipped],
                "allow" => vec![Started, Started, Started],
                _ => vec![Started, Queued, Queued],
            };
            assert_eq!(outcomes, expected, "[{label}] {policy}");

            // Ending the active run lets the next slot start: for `queue` the oldest queued
            // one, and only that one while its run is active.
            let active = fire_outcomes(&harness, policy).await[0].1.clone().unwrap();
            engine.cancel_run(tenant, &active).await.expect("cancel");
            let later = first + 2 * MINUTE + 2_000;
            pass(&harness, later).await;
            let fires = fire_outcomes(&harness, policy).await;
            if policy == "queue" {
                let outcomes: Vec<_> = fires.iter().map(|(outcome, _)| *outcome).collect();
                assert_eq!(outcomes, vec![Started, Started, Queued], "[{label}]");
                let second = fires[1].1.clone().unwrap();
                engine.cancel_run(tenant, &second).await.expect("cancel");
                pass(&harness, later).await;
                let fires = fire_outcomes(&harness, policy).await;
                assert_eq!(fires[2].0, Started, "[{label}]");
                assert_eq!(
                    cron_slots(engine, tenant, policy).await,
                    (0..3).map(|k| utc(first + k * MINUTE)).collect::<Vec<_>>(),
                    "[{label}] queued slots start in slot order"
                );
            }
            if policy == "skip" {
                // Skipped slots are never retried; the next slot starts.
                assert_eq!(fires.len(), 3, "[{label}]");
                pass(&harness, first + 3 * MINUTE + 1_000).await;
                assert_eq!(
                    fire_outcomes(&harness, policy).await[3].0,
                    Started,
                    "[{label}]"
                );
            }
            // Removing the schedule (a deploy without `on.cron`) drops its rows at once.
            harness
                .deploy(&format!("name: {policy}\nsteps:\n  - {NAP}\n"))
                .await;
            assert!(schedules(&harness, policy).await.is_empty(), "[{label}]");
        }
        let leftover = pass(&harness, Utc::now().timestamp_millis() + 400 * 24 * HOUR).await;
        assert_eq!(leftover, SchedulerPass::default(), "[{label}]");
        let running = engine
            .list_runs(
                tenant,
                &RunFilter {
                    status: Some(RunStatus::Running),
                    ..RunFilter::default()
                },
                None,
                100,
            )
            .await
            .expect("runs");
        for run in running.items {
            engine.cancel_run(tenant, &run.id).await.expect("cancel");
        }
        harness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploys_change_and_remove_schedules_at_once() {
    for database in databases().await {
        let harness = harness(&database).await;
        let label = harness.label;
        let hourly = "{ schedule: '0 * * * *', catch_up: latest }";
        harness.deploy(&workflow("report", hourly, LOG)).await;
        let before = schedules(&harness, "report").await;
        assert_eq!(before.len(), 1, "[{label}]");
        let first = before[0].next_fire_at.unwrap();
        assert_eq!(first % HOUR, 0, "[{label}]");

        // A policy change keeps the schedule and its next fire time.
        harness
            .deploy(&workflow(
                "report",
                "{ schedule: '0 * * * *', catch_up: all, overlap: allow }",
                LOG,
            ))
            .await;
        let policy_changed = schedules(&harness, "report").await;
        assert_eq!(policy_changed[0].id, before[0].id, "[{label}]");
        assert_eq!(policy_changed[0].next_fire_at, Some(first), "[{label}]");
        assert_eq!(
            policy_changed[0].overlap,
            stepwise_workflows::Overlap::Allow
        );

        // A new expression or zone takes effect at once: the next fire is the new one's.
        harness
            .deploy(&workflow(
                "report",
                "{ schedule: '30 9 * * *', timezone: America/New_York }, \
                 { schedule: '0 0 * * *' }",
                LOG,
            ))
            .await;
        let changed = schedules(&harness, "report").await;
        assert_eq!(changed.len(), 2, "[{label}]");
        let local = changed[0].next_fire_local.clone().unwrap();
        assert!(local.contains("T09:30:00-0"), "[{label}] {local}");
        assert_eq!(
            changed[1].next_fire_at.unwrap() % (24 * HOUR),
            0,
            "[{label}]"
        );

        // Firing the old hourly slot no longer happens; the new daily one does.
        let daily = changed[1].next_fire_at.unwrap();
        let done = pass(&harness, daily + 1_000).await;
        let new_york = changed[0].next_fire_at.unwrap();
        let expected = if new_york <= daily + 1_000 { 2 } else { 1 };
        assert_eq!(done.started, expected, "[{label}]");

        // Removing the cron trigger removes the schedules and their fires.
        harness
            .deploy(
                "name: report\nsteps:\n  - { id: tick, uses: core.log, with: { message: x } }\n",
            )
            .await;
        assert!(schedules(&harness, "report").await.is_empty(), "[{label}]");
        let done = pass(&harness, daily + 400 * 24 * HOUR).await;
        assert_eq!(done, SchedulerPass::default(), "[{label}]");
        harness.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_workflow_fires_no_slot_and_catches_up_when_enabled() {
    for database in databases().await {
        let harness = harness(&database).await;
        let label = harness.label;
        let engine = &harness.engine;
        let tenant = &harness.tenant_id;
        for (name, policy) in [("latest", "catch_up: latest"), ("none", "catch_up: none")] {
            harness
                .deploy(&workflow(
                    name,
                    &format!("{{ schedule: '0 * * * *', {policy}, overlap: allow }}"),
                    LOG,
                ))
                .await;
            engine
                .set_workflow_enabled(tenant, name, false)
                .await
                .expect("disable");
        }
        let first = next_fire(&harness, "latest").await;
        let done = pass(&harness, first + 2 * HOUR + 30 * MINUTE).await;
        assert_eq!(done.started, 0, "[{label}] a disabled workflow fired");
        assert!(cron_slots(engine, tenant, "latest").await.is_empty());
        // Its slots stay due while it is disabled.
        assert_eq!(next_fire(&harness, "latest").await, first, "[{label}]");

        for name in ["latest", "none"] {
            let summary = engine
                .set_workflow_enabled(tenant, name, true)
                .await
                .expect("enable");
            assert!(summary.enabled, "[{label}] {name}");
        }
        // Enabled again: the missed slots follow `catch_up`, as after downtime.
        let now = first + 3 * HOUR + 30 * MINUTE;
        let done = pass(&harness, now).await;
        assert_eq!(done.started, 1, "[{label}]");
        assert_eq!(
            cron_slots(engine, tenant, "latest").await,
            vec![utc(first + 3 * HOUR)],
            "[{label}]"
        );
        assert!(
            cron_slots(engine, tenant, "none").await.is_empty(),
            "[{label}]"
        );
        for name in ["latest", "none"] {
            assert_eq!(
                next_fire(&harness, name).await,
                first + 4 * HOUR,
                "[{label}] {name}"
            );
        }
        harness.stop().await;
    }
}
