//! `oauth-apps create|list|delete` and `connections create|list|delete|test`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use stepwise_engine::EngineError;
use stepwise_engine::store::connections::{ConnectionKind, NewConnection};
use stepwise_engine::store::oauth_apps::NewOAuthApp;
use stepwise_integrations::SecretValue;

use super::secrets::{open, open_reaching, read_stdin, tenant};
use crate::cli::{ConnectionsCommand, CreateConnection, CreateOauthApp, OauthAppsCommand};

/// Errors a person can fix are shown as they are; others get context.
fn user_error<T>(result: Result<T, EngineError>, what: &str) -> anyhow::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(
            EngineError::InvalidInput(message)
            | EngineError::NotFound(message)
            | EngineError::Conflict(message),
        ) => bail!(message),
        Err(error) => Err(error).context(format!("cannot {what}")),
    }
}

/// Reads a PEM file that must hold a `-----BEGIN ...{label}-----` block. The text is wiped on
/// drop (it may be a private key) and errors never quote it.
fn read_pem(path: &Path, what: &str, label: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read the {what} file `{}`", path.display()))?;
    let text = zeroize::Zeroizing::new(String::from_utf8(text).map_err(|error| {
        // The bytes may be a key in another encoding (DER): wipe them too.
        drop(zeroize::Zeroizing::new(error.into_bytes()));
        anyhow::anyhow!("the {what} file `{}` is not a PEM file", path.display())
    })?);
    let begins = text.lines().any(|line| {
        line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&format!("{label}-----"))
    });
    if !begins {
        bail!(
            "the {what} file `{}` is not a PEM file with a `{label}` block",
            path.display()
        );
    }
    Ok(text)
}

