//! Integration health end to end, on every backend: real workflow runs call a mock provider
//! answering 200, 500 and 429 through `http.request`; `GET /api/v1/integrations/health`
//! reports exactly what the provider received, by outcome, before and after the counts are
//! written to the database, with the circuit the 500s opened.

mod common;

use common::{TestApp, for_each_backend};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn workflow(uri: &str) -> String {
    format!(
        r#"name: call
steps:
  - id: call
    uses: http.request
    retry: {{ max_attempts: 1 }}
    with: {{ method: GET, url: "{uri}/${{{{ inputs.path }}}}" }}
"#
    )
}

async fn run(app: &TestApp, path: &str) -> Value {
    let run_id = app
        .trigger("call", &json!({ "path": path }).to_string())
        .await;
    app.wait_for_run(&run_id).await
}

async fn received(server: &MockServer, route: &str) -> u64 {
    server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .filter(|request| request.url.path() == route)
        .count() as u64
}

async fn health(app: &TestApp, window: &str) -> Value {
    let body = app
        .expect_json(
            app.get(&format!("/api/v1/integrations/health?window={window}"))
                .await,
            StatusCode::OK,
        )
        .await;
    let integrations = body["integrations"].as_array().expect("integrations");
    assert_eq!(integrations.len(), 1, "[{}] {body:#}", app.backend);
    integrations[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_counts_what_the_provider_received() {
    for_each_backend(|app| async move {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/ok"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"fine": true})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/boom"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/limited"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
            .mount(&server)
            .await;
        app.expect_json(
            app.deploy(&workflow(&server.uri())).await,
            StatusCode::CREATED,
        )
        .await;

        assert_eq!(run(&app, "ok").await["status"], "succeeded");
        // Three attempts per call (the runtime's retries): the second run's fifth transient
        // failure opens the circuit, so its last attempt is refused without a request.
        assert_eq!(run(&app, "boom").await["status"], "failed");
        let refused = run(&app, "boom").await;
        assert_eq!(refused["status"], "failed");
        assert!(
            refused.to_string().contains("circuit is open"),
            "[{}] {refused:#}",
            app.backend
        );
        // Plain `http` has a circuit per host: the 429s go to the same server under another
        // name, past the open circuit.
        let limited_uri = server.uri().replace("127.0.0.1", "localhost");
        app.expect_json(
            app.deploy(&workflow(&limited_uri)).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(run(&app, "limited").await["status"], "failed");

        let ok = received(&server, "/ok").await;
        let boom = received(&server, "/boom").await;
        let limited = received(&server, "/limited").await;
        assert_eq!((ok, boom), (1, 5), "[{}]", app.backend);
        assert!(limited >= 2, "[{}] {limited} 429s", app.backend);
        let requests = ok + boom + limited + 1;

        let check = |http: &Value, window: &str| {
            let what = format!("[{}] {window} {http:#}", app.backend);
            assert_eq!(http["integration"], "http", "{what}");
            assert_eq!(http["circuit"], "open", "{what}");
            let totals = &http["totals"];
            assert_eq!(totals["requests"], requests, "{what}");
            assert_eq!(
                totals["outcomes"],
                json!({
                    "ok": ok,
                    "client_error": 0,
                    "rate_limited": limited,
                    "server_error": boom,
                    "timeout": 0,
                    "connection_error": 0,
                    "circuit_open": 1,
                }),
                "{what}"
            );
            let success = totals["success_rate"].as_f64().expect("success rate");
            assert!(
                (success - ok as f64 / requests as f64).abs() < 1e-9,
                "{what}"
            );
            let errors = totals["error_rate"].as_f64().expect("error rate");
            assert!((errors + success - 1.0).abs() < 1e-9, "{what}");
            let p95 = totals["p95_latency_ms"].as_f64().expect("p95");
            assert!(p95 > 0.0 && p95 <= 10_000.0, "{what}");
            assert_eq!(totals["circuit_opened"], 1, "{what}");
            let points = http["points"].as_array().expect("points");
            assert_eq!(points.len(), if window == "1h" { 60 } else { 96 }, "{what}");
            let summed: u64 = points
                .iter()
                .map(|point| point["requests"].as_u64().expect("requests"))
                .sum();
            assert_eq!(summed, requests, "{what}");
        };
        // This process' counts are reported before they are written, and the same after.
        check(&health(&app, "1h").await, "1h");
        let written = app.engine.flush_integration_health().await.expect("flush");
        assert!(written >= 1, "[{}]", app.backend);
        assert!(app.count_rows("integration_health").await >= 1);
        check(&health(&app, "1h").await, "1h");
        check(&health(&app, "24h").await, "24h");
        app
    })
    .await;
}
