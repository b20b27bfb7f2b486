//! `openai.*` against a wiremock stand-in that answers as OpenAI does: the key as a bearer
//! token, the error object, `x-ratelimit-*` request and token quotas, 429s.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ActionError;
use crate::testing::{PROVIDER_TOKEN as TOKEN, run};

/// OpenAI's quota headers on an answer: `requests` and `tokens` left, resets as durations.
fn openai_quota(template: ResponseTemplate, requests: &str, tokens: &str) -> ResponseTemplate {
    template
        .insert_header("x-ratelimit-limit-requests", "500")
        .insert_header("x-ratelimit-remaining-requests", requests)
        .insert_header("x-ratelimit-reset-requests", "120ms")
        .insert_header("x-ratelimit-limit-tokens", "200000")
        .insert_header("x-ratelimit-remaining-tokens", tokens)
        .insert_header("x-ratelimit-reset-tokens", "6m0s")
}

fn openai_error(kind: &str, code: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[tokio::test]
async fn openai_creates_a_chat_completion_with_the_key_as_bearer() {
    let server = MockServer::start().await;
    let messages = json!([{"role": "user", "content": "Classify: charged twice"}]);
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2}),
        ))
        .respond_with(openai_quota(
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1_677_858_242,
                "model": "gpt-4o-mini-2024-07-18",
                "usage": {"prompt_tokens": 13, "completion_tokens": 1, "total_tokens": 14},
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "billing"}}]
            })),
            "499",
            "199986",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "openai.create_chat_completion",
        json!({"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2}),
    )
    .await
    .expect("completed");
    assert_eq!(
        output,
        json!({"id": "chatcmpl-abc123", "model": "gpt-4o-mini-2024-07-18", "content": "billing",
               "finish_reason": "stop", "prompt_tokens": 13, "completion_tokens": 1,
               "total_tokens": 14})
    );
}

#[tokio::test]
async fn openai_errors_carry_the_error_object_and_insufficient_quota_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/chat/completions"))
        .and(body_json(
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(openai_error(
            "invalid_request_error",
            "model_not_found",
            "The model `gpt-9` does not exist or you do not have access to it.",
        )))
        .mount(&server)
        .await;
    Mock::given(path("/chat/completions"))
        .and(body_json(
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .respond_with(ResponseTemplate::new(429).set_body_json(openai_error(
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        )))
        .mount(&server)
        .await;
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    let missing = run(&server, "openai.create_chat_completion", chat("gpt-9"))
        .await
        .expect_err("no such model");
    assert_eq!(
        missing,
        ActionError::Permanent(
            "OpenAI create chat completion answered HTTP 404 Not Found invalid_request_error \
             model_not_found: The model `gpt-9` does not exist or you do not have access to it."
                .to_owned()
        )
    );
    let billing = run(&server, "openai.create_chat_completion", chat("gpt-4o"))
        .await
        .expect_err("no quota");
    assert!(
        matches!(&billing, ActionError::Permanent(message)
            if message.contains("HTTP 429 Too Many Requests insufficient_quota")),
        "{billing:?}"
    );
}

#[tokio::test]
async fn openai_429_with_spent_tokens_waits_for_the_token_reset() {
    let server = MockServer::start().await;
    Mock::given(path("/embeddings"))
        .respond_with(openai_quota(
            ResponseTemplate::new(429).set_body_json(openai_error(
                "tokens",
                "rate_limit_exceeded",
                "Rate limit reached for text-embedding-3-small on tokens per min (TPM).",
            )),
            "499",
            "0",
        ))
        .mount(&server)
        .await;
    let error = run(
        &server,
        "openai.create_embeddings",
        json!({"model": "text-embedding-3-small", "input": "Refund for order 42"}),
    )
    .await
    .expect_err("limited");
    let ActionError::Retryable {
        message,
        retry_after: Some(wait),
    } = &error
    else {
        panic!("expected a retryable error with a wait, got {error:?}");
    };
    assert!(message.contains("tokens rate_limit_exceeded"), "{message}");
    // The token quota refills in 6 minutes; the request quota is not what ran out.
    assert!(
        *wait > Duration::from_secs(350) && *wait <= Duration::from_secs(360),
        "{wait:?}"
    );
}

#[tokio::test]
async fn openai_creates_embeddings_in_input_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/embeddings"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(
            json!({"model": "text-embedding-3-small", "input": ["refund", "checkout"]}),
        ))
        .respond_with(openai_quota(
            ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "model": "text-embedding-3-small",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.25, -0.5]},
                    {"object": "embedding", "index": 1, "embedding": [0.125, 1.0]}
                ],
                "usage": {"prompt_tokens": 2, "total_tokens": 2}
            })),
            "499",
            "199998",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "openai.create_embeddings",
        json!({"model": "text-embedding-3-small", "input": ["refund", "checkout"]}),
    )
    .await
    .expect("embedded");
    assert_eq!(
        output,
        json!({"model": "text-embedding-3-small", "embeddings": [[0.25, -0.5], [0.125, 1.0]],
               "prompt_tokens": 2, "total_tokens": 2})
    );
}

#[tokio::test]
async fn openai_lists_models_and_a_key_without_the_scope_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/models"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"},
                {"id": "ft:gpt-4o-mini:acme::9x", "object": "model", "created": 1_730_000_000,
                 "owned_by": "acme"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(&server, "openai.list_models", json!({}))
        .await
        .expect("listed");
    assert_eq!(
        output,
        json!({"models": [
            {"id": "gpt-4o-mini", "owned_by": "system", "created": 1_721_172_741},
            {"id": "ft:gpt-4o-mini:acme::9x", "owned_by": "acme", "created": 1_730_000_000}
        ]})
    );

    // A restricted key without `model.read`: OpenAI states no code, only the type.
    let restricted = MockServer::start().await;
    Mock::given(path("/models"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "message": "You have insufficient permissions for this operation. Missing scopes: \
                        model.read.",
            "type": "invalid_request_error", "param": null, "code": null
        }})))
        .mount(&restricted)
        .await;
    let error = run(&restricted, "openai.list_models", json!({}))
        .await
        .expect_err("no scope");
    assert_eq!(
        error,
        ActionError::Permanent(
            "OpenAI list models answered HTTP 403 Forbidden invalid_request_error: You have \
             insufficient permissions for this operation. Missing scopes: model.read."
                .to_owned()
        )
    );
    assert_eq!(
        restricted
            .received_requests()
            .await
            .expect("recording")
            .len(),
        1,
        "a 403 is not retried"
    );
}
