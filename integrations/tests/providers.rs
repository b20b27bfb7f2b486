//! The provider actions against wiremock stand-ins: requests as the providers document them,
//! and their error shapes mapped to retryable or permanent failures.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{
    ActionContext, ActionError, ActionOutcome, ActionServices, ConnectionAuth, ConnectionProvider,
    IntegrationRuntime, Registry, SecretValue,
};
use support::{client, invocation};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "xoxb-test-token";

/// A connection whose OAuth app points the integration at `base_url`.
struct Connection {
    base_url: String,
}

#[async_trait]
impl ConnectionProvider for Connection {
    async fn auth(&self, _tenant: &str, _connection: &str) -> Result<ConnectionAuth, ActionError> {
        Ok(ConnectionAuth::Bearer(SecretValue::new(TOKEN)))
    }

    async fn refresh_rejected(
        &self,
        _tenant: &str,
        connection: &str,
        _rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        Err(ActionError::Permanent(format!(
            "`{connection}` cannot be refreshed"
        )))
    }

    async fn base_url(
        &self,
        _tenant: &str,
        _connection: &str,
    ) -> Result<Option<String>, ActionError> {
        Ok(Some(self.base_url.clone()))
    }
}

async fn run(server: &MockServer, action: &str, input: Value) -> Result<Value, ActionError> {
    let runtime = IntegrationRuntime::new(client(true), &MetricsRegistry::new()).expect("runtime");
    let services = ActionServices::new(runtime).with_connections(Arc::new(Connection {
        base_url: server.uri(),
    }));
    let mut step = invocation("provider", 1);
    step.connection = Some("acme".to_owned());
    let ctx = ActionContext::new(step, Arc::new(services), CancellationToken::new());
    let registry = Registry::builtin();
    let action = registry.get(action).expect("registered");
    match action.execute_json(&ctx, input).await? {
        ActionOutcome::Done(output) => Ok(output),
        other => panic!("the action did not finish: {other:?}"),
    }
}

async fn slack(server: &MockServer, reply: Value) -> Result<Value, ActionError> {
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"channel": "#sales", "text": "Paid"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .mount(server)
        .await;
    run(
        server,
        "slack.post_message",
        json!({"channel": "#sales", "text": "Paid"}),
    )
    .await
}

#[tokio::test]
async fn slack_posts_a_message() {
    let server = MockServer::start().await;
    let output = slack(
        &server,
        json!({"ok": true, "channel": "C024BE91L", "ts": "1700000000.000100", "message": {}}),
    )
    .await
    .expect("posted");
    assert_eq!(
        output,
        json!({"channel": "C024BE91L", "ts": "1700000000.000100"})
    );
}

#[tokio::test]
async fn slack_ok_false_is_mapped_by_error_code() {
    for (code, retryable) in [
        ("ratelimited", true),
        ("invalid_auth", false),
        ("channel_not_found", false),
    ] {
        let server = MockServer::start().await;
        let error = slack(&server, json!({"ok": false, "error": code}))
            .await
            .expect_err(code);
        assert_eq!(error.is_retryable(), retryable, "{code}: {error:?}");
        assert_eq!(
            error.to_string(),
            format!("Slack chat.postMessage failed: {code}")
        );
        let received = server.received_requests().await.expect("recording");
        assert_eq!(
            received.len(),
            1,
            "{code}: a POST without a key is sent once"
        );
    }
}

#[tokio::test]
async fn slack_needs_text_or_blocks() {
    let server = MockServer::start().await;
    let error = run(&server, "slack.post_message", json!({"channel": "#sales"}))
        .await
        .expect_err("no text");
    assert!(matches!(error, ActionError::InvalidInput(_)), "{error:?}");
}

#[tokio::test]
async fn github_creates_an_issue() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web%20site/issues"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"title": "Broken", "labels": ["bug"]})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1, "number": 1347, "state": "open",
            "html_url": "https://github.com/acme/web/issues/1347", "title": "Broken"
        })))
        .mount(&server)
        .await;
    let output = run(
        &server,
        "github.create_issue",
        json!({"owner": "acme", "repo": "web site", "title": "Broken", "labels": ["bug"]}),
    )
    .await
    .expect("created");
    assert_eq!(
        output,
        json!({"id": 1, "number": 1347, "state": "open",
               "html_url": "https://github.com/acme/web/issues/1347"})
    );
}

#[tokio::test]
async fn github_secondary_rate_limit_is_retryable_and_other_403s_are_not() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/acme/limited/issues"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/repos/acme/private/issues"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&server)
        .await;
    let issue = |repo: &str| json!({"owner": "acme", "repo": repo, "title": "t"});

    let limited = run(&server, "github.create_issue", issue("limited"))
        .await
        .expect_err("limited");
    let ActionError::Retryable { retry_after, .. } = &limited else {
        panic!("expected retryable, got {limited:?}");
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(30)));

    let private = run(&server, "github.create_issue", issue("private"))
        .await
        .expect_err("forbidden");
    assert_eq!(
        private,
        ActionError::Permanent(
            "GitHub create issue answered HTTP 403 Forbidden: Resource not accessible by \
             integration"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn stripe_creates_a_customer_with_the_step_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("idempotency-key", "run-1:provider"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "email=ada%40example.com&name=Ada+Lovelace&metadata%5Bplan%5D=pro",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cus_NffrFeUfNV2Hib", "object": "customer", "email": "ada@example.com",
            "name": "Ada Lovelace", "livemode": false
        })))
        .mount(&server)
        .await;
    let output = run(
        &server,
        "stripe.create_customer",
        json!({"email": "ada@example.com", "name": "Ada Lovelace", "metadata": {"plan": "pro"}}),
    )
    .await
    .expect("created");
    assert_eq!(
        output,
        json!({"id": "cus_NffrFeUfNV2Hib", "email": "ada@example.com",
               "name": "Ada Lovelace", "livemode": false})
    );
}

#[tokio::test]
async fn stripe_errors_carry_the_error_object_and_5xx_is_retried_with_the_key() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/customers"))
        .and(body_string("email=not-an-email"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "email_invalid",
            "message": "Invalid email address: not-an-email", "param": "email"
        }})))
        .mount(&server)
        .await;
    Mock::given(path("/v1/customers"))
        .and(body_string("name=Busy"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "type": "api_error", "message": "Something went wrong"
        }})))
        .mount(&server)
        .await;

    let invalid = run(
        &server,
        "stripe.create_customer",
        json!({"email": "not-an-email"}),
    )
    .await
    .expect_err("invalid");
    assert_eq!(
        invalid,
        ActionError::Permanent(
            "Stripe create customer answered HTTP 400 Bad Request invalid_request_error \
             email_invalid param `email`: Invalid email address: not-an-email"
                .to_owned()
        )
    );
    let busy = run(&server, "stripe.create_customer", json!({"name": "Busy"}))
        .await
        .expect_err("500");
    assert!(busy.is_retryable(), "{busy:?}");
    let received = server.received_requests().await.expect("recording");
    assert_eq!(
        received.len(),
        1 + 3,
        "the keyed POST was retried in the request"
    );
}
