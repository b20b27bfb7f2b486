//! `stripe.*` against a wiremock stand-in that answers as Stripe does: form bodies, the step's
//! idempotency key on every write, the error object, 5xx retried with the same key.

use std::time::Duration;

use serde_json::{Value, json};
use stepwise_workflows::HttpRetry;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ActionError;
use crate::testing::{self, PROVIDER_TOKEN as TOKEN, run};

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

#[tokio::test]
async fn stripe_creates_a_refund_with_the_step_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("idempotency-key", "run-1:provider"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "payment_intent=pi_3MtwBwLkdIwHu7ix28a3tqPa&amount=1500&reason=requested_by_customer\
             &metadata%5Border%5D=42",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_refund()))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "stripe.create_refund",
        json!({"payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "amount": 1500,
               "reason": "requested_by_customer", "metadata": {"order": "42"}}),
    )
    .await
    .expect("refunded");
    assert_eq!(
        output,
        json!({"id": "re_3MtwBwLkdIwHu7ix0fCgzxHq", "status": "succeeded", "amount": 1500,
               "currency": "usd", "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
               "charge": "ch_3MtwBwLkdIwHu7ix09jTVC27"})
    );
}

fn stripe_refund() -> Value {
    json!({
        "id": "re_3MtwBwLkdIwHu7ix0fCgzxHq", "object": "refund", "amount": 1500,
        "balance_transaction": "txn_3MtwBwLkdIwHu7ix0xSzlCna",
        "charge": "ch_3MtwBwLkdIwHu7ix09jTVC27", "created": 1_692_942_318, "currency": "usd",
        "metadata": {"order": "42"}, "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "reason": "requested_by_customer", "receipt_number": null,
        "source_transfer_reversal": null, "status": "succeeded", "transfer_reversal": null
    })
}

#[tokio::test]
async fn stripe_refund_sends_the_same_idempotency_key_on_retry_and_re_run() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "type": "api_error", "message": "Something went wrong on Stripe's end."
        }})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_refund()))
        .mount(&server)
        .await;
    let input = json!({"charge": "ch_3MtwBwLkdIwHu7ix09jTVC27"});
    run(&server, "stripe.create_refund", input.clone())
        .await
        .expect("the retried request succeeded");
    // The step executed again, as after a crash before its result was committed.
    run(&server, "stripe.create_refund", input)
        .await
        .expect("re-run");
    let received = server.received_requests().await.expect("recording");
    let keys: Vec<&str> = received
        .iter()
        .map(|request| {
            request.headers["idempotency-key"]
                .to_str()
                .expect("ASCII key")
        })
        .collect();
    assert_eq!(
        keys, ["run-1:provider"; 3],
        "a 500, its retry, then the re-run"
    );
}

#[tokio::test]
async fn stripe_refund_maps_the_error_object_and_needs_one_target() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "charge_already_refunded",
            "message": "Charge ch_1 has already been refunded.",
            "doc_url": "https://stripe.com/docs/error-codes/charge-already-refunded"
        }})))
        .mount(&server)
        .await;
    let error = run(&server, "stripe.create_refund", json!({"charge": "ch_1"}))
        .await
        .expect_err("refunded twice");
    assert_eq!(
        error,
        ActionError::Permanent(
            "Stripe create refund answered HTTP 400 Bad Request invalid_request_error \
             charge_already_refunded: Charge ch_1 has already been refunded."
                .to_owned()
        )
    );
    for input in [
        json!({}),
        json!({"charge": "ch_1", "payment_intent": "pi_1"}),
    ] {
        let error = run(&server, "stripe.create_refund", input.clone())
            .await
            .expect_err("ambiguous");
        assert_eq!(
            error,
            ActionError::InvalidInput(
                "set exactly one of `payment_intent` and `charge`".to_owned()
            ),
            "{input}"
        );
    }
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        1
    );
}

#[tokio::test]
async fn stripe_reads_a_payment_intent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "object": "payment_intent", "amount": 2000,
            "amount_capturable": 0, "amount_received": 2000, "currency": "usd",
            "customer": {"id": "cus_NffrFeUfNV2Hib", "object": "customer"},
            "description": null, "latest_charge": "ch_3MtwBwLkdIwHu7ix09jTVC27",
            "livemode": false, "metadata": {"order": "42"}, "created": 1_680_800_504,
            "payment_method_types": ["card"], "status": "succeeded"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "stripe.get_payment_intent",
        json!({"id": "pi_3MtwBwLkdIwHu7ix28a3tqPa"}),
    )
    .await
    .expect("read");
    assert_eq!(
        output,
        json!({"id": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "status": "succeeded", "amount": 2000,
               "amount_received": 2000, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib",
               "latest_charge": "ch_3MtwBwLkdIwHu7ix09jTVC27", "description": null,
               "metadata": {"order": "42"}, "created": 1_680_800_504, "livemode": false})
    );
    let received = server.received_requests().await.expect("recording");
    assert!(
        !received[0].headers.contains_key("idempotency-key"),
        "a GET needs no key"
    );
}

#[tokio::test]
async fn stripe_missing_payment_intent_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/payment_intents/pi_missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "resource_missing", "param": "intent",
            "message": "No such payment_intent: 'pi_missing'"
        }})))
        .mount(&server)
        .await;
    let error = run(
        &server,
        "stripe.get_payment_intent",
        json!({"id": "pi_missing"}),
    )
    .await
    .expect_err("missing");
    assert_eq!(
        error,
        ActionError::Permanent(
            "Stripe get payment intent answered HTTP 404 Not Found invalid_request_error \
             resource_missing param `intent`: No such payment_intent: 'pi_missing'"
                .to_owned()
        )
    );
}

/// Requests `stripe.get_payment_intent` sends against a provider answering 503, with the step's
/// `http_retry`.
async fn requests_against_503(http_retry: Option<HttpRetry>) -> usize {
    let server = MockServer::start().await;
    Mock::given(path("/v1/payment_intents/pi_1"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut step = testing::provider_step();
    step.http_retry = http_retry;
    let ctx = testing::provider_context(&server.uri(), step);
    let error = testing::run_in(&ctx, "stripe.get_payment_intent", json!({"id": "pi_1"}))
        .await
        .expect_err("unavailable");
    assert!(error.is_retryable(), "{error:?}");
    server.received_requests().await.expect("recording").len()
}

#[tokio::test]
async fn a_steps_http_retry_overrides_the_integrations_retry_policy() {
    assert_eq!(requests_against_503(None).await, 3, "the default policy");
    let once = HttpRetry {
        max_attempts: Some(1),
        ..HttpRetry::default()
    };
    assert_eq!(requests_against_503(Some(once)).await, 1);
    let five_quick = HttpRetry {
        max_attempts: Some(5),
        initial_delay: Some(Duration::from_millis(1)),
        max_delay: Some(Duration::from_millis(2)),
        budget: None,
    };
    assert_eq!(requests_against_503(Some(five_quick)).await, 5);
}
