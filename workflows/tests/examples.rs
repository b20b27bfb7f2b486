//! Every example in `workflows/examples/` is valid, and the JSON Schema agrees with the parser.

mod common;

use common::{TestCatalog, yaml_files};
use expect_test::expect;
use serde_json::Value;
use stepwise_workflows::{json_schema, parse_workflow};

fn yaml_to_json(source: &str) -> Value {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(source, options).unwrap()
}

#[test]
fn examples_have_no_diagnostics() {
    let examples = yaml_files("examples");
    assert!(examples.len() >= 3);
    for path in examples {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let parsed = parse_workflow(&name, &source, &TestCatalog::new());
        let rendered: Vec<String> = parsed.diagnostics.iter().map(|d| d.render(&name)).collect();
        assert!(rendered.is_empty(), "{}", rendered.join("\n"));
        assert!(parsed.workflow.is_some(), "{name}");
    }
}

#[test]
fn examples_match_the_json_schema() {
    let schema = json_schema();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for path in yaml_files("examples") {
        let document = yaml_to_json(&std::fs::read_to_string(&path).unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn json_schema_rejects_unknown_keys() {
    let validator = jsonschema::draft202012::new(&json_schema()).unwrap();
    for source in [
        "name: a\nsteps: [{ id: a, uses: core.log }]\nstpes: []\n",
        "name: a\nsteps: [{ id: a, uses: core.log, nedds: [] }]\n",
        "name: a\nsteps: [{ id: a, uses: core.log, retry: { attempts: 2 } }]\n",
        "name: a\non: { cron: { schedule: '* * * * *', tz: UTC } }\nsteps: [{ id: a, uses: core.log }]\n",
        "name: a\non: { webhook: { source: s, event: x } }\nsteps: [{ id: a, uses: core.log }]\n",
    ] {
        assert!(
            !validator.is_valid(&yaml_to_json(source)),
            "accepted: {source}"
        );
    }
}

#[test]
fn needs_are_resolved() {
    let path = format!("{}/examples/payment-alert.yaml", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap();
    let workflow = parse_workflow(&path, &source, &TestCatalog::new())
        .workflow
        .unwrap();
    let needs: Vec<String> = workflow
        .steps
        .iter()
        .map(|step| format!("{} <- {:?}", step.id, step.needs))
        .collect();
    expect![[r#"
        [
            "customer <- []",
            "notify <- [\"customer\"]",
            "each_line <- [\"customer\"]",
            "cool-down <- [\"notify\", \"each_line\"]",
        ]
    "#]]
    .assert_debug_eq(&needs);
    let notify = &workflow.steps[1];
    assert_eq!(
        notify.condition.as_deref(),
        Some("steps.customer.output.status == 200")
    );
    assert_eq!(
        notify.with["message"],
        Value::from(
            "Paid: ${{ trigger.body.data.object.amount / 100 }} by ${{ steps.customer.output.body.name }}"
        )
    );
}

#[test]
fn on_failure_steps_form_their_own_graph() {
    let path = format!(
        "{}/examples/order-fulfilment.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let source = std::fs::read_to_string(&path).unwrap().replace(
        "on_failure:\n",
        "on_failure:\n  - { id: first, uses: core.log, with: { message: hi } }\n",
    );
    let workflow = parse_workflow(&path, &source, &TestCatalog::new())
        .workflow
        .unwrap();
    let needs = |steps: &[stepwise_workflows::Step]| -> Vec<String> {
        steps
            .iter()
            .map(|step| {
                format!(
                    "{} <- {:?} checks status: {}",
                    step.id,
                    step.needs,
                    step.checks_status()
                )
            })
            .collect()
    };
    expect![[r#"
        [
            "ship <- [] checks status: false",
            "confirm <- [\"ship\"] checks status: false",
            "audit <- [\"ship\", \"confirm\"] checks status: true",
        ]
    "#]]
    .assert_debug_eq(&needs(&workflow.steps));
    expect![[r#"
        [
            "first <- [] checks status: false",
            "page <- [\"first\"] checks status: false",
        ]
    "#]]
    .assert_debug_eq(&needs(&workflow.on_failure));
    assert_eq!(
        workflow.concurrency.map(|concurrency| concurrency.on_limit),
        Some(stepwise_workflows::OnLimit::CancelRunning)
    );
}
