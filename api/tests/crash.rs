//! Crash safety (guarantees 2-4 of DESIGN.md): the real binary is stopped with SIGKILL while it
//! sits at a named crash point, then restarted. Every run must finish, no completed step may
//! execute again, and a step killed mid-action runs again with the same idempotency key.
//! Runs on SQLite and Postgres. Needs `--features failpoints` (the README's test command).
#![cfg(feature = "failpoints")]

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const STEPS: [&str; 3] = ["first", "second", "third"];

fn workflow(server: &MockServer) -> String {
    let mut yaml = String::from("name: crashy\nsteps:\n");
    for step in STEPS {
        yaml.push_str(&format!(
            "  - id: {step}\n    uses: http.request\n    with:\n      method: POST\n      url: {}/{step}\n",
            server.uri()
        ));
    }
    yaml
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

fn stepwise() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    command.env_remove("FAILPOINTS").env("STEPWISE_LOG", "warn");
    command
}

fn create_tenant(database_url: &str) -> String {
    let output = stepwise()
        .args(["tenants", "create", "crash", "--database-url", database_url])
        .output()
        .expect("run tenants create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "tenants create failed: {stdout}");
    stdout
        .split("API key (shown once): ")
        .nth(1)
        .expect("key in output")
        .trim()
        .to_owned()
}

fn serve(
    database_url: &str,
    port: u16,
    workflows: &std::path::Path,
    failpoint: Option<&str>,
) -> Child {
    let mut command = stepwise();
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url, "--allow-private-networks"])
        .arg("--workflows")
        .arg(workflows)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(failpoint) = failpoint {
        // `pause` blocks the thread that reaches the point until the process is killed.
        command.env("FAILPOINTS", format!("{failpoint}=pause"));
    }
    command.spawn().expect("spawn stepwise serve")
}

async fn wait_until_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stepwise did not become healthy at {base}");
}

/// Requests the test provider received, per step, with their idempotency keys.
async fn calls(server: &MockServer) -> BTreeMap<String, Vec<String>> {
    let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in server.received_requests().await.unwrap_or_default() {
        let key = request
            .headers
            .get("idempotency-key")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        calls
            .entry(request.url.path().trim_start_matches('/').to_owned())
            .or_default()
            .push(key);
    }
    calls
}

async fn wait_for_calls(server: &MockServer, step: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if calls(server).await.get(step).map_or(0, Vec::len) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("step {step} was not called {count} time(s)");
}

async fn run_status(client: &reqwest::Client, base: &str, key: &str, run_id: &str) -> Value {
    client
        .get(format!("{base}/api/v1/runs/{run_id}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("get run")
        .json()
        .await
        .expect("run JSON")
}

/// Kills the server at `failpoint` (reached during step `first`), restarts it, and checks the
/// run completes with the expected number of provider calls per step.
async fn crash_at(failpoint: &str, expected_first_calls: usize) {
    for database in common::databases().await {
        let label = format!("[{} {failpoint}]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let workflows = tempfile::tempdir().expect("tempdir");
        std::fs::write(workflows.path().join("crashy.yaml"), workflow(&server)).unwrap();
        let key = create_tenant(&database.url);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();

        let mut doomed = serve(&database.url, port, workflows.path(), Some(failpoint));
        wait_until_healthy(&client, &base).await;
        // `serve` deploys the folder to the tenant `default`; deploy to ours as well.
        let deployed = client
            .post(format!("{base}/api/v1/workflows"))
            .bearer_auth(&key)
            .header("content-type", "application/yaml")
            .body(workflow(&server))
            .send()
            .await
            .unwrap();
        assert!(
            deployed.status().is_success(),
            "{label} deploy: {}",
            deployed.status()
        );
        let started: Value = client
            .post(format!("{base}/api/v1/workflows/crashy/runs"))
            .bearer_auth(&key)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let run_id = started["run_id"].as_str().expect("run id").to_owned();
        wait_for_calls(&server, "first", 1).await;
        // Give the process time to reach the crash point after the call, then kill it hard.
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Proof that the process is held at the crash point: the run went no further.
        assert_eq!(
            calls(&server).await.get("second").map_or(0, Vec::len),
            0,
            "{label} the run must be stopped at the crash point"
        );
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reap");

        let mut survivor = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let deadline = Instant::now() + Duration::from_secs(90);
        let run = loop {
            let run = run_status(&client, &base, &key, &run_id).await;
            if run["status"] != "running" || Instant::now() > deadline {
                break run;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        survivor.kill().ok();
        survivor.wait().ok();
        assert_eq!(
            run["status"], "succeeded",
            "{label} run after restart: {run}"
        );

        let calls = calls(&server).await;
        let idempotency_key = format!("{run_id}:first");
        let first = calls.get("first").cloned().unwrap_or_default();
        assert_eq!(
            first.len(),
            expected_first_calls,
            "{label} calls of `first`: {calls:?}"
        );
        assert!(
            first.iter().all(|key| key == &idempotency_key),
            "{label} every attempt of `first` carries {idempotency_key}: {first:?}"
        );
        for step in &STEPS[1..] {
            assert_eq!(
                calls.get(*step).map_or(0, Vec::len),
                1,
                "{label} step {step} must run exactly once: {calls:?}"
            );
        }
        database.drop_database().await;
    }
}

/// Killed after the action's side effect, before its result committed: the step runs again,
/// with the same idempotency key (at-least-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_action_reruns_the_step_with_the_same_key() {
    crash_at("step.after_action", 2).await;
}

/// Killed after the step's result and its successor's outbox row committed, before the relay
/// enqueued the successor: nothing runs twice and the successor still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_commit_before_enqueue_loses_nothing() {
    crash_at("step.after_commit", 1).await;
}

/// Killed right after the relay committed a push into the queue: the pushed task is executed
/// after restart, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_enqueue_loses_nothing() {
    crash_at("relay.after_commit", 1).await;
}
