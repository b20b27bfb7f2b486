//! `secrets set|list|delete` and `keys rotate`.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use anyhow::{Context, bail};
use stepwise_engine::vault::{
    KeyRing, MasterKey, MasterKeySettings, default_key_file, read_key_file, write_key_file,
};
use stepwise_engine::{Engine, EngineError, Tenant};
use stepwise_integrations::SecretValue;
use stepwise_integrations::runtime::MetricsRegistry;
use zeroize::Zeroizing;

use crate::cli::{DatabaseArgs, TenantArg};
use crate::config::{MASTER_KEY_ENV, redact_url};
use crate::startup::open_engine;

pub(super) async fn open(
    database: &DatabaseArgs,
    keys: &MasterKeySettings,
) -> anyhow::Result<Engine> {
    open_reaching(database, keys, false).await
}

/// [`open`], with outbound requests (connection tests) allowed to private networks or not.
pub(super) async fn open_reaching(
    database: &DatabaseArgs,
    keys: &MasterKeySettings,
    allow_private_networks: bool,
) -> anyhow::Result<Engine> {
    let url = database
        .resolve()
        .context("cannot create the data directory")?;
    open_engine(&url, keys, allow_private_networks, &MetricsRegistry::new())
        .await
        .with_context(|| format!("cannot open {}", redact_url(&url)))
}

pub(super) async fn tenant(engine: &Engine, tenant: &TenantArg) -> anyhow::Result<Tenant> {
    engine.tenant(&tenant.tenant).await?.with_context(|| {
        format!(
            "tenant `{}` does not exist (`stepwise serve` creates `default` on first start; \
             `stepwise tenants create NAME` creates others)",
            tenant.tenant
        )
    })
}

/// Standard input without one trailing newline. From a terminal, one line.
pub(super) fn read_stdin(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Enter {what} and press Enter:");
        stdin
            .read_line(&mut text)
            .context("cannot read standard input")?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    }
    for ending in ["\r\n", "\n"] {
        if text.ends_with(ending) {
            let keep = text.len() - ending.len();
            text.truncate(keep);
            break;
        }
    }
    Ok(text)
}

