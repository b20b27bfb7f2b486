//! `runs retry` and `runs rerun`: operate on a run from the command line. The command writes
//! the retry into the database; the `serve` or `worker` processes execute it.

use std::process::ExitCode;

use anyhow::Context;
use stepwise_engine::{Engine, EngineError, RunStatus};
use stepwise_integrations::runtime::MetricsRegistry;

use crate::cli::{DatabaseArgs, RunsCommand};
use crate::config::redact_url;
use crate::startup::open_engine;

pub async fn run(command: RunsCommand) -> anyhow::Result<ExitCode> {
    let (database, tenant) = match &command {
        RunsCommand::Retry {
            database, tenant, ..
        }
        | RunsCommand::Rerun {
            database, tenant, ..
        } => (database, tenant),
    };
    let engine = open(database).await?;
    let outcome = execute(&engine, &tenant.tenant, &command).await;
    engine.database().close().await;
    match outcome {
        Ok(message) => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        Err(
            EngineError::NotFound(message)
            | EngineError::Conflict(message)
            | EngineError::WorkflowDisabled(message)
            | EngineError::ConcurrencyLimit(message)
            | EngineError::InvalidInput(message),
        ) => {
            eprintln!("error: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error).context("the command failed"),
    }
}

async fn open(database: &DatabaseArgs) -> anyhow::Result<Engine> {
    let url = database
        .resolve()
        .context("cannot create the data directory")?;
    open_engine(&url, &database.master_key(), false, &MetricsRegistry::new())
        .await
        .with_context(|| format!("cannot open {}", redact_url(&url)))
}

async fn execute(
    engine: &Engine,
    tenant: &str,
    command: &RunsCommand,
) -> Result<String, EngineError> {
    let tenant = engine
        .tenant(tenant)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("tenant `{tenant}` not found")))?;
    match command {
        RunsCommand::Retry {
            run_id,
            current_version,
            ..
        } => {
            let status = engine
                .retry_run(&tenant.id, run_id, *current_version)
                .await?;
            Ok(match status {
                RunStatus::Queued => format!(
                    "Run {run_id} will retry from its failed steps; it is queued for a concurrency slot."
                ),
                _ => format!("Run {run_id} is retrying from its failed steps."),
            })
        }
        RunsCommand::Rerun { run_id, .. } => {
            let new_run = engine.rerun(&tenant.id, run_id).await?;
            Ok(format!("Started run {new_run}, a re-run of {run_id}."))
        }
    }
}
