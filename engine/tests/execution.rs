//! End-to-end execution semantics, on SQLite and Postgres.

mod common;

use std::time::Duration;

use common::{Harness, databases};
use serde_json::json;
use stepwise_engine::{RunStatus, StepStatus};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn step<'a>(run: &'a stepwise_engine::RunDetail, id: &str) -> &'a stepwise_engine::StepView {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_steps_pass_outputs_and_compute_run_outputs() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: hello
steps:
  - id: greet
    uses: core.set
    with:
      greeting: "Hello, ${{ inputs.name }}"
      count: ${{ inputs.count + 1 }}
  - id: log
    uses: core.log
    with:
      message: ${{ steps.greet.output.greeting }}
outputs:
  greeting: ${{ steps.greet.output.greeting }}
  count: ${{ steps.greet.output.count }}
"#,
        )
        .await;
        let run_id = h
            .start_run("hello", json!({"name": "Ada", "count": 41}))
            .await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        assert_eq!(
            run.output,
            Some(json!({"greeting": "Hello, Ada", "count": 42})),
            "[{}]",
            h.label
        );
        assert_eq!(step(&run, "log").status, StepStatus::Succeeded);
        assert_eq!(step(&run, "log").attempts, 1);
        assert_eq!(step(&run, "greet").attempt_history.len(), 1);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dag_fans_out_joins_and_skips() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: diamond
steps:
  - id: start
    uses: core.set
    with: { n: 1 }
  - id: left
    needs: [start]
    uses: core.set
    with: { side: left }
  - id: right
    needs: [start]
    if: ${{ inputs.go_right }}
    uses: core.set
    with: { side: right }
  - id: after_right
    needs: [right]
    uses: core.log
    with: { message: never }
  - id: join
    needs: [left]
    uses: core.set
    with:
      left: ${{ steps.left.output.side }}
      first: ${{ steps.start.output.n }}
