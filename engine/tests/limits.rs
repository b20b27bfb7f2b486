//! The caps on what steps store (`DataLimits`), on SQLite and Postgres: a step beyond one fails
//! permanently with an error naming the limit, and what it produced is not stored.

mod common;

use common::{Harness, databases};
use serde_json::json;
use stepwise_engine::{DataLimits, RunDetail, RunStatus, StepStatus, StepView};

fn step<'a>(run: &'a RunDetail, id: &str) -> &'a StepView {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

fn error(step: &StepView) -> String {
    step.error
        .as_ref()
        .and_then(|error| error.get("message"))
        .and_then(|message| message.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_million_character_string_fails_its_step_under_the_default_limits() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.deploy(
            r#"
name: huge
steps:
  - id: big
    uses: core.set
    with:
      text: ${{ "x" * 100000000 }}
"#,
        )
        .await;
        let run_id = h.start_run("huge", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(run.summary.status, RunStatus::Failed, "[{}]", h.label);
        let big = step(&run, "big");
        assert_eq!(big.status, StepStatus::Failed);
        assert_eq!(big.attempts, 1, "[{}] a permanent error", h.label);
        assert!(
            error(big).contains("is larger than the limit of 1048576 bytes"),
            "[{}] {}",
            h.label,
            error(big)
        );
        assert_eq!(big.output, None);
        assert!(h.dump_database().await.len() < 50_000_000, "[{}]", h.label);
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_and_run_data_beyond_the_configured_limits_fail_the_step() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        h.engine.set_data_limits(DataLimits {
            max_step_output_bytes: 1000,
            max_run_data_bytes: 5000,
        });
        h.deploy(
            r#"
name: caps
inputs:
  size: { type: integer }
steps:
  - id: fits
    uses: core.set
    with:
      text: ${{ "x" * inputs.size }}
  - id: two_halves
    uses: core.set
    on_error: continue
    with:
      a: ${{ "x" * 600 }}
      b: ${{ "x" * 600 }}
  - id: one_expression
    uses: core.set
    on_error: continue
    with:
      text: ${{ "x" * 2000 }}
  - { id: s1, uses: core.set, with: { text: "${{ 'x' * 700 }}" } }
  - { id: s2, uses: core.set, with: { text: "${{ 'x' * 700 }}" } }
  - { id: s3, uses: core.set, with: { text: "${{ 'x' * 700 }}" } }
"#,
        )
        .await;
        let run_id = h.start_run("caps", json!({ "size": 700 })).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            step(&run, "fits").output,
            Some(json!({ "text": "x".repeat(700) }))
        );
        let two_halves = step(&run, "two_halves");
        assert_eq!(two_halves.status, StepStatus::Failed, "[{}]", h.label);
        assert!(
            error(two_halves).starts_with(
                "the step's input is larger than the limit of 1000 bytes \
                 (--max-step-output-bytes; at least"
            ),
            "[{}] {}",
            h.label,
            error(two_halves)
        );
        assert_eq!((&two_halves.input, &two_halves.output), (&None, &None));
        let one_expression = step(&run, "one_expression");
        assert!(
            error(one_expression).contains("is larger than the limit of 1000 bytes"),
            "[{}] {}",
            h.label,
            error(one_expression)
        );
        // `fits` stored about 1,430 bytes, so did s1 and s2: s3 would pass 5,000.
        assert_eq!(step(&run, "s2").status, StepStatus::Succeeded);
        let s3 = step(&run, "s3");
        assert_eq!(s3.status, StepStatus::Failed, "[{}]", h.label);
        assert!(
            error(s3).contains("more than the limit of 5000 bytes (--max-run-data-bytes)"),
            "[{}] {}",
            h.label,
            error(s3)
        );
        assert_eq!(s3.output, None);
        assert_eq!(run.summary.status, RunStatus::Failed);
        h.stop().await;
    }
}
