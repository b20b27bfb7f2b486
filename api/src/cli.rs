//! The command line. Every option can also come from a `STEPWISE_*` environment variable
//! (flags win); the database URL additionally falls back to `DATABASE_URL`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use stepwise_engine::DataLimits;

#[derive(Debug, Parser)]
#[command(
    name = "stepwise",
    version,
    about = "Durable workflows with built-in SaaS integrations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and execute runs (the all-in-one process).
    Serve(ServeArgs),
    /// Execute runs without serving HTTP (scale-out nodes sharing one Postgres).
    Worker(WorkerArgs),
    /// Run a workflow file once, in-process, with live step progress.
    Run(RunArgs),
    /// Check workflow files and print every problem as `file:line:col: CODE message`.
    Validate(ValidateArgs),
    /// Create or upgrade the database schema.
    Migrate(DatabaseArgs),
    /// Manage tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Manage a tenant's secrets (`${{ secrets.NAME }}`); values are never printed.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage a tenant's OAuth apps (client id and secret per integration).
    #[command(name = "oauth-apps")]
    OauthApps {
        #[command(subcommand)]
        command: OauthAppsCommand,
    },
    /// Manage a tenant's connections (OAuth 2.0, API key, bearer or basic credentials).
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Manage the master keys that protect secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the JSON Schema of the workflow language (for editors).
    Schema,
    /// Find integrations and their actions: list them, show one, or write their reference
    /// pages. Reads the built-in catalogue; needs no server and no database.
    Integrations {
        #[command(subcommand)]
        command: IntegrationsCommand,
    },
    /// Retry or re-run runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
}

