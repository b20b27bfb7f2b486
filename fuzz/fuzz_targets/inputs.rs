//! A run input (JSON text) validated against a workflow's `inputs:` declaration: the input
//! with defaults or a list of problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepwise_integrations::Registry;
use stepwise_workflows::parse_workflow;

const WORKFLOW: &str = r#"
name: fuzz-inputs
inputs:
  count: { type: integer, minimum: 1, default: 1 }
  name: { type: string, maxLength: 20 }
  tags: { type: array, items: { type: string }, uniqueItems: true }
  when: { type: string, format: date-time, default: "2026-01-01T00:00:00Z" }
  nested:
    type: object
    properties: { a: { type: array, items: { type: object } } }
    default: {}
steps:
  - id: log
    uses: core.log
    with: { message: "${{ inputs }}" }
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let parsed = parse_workflow("inputs.yaml", WORKFLOW, &Registry::builtin());
    let workflow = parsed.workflow.expect("the fuzz workflow is valid");
    if let Ok(prepared) = workflow.prepare_input(input) {
        assert!(prepared.is_object());
    }
});
