//! `migrate`, `tenants create` and `schema`.

use std::process::ExitCode;

use anyhow::Context;
use stepwise_engine::EngineError;
use stepwise_integrations::runtime::MetricsRegistry;

use crate::cli::DatabaseArgs;
use crate::config::redact_url;
use crate::startup::open_engine;

pub async fn migrate(database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
    let url = database
        .resolve()
        .context("cannot create the data directory")?;
    // Opening the engine applies every pending migration.
    let engine = open_engine(&url, &database.master_key(), false, &MetricsRegistry::new())
        .await
        .with_context(|| format!("cannot migrate {}", redact_url(&url)))?;
    engine.database().close().await;
    println!("Database {} is migrated.", redact_url(&url));
    Ok(ExitCode::SUCCESS)
}

pub async fn create_tenant(name: &str, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
    let url = database
        .resolve()
        .context("cannot create the data directory")?;
    let engine = open_engine(&url, &database.master_key(), false, &MetricsRegistry::new())
        .await
        .with_context(|| format!("cannot open {}", redact_url(&url)))?;
    let created = engine.create_tenant(name).await;
    engine.database().close().await;
    match created {
        Ok((_, key)) => {
            println!("Created tenant `{name}`. API key (shown once): {key}");
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::Conflict(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error).context("cannot create the tenant"),
    }
}

pub fn schema() -> anyhow::Result<ExitCode> {
    let schema = serde_json::to_string_pretty(&stepwise_workflows::json_schema())?;
    println!("{schema}");
    Ok(ExitCode::SUCCESS)
}
