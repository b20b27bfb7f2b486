//! Test harness: every engine test runs once per backend, on a fresh SQLite file and on a
//! fresh Postgres database. Without a reachable Postgres the Postgres half is skipped with a
//! message, unless CI=true, where it fails.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stepwise_engine::vault::{KeyProvider, KeyRing, LocalKeyProvider, MasterKey};
use stepwise_engine::{Engine, RunDetail, Runtime, RuntimeOptions};
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};

pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh database for one test.
pub struct TestDatabase {
    pub url: String,
    pub label: &'static str,
    /// The Postgres database to drop when the test is done.
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("STEPWISE_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_ADMIN_URL.into())
}

async fn admin_pool() -> Result<sqlx::PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&admin_url())
        .await
}

async fn drop_postgres(name: &str) {
    if let Ok(pool) = admin_pool().await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}

async fn fresh_postgres() -> Option<(String, String)> {
    let admin = admin_url();
    let pool = match admin_pool().await {
        Ok(pool) => pool,
        Err(error) => {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("CI=true but Postgres at {admin} is unreachable: {error}");
            }
            eprintln!("skipping Postgres: {admin} is unreachable ({error})");
            return None;
        }
    };
    let name = format!("stepwise_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    Some((format!("{base}/{name}"), name))
}

impl TestDatabase {
    /// The SQLite database file, when this is SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|dir| dir.path().join("test.db"))
    }

    /// Every stored byte of the database as text (see [`Harness::dump_database`]).
    pub async fn dump(&self) -> String {
        dump(&self.url, self.postgres_name.as_deref()).await
    }

    /// Drops the Postgres database (for tests that do not use [`Harness`]).
    pub async fn drop(self) {
        if let Some(name) = &self.postgres_name {
            drop_postgres(name).await;
        }
    }
}

/// SQLite always; Postgres when reachable (or CI=true).
pub async fn databases() -> Vec<TestDatabase> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut databases = vec![TestDatabase {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        label: "sqlite",
        postgres_name: None,
        _dir: Some(dir),
    }];
    if let Some((url, name)) = fresh_postgres().await {
        databases.push(TestDatabase {
            url,
            label: "postgres",
            postgres_name: Some(name),
            _dir: None,
        });
    }
    databases
}

pub fn services() -> Arc<ActionServices> {
    services_with(HttpConfig {
        allow_private_networks: true,
        ..HttpConfig::default()
    })
}

/// [`services`] over an HTTP client configured by `config`.
pub fn services_with(config: HttpConfig) -> Arc<ActionServices> {
    let http = HttpClient::new(config).expect("http client");
    Arc::new(ActionServices::new(
        IntegrationRuntime::new(http, &MetricsRegistry::new()).expect("integration runtime"),
    ))
}

pub struct Harness {
    pub engine: Engine,
    pub runtime: Option<Runtime>,
    pub tenant_id: String,
    pub label: &'static str,
    url: String,
    postgres_name: Option<String>,
}

impl Harness {
    pub async fn start(database: &TestDatabase) -> Self {
        Self::start_with(
            database,
            RuntimeOptions {
                concurrency: 8,
                poll_interval: Duration::from_millis(100),
                ..RuntimeOptions::default()
            },
        )
        .await
    }

    /// [`Harness::start`] with the runtime configured by `options`.
    pub async fn start_with(database: &TestDatabase, options: RuntimeOptions) -> Self {
        // A fixed key held in memory: tests that store secrets need one on either backend.
        let keys = LocalKeyProvider::new(KeyRing::new(vec![MasterKey::generate()]));
        Self::start_with_keys(database, options, keys).await
    }

    /// [`Harness::start_with`] with the master keys of `keys` (a key file, for rotations).
    pub async fn start_with_keys(
        database: &TestDatabase,
        options: RuntimeOptions,
        keys: impl KeyProvider,
    ) -> Self {
        let keys = Arc::new(keys);
        let engine = Engine::open_with_keys(
            &database.url,
            Arc::new(Registry::builtin()),
            services(),
            keys,
        )
        .await
        .expect("open engine");
        let (tenant, _key) = engine.create_tenant("test").await.expect("tenant");
        let runtime = engine.start(options);
        Self {
            engine,
            runtime: Some(runtime),
            tenant_id: tenant.id,
            label: database.label,
            url: database.url.clone(),
            postgres_name: database.postgres_name.clone(),
        }
    }

    pub async fn deploy(&self, source: &str) {
        self.engine
            .deploy(&self.tenant_id, "test.yaml", source)
            .await
            .unwrap_or_else(|error| panic!("[{}] deploy failed: {error:?}", self.label));
    }

    pub async fn start_run(&self, workflow: &str, input: Value) -> String {
        self.engine
            .start_run(&self.tenant_id, workflow, input, "manual", Value::Null)
            .await
            .expect("start run")
    }

    /// Waits (bounded) for the run to finish.
    pub async fn finish(&self, run_id: &str) -> RunDetail {
        tokio::time::timeout(
            Duration::from_secs(60),
            self.engine.wait_for_run(&self.tenant_id, run_id),
        )
        .await
        .unwrap_or_else(|_| panic!("[{}] run {run_id} did not finish in 60 s", self.label))
        .expect("wait for run")
    }

    /// Every stored byte of the database as text, to search for values that must never be
    /// stored: the SQLite files (WAL included), or every row of every Postgres table.
    pub async fn dump_database(&self) -> String {
        dump(&self.url, self.postgres_name.as_deref()).await
    }

    pub async fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        self.engine.database().close().await;
        if let Some(name) = &self.postgres_name {
            drop_postgres(name).await;
        }
    }
}

/// Every stored byte of the database at `url` as text: the SQLite files (WAL included), or every
/// row of every table of the Postgres database `postgres_name`.
async fn dump(url: &str, postgres_name: Option<&str>) -> String {
    if let Some(name) = postgres_name {
        let base = admin_url();
        let base = base
            .rsplit_once('/')
            .map_or(base.as_str(), |(base, _)| base);
        let pool = sqlx::PgPool::connect(&format!("{base}/{name}"))
            .await
            .expect("connect for dump");
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_all(&pool)
        .await
        .expect("list tables");
        let mut dump = String::new();
        for (schema, table) in tables {
            let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM \"{schema}\".\"{table}\" t"
            )))
            .fetch_all(&pool)
            .await
            .expect("dump table");
            for (row,) in rows {
                dump.push_str(&row);
                dump.push('\n');
            }
        }
        pool.close().await;
        return dump;
    }
    let path = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut dump = String::new();
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
            dump.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    dump
}
