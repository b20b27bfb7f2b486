//! `http.request` against wiremock (guard lifted), and the SSRF guard (guard on).

mod support;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use stepwise_integrations::http::HttpClient;
use stepwise_integrations::{ActionContext, ActionError, ActionOutcome, Registry, StepInvocation};
use support::{client, context, invocation};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn call(
    http: HttpClient,
    invocation: StepInvocation,
    input: Value,
) -> Result<Value, ActionError> {
    let registry = Registry::builtin();
    let action = registry
        .get("http.request")
        .expect("http.request is registered");
    match action
        .execute_json(&context(http, invocation), input)
        .await?
    {
        ActionOutcome::Done(output) => Ok(output),
        other => panic!("http.request did not finish: {other:?}"),
    }
}

/// One call with the guard lifted, as tests and local development run.
async fn request(input: Value) -> Result<Value, ActionError> {
    call(client(true), invocation("fetch", 1), input).await
}

#[tokio::test]
async fn get_returns_status_headers_and_parsed_json() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orders/42"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 42, "lines": [1, 2]}))
                .append_header("X-Trace", "a")
                .append_header("X-Trace", "b"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let output = request(json!({"url": format!("{}/orders/42", server.uri())}))
        .await
        .expect("200");
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], json!({"id": 42, "lines": [1, 2]}));
    assert_eq!(output["headers"]["content-type"], "application/json");
    assert_eq!(output["headers"]["x-trace"], "a, b");
}

#[tokio::test]
async fn post_sends_json_query_and_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(query_param("page", "2"))
        .and(query_param("expand", "true"))
        .and(query_param("q", "open orders"))
        .and(query_param("existing", "1"))
        .and(header("authorization", "Bearer secret"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"customer": "c-1", "total": 9.5})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&server)
        .await;

    let output = request(json!({
        "method": "POST",
        "url": format!("{}/orders?existing=1", server.uri()),
        "headers": {"Authorization": "Bearer secret"},
        "query": {"page": 2, "expand": true, "q": "open orders"},
        "json": {"customer": "c-1", "total": 9.5},
    }))
    .await
    .expect("201");
    assert_eq!(output["status"], 201);
    assert_eq!(output["body"], json!({"id": 7}));
}

#[tokio::test]
async fn raw_body_and_non_json_response_are_strings() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(header("content-type", "text/csv"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("not { json", "text/plain; charset=utf-8"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let output = request(json!({
        "method": "PUT",
        "url": server.uri(),
        "headers": {"Content-Type": "text/csv"},
        "body": "a,b\n1,2\n",
    }))
    .await
    .expect("200");
    assert_eq!(output["body"], "not { json");
}

#[tokio::test]
async fn idempotency_key_is_the_same_on_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .expect(2)
        .mount(&server)
        .await;

    let input = json!({"method": "POST", "url": server.uri(), "json": {"n": 1}});
    for attempt in [1, 2] {
        call(client(true), invocation("charge", attempt), input.clone())
            .await
            .expect("204");
    }
    let received = server.received_requests().await.expect("recording is on");
    let keys: Vec<_> = received
        .iter()
        .map(|request| request.headers.get("idempotency-key").cloned())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0].as_ref().map(|key| key.as_bytes()),
        Some(&b"run-1:charge"[..])
    );
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn a_user_idempotency_key_wins() {
    let server = MockServer::start().await;
    Mock::given(header("idempotency-key", "mine"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    request(json!({"url": server.uri(), "headers": {"Idempotency-Key": "mine"}}))
        .await
        .expect("200");
}

#[tokio::test]
async fn not_found_is_permanent_with_status_url_and_body() {
    let server = MockServer::start().await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such order"))
        .mount(&server)
        .await;

    let error = request(json!({"url": format!("{}/missing?token=s3cret", server.uri())}))
        .await
        .expect_err("404");
    let expected = format!(
        "HTTP 404 Not Found from {}/missing: no such order",
        server.uri()
    );
    assert_eq!(error, ActionError::Permanent(expected));
}

#[tokio::test]
async fn fail_on_status_false_returns_any_status() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"busy": true})))
        .mount(&server)
        .await;

    let output = request(json!({"url": server.uri(), "fail_on_status": false}))
        .await
        .expect("returned as output");
    assert_eq!(output["status"], 503);
    assert_eq!(output["body"], json!({"busy": true}));
}

