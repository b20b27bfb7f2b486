//! Connecting to SQLite (embedded default) or Postgres (scale-out), one sqlx pool shared by
//! sea-orm and apalis, and running every migration (ours and apalis').

use std::str::FromStr;
use std::time::Duration;

use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use stepwise_migrations::{Migrator, MigratorTrait};

use crate::error::EngineError;

/// How long [`Database::close`] waits for checked-out connections.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database: a sea-orm connection and the sqlx pool under it.
#[derive(Clone, Debug)]
pub struct Database {
    pub(crate) conn: DatabaseConnection,
    pub(crate) pool: Pool,
}

impl Database {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Self, EngineError> {
        if url.starts_with("sqlite:") {
            let pool = sqlite_pool(url).await?;
            Ok(Self {
                conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool.clone()),
                pool: Pool::Sqlite(pool),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = postgres_pool(url).await?;
            Ok(Self {
                conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone()),
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(EngineError::Config(format!(
                "unsupported database URL `{}`: use sqlite://PATH or postgres://...",
                url.split('@').next_back().unwrap_or_default()
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration: ours, then the apalis queue tables.
    pub async fn migrate(&self) -> Result<(), EngineError> {
        Migrator::up(&self.conn, None).await?;
        match &self.pool {
            Pool::Sqlite(pool) => apalis_sqlite::SqliteStorage::<()>::migrations()
                .run(pool)
                .await
                .map_err(sqlx::Error::from)?,
            Pool::Postgres(pool) => apalis_postgres::PostgresStorage::<()>::migrations()
                .run(pool)
                .await
                .map_err(sqlx::Error::from)?,
        }
        Ok(())
    }

    /// Cheap liveness query for `/readyz`.
    pub async fn ping(&self) -> Result<(), EngineError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
            Pool::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes the pool, waiting at most [`CLOSE_GRACE`]: sqlx's `Pool::close` waits for every
    /// checked-out connection, and a connection still on its way back to the pool (its return
    /// is a spawned task) can keep it waiting for good. Every commit is durable before it
    /// returns, so giving up the wait loses nothing; SQLite replays its WAL on the next open.
    pub async fn close(&self) {
        let closed = match &self.pool {
            Pool::Sqlite(pool) => tokio::time::timeout(CLOSE_GRACE, pool.close()).await,
            Pool::Postgres(pool) => tokio::time::timeout(CLOSE_GRACE, pool.close()).await,
        };
        if closed.is_err() {
            tracing::warn!(
                grace = ?CLOSE_GRACE,
                "the database pool did not close in time; leaving its connections to the process exit"
            );
        }
    }
}

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: a deferred
/// transaction that reads first cannot upgrade to a writer once another connection has
/// committed (SQLITE_BUSY without waiting), while an immediate one waits its turn.
pub(crate) async fn begin_write(
    conn: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    conn.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// The engine's SQLite pool. Public so the benchmark's baseline measures the same settings.
pub async fn sqlite_pool(url: &str) -> Result<SqlitePool, EngineError> {
    // WAL lets readers run beside the single writer; synchronous=NORMAL in WAL mode keeps every
    // committed transaction across a process crash (an OS crash may lose the last ones),
    // unlike apalis' own setup() which turns syncing off.
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| EngineError::Config(format!("invalid SQLite URL: {error}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    // One connection: SQLite has one writer anyway, and with several connections a writer that
    // finds the lock taken sleeps in SQLite's busy handler (1, 2, 5, 10 ms ...), which
    // dominated per-step latency. One connection turns that into an async wait in the pool,
    // woken the moment the previous statement or transaction ends.
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

/// The engine's Postgres pool. Public so the benchmark's baseline measures the same settings.
pub async fn postgres_pool(url: &str) -> Result<PgPool, EngineError> {
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?)
}
