//! Inputs at and beyond the language's size limits get a located diagnostic or a clear error,
//! never a stack overflow. Parsing runs on a thread with a 2 MiB stack, the size of a tokio
//! worker's, where `stepwise serve` parses a deployed workflow.

mod common;

use common::TestCatalog;
use serde_json::json;
use stepwise_workflows::expr::MAX_EXPRESSION_TOKENS;
use stepwise_workflows::{Evaluator, ExprLimits, Parsed, parse_workflow};

/// tokio's default worker thread stack.
const WORKER_STACK: usize = 2 * 1024 * 1024;

fn on_worker_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

/// Expressions of about `terms` terms, one per construct whose parse or compilation recursed
/// once per term.
fn chains(terms: usize) -> Vec<(&'static str, String)> {
    let repeat = |unit: &str| unit.repeat(terms);
    vec![
        ("addition", format!("1{}", repeat(" + 1"))),
        ("concatenation", format!("'a'{}", repeat(" ~ 'a'"))),
        ("and", format!("true{}", repeat(" and true"))),
        ("or", format!("false{}", repeat(" or false"))),
        ("not", format!("{}true", repeat("not "))),
        ("unary minus", format!("{}1", repeat("- "))),
        ("filters", format!("'a'{}", repeat("|upper"))),
        ("attributes", format!("inputs{}", repeat(".x"))),
        ("items", format!("inputs{}", repeat("['x']"))),
        (
            "calls",
            format!("{}1{}", repeat("sha256("), ")".repeat(terms)),
        ),
        (
            "parentheses",
            format!("{}1{}", repeat("("), ")".repeat(terms)),
        ),
        ("lists", format!("{}1{}", repeat("["), "]".repeat(terms))),
        ("conditionals", format!("{}1", repeat("1 if true else "))),
        ("comparisons", format!("1{}", repeat(" < 1"))),
    ]
}

fn workflow(expression: &str) -> String {
    format!(
        "name: big\nsteps:\n  - id: log\n    uses: core.log\n    with:\n      message: \"${{{{ {expression} }}}}\"\n"
    )
}

fn parse_on_worker_stack(source: String) -> Parsed {
    on_worker_stack(move || parse_workflow("big.yaml", &source, &TestCatalog::new()))
}

#[test]
fn ten_thousand_terms_are_refused_at_their_location() {
    for (construct, expression) in chains(10_000) {
        let parsed = parse_on_worker_stack(workflow(&expression));
        let rendered: Vec<String> = parsed
            .diagnostics
            .iter()
            .map(|diagnostic| diagnostic.render("big.yaml"))
            .collect();
        assert!(
            rendered
                .iter()
                .any(|line| line.starts_with("big.yaml:6:16: WF0012 ")
                    && line.contains(&format!(
                        "the expression is too large: more than {MAX_EXPRESSION_TOKENS} tokens"
                    ))),
            "{construct}: {rendered:?}"
        );
    }
}

#[test]
fn expressions_up_to_the_limit_compile_on_a_worker_stack() {
    // Each chain has two to four tokens a term: a quarter of the limit keeps every construct
    // under it.
    for (construct, expression) in chains((MAX_EXPRESSION_TOKENS - 1) / 4) {
        let parsed = parse_on_worker_stack(workflow(&expression));
        for diagnostic in &parsed.diagnostics {
            // Nesting deeper than minijinja's own recursion limit is its clean syntax error.
            assert!(
                diagnostic.code == "WF0012"
                    && diagnostic
                        .message
                        .contains("template exceeds maximum recursion limits"),
                "{construct}: {}",
                diagnostic.render("big.yaml")
            );
        }
    }
}

#[test]
fn the_deepest_accepted_chains_evaluate_on_a_worker_stack() {
    // Chains of one token under the limit: the deepest trees a definition can hold.
    let terms = (MAX_EXPRESSION_TOKENS - 1) / 2;
    let cases = [
        (format!("1{}", " + 1".repeat(terms)), json!(terms + 1)),
        (format!("{}1", "- ".repeat(2 * terms)), json!(1)),
        (format!("{}true", "not ".repeat(2 * terms)), json!(true)),
        (format!("'a'{}", "|upper".repeat(terms)), json!("A")),
    ];
    for (expression, expected) in cases {
        let result = on_worker_stack(move || {
            Evaluator::new().render(&json!(format!("${{{{ {expression} }}}}")), &json!({}))
        });
        assert_eq!(result, Ok(expected));
    }
}

#[test]
fn an_oversize_expression_is_refused_at_run_time_too() {
    let expression = format!("1{}", " + 1".repeat(10_000));
    let error = on_worker_stack(move || {
        Evaluator::new().render(&json!(format!("${{{{ {expression} }}}}")), &json!({}))
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("the expression is too large"),
        "{error}"
    );
}

#[test]
fn deeply_nested_yaml_is_refused_at_its_location() {
    for nested in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        "- ".repeat(100_000),
    ] {
        let source = format!("name: deep\nsteps: {nested}\n");
        let parsed = parse_on_worker_stack(source);
        let first = parsed.diagnostics.first().expect("a diagnostic");
        assert_eq!(first.code, "WF0001", "{}", first.render("big.yaml"));
        assert!(first.line >= 1 && first.column >= 1);
    }
}

#[test]
fn deeply_nested_json_in_fromjson_is_an_error() {
    let context = json!({ "inputs": { "text": "[".repeat(100_000) } });
    let error = on_worker_stack(move || {
        Evaluator::new().render(&json!("${{ fromjson(inputs.text) }}"), &context)
    })
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("fromjson: invalid JSON: recursion limit exceeded"),
        "{error}"
    );
}

#[test]
fn a_result_over_the_limit_is_refused_with_the_limit_named() {
    let evaluator = Evaluator::with_limits(ExprLimits {
        max_result_bytes: 1000,
    });
    let context = json!({ "inputs": { "n": 1001 } });
    for template in [
        "${{ 'x' * inputs.n }}",
        "${{ range(500) }}",
        "${{ {'a': 'x' * 995} }}",
        "a ${{ 'x' * 600 }} b ${{ 'x' * 600 }}",
    ] {
        let error = evaluator
            .render(&json!(template), &context)
            .expect_err(template)
            .to_string();
        assert!(
            error.contains("is larger than the limit of 1000 bytes"),
            "{template}: {error}"
        );
    }
    // At the limit exactly: 1000 bytes of string, 998 characters and two quotes of JSON.
    assert_eq!(
        evaluator.render(&json!("${{ 'x' * 1000 }}"), &context),
        Ok(json!("x".repeat(1000)))
    );
    assert_eq!(
        evaluator.render(&json!("${{ ['x' * 994] }}"), &context),
        Ok(json!(["x".repeat(994)]))
    );
}
