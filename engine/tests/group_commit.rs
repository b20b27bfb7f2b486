//! Run starts share write transactions (group commit): concurrent starts all commit, a
//! failing start does not fail the starts committed beside it, and every caller's run is
//! stored once it has its id.

mod common;

use std::sync::{Arc, Mutex};

use common::{Harness, databases};
use serde_json::{Value, json};
use stepwise_engine::{EngineError, RunEvent, RunObserver, RunStatus};

const WORKFLOW: &str = r#"
name: doubled
inputs:
  n: { type: integer }
steps:
  - id: double
    uses: core.set
    with:
      n: ${{ inputs.n * 2 }}
outputs:
  n: ${{ steps.double.output.n }}
"#;

/// Counts the run events it sees, as a metrics exporter would.
#[derive(Default)]
struct Recorder(Mutex<Vec<RunEvent>>);

impl RunObserver for Recorder {
    fn observe(&self, event: &RunEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_commit_together_and_failures_stay_isolated() {
    for database in databases().await {
        let harness = Harness::start(&database).await;
        let label = harness.label;
        harness.deploy(WORKFLOW).await;
        let recorder = Arc::new(Recorder::default());
        harness.engine.observe(recorder.clone());

        // Spawned together, so the committer folds many of them into one transaction; every
        // fourth one is refused (a string where an integer is required, or no such workflow).
        let starts = (0..64)
            .map(|i| {
                let engine = harness.engine.clone();
                let tenant = harness.tenant_id.clone();
                tokio::spawn(async move {
                    let (workflow, input) = match i % 8 {
                        3 => ("doubled", json!({"n": "not a number"})),
                        7 => ("missing", json!({"n": i})),
                        _ => ("doubled", json!({"n": i})),
                    };
                    let started = engine
                        .start_run(&tenant, workflow, input, "manual", Value::Null)
                        .await;
                    (i, started)
                })
            })
            .collect::<Vec<_>>();
        let mut started = Vec::new();
        for start in starts {
            let (i, result) = start.await.expect("start task");
            match (i % 8, result) {
                (3, Err(EngineError::InvalidInput(_))) | (7, Err(EngineError::NotFound(_))) => {}
                (3 | 7, other) => panic!("[{label}] start {i} should be refused: {other:?}"),
                (_, Ok(run_id)) => started.push((i, run_id)),
                (_, Err(error)) => panic!("[{label}] start {i} failed: {error}"),
            }
        }
        assert_eq!(started.len(), 48, "[{label}]");
        for (i, run_id) in &started {
            // The id is only handed out after the commit: the run is readable at once.
            let run = harness
                .engine
                .get_run(&harness.tenant_id, run_id)
                .await
                .expect("read run")
                .unwrap_or_else(|| panic!("[{label}] run {run_id} not stored"));
            assert_eq!(run.summary.status, RunStatus::Succeeded, "[{label}]");
            assert_eq!(run.output, Some(json!({"n": i * 2})), "[{label}]");
        }
        let events = recorder.0.lock().unwrap().clone();
        let created = events
            .iter()
            .filter(|event| matches!(event, RunEvent::Started { trigger_kind, .. } if trigger_kind == "manual"))
            .count();
        let succeeded = events
            .iter()
            .filter(|event| {
                matches!(
                    event,
                    RunEvent::Run {
                        status: RunStatus::Succeeded,
                        ..
                    }
                )
            })
            .count();
        assert_eq!((created, succeeded), (48, 48), "[{label}]");
        harness.stop().await;
        database.drop().await;
    }
}

const PARENT: &str = r#"
name: parent
inputs:
  n: { type: integer }
steps:
  - { id: call, uses: workflow.run, with: { workflow: doubled, input: { n: "${{ inputs.n }}" } } }
outputs:
  n: ${{ steps.call.output.output.n }}
"#;

const SLEEPER: &str = r#"
name: sleeper
inputs:
  n: { type: integer }
steps:
  - { id: nap, uses: core.sleep, with: { duration: "50ms" } }
  - { id: double, uses: core.set, with: { n: "${{ inputs.n * 2 }}" } }
outputs:
  n: ${{ steps.double.output.n }}
"#;

/// A batch inserts the rows of its stand-alone runs together at its end, while a run that
/// starts a child (whose row names it) is written at once: mixed in one batch, every run
/// still has its run, step and attempt rows, and the sleeping runs their queued timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_inserted_at_the_batch_end_and_runs_written_at_once_mix() {
    for database in databases().await {
        let harness = Harness::start(&database).await;
        let label = harness.label;
        for source in [WORKFLOW, PARENT, SLEEPER] {
            harness.deploy(source).await;
        }
        let workflows = ["doubled", "parent", "sleeper"];
        let starts = (0..60)
            .map(|i| {
                let engine = harness.engine.clone();
                let tenant = harness.tenant_id.clone();
                tokio::spawn(async move {
                    let workflow = workflows[i % 3];
                    let run_id = engine
                        .start_run(&tenant, workflow, json!({ "n": i }), "manual", Value::Null)
                        .await
                        .unwrap_or_else(|error| panic!("start {i} ({workflow}): {error}"));
                    (i, workflow, run_id)
                })
            })
            .collect::<Vec<_>>();
        for start in starts {
            let (i, workflow, run_id) = start.await.expect("start task");
            let run = harness.finish(&run_id).await;
            assert_eq!(
                run.summary.status,
                RunStatus::Succeeded,
                "[{label}] run {i} of {workflow}: {run:?}"
            );
            assert_eq!(
                run.output,
                Some(json!({"n": i * 2})),
                "[{label}] {workflow}"
            );
            let expected_steps = match workflow {
                "doubled" => vec!["double"],
                "parent" => vec!["call"],
                _ => vec!["nap", "double"],
            };
            let steps: Vec<&str> = run.steps.iter().map(|step| step.id.as_str()).collect();
            assert_eq!(steps, expected_steps, "[{label}] {workflow}");
            for step in &run.steps {
                assert_eq!(
                    step.attempt_history.len(),
                    1,
                    "[{label}] {workflow} step {} has one attempt row: {:?}",
                    step.id,
                    step.attempt_history
                );
                assert_eq!(step.attempt_history[0].status, "succeeded", "[{label}]");
            }
        }
        harness.stop().await;
        database.drop().await;
    }
}