pub async fn oauth_apps(command: OauthAppsCommand) -> anyhow::Result<ExitCode> {
    match command {
        OauthAppsCommand::Create(arguments) => {
            let CreateOauthApp {
                integration,
                client_id,
                name,
                scopes,
                auth_method,
                authorize_url,
                token_url,
                revoke_url,
                base_url,
                issuer,
                discovery_url,
                refresh_margin,
                public_client,
                tenant: tenant_arg,
                database,
            } = *arguments;
            let client_secret = if public_client {
                None
            } else {
                Some(SecretValue::new(read_stdin("the client secret")?.as_str()))
            };
            let engine = open(&database, &database.master_key()).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let created = engine
                .create_oauth_app(
                    &tenant.id,
                    NewOAuthApp {
                        name,
                        integration,
                        client_id,
                        client_secret,
                        scopes,
                        auth_method,
                        authorize_url,
                        token_url,
                        revoke_url,
                        base_url,
                        issuer,
                        discovery_url,
                        refresh_margin,
                    },
                )
                .await;
            engine.database().close().await;
            let app = user_error(created, "create the OAuth app")?;
            println!(
                "Created OAuth app `{}` ({}) of tenant `{}`.",
                app.name, app.integration, tenant.name
            );
        }
        OauthAppsCommand::List {
            tenant: tenant_arg,
            database,
        } => {
            let engine = open(&database, &database.master_key()).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let apps = engine.list_oauth_apps(&tenant.id).await;
            engine.database().close().await;
            let apps = apps?;
            if apps.is_empty() {
                eprintln!("Tenant `{}` has no OAuth apps.", tenant.name);
            }
            for app in apps {
                println!(
                    "{}\t{}\tclient {}\t{}\ttoken {}",
                    app.name,
                    app.integration,
                    app.client_id,
                    app.auth_method.as_str(),
                    app.token_url.as_deref().unwrap_or("-")
                );
            }
        }
        OauthAppsCommand::Delete {
            name,
            tenant: tenant_arg,
            database,
        } => {
            let engine = open(&database, &database.master_key()).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let deleted = engine.delete_oauth_app(&tenant.id, &name).await;
            engine.database().close().await;
            user_error(deleted, "delete the OAuth app")?;
            println!("Deleted OAuth app `{name}` of tenant `{}`.", tenant.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn connections(command: ConnectionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConnectionsCommand::Create(arguments) => {
            let CreateConnection {
                name,
                integration,
                kind,
                oauth_app,
                api_key_header,
                username,
                probe_url,
                client_cert,
                client_key,
                tls_min,
                params,
                tenant: tenant_arg,
                database,
            } = *arguments;
            let client_cert = client_cert
                .map(|path| read_pem(&path, "client certificate", "CERTIFICATE"))
                .transpose()?;
            let client_key = client_key
                .map(|path| read_pem(&path, "client key", "PRIVATE KEY"))
                .transpose()?
                .map(|key| SecretValue::new(key.as_str()));
            let kind: ConnectionKind =
                serde_json::from_value(serde_json::Value::String(kind.clone())).map_err(|_| {
                    anyhow::anyhow!("unknown kind `{kind}`: use oauth2, api_key, bearer or basic")
                })?;
            let mut new = NewConnection {
                name,
                integration,
                kind,
                oauth_app,
                api_key: None,
                api_key_header,
                token: None,
                username,
                password: None,
                probe_url,
                client_cert: client_cert.map(|pem| pem.as_str().to_owned()),
                client_key,
                tls_min,
                params: params.into_iter().collect(),
            };
            match kind {
                ConnectionKind::Oauth2 => {}
                ConnectionKind::ApiKey => {
                    new.api_key = Some(SecretValue::new(read_stdin("the API key")?.as_str()));
                }
                ConnectionKind::Bearer => {
                    new.token = Some(SecretValue::new(read_stdin("the token")?.as_str()));
                }
                ConnectionKind::Basic => {
                    new.password = Some(SecretValue::new(read_stdin("the password")?.as_str()));
                }
            }
            let engine = open(&database, &database.master_key()).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let created = engine.create_connection(&tenant.id, new).await;
            engine.database().close().await;
            let connection = user_error(created, "create the connection")?;
            println!(
                "Created {} connection `{}` of tenant `{}`.",
                connection.kind.as_str(),
                connection.name,
                tenant.name
            );
            if connection.kind == ConnectionKind::Oauth2 {
                println!(
                    "Authorize it: GET /oauth/{}/authorize?connection={} on the server, with the \
                     tenant's API key, then follow the redirect in a browser.",
                    connection.integration, connection.name
                );
            }
        }
        ConnectionsCommand::List {
            tenant: tenant_arg,
            database,
        } => {
            let engine = open(&database, &database.master_key()).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let connections = engine.list_connections(&tenant.id).await;
            engine.database().close().await;
            let connections = connections?;
            if connections.is_empty() {
                eprintln!("Tenant `{}` has no connections.", tenant.name);
            }
            for connection in connections {
                let expires = connection
                    .expires_at
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "-".into());
                let client_cert = if connection.has_client_cert {
                    "\tclient certificate"
                } else {
                    ""
                };
                let tls_min = connection
                    .tls_min
                    .map(|version| format!("\tTLS {version}+"))
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\texpires {}{client_cert}{tls_min}",
                    connection.name,
                    connection.integration,
                    connection.kind.as_str(),
                    connection.status.as_str(),
                    expires
                );
            }
        }
        ConnectionsCommand::Delete {
            name,
            tenant: tenant_arg,
            database,
        } => {
            let engine = open(&database, &database.master_key()).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let deleted = engine.delete_connection(&tenant.id, &name).await;
            engine.database().close().await;
            let deleted = user_error(deleted, "delete the connection")?;
            let revoked = if deleted.revoked {
                " (tokens revoked at the provider)"
            } else {
                ""
            };
            println!(
                "Deleted connection `{name}` of tenant `{}`{revoked}.",
                tenant.name
            );
        }
        ConnectionsCommand::Test {
            name,
            allow_private_networks,
            tenant: tenant_arg,
            database,
        } => {
            let engine =
                open_reaching(&database, &database.master_key(), allow_private_networks).await?;
            let tenant = tenant(&engine, &tenant_arg).await?;
            let tested = engine.test_connection(&tenant.id, &name).await;
            engine.database().close().await;
            let tested = user_error(tested, "test the connection")?;
            let report = &tested.report;
            let status = report
                .status
                .map_or_else(|| "-".to_owned(), |status| status.to_string());
            println!(
                "{}\tHTTP {status}\t{} ms\t{}\nconnection `{name}` is {}",
                if report.ok { "ok" } else { "FAILED" },
                report.latency_ms,
                report.message,
                tested.connection_status.as_str()
            );
            if !report.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
