//! Scale-out (guarantee 5 of ARCHITECTURE.md): two `stepwise worker` processes share one Postgres
//! and 200 runs. Every run completes, every step runs exactly once, and both workers take part.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stepwise_engine::{Engine, RunFilter, RunStatus};
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const RUNS: usize = 200;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(database_url: &str) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(["worker", "--database-url", database_url, "--workers", "8"])
        .arg("--allow-private-networks")
        .env_remove("FAILPOINTS")
        .env("STEPWISE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stepwise worker");
    KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_runs_and_never_run_a_step_twice() {
    let Some(database) = common::databases()
        .await
        .into_iter()
        .find(|database| database.backend == "postgres")
    else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let http = HttpClient::new(HttpConfig::default()).expect("http client");
    let engine = Engine::open(
        &database.url,
        Arc::new(Registry::builtin()),
        Arc::new(ActionServices::new(
            IntegrationRuntime::new(http, &MetricsRegistry::new()).expect("integration runtime"),
        )),
    )
    .await
    .expect("open engine");
    let (tenant, _) = engine.create_tenant("scale").await.expect("tenant");
    let source = format!(
        r#"
name: fan
steps:
  - id: prepare
    uses: core.set
    with: {{ n: "${{{{ inputs.n }}}}" }}
  - id: left
    needs: [prepare]
    uses: http.request
    with: {{ method: POST, url: "{uri}/left" }}
  - id: right
    needs: [prepare]
    uses: http.request
    with: {{ method: POST, url: "{uri}/right" }}
  - id: join
    needs: [left, right]
    uses: http.request
    with: {{ method: POST, url: "{uri}/join" }}
"#,
        uri = server.uri()
    );
    engine
        .deploy(&tenant.id, "fan.yaml", &source)
        .await
        .expect("deploy");

    let _first = worker(&database.url);
    let _second = worker(&database.url);
    let mut run_ids = Vec::with_capacity(RUNS);
    for n in 0..RUNS {
        run_ids.push(
            engine
                .start_run(&tenant.id, "fan", json!({"n": n}), "manual", Value::Null)
                .await
                .expect("start run"),
        );
    }

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let running = engine
            .list_runs(
                &tenant.id,
                &RunFilter {
                    status: Some(RunStatus::Running),
                    ..RunFilter::default()
                },
                None,
                1,
            )
            .await
            .expect("list runs");
        if running.items.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "runs still running after 180 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut workers = BTreeSet::new();
    for run_id in &run_ids {
        let run = engine
            .get_run(&tenant.id, run_id)
            .await
            .expect("get run")
            .expect("run exists");
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "{run_id}: {run:?}"
        );
        for step in &run.steps {
            assert_eq!(
                step.attempts, 1,
                "{run_id}/{} ran {} times",
                step.id, step.attempts
            );
            // `prepare` is pure: it executes in the process that starts the run.
            if step.id != "prepare" {
                for attempt in &step.attempt_history {
                    workers.extend(attempt.worker.clone());
                }
            }
        }
    }
    assert_eq!(
        workers.len(),
        2,
        "both workers execute the HTTP steps: {workers:?}"
    );

    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for request in server.received_requests().await.expect("recorded requests") {
        let key = request
            .headers
            .get("idempotency-key")
            .and_then(|value| value.to_str().ok())
            .expect("idempotency key")
            .to_owned();
        *calls.entry(key).or_default() += 1;
    }
    assert_eq!(calls.len(), RUNS * 3, "one call per HTTP step of every run");
    let repeated: Vec<_> = calls.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        repeated.is_empty(),
        "steps called more than once: {repeated:?}"
    );

    engine.database().close().await;
    database.drop_database().await;
}
