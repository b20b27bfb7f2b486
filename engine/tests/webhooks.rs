//! Webhook sources in the engine, on every backend: signing secrets survive a master key
//! rotation (current and rotated-out envelopes), and the rejection log keeps the last 100.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{databases, services};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use stepwise_engine::retention::Retention;
use stepwise_engine::vault::{KeyRing, LocalKeyProvider, MasterKey, write_key_file};
use stepwise_engine::{Engine, IngestError, SourceInfo, Tenant};
use stepwise_integrations::webhooks::WebhookScheme;
use stepwise_integrations::{Registry, SecretValue};

async fn open(url: &str, key_file: &std::path::Path) -> Engine {
    let keys = Arc::new(LocalKeyProvider::key_file(key_file).expect("key file"));
    Engine::open_with_keys(url, Arc::new(Registry::builtin()), services(), keys)
        .await
        .expect("open engine")
}

/// An engine on `database` whose master key file holds `master`, with tenant `acme` and its
/// GitHub webhook source `gh` signed with `secret`.
struct Setup {
    engine: Engine,
    tenant: Tenant,
    source: SourceInfo,
    /// The master key file (in a directory removed on drop).
    keys: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(database: &common::TestDatabase, master: MasterKey, secret: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("stepwise.key");
    write_key_file(&keys, &KeyRing::new(vec![master])).expect("write");
    let engine = open(&database.url, &keys).await;
    let (tenant, _) = engine.create_tenant("acme").await.expect("tenant");
    let source = engine
        .create_source(
            &tenant.id,
            "gh",
            &WebhookScheme::Github,
            &SecretValue::new(secret),
        )
        .await
        .expect("source");
    Setup {
        engine,
        tenant,
        source,
        keys,
        _dir: dir,
    }
}

fn github_headers(secret: &str, body: &[u8], delivery: &str) -> HeaderMap {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).unwrap(),
    );
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    headers.insert(
        "x-github-delivery",
        HeaderValue::from_str(delivery).unwrap(),
    );
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_secrets_survive_a_master_key_rotation() {
    for database in databases().await {
        let label = database.label;
        let old = MasterKey::generate();
        let Setup {
            engine,
            tenant,
            source,
            keys,
            _dir,
        } = setup(&database, old.clone(), "one").await;
        engine
            .rotate_source_secret(
                &tenant.id,
                "gh",
                &SecretValue::new("two"),
                Some(Duration::from_secs(3600)),
            )
            .await
            .expect("rotate");

        let new = MasterKey::generate();
        write_key_file(&keys, &KeyRing::new(vec![new.clone(), old.clone()])).expect("write");
        let report = engine.rewrap_secrets(10).await.expect("rewrap");
        assert_eq!((report.rewrapped, report.remaining), (2, 0), "[{label}]");
        engine.database().close().await;

        write_key_file(&keys, &KeyRing::new(vec![new])).expect("write");
        let engine = open(&database.url, &keys).await;
        for (secret, delivery) in [("one", "d-1"), ("two", "d-2")] {
            let body = br#"{"x":1}"#;
            let ingested = engine
                .ingest(
                    "github",
                    &source.id,
                    &github_headers(secret, body, delivery),
                    body,
                )
                .await
                .unwrap_or_else(|error| panic!("[{label}] {secret}: {error}"));
            assert_eq!(ingested.delivery_id.as_deref(), Some(delivery));
        }
        engine.database().close().await;
        database.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rejection_log_keeps_the_last_hundred() {
    for database in databases().await {
        let label = database.label;
        let Setup {
            engine,
            tenant,
            source,
            keys: _,
            _dir,
        } = setup(&database, MasterKey::generate(), "s").await;
        for i in 0..105 {
            let headers = github_headers("wrong", b"{}", &format!("d-{i}"));
            let error = engine
                .ingest("github", &source.id, &headers, b"{}")
                .await
                .expect_err("refused");
            assert!(
                matches!(error, IngestError::Rejected(_)),
                "[{label}] {error}"
            );
        }
        let log = engine
            .recent_rejections(&tenant.id, "gh")
            .await
            .expect("log");
        assert_eq!(log.len(), 100, "[{label}]");
        assert_eq!(log[0].headers["x-github-delivery"], "d-104");
        assert_eq!(log[99].headers["x-github-delivery"], "d-5");
        assert!(log.iter().all(|item| item.code == "signature_mismatch"));
        engine.database().close().await;
        database.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_deliveries_are_kept_for_the_retention_then_pruned() {
    for database in databases().await {
        let label = database.label;
        let Setup {
            engine,
            tenant: _,
            source,
            keys: _,
            _dir,
        } = setup(&database, MasterKey::generate(), "s").await;
        let deliver = |id: &'static str| {
            let engine = engine.clone();
            let source_id = source.id.clone();
            async move {
                let headers = github_headers("s", b"{}", id);
                engine
                    .ingest("github", &source_id, &headers, b"{}")
                    .await
                    .expect("accepted")
            }
        };
        assert!(!deliver("d-1").await.duplicate, "[{label}]");
        assert!(!deliver("d-2").await.duplicate, "[{label}]");

        let retention = Retention::default();
        let now = chrono::Utc::now().timestamp_millis();
        let day = 24 * 3600 * 1000;
        // Within the retention nothing goes, and a redelivery is still a duplicate.
        let pruned = engine
            .prune_history(now + 6 * day, &retention)
            .await
            .expect("prune");
        assert_eq!(pruned.deliveries, 0, "[{label}]");
        assert!(deliver("d-1").await.duplicate, "[{label}]");
        // Past it both rows go; the same id is then a new delivery.
        let pruned = engine
            .prune_history(now + 8 * day, &retention)
            .await
            .expect("prune");
        assert_eq!(pruned.deliveries, 2, "[{label}]");
        assert!(!deliver("d-1").await.duplicate, "[{label}]");
        engine.database().close().await;
        database.drop().await;
    }
}

/// Deliveries read their source and the subscribed workflows from a short-lived cache: what
/// changes through the same engine is seen by the next delivery; what another process changes
/// is seen within a second or so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_see_source_and_workflow_changes() {
    const ON_PUSH: &str = "name: on-push\non:\n  webhook: { source: gh }\nsteps:\n  - { id: a, uses: core.log, with: { message: hi } }\n";
    const ALSO_ON_PUSH: &str = "name: also-on-push\non:\n  webhook: { source: gh }\nsteps:\n  - { id: a, uses: core.log, with: { message: hi } }\n";
    const NO_LONGER: &str = "name: on-push\non:\n  manual: {}\nsteps:\n  - { id: a, uses: core.log, with: { message: hi } }\n";
    for database in databases().await {
        let label = database.label;
        let Setup {
            engine,
            tenant,
            source,
            keys,
            _dir,
        } = setup(&database, MasterKey::generate(), "one").await;
        let other_process = open(&database.url, &keys).await;
        let body = br#"{"x":1}"#;
        let deliver = |engine: &Engine, secret: &str, delivery: &str| {
            let headers = github_headers(secret, body, delivery);
            let (engine, id) = (engine.clone(), source.id.clone());
            async move { engine.ingest("github", &id, &headers, body).await }
        };
        let deploy = |engine: &Engine, yaml: &'static str| {
            let (engine, tenant) = (engine.clone(), tenant.id.clone());
            async move {
                engine
                    .deploy(&tenant, "w.yaml", yaml)
                    .await
                    .expect("deploy")
            }
        };

        deploy(&engine, ON_PUSH).await;
        let first = deliver(&engine, "one", "d-1").await.expect("d-1");
        assert_eq!(first.run_ids.len(), 1, "[{label}]");
        // A deploy through this engine: the next delivery starts the new subscriber too.
        deploy(&engine, ALSO_ON_PUSH).await;
        let second = deliver(&engine, "one", "d-2").await.expect("d-2");
        assert_eq!(second.run_ids.len(), 2, "[{label}]");
        // A rotation without overlap through this engine: the old secret stops at once.
        engine
            .rotate_source_secret(&tenant.id, "gh", &SecretValue::new("two"), None)
            .await
            .expect("rotate");
        assert!(
            matches!(
                deliver(&engine, "one", "d-3").await,
                Err(IngestError::Rejected(_))
            ),
            "[{label}]"
        );

        // Another process: warm its cache, then change things through the first engine.
        let warm = deliver(&other_process, "two", "d-4").await.expect("d-4");
        assert_eq!(warm.run_ids.len(), 2, "[{label}]");
        deploy(&engine, NO_LONGER).await;
        engine
            .rotate_source_secret(&tenant.id, "gh", &SecretValue::new("three"), None)
            .await
            .expect("rotate");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let outcome = deliver(
                &other_process,
                "three",
                &format!("d-{}", uuid::Uuid::new_v4()),
            )
            .await;
            match outcome {
                Ok(ingested) if ingested.run_ids.len() == 1 => break,
                _ if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("[{label}] the other process never saw the changes: {other:?}"),
            }
        }

        // Deleted through this engine: unknown at once.
        engine
            .delete_source(&tenant.id, "gh")
            .await
            .expect("delete");
        assert!(
            matches!(
                deliver(&engine, "three", "d-5").await,
                Err(IngestError::UnknownSource)
            ),
            "[{label}]"
        );
        other_process.database().close().await;
        engine.database().close().await;
        database.drop().await;
    }
}
