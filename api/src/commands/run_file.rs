//! `stepwise run FILE`: deploy and run a workflow once in this process, showing each step as it
//! happens. Progress goes to stderr and the outputs (JSON) to stdout, so
//! `stepwise run flow.yaml > out.json` works.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use stepwise_engine::{
    Engine, EngineError, RunDetail, RunEvent, RunStatus, RuntimeOptions, StepStatus,
};
use stepwise_integrations::Registry;
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_workflows::parse_workflow;
use tokio::sync::broadcast::error::RecvError;

use crate::cli::RunArgs;
use crate::config::{redact_url, sqlite_url};
use crate::startup::action_services;

/// How often the run is re-read in case progress events were missed.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.display().to_string();
    let source =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {path}"))?;
    let input = read_input(args.input.as_deref())?;

    // Validate before touching any database, for a fast answer on a broken file.
    let registry = Arc::new(Registry::builtin());
    let parsed = parse_workflow(&path, &source, registry.as_ref());
    if !parsed.diagnostics.is_empty() {
        for diagnostic in &parsed.diagnostics {
            eprintln!("{}", diagnostic.render(&path));
        }
        return Ok(ExitCode::FAILURE);
    }

    // The throw-away database lives as long as this guard.
    let (_scratch, database_url) = match args.database_url {
        Some(url) => (None, url),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("stepwise-run-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let url = sqlite_url(&dir.path().join("run.db"));
            (Some(dir), url)
        }
    };
    let services = Arc::new(action_services(
        args.allow_private_networks,
        &MetricsRegistry::new(),
    )?);
    let engine = Engine::open(&database_url, registry, services)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&database_url)))?;
    // The key of a freshly created default tenant is not needed here.
    engine.ensure_default_tenant().await?;
    let tenant = engine
        .tenant("default")
        .await?
        .context("the `default` tenant does not exist")?;
    let deployed = match engine.deploy(&tenant.id, &path, &source).await {
        Ok(deployed) => deployed,
        Err(EngineError::InvalidWorkflow(diagnostics)) => {
            for diagnostic in diagnostics {
                eprintln!("{}", diagnostic.render(&path));
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error).context("cannot deploy the workflow"),
    };

    // Subscribe before starting, so no event of this run is missed.
    let events = engine.subscribe();
    let runtime = engine.start(RuntimeOptions {
        concurrency: 8,
        poll_interval: Duration::from_millis(100),
        // One run of the file, not its cron triggers.
        scheduler_interval: None,
        ..RuntimeOptions::default()
    });
    let run_id = engine
        .start_run(
            &tenant.id,
            &deployed.name,
            input,
            "manual",
            json!({ "source": "cli" }),
        )
        .await?;
    eprintln!("Run {run_id} of `{}` v{}", deployed.name, deployed.version);
    let outcome = follow(&engine, &tenant.id, &run_id, events).await;
    runtime.shutdown().await;
    let run = outcome?;
    Ok(report(&run))
}

/// `--input`: inline JSON, or `@path` to a JSON file; a JSON object either way.
fn read_input(input: Option<&str>) -> anyhow::Result<Value> {
    let Some(input) = input else {
        return Ok(json!({}));
    };
    let (text, origin) = match input.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?,
            file.to_owned(),
        ),
        None => (input.to_owned(), "--input".to_owned()),
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{origin} is not valid JSON"))?;
    if !value.is_object() {
        bail!("{origin} must be a JSON object");
    }
    Ok(value)
}

/// Prints step progress until the run ends; Ctrl-C cancels the run.
async fn follow(
    engine: &Engine,
    tenant_id: &str,
    run_id: &str,
    mut events: tokio::sync::broadcast::Receiver<RunEvent>,
) -> anyhow::Result<RunDetail> {
    let interrupted = super::shutdown_signal();
    tokio::pin!(interrupted);
    let mut cancelling = false;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(RunEvent::Step { run_id: id, step_id, status, attempt, error }) if id == run_id => {
                    if let Some(line) = progress_line(&step_id, status, attempt, error.as_deref()) {
                        eprintln!("{line}");
                    }
                    if status.is_terminal() {
                        print_step_logs(engine, tenant_id, run_id, &step_id).await;
                    }
                }
                Ok(RunEvent::Run { run_id: id, status }) if id == run_id && status.is_terminal() => break,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            () = &mut interrupted, if !cancelling => {
                cancelling = true;
                eprintln!("Interrupted: cancelling run {run_id}");
                match engine.cancel_run(tenant_id, run_id).await {
                    Ok(()) | Err(EngineError::Conflict(_)) => {}
                    Err(error) => return Err(error).context("cannot cancel the run"),
                }
            }
            () = tokio::time::sleep(RECHECK_INTERVAL) => {
                if is_finished(engine, tenant_id, run_id).await? {
                    break;
                }
            }
        }
    }
    engine
        .get_run(tenant_id, run_id)
        .await?
        .with_context(|| format!("run {run_id} disappeared"))
}

