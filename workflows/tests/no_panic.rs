//! Whatever they are fed, `parse_workflow`, the expression evaluator and input validation
//! answer with a value or a clear error: never a panic, an abort or a hang. Cases run on the
//! test thread (2 MiB of stack, like a tokio worker), so a stack overflow aborts the test.

mod common;

use common::{TestCatalog, yaml_files};
use proptest::prelude::*;
use serde_json::{Value, json};
use stepwise_workflows::{Evaluator, ExprLimits, parse_workflow};

/// Fragments that reach the interesting code paths when spliced into an example.
const FRAGMENTS: &[&str] = &[
    "${{",
    "}}",
    "${{ steps.",
    "${{ item }}",
    ": ",
    "\n- ",
    "\n  ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "needs: [",
    "- id: x\n  uses: core.log\n",
    "retry: { max_attempts: 0 }",
    "'",
    "\"",
    "\t",
    "#",
    "on_error: maybe",
    "if: ${{ a +",
    "timeout: 5",
    "cron: '* *'",
    "~",
    "!!str ",
    "<<: *a",
    "---\n",
    "needs: []",
    "for_each: ${{ x }}",
    "\non_failure:\n  - id: x\n    uses: core.log\n",
    "if: ${{ failure() }}",
    "${{ needs.",
    "on_limit: cancel_new",
];

fn examples() -> Vec<String> {
    yaml_files("examples")
        .into_iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect()
}

fn mutated_example() -> impl Strategy<Value = String> {
    let examples = examples();
    (
        0..examples.len(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3usize,
                0..FRAGMENTS.len(),
                0..40usize,
            ),
            1..8,
        ),
    )
        .prop_map(move |(which, edits)| {
            let mut text = examples[which].clone();
            for (at, kind, fragment, length) in edits {
                let mut position = at.index(text.len() + 1);
                while !text.is_char_boundary(position) {
                    position -= 1;
                }
                match kind {
                    0 => text.insert_str(position, FRAGMENTS[fragment]),
                    1 => {
                        let mut end = (position + length).min(text.len());
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.replace_range(position..end, "");
                    }
                    _ => {
                        let mut end = (position + length).min(text.len());
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        let copy = text[position..end].to_owned();
                        text.insert_str(position, &copy);
                    }
                }
            }
            text
        })
}

/// Expressions from the grammar: literals, context paths, every operator, filters, function
/// calls and literals of lists and maps, nested; some chains far beyond the size limit.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[a-z ]{0,8}".prop_map(|text| format!("'{text}'")),
        Just("none".to_owned()),
        Just("true".to_owned()),
        Just("inputs.n".to_owned()),
        Just("inputs.list".to_owned()),
        Just("inputs.name".to_owned()),
        Just("inputs.text".to_owned()),
        Just("steps.a.output.x".to_owned()),
        Just("steps.missing.output".to_owned()),
        Just("trigger".to_owned()),
    ];
    let tree = leaf.prop_recursive(6, 64, 4, |inner| {
        let binary = prop::sample::select(vec![
            "+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "and", "or", "in",
            "not in", "is", "if",
        ]);
        let filter = prop::sample::select(vec![
            "upper",
            "length",
            "first",
            "default(0)",
            "tojson",
            "fromjson",
            "join(',')",
            "b64decode",
            "sha256",
            "slugify",
            "urlencode",
            "int",
            "list",
            "reverse",
            "sort",
        ]);
        let function = prop::sample::select(vec![
            "range",
            "fromjson",
            "to_timestamp",
            "date_format",
            "add_duration",
            "contains",
            "startswith",
            "success",
            "dict",
            "lipsum",
            "now",
        ]);
        prop_oneof![
            (inner.clone(), binary, inner.clone()).prop_map(|(l, op, r)| match op {
                "if" => format!("{l} if {r} else {l}"),
                _ => format!("({l}) {op} ({r})"),
            }),
            (inner.clone(), filter).prop_map(|(e, f)| format!("({e})|{f}")),
            (function, prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| format!("{{{k}: {v}}}")),
            (inner.clone(), inner.clone()).prop_map(|(e, i)| format!("({e})[{i}]")),
            inner.clone().prop_map(|e| format!("not ({e})")),
            inner.clone().prop_map(|e| format!("-({e})")),
        ]
    });
    prop_oneof![
        8 => tree,
        1 => (prop::sample::select(vec![" + 1", " ~ 'a'", " and true", "|upper", ".x", "[0]"]), 1..4000usize)
            .prop_map(|(unit, count)| format!("1{}", unit.repeat(count))),
        1 => (prop::sample::select(vec!["not ", "- ", "(", "[", "sha256("]), 1..4000usize)
            .prop_map(|(unit, count)| format!("{}1", unit.repeat(count))),
    ]
}

fn expression_context() -> Value {
    json!({
        "inputs": { "n": 3, "name": "Ada", "list": [1, 2, 3], "text": "{\"a\": [1]}" },
        "steps": { "a": { "status": "succeeded", "output": { "x": [1, { "y": "z" }] } } },
        "needs": { "a": { "result": "succeeded", "output": null } },
        "run": { "status": "running" },
        "trigger": { "body": { "deep": [[[[[[]]]]]] } },
    })
}

