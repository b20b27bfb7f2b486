//! Per-tenant secrets and the vault, on every backend: round trip, tampering, moved envelopes,
//! wrong keys, key rotation, and no plaintext at rest.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{TestDatabase, databases, services};
use sqlx::Row as _;
use stepwise_engine::vault::{KeyRing, LocalKeyProvider, MasterKey, write_key_file};
use stepwise_engine::{Engine, EngineError, VaultError};
use stepwise_integrations::{Registry, SecretValue};

/// An engine whose master keys come from `key_file`, with two tenants.
struct Setup {
    engine: Engine,
    tenant: String,
    other_tenant: String,
}

async fn open(database: &TestDatabase, key_file: &Path) -> Engine {
    let keys = Arc::new(LocalKeyProvider::key_file(key_file).expect("key file"));
    Engine::open_with_keys(
        &database.url,
        Arc::new(Registry::builtin()),
        services(),
        keys,
    )
    .await
    .expect("open engine")
}

async fn setup(database: &TestDatabase, key_file: &Path) -> Setup {
    let engine = open(database, key_file).await;
    let (tenant, _) = engine.create_tenant("acme").await.expect("tenant");
    let (other, _) = engine.create_tenant("globex").await.expect("tenant");
    Setup {
        engine,
        tenant: tenant.id,
        other_tenant: other.id,
    }
}

fn key_file_with(dir: &Path, keys: &[MasterKey]) -> PathBuf {
    let path = dir.join("stepwise.key");
    write_key_file(&path, &KeyRing::new(keys.to_vec())).expect("write key file");
    path
}

fn secret(value: &str) -> SecretValue {
    SecretValue::new(value)
}

/// Raw access to the `secrets` table, to play the attacker with database access.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