async fn is_finished(engine: &Engine, tenant_id: &str, run_id: &str) -> anyhow::Result<bool> {
    Ok(engine
        .get_run(tenant_id, run_id)
        .await?
        .is_some_and(|run| run.summary.status.is_terminal()))
}

fn progress_line(
    step_id: &str,
    status: StepStatus,
    attempt: i32,
    error: Option<&str>,
) -> Option<String> {
    let line = match status {
        StepStatus::Pending | StepStatus::Queued => return None,
        StepStatus::Running => format!("▶ {step_id}  running (attempt {attempt})"),
        StepStatus::Waiting => match error {
            Some(error) => format!("… {step_id}  waiting to retry: {error}"),
            None => format!("… {step_id}  waiting"),
        },
        StepStatus::Succeeded => format!("✓ {step_id}  succeeded (attempt {attempt})"),
        StepStatus::Failed => format!(
            "✗ {step_id}  failed (attempt {attempt}): {}",
            error.unwrap_or("unknown error")
        ),
        StepStatus::Skipped => format!("- {step_id}  skipped"),
        StepStatus::Cancelled => format!("✗ {step_id}  cancelled"),
    };
    Some(line)
}

/// Shows what a finished step logged (e.g. `core.log`), indented under its progress line.
async fn print_step_logs(engine: &Engine, tenant_id: &str, run_id: &str, step_id: &str) {
    let Ok(Some(run)) = engine.get_run(tenant_id, run_id).await else {
        return;
    };
    let Some(attempt) = run
        .steps
        .iter()
        .find(|step| step.id == step_id)
        .and_then(|step| step.attempt_history.last())
    else {
        return;
    };
    let Some(Value::Array(lines)) = &attempt.logs else {
        return;
    };
    for line in lines {
        let level = line.get("level").and_then(Value::as_str).unwrap_or("info");
        let message = line
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| line.to_string(), str::to_owned);
        eprintln!("    [{level}] {message}");
    }
}

/// Prints the outcome: outputs on success, every failed step's error otherwise.
fn report(run: &RunDetail) -> ExitCode {
    let summary = &run.summary;
    let elapsed = summary
        .finished_at
        .zip(summary.started_at)
        .map(|(finished, started)| format!(" in {} ms", finished - started))
        .unwrap_or_default();
    if summary.status == RunStatus::Succeeded {
        eprintln!("Run {} succeeded{elapsed}. Outputs:", summary.id);
        let outputs = run.output.clone().unwrap_or_else(|| json!({}));
        println!(
            "{}",
            serde_json::to_string_pretty(&outputs).unwrap_or_else(|_| outputs.to_string())
        );
        return ExitCode::SUCCESS;
    }
    for step in run
        .steps
        .iter()
        .filter(|step| step.status == StepStatus::Failed)
    {
        let message = step
            .error
            .as_ref()
            .map(|error| {
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned)
            })
            .unwrap_or_else(|| "unknown error".into());
        eprintln!("error: step `{}` failed: {message}", step.id);
    }
    eprintln!(
        "Run {} {}{elapsed}{}",
        summary.id,
        summary.status,
        summary
            .error
            .as_deref()
            .map(|error| format!(": {error}"))
            .unwrap_or_default()
    );
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_must_be_an_object() {
        assert_eq!(read_input(None).expect("none"), json!({}));
        assert_eq!(
            read_input(Some(r#"{"name":"Ada"}"#)).expect("inline"),
            json!({"name": "Ada"})
        );
        assert!(read_input(Some("[1]")).is_err());
        assert!(read_input(Some("{oops")).is_err());
        assert!(read_input(Some("@/nonexistent/input.json")).is_err());
    }

    #[test]
    fn progress_skips_bookkeeping_states() {
        assert_eq!(progress_line("a", StepStatus::Queued, 0, None), None);
        assert_eq!(
            progress_line("greet", StepStatus::Succeeded, 1, None).as_deref(),
            Some("✓ greet  succeeded (attempt 1)")
        );
    }
}
