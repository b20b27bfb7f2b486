//! A workflow file through `parse_workflow` (YAML, model, validation, expressions): a result
//! with diagnostics, never a panic, a stack overflow or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stepwise_integrations::Registry;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let registry = Registry::builtin();
        let parsed = stepwise_workflows::parse_workflow("fuzz.yaml", source, &registry);
        for diagnostic in &parsed.diagnostics {
            assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        }
    }
});
