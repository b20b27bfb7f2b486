//! The HTTP API, black-box, on every backend.

mod common;

use std::collections::HashSet;

use common::{HELLO, NAPPER, for_each_backend};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_a_version_per_change() {
    for_each_backend(|app| async move {
        let created = app
            .expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        assert_eq!(created["name"], "hello");
        assert_eq!(created["version"], 1);
        assert_eq!(created["created"], true);
        assert!(created["version_id"].is_string());

        let unchanged = app
            .expect_json(app.deploy(HELLO).await, StatusCode::OK)
            .await;
        assert_eq!(unchanged["version"], 1);
        assert_eq!(unchanged["created"], false);

        let changed = HELLO.replace("Hello,", "Hi,");
        let second = app
            .expect_json(app.deploy(&changed).await, StatusCode::CREATED)
            .await;
        assert_eq!(second["version"], 2);

        let list = app
            .expect_json(app.get("/api/v1/workflows").await, StatusCode::OK)
            .await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["items"][0]["latest_version"], 2);

        let detail = app
            .expect_json(app.get("/api/v1/workflows/hello").await, StatusCode::OK)
            .await;
        let versions = detail["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 2);
        let sources: Vec<_> = versions.iter().map(|v| v["source"].as_str()).collect();
        assert!(sources.contains(&Some(HELLO)), "{detail:#}");

        let diff = app
            .expect_json(
                app.get("/api/v1/workflows/hello/diff").await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            (diff["from"].as_i64(), diff["to"].as_i64()),
            (Some(1), Some(2))
        );
        let text = diff["diff"].as_str().expect("diff text");
        assert!(
            text.contains("--- hello v1") && text.contains("+++ hello v2"),
            "{text}"
        );
        assert!(text.contains("\n-") && text.contains("Hi,"), "{text}");
        app.expect_error(
            app.get("/api/v1/workflows/hello/diff?from=1&to=7").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        app.expect_error(
            app.get("/api/v1/workflows/nope").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_workflow_is_422_with_located_diagnostics() {
    for_each_backend(|app| async move {
        let source = "name: broken\nsteps:\n  - id: first\n    uses: core.sett\n    nedds: [x]\n";
        let body = app
            .expect_error(
                app.deploy(source).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
            )
            .await;
        let diagnostics = body["error"]["diagnostics"]
            .as_array()
            .expect("diagnostics");
        assert!(diagnostics.len() >= 2, "{body:#}");
        let unknown_action = diagnostics
            .iter()
            .find(|d| d["code"] == "WF0010")
            .unwrap_or_else(|| panic!("no WF0010 in {body:#}"));
        assert_eq!(unknown_action["line"], 4);
        assert_eq!(unknown_action["column"], 11);
        assert!(
            unknown_action["message"]
                .as_str()
                .is_some_and(|m| m.contains("core.sett"))
        );

        // Not YAML at all: still a located diagnostic, not a 500.
        let body = app
            .expect_error(
                app.deploy("name: [unclosed\n").await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
            )
            .await;
        assert!(body["error"]["diagnostics"][0]["line"].is_u64(), "{body:#}");
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggered_run_succeeds_with_outputs_and_steps() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        let run_id = app.trigger("hello", r#"{"name": "Ada"}"#).await;
        let run = app.wait_for_run(&run_id).await;
        assert_eq!(run["status"], "succeeded", "[{}] {run:#}", app.backend);
        assert_eq!(run["id"], run_id.as_str());
        assert_eq!(run["input"], json!({"name": "Ada"}));
        assert_eq!(run["output"], json!({"greeting": "Hello, Ada"}));
        let steps = run["steps"].as_array().expect("steps");
        let ids: Vec<_> = steps.iter().map(|s| s["id"].as_str()).collect();
        assert_eq!(ids, [Some("greet"), Some("log")]);
        for step in steps {
            assert_eq!(step["status"], "succeeded", "{step:#}");
            assert_eq!(step["attempts"], 1);
        }
        assert_eq!(steps[0]["output"], json!({"greeting": "Hello, Ada"}));

        // An empty body is an empty input.
        let empty = app
            .client
            .post(app.url("/api/v1/workflows/hello/runs"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .expect("send");
        app.expect_json(empty, StatusCode::ACCEPTED).await;

        app.expect_error(
            app.post_json("/api/v1/workflows/nope/runs", "{}").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_run_input_is_a_json_400() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        for body in ["{not json", "[1, 2]", "\"text\""] {
            app.expect_error(
                app.post_json("/api/v1/workflows/hello/runs", body).await,
                StatusCode::BAD_REQUEST,
                "invalid_input",
            )
            .await;
        }
        app
    })
    .await;
}

/// Input that does not fit the workflow's `inputs:` is refused before any run exists; defaults
/// fill in what is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_input_is_checked_against_declared_inputs() {
    for_each_backend(|app| async move {
        let source = "name: typed\ninputs:\n  name: { type: string }\n  count: { type: integer, default: 2 }\nsteps:\n  - id: echo\n    uses: core.set\n    with:\n      name: ${{ inputs.name }}\n      count: ${{ inputs.count }}\noutputs:\n  count: ${{ steps.echo.output.count }}\n";
        app.expect_json(app.deploy(source).await, StatusCode::CREATED)
            .await;
        let body = app
            .expect_error(
                app.post_json("/api/v1/workflows/typed/runs", r#"{"count": "x", "nmae": 1}"#)
                    .await,
                StatusCode::BAD_REQUEST,
                "invalid_input",
            )
            .await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("\"name\" is a required property"), "{message}");
        assert!(message.contains("`count`") && message.contains("nmae"), "{message}");
        let listed = app.get("/api/v1/runs?workflow=typed").await;
        let listed = app.expect_json(listed, StatusCode::OK).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(0), "nothing stored");

        let run_id = app.trigger("typed", r#"{"name": "Ada"}"#).await;
        let run = app.wait_for_run(&run_id).await;
        assert_eq!(run["status"], "succeeded", "{run:#}");
        assert_eq!(run["output"]["count"], 2, "{run:#}");
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_in_keyset_pages() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        let mut started = HashSet::new();
        for index in 0..5 {
            started.insert(
                app.trigger("hello", &format!(r#"{{"name": "n{index}"}}"#))
                    .await,
            );
        }
        let mut seen = Vec::new();
        let mut page_sizes = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/api/v1/runs?workflow=hello&limit=2&cursor={cursor}"),
                None => "/api/v1/runs?workflow=hello&limit=2".to_owned(),
            };
            let page = app.expect_json(app.get(&path).await, StatusCode::OK).await;
            let items = page["items"].as_array().expect("items");
            page_sizes.push(items.len());
            seen.extend(
                items
                    .iter()
                    .map(|run| run["id"].as_str().expect("id").to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(page_sizes.len() <= 5, "pagination does not end");
        }
        assert_eq!(page_sizes, [2, 2, 1], "[{}]", app.backend);
        let unique: HashSet<_> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), 5, "duplicates in {seen:?}");
        assert_eq!(unique, started);

        let other = app
            .expect_json(app.get("/api/v1/runs?workflow=other").await, StatusCode::OK)
            .await;
        assert_eq!(other["items"], json!([]));

        let running = app
            .expect_json(
                app.get("/api/v1/runs?status=running&limit=500").await,
                StatusCode::OK,
            )
            .await;
        assert!(
            running["items"]
                .as_array()
                .is_some_and(|items| items.iter().all(|run| run["status"] == "running"))
        );

        app.expect_error(
            app.get("/api/v1/runs?status=bogus").await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;

        // Trigger kind and creation-time filters (RFC 3339 or epoch ms).
        let manual = app
            .expect_json(
                app.get("/api/v1/runs?trigger=manual&limit=500").await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(manual["items"].as_array().map(Vec::len), Some(5));
        let cron = app
            .expect_json(app.get("/api/v1/runs?trigger=cron").await, StatusCode::OK)
            .await;
        assert_eq!(cron["items"], json!([]));
        let created: Vec<i64> = manual["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["created_at"].as_i64().unwrap())
            .collect();
        let (first, last) = (
            *created.iter().min().unwrap(),
            *created.iter().max().unwrap(),
        );
        let window = app
            .expect_json(
                app.get(&format!("/api/v1/runs?from={first}&to={}", last + 1))
                    .await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(window["items"].as_array().map(Vec::len), Some(5));
        let later = chrono::DateTime::from_timestamp_millis(last + 1)
            .unwrap()
            .to_rfc3339();
        let after = app
            .expect_json(
                app.get(&format!("/api/v1/runs?from={}", later.replace('+', "%2B")))
                    .await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            after["items"],
            json!([]),
            "[{}] nothing after the last",
            app.backend
        );
        let before = app
            .expect_json(
                app.get(&format!("/api/v1/runs?to={first}")).await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            before["items"],
            json!([]),
            "[{}] nothing before the first",
            app.backend
        );
        app.expect_error(
            app.get("/api/v1/runs?from=yesterday").await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        app.expect_error(
            app.get("/api/v1/runs?limit=many").await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_sleeping_run_once() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(NAPPER).await, StatusCode::CREATED)
            .await;
        let run_id = app.trigger("napper", "{}").await;
        let cancel_path = format!("/api/v1/runs/{run_id}/cancel");
        let cancelled = app
            .expect_json(app.post_json(&cancel_path, "").await, StatusCode::OK)
            .await;
        assert_eq!(cancelled["status"], "cancelled");

        let run = app.wait_for_run(&run_id).await;
        assert_eq!(run["status"], "cancelled", "[{}] {run:#}", app.backend);

        app.expect_error(
            app.post_json(&cancel_path, "").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        app.expect_error(
            app.post_json("/api/v1/runs/no-such-run/cancel", "").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requires_a_valid_key() {
    for_each_backend(|app| async move {
        for path in ["/api/v1/workflows", "/api/v1/runs", "/api/v1/runs/x"] {
            let missing = app.client.get(app.url(path)).send().await.expect("send");
            assert_eq!(
                missing
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer")
            );
            app.expect_error(missing, StatusCode::UNAUTHORIZED, "unauthorized")
                .await;
            let wrong = app
                .client
                .get(app.url(path))
                .bearer_auth("sw_not-a-real-key")
                .send()
                .await
                .expect("send");
            app.expect_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized")
                .await;
        }
        let deploy = app
            .client
            .post(app.url("/api/v1/workflows"))
            .header("content-type", "application/yaml")
            .body(HELLO)
            .send()
            .await
            .expect("send");
        app.expect_error(deploy, StatusCode::UNAUTHORIZED, "unauthorized")
            .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_do_not_see_each_other() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        let run_id = app.trigger("hello", "{}").await;
        let (_, other_key) = app.engine.create_tenant("other").await.expect("tenant");
        let as_other = |path: String| {
            app.client
                .get(app.url(&path))
                .bearer_auth(&other_key)
                .send()
        };

        let response = as_other(format!("/api/v1/runs/{run_id}"))
            .await
            .expect("send");
        app.expect_error(response, StatusCode::NOT_FOUND, "not_found")
            .await;
        let response = as_other("/api/v1/runs".into()).await.expect("send");
        let page = app.expect_json(response, StatusCode::OK).await;
        assert_eq!(page["items"], json!([]));
        let response = as_other("/api/v1/workflows/hello".into())
            .await
            .expect("send");
        app.expect_error(response, StatusCode::NOT_FOUND, "not_found")
            .await;
        let cancel = app
            .client
            .post(app.url(&format!("/api/v1/runs/{run_id}/cancel")))
            .bearer_auth(&other_key)
            .send()
            .await
            .expect("send");
        app.expect_error(cancel, StatusCode::NOT_FOUND, "not_found")
            .await;

        app.expect_error(
            app.get("/api/v1/runs/01900000-0000-7000-8000-000000000000")
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_unknown_routes() {
    for_each_backend(|app| async move {
        let health = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("send");
        assert_eq!(
            app.expect_json(health, StatusCode::OK).await,
            json!({"status": "ok"})
        );
        let ready = app
            .client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("send");
        assert_eq!(app.expect_json(ready, StatusCode::OK).await["status"], "ok");

        let unknown = app.client.get(app.url("/nope")).send().await.expect("send");
        app.expect_error(unknown, StatusCode::NOT_FOUND, "not_found")
            .await;
        app.expect_error(
            app.get("/api/v1/nope").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let wrong_method = app
            .client
            .delete(app.url("/api/v1/workflows"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .expect("send");
        app.expect_error(
            wrong_method,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_limited_and_typed() {
    for_each_backend(|app| async move {
        let huge = format!("name: big\n# {}\n", "x".repeat(2 * 1024 * 1024));
        app.expect_error(
            app.deploy(&huge).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
        let form = app
            .client
            .post(app.url("/api/v1/workflows"))
            .bearer_auth(&app.api_key)
            .header("content-type", "multipart/form-data; boundary=x")
            .body(HELLO)
            .send()
            .await
            .expect("send");
        app.expect_error(
            form,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        app
    })
    .await;
}

/// Every route that reads a JSON body, with a valid body for it (after `hello` is deployed and
/// has the run `{run}`).
const JSON_ROUTES: [(&str, &str); 7] = [
    ("/api/v1/workflows/hello/runs", r#"{"name": "Ada"}"#),
    ("/api/v1/runs/{run}/retry", r#"{"version": "current"}"#),
    ("/api/v1/secrets", r#"{"name": "TOKEN", "value": "v"}"#),
    (
        "/api/v1/oauth-apps",
        r#"{"integration": "github", "client_id": "id"}"#,
    ),
    (
        "/api/v1/connections",
        r#"{"name": "c", "integration": "generic", "kind": "bearer", "token": "t"}"#,
    ),
    (
        "/api/v1/sources",
        r#"{"name": "gh", "provider": "github", "secret": "s"}"#,
    ),
    ("/api/v1/sources/gh/secret", r#"{"secret": "s2"}"#),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_must_be_json_without_duplicate_keys_and_small() {
    for_each_backend(|app| async move {
        let backend = app.backend;
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        let run_id = app.trigger("hello", r#"{"name": "Ada"}"#).await;
        app.wait_for_run(&run_id).await;
        for (route, valid) in JSON_ROUTES {
            let path = route.replace("{run}", &run_id);
            let post = |content_type: Option<&'static str>, body: String| {
                let mut request = app
                    .client
                    .post(app.url(&path))
                    .bearer_auth(&app.api_key)
                    .body(body);
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                request.send()
            };
            for content_type in [
                None,
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("multipart/form-data; boundary=x"),
            ] {
                let response = post(content_type, valid.to_owned()).await.expect("send");
                let body = app
                    .expect_error(
                        response,
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                    )
                    .await;
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("application/json")),
                    "[{backend}] {path} as {content_type:?}: {body:#}"
                );
            }
            // The duplicate is the body's first key, again at the end; and one level down.
            let (first_key, _) = valid[1..].split_once(':').expect("a key");
            let duplicated = format!("{}, {first_key}: \"again\"}}", &valid[..valid.len() - 1]);
            let nested = format!(r#"{{"x": {{"k": 1, "k": 2}}, {}"#, &valid[1..]);
            for body in [duplicated, nested] {
                let response = post(Some("application/json"), body.clone())
                    .await
                    .expect("send");
                let refused = app
                    .expect_error(response, StatusCode::BAD_REQUEST, "invalid_input")
                    .await;
                assert!(
                    refused["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("duplicate key") && m.contains("line 1")),
                    "[{backend}] {path} with {body}: {refused:#}"
                );
            }
            let huge = format!(r#"{{"x": "{}"}}"#, "x".repeat(2 << 20));
            let response = post(Some("application/json"), huge).await.expect("send");
            app.expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                .await;
        }
        // The same body with `application/json` is accepted: the checks above refused only
        // the media type, the duplicate or the size.
        let response = app
            .post_json("/api/v1/secrets", r#"{"name": "TOKEN", "value": "v"}"#)
            .await;
        app.expect_json(response, StatusCode::CREATED).await;
        let response = app
            .post_json(
                "/api/v1/workflows/hello/runs",
                r#"{"name": "Ada", "extra": {"nested": [1, {"a": 1, "b": 2}]}}"#,
            )
            .await;
        assert_ne!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // A secret whose value alone is 2 MiB: 413, not 400.
        let big_secret = json!({"name": "BIG", "value": "s".repeat(2 << 20)}).to_string();
        app.expect_error(
            app.post_json("/api/v1/secrets", &big_secret).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
        // An empty body is still `{}` for a run start and a retry, whatever its type.
        let empty = app
            .client
            .post(app.url("/api/v1/workflows/hello/runs"))
            .bearer_auth(&app.api_key)
            .header("content-type", "text/plain")
            .send()
            .await
            .expect("send");
        assert_ne!(empty.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_sent_as_json_must_be_json() {
    for_each_backend(|app| async move {
        let send = |body: &str| {
            app.client
                .post(app.url("/api/v1/workflows"))
                .bearer_auth(&app.api_key)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
        };
        let refused = app
            .expect_error(
                send(HELLO).await.expect("send"),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            )
            .await;
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("not JSON") && m.contains("application/yaml")),
            "[{}] {refused:#}",
            app.backend
        );
        let duplicate = r#"{"name": "twice", "name": "again", "steps": []}"#;
        app.expect_error(
            send(duplicate).await.expect("send"),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        let workflow = json!({
            "name": "in-json",
            "steps": [{"id": "greet", "uses": "core.set", "with": {"greeting": "hi"}}],
        });
        let created = app
            .expect_json(
                send(&workflow.to_string()).await.expect("send"),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(created["name"], "in-json");
        app
    })
    .await;
}

fn limited(on_limit: &str) -> String {
    format!(
        r#"name: limited
inputs:
  nap: {{ type: string }}
concurrency: {{ key: one, limit: 1, on_limit: {on_limit} }}
steps:
  - {{ id: hold, uses: core.sleep, with: {{ duration: "${{{{ inputs.nap }}}}" }} }}
  - {{ id: check, uses: core.fail, retry: {{ max_attempts: 1 }}, with: {{ message: "broken" }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_beyond_the_concurrency_limit_is_refused_or_queued() {
    for_each_backend(|app| async move {
        let backend = app.backend;
        app.expect_json(
            app.deploy(&limited("cancel_new")).await,
            StatusCode::CREATED,
        )
        .await;
        let failed = app.trigger("limited", r#"{"nap": "10ms"}"#).await;
        assert_eq!(app.wait_for_run(&failed).await["status"], "failed");
        let holder = app.trigger("limited", r#"{"nap": "1h"}"#).await;
        let before = app
            .expect_json(
                app.get(&format!("/api/v1/runs/{failed}")).await,
                StatusCode::OK,
            )
            .await;
        let retry_path = format!("/api/v1/runs/{failed}/retry");
        let refused = app
            .expect_error(
                app.post_json(&retry_path, "").await,
                StatusCode::CONFLICT,
                "concurrency_limit",
            )
            .await;
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("concurrency key `one`") && m.contains("limit 1")),
            "[{backend}] {refused:#}"
        );
        let after = app
            .expect_json(
                app.get(&format!("/api/v1/runs/{failed}")).await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            before, after,
            "[{backend}] the refused retry changed nothing"
        );
        app.expect_json(
            app.post_json(&format!("/api/v1/runs/{holder}/cancel"), "")
                .await,
            StatusCode::OK,
        )
        .await;

        app.expect_json(app.deploy(&limited("queue")).await, StatusCode::CREATED)
            .await;
        let holder = app.trigger("limited", r#"{"nap": "1h"}"#).await;
        let queued = app
            .expect_json(
                app.post_json(&retry_path, r#"{"version": "current"}"#)
                    .await,
                StatusCode::ACCEPTED,
            )
            .await;
        assert_eq!(queued["status"], "queued", "[{backend}] {queued:#}");
        app.expect_json(
            app.post_json(&format!("/api/v1/runs/{holder}/cancel"), "")
                .await,
            StatusCode::OK,
        )
        .await;
        let again = app.wait_for_run(&failed).await;
        assert_eq!(again["status"], "failed", "[{backend}] {again:#}");
        assert_eq!(again["retries"], 1, "[{backend}]");
        app
    })
    .await;
}

const BROKEN: &str = r#"name: fragile
steps:
  - { id: prepare, uses: core.set, with: { n: 1 } }
  - { id: check, uses: core.fail, retry: { max_attempts: 1 }, with: { message: "broken on purpose" } }
  - { id: report, uses: core.set, with: { n: "${{ steps.prepare.output.n }}" } }
outputs:
  n: ${{ steps.report.output.n }}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_retry_from_the_failed_step_and_rerun() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(BROKEN).await, StatusCode::CREATED)
            .await;
        let run_id = app.trigger("fragile", "{}").await;
        let failed = app.wait_for_run(&run_id).await;
        assert_eq!(failed["status"], "failed", "[{}] {failed:#}", app.backend);
        let retry_path = format!("/api/v1/runs/{run_id}/retry");

        app.expect_error(
            app.post_json(&retry_path, r#"{"version": "newest"}"#).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        // On its own version the run fails again, at the same step.
        let retried = app
            .expect_json(app.post_json(&retry_path, "").await, StatusCode::ACCEPTED)
            .await;
        assert_eq!(retried["status"], "running");
        let again = app.wait_for_run(&run_id).await;
        assert_eq!(again["status"], "failed");
        assert_eq!(again["retries"], 1);

        let fixed = BROKEN.replace(
            r#"uses: core.fail, retry: { max_attempts: 1 }, with: { message: "broken on purpose" }"#,
            r#"uses: core.log, with: { message: "fixed" }"#,
        );
        app.expect_json(app.deploy(&fixed).await, StatusCode::CREATED)
            .await;
        app.expect_json(
            app.post_json(&retry_path, r#"{"version": "current"}"#).await,
            StatusCode::ACCEPTED,
        )
        .await;
        let done = app.wait_for_run(&run_id).await;
        assert_eq!(done["status"], "succeeded", "[{}] {done:#}", app.backend);
        assert_eq!(done["workflow_version"], 2);
        assert_eq!(done["output"], json!({"n": 1}));
        let check = done["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["id"] == "check"))
            .expect("check step");
        assert_eq!(check["attempt_history"].as_array().map(Vec::len), Some(3));

        app.expect_error(
            app.post_json(&retry_path, "").await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        let rerun = app
            .expect_json(
                app.post_json(&format!("/api/v1/runs/{run_id}/rerun"), "")
                    .await,
                StatusCode::ACCEPTED,
            )
            .await;
        let new_run = rerun["run_id"].as_str().expect("new run id").to_owned();
        let rerun_detail = app.wait_for_run(&new_run).await;
        assert_eq!(rerun_detail["status"], "succeeded");
        assert_eq!(rerun_detail["rerun_of"], run_id.as_str());

        let (_, other_key) = app.engine.create_tenant("other").await.expect("tenant");
        for action in ["retry", "rerun"] {
            let response = app
                .client
                .post(app.url(&format!("/api/v1/runs/{run_id}/{action}")))
                .bearer_auth(&other_key)
                .send()
                .await
                .expect("send");
            app.expect_error(response, StatusCode::NOT_FOUND, "not_found")
                .await;
        }
        app
    })
    .await;
}