pub async fn set(
    name: &str,
    tenant_arg: &TenantArg,
    database: &DatabaseArgs,
) -> anyhow::Result<ExitCode> {
    // Check the name before waiting for a value.
    if let Err(message) = stepwise_engine::store::secrets::validate_name(name) {
        bail!(message);
    }
    let value = SecretValue::new(read_stdin("the secret value")?.as_str());
    let engine = open(database, &database.master_key()).await?;
    let tenant = tenant(&engine, tenant_arg).await?;
    let written = engine.set_secret(&tenant.id, name, &value).await;
    engine.database().close().await;
    match written {
        Ok(written) => {
            let verb = if written.created {
                "Created"
            } else {
                "Updated"
            };
            println!("{verb} secret `{name}` of tenant `{}`.", tenant.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::InvalidInput(message)) => bail!(message),
        Err(error) => Err(error).context("cannot store the secret"),
    }
}

pub async fn list(tenant_arg: &TenantArg, database: &DatabaseArgs) -> anyhow::Result<ExitCode> {
    let engine = open(database, &database.master_key()).await?;
    let tenant = tenant(&engine, tenant_arg).await?;
    let secrets = engine.list_secrets(&tenant.id).await;
    engine.database().close().await;
    let secrets = secrets?;
    if secrets.is_empty() {
        eprintln!("Tenant `{}` has no secrets.", tenant.name);
    }
    for secret in secrets {
        println!(
            "{}\tupdated {}",
            secret.name,
            chrono::DateTime::from_timestamp_millis(secret.updated_at)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(
    name: &str,
    tenant_arg: &TenantArg,
    database: &DatabaseArgs,
) -> anyhow::Result<ExitCode> {
    let engine = open(database, &database.master_key()).await?;
    let tenant = tenant(&engine, tenant_arg).await?;
    let deleted = engine.delete_secret(&tenant.id, name).await;
    engine.database().close().await;
    match deleted {
        Ok(()) => {
            println!("Deleted secret `{name}` of tenant `{}`.", tenant.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::NotFound(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error).context("cannot delete the secret"),
    }
}

/// `keys rotate`: with a key file, put a new key first, re-wrap, then keep only the new key.
/// With `STEPWISE_MASTER_KEY`, re-wrap under its first key (the operator edits the variable).
pub async fn rotate(
    new_key_stdin: bool,
    batch_size: u64,
    database: &DatabaseArgs,
) -> anyhow::Result<ExitCode> {
    let url = database
        .resolve()
        .context("cannot create the data directory")?;
    let settings = database.master_key();
    let new_key = if new_key_stdin {
        Some(MasterKey::from_base64(&read_stdin(
            "the new master key (base64)",
        )?)?)
    } else {
        None
    };

    if let Some(keys) = &settings.keys {
        let ring = KeyRing::from_list(keys.expose())?;
        if new_key.is_some() {
            bail!(
                "{MASTER_KEY_ENV} is set, so the new key cannot be stored by this command: put it \
                 first in {MASTER_KEY_ENV} (NEW,OLD) and run `stepwise keys rotate` again"
            );
        }
        let engine = open(database, &settings).await?;
        let report = engine.rewrap_secrets(batch_size).await;
        engine.database().close().await;
        let report = report?;
        println!(
            "Re-wrapped {} secret(s) under key {}.",
            report.rewrapped, report.key_id
        );
        if report.remaining > 0 {
            eprintln!(
                "{} secret(s) are still under an old key; run `stepwise keys rotate` again.",
                report.remaining
            );
            return Ok(ExitCode::FAILURE);
        }
        if ring.keys().len() > 1 {
            println!(
                "Every secret is under the first key of {MASTER_KEY_ENV}: the others can be removed."
            );
        } else if report.rewrapped == 0 {
            println!(
                "To rotate, generate a key (e.g. `openssl rand -base64 32`) and set \
                 {MASTER_KEY_ENV}=NEW,OLD, then run this again."
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let path = settings
        .key_file
        .clone()
        .or_else(|| default_key_file(&url))
        .with_context(|| {
            format!("no master key is configured: set {MASTER_KEY_ENV} or --master-key-file")
        })?;
    if !path.is_file() {
        bail!(
            "the key file {} does not exist, so no secret is sealed with it: nothing to rotate",
            path.display()
        );
    }
    let present = read_key_file(&path)?;
    let ring = match new_key {
        Some(new) => present.with_current(new),
        None if present.keys().len() > 1 => {
            println!(
                "Resuming the unfinished rotation to key {} ({}).",
                present.current().id(),
                path.display()
            );
            present.clone()
        }
        None => present.with_current(MasterKey::generate()),
    };
    if ring.current().id() != present.current().id() {
        // The old keys stay in the file until every data key is re-wrapped; running servers
        // re-read the file and seal new secrets under the new key from now on.
        write_key_file(&path, &ring)?;
        println!(
            "New master key {} is current in {}.",
            ring.current().id(),
            path.display()
        );
    }
    let file_only = MasterKeySettings {
        keys: None,
        key_file: Some(path.clone()),
    };
    let engine = open(database, &file_only).await?;
    let report = engine.rewrap_secrets(batch_size).await;
    engine.database().close().await;
    let report = report.context("re-wrapping stopped; the key file keeps every key, run again")?;
    println!(
        "Re-wrapped {} secret(s) under key {}.",
        report.rewrapped, report.key_id
    );
    if report.remaining > 0 {
        eprintln!(
            "{} secret(s) are still under an old key (written meanwhile); the old keys are kept. \
             Run `stepwise keys rotate` again.",
            report.remaining
        );
        return Ok(ExitCode::FAILURE);
    }
    let dropped: Vec<_> = ring.keys()[1..]
        .iter()
        .map(|key| key.id().to_owned())
        .collect();
    if !dropped.is_empty() {
        write_key_file(&path, &ring.current_only())?;
        println!(
            "Removed old key(s) {} from {}.",
            dropped.join(", "),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
