//! `POST /webhooks/{provider}/{source}` and `/api/v1/sources`, black-box, on every backend.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{TestApp, for_each_backend};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const GITHUB_SECRET: &str = "gh-secret-1";

/// Reads `trigger.body.x`; listens to `push` only.
const ON_PUSH: &str = r#"name: on-push
on:
  webhook: { source: gh, events: [push] }
steps:
  - id: read
    uses: core.set
    with:
      x: ${{ trigger.body.x }}
      event: ${{ trigger.event }}
      source: ${{ trigger.source }}
outputs:
  x: ${{ steps.read.output.x }}
"#;

/// Listens to `pull_*` events, only when `x > 10`.
const BIG_PULLS: &str = r#"name: big-pulls
on:
  webhook:
    source: gh
    events: ["pull_*"]
    filter: ${{ trigger.body.x > 10 }}
steps:
  - id: log
    uses: core.log
    with:
      message: big
"#;

/// Another source: never started by `gh` deliveries.
const OTHER_SOURCE: &str = r#"name: other-source
on:
  webhook: { source: other }
steps:
  - id: log
    uses: core.log
    with:
      message: other
"#;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Creates a source; returns its ingest path.
async fn create_source(app: &TestApp, body: Value) -> String {
    let created = app
        .expect_json(
            app.post_json("/api/v1/sources", &body.to_string()).await,
            StatusCode::CREATED,
        )
        .await;
    assert!(created.get("secret").is_none(), "{created:#}");
    let url = created["url"].as_str().expect("url").to_owned();
    assert_eq!(
        url,
        format!(
            "/webhooks/{}/{}",
            created["provider"].as_str().unwrap(),
            created["id"].as_str().unwrap()
        )
    );
    url
}

async fn github_source(app: &TestApp) -> String {
    create_source(
        app,
        json!({"name": "gh", "provider": "github", "secret": GITHUB_SECRET}),
    )
    .await
}

/// A GitHub delivery signed with `secret`.
async fn github(
    app: &TestApp,
    path: &str,
    secret: &str,
    event: &str,
    delivery: Option<&str>,
    body: &Value,
) -> Response {
    let body = body.to_string();
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(body);
    if let Some(delivery) = delivery {
        request = request.header("x-github-delivery", delivery);
    }
    request.send().await.expect("send")
}

