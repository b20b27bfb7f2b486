//! Status functions in `if`, fail-fast with `always()`/`failure()` steps, `on_failure` steps and
//! secrets in templates (redacted from everything stored), on SQLite and Postgres.

mod common;

use common::{Harness, databases};
use serde_json::json;
use stepwise_engine::{RunDetail, RunStatus, StepStatus, StepView};
use stepwise_integrations::SecretValue;

fn step<'a>(run: &'a RunDetail, id: &str) -> &'a StepView {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_functions_decide_what_runs_after_a_failure() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: cleanup
steps:
  - { id: work, uses: core.fail, retry: { max_attempts: 1 }, with: { message: "disk full" } }
  - { id: next, uses: core.log, with: { message: "never" } }
  - id: always_runs
    needs: [work]
    if: ${{ always() }}
    uses: core.set
    with: { saw: "${{ steps.work.status }}" }
  - id: on_fail
    needs: [work]
    if: ${{ failure() }}
    uses: core.set
    with: { handled: true }
  - id: on_success
    needs: [work]
    if: ${{ success() }}
    uses: core.set
    with: { handled: false }
"#,
        )
        .await;
        let run_id = h.start_run("cleanup", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Failed,
            "[{}] {run:?}",
            h.label
        );
        assert_eq!(
            run.summary.error.as_deref(),
            Some("step `work` failed: disk full")
        );
        assert_eq!(step(&run, "next").status, StepStatus::Cancelled);
        assert_eq!(step(&run, "always_runs").status, StepStatus::Succeeded);
        assert_eq!(
            step(&run, "always_runs").output,
            Some(json!({"saw": "failed"}))
        );
        assert_eq!(step(&run, "on_fail").status, StepStatus::Succeeded);
        assert_eq!(step(&run, "on_success").status, StepStatus::Skipped);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skips_propagate_unless_a_step_opts_in() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: skipping
steps:
  - { id: maybe, if: "${{ inputs.go }}", uses: core.set, with: { n: 1 } }
  - { id: after, uses: core.set, with: { n: 2 } }
  - id: report
    needs: [after]
    if: ${{ always() and needs.after.result == "skipped" }}
    uses: core.set
    with: { maybe: "${{ steps.maybe.status }}", after: "${{ steps.after.status }}" }
"#,
        )
        .await;
        let run_id = h.start_run("skipping", json!({"go": false})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Succeeded, "[{}]", h.label);
        assert_eq!(step(&run, "maybe").status, StepStatus::Skipped);
        assert_eq!(step(&run, "after").status, StepStatus::Skipped);
        assert_eq!(
            step(&run, "report").output,
            Some(json!({"maybe": "skipped", "after": "skipped"}))
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_steps_run_only_when_the_run_fails() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: alerting
steps:
  - id: charge
    if: ${{ inputs.fail }}
    uses: core.fail
    retry: { max_attempts: 1 }
    with: { message: "card declined" }
on_failure:
  - { id: alert, uses: core.set, with: { text: "Run failed: ${{ run.error }}" } }
  - { id: page, uses: core.log, with: { message: "${{ steps.alert.output.text }}" } }
"#,
        )
        .await;
        let failing = h.start_run("alerting", json!({"fail": true})).await;
        let run = h.finish(&failing).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Failed,
            "[{}] {run:?}",
            h.label
        );
        assert_eq!(
            step(&run, "alert").output,
            Some(json!({"text": "Run failed: step `charge` failed: card declined"}))
        );
        assert_eq!(step(&run, "page").status, StepStatus::Succeeded);
        assert_eq!(
            run.summary.error.as_deref(),
            Some("step `charge` failed: card declined")
        );

        let passing = h.start_run("alerting", json!({"fail": false})).await;
        let run = h.finish(&passing).await;
        assert_eq!(run.summary.status, RunStatus::Succeeded, "[{}]", h.label);
        assert_eq!(step(&run, "alert").status, StepStatus::Skipped);
        assert_eq!(step(&run, "page").status, StepStatus::Skipped);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_usable_and_never_stored_in_plaintext() {
    const CANARY: &str = "canary-5f3a9d2e-never-store-me";
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.engine
            .set_secret(&h.tenant_id, "API_TOKEN", &SecretValue::new(CANARY))
            .await
            .expect("set secret");
        h.deploy(
            r#"
name: secretive
steps:
  - id: use
    uses: core.set
    with:
      header: "Bearer ${{ secrets.API_TOKEN }}"
      length: ${{ secrets.API_TOKEN | length }}
  - { id: say, uses: core.log, with: { message: "token is ${{ secrets.API_TOKEN }}" } }
  - { id: boom, uses: core.fail, retry: { max_attempts: 1 }, with: { message: "bad ${{ secrets.API_TOKEN }}" } }
outputs:
  header: ${{ steps.use.output.header }}
"#,
        )
        .await;
        let run_id = h.start_run("secretive", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Failed);
        assert_eq!(
            step(&run, "use").output,
            Some(json!({"header": "Bearer ***", "length": CANARY.len()}))
        );
        assert_eq!(
            run.summary.error.as_deref(),
            Some("step `boom` failed: bad ***")
        );
        let everything = serde_json::to_string(&run).expect("json");
        assert!(!everything.contains(CANARY), "[{}] {everything}", h.label);
        assert!(
            everything.contains("token is ***"),
            "[{}] {everything}",
            h.label
        );
        let stored = h.dump_database().await;
        assert!(
            !stored.contains(CANARY),
            "[{}] plaintext in the database",
            h.label
        );
        h.stop().await;
    }
}
