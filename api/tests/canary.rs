//! A canary secret and a canary connection token, used in every input of every kind of action,
//! never reach the process' log (captured at TRACE, `log` records included), the database
//! (the SQLite files byte for byte, WAL included; every row of every Postgres table) or any
//! API answer about the run.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use common::for_each_backend;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Everything the process logged, from the subscriber installed by [`captured_log`].
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) a subscriber that writes every event of every target at TRACE, and
/// `log` records, into a buffer; returns the buffer.
fn captured_log() -> LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let writer = buffer.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            buffer
        })
        .clone()
}

/// Answers with what it received: URL, headers and body, as an echo service would.
struct Echo;

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
                )
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "url": request.url.to_string(),
            "headers": headers,
            "body": String::from_utf8_lossy(&request.body),
        }))
    }
}

fn workflow(mock: &str) -> String {
    format!(
        r#"
name: canary
steps:
  - id: say
    uses: core.log
    with: {{ message: "token=${{{{ secrets.CANARY }}}}", level: info }}
  - id: debug
    uses: core.log
    with: {{ message: {{ token: "${{{{ secrets.CANARY }}}}" }}, level: debug }}
  - id: keep
    uses: core.set
    with:
      value: ${{{{ secrets.CANARY }}}}
      nested: {{ list: ["x ${{{{ secrets.CANARY }}}} y"] }}
  - id: call
    uses: http.request
    with:
      method: POST
      url: "{mock}/echo/${{{{ secrets.CANARY }}}}"
      headers: {{ X-Api-Key: "${{{{ secrets.CANARY }}}}" }}
      query: {{ token: "${{{{ secrets.CANARY }}}}" }}
      json: {{ token: "${{{{ secrets.CANARY }}}}" }}
  - id: authed
    uses: http.request
    connection: canary-connection
    with:
      method: GET
      url: "{mock}/echo"
  - id: refused
    uses: http.request
    retry: {{ max_attempts: 1 }}
    on_error: continue
    with:
      method: GET
      url: "http://127.0.0.1:1/${{{{ secrets.CANARY }}}}"
  - id: boom
    uses: core.fail
    retry: {{ max_attempts: 1 }}
    on_error: continue
    with: {{ message: "bad ${{{{ secrets.CANARY }}}}" }}
  - id: after
    uses: core.log
    needs: [keep, call, authed]
    with:
      message: "${{{{ steps.keep.output.value }}}} ${{{{ steps.call.output.body }}}} ${{{{ steps.authed.output.body }}}}"
  - id: each
    uses: core.set
    for_each: ${{{{ [secrets.CANARY, steps.authed.output.body.headers.authorization] }}}}
    with: {{ value: "${{{{ item }}}}" }}
outputs:
  value: ${{{{ steps.keep.output.value }}}}
  echoed: ${{{{ steps.authed.output.body }}}}
"#
    )
}

/// Every file of a SQLite database (the database, its write-ahead log, shared memory), or
/// every row of every table of a Postgres database, as text.
async fn stored(database_url: &str) -> Vec<(String, String)> {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        let dir = std::path::Path::new(path).parent().expect("database dir");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read file");
            files.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        assert!(files.len() >= 2, "the database and its WAL: {files:?}");
        return files;
    }
    let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&pool)
    .await
    .expect("list tables");
    let mut rows = Vec::new();
    for (schema, table) in tables {
        let texts: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM \"{schema}\".\"{table}\" t"
        )))
        .fetch_all(&pool)
        .await
        .expect("dump table");
        rows.extend(texts.into_iter().map(|(row,)| (table.clone(), row)));
    }
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_are_in_no_log_line_stored_byte_or_api_answer() {
    let log = captured_log();
    for_each_backend(|app| {
        let log = log.clone();
        async move {
            let label = app.backend;
            let mock = MockServer::start().await;
            Mock::given(any()).respond_with(Echo).mount(&mock).await;
            let secret = format!("canary-secret-{}", uuid::Uuid::new_v4().simple());
            let token = format!("canary-token-{}", uuid::Uuid::new_v4().simple());
            let body = json!({"name": "CANARY", "value": secret}).to_string();
            app.expect_json(
                app.post_json("/api/v1/secrets", &body).await,
                StatusCode::CREATED,
            )
            .await;
            let body = json!({
                "name": "canary-connection",
                "integration": "generic",
                "kind": "bearer",
                "token": token,
            })
            .to_string();
            app.expect_json(
                app.post_json("/api/v1/connections", &body).await,
                StatusCode::CREATED,
            )
            .await;
            let deployed = app.deploy(&workflow(&mock.uri())).await;
            assert!(deployed.status().is_success(), "[{label}] deploy");
            let run_id = app.trigger("canary", "{}").await;
            let run = app.wait_for_run(&run_id).await;
            assert_eq!(run["status"], "succeeded", "[{label}] {run:#}");

            // The canaries did reach the echo service, so they went through every layer.
            let received = mock.received_requests().await.expect("recorded");
            let sent: String = received
                .iter()
                .map(|request| format!("{} {:?}", request.url, request.headers))
                .collect();
            assert!(sent.contains(&secret) && sent.contains(&token), "[{label}]");
            // What the steps read was true: the item list held both canaries.
            assert_eq!(
                run["steps"]
                    .as_array()
                    .and_then(|steps| steps.iter().find(|step| step["id"] == "each"))
                    .map(|step| step["output"].clone()),
                Some(json!([{"value": "***"}, {"value": "Bearer ***"}])),
                "[{label}]"
            );

            let mut answers = Vec::new();
            for path in [
                format!("/api/v1/runs/{run_id}"),
                "/api/v1/runs".to_owned(),
                "/api/v1/workflows".to_owned(),
                "/api/v1/workflows/canary".to_owned(),
                "/api/v1/secrets".to_owned(),
                "/api/v1/connections".to_owned(),
                "/api/v1/connections/canary-connection".to_owned(),
                "/api/v1/integrations/health".to_owned(),
                "/metrics".to_owned(),
            ] {
                let response = app.get(&path).await;
                let status = response.status();
                let text = response.text().await.expect("body");
                assert!(status.is_success(), "[{label}] GET {path}: {status} {text}");
                answers.push((path, text));
            }
            for (path, text) in &answers {
                for canary in [&secret, &token] {
                    assert!(
                        !text.contains(canary.as_str()),
                        "[{label}] GET {path}: {text}"
                    );
                }
            }
            for (place, text) in stored(app.database_url()).await {
                for canary in [&secret, &token] {
                    assert!(
                        !text.contains(canary.as_str()),
                        "[{label}] stored in {place}"
                    );
                }
            }
            let logged =
                String::from_utf8_lossy(&log.0.lock().unwrap_or_else(PoisonError::into_inner))
                    .into_owned();
            assert!(
                logged.contains(&format!("run_id=\"{run_id}\"")),
                "[{label}] the run's core.log lines are captured"
            );
            for canary in [&secret, &token] {
                if let Some(at) = logged.find(canary.as_str()) {
                    let line_start = logged[..at].rfind('\n').map_or(0, |n| n + 1);
                    let line_end = logged[at..].find('\n').map_or(logged.len(), |n| at + n);
                    panic!("[{label}] logged: {}", &logged[line_start..line_end]);
                }
            }
            app
        }
    })
    .await;
}