impl Command {
    /// Log level when the environment sets none: long-running processes report what they do,
    /// one-shot commands print only their result (and warnings).
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Self::Serve(_) | Self::Worker(_) => "info",
            _ => "warn",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its API key (shown once).
    Create {
        /// Tenant name, unique per installation.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Retry a failed or cancelled run from its failed steps, reusing every earlier output.
    /// A running `serve` or `worker` process executes it.
    Retry {
        run_id: String,
        /// Run the retried steps on the workflow's current version instead of the run's own.
        #[arg(long)]
        current_version: bool,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Start a new run of the same workflow with the same input.
    Rerun {
        run_id: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// Every integration with its actions, one line each.
    List {
        /// Print the JSON of `GET /api/v1/integrations` instead.
        #[arg(long)]
        json: bool,
    },
    /// An action (`slack.post_message`): what it does, its connection, input and output
    /// fields and an example step; or an integration (`slack`) and its actions. Exits 2 for an
    /// unknown name.
    Show {
        /// An action (`provider.action`) or an integration.
        name: String,
        /// Print the JSON of `GET /api/v1/integrations/{name}` instead.
        #[arg(long)]
        json: bool,
    },
    /// Write the reference pages: an index (`README.md`) and one page per integration in its
    /// folder (`{name}/README.md`); pages this command wrote earlier for integrations that are
    /// gone are removed.
    Docs {
        /// The directory of the pages: the catalogue, so each page lives in its integration's
        /// folder.
        #[arg(long, default_value = "integrations/src/catalog")]
        out: PathBuf,
        /// Write nothing; exit 1 when a page in `--out` differs from what would be written.
        #[arg(long)]
        check: bool,
    },
}

/// The tenant an admin command acts on.
#[derive(Debug, Clone, Args)]
pub struct TenantArg {
    /// Tenant name.
    #[arg(long, env = "STEPWISE_TENANT", default_value = "default")]
    pub tenant: String,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create or replace a secret. The value is read from standard input (never from the
    /// command line, where other users and shell history would see it); one trailing newline
    /// is dropped.
    Set {
        /// Secret name: upper-case letters, digits and `_`, e.g. `API_TOKEN`.
        name: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List secret names with their creation and update times.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete a secret.
    Delete {
        name: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OauthAppsCommand {
    /// Create an OAuth app. The client secret is read from standard input (one trailing
    /// newline dropped) unless `--public-client` says there is none.
    Create(Box<CreateOauthApp>),
    /// List OAuth apps with their effective endpoints.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete an OAuth app.
    Delete {
        name: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The arguments of `oauth-apps create` (boxed: far larger than the other commands').
#[derive(Debug, Args)]
pub struct CreateOauthApp {
    /// Integration: github, slack, stripe or generic.
    #[arg(long)]
    pub integration: String,
    #[arg(long)]
    pub client_id: String,
    /// App name, unique per tenant; defaults to the integration's name with `_` written `-`.
    #[arg(long)]
    pub name: Option<String>,
    /// Requested scope; repeat for several.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// client_secret_basic (basic) or client_secret_post (post); defaults to the provider's.
    #[arg(long)]
    pub auth_method: Option<String>,
    #[arg(long)]
    pub authorize_url: Option<String>,
    #[arg(long)]
    pub token_url: Option<String>,
    /// RFC 7009 revocation endpoint.
    #[arg(long)]
    pub revoke_url: Option<String>,
    #[arg(long)]
    pub base_url: Option<String>,
    /// Authorization server issuer: endpoints not given are discovered from its RFC 8414 /
    /// OpenID metadata.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Metadata document URL, when it is not at the issuer's well-known locations.
    #[arg(long)]
    pub discovery_url: Option<String>,
    /// Refresh access tokens this long before they expire (`30s`, `5m`; at most 24h), instead
    /// of 60 s; never more than a quarter of a token's lifetime.
    #[arg(long)]
    pub refresh_margin: Option<String>,
    /// The app has no client secret (PKCE only): read nothing from standard input.
    #[arg(long)]
    pub public_client: bool,
    #[command(flatten)]
    pub tenant: TenantArg,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Create a connection. For `api_key`, `bearer` and `basic` the secret (key, token or
    /// password) is read from standard input; an `oauth2` connection is authorized in the
    /// browser afterwards (the command prints where).
    Create(Box<CreateConnection>),
    /// List connections with their status, scopes and expiry.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete a connection, revoking its OAuth tokens at the provider first.
    Delete {
        name: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Test a connection with one cheap authenticated request to its provider; exits 1 when
    /// the test fails. Credentials the provider refuses mark the connection `needs_reauth`.
    Test {
        name: String,
        /// Let the probe reach private, loopback and link-local addresses (local providers
        /// and tests only: this lifts the SSRF guard).
        #[arg(long, env = "STEPWISE_ALLOW_PRIVATE_NETWORKS", value_parser = BoolishValueParser::new())]
        allow_private_networks: bool,
        #[command(flatten)]
        tenant: TenantArg,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The arguments of `connections create` (boxed: far larger than the other commands').
#[derive(Debug, Args)]
pub struct CreateConnection {
    /// Connection name: lower-case letters, digits and `-`.
    pub name: String,
    /// Integration: github, slack, stripe or generic.
    #[arg(long)]
    pub integration: String,
    /// oauth2, api_key, bearer or basic.
    #[arg(long)]
    pub kind: String,
    /// For oauth2: the OAuth app (default: the app named after the integration).
    #[arg(long)]
    pub oauth_app: Option<String>,
    /// For api_key: the header the key is sent in (default: where the provider's declaration
    /// places it, else X-API-Key).
    #[arg(long)]
    pub api_key_header: Option<String>,
    /// For basic.
    #[arg(long)]
    pub username: Option<String>,
    /// URL a connection test GETs with the connection's credentials instead of the
    /// integration's built-in probe (the only way to test a generic connection).
    #[arg(long)]
    pub probe_url: Option<String>,
    /// Client certificate for mutual TLS: a PEM file (chain first), presented to the
    /// provider's API and, for oauth2, to its token endpoint. Needs --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key: a PEM file (PKCS#8, PKCS#1 or SEC1), sealed
    /// in the vault. Needs --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// The lowest TLS version the provider may use (default 1.3).
    #[arg(long, value_name = "VERSION", value_parser = ["1.2", "1.3"])]
    pub tls_min: Option<String>,
    /// A value for one of the provider's declared parameters (Shopify's shop, Microsoft's
    /// tenant), which shape its URLs; repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    #[command(flatten)]
    pub tenant: TenantArg,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// `NAME=VALUE` of `--param`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name.to_owned(), value.to_owned()))
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new master key current and re-wrap every data key under it (ciphertexts are not
    /// touched), then drop the old keys from the key file. Safe to run again after a crash: an
    /// unfinished rotation is resumed.
    Rotate {
        /// Read the new key (base64 of 32 bytes) from standard input instead of generating one.
        #[arg(long)]
        new_key_stdin: bool,
        /// Secrets re-wrapped per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: u64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where the database is. With neither a URL nor `DATABASE_URL`, an embedded SQLite file
/// `stepwise.db` in the data directory (default: the working directory) is used.
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB` [env: DATABASE_URL also read]
    #[arg(long, env = "STEPWISE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded SQLite database (created when missing).
    #[arg(long, env = "STEPWISE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Master key file (one base64 key per line, the current one first). Without it and
    /// without `STEPWISE_MASTER_KEY` (base64 keys, comma-separated), the embedded database
    /// keeps its key in `stepwise.key` next to it.
    #[arg(long, env = "STEPWISE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Steps this process executes concurrently.
    #[arg(long, env = "STEPWISE_WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Let `http.request` reach private, loopback and link-local addresses (local development
    /// and tests only: this lifts the SSRF guard).
    #[arg(long, env = "STEPWISE_ALLOW_PRIVATE_NETWORKS", value_parser = BoolishValueParser::new())]
    pub allow_private_networks: bool,
    /// How long accepted webhook deliveries are kept (they deduplicate redeliveries: keep
    /// them longer than your providers' redelivery window), e.g. `7d`.
    #[arg(long, env = "STEPWISE_WEBHOOK_DELIVERY_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub webhook_delivery_retention: std::time::Duration,
    /// How long cron fire history is kept, e.g. `30d`.
    #[arg(long, env = "STEPWISE_CRON_FIRE_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub cron_fire_retention: std::time::Duration,
    /// How long integration health minutes (the dashboard's Health page) are kept, e.g. `8d`.
    #[arg(long, env = "STEPWISE_INTEGRATION_HEALTH_RETENTION", default_value = "8d", value_parser = humantime::parse_duration)]
    pub integration_health_retention: std::time::Duration,
    /// Largest input or output of one step, and result of one `${{ }}` expression, in bytes
    /// of JSON; a step that produces more fails.
    #[arg(long, env = "STEPWISE_MAX_STEP_OUTPUT_BYTES", default_value_t = DataLimits::DEFAULT_MAX_STEP_OUTPUT_BYTES, value_parser = clap::value_parser!(usize))]
    pub max_step_output_bytes: usize,
    /// Largest total of the step inputs and outputs one run stores, in bytes of JSON; the step
    /// that would go beyond it fails.
    #[arg(long, env = "STEPWISE_MAX_RUN_DATA_BYTES", default_value_t = DataLimits::DEFAULT_MAX_RUN_DATA_BYTES, value_parser = clap::value_parser!(usize))]
    pub max_run_data_bytes: usize,
    /// How often step workers report liveness, in whole seconds. A process silent for two
    /// intervals counts as dead and its steps are taken over by another one; give every
    /// process sharing a database the same value.
    #[arg(long, env = "STEPWISE_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_heartbeat_interval)]
    pub heartbeat_interval: std::time::Duration,
    /// On SIGTERM or Ctrl-C: how long steps in flight may finish (nothing new is claimed);
    /// those still running then are handed to other processes at once, e.g. `30s`.
    #[arg(long, env = "STEPWISE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
}

/// A whole number of seconds, at least one: the queue compares heartbeats in seconds.
fn parse_heartbeat_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if interval < std::time::Duration::from_secs(1) || interval.subsec_nanos() != 0 {
        return Err(format!(
            "`{text}` is not a whole number of seconds of at least 1s (e.g. `5s`)"
        ));
    }
    Ok(interval)
}

impl RuntimeArgs {
    pub fn retention(&self) -> stepwise_engine::retention::Retention {
        stepwise_engine::retention::Retention {
            deliveries: self.webhook_delivery_retention,
            fires: self.cron_fire_retention,
            integration_health: self.integration_health_retention,
        }
    }

    pub fn data_limits(&self) -> DataLimits {
        DataLimits {
            max_step_output_bytes: self.max_step_output_bytes,
            max_run_data_bytes: self.max_run_data_bytes,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "STEPWISE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Deploy every `*.yaml` / `*.yml` file of this directory to the `default` tenant at start.
    #[arg(long, env = "STEPWISE_WORKFLOWS")]
    pub workflows: Option<PathBuf>,
    /// Largest webhook delivery body in bytes; larger deliveries are answered 413.
    #[arg(long, env = "STEPWISE_WEBHOOK_MAX_BYTES", default_value_t = crate::startup::DEFAULT_WEBHOOK_MAX_BYTES, value_parser = clap::value_parser!(usize))]
    pub webhook_max_bytes: usize,
    /// The URL users and OAuth providers reach this server at, e.g. `https://stepwise.example.com`;
    /// OAuth redirect URIs are `<URL>/oauth/callback`. Defaults to `http://<bind address>`.
    #[arg(long, env = "STEPWISE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (leaf first) and `--tls-key`; both files
    /// are read again on SIGHUP.
    #[arg(long, env = "STEPWISE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "STEPWISE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// Run input: a JSON object, or `@path` to read it from a file.
    #[arg(long, short)]
    pub input: Option<String>,
    /// Run against this database instead of a throw-away SQLite file. Deliberately not read
    /// from the environment: a scratch run should not land in a shared database by accident.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Let `http.request` reach private, loopback and link-local addresses.
    #[arg(long, env = "STEPWISE_ALLOW_PRIVATE_NETWORKS", value_parser = BoolishValueParser::new())]
    pub allow_private_networks: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Workflow files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_to_localhost() {
        let cli = Cli::try_parse_from(["stepwise", "serve"]).expect("parse");
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.bind.to_string(), "127.0.0.1:8080");
        assert!(args.runtime.workers >= 1);
    }

    #[test]
    fn heartbeat_interval_is_whole_seconds() {
        let cli = Cli::try_parse_from(["stepwise", "worker", "--heartbeat-interval", "2s"])
            .expect("parse");
        let Command::Worker(args) = cli.command else {
            panic!("not worker")
        };
        assert_eq!(
            args.runtime.heartbeat_interval,
            std::time::Duration::from_secs(2)
        );
        for bad in ["500ms", "1500ms", "0s", "soon"] {
            let error = Cli::try_parse_from(["stepwise", "serve", "--heartbeat-interval", bad])
                .expect_err(bad)
                .to_string();
            assert!(error.contains("--heartbeat-interval"), "{bad}: {error}");
        }
    }

    #[test]
    fn secrets_take_no_value_argument() {
        assert!(Cli::try_parse_from(["stepwise", "secrets", "set", "A", "value"]).is_err());
        let cli = Cli::try_parse_from(["stepwise", "secrets", "set", "A"]).expect("parse");
        let Command::Secrets {
            command: SecretsCommand::Set { name, tenant, .. },
        } = cli.command
        else {
            panic!("not secrets set")
        };
        assert_eq!((name.as_str(), tenant.tenant.as_str()), ("A", "default"));
    }

    #[test]
    fn integrations_show_needs_a_name_and_docs_default_to_the_catalogue() {
        assert!(Cli::try_parse_from(["stepwise", "integrations", "show"]).is_err());
        let cli = Cli::try_parse_from(["stepwise", "integrations", "docs"]).expect("parse");
        let Command::Integrations {
            command: IntegrationsCommand::Docs { out, check },
        } = cli.command
        else {
            panic!("not integrations docs")
        };
        assert_eq!(
            (out, check),
            (PathBuf::from("integrations/src/catalog"), false)
        );
    }

    #[test]
    fn validate_needs_a_file() {
        assert!(Cli::try_parse_from(["stepwise", "validate"]).is_err());
    }
}