/// Arbitrary JSON: every type, nested, keys that look like the declared inputs.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!("2026-01-01T00:00:00Z")),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec!["count", "name", "tags", "when", "nested", "a", "x"])
                    .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

const INPUTS_WORKFLOW: &str = r#"
name: inputs
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

/// YAML documents built from the language's own keys, nested at random: mappings, sequences,
/// flow and block style, anchors, and scalars that are often expressions.
fn yaml_document() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name",
        "steps",
        "id",
        "uses",
        "with",
        "needs",
        "if",
        "for_each",
        "outputs",
        "on",
        "cron",
        "webhook",
        "inputs",
        "retry",
        "timeout",
        "concurrency",
        "on_error",
        "message",
        "max_attempts",
        "schedule",
        "source",
        "key",
    ]);
    let scalar = prop_oneof![
        Just("core.log".to_owned()),
        Just("x".to_owned()),
        Just("5s".to_owned()),
        Just("3".to_owned()),
        Just("~".to_owned()),
        Just("'${{ inputs.n + 1 }}'".to_owned()),
        Just("${{ steps.x.output }}".to_owned()),
        Just("\"${{ 1 +\"".to_owned()),
        Just("*a".to_owned()),
        Just("&a y".to_owned()),
        "[a-z0-9 ]{0,10}",
    ];
    scalar
        .prop_recursive(6, 64, 5, move |inner| {
            prop_oneof![
                prop::collection::vec((key.clone(), inner.clone()), 1..5).prop_map(|entries| {
                    let body: Vec<String> = entries
                        .into_iter()
                        .map(|(key, value)| format!("{key}: {}", value.replace('\n', "\n  ")))
                        .collect();
                    format!("\n  {}", body.join("\n  "))
                }),
                prop::collection::vec(inner.clone(), 1..4).prop_map(|items| {
                    let body: Vec<String> = items
                        .into_iter()
                        .map(|item| format!("- {}", item.replace('\n', "\n  ")))
                        .collect();
                    format!("\n  {}", body.join("\n  "))
                }),
                prop::collection::vec(inner, 0..4)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
            ]
        })
        .prop_map(|body| format!("name: generated\nsteps:{body}\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn expressions_evaluate_or_fail_cleanly(source in expression()) {
        let evaluator = Evaluator::with_limits(ExprLimits { max_result_bytes: 64 * 1024 });
        let context = expression_context();
        let _ = evaluator.check_expression(&source);
        let _ = evaluator.condition(&source, &context);
        if let Ok(value) = evaluator.render(&json!(format!("${{{{ {source} }}}}")), &context) {
            prop_assert!(value.to_string().len() <= 64 * 1024 + 2);
        }
    }

    #[test]
    fn expressions_in_a_workflow_get_located_diagnostics(source in expression()) {
        let yaml = format!(
            "name: e\nsteps:\n  - id: a\n    uses: core.log\n    with:\n      message: {}\n",
            json!(format!("${{{{ {source} }}}}"))
        );
        let parsed = parse_workflow("e.yaml", &yaml, &TestCatalog::new());
        for diagnostic in &parsed.diagnostics {
            prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        }
    }

    #[test]
    fn json_inputs_validate_or_fail_cleanly(input in json_value()) {
        let workflow = parse_workflow("inputs.yaml", INPUTS_WORKFLOW, &TestCatalog::new())
            .workflow
            .expect("valid");
        match workflow.prepare_input(input.clone()) {
            Ok(prepared) => prop_assert!(prepared.is_object()),
            Err(error) => prop_assert!(!error.problems.is_empty()),
        }
        // The same data through expressions: as a context value and as `fromjson` text.
        let evaluator = Evaluator::new();
        let context = json!({ "inputs": { "value": input.clone(), "text": input.to_string() } });
        let rendered = evaluator.render(&json!("${{ inputs.value }}"), &context);
        prop_assert_eq!(rendered, Ok(input.clone()));
        let _ = evaluator.render(&json!("${{ fromjson(inputs.text) | tojson }}"), &context);
    }

    #[test]
    fn generated_yaml_documents_do_not_panic(source in yaml_document()) {
        let parsed = parse_workflow("generated.yaml", &source, &TestCatalog::new());
        for diagnostic in &parsed.diagnostics {
            prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_does_not_panic(source in "\\PC{0,200}") {
        parse_workflow("random.yaml", &source, &TestCatalog::new());
    }

    #[test]
    fn yamlish_text_does_not_panic(source in "([a-z_{}\\[\\]:,\\-\\n $'\"*&|>#!.]|\\$\\{\\{|\\}\\}){0,300}") {
        parse_workflow("yamlish.yaml", &source, &TestCatalog::new());
    }

    #[test]
    fn mutated_examples_do_not_panic(source in mutated_example()) {
        let parsed = parse_workflow("mutated.yaml", &source, &TestCatalog::new());
        for diagnostic in &parsed.diagnostics {
            prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        }
    }
}
