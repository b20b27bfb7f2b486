//! Graceful shutdown, against the real binary on SQLite and Postgres: SIGTERM to `stepwise
//! serve` while a step's HTTP call is in flight. Within `--shutdown-grace` the step finishes
//! there and the process claims nothing more; past it, the process exits 0 and hands the step
//! back at once, so another process runs it again well before two missed heartbeats.

mod common;

use common::binary::{create_tenant, free_port, stepwise};

use std::collections::BTreeMap;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit by itself.
    async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("poll child") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `stepwise serve` on a free port with `args`; returns it and its base URL once healthy.
async fn serve(database_url: &str, args: &[&str]) -> (Process, String) {
    let port = free_port();
    let process = Process(
        stepwise()
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url, "--allow-private-networks"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn stepwise serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    stepwise_integrations::http::install_crypto_provider();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz"))
        .await
        .map_or(true, |response| !response.status().is_success())
    {
        assert!(Instant::now() < deadline, "stepwise did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (process, base)
}

async fn deploy_and_start(base: &str, key: &str, source: String) -> String {
    let client = reqwest::Client::new();
    let deployed = client
        .post(format!("{base}/api/v1/workflows"))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(source)
        .send()
        .await
        .expect("deploy");
    assert!(deployed.status().is_success(), "deploy: {deployed:?}");
    let started: Value = client
        .post(format!("{base}/api/v1/workflows/drain/runs"))
        .bearer_auth(key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("start JSON");
    started["run_id"].as_str().expect("run id").to_owned()
}

async fn wait_for_run(base: &str, key: &str, run_id: &str) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run: Value = client
            .get(format!("{base}/api/v1/runs/{run_id}"))
            .bearer_auth(key)
            .send()
            .await
            .expect("get run")
            .json()
            .await
            .expect("run JSON");
        if ["succeeded", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(Instant::now() < deadline, "run did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The idempotency keys the test provider received, per path.
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

async fn wait_for_calls(server: &MockServer, path: &str, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while calls(server).await.get(path).map_or(0, Vec::len) < count {
        assert!(
            Instant::now() < deadline,
            "{path} not called {count} times within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn step<'r>(run: &'r Value, id: &str) -> &'r Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|step| step["id"] == id))
        .unwrap_or_else(|| panic!("step {id} in {run}"))
}

fn workers(step: &Value) -> Vec<String> {
    step["attempt_history"]
        .as_array()
        .map(|attempts| {
            attempts
                .iter()
                .filter_map(|attempt| attempt["worker"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The step answers 4 s after SIGTERM, within the 20 s grace: it finishes in the draining
/// process, which exits 0 and leaves its successor to the other process. Both beat once a
/// second: were the draining one to stop beating, the other would take the step over after
/// two beats and call it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_step_in_flight_finish_and_claims_nothing_more() {
    for database in common::databases().await {
        let label = format!("[{}]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(4)))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let key = create_tenant(&database.url, "drain");
        let settings = ["--heartbeat-interval", "1s", "--shutdown-grace", "20s"];
        let (mut draining, base) = serve(&database.url, &settings).await;
        let source = format!(
            "name: drain\nsteps:\n  - id: slow\n    uses: http.request\n    with: {{ method: POST, url: \"{uri}/slow\" }}\n  - id: after\n    needs: [slow]\n    uses: http.request\n    with: {{ method: POST, url: \"{uri}/after\" }}\n",
            uri = server.uri()
        );
        let run_id = deploy_and_start(&base, &key, source).await;
        wait_for_calls(&server, "slow", 1, Duration::from_secs(30)).await;
        let (_other, other_base) = serve(&database.url, &settings).await;

        let terminated = Instant::now();
        draining.terminate();
        let status = draining.exit_status(Duration::from_secs(20)).await;
        let drained = terminated.elapsed();
        eprintln!("{label} exited {drained:?} after SIGTERM");
        assert_eq!(status.code(), Some(0), "{label} exit status {status}");

        let run = wait_for_run(&other_base, &key, &run_id).await;
        assert_eq!(run["status"], "succeeded", "{label} {run}");
        let calls = calls(&server).await;
        assert_eq!(
            calls["slow"].len(),
            1,
            "{label} the step ran once: {calls:?}"
        );
        assert_eq!(calls["after"].len(), 1, "{label} {calls:?}");
        let (slow, after) = (step(&run, "slow"), step(&run, "after"));
        assert_eq!(slow["attempts"], 1, "{label} {slow}");
        let (drainer, successor) = (workers(slow), workers(after));
        assert_eq!(drainer.len(), 1, "{label} {slow}");
        assert!(
            !successor.contains(&drainer[0]),
            "{label} the draining process claimed no further step: {after}"
        );
        database.drop_database().await;
    }
}

/// The step never answers within the 2 s grace: the process exits 0 when the grace is over,
/// and the step (claimed by its predecessor's commit, so held by this process) is handed
/// back at once: a process started after the exit runs it again, with the same idempotency
/// key, long before the dead process' two 5 s heartbeats would be missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_grace_hands_the_step_over_at_once() {
    const GRACE: Duration = Duration::from_secs(2);
    /// Two missed heartbeats of 5 s are 10 s; a takeover within 5 s of the exit is not one.
    const PROMPT: Duration = Duration::from_secs(5);
    for database in common::databases().await {
        let label = format!("[{}]", database.backend);
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(120)))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let key = create_tenant(&database.url, "drain");
        let (mut draining, base) = serve(
            &database.url,
            &["--shutdown-grace", "2s", "--heartbeat-interval", "5s"],
        )
        .await;
        let source = format!(
            "name: drain\nsteps:\n  - id: fast\n    uses: http.request\n    with: {{ method: POST, url: \"{uri}/fast\" }}\n  - id: slow\n    needs: [fast]\n    uses: http.request\n    with: {{ method: POST, url: \"{uri}/slow\", timeout: 300s }}\n",
            uri = server.uri()
        );
        let run_id = deploy_and_start(&base, &key, source).await;
        wait_for_calls(&server, "slow", 1, Duration::from_secs(30)).await;

        let terminated = Instant::now();
        draining.terminate();
        let status = draining.exit_status(GRACE + PROMPT).await;
        let exited = Instant::now();
        let drained = exited - terminated;
        assert_eq!(status.code(), Some(0), "{label} exit status {status}");
        assert!(
            drained >= GRACE,
            "{label} exited after {drained:?}, before the grace"
        );

        let (_other, other_base) = serve(&database.url, &["--heartbeat-interval", "5s"]).await;
        wait_for_calls(&server, "slow", 2, PROMPT * 3).await;
        let taken_over = exited.elapsed();
        eprintln!(
            "{label} exited {drained:?} after SIGTERM; step taken over {taken_over:?} after the exit"
        );
        assert!(
            taken_over < PROMPT,
            "{label} taken over {taken_over:?} after the exit: not at once"
        );
        let run = wait_for_run(&other_base, &key, &run_id).await;
        assert_eq!(run["status"], "succeeded", "{label} {run}");
        let calls = calls(&server).await;
        assert_eq!(calls["fast"].len(), 1, "{label} {calls:?}");
        assert_eq!(calls["slow"].len(), 2, "{label} {calls:?}");
        assert_eq!(
            calls["slow"][0], calls["slow"][1],
            "{label} the same idempotency key"
        );
        database.drop_database().await;
    }
}
