//! `GET /api/openapi.json`, black-box, on every backend: the document is served, and real
//! responses of the routes validate against the schemas it documents for them.

mod common;

use std::time::Duration;

use common::{HELLO, NAPPER, TestApp, for_each_backend};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use stepwise_integrations::runtime::metrics::Outcome;

const GITHUB_SECRET: &str = "gh-openapi-secret";

/// Started by GitHub `push` deliveries to the source `gh`.
const ON_PUSH: &str = r#"name: on-push
on:
  webhook: { source: gh, events: [push] }
steps:
  - id: read
    uses: core.set
    with:
      x: ${{ trigger.body.x }}
"#;

const HOURLY: &str = r#"name: hourly
on:
  cron:
    - schedule: "0 * * * *"
steps:
  - id: log
    uses: core.log
    with:
      message: tick
"#;

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("send");
    app.expect_json(response, StatusCode::OK).await
}

/// The documented JSON schema of one response, as a standalone JSON Schema 2020-12 document
/// (the OpenAPI components moved to `$defs`).
fn response_schema(document: &Value, method: &str, path: &str, status: StatusCode) -> Value {
    let response = &document["paths"][path][method]["responses"][status.as_str()];
    let schema = response["content"]["application/json"]["schema"].clone();
    assert!(
        !schema.is_null(),
        "{method} {path} documents no JSON body for {status}: {response:#}"
    );
    let standalone = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": document["components"]["schemas"],
        "allOf": [schema],
    });
    let text = standalone
        .to_string()
        .replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).expect("schema JSON")
}

/// Sends `response`'s body through the schema `document` gives it; returns the body.
async fn check(
    app: &TestApp,
    document: &Value,
    (method, path): (&str, &str),
    response: Response,
    status: StatusCode,
) -> Value {
    let body = app.expect_json(response, status).await;
    let schema = response_schema(document, method, path, status);
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|error| panic!("{method} {path}: invalid schema: {error}"));
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "[{}] {method} {path} {status}: the response does not match its documented schema:\n{}\nbody: {body:#}",
        app.backend,
        errors.join("\n")
    );
    body
}

/// One request of a table: method, path, JSON body (POST only; empty for none), the
/// documented path it is an operation of, and the expected status.
type Case<'a> = (&'a str, String, &'a str, &'a str, StatusCode);

/// Sends every case in order and checks its response against the document; returns the
/// bodies in the same order.
async fn check_cases(app: &TestApp, document: &Value, cases: Vec<Case<'_>>) -> Vec<Value> {
    let mut bodies = Vec::new();
    for (method, path, body, documented, status) in cases {
        let response = match method {
            "get" => app.get(&path).await,
            "post" => app.post_json(&path, body).await,
            "delete" => app.delete(&path).await,
            other => panic!("no such method in the table: {other}"),
        };
        bodies.push(check(app, document, (method, documented), response, status).await);
    }
    bodies
}

