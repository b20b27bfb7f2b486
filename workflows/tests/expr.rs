//! The expression evaluator as the engine uses it.

use serde_json::{Value, json};
use stepwise_workflows::{Evaluator, ExprError};

fn context() -> Value {
    json!({
        "inputs": { "count": 3, "name": "Ada", "flags": [], "zero": 0 },
        "steps": {
            "fetch": { "status": "succeeded", "output": { "body": { "id": 7, "tags": ["a", "b"], "ok": true, "none": null } } }
        },
        "trigger": { "body": { "text": "${{ secrets.TOKEN }}", "nested": { "t": "${{ inputs.name }}" }, "json": "{\"a\": [1, 2]}" } }
    })
}

fn render(template: Value) -> Result<Value, ExprError> {
    Evaluator::new().render(&template, &context())
}

#[test]
fn single_expression_keeps_its_json_type() {
    let rendered = render(json!({
        "number": "${{ inputs.count }}",
        "padded": "  ${{ inputs.count * 2 }}\n",
        "bool": "${{ steps.fetch.output.body.ok }}",
        "object": "${{ steps.fetch.output.body }}",
        "array": "${{ steps.fetch.output.body.tags }}",
        "null": "${{ steps.fetch.output.body.none }}",
        "string": "${{ inputs.name }}",
        "untouched": [1, true, null, "plain {{ braces }}"],
    }))
    .unwrap();
    assert_eq!(
        rendered,
        json!({
            "number": 3,
            "padded": 6,
            "bool": true,
            "object": { "id": 7, "tags": ["a", "b"], "ok": true, "none": null },
            "array": ["a", "b"],
            "null": null,
            "string": "Ada",
            "untouched": [1, true, null, "plain {{ braces }}"],
        })
    );
}

#[test]
fn mixed_text_renders_to_a_string_with_json_values() {
    let rendered = render(json!([
        "Hi ${{ inputs.name }}, you have ${{ inputs.count }} items",
        "tags=${{ steps.fetch.output.body.tags }} ok=${{ steps.fetch.output.body.ok }}",
        "none=${{ steps.fetch.output.body.none }}",
        "${{ inputs.count }}${{ inputs.count }}",
    ]))
    .unwrap();
    assert_eq!(
        rendered,
        json!([
            "Hi Ada, you have 3 items",
            "tags=[\"a\",\"b\"] ok=true",
            "none=null",
            "33",
        ])
    );
}

#[test]
fn undefined_values_are_errors_that_name_the_missing_path() {
    let error = render(json!("${{ steps.foo.output.x }}")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "undefined value `steps.foo` in `${{ steps.foo.output.x }}`"
    );
    let error = render(json!("Hello ${{ inputs.nope }}!")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "undefined value `inputs.nope` in `${{ inputs.nope }}`"
    );
}

#[test]
fn helpers_work_under_strict_undefined() {
    let rendered = render(json!({
        "fallback": "${{ inputs.nope | default('none') }}",
        "defined": "${{ inputs.nope is defined }}",
        "length": "${{ steps.fetch.output.body.tags | length }}",
        "tojson": "${{ steps.fetch.output.body.tags | tojson }}",
        "fromjson": "${{ (trigger.body.json | fromjson).a[1] }}",
    }))
    .unwrap();
    assert_eq!(
        rendered,
        json!({
            "fallback": "none",
            "defined": false,
            "length": 2,
            "tojson": "[\"a\",\"b\"]",
            "fromjson": 2,
        })
    );
    assert!(render(json!("${{ 'nope' | fromjson }}")).is_err());
}

#[test]
fn data_from_the_context_is_never_rendered() {
    let rendered = render(json!({
        "direct": "${{ trigger.body.text }}",
        "mixed": "got ${{ trigger.body.text }}",
        "nested": "${{ trigger.body.nested }}",
    }))
    .unwrap();
    assert_eq!(
        rendered,
        json!({
            "direct": "${{ secrets.TOKEN }}",
            "mixed": "got ${{ secrets.TOKEN }}",
            "nested": { "t": "${{ inputs.name }}" },
        })
    );
}

#[test]
fn conditions_use_jinja_truthiness() {
    let evaluator = Evaluator::new();
    let context = context();
    let cases = [
        ("inputs.count > 2", true),
        ("inputs.zero", false),
        ("inputs.flags", false),
        ("inputs.name", true),
        (
            "steps.fetch.status == 'succeeded' and not inputs.flags",
            true,
        ),
        ("steps.fetch.output.body.none", false),
        ("''", false),
    ];
    for (expr, expected) in cases {
        assert_eq!(evaluator.condition(expr, &context), Ok(expected), "{expr}");
    }
    assert!(matches!(
        evaluator.condition("inputs.missing", &context),
        Err(ExprError::Undefined { .. })
    ));
}

#[test]
fn syntax_is_checked_per_expression() {
    let evaluator = Evaluator::new();
    assert_eq!(evaluator.check_syntax("no templates here"), Ok(()));
    assert_eq!(
        evaluator.check_syntax("a ${{ x }} b ${{ y | default(1) }}"),
        Ok(())
    );
    assert!(evaluator.check_syntax("${{ x + }}").is_err());
    assert!(evaluator.check_syntax("${{ x ").is_err());
    assert!(matches!(
        render(json!("${{ 1 + }}")),
        Err(ExprError::Syntax { .. })
    ));
    assert!(evaluator.check_expression("a and").is_err());
}

#[test]
fn evaluation_errors_name_the_expression() {
    let error = render(json!("${{ inputs.name + 1 }}")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot evaluate `${{ inputs.name + 1 }}`: "),
        "{error}"
    );
}

#[test]
fn one_evaluator_serves_many_threads() {
    let evaluator = Evaluator::new();
    let context = context();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..100 {
                    assert_eq!(
                        evaluator.render(&json!("${{ inputs.count + 1 }}"), &context),
                        Ok(json!(4))
                    );
                }
            });
        }
    });
}

#[test]
fn status_function_calls_are_found_in_the_parsed_expression() {
    let evaluator = Evaluator::new();
    let cases = [
        ("always()", true),
        ("success() and inputs.count > 1", true),
        ("not cancelled()", true),
        ("inputs.x or (failure() and true)", true),
        ("[1, failure()] | length", true),
        ("'always()' == inputs.name", false),
        ("\"success() \\\" failure()\" ~ 'x'", false),
        (
            "steps.always.output and needs.failure.result == 'failed'",
            false,
        ),
        ("inputs.count > 1", false),
        ("always( and", false),
    ];
    for (expr, expected) in cases {
        assert_eq!(evaluator.calls_status_function(expr), expected, "{expr}");
    }
}

#[test]
fn a_step_checks_status_when_its_if_calls_a_status_function() {
    let step = |condition: Option<&str>| {
        serde_json::from_value::<stepwise_workflows::Step>(json!({
            "id": "notify", "uses": "core.log", "if": condition
        }))
        .unwrap()
    };
    assert!(step(Some("failure() or cancelled()")).checks_status());
    assert!(!step(Some("'failure()' == inputs.name")).checks_status());
    assert!(!step(None).checks_status());
}