"#,
        )
        .await;
        let run_id = h.start_run("diamond", json!({"go_right": false})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        assert_eq!(step(&run, "right").status, StepStatus::Skipped);
        assert_eq!(step(&run, "after_right").status, StepStatus::Skipped);
        assert_eq!(step(&run, "join").status, StepStatus::Succeeded);
        assert_eq!(
            step(&run, "join").output,
            Some(json!({"left": "left", "first": 1})),
            "[{}]",
            h.label
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_fails_the_run_and_continue_does_not() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: failing
steps:
  - id: tolerated
    uses: core.fail
    on_error: continue
    with: { message: "ignored problem" }
  - id: fatal
    uses: core.fail
    with: { message: "boom" }
  - id: never
    uses: core.log
    with: { message: unreachable }
"#,
        )
        .await;
        let run_id = h.start_run("failing", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Failed, "[{}]", h.label);
        let error = run.summary.error.clone().unwrap_or_default();
        assert!(error.contains("fatal") && error.contains("boom"), "{error}");
        assert_eq!(step(&run, "tolerated").status, StepStatus::Failed);
        assert_eq!(step(&run, "fatal").status, StepStatus::Failed);
        assert_eq!(
            step(&run, "fatal").attempts,
            1,
            "permanent errors are not retried"
        );
        assert_eq!(step(&run, "never").status, StepStatus::Cancelled);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_http_errors_are_retried_with_backoff() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/flaky"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(4)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/flaky"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&server)
            .await;
        h.deploy(&format!(
            r#"
name: flaky
steps:
  - id: call
    uses: http.request
    retry: {{ max_attempts: 4, backoff: exponential, initial_delay: 10ms, max_delay: 50ms }}
    with:
      method: POST
      url: {}/flaky
      json: {{ hello: world }}
"#,
            server.uri()
        ))
        .await;
        let run_id = h.start_run("flaky", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        // The integration runtime retries within the call first (3 requests), then the
        // engine retries the step: 3 + 2 requests in 2 attempts.
        let call = step(&run, "call");
        assert_eq!(call.attempts, 2, "[{}]", h.label);
        assert_eq!(call.attempt_history.len(), 2);
        assert_eq!(call.attempt_history[0].status, "failed");
        assert_eq!(call.output.as_ref().unwrap()["body"], json!({"ok": true}));
        let requests = server.received_requests().await.unwrap();
        let keys: Vec<_> = requests
            .iter()
            .map(|r| {
                r.headers
                    .get("idempotency-key")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(keys.len(), 5);
        assert!(
            keys.iter().all(|k| k == &format!("{run_id}:call")),
            "{keys:?}"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_timeout_fails_a_hanging_action() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
            .mount(&server)
            .await;
        h.deploy(&format!(
            r#"
name: slow
steps:
  - id: call
    uses: http.request
    timeout: 200ms
    retry: {{ max_attempts: 1 }}
    with:
      url: {}/slow
"#,
            server.uri()
        ))
        .await;
        let run_id = h.start_run("slow", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Failed, "[{}]", h.label);
        let error = step(&run, "call").error.clone().unwrap();
        assert!(
            error["message"].as_str().unwrap().contains("timed out"),
            "[{}] {error}",
            h.label
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sleep_parks_then_resumes() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: nap
steps:
  - id: nap
    uses: core.sleep
    with: { duration: 1s }
  - id: after
    uses: core.set
    with: { woke: true }
"#,
        )
        .await;
        let run_id = h.start_run("nap", json!({})).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let parked = h
            .engine
            .get_run(&h.tenant_id, &run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            step(&parked, "nap").status,
            StepStatus::Waiting,
            "[{}]",
            h.label
        );
        assert!(step(&parked, "nap").wake_at.is_some());
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Succeeded, "[{}]", h.label);
        assert_eq!(
            step(&run, "nap").attempts,
            1,
            "a resumed timer is the same attempt"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_run_timeout_end_parked_runs() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: long
steps:
  - id: wait
    uses: core.sleep
    with: { duration: 1h }
"#,
        )
        .await;
        h.deploy(
            r#"
name: bounded
timeout: 1s
steps:
  - id: wait
    uses: core.sleep
    with: { duration: 1h }
"#,
        )
        .await;
        let cancelled = h.start_run("long", json!({})).await;
        let timed_out = h.start_run("bounded", json!({})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        h.engine.cancel_run(&h.tenant_id, &cancelled).await.unwrap();
        let run = h.finish(&cancelled).await;
        assert_eq!(run.summary.status, RunStatus::Cancelled, "[{}]", h.label);
        assert_eq!(step(&run, "wait").status, StepStatus::Cancelled);
        let again = h.engine.cancel_run(&h.tenant_id, &cancelled).await;
        assert!(matches!(
            again,
            Err(stepwise_engine::EngineError::Conflict(_))
        ));

        let run = h.finish(&timed_out).await;
        assert_eq!(run.summary.status, RunStatus::Failed, "[{}]", h.label);
        assert_eq!(run.summary.error.as_deref(), Some("run timed out"));
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_pinned_to_their_version_and_scoped_to_their_tenant() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy("name: pinned\nsteps:\n  - id: a\n    uses: core.sleep\n    with: { duration: 1s }\n  - id: b\n    uses: core.set\n    with: { version: 1 }\n").await;
        let first = h.start_run("pinned", json!({})).await;
        h.deploy("name: pinned\nsteps:\n  - id: a\n    uses: core.set\n    with: { version: 2 }\n")
            .await;
        let run = h.finish(&first).await;
        assert_eq!(run.summary.workflow_version, 1);
        assert_eq!(
            step(&run, "b").output,
            Some(json!({"version": 1})),
            "[{}]",
            h.label
        );

        let (other, _) = h.engine.create_tenant("other").await.unwrap();
        assert!(h.engine.get_run(&other.id, &first).await.unwrap().is_none());
        let page = h
            .engine
            .list_runs(&other.id, &Default::default(), None, 50)
            .await
            .unwrap();
        assert!(page.items.is_empty());
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_from_another_process_stops_a_running_action() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
            .mount(&server)
            .await;
        h.deploy(&format!(
            "name: hang\nsteps:\n  - id: call\n    uses: http.request\n    with:\n      url: {}/hang\n",
            server.uri()
        ))
        .await;
        let run_id = h.start_run("hang", json!({})).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while server.received_requests().await.unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the action never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A second engine on the same database stands in for another process.
        let other = stepwise_engine::Engine::open(
            &database.url,
            std::sync::Arc::new(stepwise_integrations::Registry::builtin()),
            common::services(),
        )
        .await
        .unwrap();
        other.cancel_run(&h.tenant_id, &run_id).await.unwrap();
        let started = std::time::Instant::now();
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Cancelled, "[{}]", h.label);
        // The hanging action is abandoned within a poll, not after its 60 s response.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let run = h
                .engine
                .get_run(&h.tenant_id, &run_id)
                .await
                .unwrap()
                .unwrap();
            let attempt = &step(&run, "call").attempt_history[0];
            if attempt.finished_at.is_some() {
                assert_eq!(attempt.status, "discarded", "[{}]", h.label);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "[{}] action still running",
                h.label
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        other.database().close().await;
        h.stop().await;
    }
}

/// Queue tasks and outbox rows that name `run_id` (the task's idempotency key starts with it).
async fn queue_rows(url: &str, run_id: &str) -> (i64, i64) {
    let pattern = format!("{run_id}:%");
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let jobs = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE idempotency_key LIKE ?")
            .bind(&pattern)
            .fetch_one(&pool)
            .await
            .expect("count jobs");
        let outbox = sqlx::query_scalar("SELECT COUNT(*) FROM step_outbox WHERE run_id = ?")
            .bind(run_id)
            .fetch_one(&pool)
            .await
            .expect("count outbox");
        pool.close().await;
        (jobs, outbox)
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let jobs =
            sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE idempotency_key LIKE $1")
                .bind(&pattern)
                .fetch_one(&pool)
                .await
                .expect("count jobs");
        let outbox = sqlx::query_scalar("SELECT COUNT(*) FROM step_outbox WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(&pool)
            .await
            .expect("count outbox");
        pool.close().await;
        (jobs, outbox)
    }
}

/// Eager dispatch: the commit of a side-effecting step claims its successor for the same
/// worker, which executes it at once, so a chain goes through the queue only for its first
/// step, every step runs once, and no outbox row is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_effecting_chain_goes_through_the_queue_once() {
    for database in databases().await {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&server)
            .await;
        let h = Harness::start(&database).await;
        let mut source = String::from("name: chain\nsteps:\n");
        for (index, id) in ["first", "second", "third"].iter().enumerate() {
            source.push_str(&format!(
                "  - id: {id}\n    uses: http.request\n    with: {{ method: POST, url: \"{}/{id}\" }}\n",
                server.uri()
            ));
            if index > 0 {
                source.push_str("    needs: [");
                source.push_str(["first", "second"][index - 1]);
                source.push_str("]\n");
            }
        }
        source.push_str("outputs:\n  status: ${{ steps.third.output.status }}\n");
        h.deploy(&source).await;
        let run_id = h.start_run("chain", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        assert_eq!(run.output, Some(json!({"status": 200})), "[{}]", h.label);
        for id in ["first", "second", "third"] {
            assert_eq!(step(&run, id).attempts, 1, "[{}] {id}", h.label);
            assert_eq!(
                step(&run, id).attempt_history.len(),
                1,
                "[{}] {id}",
                h.label
            );
        }
        assert_eq!(
            server.received_requests().await.unwrap_or_default().len(),
            3,
            "[{}] one request per step",
            h.label
        );
        let (jobs, outbox) = queue_rows(&database.url, &run_id).await;
        assert_eq!(jobs, 1, "[{}] queue tasks of the run", h.label);
        assert_eq!(outbox, 0, "[{}] outbox rows left", h.label);
        h.stop().await;
    }
}