struct RawEnvelope {
    key_id: String,
    wrapped_key: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Raw {
    async fn connect(database: &TestDatabase) -> Self {
        if database.url.starts_with("sqlite:") {
            Self::Sqlite(
                sqlx::SqlitePool::connect(&database.url)
                    .await
                    .expect("sqlite"),
            )
        } else {
            Self::Postgres(
                sqlx::PgPool::connect(&database.url)
                    .await
                    .expect("postgres"),
            )
        }
    }

    async fn read(&self, tenant: &str, name: &str) -> RawEnvelope {
        let sql = "SELECT key_id, wrapped_key, nonce, ciphertext FROM secrets \
                   WHERE tenant_id = $1 AND name = $2";
        let (key_id, wrapped_key, nonce, ciphertext) = match self {
            Self::Sqlite(pool) => {
                let row = sqlx::query(sql)
                    .bind(tenant)
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .expect("read");
                (row.get(0), row.get(1), row.get(2), row.get(3))
            }
            Self::Postgres(pool) => {
                let row = sqlx::query(sql)
                    .bind(tenant)
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .expect("read");
                (row.get(0), row.get(1), row.get(2), row.get(3))
            }
        };
        RawEnvelope {
            key_id,
            wrapped_key,
            nonce,
            ciphertext,
        }
    }

    async fn write(&self, tenant: &str, name: &str, envelope: &RawEnvelope) {
        let sql = "UPDATE secrets SET key_id = $1, wrapped_key = $2, nonce = $3, ciphertext = $4 \
                   WHERE tenant_id = $5 AND name = $6";
        let affected = match self {
            Self::Sqlite(pool) => sqlx::query(sql)
                .bind(&envelope.key_id)
                .bind(&envelope.wrapped_key)
                .bind(&envelope.nonce)
                .bind(&envelope.ciphertext)
                .bind(tenant)
                .bind(name)
                .execute(pool)
                .await
                .expect("write")
                .rows_affected(),
            Self::Postgres(pool) => sqlx::query(sql)
                .bind(&envelope.key_id)
                .bind(&envelope.wrapped_key)
                .bind(&envelope.nonce)
                .bind(&envelope.ciphertext)
                .bind(tenant)
                .bind(name)
                .execute(pool)
                .await
                .expect("write")
                .rows_affected(),
        };
        assert_eq!(affected, 1);
    }

    /// Every row of the table rendered as text by the database itself (Postgres).
    async fn rows_as_text(&self) -> Vec<String> {
        match self {
            Self::Sqlite(pool) => sqlx::query(
                "SELECT CAST(id || tenant_id || name || key_id || wrapped_key || nonce || \
                 ciphertext AS BLOB) FROM secrets",
            )
            .fetch_all(pool)
            .await
            .expect("select")
            .iter()
            .map(|row| String::from_utf8_lossy(&row.get::<Vec<u8>, _>(0)).into_owned())
            .collect(),
            Self::Postgres(pool) => sqlx::query("SELECT s::text FROM secrets s")
                .fetch_all(pool)
                .await
                .expect("select")
                .iter()
                .map(|row| row.get::<String, _>(0))
                .collect(),
        }
    }

    async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

async fn finish(engine: Engine, database: TestDatabase) {
    engine.database().close().await;
    database.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_round_trip_per_tenant() {
    for database in databases().await {
        let label = database.label;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = key_file_with(dir.path(), &[MasterKey::generate()]);
        let Setup {
            engine,
            tenant,
            other_tenant,
        } = setup(&database, &keys).await;

        let written = engine
            .set_secret(&tenant, "API_TOKEN", &secret("tok-1"))
            .await
            .expect("set");
        assert!(written.created, "[{label}]");
        engine
            .set_secret(&tenant, "DB_PASSWORD", &secret("pässwörd ✓"))
            .await
            .expect("set");
        let replaced = engine
            .set_secret(&tenant, "API_TOKEN", &secret("tok-2"))
            .await
            .expect("replace");
        assert!(!replaced.created, "[{label}]");
        assert_eq!(replaced.info.created_at, written.info.created_at);
        assert!(replaced.info.updated_at >= written.info.updated_at);
        engine
            .set_secret(&other_tenant, "API_TOKEN", &secret("globex-token"))
            .await
            .expect("set other");

        let names: Vec<_> = engine
            .list_secrets(&tenant)
            .await
            .expect("list")
            .into_iter()
            .map(|info| info.name)
            .collect();
        assert_eq!(names, ["API_TOKEN", "DB_PASSWORD"], "[{label}]");

        let values = engine.tenant_secrets(&tenant).await.expect("values");
        assert_eq!(values.len(), 2, "[{label}]");
        assert_eq!(
            values.get("API_TOKEN").map(SecretValue::expose),
            Some("tok-2")
        );
        assert_eq!(
            values.get("DB_PASSWORD").map(SecretValue::expose),
            Some("pässwörd ✓")
        );
        assert!(!format!("{values:?}").contains("tok-2"));
        let other = engine.tenant_secrets(&other_tenant).await.expect("values");
        assert_eq!(
            other.get("API_TOKEN").map(SecretValue::expose),
            Some("globex-token"),
            "[{label}]"
        );

        for (name, value) in [("lower", "x"), ("1X", "x"), ("OK", "")] {
            assert!(
                matches!(
                    engine.set_secret(&tenant, name, &secret(value)).await,
                    Err(EngineError::InvalidInput(_))
                ),
                "[{label}] {name}"
            );
        }

        engine
            .delete_secret(&tenant, "DB_PASSWORD")
            .await
            .expect("delete");
        assert!(matches!(
            engine.delete_secret(&tenant, "DB_PASSWORD").await,
            Err(EngineError::NotFound(_))
        ));
        assert_eq!(engine.list_secrets(&tenant).await.expect("list").len(), 1);
        assert_eq!(
            engine
                .list_secrets(&other_tenant)
                .await
                .expect("list")
                .len(),
            1,
            "[{label}] deleting in one tenant touches no other"
        );
        finish(engine, database).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_moved_envelopes_do_not_decrypt() {
    for database in databases().await {
        let label = database.label;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = key_file_with(dir.path(), &[MasterKey::generate()]);
        let Setup {
            engine,
            tenant,
            other_tenant,
        } = setup(&database, &keys).await;
        engine
            .set_secret(&tenant, "ALPHA", &secret("alpha-value"))
            .await
            .expect("set");
        engine
            .set_secret(&tenant, "BETA", &secret("beta-value"))
            .await
            .expect("set");
        engine
            .set_secret(&other_tenant, "ALPHA", &secret("other-alpha"))
            .await
            .expect("set");
        let raw = Raw::connect(&database).await;

        // One flipped bit of the ciphertext.
        let original = raw.read(&tenant, "ALPHA").await;
        let mut tampered = raw.read(&tenant, "ALPHA").await;
        tampered.ciphertext[0] ^= 0x01;
        raw.write(&tenant, "ALPHA", &tampered).await;
        let error = engine.tenant_secrets(&tenant).await.expect_err("tampered");
        let message = error.to_string();
        assert!(
            matches!(error, EngineError::Vault(VaultError::Decrypt { .. })),
            "[{label}] {message}"
        );
        assert!(message.contains("`ALPHA`"), "[{label}] {message}");
        assert!(message.contains(&original.key_id), "[{label}] {message}");
        raw.write(&tenant, "ALPHA", &original).await;
        engine.tenant_secrets(&tenant).await.expect("restored");

        // ALPHA's envelope copied onto BETA's row: same tenant, same key, other record.
        let beta = raw.read(&tenant, "BETA").await;
        raw.write(&tenant, "BETA", &original).await;
        let error = engine.tenant_secrets(&tenant).await.expect_err("moved");
        assert!(
            matches!(error, EngineError::Vault(VaultError::Decrypt { .. })),
            "[{label}] {error}"
        );
        assert!(error.to_string().contains("`BETA`"), "[{label}] {error}");
        raw.write(&tenant, "BETA", &beta).await;

        // ALPHA's envelope copied to the other tenant's ALPHA: same name, other tenant.
        raw.write(&other_tenant, "ALPHA", &original).await;
        let error = engine
            .tenant_secrets(&other_tenant)
            .await
            .expect_err("moved");
        assert!(
            matches!(error, EngineError::Vault(VaultError::Decrypt { .. })),
            "[{label}] {error}"
        );
        // Nothing was destroyed: the victim's own secrets still read.
        let values = engine.tenant_secrets(&tenant).await.expect("intact");
        assert_eq!(
            values.get("BETA").map(SecretValue::expose),
            Some("beta-value")
        );
        raw.close().await;
        finish(engine, database).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_key_names_the_key_and_destroys_nothing() {
    for database in databases().await {
        let label = database.label;
        let dir = tempfile::tempdir().expect("tempdir");
        let right = MasterKey::generate();
        let keys = key_file_with(dir.path(), std::slice::from_ref(&right));
        let Setup { engine, tenant, .. } = setup(&database, &keys).await;
        engine
            .set_secret(&tenant, "TOKEN", &secret("v"))
            .await
            .expect("set");
        engine.database().close().await;

        let wrong_dir = tempfile::tempdir().expect("tempdir");
        let wrong_keys = key_file_with(wrong_dir.path(), &[MasterKey::generate()]);
        let wrong = open(&database, &wrong_keys).await;
        let error = wrong.tenant_secrets(&tenant).await.expect_err("wrong key");
        let message = error.to_string();
        assert!(
            matches!(error, EngineError::Vault(VaultError::UnknownKey { .. })),
            "[{label}] {message}"
        );
        assert!(message.contains(right.id()), "[{label}] {message}");
        assert!(message.contains("`TOKEN`"), "[{label}] {message}");
        // Listing needs no key.
        assert_eq!(wrong.list_secrets(&tenant).await.expect("list").len(), 1);
        wrong.database().close().await;

        let engine = open(&database, &keys).await;
        let values = engine.tenant_secrets(&tenant).await.expect("right key");
        assert_eq!(values.get("TOKEN").map(SecretValue::expose), Some("v"));
        finish(engine, database).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_every_data_key_and_the_old_key_can_go() {
    for database in databases().await {
        let label = database.label;
        let dir = tempfile::tempdir().expect("tempdir");
        let old = MasterKey::generate();
        let keys = key_file_with(dir.path(), std::slice::from_ref(&old));
        let Setup {
            engine,
            tenant,
            other_tenant,
        } = setup(&database, &keys).await;
        let names: Vec<String> = (0..7).map(|i| format!("SECRET_{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            engine
                .set_secret(&tenant, name, &secret(&format!("value-{i}")))
                .await
                .expect("set");
        }
        engine
            .set_secret(&other_tenant, "OTHER", &secret("o"))
            .await
            .expect("set");
        let raw = Raw::connect(&database).await;
        let before = raw.read(&tenant, "SECRET_3").await;

        // Nothing to do while the current key is the only one.
        let report = engine.rewrap_secrets(3).await.expect("noop");
        assert_eq!((report.rewrapped, report.remaining), (0, 0), "[{label}]");

        // The running engine picks the new current key up from the file.
        let new = MasterKey::generate();
        write_key_file(&keys, &KeyRing::new(vec![new.clone(), old.clone()])).expect("write");
        let report = engine.rewrap_secrets(3).await.expect("rotate");
        assert_eq!(report.key_id, new.id());
        assert_eq!((report.rewrapped, report.remaining), (8, 0), "[{label}]");
        let after = raw.read(&tenant, "SECRET_3").await;
        assert_eq!(after.key_id, new.id());
        assert_ne!(after.wrapped_key, before.wrapped_key);
        assert_eq!(
            after.ciphertext, before.ciphertext,
            "[{label}] ciphertext untouched"
        );
        assert_eq!(after.nonce, before.nonce);
        // Running it again is harmless.
        let report = engine.rewrap_secrets(3).await.expect("again");
        assert_eq!(report.rewrapped, 0);

        // Drop the old key: everything still reads.
        engine.database().close().await;
        write_key_file(&keys, &KeyRing::new(vec![new.clone()])).expect("write");
        let engine = open(&database, &keys).await;
        let values = engine
            .tenant_secrets(&tenant)
            .await
            .expect("read after rotation");
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                values.get(name).map(SecretValue::expose),
                Some(format!("value-{i}").as_str()),
                "[{label}]"
            );
        }
        let other = engine.tenant_secrets(&other_tenant).await.expect("other");
        assert_eq!(other.get("OTHER").map(SecretValue::expose), Some("o"));
        raw.close().await;
        finish(engine, database).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_old_key_stops_rotation_without_changing_anything() {
    for database in databases().await {
        let label = database.label;
        let dir = tempfile::tempdir().expect("tempdir");
        let old = MasterKey::generate();
        let keys = key_file_with(dir.path(), std::slice::from_ref(&old));
        let Setup { engine, tenant, .. } = setup(&database, &keys).await;
        engine
            .set_secret(&tenant, "A", &secret("a"))
            .await
            .expect("set");
        // The operator replaced the key instead of adding one.
        write_key_file(&keys, &KeyRing::new(vec![MasterKey::generate()])).expect("write");
        let error = engine
            .rewrap_secrets(10)
            .await
            .expect_err("old key missing");
        assert!(error.to_string().contains(old.id()), "[{label}] {error}");
        write_key_file(&keys, &KeyRing::new(vec![old])).expect("write");
        let values = engine.tenant_secrets(&tenant).await.expect("intact");
        assert_eq!(values.get("A").map(SecretValue::expose), Some("a"));
        finish(engine, database).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_at_rest() {
    for database in databases().await {
        let label = database.label;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = key_file_with(dir.path(), &[MasterKey::generate()]);
        let Setup { engine, tenant, .. } = setup(&database, &keys).await;
        let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
        engine
            .set_secret(&tenant, "CANARY", &secret(&canary))
            .await
            .expect("set");
        engine
            .set_secret(&tenant, "CANARY", &secret(&format!("{canary}-2")))
            .await
            .expect("replace");
        assert_eq!(
            engine
                .tenant_secrets(&tenant)
                .await
                .expect("read")
                .get("CANARY")
                .map(SecretValue::expose),
            Some(format!("{canary}-2").as_str())
        );

        let raw = Raw::connect(&database).await;
        let rows = raw.rows_as_text().await;
        assert_eq!(rows.len(), 1, "[{label}]");
        assert!(
            rows[0].contains("CANARY"),
            "[{label}] the name is not secret"
        );
        assert!(
            !rows[0].contains(&canary),
            "[{label}] plaintext in {rows:?}"
        );
        raw.close().await;

        if let Some(file) = database.sqlite_file() {
            // Every byte SQLite wrote: the database, its write-ahead log and shared memory.
            let mut scanned = 0;
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut path = file.as_os_str().to_owned();
                path.push(suffix);
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                scanned += bytes.len();
                assert!(
                    !bytes
                        .windows(canary.len())
                        .any(|window| window == canary.as_bytes()),
                    "[{label}] plaintext found in {}",
                    Path::new(&path).display()
                );
            }
            assert!(scanned > 0, "[{label}] nothing scanned");
        }
        finish(engine, database).await;
    }
}
