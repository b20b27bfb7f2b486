//! `stepwise serve` (HTTP + step workers) and `stepwise worker` (step workers only).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use stepwise_engine::{Engine, EngineError, RuntimeOptions};
use stepwise_integrations::runtime::MetricsRegistry;

use crate::cli::{DatabaseArgs, RuntimeArgs, ServeArgs, WorkerArgs};
use crate::config::{AppConfig, redact_url};
use crate::startup::{Application, open_engine};
use crate::tls::TlsFiles;

use super::shutdown_signal;

const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Resolves the database URL and opens (and migrates) the engine on it.
async fn open(
    database: &DatabaseArgs,
    runtime: &RuntimeArgs,
    metrics: &MetricsRegistry,
) -> anyhow::Result<(String, Engine)> {
    let database_url = database
        .resolve()
        .context("cannot create the data directory")?;
    let engine = open_engine(
        &database_url,
        &database.master_key(),
        runtime.allow_private_networks,
        metrics,
    )
    .await
    .with_context(|| format!("cannot open the database {}", redact_url(&database_url)))?;
    engine.set_data_limits(runtime.data_limits());
    Ok((database_url, engine))
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // The process's metrics registry: the integration runtime registers its collectors when
    // the engine opens, the API its own in `from_engine`; `GET /metrics` serves them all.
    let metrics = MetricsRegistry::new();
    let (database_url, engine) = open(&args.database, &args.runtime, &metrics).await?;
    tracing::info!(message = "Database ready.", url = redact_url(&database_url));
    if let Some(key) = engine.ensure_default_tenant().await? {
        // The only time this key is readable: only its hash is stored.
        println!("Created tenant `default`. API key (shown once): {key}");
    }
    if let Some(dir) = &args.workflows {
        deploy_directory(&engine, dir).await?;
    }
    let config = AppConfig {
        bind: args.bind,
        database_url,
        workers: usize::from(args.runtime.workers),
        allow_private_networks: args.runtime.allow_private_networks,
        poll_interval: POLL_INTERVAL,
        heartbeat_interval: args.runtime.heartbeat_interval,
        master_key: args.database.master_key(),
        webhook_max_bytes: args.webhook_max_bytes,
        public_url: args.public_url.clone(),
        retention: args.runtime.retention(),
        shutdown_grace: args.runtime.shutdown_grace,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(certificate, key)| TlsFiles { certificate, key }),
    };
    let app = Application::from_engine(engine, &metrics, &config)?;
    println!("Stepwise is listening on {}", app.url());
    app.run_until(shutdown_signal()).await?;
    tracing::info!(message = "Stopped.");
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    // A worker serves no HTTP, so its integration metrics are not exported.
    let metrics = MetricsRegistry::new();
    let (database_url, engine) = open(&args.database, &args.runtime, &metrics).await?;
    let runtime = engine.start(RuntimeOptions {
        concurrency: usize::from(args.runtime.workers),
        poll_interval: POLL_INTERVAL,
        heartbeat_interval: args.runtime.heartbeat_interval,
        retention: args.runtime.retention(),
        shutdown_grace: args.runtime.shutdown_grace,
        ..RuntimeOptions::default()
    });
    tracing::info!(
        message = "Worker started.",
        url = redact_url(&database_url),
        concurrency = args.runtime.workers
    );
    shutdown_signal().await;
    tracing::info!(message = "Shutting down: finishing the steps in flight.");
    runtime.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Deploys every `*.yaml` / `*.yml` file of `dir` to the `default` tenant. A bad file is
/// reported with its diagnostics and skipped, so one typo does not keep the server down.
async fn deploy_directory(engine: &Engine, dir: &Path) -> anyhow::Result<()> {
    let tenant = engine
        .tenant("default")
        .await?
        .context("the `default` tenant does not exist")?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the workflows directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .is_some_and(|extension| extension == "yaml" || extension == "yml")
        })
        .collect();
    files.sort();
    for file in files {
        let path = file.display().to_string();
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(error) => {
                eprintln!("{path}: cannot read: {error}");
                continue;
            }
        };
        match engine.deploy(&tenant.id, &path, &source).await {
            Ok(deployed) if deployed.created => {
                println!("{path}: deployed `{}` v{}", deployed.name, deployed.version);
            }
            Ok(deployed) => {
                println!(
                    "{path}: `{}` v{} unchanged",
                    deployed.name, deployed.version
                );
            }
            Err(EngineError::InvalidWorkflow(diagnostics)) => {
                for diagnostic in diagnostics {
                    eprintln!("{}", diagnostic.render(&path));
                }
                eprintln!("{path}: not deployed");
            }
            Err(EngineError::InvalidInput(message)) => {
                eprintln!("{path}: not deployed: {message}");
            }
            Err(error) => return Err(error).with_context(|| format!("cannot deploy {path}")),
        }
    }
    Ok(())
}
