//! Workflow `concurrency`: a key's limit holds under load, queued runs start in order as slots
//! free (also when a run is cancelled), `cancel_new` and `cancel_running` pick the right run, on
//! SQLite and Postgres.

mod common;

use common::{Harness, databases};
use serde_json::json;
use stepwise_engine::{RunDetail, RunStatus};

fn workflow(on_limit: &str, limit: u32, sleep: &str) -> String {
    format!(
        r#"
name: sync
inputs:
  account: {{ type: string }}
concurrency:
  key: ${{{{ inputs.account }}}}
  limit: {limit}
  on_limit: {on_limit}
steps:
  - {{ id: wait, uses: core.sleep, with: {{ duration: "{sleep}" }} }}
  - {{ id: done, uses: core.set, with: {{ account: "${{{{ inputs.account }}}}" }} }}
"#
    )
}

async fn status(h: &Harness, run_id: &str) -> RunStatus {
    h.engine
        .get_run(&h.tenant_id, run_id)
        .await
        .expect("get run")
        .expect("run exists")
        .summary
        .status
}

/// The largest number of runs whose [started, finished) intervals overlap.
fn max_overlap(runs: &[RunDetail]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for run in runs {
        edges.push((run.summary.started_at.expect("started"), 1));
        edges.push((run.summary.finished_at.expect("finished"), -1));
    }
    // At equal times an end comes before a start: a promoted run starts in the transaction
    // that ends the run whose slot it takes.
    edges.sort();
    let (mut current, mut max) = (0i32, 0i32);
    for (_, delta) in edges {
        current += delta;
        max = max.max(current);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_runs_wait_for_a_slot_and_start_in_order() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(&workflow("queue", 2, "300ms")).await;
        let mut keyed = Vec::new();
        for _ in 0..6 {
            keyed.push(h.start_run("sync", json!({ "account": "a" })).await);
        }
        let other = h.start_run("sync", json!({ "account": "b" })).await;
        let label = h.label;
        assert_eq!(status(&h, &keyed[0]).await, RunStatus::Running, "[{label}]");
        assert_eq!(status(&h, &keyed[1]).await, RunStatus::Running, "[{label}]");
        for run_id in &keyed[2..] {
            assert_eq!(status(&h, run_id).await, RunStatus::Queued, "[{label}]");
        }
        assert_eq!(
            status(&h, &other).await,
            RunStatus::Running,
            "[{label}] other key"
        );

        // Cancelling a queued run removes it from the line without starting it.
        h.engine
            .cancel_run(&h.tenant_id, &keyed[5])
            .await
            .expect("cancel queued");
        let cancelled = h.finish(&keyed[5]).await;
        assert_eq!(cancelled.summary.status, RunStatus::Cancelled, "[{label}]");
        assert_eq!(
            cancelled.summary.started_at, None,
            "[{label}] never started"
        );

        let mut finished = Vec::new();
        for run_id in &keyed[..5] {
            let run = h.finish(run_id).await;
            assert_eq!(
                run.summary.status,
                RunStatus::Succeeded,
                "[{label}] {run:?}"
            );
            assert_eq!(run.summary.concurrency_key.as_deref(), Some("a"));
            finished.push(run);
        }
        assert_eq!(
            max_overlap(&finished),
            2,
            "[{label}] limit 2 held: {finished:?}"
        );
        let starts: Vec<i64> = finished
            .iter()
            .map(|run| run.summary.started_at.unwrap())
            .collect();
        assert!(
            starts.windows(2).all(|pair| pair[0] <= pair[1]),
            "[{label}] queued runs start in creation order: {starts:?}"
        );
        assert_eq!(h.finish(&other).await.summary.status, RunStatus::Succeeded);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_starts_the_next_queued_one() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(&workflow("queue", 1, "1h")).await;
        let first = h.start_run("sync", json!({ "account": "a" })).await;
        let second = h.start_run("sync", json!({ "account": "a" })).await;
        let label = h.label;
        assert_eq!(status(&h, &second).await, RunStatus::Queued, "[{label}]");
        h.engine
            .cancel_run(&h.tenant_id, &first)
            .await
            .expect("cancel running");
        assert_eq!(status(&h, &first).await, RunStatus::Cancelled, "[{label}]");
        let promoted = h
            .engine
            .get_run(&h.tenant_id, &second)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(promoted.summary.status, RunStatus::Running, "[{label}]");
        assert!(promoted.summary.started_at.is_some(), "[{label}]");
        let wait = promoted.steps.iter().find(|s| s.id == "wait").unwrap();
        assert_eq!(
            wait.status,
            stepwise_engine::StepStatus::Waiting,
            "[{label}] the promoted run's first step is sleeping: {promoted:?}"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_new_refuses_and_cancel_running_replaces() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let label = h.label;
        h.deploy(&workflow("cancel_new", 1, "1h")).await;
        let kept = h.start_run("sync", json!({ "account": "a" })).await;
        let refused = h.start_run("sync", json!({ "account": "a" })).await;
        let run = h.finish(&refused).await;
        assert_eq!(run.summary.status, RunStatus::Cancelled, "[{label}]");
        let error = run.summary.error.unwrap_or_default();
        assert!(
            error.contains("concurrency key `a`") && error.contains("limit 1"),
            "[{label}] {error}"
        );
        assert!(
            run.steps.iter().all(|s| s.attempts == 0),
            "[{label}] nothing ran"
        );
        assert_eq!(status(&h, &kept).await, RunStatus::Running, "[{label}]");

        h.deploy(&workflow("cancel_running", 1, "200ms")).await;
        let newer = h.start_run("sync", json!({ "account": "a" })).await;
        let replaced = h.finish(&kept).await;
        assert_eq!(replaced.summary.status, RunStatus::Cancelled, "[{label}]");
        assert!(
            replaced
                .summary
                .error
                .as_deref()
                .is_some_and(|e| e.contains(&newer)),
            "[{label}] names the run that took the slot: {replaced:?}"
        );
        assert_eq!(h.finish(&newer).await.summary.status, RunStatus::Succeeded);
        h.stop().await;
    }
}

/// `sync` with a `nap` input; version 1 fails after the nap, version 2 succeeds.
fn retried(on_limit: &str, fails: bool) -> String {
    let last = if fails {
        r#"core.fail, retry: { max_attempts: 1 }, with: { message: "broken" }"#
    } else {
        r#"core.set, with: { ok: true }"#
    };
    format!(
        r#"
name: sync
inputs:
  nap: {{ type: string }}
concurrency:
  key: account-a
  limit: 1
  on_limit: {on_limit}
steps:
  - {{ id: wait, uses: core.sleep, with: {{ duration: "${{{{ inputs.nap }}}}" }} }}
  - {{ id: done, uses: {last} }}
"#
    )
}

/// A run of `sync` that failed, and a run of its key that holds the only slot.
async fn failed_and_holder(h: &Harness, on_limit: &str) -> (String, String) {
    h.deploy(&retried(on_limit, true)).await;
    let failed = h.start_run("sync", json!({ "nap": "10ms" })).await;
    let run = h.finish(&failed).await;
    assert_eq!(
        run.summary.status,
        RunStatus::Failed,
        "[{}] {run:?}",
        h.label
    );
    h.deploy(&retried(on_limit, false)).await;
    let holder = h.start_run("sync", json!({ "nap": "1h" })).await;
    assert_eq!(
        status(h, &holder).await,
        RunStatus::Running,
        "[{}]",
        h.label
    );
    (failed, holder)
}

fn step_attempts(run: &RunDetail, id: &str) -> i32 {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
        .attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_run_goes_through_admission() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let label = h.label;

        // queue: the retry waits for the slot, then runs only its failed step.
        let (failed, holder) = failed_and_holder(&h, "queue").await;
        let retried = h.engine.retry_run(&h.tenant_id, &failed, true).await;
        assert_eq!(retried.expect("retry"), RunStatus::Queued, "[{label}]");
        assert_eq!(status(&h, &failed).await, RunStatus::Queued, "[{label}]");
        eprintln!(
            "DEBUG0 {:?}",
            h.engine
                .get_run(&h.tenant_id, &failed)
                .await
                .unwrap()
                .unwrap()
                .steps
                .iter()
                .map(|s| (s.id.clone(), s.status, s.finished_at))
                .collect::<Vec<_>>()
        );
        h.engine
            .cancel_run(&h.tenant_id, &holder)
            .await
            .expect("cancel holder");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        eprintln!(
            "DEBUG {:?}",
            h.engine
                .get_run(&h.tenant_id, &failed)
                .await
                .unwrap()
                .unwrap()
        );
        let run = h.finish(&failed).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{label}] {run:?}"
        );
        assert_eq!(step_attempts(&run, "wait"), 1, "[{label}] kept: {run:?}");
        assert_eq!(step_attempts(&run, "done"), 2, "[{label}] {run:?}");

        // cancel_new: the retry is refused and nothing changes.
        let (failed, holder) = failed_and_holder(&h, "cancel_new").await;
        let before = h.finish(&failed).await;
        let error = h
            .engine
            .retry_run(&h.tenant_id, &failed, true)
            .await
            .expect_err("refused");
        assert!(
            matches!(error, stepwise_engine::EngineError::ConcurrencyLimit(_)),
            "[{label}] {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("concurrency key `account-a`") && message.contains("limit 1"),
            "[{label}] {message}"
        );
        let after = h.finish(&failed).await;
        assert_eq!(
            format!("{before:?}"),
            format!("{after:?}"),
            "[{label}] stored data unchanged"
        );
        assert_eq!(status(&h, &holder).await, RunStatus::Running, "[{label}]");
        h.engine.cancel_run(&h.tenant_id, &holder).await.unwrap();

        // cancel_running: the retry takes the slot of the running run.
        let (failed, holder) = failed_and_holder(&h, "cancel_running").await;
        let retried = h.engine.retry_run(&h.tenant_id, &failed, true).await;
        assert_eq!(retried.expect("retry"), RunStatus::Running, "[{label}]");
        let replaced = h.finish(&holder).await;
        assert_eq!(replaced.summary.status, RunStatus::Cancelled, "[{label}]");
        assert!(
            replaced
                .summary
                .error
                .as_deref()
                .is_some_and(|e| e.contains(&failed)),
            "[{label}] names the retried run: {replaced:?}"
        );
        let run = h.finish(&failed).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{label}] {run:?}"
        );
        h.stop().await;
    }
}
