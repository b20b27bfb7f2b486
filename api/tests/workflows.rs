//! Disabling and enabling a workflow, black-box, on every backend: a disabled workflow starts
//! no run (manual trigger and re-run answer 409 `workflow_disabled`, webhook deliveries skip it
//! but still start the other subscribed workflows), keeps its flag across deploys, and starts
//! again once enabled. Cron is covered by `engine/tests/schedules.rs`.

mod common;

use common::{HELLO, TestApp, for_each_backend};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "gh-enable-secret";

fn subscriber(name: &str) -> String {
    format!(
        "name: {name}\non:\n  webhook: {{ source: gh, events: [push] }}\nsteps:\n  - {{ id: read, uses: core.set, with: {{ x: \"${{{{ trigger.body.x }}}}\" }} }}\n"
    )
}

async fn switch(app: &TestApp, name: &str, action: &str) -> Value {
    app.expect_json(
        app.post_json(&format!("/api/v1/workflows/{name}/{action}"), "")
            .await,
        StatusCode::OK,
    )
    .await
}

async fn enabled(app: &TestApp, name: &str) -> Value {
    let detail = app
        .expect_json(
            app.get(&format!("/api/v1/workflows/{name}")).await,
            StatusCode::OK,
        )
        .await;
    detail["enabled"].clone()
}

/// A signed GitHub `push` delivery; returns the answer's body.
async fn push(app: &TestApp, url: &str, delivery: &str) -> Value {
    let body = json!({"x": delivery}).to_string();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let response = app
        .client
        .post(app.url(url))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("send");
    app.expect_json(response, StatusCode::OK).await
}

/// The workflow of each run, sorted.
async fn workflows_of(app: &TestApp, run_ids: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for run_id in run_ids.as_array().expect("run_ids") {
        let run = app
            .expect_json(
                app.get(&format!("/api/v1/runs/{}", run_id.as_str().unwrap()))
                    .await,
                StatusCode::OK,
            )
            .await;
        names.push(run["workflow"].as_str().unwrap().to_owned());
    }
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_workflow_is_not_triggered_and_keeps_its_flag_across_deploys() {
    for_each_backend(|app| async move {
        let backend = app.backend;
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        assert_eq!(enabled(&app, "hello").await, true, "[{backend}]");
        let run_id = app.trigger("hello", r#"{"name": "Ada"}"#).await;
        app.wait_for_run(&run_id).await;

        let disabled = switch(&app, "hello", "disable").await;
        assert_eq!(disabled["enabled"], false, "[{backend}] {disabled:#}");
        assert_eq!(disabled["name"], "hello");
        // Idempotent.
        assert_eq!(switch(&app, "hello", "disable").await["enabled"], false);
        let listed = app
            .expect_json(app.get("/api/v1/workflows").await, StatusCode::OK)
            .await;
        assert_eq!(
            listed["items"][0]["enabled"], false,
            "[{backend}] {listed:#}"
        );

        let runs_before = app.count_rows("runs").await;
        app.expect_error(
            app.post_json("/api/v1/workflows/hello/runs", r#"{"name": "Bob"}"#)
                .await,
            StatusCode::CONFLICT,
            "workflow_disabled",
        )
        .await;
        app.expect_error(
            app.post_json(&format!("/api/v1/runs/{run_id}/rerun"), "")
                .await,
            StatusCode::CONFLICT,
            "workflow_disabled",
        )
        .await;
        assert_eq!(app.count_rows("runs").await, runs_before, "[{backend}]");

        let redeployed = app
            .expect_json(
                app.deploy(&HELLO.replace("Hello,", "Hi,")).await,
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(redeployed["version"], 2);
        assert_eq!(
            enabled(&app, "hello").await,
            false,
            "[{backend}] after a deploy"
        );
        app.expect_error(
            app.post_json("/api/v1/workflows/hello/runs", "{}").await,
            StatusCode::CONFLICT,
            "workflow_disabled",
        )
        .await;

        assert_eq!(switch(&app, "hello", "enable").await["enabled"], true);
        let run_id = app.trigger("hello", r#"{"name": "Cy"}"#).await;
        let run = app.wait_for_run(&run_id).await;
        assert_eq!(run["status"], "succeeded", "[{backend}] {run:#}");
        assert_eq!(run["output"]["greeting"], "Hi, Cy");

        app.expect_error(
            app.post_json("/api/v1/workflows/nope/disable", "").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_skip_a_disabled_workflow_and_start_the_others() {
    for_each_backend(|app| async move {
        let backend = app.backend;
        for name in ["first", "second"] {
            app.expect_json(app.deploy(&subscriber(name)).await, StatusCode::CREATED)
                .await;
        }
        let source = app
            .expect_json(
                app.post_json(
                    "/api/v1/sources",
                    &json!({"name": "gh", "provider": "github", "secret": SECRET}).to_string(),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
        let url = source["url"].as_str().expect("url").to_owned();

        let both = push(&app, &url, "d-1").await;
        assert_eq!(
            workflows_of(&app, &both["run_ids"]).await,
            ["first", "second"],
            "[{backend}] {both:#}"
        );

        switch(&app, "second", "disable").await;
        let deliveries = app.count_rows("webhook_deliveries").await;
        let one = push(&app, &url, "d-2").await;
        assert_eq!(one["duplicate"], false, "[{backend}] {one:#}");
        assert_eq!(
            workflows_of(&app, &one["run_ids"]).await,
            ["first"],
            "[{backend}] {one:#}"
        );
        assert_eq!(
            app.count_rows("webhook_deliveries").await,
            deliveries + 1,
            "[{backend}] the delivery is still recorded"
        );

        switch(&app, "first", "disable").await;
        let none = push(&app, &url, "d-3").await;
        assert_eq!(none["run_ids"], json!([]), "[{backend}] {none:#}");
        assert!(none["delivery_id"].is_string(), "[{backend}] {none:#}");

        switch(&app, "second", "enable").await;
        let again = push(&app, &url, "d-4").await;
        assert_eq!(
            workflows_of(&app, &again["run_ids"]).await,
            ["second"],
            "[{backend}] {again:#}"
        );
        app
    })
    .await;
}
