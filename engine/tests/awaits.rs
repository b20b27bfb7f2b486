//! Steps that wait on the engine: `workflow.run` (child runs, linked to their parent, whose
//! result, failure or cancellation reaches the parent) and `core.wait_for_webhook` (a parked
//! step resumed by a matching delivery, or failed by its timeout), on SQLite and Postgres.

mod common;

use std::time::Duration;

use common::{Harness, databases};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use stepwise_engine::{RunDetail, RunStatus, StepStatus, StepView};
use stepwise_integrations::SecretValue;
use stepwise_integrations::webhooks::WebhookScheme;

fn step<'a>(run: &'a RunDetail, id: &str) -> &'a StepView {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:?}"))
}

async fn run(h: &Harness, run_id: &str) -> RunDetail {
    h.engine
        .get_run(&h.tenant_id, run_id)
        .await
        .expect("get run")
        .expect("run exists")
}

/// The runs a run started through `workflow.run`.
async fn children(h: &Harness, parent: &str) -> Vec<RunDetail> {
    let page = h
        .engine
        .list_runs(&h.tenant_id, &Default::default(), None, 100)
        .await
        .expect("list runs");
    let mut found = Vec::new();
    for summary in page.items {
        if summary.parent_run_id.as_deref() == Some(parent) {
            found.push(run(h, &summary.id).await);
        }
    }
    found
}

/// Polls (bounded) until `check` holds for the run.
async fn eventually(h: &Harness, run_id: &str, what: &str, check: impl Fn(&RunDetail) -> bool) {
    for _ in 0..200 {
        if check(&run(h, run_id).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("[{}] {what}: {:?}", h.label, run(h, run_id).await);
}

const CHILD: &str = r#"
name: double
inputs:
  n: { type: integer }
steps:
  - { id: calc, uses: core.set, with: { n: "${{ inputs.n * 2 }}" } }
outputs:
  n: ${{ steps.calc.output.n }}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_run_returns_its_outputs_to_the_parent_step() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(CHILD).await;
        h.deploy(
            r#"
name: parent
steps:
  - { id: call, uses: workflow.run, with: { workflow: double, input: { n: 21 } } }
  - { id: use, uses: core.set, with: { got: "${{ steps.call.output.output.n }}" } }
outputs:
  answer: ${{ steps.use.output.got }}
"#,
        )
        .await;
        let run_id = h.start_run("parent", json!({})).await;
        let parent = h.finish(&run_id).await;
        let label = h.label;
        assert_eq!(
            parent.summary.status,
            RunStatus::Succeeded,
            "[{label}] {parent:?}"
        );
        assert_eq!(parent.output, Some(json!({"answer": 42})), "[{label}]");
        let kids = children(&h, &run_id).await;
        assert_eq!(kids.len(), 1, "[{label}] one child");
        let child = &kids[0];
        assert_eq!(child.summary.trigger_kind, "workflow");
        assert_eq!(child.summary.status, RunStatus::Succeeded);
        assert_eq!(
            step(&parent, "call").output,
            Some(json!({"run_id": child.summary.id, "status": "succeeded", "output": {"n": 42}})),
            "[{label}]"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_waits_for_a_slow_child_and_fails_with_a_failed_one() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: slow
inputs:
  fail: { type: boolean, default: false }
steps:
  - { id: nap, uses: core.sleep, with: { duration: "300ms" } }
  - id: maybe_fail
    if: ${{ inputs.fail }}
    uses: core.fail
    with: { message: "child gave up" }
outputs:
  napped: true
"#,
        )
        .await;
        h.deploy(
            r#"
name: caller
inputs:
  fail: { type: boolean, default: false }
steps:
  - { id: call, uses: workflow.run, with: { workflow: slow, input: { fail: "${{ inputs.fail }}" } } }
"#,
        )
        .await;
        let label = h.label;
        let ok = h.start_run("caller", json!({})).await;
        eventually(&h, &ok, "the call step waits", |run| {
            step(run, "call").status == StepStatus::Waiting
        })
        .await;
        let done = h.finish(&ok).await;
        assert_eq!(
            done.summary.status,
            RunStatus::Succeeded,
            "[{label}] {done:?}"
        );
        assert_eq!(
            step(&done, "call")
                .output
                .as_ref()
                .map(|o| o["output"].clone()),
            Some(json!({"napped": true}))
        );

        let bad = h.start_run("caller", json!({"fail": true})).await;
        let failed = h.finish(&bad).await;
        assert_eq!(failed.summary.status, RunStatus::Failed, "[{label}]");
        let error = failed.summary.error.unwrap_or_default();
        assert!(
            error.contains("workflow `slow` failed") && error.contains("child gave up"),
            "[{label}] {error}"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_child_and_a_timeout_fails_the_step() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: forever
steps:
  - { id: nap, uses: core.sleep, with: { duration: "1h" } }
"#,
        )
        .await;
        h.deploy(
            r#"
name: impatient
inputs:
  timeout: { type: string, default: "1h" }
steps:
  - { id: call, uses: workflow.run, with: { workflow: forever, timeout: "${{ inputs.timeout }}" } }
"#,
        )
        .await;
        let label = h.label;
        let parent = h.start_run("impatient", json!({})).await;
        eventually(&h, &parent, "the call step waits", |run| {
            step(run, "call").status == StepStatus::Waiting
        })
        .await;
        let kids = children(&h, &parent).await;
        assert_eq!(kids.len(), 1, "[{label}]");
        h.engine
            .cancel_run(&h.tenant_id, &parent)
            .await
            .expect("cancel parent");
        let child = run(&h, &kids[0].summary.id).await;
        assert_eq!(
            child.summary.status,
            RunStatus::Cancelled,
            "[{label}] {child:?}"
        );

        let timed = h.start_run("impatient", json!({"timeout": "300ms"})).await;
        let failed = h.finish(&timed).await;
        assert_eq!(failed.summary.status, RunStatus::Failed, "[{label}]");
        assert!(
            failed
                .summary
                .error
                .as_deref()
                .is_some_and(|e| e.contains("did not finish within 300ms")),
            "[{label}] {failed:?}"
        );
        h.stop().await;
    }
}

