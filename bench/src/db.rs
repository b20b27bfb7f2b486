//! Fresh databases for one benchmark: a SQLite file in a temporary directory, or a Postgres
//! database `stepwise_bench_<uuid>` created through an admin URL and dropped afterwards.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "Postgres",
        }
    }
}

pub struct BenchDatabase {
    pub kind: Kind,
    /// Connection URL; may carry credentials, so never printed.
    pub url: String,
    /// Where it lives, safe to print.
    pub description: String,
    admin_url: Option<String>,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// Strips the user info of a URL so it can be printed.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

async fn admin_pool(admin_url: &str) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(admin_url)
        .await
        .with_context(|| format!("connecting to Postgres at {}", redact(admin_url)))
}

impl BenchDatabase {
    pub async fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let path = dir.path().join("bench.db");
        Ok(Self {
            kind: Kind::Sqlite,
            url: format!("sqlite://{}?mode=rwc", path.display()),
            description: format!("file {}", path.display()),
            admin_url: None,
            postgres_name: None,
            _dir: Some(dir),
        })
    }

    pub async fn postgres(admin_url: &str) -> Result<Self> {
        let pool = admin_pool(admin_url).await?;
        let name = format!("stepwise_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .context("creating the benchmark database")?;
        pool.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        let url = format!("{base}/{name}");
        Ok(Self {
            kind: Kind::Postgres,
            description: redact(&url),
            url,
            admin_url: Some(admin_url.to_owned()),
            postgres_name: Some(name),
            _dir: None,
        })
    }

    /// Drops the Postgres database (the SQLite directory goes with `self`).
    pub async fn cleanup(self) {
        if let (Some(admin), Some(name)) = (&self.admin_url, &self.postgres_name) {
            match admin_pool(admin).await {
                Ok(pool) => {
                    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&pool)
                    .await
                    {
                        eprintln!("warning: could not drop {name}: {error}");
                    }
                    pool.close().await;
                }
                Err(error) => eprintln!("warning: could not drop {name}: {error:#}"),
            }
        }
    }
}

/// A sqlx pool built by the engine's own constructors (engine/src/db.rs), so the baseline
/// uses exactly the engine's settings.
#[derive(Clone)]
pub enum RawPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl RawPool {
    pub async fn connect(db: &BenchDatabase) -> Result<Self> {
        Ok(match db.kind {
            Kind::Sqlite => Self::Sqlite(stepwise_engine::db::sqlite_pool(&db.url).await?),
            Kind::Postgres => Self::Postgres(stepwise_engine::db::postgres_pool(&db.url).await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