fn run_ids(body: &Value) -> Vec<String> {
    body["run_ids"]
        .as_array()
        .expect("run_ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_delivery_starts_the_subscribed_workflows_once() {
    for_each_backend(|app| async move {
        let path = github_source(&app).await;
        for source in [ON_PUSH, BIG_PULLS, OTHER_SOURCE] {
            assert!(app.deploy(source).await.status().is_success());
        }

        let accepted = app
            .expect_json(
                github(
                    &app,
                    &path,
                    GITHUB_SECRET,
                    "push",
                    Some("d-1"),
                    &json!({"x": 42}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(accepted["delivery_id"], "d-1");
        assert_eq!(accepted["duplicate"], false);
        let runs = run_ids(&accepted);
        assert_eq!(runs.len(), 1, "[{}] {accepted:#}", app.backend);
        let run = app.wait_for_run(&runs[0]).await;
        assert_eq!(run["status"], "succeeded", "[{}] {run:#}", app.backend);
        assert_eq!(run["workflow"], "on-push");
        assert_eq!(run["trigger_kind"], "webhook");
        assert_eq!(run["output"]["x"], 42);
        assert_eq!(run["trigger"]["event"], "push");
        assert_eq!(run["trigger"]["source"], "gh");
        assert_eq!(run["trigger"]["delivery_id"], "d-1");
        assert_eq!(run["trigger"]["body"], json!({"x": 42}));
        assert_eq!(run["trigger"]["headers"]["x-github-event"], "push");
        assert!(
            run["trigger"]["headers"]
                .get("x-hub-signature-256")
                .is_none()
        );

        // The same delivery again: acknowledged, nothing started.
        let duplicate = app
            .expect_json(
                github(
                    &app,
                    &path,
                    GITHUB_SECRET,
                    "push",
                    Some("d-1"),
                    &json!({"x": 42}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(duplicate["duplicate"], true);
        assert_eq!(run_ids(&duplicate), runs);

        // The events filter and the `filter` expression.
        let small = app
            .expect_json(
                github(
                    &app,
                    &path,
                    GITHUB_SECRET,
                    "pull_request",
                    Some("d-2"),
                    &json!({"x": 5}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
        assert!(run_ids(&small).is_empty(), "{small:#}");
        let big = app
            .expect_json(
                github(
                    &app,
                    &path,
                    GITHUB_SECRET,
                    "pull_request",
                    Some("d-3"),
                    &json!({"x": 50}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
        let big_runs = run_ids(&big);
        assert_eq!(big_runs.len(), 1);
        assert_eq!(
            app.wait_for_run(&big_runs[0]).await["workflow"],
            "big-pulls"
        );
        let issues = app
            .expect_json(
                github(
                    &app,
                    &path,
                    GITHUB_SECRET,
                    "issues",
                    Some("d-4"),
                    &json!({"x": 50}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
        assert!(run_ids(&issues).is_empty());

        // Without any delivery id, identical deliveries are two events (no body hashing).
        for _ in 0..2 {
            let body = app
                .expect_json(
                    github(&app, &path, GITHUB_SECRET, "push", None, &json!({"x": 1})).await,
                    StatusCode::OK,
                )
                .await;
            assert_eq!(body["delivery_id"], Value::Null);
            assert_eq!(body["duplicate"], false);
            assert_eq!(run_ids(&body).len(), 1);
        }
        assert_eq!(app.count_rows("runs").await, 4, "[{}]", app.backend);
        assert_eq!(app.count_rows("webhook_deliveries").await, 6);

        // The deliveries page newest first, in keyset pages.
        let first = app
            .expect_json(
                app.get("/api/v1/sources/gh/deliveries?limit=4").await,
                StatusCode::OK,
            )
            .await;
        let cursor = first["next_cursor"].as_str().expect("a second page");
        let second = app
            .expect_json(
                app.get(&format!(
                    "/api/v1/sources/gh/deliveries?limit=4&cursor={cursor}"
                ))
                .await,
                StatusCode::OK,
            )
            .await;
        assert!(second["next_cursor"].is_null(), "{second:#}");
        let ids: Vec<Value> = [&first, &second]
            .iter()
            .flat_map(|page| page["items"].as_array().expect("items").clone())
            .map(|item| item["delivery_id"].clone())
            .collect();
        assert_eq!(
            ids,
            [
                Value::Null,
                Value::Null,
                json!("d-4"),
                json!("d-3"),
                json!("d-2"),
                json!("d-1")
            ],
            "[{}]",
            app.backend
        );
        assert_eq!(first["items"][2]["event_type"], "issues");
        assert_eq!(second["items"][1]["duplicates"], 1, "{second:#}");
        assert_eq!(second["items"][0]["duplicates"], 0);
        assert_eq!(
            first["items"][0]["run_ids"].as_array().map(Vec::len),
            Some(1)
        );
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_store_nothing_but_a_redacted_rejection() {
    for_each_backend(|app| async move {
        let path = github_source(&app).await;
        assert!(app.deploy(ON_PUSH).await.status().is_success());

        let refused = app
            .expect_error(
                github(
                    &app,
                    &path,
                    "wrong-secret",
                    "push",
                    Some("d-1"),
                    &json!({"x": 1}),
                )
                .await,
                StatusCode::UNAUTHORIZED,
                "signature_mismatch",
            )
            .await;
        assert!(!refused.to_string().contains(GITHUB_SECRET));
        let response = app
            .client
            .post(app.url(&path))
            .header("x-github-event", "push")
            .header("authorization", "Bearer not-for-logs")
            .header("cookie", "session=not-for-logs")
            .body("{}")
            .send()
            .await
            .expect("send");
        app.expect_error(response, StatusCode::UNAUTHORIZED, "missing_header")
            .await;
        assert_eq!(app.count_rows("runs").await, 0, "[{}]", app.backend);
        assert_eq!(app.count_rows("webhook_deliveries").await, 0);
        assert_eq!(app.count_rows("steps").await, 0);

        let log = app
            .expect_json(
                app.get("/api/v1/sources/gh/rejections").await,
                StatusCode::OK,
            )
            .await;
        let items = log["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{log:#}");
        assert_eq!(items[0]["code"], "missing_header");
        assert_eq!(items[1]["code"], "signature_mismatch");
        assert_eq!(items[1]["headers"]["x-github-event"], "push");
        assert_eq!(items[1]["headers"]["x-github-delivery"], "d-1");
        let text = log.to_string();
        for secret_value in ["sha256=", "not-for-logs"] {
            assert!(!text.contains(secret_value), "{secret_value} in {text}");
        }
        for item in items {
            let headers = item["headers"].as_object().expect("headers");
            for secret_bearing in ["x-hub-signature-256", "authorization", "cookie"] {
                assert!(
                    !headers.contains_key(secret_bearing),
                    "{secret_bearing}: {item:#}"
                );
            }
        }

        // Unknown source, wrong provider for a known source: 404.
        let unknown = format!("/webhooks/github/{}", uuid::Uuid::now_v7());
        app.expect_error(
            github(&app, &unknown, GITHUB_SECRET, "push", None, &json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let wrong_provider = path.replace("/github/", "/stripe/");
        app.expect_error(
            github(
                &app,
                &wrong_provider,
                GITHUB_SECRET,
                "push",
                None,
                &json!({}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        // Over the 1 MiB default: 413, even when correctly signed.
        let big = json!({"x": "a".repeat(1024 * 1024)});
        app.expect_error(
            github(&app, &path, GITHUB_SECRET, "push", Some("big"), &big).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
        assert_eq!(app.count_rows("webhook_deliveries").await, 0);
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_copies_of_a_delivery_start_exactly_one_run() {
    for_each_backend(|app| async move {
        let path = github_source(&app).await;
        assert!(app.deploy(ON_PUSH).await.status().is_success());
        let copies = (0..100).map(|_| async {
            let response = github(
                &app,
                &path,
                GITHUB_SECRET,
                "push",
                Some("same"),
                &json!({"x": 7}),
            )
            .await;
            assert_eq!(response.status(), StatusCode::OK, "[{}]", app.backend);
            response.json::<Value>().await.expect("json")
        });
        let answers = futures::future::join_all(copies).await;
        let first: Vec<_> = answers
            .iter()
            .filter(|answer| answer["duplicate"] == false)
            .collect();
        assert_eq!(first.len(), 1, "[{}] {answers:#?}", app.backend);
        let runs = run_ids(first[0]);
        assert_eq!(runs.len(), 1);
        for answer in &answers {
            assert_eq!(run_ids(answer), runs, "[{}]", app.backend);
        }
        assert_eq!(app.count_rows("runs").await, 1, "[{}]", app.backend);
        assert_eq!(app.count_rows("webhook_deliveries").await, 1);
        // Every copy but the first is counted on the one delivery row.
        let listed = app
            .expect_json(
                app.get("/api/v1/sources/gh/deliveries").await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(listed["items"][0]["duplicates"], 99, "[{}]", app.backend);
        assert_eq!(listed["items"][0]["run_ids"], json!(runs));
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_secret_verifies_until_it_expires() {
    for_each_backend(|app| async move {
        let path = github_source(&app).await;
        let rotate = |secret: &'static str, valid_for: Option<&'static str>| {
            let mut body = json!({"secret": secret});
            if let Some(valid_for) = valid_for {
                body["previous_valid_for"] = json!(valid_for);
            }
            let app = &app;
            async move {
                app.expect_json(
                    app.post_json("/api/v1/sources/gh/secret", &body.to_string())
                        .await,
                    StatusCode::OK,
                )
                .await
            }
        };
        let rotated = rotate("gh-secret-2", Some("1h")).await;
        assert!(rotated["previous_valid_until"].is_i64(), "{rotated:#}");
        assert!(!rotated.to_string().contains("gh-secret"));
        for (secret, id) in [(GITHUB_SECRET, "r-1"), ("gh-secret-2", "r-2")] {
            let response = github(&app, &path, secret, "push", Some(id), &json!({})).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "[{}] {secret}",
                app.backend
            );
        }

        // A short overlap: the previous secret works, then stops.
        rotate("gh-secret-3", Some("1s")).await;
        let response = github(&app, &path, "gh-secret-2", "push", Some("r-3"), &json!({})).await;
        assert_eq!(response.status(), StatusCode::OK, "[{}]", app.backend);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        app.expect_error(
            github(&app, &path, "gh-secret-2", "push", Some("r-4"), &json!({})).await,
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        )
        .await;
        // Without an overlap the old secret stops at once; the oldest never comes back.
        rotate("gh-secret-4", None).await;
        for old in [GITHUB_SECRET, "gh-secret-3"] {
            app.expect_error(
                github(&app, &path, old, "push", Some("r-5"), &json!({})).await,
                StatusCode::UNAUTHORIZED,
                "signature_mismatch",
            )
            .await;
        }
        let response = github(&app, &path, "gh-secret-4", "push", Some("r-6"), &json!({})).await;
        assert_eq!(response.status(), StatusCode::OK);
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_validated_and_scoped_to_their_tenant() {
    for_each_backend(|app| async move {
        github_source(&app).await;
        app.expect_error(
            app.post_json(
                "/api/v1/sources",
                &json!({"name": "gh", "provider": "github", "secret": "s"}).to_string(),
            )
            .await,
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        for bad in [
            json!({"name": "Bad_Name", "provider": "github", "secret": "s"}),
            json!({"name": "x", "provider": "gitlab", "secret": "s"}),
            json!({"name": "x", "provider": "generic", "secret": "s"}),
            json!({"name": "x", "provider": "github", "secret": ""}),
            json!({"name": "x", "provider": "standard", "secret": "not base64!"}),
        ] {
            app.expect_error(
                app.post_json("/api/v1/sources", &bad.to_string()).await,
                StatusCode::BAD_REQUEST,
                "invalid_input",
            )
            .await;
        }
        let generic = create_source(
            &app,
            json!({"name": "ci", "provider": "generic", "secret": "s",
                   "generic": {"header": "X-Sig", "algorithm": "sha256", "encoding": "hex"}}),
        )
        .await;
        assert!(generic.starts_with("/webhooks/generic/"));
        let list = app
            .expect_json(app.get("/api/v1/sources").await, StatusCode::OK)
            .await;
        let names: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ci", "gh"]);
        assert!(!list.to_string().contains(GITHUB_SECRET));

        // Another tenant sees none of it and can delete none of it.
        let (_, other_key) = app.engine.create_tenant("other").await.expect("tenant");
        let as_other = |request: reqwest::RequestBuilder| request.bearer_auth(&other_key).send();
        let response = as_other(app.client.get(app.url("/api/v1/sources")))
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["items"], json!([]));
        for request in [
            app.client.delete(app.url("/api/v1/sources/gh")),
            app.client.get(app.url("/api/v1/sources/gh/rejections")),
        ] {
            let response = as_other(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        let response = app
            .client
            .get(app.url("/api/v1/sources"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        assert_eq!(
            app.delete("/api/v1/sources/gh").await.status(),
            StatusCode::NO_CONTENT
        );
        app.expect_error(
            app.delete("/api/v1/sources/gh").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_standard_and_slack_deliveries_end_to_end() {
    for_each_backend(|app| async move {
        let stripe = create_source(
            &app,
            json!({"name": "pay", "provider": "stripe", "secret": "whsec_stripe"}),
        )
        .await;
        let standard_key = base64::engine::general_purpose::STANDARD.encode(b"standard-key-bytes");
        let standard = create_source(
            &app,
            json!({"name": "svix", "provider": "standard", "secret": format!("whsec_{standard_key}")}),
        )
        .await;
        let slack = create_source(
            &app,
            json!({"name": "chat", "provider": "slack", "secret": "slack-secret"}),
        )
        .await;
        let workflow = |name: &str, source: &str, events: &str| {
            format!(
                "name: {name}\non:\n  webhook: {{ source: {source}, events: [{events}] }}\nsteps:\n  - id: read\n    uses: core.set\n    with:\n      amount: ${{{{ trigger.body.data.amount }}}}\noutputs:\n  amount: ${{{{ steps.read.output.amount }}}}\n"
            )
        };
        for source in [
            workflow("paid", "pay", "\"invoice.*\""),
            workflow("svixed", "svix", "user.created"),
        ] {
            let response = app.deploy(&source).await;
            assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        }

        // Stripe: t=..,v1=HMAC("{t}.{body}"), id and type from the signed body.
        let body = json!({"id": "evt_1", "type": "invoice.paid", "data": {"amount": 1200}}).to_string();
        let t = now_secs();
        let v1 = hex::encode(hmac_sha256(b"whsec_stripe", &[t.to_string().as_bytes(), b".", body.as_bytes()]));
        let send_stripe = || {
            app.client
                .post(app.url(&stripe))
                .header("content-type", "application/json")
                .header("stripe-signature", format!("t={t},v1={v1}"))
                .body(body.clone())
                .send()
        };
        let accepted = app
            .expect_json(send_stripe().await.unwrap(), StatusCode::OK)
            .await;
        assert_eq!(accepted["delivery_id"], "evt_1");
        let runs = run_ids(&accepted);
        assert_eq!(runs.len(), 1, "[{}] {accepted:#}", app.backend);
        let run = app.wait_for_run(&runs[0]).await;
        assert_eq!(run["output"]["amount"], 1200, "[{}] {run:#}", app.backend);
        let again = app
            .expect_json(send_stripe().await.unwrap(), StatusCode::OK)
            .await;
        assert_eq!(again["duplicate"], true);

        // Standard Webhooks: v1,base64(HMAC(key, "{id}.{ts}.{body}")).
        let body = json!({"type": "user.created", "data": {"amount": 7}}).to_string();
        let signature = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
            b"standard-key-bytes",
            &[b"msg_1.", t.to_string().as_bytes(), b".", body.as_bytes()],
        ));
        let response = app
            .client
            .post(app.url(&standard))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", t.to_string())
            .header("webhook-signature", format!("v1,{signature}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let accepted = app.expect_json(response, StatusCode::OK).await;
        assert_eq!(accepted["delivery_id"], "msg_1");
        let runs = run_ids(&accepted);
        assert_eq!(runs.len(), 1);
        assert_eq!(app.wait_for_run(&runs[0]).await["output"]["amount"], 7);

        // Slack url_verification: the challenge comes back, nothing is stored.
        let body = json!({"type": "url_verification", "challenge": "ch-123", "token": "t"}).to_string();
        let signature = hex::encode(hmac_sha256(
            b"slack-secret",
            &[b"v0:", t.to_string().as_bytes(), b":", body.as_bytes()],
        ));
        let response = app
            .client
            .post(app.url(&slack))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", t.to_string())
            .header("x-slack-signature", format!("v0={signature}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let answer = app.expect_json(response, StatusCode::OK).await;
        assert_eq!(answer, json!({"challenge": "ch-123"}));
        assert_eq!(app.count_rows("webhook_deliveries").await, 2);
        app
    })
    .await;
}

/// The value of the counter line of `name` whose labels include every one of `labels`.
fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().expect("counter value"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_and_runs_move_the_counters_at_metrics() {
    for_each_backend(|app| async move {
        let path = github_source(&app).await;
        assert!(app.deploy(ON_PUSH).await.status().is_success());
        let body = json!({"x": 1});
        let accepted = github(&app, &path, GITHUB_SECRET, "push", Some("m1"), &body).await;
        assert_eq!(accepted.status(), StatusCode::OK);
        let run = run_ids(&accepted.json().await.expect("json")).remove(0);
        app.wait_for_run(&run).await;
        let duplicate = github(&app, &path, GITHUB_SECRET, "push", Some("m1"), &body).await;
        assert_eq!(duplicate.status(), StatusCode::OK);
        let forged = github(&app, &path, "wrong", "push", Some("m2"), &body).await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        let unknown = github(
            &app,
            "/webhooks/github/nope",
            GITHUB_SECRET,
            "push",
            None,
            &body,
        );
        assert_eq!(unknown.await.status(), StatusCode::NOT_FOUND);
        let huge = json!({"x": "a".repeat(1024 * 1024)});
        let too_large = github(&app, &path, GITHUB_SECRET, "push", Some("m3"), &huge).await;
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let response = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        let metrics = response.text().await.expect("text");
        let deliveries = |outcome: &str| {
            counter(
                &metrics,
                "stepwise_webhook_deliveries_total",
                &["provider=\"github\"", &format!("outcome=\"{outcome}\"")],
            )
        };
        for (outcome, count) in [
            ("accepted", 1.0),
            ("duplicate", 1.0),
            ("signature_mismatch", 1.0),
            ("unknown_source", 1.0),
            ("too_large", 1.0),
        ] {
            assert_eq!(
                deliveries(outcome),
                count,
                "[{}] {outcome}\n{metrics}",
                app.backend
            );
        }
        let started = counter(
            &metrics,
            "stepwise_runs_started_total",
            &["trigger_kind=\"webhook\""],
        );
        let succeeded = counter(
            &metrics,
            "stepwise_runs_finished_total",
            &["status=\"succeeded\""],
        );
        assert_eq!(
            (started, succeeded),
            (1.0, 1.0),
            "[{}]\n{metrics}",
            app.backend
        );
        app
    })
    .await;
}

/// Listens to `slow` events and sleeps long enough for any `?wait=` of the tests to expire.
const SLOW: &str = r#"name: slow
on:
  webhook: { source: gh, events: [slow] }
steps:
  - id: nap
    uses: core.sleep
    with:
      duration: 1h
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_with_the_outputs_or_202_with_the_run_ids() {
    for_each_backend(|app| async move {
        let path = github_source(&app).await;
        for source in [ON_PUSH, SLOW] {
            assert!(app.deploy(source).await.status().is_success());
        }
        let waited = format!("{path}?wait=10s");
        let body = json!({"x": 42});
        for (delivery, duplicate) in [("w1", false), ("w1", true)] {
            let response = github(&app, &waited, GITHUB_SECRET, "push", Some(delivery), &body);
            let answer = app.expect_json(response.await, StatusCode::OK).await;
            assert_eq!(
                answer["duplicate"], duplicate,
                "[{}] {answer:#}",
                app.backend
            );
            let runs = answer["runs"].as_array().expect("runs");
            assert_eq!(runs.len(), 1, "[{}] {answer:#}", app.backend);
            assert_eq!(runs[0]["run_id"], answer["run_ids"][0]);
            assert_eq!(runs[0]["status"], "succeeded");
            assert_eq!(runs[0]["output"], json!({"x": 42}));
        }

        let slow = format!("{path}?wait=300ms");
        let response = github(&app, &slow, GITHUB_SECRET, "slow", Some("w2"), &body).await;
        let answer = app.expect_json(response, StatusCode::ACCEPTED).await;
        assert_eq!(run_ids(&answer).len(), 1, "[{}] {answer:#}", app.backend);
        assert!(answer.get("runs").is_none(), "{answer:#}");

        let bad = format!("{path}?wait=soon");
        let response = github(&app, &bad, GITHUB_SECRET, "push", Some("w3"), &body).await;
        app.expect_error(response, StatusCode::BAD_REQUEST, "invalid_input")
            .await;
        app
    })
    .await;
}
