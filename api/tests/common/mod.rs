//! Black-box test harness: each test gets its own server on a random port, backed by a fresh
//! database, and runs once per backend (SQLite always; Postgres when reachable, or CI=true).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod binary;

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use stepwise_api::config::AppConfig;
use stepwise_api::startup::Application;
use stepwise_engine::Engine;
use stepwise_engine::vault::MasterKey;
use stepwise_integrations::SecretValue;

/// Admin database used to create one fresh database per test.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub const HELLO: &str = r#"name: hello
steps:
  - id: greet
    uses: core.set
    with:
      greeting: "Hello, ${{ inputs.name }}"
  - id: log
    uses: core.log
    with:
      message: ${{ steps.greet.output.greeting }}
outputs:
  greeting: ${{ steps.greet.output.greeting }}
"#;

pub const NAPPER: &str = r#"name: napper
steps:
  - id: nap
    uses: core.sleep
    with:
      duration: 1h
"#;

/// A fresh, empty database; a SQLite file lives as long as this value.
pub struct TestDatabase {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// Admin URL and name of a Postgres database to drop after the test.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// Drops a Postgres test database so repeated runs do not pile them up.
    pub async fn drop_database(&self) {
        let Some((admin, name)) = &self.postgres else {
            return;
        };
        let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin)
            .await
        else {
            return;
        };
        let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
        {
            eprintln!("could not drop test database {name}: {error}");
        }
        pool.close().await;
    }
}

pub struct TestApp {
    pub address: String,
    /// Key of the tenant the test acts as.
    pub api_key: String,
    pub client: reqwest::Client,
    pub engine: Engine,
    pub backend: &'static str,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _database: TestDatabase,
}

/// Runs `test` once per available backend, each time on a fresh app.
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = TestApp>,
{
    for database in databases().await {
        let app = spawn_app(database).await;
        let app = test(app).await;
        app.stop().await;
    }
}

pub async fn databases() -> Vec<TestDatabase> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut databases = vec![TestDatabase {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
        backend: "sqlite",
        _dir: Some(dir),
        postgres: None,
    }];
    if let Some((url, admin, name)) = fresh_postgres().await {
        databases.push(TestDatabase {
            url,
            backend: "postgres",
            _dir: None,
            postgres: Some((admin, name)),
        });
    }
    databases
}

/// A new database on the test server: its URL, the admin URL and its name.
async fn fresh_postgres() -> Option<(String, String, String)> {
    let admin = std::env::var("STEPWISE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let pool = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&admin)
        .await
    {
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
        .expect("create the test database");
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    Some((format!("{base}/{name}"), admin.clone(), name))
}

pub async fn spawn_app(database: TestDatabase) -> TestApp {
    let mut config = AppConfig::local(database.url.clone());
    // Postgres has no embedded default key; every test app gets its own.
    config.master_key.keys = Some(SecretValue::new(MasterKey::generate().to_base64().as_str()));
    let app = Application::build(&config)
        .await
        .unwrap_or_else(|error| panic!("[{}] start the app: {error}", database.backend));
    let address = format!("http://127.0.0.1:{}", app.port());
    let engine = app.engine().clone();
    let (_, api_key) = engine.create_tenant("test").await.expect("create tenant");
    let handle = app.server_handle();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        api_key,
        client: reqwest::Client::new(),
        engine,
        backend: database.backend,
        handle,
        server,
        _database: database,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The URL of the app's database.
    pub fn database_url(&self) -> &str {
        &self._database.url
    }

    /// `SELECT COUNT(*) FROM {table}`, straight from the database (for "nothing was stored").
    pub async fn count_rows(&self, table: &str) -> i64 {
        let statement = format!("SELECT COUNT(*) FROM {table}");
        let url = &self._database.url;
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url)
                .await
                .expect("connect sqlite");
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            count
        } else {
            let pool = sqlx::PgPool::connect(url).await.expect("connect postgres");
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            count
        }
    }

    /// Stops the server and the workers, then drops the database.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
        self.engine.database().close().await;
        self._database.drop_database().await;
    }

    /// `GET` with this app's key.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("send")
    }

    /// `DELETE` with this app's key.
    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("send")
    }

    /// `POST` of a JSON body (raw text, so tests can send broken JSON) with this app's key.
    pub async fn post_json(&self, path: &str, body: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("send")
    }

    pub async fn deploy(&self, source: &str) -> Response {
        self.client
            .post(self.url("/api/v1/workflows"))
            .bearer_auth(&self.api_key)
            .header("content-type", "application/yaml")
            .body(source.to_owned())
            .send()
            .await
            .expect("send")
    }

    /// Starts a run and returns its id.
    pub async fn trigger(&self, workflow: &str, input: &str) -> String {
        let response = self
            .post_json(&format!("/api/v1/workflows/{workflow}/runs"), input)
            .await;
        let body = self.expect_json(response, StatusCode::ACCEPTED).await;
        body["run_id"].as_str().expect("run_id").to_owned()
    }

    /// Polls the run until it reaches a terminal status and returns it.
    pub async fn wait_for_run(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = self
                .expect_json(
                    self.get(&format!("/api/v1/runs/{run_id}")).await,
                    StatusCode::OK,
                )
                .await;
            if run["status"] != "running" {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] run {run_id} did not finish: {run:#}",
                self.backend
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts the status and returns the JSON body.
    pub async fn expect_json(&self, response: Response, status: StatusCode) -> Value {
        let actual = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        assert_eq!(
            actual, status,
            "[{}] unexpected status; body: {text}",
            self.backend
        );
        assert!(
            content_type.starts_with("application/json"),
            "[{}] not JSON ({content_type}): {text}",
            self.backend
        );
        serde_json::from_str(&text).expect("JSON body")
    }

    /// Asserts a JSON error with this status and code; returns the body.
    pub async fn expect_error(&self, response: Response, status: StatusCode, code: &str) -> Value {
        let body = self.expect_json(response, status).await;
        assert_eq!(body["error"]["code"], code, "[{}] {body:#}", self.backend);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "[{}] error without message: {body:#}",
            self.backend
        );
        body
    }
}
