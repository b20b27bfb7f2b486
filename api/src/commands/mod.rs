//! One module per subcommand. Commands report failures as `anyhow` errors: this is the edge of
//! the binary, where an error only needs to be shown to a person.

mod admin;
mod connections;
mod integration_docs;
mod integrations;
mod run_file;
mod runs;
mod secrets;
mod serve;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command, KeysCommand, SecretsCommand, TenantsCommand};

/// Runs the command and turns its outcome into the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let outcome = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Run(args) => run_file::run(args).await,
        Command::Validate(args) => validate::validate(&args),
        Command::Migrate(args) => admin::migrate(&args).await,
        Command::Tenants {
            command: TenantsCommand::Create { name, database },
        } => admin::create_tenant(&name, &database).await,
        Command::Secrets {
            command:
                SecretsCommand::Set {
                    name,
                    tenant,
                    database,
                },
        } => secrets::set(&name, &tenant, &database).await,
        Command::Secrets {
            command: SecretsCommand::List { tenant, database },
        } => secrets::list(&tenant, &database).await,
        Command::Secrets {
            command:
                SecretsCommand::Delete {
                    name,
                    tenant,
                    database,
                },
        } => secrets::delete(&name, &tenant, &database).await,
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    new_key_stdin,
                    batch_size,
                    database,
                },
        } => secrets::rotate(new_key_stdin, batch_size, &database).await,
        Command::OauthApps { command } => connections::oauth_apps(command).await,
        Command::Connections { command } => connections::connections(command).await,
        Command::Schema => admin::schema(),
        Command::Integrations { command } => integrations::run(command),
        Command::Runs { command } => runs::run(command).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (what orchestrators send before killing a process).
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(message = "Cannot listen for Ctrl-C.", %error);
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(message = "Cannot listen for SIGTERM.", %error);
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
