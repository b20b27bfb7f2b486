//! Data-driven run tests: each `tests/runs/NAME.yaml` is a workflow whose first line is
//! `# input: <JSON>`; it runs on SQLite and on Postgres, and the run's status, error, outputs
//! and step statuses (with `for_each` items) must equal `tests/runs/NAME.expected` on both.
//! Adding a case is adding a file; `UPDATE_EXPECT=1 cargo test -p stepwise-engine --test
//! run_cases` writes the expectations (review them before committing).

mod common;

use std::path::{Path, PathBuf};

use common::{Harness, databases};
use expect_test::expect_file;
use serde_json::{Map, Value, json};
use stepwise_engine::RunDetail;

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/runs"))
            .expect("tests/runs")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
    cases.sort();
    cases
}

fn input_of(source: &str, path: &Path) -> Value {
    let line = source.lines().next().unwrap_or_default();
    let json = line
        .strip_prefix("# input:")
        .unwrap_or_else(|| panic!("{}: first line must be `# input: <JSON>`", path.display()));
    serde_json::from_str(json.trim())
        .unwrap_or_else(|error| panic!("{}: input is not JSON: {error}", path.display()))
}

/// What a case asserts: everything about the run that does not depend on time or ids.
fn snapshot(run: &RunDetail) -> String {
    let steps: Map<String, Value> = run
        .steps
        .iter()
        .map(|step| {
            let status = json!(step.status);
            let value = if step.items.is_empty() {
                status
            } else {
                let items: Vec<Value> = step.items.iter().map(|item| json!(item.status)).collect();
                json!({ "status": status, "items": items })
            };
            (step.id.clone(), value)
        })
        .collect();
    let errors: Map<String, Value> = run
        .steps
        .iter()
        .filter_map(|step| Some((step.id.clone(), step.error.clone()?)))
        .collect();
    let view = json!({
        "status": run.summary.status,
        "error": run.summary.error,
        "output": run.output,
        "steps": steps,
        "step_errors": errors,
    });
    format!("{}\n", serde_json::to_string_pretty(&view).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_cases() {
    let cases = cases();
    assert!(!cases.is_empty());
    for database in databases().await {
        let h = Harness::start(&database).await;
        for path in &cases {
            let source = std::fs::read_to_string(path).expect("read case");
            let input = input_of(&source, path);
            let name = h
                .engine
                .deploy(&h.tenant_id, &path.display().to_string(), &source)
                .await
                .unwrap_or_else(|error| panic!("[{}] {}: {error:?}", h.label, path.display()))
                .name;
            let run_id = h.start_run(&name, input).await;
            let run = h.finish(&run_id).await;
            let snapshot = snapshot(&run);
            // One expectation for both backends: a difference between them fails here.
            expect_file![path.with_extension("expected")].assert_eq(&snapshot);
        }
        h.stop().await;
    }
}
