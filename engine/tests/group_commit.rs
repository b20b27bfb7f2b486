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
