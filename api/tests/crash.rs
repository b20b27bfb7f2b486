//! Crash safety (guarantees 2-4 of ARCHITECTURE.md), against the real binary on SQLite and Postgres.
//! At a named crash point (`FAILPOINTS=<point>=return`) the process aborts itself: no cleanup,
//! nothing more written, the same as SIGKILL at that instant. Another test sends SIGKILL from
//! outside while runs are in flight. After a restart every run must finish, no completed step
//! may execute again, and a step killed mid-action runs again with the same idempotency key.
//! Needs `--features failpoints` (the README's test command).
#![cfg(feature = "failpoints")]

mod common;

use common::binary::{create_tenant, free_port, stepwise};

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
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

/// `stepwise serve` on `port` with our test settings, not yet spawned.
fn serve_command(database_url: &str, port: u16, workflows: &std::path::Path) -> Command {
    let mut command = stepwise();
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url, "--allow-private-networks"])
        .arg("--workflows")
        .arg(workflows)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn serve(
    database_url: &str,
    port: u16,
    workflows: &std::path::Path,
    failpoint: Option<&str>,
) -> Child {
    let mut command = serve_command(database_url, port, workflows);
    if let Some(failpoint) = failpoint {
        command.env("FAILPOINTS", format!("{failpoint}=return"));
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

/// Waits (bounded) for a process that is expected to die at its crash point.
fn wait_for_crash(child: &mut Child, label: &str) {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            assert!(
                status.signal().is_some(),
                "{label} the process must die at the crash point, not exit: {status}"
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{label} the crash point was never reached");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Crashes the server at `failpoint` while it handles step `crashed`, checks how far the run
/// got (every earlier step called once, `crashed` `calls_at_crash` times, no later step),
/// restarts the server and checks the run completes with `crashed` called `calls_in_total`
/// times, always with its idempotency key, and every other step exactly once.
async fn crash_at(failpoint: &str, crashed: &str, calls_at_crash: usize, calls_in_total: usize) {
    let position = STEPS
        .iter()
        .position(|step| *step == crashed)
        .expect("a step of the workflow");
    for database in common::databases().await {
        let label = format!("[{} {failpoint}]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let workflows = tempfile::tempdir().expect("tempdir");
        std::fs::write(workflows.path().join("crashy.yaml"), workflow(&server)).unwrap();
        let key = create_tenant(&database.url, "crash");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();

        let mut doomed = serve(&database.url, port, workflows.path(), Some(failpoint));
        wait_until_healthy(&client, &base).await;
        deploy(&client, &base, &key, workflow(&server)).await;
        // A failpoint at the relay can fire before the answer to the start is written; the run
        // is then found by listing once the survivor is up.
        let started = try_start(&client, &base, &key, "crashy").await;
        wait_for_crash(&mut doomed, &label);
        let at_crash = calls(&server).await;
        for (index, step) in STEPS.iter().enumerate() {
            let expected = match index.cmp(&position) {
                std::cmp::Ordering::Less => 1,
                std::cmp::Ordering::Equal => calls_at_crash,
                std::cmp::Ordering::Greater => 0,
            };
            assert_eq!(
                at_crash.get(*step).map_or(0, Vec::len),
                expected,
                "{label} calls of `{step}` when the process died: {at_crash:?}"
            );
        }

        let mut survivor = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let run_id = match started {
            Some(run_id) => run_id,
            None => only_run(&client, &base, &key, "crashy").await,
        };
        let run = wait_for_run(&client, &base, &key, &run_id).await;
        survivor.kill().ok();
        survivor.wait().ok();
        assert_eq!(
            run["status"], "succeeded",
            "{label} run after restart: {run}"
        );

        let calls = calls(&server).await;
        let idempotency_key = format!("{run_id}:{crashed}");
        let attempts = calls.get(crashed).cloned().unwrap_or_default();
        assert_eq!(
            attempts.len(),
            calls_in_total,
            "{label} calls of `{crashed}`: {calls:?}"
        );
        assert!(
            attempts.iter().all(|key| key == &idempotency_key),
            "{label} every attempt of `{crashed}` carries {idempotency_key}: {attempts:?}"
        );
        for step in STEPS.iter().filter(|step| **step != crashed) {
            assert_eq!(
                calls.get(*step).map_or(0, Vec::len),
                1,
                "{label} step {step} must run exactly once: {calls:?}"
            );
        }
        database.drop_database().await;
    }
}

/// Deploys the workflow to our tenant and starts a run; returns its id.
async fn start_run(client: &reqwest::Client, base: &str, key: &str, server: &MockServer) -> String {
    deploy_and_start(client, base, key, "crashy", workflow(server)).await
}

/// Starts a run of our tenant's workflow `name`; its id, or `None` when the process died
/// before answering.
async fn try_start(client: &reqwest::Client, base: &str, key: &str, name: &str) -> Option<String> {
    let answer = client
        .post(format!("{base}/api/v1/workflows/{name}/runs"))
        .bearer_auth(key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .ok()?;
    let started: Value = answer.json().await.ok()?;
    started["run_id"].as_str().map(str::to_owned)
}

/// The id of the one run of our tenant's workflow `name`.
async fn only_run(client: &reqwest::Client, base: &str, key: &str, name: &str) -> String {
    let listed: Value = client
        .get(format!("{base}/api/v1/runs?workflow={name}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runs = listed["items"].as_array().expect("a list of runs");
    assert_eq!(runs.len(), 1, "one run of `{name}`: {listed}");
    runs[0]["id"].as_str().expect("run id").to_owned()
}

/// Polls (bounded: a dead worker's tasks are taken over after two missed heartbeats).
async fn wait_for_run(client: &reqwest::Client, base: &str, key: &str, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let run = run_status(client, base, key, run_id).await;
        if run["status"] != "running" || Instant::now() > deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Killed after the action's side effect, before its result committed: the step runs again,
/// with the same idempotency key (at-least-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_action_reruns_the_step_with_the_same_key() {
    crash_at("step.after_action", "first", 1, 2).await;
}

/// Killed after the step's result committed with its successor claimed for this process
/// (and the successor's outbox row held), before anything else: nothing runs twice and the
/// successor still runs, taken over once the dead worker missed its heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_commit_before_enqueue_loses_nothing() {
    crash_at("step.after_commit", "first", 1, 1).await;
}

/// Killed right after the relay committed the first step's task into the queue, before any
/// worker saw it: the task is executed after restart, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_enqueue_loses_nothing() {
    crash_at("relay.after_commit", "first", 0, 1).await;
}

/// Killed after the commit of `first` claimed `second` for this worker (eager dispatch),
/// before `second` executed: `second` is taken over from its held outbox row and runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_eager_claim_loses_nothing() {
    crash_at("step.after_eager_claim", "second", 0, 1).await;
}

/// Killed after an eagerly claimed step's action, before its result committed: it runs again
/// with the same idempotency key, and no completed step runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_eager_action_reruns_only_that_step() {
    crash_at("step.after_eager_action", "second", 1, 2).await;
}

/// SIGKILL from outside while 20 runs are in flight, then a restart: every run finishes, and
/// only steps that were mid-action at the kill (at most one per worker slot) ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing() {
    for database in common::databases().await {
        let label = format!("[{} sigkill]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"ok": true}))
                    .set_delay(Duration::from_millis(30)),
            )
            .mount(&server)
            .await;
        let workflows = tempfile::tempdir().expect("tempdir");
        let key = create_tenant(&database.url, "crash");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();

        let mut doomed = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let mut run_ids = Vec::new();
        for _ in 0..20 {
            run_ids.push(start_run(&client, &base, &key, &server).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reap");

        let mut survivor = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        for run_id in &run_ids {
            let run = wait_for_run(&client, &base, &key, run_id).await;
            assert_eq!(run["status"], "succeeded", "{label} {run}");
        }
        survivor.kill().ok();
        survivor.wait().ok();

        let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
        for keys in calls(&server).await.into_values() {
            for key in keys {
                *per_key.entry(key).or_default() += 1;
            }
        }
        assert_eq!(
            per_key.len(),
            run_ids.len() * STEPS.len(),
            "{label} every step ran"
        );
        assert!(
            per_key.values().all(|count| *count <= 2),
            "{label} {per_key:?}"
        );
        let repeated = per_key.values().filter(|count| **count == 2).count();
        assert!(
            repeated <= 16,
            "{label} {repeated} steps ran twice; at most the in-flight ones may"
        );
        database.drop_database().await;
    }
}

/// A test provider that answers every request after `delay`, counting requests per path and
/// the most that were in flight at once. Paths listed in `fail_once` answer 400 the first
/// time.
struct Provider {
    uri: String,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    calls: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Provider {
    async fn start(delay: Duration, fail_once: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let uri = format!("http://{}", listener.local_addr().expect("address"));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let calls: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let fail_once: Vec<String> = fail_once.iter().map(|path| path.to_string()).collect();
        let (active, max, counted) = (in_flight.clone(), max_in_flight.clone(), calls.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (active, max, counted) = (active.clone(), max.clone(), counted.clone());
                let fail_once = fail_once.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let seen = {
                        let mut calls = counted.lock().unwrap();
                        let count = calls.entry(path.clone()).or_default();
                        *count += 1;
                        *count
                    };
                    tokio::time::sleep(delay).await;
                    active.fetch_sub(1, Ordering::SeqCst);
                    let (status, body) = if seen == 1 && fail_once.contains(&path) {
                        ("400 Bad Request", r#"{"error":"refused"}"#.to_owned())
                    } else {
                        ("200 OK", serde_json::json!({ "path": path }).to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            uri,
            in_flight,
            max_in_flight,
            calls,
        }
    }

    fn calls(&self) -> BTreeMap<String, usize> {
        self.calls.lock().unwrap().clone()
    }
}

/// Deploys `source` to our tenant.
async fn deploy(client: &reqwest::Client, base: &str, key: &str, source: String) {
    let deployed = client
        .post(format!("{base}/api/v1/workflows"))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(source)
        .send()
        .await
        .unwrap();
    assert!(
        deployed.status().is_success(),
        "deploy: {}",
        deployed.status()
    );
}

/// Deploys `source` to our tenant and starts a run of `name`; returns its id.
async fn deploy_and_start(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    source: String,
) -> String {
    deploy(client, base, key, source).await;
    start(client, base, key, name).await
}

/// Starts a run of our tenant's workflow `name`; returns its id.
async fn start(client: &reqwest::Client, base: &str, key: &str, name: &str) -> String {
    try_start(client, base, key, name)
        .await
        .expect("the start is answered with a run id")
}

/// Creates the GitHub webhook source `gh` (secret `s3cret`) of our tenant; returns its path.
async fn create_github_source(client: &reqwest::Client, base: &str, key: &str) -> String {
    let source: Value = client
        .post(format!("{base}/api/v1/sources"))
        .bearer_auth(key)
        .json(&serde_json::json!({"name": "gh", "provider": "github", "secret": "s3cret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    source["url"]
        .as_str()
        .unwrap_or_else(|| panic!("source: {source}"))
        .to_owned()
}

/// Sends `body` as a GitHub `event` delivery signed with the `gh` source's secret.
async fn deliver_github(
    client: &reqwest::Client,
    base: &str,
    ingest: &str,
    event: &str,
    delivery: &str,
    body: &'static str,
) -> reqwest::Response {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"s3cret").expect("key");
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    client
        .post(format!("{base}{ingest}"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(body)
        .send()
        .await
        .expect("deliver")
}

/// A 1,000-item `for_each` with `max_parallel: 10`, SIGKILLed mid-way and restarted: never
/// more than 10 requests in flight (across both processes), every item runs, and no item
/// whose result was committed before the kill runs again. Items in flight at the kill run
/// again, each at most once more, with the same idempotency key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_for_each_repeats_no_completed_item() {
    const ITEMS: usize = 1000;
    for database in common::databases().await {
        let label = format!("[{} for_each sigkill]", database.backend);
        let provider = Provider::start(Duration::from_millis(15), &[]).await;
        let workflows = tempfile::tempdir().expect("tempdir");
        let key = create_tenant(&database.url, "crash");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();
        let source = format!(
            "name: fanout\nsteps:\n  - id: fetch\n    uses: http.request\n    for_each: ${{{{ range({ITEMS}) | list }}}}\n    max_parallel: 10\n    with: {{ method: GET, url: \"{}/item/${{{{ item }}}}\" }}\n",
            provider.uri
        );

        let mut doomed = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let run_id = deploy_and_start(&client, &base, &key, "fanout", source).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while provider.calls().len() < ITEMS / 3 {
            assert!(Instant::now() < deadline, "{label} items did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reap");
        let at_kill = provider.calls().len();

        let mut survivor = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let run = wait_for_run(&client, &base, &key, &run_id).await;
        survivor.kill().ok();
        survivor.wait().ok();
        assert_eq!(run["status"], "succeeded", "{label} {}", run["error"]);

        let calls = provider.calls();
        assert_eq!(calls.len(), ITEMS, "{label} every item ran");
        assert!(
            at_kill < ITEMS,
            "{label} the kill came mid-way ({at_kill} items started)"
        );
        let max = provider.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 10, "{label} {max} requests in flight at once");
        assert_eq!(provider.in_flight.load(Ordering::SeqCst), 0, "{label}");
        let fetch = run["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|step| step["id"] == "fetch"))
            .expect("fetch step");
        let items = fetch["items"].as_array().expect("items");
        assert_eq!(items.len(), ITEMS, "{label}");
        assert_eq!(
            fetch["output"].as_array().map(Vec::len),
            Some(ITEMS),
            "{label} one output per item"
        );
        let mut repeated = 0;
        for (index, item) in items.iter().enumerate() {
            let history = item["attempt_history"].as_array().expect("attempts");
            let requests = calls.get(&format!("/item/{index}")).copied().unwrap_or(0);
            assert!(
                (1..=2).contains(&requests),
                "{label} item {index} requested {requests} times"
            );
            if requests == 2 {
                repeated += 1;
                assert_ne!(
                    history[0]["status"], "succeeded",
                    "{label} item {index} ran again after its result was committed: {history:?}"
                );
            }
        }
        assert!(
            repeated <= 10,
            "{label} {repeated} items ran twice; only the ones in flight at the kill may"
        );
        database.drop_database().await;
    }
}

/// SIGKILL right after a webhook delivery was answered 200: the delivery and its run were
/// committed before the answer, so after a restart the run executes and its step reaches the
/// provider (once, or twice with the same key if the kill caught it mid-request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_right_after_a_webhook_200_still_runs_the_workflow() {
    for database in common::databases().await {
        let label = format!("[{} webhook 200 then SIGKILL]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let workflows = tempfile::tempdir().expect("tempdir");
        let key = create_tenant(&database.url, "crash");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();

        let mut doomed = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let ingest = create_github_source(&client, &base, &key).await;
        let workflow = format!(
            "name: hooked\non:\n  webhook: {{ source: gh, events: [push] }}\nsteps:\n  - id: notify\n    uses: http.request\n    with: {{ method: POST, url: \"{}/notify\" }}\n",
            server.uri()
        );
        deploy(&client, &base, &key, workflow).await;

        let accepted = deliver_github(
            &client,
            &base,
            &ingest,
            "push",
            "delivery-1",
            r#"{"ref":"main"}"#,
        )
        .await;
        assert_eq!(accepted.status(), 200, "{label}");
        let accepted: Value = accepted.json().await.expect("ack JSON");
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reap");
        let run_id = accepted["run_ids"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{label} run id in the ack: {accepted}"))
            .to_owned();

        let mut survivor = serve(&database.url, port, workflows.path(), None);
        wait_until_healthy(&client, &base).await;
        let run = wait_for_run(&client, &base, &key, &run_id).await;
        survivor.kill().ok();
        survivor.wait().ok();
        assert_eq!(run["status"], "succeeded", "{label} {run}");
        let notify = calls(&server).await.remove("notify").unwrap_or_default();
        assert!(
            (1..=2).contains(&notify.len())
                && notify.iter().all(|key| key == &format!("{run_id}:notify")),
            "{label} the step reached the provider with the run's key: {notify:?}"
        );
        database.drop_database().await;
    }
}

/// Parked runs across a SIGKILL, with one worker: five runs in a 1-hour `core.sleep`, one in
/// `core.wait_for_webhook` and one in a short sleep. After the restart the single worker is free
/// (a new run that needs it finishes), the webhook run resumes on its delivery, the short sleep
/// wakes on time, and the 1-hour sleeps still wait for their original wake-up time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_runs_survive_sigkill_and_hold_no_worker() {
    for database in common::databases().await {
        let label = format!("[{} parked runs]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let workflows = tempfile::tempdir().expect("tempdir");
        let key = create_tenant(&database.url, "crash");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();
        let one_worker = |database_url: &str| {
            serve_command(database_url, port, workflows.path())
                .args(["--workers", "1"])
                .spawn()
                .expect("spawn stepwise serve")
        };

        let mut doomed = one_worker(&database.url);
        wait_until_healthy(&client, &base).await;
        let ingest = create_github_source(&client, &base, &key).await;
        let post = |path: &str| {
            format!(
                "  - {{ id: {path}, uses: http.request, with: {{ method: POST, url: \"{}/{path}\" }} }}\n",
                server.uri()
            )
        };
        deploy(
            &client,
            &base,
            &key,
            "name: hour\nsteps:\n  - { id: nap, uses: core.sleep, with: { duration: 1h } }\n"
                .into(),
        )
        .await;
        deploy(
            &client,
            &base,
            &key,
            format!(
                "name: soon\nsteps:\n  - {{ id: nap, uses: core.sleep, with: {{ duration: 4s }} }}\n{}",
                post("soon")
            ),
        )
        .await;
        deploy(
            &client,
            &base,
            &key,
            format!(
                "name: hook\nsteps:\n  - {{ id: wait, uses: core.wait_for_webhook, with: {{ source: gh, events: [deployment], match: {{ body.id: 7 }} }} }}\n{}",
                post("after")
            ),
        )
        .await;
        let mut hours = Vec::new();
        for _ in 0..5 {
            hours.push(start(&client, &base, &key, "hour").await);
        }
        let soon = start(&client, &base, &key, "soon").await;
        let hook = start(&client, &base, &key, "hook").await;
        let first_step = |run: &Value| run["steps"][0].clone();
        let mut wake_times = Vec::new();
        for run_id in &hours {
            let run = run_status(&client, &base, &key, run_id).await;
            assert_eq!(first_step(&run)["status"], "waiting", "{label} {run}");
            wake_times.push(first_step(&run)["wake_at"].clone());
        }
        let parked = run_status(&client, &base, &key, &hook).await;
        assert_eq!(first_step(&parked)["status"], "waiting", "{label} {parked}");
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reap");

        let mut survivor = one_worker(&database.url);
        wait_until_healthy(&client, &base).await;
        deploy(
            &client,
            &base,
            &key,
            format!("name: quick\nsteps:\n{}", post("quick")),
        )
        .await;
        let quick = start(&client, &base, &key, "quick").await;
        let quick = wait_for_run(&client, &base, &key, &quick).await;
        assert_eq!(
            quick["status"], "succeeded",
            "{label} the one worker is free: {quick}"
        );

        let accepted = deliver_github(
            &client,
            &base,
            &ingest,
            "deployment",
            "delivery-7",
            r#"{"id":7}"#,
        )
        .await;
        assert_eq!(accepted.status(), 200, "{label}");
        let hooked = wait_for_run(&client, &base, &key, &hook).await;
        assert_eq!(hooked["status"], "succeeded", "{label} {hooked}");
        assert_eq!(first_step(&hooked)["output"]["body"]["id"], 7, "{label}");
        let woke = wait_for_run(&client, &base, &key, &soon).await;
        assert_eq!(woke["status"], "succeeded", "{label} {woke}");
        for (run_id, wake_at) in hours.iter().zip(&wake_times) {
            let run = run_status(&client, &base, &key, run_id).await;
            assert_eq!(run["status"], "running", "{label} {run}");
            assert_eq!(first_step(&run)["status"], "waiting", "{label} {run}");
            assert_eq!(
                &first_step(&run)["wake_at"],
                wake_at,
                "{label} same wake-up time"
            );
        }
        survivor.kill().ok();
        survivor.wait().ok();
        let calls = calls(&server).await;
        for path in ["quick", "after", "soon"] {
            assert_eq!(
                calls.get(path).map(Vec::len),
                Some(1),
                "{label} {path} called once: {calls:?}"
            );
        }
        database.drop_database().await;
    }
}

/// Heartbeat interval of the takeover test's processes.
const TAKEOVER_HEARTBEAT: Duration = Duration::from_secs(3);

/// SIGKILL of the process holding a step in flight (its HTTP call unanswered), then another
/// process starts: it takes the step over once the dead one has missed two heartbeats, so
/// within two intervals of the kill plus the sweeper's second (asserted with one more interval
/// and 3 s of slack for start-up and scheduling), and runs it again with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_process_step_is_taken_over_after_two_missed_heartbeats() {
    take_over_slow_step(None).await;
}

/// The same for a step claimed by its predecessor's commit and executed at once (eager
/// dispatch): its held outbox row is released to the queue within the same bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_process_eagerly_claimed_step_is_taken_over_after_two_missed_heartbeats() {
    take_over_slow_step(Some("fast")).await;
}

/// Kills the process while step `call` (after `predecessor`, if given) is in flight and
/// checks another process takes it over within the promised time.
async fn take_over_slow_step(predecessor: Option<&str>) {
    for database in common::databases().await {
        let label = format!("[{} takeover after {predecessor:?}]", database.backend);
        let server = MockServer::start().await;
        // The first call never answers in time: the step is in flight when the process dies.
        Mock::given(method("POST"))
            .and(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(120)))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(&server)
            .await;
        let workflows = tempfile::tempdir().expect("tempdir");
        let key = create_tenant(&database.url, "crash");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();
        let heartbeat = format!("{}s", TAKEOVER_HEARTBEAT.as_secs());
        let serve_with_heartbeat = || {
            serve_command(&database.url, port, workflows.path())
                .args(["--heartbeat-interval", &heartbeat])
                .spawn()
                .expect("spawn stepwise serve")
        };

        let mut doomed = serve_with_heartbeat();
        wait_until_healthy(&client, &base).await;
        let mut source = String::from("name: slow\nsteps:\n");
        if let Some(predecessor) = predecessor {
            source.push_str(&format!(
                "  - id: {predecessor}\n    uses: http.request\n    with: {{ method: POST, url: \"{}/{predecessor}\" }}\n",
                server.uri()
            ));
        }
        source.push_str(&format!(
            "  - id: call\n    uses: http.request\n    with: {{ method: POST, url: \"{}/slow\", timeout: 300s }}\n",
            server.uri()
        ));
        if let Some(predecessor) = predecessor {
            source.push_str(&format!("    needs: [{predecessor}]\n"));
        }
        let run_id = deploy_and_start(&client, &base, &key, "slow", source).await;
        let in_flight = Instant::now() + Duration::from_secs(30);
        while calls(&server).await.get("slow").map_or(0, Vec::len) == 0 {
            assert!(Instant::now() < in_flight, "{label} the step never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reap");
        let killed_at = Instant::now();

        let mut survivor = serve_with_heartbeat();
        let bound = TAKEOVER_HEARTBEAT * 3 + Duration::from_secs(3);
        let taken_over = loop {
            if calls(&server).await.get("slow").map_or(0, Vec::len) == 2 {
                break killed_at.elapsed();
            }
            if killed_at.elapsed() > bound * 4 {
                break killed_at.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("{label} step taken over {taken_over:?} after the kill");
        wait_until_healthy(&client, &base).await;
        let run = wait_for_run(&client, &base, &key, &run_id).await;
        survivor.kill().ok();
        survivor.wait().ok();
        assert!(
            taken_over < bound,
            "{label} taken over after {taken_over:?}; promised two heartbeats of {TAKEOVER_HEARTBEAT:?}"
        );
        assert_eq!(run["status"], "succeeded", "{label} {run}");
        let keys = calls(&server).await.remove("slow").unwrap_or_default();
        assert_eq!(keys.len(), 2, "{label} {keys:?}");
        assert_eq!(keys[0], keys[1], "{label} the same idempotency key");
        if let Some(predecessor) = predecessor {
            let calls = calls(&server).await;
            assert_eq!(
                calls.get(predecessor).map_or(0, Vec::len),
                1,
                "{label} the completed predecessor never runs again: {calls:?}"
            );
        }
        database.drop_database().await;
    }
}
