//! A process whose step worker is down says so (issue 14, item 2): while the worker cannot
//! start (the `worker.start` failpoint fails every attempt), `/readyz` answers 503 with the
//! reason, `stepwise_worker_up` is 0 and a run that needs the worker waits; once it can start,
//! readiness, the metric and the run recover without a restart of the process.
//! Needs `--features failpoints` (the README's test command). One test in this binary: the
//! failpoint registry is global to the process.
#![cfg(feature = "failpoints")]

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

const SLEEPER: &str = r#"name: sleeper
steps:
  - id: nap
    uses: core.sleep
    with:
      duration: 1s
"#;

async fn readiness(app: &common::TestApp) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn worker_up(app: &common::TestApp) -> String {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|line| line.starts_with("stepwise_worker_up "))
        .unwrap_or_else(|| panic!("no stepwise_worker_up in {text}"))
        .to_owned()
}

/// Polls `/readyz` (bounded) until it answers `wanted`; returns the body.
async fn wait_for_readiness(app: &common::TestApp, wanted: StatusCode) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = readiness(app).await;
        if status == wanted {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "[{}] /readyz still {status} after 30 s: {body}",
            app.backend
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metric_follow_the_step_worker() {
    for database in common::databases().await {
        fail::cfg("worker.start", "return").expect("configure the failpoint");
        let app = common::spawn_app(database).await;

        let down = wait_for_readiness(&app, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(
            down["error"]["code"], "unavailable",
            "[{}] {down}",
            app.backend
        );
        let message = down["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("step worker is down"),
            "[{}] {message}",
            app.backend
        );
        assert_eq!(
            worker_up(&app).await,
            "stepwise_worker_up 0",
            "[{}]",
            app.backend
        );
        let deployed = app.deploy(SLEEPER).await;
        assert!(deployed.status().is_success(), "[{}] deploy", app.backend);
        let run_id = app.trigger("sleeper", "{}").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let waiting = app
            .expect_json(
                app.get(&format!("/api/v1/runs/{run_id}")).await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            waiting["status"], "running",
            "[{}] no worker, so the wake-up waits: {waiting}",
            app.backend
        );

        fail::remove("worker.start");
        let up = wait_for_readiness(&app, StatusCode::OK).await;
        assert_eq!(up["status"], "ok", "[{}]", app.backend);
        assert_eq!(
            worker_up(&app).await,
            "stepwise_worker_up 1",
            "[{}]",
            app.backend
        );
        let run = app.wait_for_run(&run_id).await;
        assert_eq!(run["status"], "succeeded", "[{}] {run}", app.backend);
        let status = app.engine.worker_status();
        assert!(status.restarts >= 1, "[{}] {status:?}", app.backend);
        app.stop().await;
    }
}
