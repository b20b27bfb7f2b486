//! An expression compiled and evaluated against a small context, as a condition and as a
//! template: a value or an error, never a panic, a stack overflow or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stepwise_workflows::{Evaluator, ExprLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let evaluator = Evaluator::with_limits(ExprLimits {
        max_result_bytes: 64 * 1024,
    });
    let context = json!({
        "inputs": { "n": 3, "name": "Ada", "list": [1, 2, 3], "text": "{\"a\": [1]}" },
        "steps": { "a": { "status": "succeeded", "output": { "x": [1, { "y": "z" }] } } },
        "needs": { "a": { "result": "succeeded", "output": null } },
        "run": { "status": "running" },
    });
    let _ = evaluator.check_expression(source);
    let _ = evaluator.condition(source, &context);
    let _ = evaluator.render(&json!(format!("${{{{ {source} }}}}")), &context);
    let _ = evaluator.render(&json!(source), &context);
});