fn github_signature(body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(GITHUB_SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_without_a_key() {
    for_each_backend(|app| async move {
        let document = document(&app).await;
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            document["openapi"]
        );
        for path in [
            "/api/v1/workflows",
            "/api/v1/runs/{id}",
            "/webhooks/{provider}/{source}",
            "/api/openapi.json",
        ] {
            assert!(document["paths"].get(path).is_some(), "{path} is missing");
        }
        let list_runs = &document["paths"]["/api/v1/runs"]["get"];
        let parameters: Vec<&str> = list_runs["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        for name in [
            "workflow", "status", "trigger", "from", "to", "cursor", "limit",
        ] {
            assert!(parameters.contains(&name), "{name} missing: {parameters:?}");
        }
        // The webhook route's `provider` is one of the schemes, listed from the code.
        let ingest = &document["paths"]["/webhooks/{provider}/{source}"]["post"]["parameters"];
        let provider = ingest
            .as_array()
            .expect("parameters")
            .iter()
            .find(|parameter| parameter["name"] == "provider")
            .expect("provider parameter");
        assert_eq!(
            provider["schema"]["enum"],
            serde_json::json!(stepwise_integrations::webhooks::WebhookScheme::NAMES),
            "{provider:#}"
        );
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_their_documented_schemas() {
    for_each_backend(|app| async move {
        let doc = document(&app).await;
        let doc = &doc;

        let health = app.client.get(app.url("/healthz")).send().await.expect("send");
        check(&app, doc, ("get", "/healthz"), health, StatusCode::OK).await;

        // Workflows.
        let deployed = app.deploy(HELLO).await;
        check(&app, doc, ("post", "/api/v1/workflows"), deployed, StatusCode::CREATED).await;
        let changed = app.deploy(&HELLO.replace("Hello,", "Hi,")).await;
        check(&app, doc, ("post", "/api/v1/workflows"), changed, StatusCode::CREATED).await;
        for source in [NAPPER, ON_PUSH, HOURLY] {
            app.expect_json(app.deploy(source).await, StatusCode::CREATED)
                .await;
        }
        let invalid = app.deploy("name: broken\nsteps: 3\n").await;
        let invalid = check(
            &app,
            doc,
            ("post", "/api/v1/workflows"),
            invalid,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(invalid["error"]["diagnostics"].is_array(), "{invalid:#}");
        let bodies = check_cases(
            &app,
            doc,
            vec![
                ("get", "/ui/session".into(), "", "/ui/session", StatusCode::OK),
                ("get", "/api/v1/workflows".into(), "", "/api/v1/workflows", StatusCode::OK),
                ("get", "/api/v1/workflows/hello".into(), "", "/api/v1/workflows/{name}", StatusCode::OK),
                ("get", "/api/v1/workflows/nope".into(), "", "/api/v1/workflows/{name}", StatusCode::NOT_FOUND),
                ("get", "/api/v1/workflows/hello/diff".into(), "", "/api/v1/workflows/{name}/diff", StatusCode::OK),
                ("get", "/api/v1/workflows/hourly/schedules".into(), "", "/api/v1/workflows/{name}/schedules", StatusCode::OK),
                ("get", "/api/v1/providers".into(), "", "/api/v1/providers", StatusCode::OK),
            ],
        )
        .await;
        assert_eq!(bodies[5]["items"].as_array().map(Vec::len), Some(1));
        let providers: Vec<&str> = bodies[6]["providers"]
            .as_array()
            .expect("providers")
            .iter()
            .filter_map(|provider| provider["name"].as_str())
            .collect();
        assert_eq!(
            providers,
            stepwise_integrations::providers::provider_names().collect::<Vec<_>>()
        );

        // Runs.
        let triggered = app
            .post_json("/api/v1/workflows/hello/runs", r#"{"name": "Ada"}"#)
            .await;
        let triggered = check(
            &app,
            doc,
            ("post", "/api/v1/workflows/{name}/runs"),
            triggered,
            StatusCode::ACCEPTED,
        )
        .await;
        let run_id = triggered["run_id"].as_str().expect("run_id").to_owned();
        app.wait_for_run(&run_id).await;
        let bodies = check_cases(
            &app,
            doc,
            vec![
                ("get", format!("/api/v1/runs/{run_id}"), "", "/api/v1/runs/{id}", StatusCode::OK),
                ("get", "/api/v1/runs?limit=1".into(), "", "/api/v1/runs", StatusCode::OK),
                ("get", "/api/v1/runs?status=sleepy".into(), "", "/api/v1/runs", StatusCode::BAD_REQUEST),
                ("post", format!("/api/v1/runs/{run_id}/rerun"), "", "/api/v1/runs/{id}/rerun", StatusCode::ACCEPTED),
                // A run that succeeded has nothing to retry.
                ("post", format!("/api/v1/runs/{run_id}/retry"), "", "/api/v1/runs/{id}/retry", StatusCode::CONFLICT),
            ],
        )
        .await;
        assert_eq!(bodies[0]["status"], "succeeded", "{:#}", bodies[0]);
        assert_eq!(bodies[1]["items"].as_array().map(Vec::len), Some(1), "{:#}", bodies[1]);
        let napping = app.trigger("napper", "{}").await;
        let cancel = app
            .post_json(&format!("/api/v1/runs/{napping}/cancel"), "")
            .await;
        check(
            &app,
            doc,
            ("post", "/api/v1/runs/{id}/cancel"),
            cancel,
            StatusCode::OK,
        )
        .await;
        let napped = app.get(&format!("/api/v1/runs/{napping}")).await;
        check(&app, doc, ("get", "/api/v1/runs/{id}"), napped, StatusCode::OK).await;

        // Secrets.
        check_cases(
            &app,
            doc,
            vec![
                ("post", "/api/v1/secrets".into(), r#"{"name": "API_TOKEN", "value": "s3cr3t"}"#, "/api/v1/secrets", StatusCode::CREATED),
                ("get", "/api/v1/secrets".into(), "", "/api/v1/secrets", StatusCode::OK),
                ("post", "/api/v1/secrets".into(), r#"{"name": "lower", "value": "x"}"#, "/api/v1/secrets", StatusCode::BAD_REQUEST),
            ],
        )
        .await;

        // Sources and a delivery.
        let body = json!({"name": "gh", "provider": "github", "secret": GITHUB_SECRET});
        let source = app.post_json("/api/v1/sources", &body.to_string()).await;
        let source =
            check(&app, doc, ("post", "/api/v1/sources"), source, StatusCode::CREATED).await;
        let generic = json!({
            "name": "custom", "provider": "generic", "secret": "x",
            "generic": {"header": "X-Signature", "algorithm": "sha256", "encoding": "hex"}
        });
        let generic = app.post_json("/api/v1/sources", &generic.to_string()).await;
        check(&app, doc, ("post", "/api/v1/sources"), generic, StatusCode::CREATED).await;
        let sources = app.get("/api/v1/sources").await;
        check(&app, doc, ("get", "/api/v1/sources"), sources, StatusCode::OK).await;
        let url = source["url"].as_str().expect("url");
        let delivery = json!({"x": 1}).to_string();
        let accepted = app
            .client
            .post(app.url(url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "openapi-1")
            .header("x-hub-signature-256", github_signature(&delivery))
            .body(delivery.clone())
            .send()
            .await
            .expect("send");
        let accepted = check(
            &app,
            doc,
            ("post", "/webhooks/{provider}/{source}"),
            accepted,
            StatusCode::OK,
        )
        .await;
        assert_eq!(accepted["run_ids"].as_array().map(Vec::len), Some(1));
        let redelivered = app
            .client
            .post(app.url(url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "openapi-1")
            .header("x-hub-signature-256", github_signature(&delivery))
            .body(delivery.clone())
            .send()
            .await
            .expect("send");
        let redelivered = app.expect_json(redelivered, StatusCode::OK).await;
        assert_eq!(redelivered["duplicate"], true);
        let deliveries = app.get("/api/v1/sources/gh/deliveries?limit=5").await;
        let deliveries = check(
            &app,
            doc,
            ("get", "/api/v1/sources/{name}/deliveries"),
            deliveries,
            StatusCode::OK,
        )
        .await;
        let listed = &deliveries["items"][0];
        assert_eq!(listed["delivery_id"], "openapi-1", "{deliveries:#}");
        assert_eq!(listed["event_type"], "push");
        assert_eq!(listed["run_ids"], accepted["run_ids"]);
        assert_eq!(listed["duplicates"], 1);
        assert!(listed["last_duplicate_at"].is_i64());
        assert!(deliveries["next_cursor"].is_null());
        let forged = app
            .client
            .post(app.url(url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-hub-signature-256", "sha256=00")
            .body(delivery)
            .send()
            .await
            .expect("send");
        check(
            &app,
            doc,
            ("post", "/webhooks/{provider}/{source}"),
            forged,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        check_cases(
            &app,
            doc,
            vec![
                ("get", "/api/v1/sources/gh/rejections".into(), "", "/api/v1/sources/{name}/rejections", StatusCode::OK),
                ("post", "/api/v1/sources/gh/secret".into(), r#"{"secret": "next", "previous_valid_for": "1h"}"#, "/api/v1/sources/{name}/secret", StatusCode::OK),
            ],
        )
        .await;

        // Integration health, with calls of every kind counted.
        let tenant = app.engine.tenant("test").await.expect("read").expect("tenant");
        let recorder = app.engine.health_recorder();
        let now = chrono::Utc::now();
        for (outcome, latency) in [
            (Outcome::Success, Some(Duration::from_millis(30))),
            (Outcome::ServerError, Some(Duration::from_millis(300))),
            (Outcome::CircuitOpen, None),
        ] {
            recorder.request(&tenant.id, "slack", now, outcome, latency);
        }
        recorder.rate_limit_wait(&tenant.id, "slack", now, Duration::from_millis(800));
        recorder.token_refresh(&tenant.id, "slack", now, true);
        for window in ["1h", "24h"] {
            let health = app
                .get(&format!("/api/v1/integrations/health?window={window}"))
                .await;
            let body = check(
                &app,
                doc,
                ("get", "/api/v1/integrations/health"),
                health,
                StatusCode::OK,
            )
            .await;
            assert_eq!(body["integrations"][0]["totals"]["requests"], 3, "{window}");
        }
        let unknown = app.get("/api/v1/integrations/health?window=7d").await;
        check(
            &app,
            doc,
            ("get", "/api/v1/integrations/health"),
            unknown,
            StatusCode::BAD_REQUEST,
        )
        .await;

        // OAuth apps and connections.
        let github_app = r#"{"integration": "github", "client_id": "id", "client_secret": "secret", "scopes": ["repo"]}"#;
        let oauth_connection =
            json!({"name": "gh-oauth", "integration": "github", "kind": "oauth2"}).to_string();
        let basic_connection = json!({"name": "api", "integration": "generic", "kind": "basic", "username": "u", "password": "p"}).to_string();
        let bodies = check_cases(
            &app,
            doc,
            vec![
                ("post", "/api/v1/oauth-apps".into(), github_app, "/api/v1/oauth-apps", StatusCode::CREATED),
                ("get", "/api/v1/oauth-apps".into(), "", "/api/v1/oauth-apps", StatusCode::OK),
                ("get", "/api/v1/oauth-apps/github".into(), "", "/api/v1/oauth-apps/{name}", StatusCode::OK),
                ("post", "/api/v1/connections".into(), &oauth_connection, "/api/v1/connections", StatusCode::CREATED),
                ("post", "/api/v1/connections".into(), &basic_connection, "/api/v1/connections", StatusCode::CREATED),
                ("get", "/api/v1/connections".into(), "", "/api/v1/connections", StatusCode::OK),
                ("get", "/api/v1/connections/gh-oauth".into(), "", "/api/v1/connections/{name}", StatusCode::OK),
                ("delete", "/api/v1/connections/api".into(), "", "/api/v1/connections/{name}", StatusCode::OK),
            ],
        )
        .await;
        assert!(bodies[6]["authorize_url"].is_string(), "{:#}", bodies[6]);

        // Errors every route shares.
        let unauthenticated = app
            .client
            .get(app.url("/api/v1/runs"))
            .send()
            .await
            .expect("send");
        check(
            &app,
            doc,
            ("get", "/api/v1/runs"),
            unauthenticated,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        app
    })
    .await;
}

/// The integration reference answers what the registry and the declarations say (the same
/// content `stepwise integrations` prints), in its documented shapes. It reads no database, so
/// one backend is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_reference_is_documented_and_names_the_closest_on_404() {
    use stepwise_integrations::Registry;
    use stepwise_integrations::reference;

    let database = common::databases()
        .await
        .into_iter()
        .next()
        .expect("SQLite");
    let app = common::spawn_app(database).await;
    let document = document(&app).await;
    let bodies = check_cases(
        &app,
        &document,
        vec![
            (
                "get",
                "/api/v1/integrations".into(),
                "",
                "/api/v1/integrations",
                StatusCode::OK,
            ),
            (
                "get",
                "/api/v1/integrations/slack.post_message".into(),
                "",
                "/api/v1/integrations/{name}",
                StatusCode::OK,
            ),
            (
                "get",
                "/api/v1/integrations/stripe".into(),
                "",
                "/api/v1/integrations/{name}",
                StatusCode::OK,
            ),
            (
                "get",
                "/api/v1/integrations/slack.post_mesage".into(),
                "",
                "/api/v1/integrations/{name}",
                StatusCode::NOT_FOUND,
            ),
            // The health route keeps its path.
            (
                "get",
                "/api/v1/integrations/health".into(),
                "",
                "/api/v1/integrations/health",
                StatusCode::OK,
            ),
        ],
    )
    .await;
    let registry = Registry::builtin();
    assert_eq!(
        bodies[0],
        serde_json::to_value(reference::list(&registry)).expect("JSON")
    );
    let post_message = reference::lookup(&registry, "slack.post_message").expect("known");
    assert_eq!(bodies[1], serde_json::to_value(post_message).expect("JSON"));
    assert!(
        bodies[1]["action"]["example"]
            .as_str()
            .is_some_and(|example| example.contains("uses: slack.post_message\n")),
        "{:#}",
        bodies[1]
    );
    assert_eq!(bodies[2]["action"], Value::Null);
    assert_eq!(bodies[2]["integration"]["name"], "stripe");
    assert_eq!(bodies[3]["error"]["code"], "not_found");
    assert_eq!(
        bodies[3]["error"]["message"],
        "no integration or action is named `slack.post_mesage`; did you mean `slack.post_message`?"
    );
    app.stop().await;
}
