//! Resolved configuration: what the command-line arguments (and their environment variables)
//! mean once defaults are applied.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use stepwise_engine::retention::Retention;
use stepwise_engine::{MasterKeySettings, RuntimeOptions};
use stepwise_integrations::SecretValue;

use crate::cli::DatabaseArgs;

/// Environment variable with the master keys: base64, comma-separated, the current one first.
/// Deliberately not a flag: a key on the command line is visible to every user of the machine.
pub const MASTER_KEY_ENV: &str = "STEPWISE_MASTER_KEY";

/// File name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "stepwise.db";

/// Everything [`crate::startup::Application`] needs.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub bind: SocketAddr,
    pub database_url: String,
    /// Steps this process executes concurrently.
    pub workers: usize,
    pub allow_private_networks: bool,
    /// Fallback poll interval of the step queue.
    pub poll_interval: Duration,
    /// How often step workers report liveness (see [`stepwise_engine::RuntimeOptions`]).
    pub heartbeat_interval: Duration,
    /// Where the master keys of the vault come from.
    pub master_key: MasterKeySettings,
    /// Largest webhook delivery body in bytes; larger ones get 413.
    pub webhook_max_bytes: usize,
    /// The URL users and providers reach this server at (OAuth redirect URIs are built from
    /// it); `None` means `http://` plus the bound address.
    pub public_url: Option<String>,
    /// How long accepted webhook deliveries and cron fire rows are kept.
    pub retention: Retention,
    /// How long a shutdown lets in-flight steps and HTTP requests finish.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
}

impl AppConfig {
    /// A configuration for tests and embedding: a random local port, private networks allowed.
    pub fn local(database_url: impl Into<String>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            workers: 8,
            allow_private_networks: true,
            poll_interval: Duration::from_millis(100),
            heartbeat_interval: RuntimeOptions::default().heartbeat_interval,
            master_key: MasterKeySettings::default(),
            webhook_max_bytes: crate::startup::DEFAULT_WEBHOOK_MAX_BYTES,
            public_url: None,
            retention: Retention::default(),
            shutdown_grace: stepwise_engine::DEFAULT_SHUTDOWN_GRACE,
            tls: None,
        }
    }
}

impl DatabaseArgs {
    /// The master key settings: `STEPWISE_MASTER_KEY`, else the key file option.
    pub fn master_key(&self) -> MasterKeySettings {
        MasterKeySettings {
            keys: std::env::var(MASTER_KEY_ENV)
                .ok()
                .filter(|keys| !keys.trim().is_empty())
                .map(SecretValue::new),
            key_file: self.master_key_file.clone(),
        }
    }

    /// The database URL: the flag or `STEPWISE_DATABASE_URL`, then `DATABASE_URL`, then the
    /// embedded SQLite file. Creates the data directory when the embedded file is used.
    pub fn resolve(&self) -> std::io::Result<String> {
        let from_env = || {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())
        };
        if let Some(url) = self.database_url.clone().or_else(from_env) {
            return Ok(url);
        }
        match &self.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Ok(sqlite_url(&dir.join(SQLITE_FILE)))
            }
            None => Ok(sqlite_url(&Path::new(".").join(SQLITE_FILE))),
        }
    }
}

/// `sqlite://PATH?mode=rwc`: creates the file when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let password = if userinfo.contains(':') { ":***" } else { "" };
            format!(
                "{scheme}://{user}{password}@{host}{}",
                &rest[authority_end..]
            )
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/stepwise"),
            "postgres://app:***@db:5432/stepwise"
        );
        assert_eq!(
            redact_url("postgres://app@db/stepwise"),
            "postgres://app@db/stepwise"
        );
        assert_eq!(
            redact_url("sqlite://./stepwise.db?mode=rwc"),
            "sqlite://./stepwise.db?mode=rwc"
        );
    }

    #[test]
    fn embedded_database_lives_in_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = DatabaseArgs {
            database_url: Some("postgres://x@y/z".into()),
            ..DatabaseArgs::default()
        };
        assert_eq!(args.resolve().expect("resolve"), "postgres://x@y/z");
        let nested = dir.path().join("data");
        let args = DatabaseArgs {
            data_dir: Some(nested.clone()),
            ..DatabaseArgs::default()
        };
        if std::env::var_os("DATABASE_URL").is_none() {
            let url = args.resolve().expect("resolve");
            assert!(url.ends_with("data/stepwise.db?mode=rwc"), "{url}");
            assert!(nested.is_dir());
        }
    }
}
