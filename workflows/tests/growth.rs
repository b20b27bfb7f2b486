//! `+`, `*` and `~` refuse a result over the expression result limit before they build it,
//! at run time and when a workflow is validated (minijinja folds constant operands while it
//! compiles). The allocator counts every byte this test binary allocates, so "before" is a
//! number, not a timing; the binary holds one test so nothing else allocates meanwhile.

use std::alloc::System;

use cap::Cap;
use serde_json::{Value, json};
use stepwise_workflows::{Evaluator, ExprError, ExprLimits};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const LIMIT: usize = ExprLimits::DEFAULT_MAX_RESULT_BYTES;

/// Far below what the cases built unchecked (35 MB to 5 GB), above what parsing, compiling
/// and measuring cost, plus operands of up to `LIMIT` each (minijinja copies a new string once
/// more into its shared form).
const ALLOWED: usize = 8 * LIMIT;

/// Bytes `work` allocated, freed or not, and its result.
fn allocated<T>(work: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATOR.total_allocated();
    let result = work();
    (ALLOCATOR.total_allocated() - before, result)
}

fn context() -> Value {
    json!({ "inputs": { "n": 50_000_000, "text": "x".repeat(600_000), "zeros": vec![0; 300_000] } })
}

#[test]
fn growing_operators_are_bounded_before_they_allocate() {
    let evaluator = Evaluator::new();
    let context = context();
    // Evaluating anything converts the context (megabytes of test data) first.
    let (baseline, _) = allocated(|| evaluator.condition("true", &context));

    let over_the_limit = [
        // Constant operands: minijinja folded these while compiling, limit or not.
        "'x' * 50000000",
        "'ab' * 50000000 ~ 'c'",
        "[1, 2, 3] * 10000000",
        "([1, 2, 3] * 10000000) ~ ''",
        &format!("'x' * 1000000{}", " ~ 'x' * 1000000".repeat(49)),
        // Filters whose result can be far larger than their input.
        "range(10000) | join('x' * 1000)",
        "('x' * 100000) | replace('x', 'y' * 100)",
        "'' | replace('', 'y' * 2000000)",
        "'a\\nb' | indent(100000000)",
        "'a' | indent(width=100000000)",
        "[[1]] | tojson(indent=100000000)",
        "([[1]] * 1000) | tojson(indent=1000)",
        "'%100000000s' | format(1)",
        "'%.100000000f' | format(1.5)",
        "'%(a)s%(a)s' | format({'a': inputs.text})",
        "[1] | batch(100000000000)",
        "[1] | batch(1000000, 0)",
        "[1] | slice(100000000000)",
        "inputs.text | chain(inputs.text)",
        // Operands from the context.
        "'x' * inputs.n",
        "inputs.n * 'x'",
        "inputs.text ~ inputs.text",
        "inputs.text + inputs.text",
        "inputs.zeros + inputs.zeros",
        "(inputs.zeros * 2) | length",
        "inputs.zeros ~ inputs.zeros",
    ];
    for expression in over_the_limit {
        let (bytes, checked) = allocated(|| evaluator.check_expression(expression));
        assert_eq!(checked, Ok(()), "{expression}");
        assert!(
            bytes < ALLOWED,
            "validating `{expression}` allocated {bytes} bytes"
        );

        let (bytes, result) = allocated(|| evaluator.condition(expression, &context));
        match result {
            Err(ExprError::TooLarge { limit, length, .. }) => {
                assert_eq!(limit, LIMIT, "{expression}");
                assert!(length > LIMIT, "{expression}: {length}");
            }
            other => panic!("`{expression}`: {other:?}"),
        }
        assert!(
            bytes < baseline + ALLOWED,
            "`{expression}` allocated {bytes} bytes ({baseline} to read the context)"
        );
    }

    let message = evaluator
        .render(&json!("${{ 'x' * 50000000 }}"), &context)
        .expect_err("over the limit")
        .to_string();
    assert_eq!(
        message,
        "the result of `${{ 'x' * 50000000 }}` is larger than the limit of 1048576 bytes \
         (at least 50000000 bytes)"
    );

    // Within the limit the operators are minijinja's, errors included.
    let within = [
        ("'ab' * 3", json!("ababab")),
        ("3 * 'ab'", json!("ababab")),
        ("[1, 'a'] * 2", json!([1, "a", 1, "a"])),
        ("[1] * 0", json!([])),
        ("[1] + [2, 3]", json!([1, 2, 3])),
        ("'a' + 'b'", json!("ab")),
        ("'a' ~ 1 ~ [2]", json!("a1[2]")),
        ("1 + 2 * 3", json!(7)),
        ("1.5 * 2", json!(3.0)),
        ("('x' * 1048576) | length", json!(LIMIT)),
        (
            "(inputs.text ~ inputs.text[:400000]) | length",
            json!(1_000_000),
        ),
        ("(inputs.zeros + [1]) | last", json!(1)),
        ("['a', 1] | join('-')", json!("a-1")),
        ("'aXbX' | replace('X', '--')", json!("a--b--")),
        ("'a\\nb' | indent(2)", json!("a\n  b")),
        ("[1] | tojson(indent=1)", json!("[\n 1\n]")),
        ("[1] | tojson", json!("[1]")),
        ("'%s-%05d' | format('x', 42)", json!("x-00042")),
        ("[1, 2, 3] | batch(2, 0)", json!([[1, 2], [3, 0]])),
        ("[1, 2, 3] | slice(2)", json!([[1, 2], [3]])),
        ("[1] | chain([2]) | list", json!([1, 2])),
    ];
    for (expression, expected) in within {
        assert_eq!(
            evaluator.render(&json!(format!("${{{{ {expression} }}}}")), &context),
            Ok(expected),
            "{expression}"
        );
    }
    for (expression, error) in [
        ("'a' * 'b'", "strings can only be multiplied with integers"),
        ("'a' * -1", "strings can only be multiplied with integers"),
        ("1 + 'a'", "unsupported types"),
    ] {
        let message = evaluator
            .condition(expression, &context)
            .expect_err(expression)
            .to_string();
        assert!(message.contains(error), "{expression}: {message}");
    }
    assert!(matches!(
        evaluator.condition("inputs.missing ~ 'a'", &context),
        Err(ExprError::Undefined { path, .. }) if path == "inputs.missing"
    ));
}
