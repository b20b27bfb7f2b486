//! Every authenticated route, table-driven, on every backend: without a key and with a wrong
//! key it answers 401 with the JSON error; with another tenant's key it answers 404 for the
//! first tenant's ids and names (or an empty list); and no refused call changes stored data.
//! The table must name every `/api/v1` operation of the OpenAPI document, so a new route
//! cannot skip these checks.

mod common;

use std::collections::BTreeSet;

use common::{HELLO, TestApp, for_each_backend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stepwise_api::openapi::ApiDoc;
use stepwise_integrations::runtime::metrics::Outcome;
use utoipa::OpenApi;

/// What another tenant's key gets from a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsOtherTenant {
    /// 404 `not_found`: the first tenant's resource does not exist for it.
    NotFound,
    /// 200 with `{"items": []}`: nothing of the first tenant is listed.
    EmptyList,
    /// 200 with `{"integrations": []}`: none of the first tenant's integration health.
    NoIntegrations,
    /// Answers with the caller's own data (a create route, its own session): not a leak.
    OwnData,
}

struct Case {
    method: Method,
    /// The route as the OpenAPI document names it.
    template: &'static str,
    /// The route with the first tenant's ids and names filled in (`{run}` is the run id).
    path: &'static str,
    /// A valid body, so that only the credential decides the answer.
    body: Option<Value>,
    other: AsOtherTenant,
}

fn case(
    method: Method,
    template: &'static str,
    path: &'static str,
    body: Option<Value>,
    other: AsOtherTenant,
) -> Case {
    Case {
        method,
        template,
        path,
        body,
        other,
    }
}

fn cases() -> Vec<Case> {
    use AsOtherTenant::{EmptyList, NoIntegrations, NotFound, OwnData};
    let get = || Method::GET;
    let post = || Method::POST;
    let delete = || Method::DELETE;
    vec![
        case(
            get(),
            "/api/v1/workflows",
            "/api/v1/workflows",
            None,
            EmptyList,
        ),
        case(
            post(),
            "/api/v1/workflows",
            "/api/v1/workflows",
            Some(json!(HELLO.replace("Hello,", "Hey,"))),
            OwnData,
        ),
        case(
            get(),
            "/api/v1/workflows/{name}",
            "/api/v1/workflows/hello",
            None,
            NotFound,
        ),
        case(
            get(),
            "/api/v1/workflows/{name}/diff",
            "/api/v1/workflows/hello/diff",
            None,
            NotFound,
        ),
        case(
            get(),
            "/api/v1/workflows/{name}/schedules",
            "/api/v1/workflows/hello/schedules",
            None,
            NotFound,
        ),
        case(
            post(),
            "/api/v1/workflows/{name}/runs",
            "/api/v1/workflows/hello/runs",
            Some(json!({"name": "Eve"})),
            NotFound,
        ),
        case(
            post(),
            "/api/v1/workflows/{name}/disable",
            "/api/v1/workflows/hello/disable",
            None,
            NotFound,
        ),
        case(
            post(),
            "/api/v1/workflows/{name}/enable",
            "/api/v1/workflows/hello/enable",
            None,
            NotFound,
        ),
        case(get(), "/api/v1/runs", "/api/v1/runs", None, EmptyList),
        case(
            get(),
            "/api/v1/runs/{id}",
            "/api/v1/runs/{run}",
            None,
            NotFound,
        ),
        case(
            post(),
            "/api/v1/runs/{id}/cancel",
            "/api/v1/runs/{run}/cancel",
            None,
            NotFound,
        ),
        case(
            post(),
            "/api/v1/runs/{id}/retry",
            "/api/v1/runs/{run}/retry",
            Some(json!({"version": "current"})),
            NotFound,
        ),
        case(
            post(),
            "/api/v1/runs/{id}/rerun",
            "/api/v1/runs/{run}/rerun",
            None,
            NotFound,
        ),
        case(get(), "/api/v1/secrets", "/api/v1/secrets", None, EmptyList),
        case(
            post(),
            "/api/v1/secrets",
            "/api/v1/secrets",
            Some(json!({"name": "OTHER", "value": "x"})),
            OwnData,
        ),
        case(
            delete(),
            "/api/v1/secrets/{name}",
            "/api/v1/secrets/API_TOKEN",
            None,
            NotFound,
        ),
        case(
            get(),
            "/api/v1/oauth-apps",
            "/api/v1/oauth-apps",
            None,
            EmptyList,
        ),
        case(
            post(),
            "/api/v1/oauth-apps",
            "/api/v1/oauth-apps",
            Some(json!({"name": "slack", "integration": "slack", "client_id": "c"})),
            OwnData,
        ),
        case(
            get(),
            "/api/v1/oauth-apps/{name}",
            "/api/v1/oauth-apps/github",
            None,
            NotFound,
        ),
        case(
            delete(),
            "/api/v1/oauth-apps/{name}",
            "/api/v1/oauth-apps/github",
            None,
            NotFound,
        ),
        case(
            get(),
            "/api/v1/connections",
            "/api/v1/connections",
            None,
            EmptyList,
        ),
        case(
            post(),
            "/api/v1/connections",
            "/api/v1/connections",
            Some(
                json!({"name": "other", "integration": "generic", "kind": "bearer", "token": "t"}),
            ),
            OwnData,
        ),
        case(
            get(),
            "/api/v1/connections/{name}",
            "/api/v1/connections/gh",
            None,
            NotFound,
        ),
        case(
            delete(),
            "/api/v1/connections/{name}",
            "/api/v1/connections/gh",
            None,
            NotFound,
        ),
        case(
            post(),
            "/api/v1/connections/{name}/test",
            "/api/v1/connections/gh/test",
            None,
            NotFound,
        ),
        case(get(), "/api/v1/sources", "/api/v1/sources", None, EmptyList),
        case(
            post(),
            "/api/v1/sources",
            "/api/v1/sources",
            Some(json!({"name": "other", "provider": "github", "secret": "s"})),
            OwnData,
        ),
        case(
            delete(),
            "/api/v1/sources/{name}",
            "/api/v1/sources/gh",
            None,
            NotFound,
        ),
        case(
            post(),
            "/api/v1/sources/{name}/secret",
            "/api/v1/sources/gh/secret",
            Some(json!({"secret": "stolen"})),
            NotFound,
        ),
        case(
            get(),
            "/api/v1/sources/{name}/rejections",
            "/api/v1/sources/gh/rejections",
            None,
            NotFound,
        ),
        case(
            get(),
            "/api/v1/sources/{name}/deliveries",
            "/api/v1/sources/gh/deliveries",
            None,
            NotFound,
        ),
        case(
            get(),
            "/api/v1/integrations/health",
            "/api/v1/integrations/health?window=24h",
            None,
            NoIntegrations,
        ),
        case(get(), "/ui/session", "/ui/session", None, OwnData),
        // The catalogue is the same for every tenant.
        case(
            get(),
            "/api/v1/providers",
            "/api/v1/providers",
            None,
            OwnData,
        ),
        case(
            get(),
            "/api/v1/integrations",
            "/api/v1/integrations",
            None,
            OwnData,
        ),
        case(
            get(),
            "/api/v1/integrations/{name}",
            "/api/v1/integrations/slack.post_message",
            None,
            OwnData,
        ),
        case(
            get(),
            "/oauth/{integration}/authorize",
            "/oauth/github/authorize?connection=gh",
            None,
            NotFound,
        ),
    ]
}