fn github_delivery(
    secret: &str,
    body: &Value,
    event: &str,
    delivery: &str,
) -> (HeaderMap, Vec<u8>) {
    let body = serde_json::to_vec(body).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).unwrap(),
    );
    headers.insert("x-github-event", HeaderValue::from_str(event).unwrap());
    headers.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_step_resumes_on_the_matching_delivery_only() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let source = h
            .engine
            .create_source(
                &h.tenant_id,
                "gh",
                &WebhookScheme::Github,
                &SecretValue::new("s3cret"),
            )
            .await
            .expect("source");
        h.deploy(
            r#"
name: review
inputs:
  pr: { type: integer }
steps:
  - id: merged
    uses: core.wait_for_webhook
    with:
      source: gh
      events: [pull_request]
      match: { body.action: closed, body.number: "${{ inputs.pr }}" }
  - { id: after, uses: core.set, with: { by: "${{ steps.merged.output.body.sender }}" } }
"#,
        )
        .await;
        let label = h.label;
        let run_id = h.start_run("review", json!({"pr": 7})).await;
        eventually(&h, &run_id, "the step parks", |run| {
            step(run, "merged").status == StepStatus::Waiting
        })
        .await;
        let mut deliveries = 0;
        let mut send = |body: Value, event: &str| {
            deliveries += 1;
            github_delivery("s3cret", &body, event, &format!("d-{deliveries}"))
        };
        // Other PR, other action, other event type: none of them resumes the step.
        for (body, event) in [
            (
                json!({"action": "closed", "number": 8, "sender": "x"}),
                "pull_request",
            ),
            (
                json!({"action": "opened", "number": 7, "sender": "x"}),
                "pull_request",
            ),
            (
                json!({"action": "closed", "number": 7, "sender": "x"}),
                "issues",
            ),
        ] {
            let (headers, bytes) = send(body, event);
            h.engine
                .ingest("github", &source.id, &headers, &bytes)
                .await
                .expect("ingest");
        }
        let waiting = run(&h, &run_id).await;
        assert_eq!(
            step(&waiting, "merged").status,
            StepStatus::Waiting,
            "[{label}]"
        );

        let (headers, bytes) = send(
            json!({"action": "closed", "number": 7, "sender": "octocat"}),
            "pull_request",
        );
        h.engine
            .ingest("github", &source.id, &headers, &bytes)
            .await
            .expect("ingest");
        let done = h.finish(&run_id).await;
        assert_eq!(
            done.summary.status,
            RunStatus::Succeeded,
            "[{label}] {done:?}"
        );
        assert_eq!(step(&done, "after").output, Some(json!({"by": "octocat"})));
        assert_eq!(
            step(&done, "merged")
                .output
                .as_ref()
                .map(|o| o["delivery_id"].clone()),
            Some(json!("d-4"))
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_without_a_delivery_times_out() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: patient
steps:
  - id: hook
    uses: core.wait_for_webhook
    on_error: continue
    with: { source: nowhere, timeout: "300ms" }
  - { id: after, uses: core.set, with: { status: "${{ steps.hook.status }}" } }
"#,
        )
        .await;
        let run_id = h.start_run("patient", json!({})).await;
        let done = h.finish(&run_id).await;
        let label = h.label;
        assert_eq!(
            done.summary.status,
            RunStatus::Succeeded,
            "[{label}] {done:?}"
        );
        assert_eq!(step(&done, "hook").status, StepStatus::Failed);
        assert!(
            step(&done, "hook").error.as_ref().is_some_and(|e| e
                .to_string()
                .contains("no matching delivery on source `nowhere` within 300ms")),
            "[{label}] {done:?}"
        );
        assert_eq!(
            step(&done, "after").output,
            Some(json!({"status": "failed"}))
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_stops_waiting_cancels_its_child_and_a_retry_starts_a_new_one() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: forever
steps:
  - { id: nap, uses: core.sleep, with: { duration: "1h" } }
"#,
        )
        .await;
        h.deploy(
            r#"
name: impatient
steps:
  - { id: call, uses: workflow.run, on_error: continue, with: { workflow: forever, timeout: "300ms" } }
  - { id: later, uses: core.sleep, with: { duration: "1h" } }
"#,
        )
        .await;
        let label = h.label;
        let parent = h.start_run("impatient", json!({})).await;
        eventually(&h, &parent, "the call step times out", |run| {
            step(run, "call").status == StepStatus::Failed
        })
        .await;
        assert_eq!(
            run(&h, &parent).await.summary.status,
            RunStatus::Running,
            "[{label}] the parent goes on"
        );
        let kids = children(&h, &parent).await;
        assert_eq!(kids.len(), 1, "[{label}] {kids:?}");
        let first = &kids[0];
        assert_eq!(
            first.summary.status,
            RunStatus::Cancelled,
            "[{label}] the timed-out step's child is cancelled: {first:?}"
        );
        assert!(
            first
                .summary
                .error
                .as_deref()
                .is_some_and(|e| e.contains(&parent) && e.contains("`call`")),
            "[{label}] {first:?}"
        );
        assert_eq!(
            step(first, "nap").status,
            StepStatus::Cancelled,
            "[{label}] {first:?}"
        );

        // Retrying the parent runs the step again: a new child, the old one stays cancelled.
        h.engine
            .cancel_run(&h.tenant_id, &parent)
            .await
            .expect("cancel");
        h.engine
            .retry_run(&h.tenant_id, &parent, false)
            .await
            .expect("retry");
        eventually(&h, &parent, "the call step waits again", |run| {
            step(run, "call").status == StepStatus::Waiting
        })
        .await;
        let kids = children(&h, &parent).await;
        assert_eq!(kids.len(), 2, "[{label}] {kids:?}");
        let second = kids
            .iter()
            .find(|kid| kid.summary.id != first.summary.id)
            .expect("a new child");
        assert_eq!(second.summary.status, RunStatus::Running, "[{label}]");
        assert_eq!(
            run(&h, &first.summary.id).await.summary.status,
            RunStatus::Cancelled,
            "[{label}]"
        );
        eventually(
            &h,
            &second.summary.id,
            "the new child is cancelled",
            |run| run.summary.status == RunStatus::Cancelled,
        )
        .await;
        h.engine
            .cancel_run(&h.tenant_id, &parent)
            .await
            .expect("cancel");
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_that_fails_while_its_step_waits_cancels_the_child() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: forever
steps:
  - { id: nap, uses: core.sleep, with: { duration: "1h" } }
"#,
        )
        .await;
        h.deploy(
            r#"
name: doomed
steps:
  - { id: call, uses: workflow.run, with: { workflow: forever } }
  - { id: nap, needs: [], uses: core.sleep, with: { duration: "300ms" } }
  - { id: boom, needs: [nap], uses: core.fail, with: { message: "gave up" } }
"#,
        )
        .await;
        let label = h.label;
        let parent = h.start_run("doomed", json!({})).await;
        let failed = h.finish(&parent).await;
        assert_eq!(failed.summary.status, RunStatus::Failed, "[{label}]");
        let kids = children(&h, &parent).await;
        assert_eq!(kids.len(), 1, "[{label}] {kids:?}");
        assert_eq!(
            kids[0].summary.status,
            RunStatus::Cancelled,
            "[{label}] {:?}",
            kids[0]
        );
        h.stop().await;
    }
}
