//! Retrying a failed run from its failed steps, and re-running a run, on SQLite and Postgres.
//! What executed again is counted at an HTTP test server.

mod common;

use common::{Harness, databases};
use serde_json::json;
use stepwise_engine::{EngineError, RunStatus, StepStatus};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `a -> b -> c`, each a POST to the test server; `side` also follows `a` but not `b`.
fn chain(server: &MockServer, b_path: &str) -> String {
    format!(
        r#"
name: chain
steps:
  - id: a
    uses: http.request
    with: {{ method: POST, url: "{uri}/a" }}
  - id: b
    uses: http.request
    retry: {{ max_attempts: 1 }}
    with: {{ method: POST, url: "{uri}{b_path}" }}
  - id: c
    uses: http.request
    with: {{ method: POST, url: "{uri}/c", json: {{ from_a: "${{{{ steps.a.output.status }}}}" }} }}
outputs:
  c: ${{{{ steps.c.output.status }}}}
"#,
        uri = server.uri()
    )
}

async fn requests_to(server: &MockServer, wanted: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path() == wanted)
        .count()
}

async fn mount_ok(server: &MockServer, at: &str) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_only_the_failed_step_and_its_dependents() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        mount_ok(&server, "/a").await;
        mount_ok(&server, "/c").await;
        // `b` is refused once (a permanent 400), then accepted.
        Mock::given(method("POST"))
            .and(path("/b"))
            .respond_with(ResponseTemplate::new(400))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        mount_ok(&server, "/b").await;
        h.deploy(&chain(&server, "/b")).await;

        let run_id = h.start_run("chain", json!({})).await;
        let failed = h.finish(&run_id).await;
        assert_eq!(failed.summary.status, RunStatus::Failed, "[{}]", h.label);
        let a_output = failed.steps[0].output.clone();

        h.engine
            .retry_run(&h.tenant_id, &run_id, false)
            .await
            .expect("retry");
        let retried = h.finish(&run_id).await;
        assert_eq!(
            retried.summary.status,
            RunStatus::Succeeded,
            "[{}] {retried:?}",
            h.label
        );
        assert_eq!(retried.summary.retries, 1);
        assert_eq!(retried.output, Some(json!({"c": 200})));
        assert_eq!(retried.steps[0].output, a_output, "a's output is reused");
        let b = &retried.steps[1];
        assert_eq!(b.status, StepStatus::Succeeded);
        let b_attempts: Vec<&str> = b
            .attempt_history
            .iter()
            .map(|a| a.status.as_str())
            .collect();
        assert_eq!(b_attempts, ["failed", "succeeded"], "[{}]", h.label);
        assert_eq!(
            requests_to(&server, "/a").await,
            1,
            "[{}] a ran again",
            h.label
        );
        assert_eq!(requests_to(&server, "/b").await, 2, "[{}]", h.label);
        assert_eq!(requests_to(&server, "/c").await, 1, "[{}]", h.label);

        let again = h.engine.retry_run(&h.tenant_id, &run_id, false).await;
        assert!(
            matches!(again, Err(EngineError::Conflict(_))),
            "a succeeded run cannot be retried: {again:?}"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_the_current_version_uses_the_fixed_workflow() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        mount_ok(&server, "/a").await;
        mount_ok(&server, "/c").await;
        mount_ok(&server, "/b-fixed").await;
        Mock::given(method("POST"))
            .and(path("/b-broken"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        h.deploy(&chain(&server, "/b-broken")).await;
        let run_id = h.start_run("chain", json!({})).await;
        assert_eq!(h.finish(&run_id).await.summary.status, RunStatus::Failed);

        // Retrying on the run's own version fails the same way.
        h.engine
            .retry_run(&h.tenant_id, &run_id, false)
            .await
            .expect("retry");
        let same = h.finish(&run_id).await;
        assert_eq!(same.summary.status, RunStatus::Failed);
        assert_eq!(same.summary.workflow_version, 1);

        h.deploy(&chain(&server, "/b-fixed")).await;
        h.engine
            .retry_run(&h.tenant_id, &run_id, true)
            .await
            .expect("retry on the current version");
        let fixed = h.finish(&run_id).await;
        assert_eq!(fixed.summary.status, RunStatus::Succeeded, "[{}]", h.label);
        assert_eq!(fixed.summary.workflow_version, 2);
        assert_eq!(fixed.summary.retries, 2);
        assert_eq!(requests_to(&server, "/a").await, 1, "[{}]", h.label);
        assert_eq!(requests_to(&server, "/b-broken").await, 2);
        assert_eq!(requests_to(&server, "/b-fixed").await, 1);
        assert_eq!(requests_to(&server, "/c").await, 1);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_starts_a_new_run_with_the_same_input() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: echo
inputs: { who: { type: string } }
steps:
  - { id: say, uses: core.set, with: { who: "${{ inputs.who }}" } }
outputs:
  who: ${{ steps.say.output.who }}
"#,
        )
        .await;
        let first = h.start_run("echo", json!({"who": "Ada"})).await;
        h.finish(&first).await;
        let second = h.engine.rerun(&h.tenant_id, &first).await.expect("rerun");
        assert_ne!(first, second);
        let run = h.finish(&second).await;
        assert_eq!(run.summary.status, RunStatus::Succeeded);
        assert_eq!(run.summary.rerun_of.as_deref(), Some(first.as_str()));
        assert_eq!(run.output, Some(json!({"who": "Ada"})));

        let missing = h.engine.rerun(&h.tenant_id, "no-such-run").await;
        assert!(
            matches!(missing, Err(EngineError::NotFound(_))),
            "{missing:?}"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_of_pure_steps_executes_inline() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: fragile
steps:
  - { id: prepare, uses: core.set, with: { n: 1 } }
  - { id: check, uses: core.fail, retry: { max_attempts: 1 }, with: { message: "broken on purpose" } }
  - { id: report, uses: core.set, with: { n: "${{ steps.prepare.output.n }}" } }
"#,
        )
        .await;
        let run_id = h.start_run("fragile", json!({})).await;
        assert_eq!(h.finish(&run_id).await.summary.status, RunStatus::Failed);
        h.engine
            .retry_run(&h.tenant_id, &run_id, false)
            .await
            .expect("retry");
        let again = h.finish(&run_id).await;
        assert_eq!(again.summary.status, RunStatus::Failed);
        let check = &again.steps[1];
        assert_eq!(check.attempt_history.len(), 2, "[{}] {again:?}", h.label);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_retry_sets_the_in_request_attempts_of_a_step() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        h.deploy(&format!(
            r#"
name: flaky
steps:
  - id: by_default
    uses: http.request
    retry: {{ max_attempts: 1 }}
    on_error: continue
    with: {{ url: "{uri}/by-default" }}
  - id: once
    uses: http.request
    retry: {{ max_attempts: 1 }}
    http_retry: {{ max_attempts: 1 }}
    with: {{ url: "{uri}/once" }}
"#,
            uri = server.uri()
        ))
        .await;
        let run_id = h.start_run("flaky", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Failed, "[{}]", h.label);
        assert_eq!(requests_to(&server, "/once").await, 1, "[{}]", h.label);
        assert_eq!(
            requests_to(&server, "/by-default").await,
            3,
            "[{}] the integration's policy",
            h.label
        );
        h.stop().await;
    }
}