/// The first tenant's data: workflow `hello` with a finished run, secret `API_TOKEN`, source
/// `gh`, OAuth app `github`, connection `gh` and a `github` call in its integration health.
/// Returns the run id.
async fn seed(app: &TestApp) -> String {
    let tenant = app
        .engine
        .tenant("test")
        .await
        .expect("read")
        .expect("tenant");
    app.engine.health_recorder().request(
        &tenant.id,
        "github",
        chrono::Utc::now(),
        Outcome::Success,
        Some(std::time::Duration::from_millis(20)),
    );
    let health = app
        .expect_json(app.get("/api/v1/integrations/health").await, StatusCode::OK)
        .await;
    assert_eq!(health["integrations"][0]["integration"], "github");
    app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
        .await;
    let run_id = app.trigger("hello", r#"{"name": "Ada"}"#).await;
    app.wait_for_run(&run_id).await;
    for (path, body) in [
        (
            "/api/v1/secrets",
            json!({"name": "API_TOKEN", "value": "s3cr3t"}),
        ),
        (
            "/api/v1/sources",
            json!({"name": "gh", "provider": "github", "secret": "whsec"}),
        ),
        (
            "/api/v1/oauth-apps",
            json!({"integration": "github", "client_id": "id", "client_secret": "secret"}),
        ),
        (
            "/api/v1/connections",
            json!({"name": "gh", "integration": "github", "kind": "oauth2"}),
        ),
    ] {
        app.expect_json(
            app.post_json(path, &body.to_string()).await,
            StatusCode::CREATED,
        )
        .await;
    }
    run_id
}

/// What the first tenant sees through the API, and the row counts of the tables a refused
/// call could have added to.
async fn stored(app: &TestApp, run_id: &str) -> Value {
    let mut seen = serde_json::Map::new();
    for path in [
        "/api/v1/workflows".to_owned(),
        "/api/v1/workflows/hello".to_owned(),
        "/api/v1/runs".to_owned(),
        format!("/api/v1/runs/{run_id}"),
        "/api/v1/secrets".to_owned(),
        "/api/v1/sources".to_owned(),
        "/api/v1/sources/gh/rejections".to_owned(),
        "/api/v1/sources/gh/deliveries".to_owned(),
        "/api/v1/oauth-apps".to_owned(),
        "/api/v1/connections".to_owned(),
    ] {
        let body = app.expect_json(app.get(&path).await, StatusCode::OK).await;
        seen.insert(path, body);
    }
    // Changes to the first tenant's rows show in its views; these count what a refused call
    // could have created under the other tenant.
    for table in ["workflow_versions", "runs", "oauth_states"] {
        seen.insert(table.to_owned(), json!(app.count_rows(table).await));
    }
    Value::Object(seen)
}

async fn send(app: &TestApp, case: &Case, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.request(case.method.clone(), app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request = match &case.body {
        Some(Value::String(yaml)) => request
            .header("content-type", "application/yaml")
            .body(yaml.clone()),
        Some(body) => request.json(body),
        None => request,
    };
    request.send().await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_covers_every_authenticated_operation() {
    let document = serde_json::to_value(ApiDoc::openapi()).expect("document");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .iter()
                .filter(|(_, operation)| operation.get("security").is_some())
                .map(|(method, _)| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let tested: BTreeSet<(String, String)> = cases()
        .iter()
        .map(|case| (case.method.to_string(), case.template.to_owned()))
        .collect();
    let untested: Vec<_> = documented.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "authenticated operations missing from the table: {untested:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_wrong_and_foreign_credentials() {
    for_each_backend(|app| async move {
        let run_id = seed(&app).await;
        let (_, other_key) = app.engine.create_tenant("other").await.expect("tenant");
        let before = stored(&app, &run_id).await;
        for case in cases() {
            let path = case.path.replace("{run}", &run_id);
            let what = format!("[{}] {} {path}", app.backend, case.method);

            let missing = send(&app, &case, &path, None).await;
            assert_eq!(
                missing
                    .headers()
                    .get("www-authenticate")
                    .and_then(|value| value.to_str().ok()),
                Some("Bearer"),
                "{what} without a key"
            );
            app.expect_error(missing, StatusCode::UNAUTHORIZED, "unauthorized")
                .await;
            assert_eq!(stored(&app, &run_id).await, before, "{what} without a key");

            let wrong = send(&app, &case, &path, Some("sw_not-a-real-key")).await;
            app.expect_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized")
                .await;
            assert_eq!(
                stored(&app, &run_id).await,
                before,
                "{what} with a wrong key"
            );

            match case.other {
                AsOtherTenant::NotFound => {
                    let foreign = send(&app, &case, &path, Some(&other_key)).await;
                    let body = app
                        .expect_error(foreign, StatusCode::NOT_FOUND, "not_found")
                        .await;
                    assert!(
                        !body.to_string().contains("s3cr3t"),
                        "{what} leaked a secret: {body}"
                    );
                    assert_eq!(
                        stored(&app, &run_id).await,
                        before,
                        "{what} as another tenant"
                    );
                }
                AsOtherTenant::EmptyList => {
                    let foreign = send(&app, &case, &path, Some(&other_key)).await;
                    let body = app.expect_json(foreign, StatusCode::OK).await;
                    assert_eq!(body["items"], json!([]), "{what} as another tenant");
                }
                AsOtherTenant::NoIntegrations => {
                    let foreign = send(&app, &case, &path, Some(&other_key)).await;
                    let body = app.expect_json(foreign, StatusCode::OK).await;
                    assert_eq!(body["integrations"], json!([]), "{what} as another tenant");
                }
                AsOtherTenant::OwnData => {}
            }
        }
        app
    })
    .await;
}

/// Bodies a route refuses once it reads them; none of them may decide the answer to a request
/// without a valid credential: it is checked first.
fn bad_bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("broken JSON", "application/json", b"{\"name\": ".to_vec()),
        (
            "a duplicate key",
            "application/json",
            br#"{"name": "a", "name": "b"}"#.to_vec(),
        ),
        ("text", "text/plain", b"name=x".to_vec()),
        (
            "a form",
            "application/x-www-form-urlencoded",
            b"name=x".to_vec(),
        ),
        (
            "multipart",
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n".to_vec(),
        ),
        (
            "2 MiB",
            "application/json",
            format!(r#"{{"name": "A", "value": "{}"}}"#, "x".repeat(2 << 20)).into_bytes(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_credential_is_refused_before_the_body_is_read() {
    for_each_backend(|app| async move {
        let run_id = seed(&app).await;
        for case in cases() {
            let path = case.path.replace("{run}", &run_id);
            for (what, content_type, body) in bad_bodies() {
                for key in [None, Some("sw_not-a-real-key")] {
                    let mut request = app
                        .client
                        .request(case.method.clone(), app.url(&path))
                        .header("content-type", content_type)
                        .body(body.clone());
                    if let Some(key) = key {
                        request = request.bearer_auth(key);
                    }
                    let response = request.send().await.unwrap_or_else(|error| {
                        panic!(
                            "[{}] {} {path} with {what}: {error}",
                            app.backend, case.method
                        )
                    });
                    assert_eq!(
                        response.status(),
                        StatusCode::UNAUTHORIZED,
                        "[{}] {} {path} with {what}, key {key:?}",
                        app.backend,
                        case.method
                    );
                    app.expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized")
                        .await;
                }
            }
        }
        app
    })
    .await;
}