#[tokio::test]
async fn unavailable_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;

    let error = request(json!({"url": server.uri()}))
        .await
        .expect_err("503");
    assert!(
        matches!(
            error,
            ActionError::Retryable {
                retry_after: None,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn too_many_requests_honours_retry_after_seconds() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;

    let error = request(json!({"url": server.uri()}))
        .await
        .expect_err("429");
    let ActionError::Retryable { retry_after, .. } = error else {
        panic!("expected Retryable, got {error:?}");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn retry_after_accepts_an_http_date() {
    let server = MockServer::start().await;
    let at = Utc::now() + TimeDelta::seconds(120);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", date.as_str()))
        .mount(&server)
        .await;

    let error = request(json!({"url": server.uri()}))
        .await
        .expect_err("503");
    let ActionError::Retryable {
        retry_after: Some(delay),
        ..
    } = error
    else {
        panic!("expected Retryable with a delay, got {error:?}");
    };
    assert!(
        (Duration::from_secs(115)..=Duration::from_secs(120)).contains(&delay),
        "{delay:?}"
    );
}

#[tokio::test]
async fn a_slow_response_times_out_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;

    let error = request(json!({"url": server.uri(), "timeout": "100ms"}))
        .await
        .expect_err("timeout");
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
}

#[tokio::test]
async fn invalid_inputs_are_rejected_before_sending() {
    for input in [
        json!({}),
        json!({"url": "not a url"}),
        json!({"url": "ftp://example.com/file"}),
        json!({"url": "https://example.com", "method": "FETCH"}),
        json!({"url": "https://example.com", "json": {}, "body": "x"}),
        json!({"url": "https://example.com", "timeout": "soon"}),
        json!({"url": "https://example.com", "headers": {"bad name": "x"}}),
        json!({"url": "https://example.com", "retries": 3}),
    ] {
        let result = call(client(false), invocation("fetch", 1), input.clone()).await;
        assert!(
            matches!(result, Err(ActionError::InvalidInput(_))),
            "{input}: {result:?}"
        );
    }
}

#[tokio::test]
async fn header_values_never_reach_error_messages() {
    let input =
        json!({"url": "https://example.com", "headers": {"Authorization": "Bearer s3cret\n"}});
    let error = call(client(false), invocation("fetch", 1), input)
        .await
        .expect_err("invalid header value");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[tokio::test]
async fn private_targets_are_refused_before_connecting() {
    // A live server on loopback proves that nothing was sent to it.
    let server = MockServer::start().await;
    let port = server.address().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let result = call(client(false), invocation("fetch", 1), json!({"url": url})).await;
        let Err(ActionError::Permanent(message)) = result else {
            panic!("{url}: expected a permanent refusal, got {result:?}");
        };
        assert!(
            message.starts_with("refusing to connect to "),
            "{url}: {message}"
        );
        assert!(
            message.contains("STEPWISE_ALLOW_PRIVATE_NETWORKS=1"),
            "{url}: {message}"
        );
    }
    let received = server.received_requests().await.expect("recording is on");
    assert!(
        received.is_empty(),
        "the guard let {} requests through",
        received.len()
    );
}

#[tokio::test]
async fn the_guard_message_names_the_address_and_the_reason() {
    let result = call(
        client(false),
        invocation("fetch", 1),
        json!({"url": "http://127.0.0.1/"}),
    )
    .await;
    assert_eq!(
        result,
        Err(ActionError::Permanent(
            "refusing to connect to 127.0.0.1: loopback address; set \
             STEPWISE_ALLOW_PRIVATE_NETWORKS=1 to allow private networks"
                .to_owned()
        ))
    );
}

#[tokio::test]
async fn redirect_loops_are_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/loop"))
        .mount(&server)
        .await;

    let error = request(json!({"url": format!("{}/loop", server.uri())}))
        .await
        .expect_err("redirect loop");
    assert_eq!(error.class(), "permanent", "{error:?}");
    let received = server.received_requests().await.expect("recording is on");
    assert_eq!(received.len(), 11, "the first request and 10 redirects");
}

#[tokio::test]
async fn an_oversized_body_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 10 * 1024 * 1024 + 1]))
        .mount(&server)
        .await;

    let error = request(json!({"url": server.uri()}))
        .await
        .expect_err("too large");
    assert_eq!(
        error,
        ActionError::Permanent(format!(
            "response body from {}/ exceeds 10 MiB",
            server.uri()
        ))
    );
}

#[tokio::test]
async fn cancellation_aborts_the_request() {
    let server = MockServer::start().await;
    Mock::given(path("/"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;

    let cancellation = CancellationToken::new();
    let ctx = ActionContext::new(
        invocation("fetch", 1),
        support::services(client(true)),
        cancellation.clone(),
    );
    let registry = Registry::builtin();
    let action = registry.get("http.request").expect("registered");
    let started = Instant::now();
    let (result, ()) = tokio::join!(
        action.execute_json(&ctx, json!({"url": server.uri()})),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancellation.cancel();
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5), "not aborted");
    assert!(
        matches!(result, Err(ActionError::Retryable { .. })),
        "{result:?}"
    );
}
