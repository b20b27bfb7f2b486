//! Masking secrets in run data, on SQLite and Postgres: only the values a step resolved (and
//! what it read that was masked before) are masked, never keys and never values shorter than
//! the minimum; later steps, `for_each` items, workflow outputs and parent runs read the true
//! values, which are stored only sealed, and key rotation re-wraps them.

mod common;

use std::time::Duration;

use common::{Harness, databases};
use serde_json::{Value, json};
use stepwise_engine::vault::{KeyRing, LocalKeyProvider, MasterKey, write_key_file};
use stepwise_engine::{RunDetail, RunStatus, RuntimeOptions, StepStatus, StepView};
use stepwise_integrations::SecretValue;

fn step<'a>(run: &'a RunDetail, id: &str) -> &'a StepView {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

async fn set_secret(h: &Harness, name: &str, value: &str) {
    h.engine
        .set_secret(&h.tenant_id, name, &SecretValue::new(value))
        .await
        .expect("set secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_a_step_does_not_resolve_or_that_are_short_leave_its_data_alone() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        // Shorter than the minimum: masking `a` would turn `status` into `st***tus`.
        set_secret(&h, "SHORT", "a").await;
        set_secret(&h, "UNUSED", "unused-but-long-value").await;
        set_secret(&h, "TOKEN", "token-value-1234").await;
        h.deploy(
            r#"
name: shapes
steps:
  - id: first
    uses: core.set
    with:
      status: ok
      message: "a value with ${{ inputs.text }}"
  - id: second
    uses: core.set
    with:
      echoed: ${{ steps.first.output.message }}
      status: ${{ steps.first.output.status }}
      short: ${{ secrets.SHORT }}
      token: ${{ secrets.TOKEN }}
      token_name: TOKEN
outputs:
  message: ${{ steps.second.output.echoed }}
"#,
        )
        .await;
        let run_id = h
            .start_run("shapes", json!({"text": "unused-but-long-value"}))
            .await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {:?}",
            h.label,
            run.summary.error
        );
        assert_eq!(
            step(&run, "first").output,
            Some(json!({"status": "ok", "message": "a value with unused-but-long-value"})),
            "[{}] no step of it resolved UNUSED: the text stays as it is",
            h.label
        );
        assert_eq!(
            step(&run, "second").output,
            Some(json!({
                "echoed": "a value with unused-but-long-value",
                "status": "ok",
                "short": "a",
                "token": "***",
                "token_name": "TOKEN",
            })),
            "[{}]",
            h.label
        );
        assert_eq!(
            run.output,
            Some(json!({"message": "a value with unused-but-long-value"}))
        );
        h.stop().await;
    }
}

const CHILD: &str = r#"
name: child
steps:
  - { id: make, uses: core.set, with: { token: "${{ secrets.TOKEN }}" } }
outputs:
  token: ${{ steps.make.output.token }}
"#;

const PARENT: &str = r#"
name: parent
steps:
  - id: fetch
    uses: core.set
    with:
      token: ${{ secrets.TOKEN }}
      header: "Bearer ${{ secrets.TOKEN }}"
  - id: each
    uses: core.set
    needs: [fetch]
    for_each: ${{ [steps.fetch.output.token, 'plain'] }}
    with:
      value: ${{ item }}
  - id: call
    uses: workflow.run
    with: { workflow: child }
  - { id: nap, uses: core.sleep, needs: [fetch, each, call], with: { duration: "${{ inputs.nap }}" } }
  - id: check
    uses: core.set
    needs: [nap]
    with:
      length: ${{ steps.fetch.output.token | length }}
      header: ${{ steps.fetch.output.header == 'Bearer ' ~ secrets.TOKEN }}
      item: ${{ steps.each.output[0].value | length }}
      plain: ${{ steps.each.output[1].value }}
      child: ${{ steps.call.output.output.token | length }}
  - { id: copy, uses: core.set, needs: [nap], with: { copied: "${{ steps.fetch.output.token }}" } }
outputs:
  token: ${{ steps.fetch.output.token }}
  length: ${{ steps.fetch.output.token | length }}
"#;

