//! `stepwise validate FILE...`: every problem of every file, in the `file:line:col: CODE message`
//! format editors and CI annotators understand.

use std::path::Path;
use std::process::ExitCode;

use stepwise_integrations::Registry;
use stepwise_workflows::parse_workflow;

pub fn validate(args: &crate::cli::ValidateArgs) -> anyhow::Result<ExitCode> {
    let registry = Registry::builtin();
    let mut clean = true;
    for file in &args.files {
        clean &= validate_file(file, &registry);
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints the file's diagnostics (or `FILE: ok`); true when it has none.
fn validate_file(file: &Path, registry: &Registry) -> bool {
    let path = file.display().to_string();
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("{path}: cannot read: {error}");
            return false;
        }
    };
    let parsed = parse_workflow(&path, &source, registry);
    if parsed.diagnostics.is_empty() {
        println!("{path}: ok");
        return true;
    }
    for diagnostic in &parsed.diagnostics {
        println!("{}", diagnostic.render(&path));
    }
    false
}
