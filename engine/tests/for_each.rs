//! `for_each` fan-out on SQLite and Postgres: item outputs in order, item failures,
//! `on_error: continue`, and retry re-running only the failed items. `max_parallel` under a
//! crash is proven against the real binary in api/tests/crash.rs.

mod common;

use std::collections::BTreeMap;

use common::{Harness, databases};
use serde_json::{Value, json};
use stepwise_engine::{RunStatus, StepStatus};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A test provider: every POST succeeds, except that each path in `fail_once` is refused
/// (400) the first time.
async fn provider(fail_once: &[&str]) -> MockServer {
    let server = MockServer::start().await;
    for refused in fail_once {
        Mock::given(method("POST"))
            .and(path(*refused))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "refused"})))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    server
}

async fn calls(server: &MockServer) -> BTreeMap<String, usize> {
    let mut calls = BTreeMap::new();
    for request in server.received_requests().await.unwrap_or_default() {
        *calls.entry(request.url.path().to_owned()).or_default() += 1;
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_outputs_come_back_in_order_and_feed_later_steps() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: fan
inputs:
  words: { type: array, items: { type: string } }
steps:
  - id: shout
    uses: core.set
    for_each: ${{ inputs.words }}
    with:
      word: ${{ item | upper }}
      at: ${{ index }}
  - id: none
    uses: core.set
    for_each: []
    with: { never: "${{ item }}" }
  - id: literal
    uses: core.set
    for_each: [1, 2, "${{ inputs.words | length }}"]
    with: { n: "${{ item * 10 }}" }
  - id: join
    uses: core.set
    needs: [shout, none, literal]
    with:
      last: ${{ steps.shout.output[2].word }}
      count: ${{ steps.shout.output | length }}
      empty: ${{ steps.none.output }}
outputs:
  shout: ${{ steps.shout.output }}
  literal: ${{ steps.literal.output }}
  join: ${{ steps.join.output }}
"#,
        )
        .await;
        let run_id = h
            .start_run("fan", json!({ "words": ["a", "b", "c"] }))
            .await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        let output = run.output.clone().expect("outputs");
        assert_eq!(
            output["shout"],
            json!([
                { "word": "A", "at": 0 },
                { "word": "B", "at": 1 },
                { "word": "C", "at": 2 }
            ]),
            "[{}]",
            h.label
        );
        assert_eq!(
            output["literal"],
            json!([{ "n": 10 }, { "n": 20 }, { "n": 30 }])
        );
        assert_eq!(
            output["join"],
            json!({ "last": "C", "count": 3, "empty": [] })
        );
        let shout = run.steps.iter().find(|step| step.id == "shout").unwrap();
        let item_ids: Vec<&str> = shout.items.iter().map(|item| item.id.as_str()).collect();
        assert_eq!(
            item_ids,
            ["shout[0]", "shout[1]", "shout[2]"],
            "[{}]",
            h.label
        );
        assert!(
            shout
                .items
                .iter()
                .all(|item| item.status == StepStatus::Succeeded),
            "[{}] {shout:?}",
            h.label
        );
        assert!(
            run.steps.iter().all(|step| !step.id.contains('[')),
            "[{}] items are listed under their step only",
            h.label
        );
        h.stop().await;
    }
}

fn flaky(server: &MockServer, on_error: &str) -> String {
    format!(
        r#"
name: flaky
steps:
  - id: each
    uses: http.request
    for_each: [1, 2, 3, 4]
    max_parallel: 1
    retry: {{ max_attempts: 1 }}
    on_error: {on_error}
    with: {{ method: POST, url: "{uri}/item/${{{{ item }}}}" }}
  - id: after
    uses: http.request
    needs: [each]
    with: {{ method: POST, url: "{uri}/after" }}
"#,
        uri = server.uri()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_fails_the_step_and_retry_reruns_only_the_failed_items() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = provider(&["/item/2"]).await;
        h.deploy(&flaky(&server, "fail")).await;
        let run_id = h.start_run("flaky", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Failed,
            "[{}] {run:?}",
            h.label
        );
        let error = run.summary.error.clone().unwrap_or_default();
        assert!(
            error.contains("step `each` failed: item 1 failed"),
            "[{}] {error}",
            h.label
        );
        let each = run.steps.iter().find(|step| step.id == "each").unwrap();
        let statuses: Vec<StepStatus> = each.items.iter().map(|item| item.status).collect();
        assert_eq!(
            statuses,
            [
                StepStatus::Succeeded,
                StepStatus::Failed,
                StepStatus::Cancelled,
                StepStatus::Cancelled
            ],
            "[{}] no item starts after one failed (max_parallel 1)",
            h.label
        );

        h.engine
            .retry_run(&h.tenant_id, &run_id, false)
            .await
            .expect("retry");
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        let calls = calls(&server).await;
        let expected: BTreeMap<String, usize> = [
            ("/item/1", 1),
            ("/item/2", 2),
            ("/item/3", 1),
            ("/item/4", 1),
            ("/after", 1),
        ]
        .into_iter()
        .map(|(path, count)| (path.to_owned(), count))
        .collect();
        assert_eq!(
            calls, expected,
            "[{}] only the failed item ran again",
            h.label
        );
        let each = run.steps.iter().find(|step| step.id == "each").unwrap();
        assert_eq!(
            each.output.as_ref().and_then(Value::as_array).map(Vec::len),
            Some(4),
            "[{}]",
            h.label
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_error_continue_failed_items_give_null_and_the_rest_run() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = provider(&["/item/2"]).await;
        h.deploy(&flaky(&server, "continue")).await;
        let run_id = h.start_run("flaky", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:?}",
            h.label
        );
        let each = run.steps.iter().find(|step| step.id == "each").unwrap();
        let output = each
            .output
            .as_ref()
            .and_then(Value::as_array)
            .expect("list");
        assert_eq!(output.len(), 4, "[{}]", h.label);
        assert_eq!(output[1], Value::Null, "[{}] {output:?}", h.label);
        assert_eq!(output[2]["status"], 200, "[{}] {output:?}", h.label);
        let calls = calls(&server).await;
        assert_eq!(calls.len(), 5, "[{}] {calls:?}", h.label);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_that_is_not_a_list_fails_the_step_clearly() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: notalist
inputs:
  thing: { type: integer }
steps:
  - id: each
    uses: core.set
    for_each: ${{ inputs.thing }}
    with: { x: "${{ item }}" }
"#,
        )
        .await;
        let run_id = h.start_run("notalist", json!({ "thing": 5 })).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Failed,
            "[{}] {run:?}",
            h.label
        );
        let error = run.summary.error.clone().unwrap_or_default();
        assert!(
            error.contains("in `for_each`: expected a list, got a number"),
            "[{}] {error}",
            h.label
        );
        h.stop().await;
    }
}