/// Checks a finished run of `parent` whose `TOKEN` is `canary`.
fn assert_true_values_read_and_masked_values_shown(label: &str, run: &RunDetail, canary: &str) {
    assert_eq!(
        run.summary.status,
        RunStatus::Succeeded,
        "[{label}] {:?}",
        run.summary.error
    );
    let length = canary.len();
    assert_eq!(
        step(run, "check").output,
        Some(json!({
            "length": length,
            "header": true,
            "item": length,
            "plain": "plain",
            "child": length,
        })),
        "[{label}] later steps read the true values"
    );
    assert_eq!(
        step(run, "copy").output,
        Some(json!({"copied": "***"})),
        "[{label}] a step that copies a masked value masks it, though it resolved no secret"
    );
    assert_eq!(
        step(run, "fetch").output,
        Some(json!({"token": "***", "header": "Bearer ***"})),
        "[{label}]"
    );
    assert_eq!(
        step(run, "each").output,
        Some(json!([{"value": "***"}, {"value": "plain"}])),
        "[{label}]"
    );
    assert_eq!(
        step(run, "call")
            .output
            .as_ref()
            .map(|output| &output["output"]),
        Some(&json!({"token": "***"})),
        "[{label}]"
    );
    assert_eq!(
        run.output,
        Some(json!({"token": "***", "length": length})),
        "[{label}]"
    );
    let everything = serde_json::to_string(run).expect("json");
    assert!(!everything.contains(canary), "[{label}] {everything}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_steps_read_true_values_that_are_stored_only_sealed() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
        set_secret(&h, "TOKEN", &canary).await;
        h.deploy(CHILD).await;
        h.deploy(PARENT).await;
        let run_id = h.start_run("parent", json!({"nap": "0s"})).await;
        let run = h.finish(&run_id).await;
        assert_true_values_read_and_masked_values_shown(h.label, &run, &canary);
        let stored = h.dump_database().await;
        assert!(
            !stored.contains(&canary),
            "[{}] plaintext in the database",
            h.label
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_sealed_values_and_later_steps_still_read_them() {
    for database in databases().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("stepwise.key");
        let old = MasterKey::generate();
        write_key_file(&keys, &KeyRing::new(vec![old.clone()])).expect("key file");
        let h = Harness::start_with_keys(
            &database,
            RuntimeOptions {
                concurrency: 8,
                poll_interval: Duration::from_millis(100),
                ..RuntimeOptions::default()
            },
            LocalKeyProvider::key_file(&keys).expect("key file"),
        )
        .await;
        let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
        set_secret(&h, "TOKEN", &canary).await;
        h.deploy(CHILD).await;
        h.deploy(PARENT).await;
        let run_id = h.start_run("parent", json!({"nap": "3s"})).await;
        // Wait until the run naps: every sealed value before `check` is written.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let run = h
                .engine
                .get_run(&h.tenant_id, &run_id)
                .await
                .expect("get run")
                .expect("run exists");
            if step(&run, "nap").status == StepStatus::Waiting {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{}] the run never napped: {:?}",
                h.label,
                run.steps
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let new = MasterKey::generate();
        write_key_file(&keys, &KeyRing::new(vec![new.clone(), old])).expect("key file");
        let report = h.engine.rewrap_secrets(10).await.expect("rotate");
        // The secret, plus the sealed values of fetch, each, its first item, call and the
        // child's run and step.
        assert_eq!(
            (report.rewrapped, report.remaining),
            (7, 0),
            "[{}]",
            h.label
        );
        // The old key goes: `check` must open the re-wrapped values with the new one.
        write_key_file(&keys, &KeyRing::new(vec![new])).expect("key file");
        let run = h.finish(&run_id).await;
        assert_true_values_read_and_masked_values_shown(h.label, &run, &canary);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_log_lines_mask_what_the_step_read() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
        set_secret(&h, "TOKEN", &canary).await;
        h.deploy(
            r#"
name: talk
steps:
  - { id: fetch, uses: core.set, with: { token: "${{ secrets.TOKEN }}" } }
  - { id: say, uses: core.log, with: { message: "token=${{ steps.fetch.output.token }}" } }
"#,
        )
        .await;
        let run_id = h.start_run("talk", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Succeeded, "[{}]", h.label);
        let say = step(&run, "say");
        assert_eq!(say.output, Some(json!({"message": "token=***"})));
        let logs: Vec<Value> = say
            .attempt_history
            .iter()
            .filter_map(|attempt| attempt.logs.clone())
            .collect();
        assert_eq!(logs[0][0]["message"], "token=***", "[{}]", h.label);
        h.stop().await;
    }
}
