//! A step reads and opens each connection it uses once, however many calls it makes, and
//! decrypts only the secrets its templates read (ARCHITECTURE.md, "Connections"), on every
//! backend. Counted from outside the code under test: the statements the database driver
//! reports (`sqlx::query` events) and the data keys the vault unwraps. This binary holds one
//! test, so the counts are that test's alone.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use common::{Harness, databases};
use serde_json::json;
use stepwise_engine::vault::{
    DataKey, KeyError, KeyProvider, KeyRing, LocalKeyProvider, MasterKey, WrappedKey,
};
use stepwise_engine::{RunStatus, RuntimeOptions};
use stepwise_integrations::SecretValue;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Counts the data keys unwrapped: one per envelope opened.
struct CountingKeys {
    keys: LocalKeyProvider,
    unwrapped: Arc<AtomicUsize>,
}

#[async_trait]
impl KeyProvider for CountingKeys {
    async fn current_key_id(&self) -> Result<String, KeyError> {
        self.keys.current_key_id().await
    }

    async fn wrap(&self, data_key: &DataKey, aad: &[u8]) -> Result<WrappedKey, KeyError> {
        self.keys.wrap(data_key, aad).await
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey, KeyError> {
        self.unwrapped.fetch_add(1, Ordering::SeqCst);
        self.keys.unwrap(wrapped, aad).await
    }
}

/// Counts the statements that read the `connections` table.
#[derive(Clone, Default)]
struct ConnectionReads(Arc<Mutex<usize>>);

impl ConnectionReads {
    fn count(&self) -> usize {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: tracing::Subscriber> Layer<S> for ConnectionReads {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        #[derive(Default)]
        struct Sql(String);
        impl Visit for Sql {
            fn record_str(&mut self, field: &Field, value: &str) {
                if matches!(field.name(), "summary" | "db.statement") {
                    self.0.push_str(value);
                    self.0.push(' ');
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        let mut sql = Sql::default();
        event.record(&mut sql);
        if sql.0.starts_with("SELECT") && sql.0.contains(r#"FROM "connections""#) {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }
    }
}

#[tokio::test]
async fn a_step_reads_its_connection_once_and_decrypts_only_the_secrets_it_reads() {
    let reads = ConnectionReads::default();
    tracing::subscriber::set_global_default(Registry::default().with(reads.clone()))
        .expect("the only subscriber of this test binary");
    for database in databases().await {
        let unwrapped = Arc::new(AtomicUsize::new(0));
        let keys = CountingKeys {
            keys: LocalKeyProvider::new(KeyRing::new(vec![MasterKey::generate()])),
            unwrapped: unwrapped.clone(),
        };
        let h = Harness::start_with_keys(&database, options(), keys).await;
        let server = MockServer::start().await;
        // Two pages of issues: the `list` step makes two calls on its connection.
        Mock::given(method("GET"))
            .and(path("/repos/acme/app/issues"))
            .and(query_param("page", "2"))
            .and(header("authorization", "Bearer gh-token-5b1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/repos/acme/app/issues"))
            .and(header("authorization", "Bearer gh-token-5b1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!([]))
                    .append_header(
                        "link",
                        format!(
                            "<{}/repos/acme/app/issues?page=2>; rel=\"next\"",
                            server.uri()
                        ),
                    ),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/plain"))
            .and(header("x-token", "key-9c4"))
            .and(header("x-extra", "used-secret-3e8"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .expect(1)
            .mount(&server)
            .await;
        let engine = &h.engine;
        let tenant = &h.tenant_id;
        engine
            .create_oauth_app(
                tenant,
                serde_json::from_value(json!({
                    "integration": "github", "client_id": "client-1",
                    "client_secret": "app-secret-81d", "base_url": server.uri(),
                }))
                .expect("app"),
            )
            .await
            .expect("create app");
        for connection in [
            json!({"name": "gh", "integration": "github", "kind": "bearer", "token": "gh-token-5b1"}),
            json!({"name": "key", "integration": "generic", "kind": "api_key", "api_key": "key-9c4", "api_key_header": "X-Token"}),
        ] {
            engine
                .create_connection(tenant, serde_json::from_value(connection).expect("new"))
                .await
                .expect("create connection");
        }
        for (name, value) in [("USED", "used-secret-3e8"), ("UNUSED", "unused-secret-0a7")] {
            engine
                .set_secret(tenant, name, &SecretValue::new(value))
                .await
                .expect("secret");
        }
        h.deploy(&format!(
            r#"name: reads
steps:
  - id: list
    uses: github.list_issues
    connection: gh
    with:
      owner: acme
      repo: app
  - id: plain
    uses: http.request
    with:
      url: {uri}/plain
      connection: key
      headers:
        X-Extra: ${{{{ secrets.USED }}}}
"#,
            uri = server.uri()
        ))
        .await;
        let (reads_before, unwrapped_before) = (reads.count(), unwrapped.load(Ordering::SeqCst));
        let run_id = h.start_run("reads", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.summary.status,
            RunStatus::Succeeded,
            "[{}] {run:#?}",
            h.label
        );
        assert_eq!(
            reads.count() - reads_before,
            2,
            "[{}] one read of the connection per step",
            h.label
        );
        assert_eq!(
            unwrapped.load(Ordering::SeqCst) - unwrapped_before,
            3,
            "[{}] one decryption per step's connection, and the one secret a template reads",
            h.label
        );
        h.stop().await;
        server.verify().await;
    }
}

fn options() -> RuntimeOptions {
    RuntimeOptions {
        concurrency: 8,
        poll_interval: Duration::from_millis(100),
        ..RuntimeOptions::default()
    }
}
