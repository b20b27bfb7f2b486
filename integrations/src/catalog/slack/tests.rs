//! `slack.*` against a wiremock stand-in that answers as Slack does: HTTP 200 with `ok: false`
//! and an error code, cursor pagination in `response_metadata`.

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ActionError;
use crate::testing::{PROVIDER_TOKEN as TOKEN, run};

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
async fn slack_updates_a_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.update"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"channel": "C024BE91L", "ts": "1700000000.000100", "text": "Refunded"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C024BE91L", "ts": "1700000000.000100", "text": "Refunded",
            "message": {"type": "message", "user": "U0G9QF9C6", "text": "Refunded"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "slack.update_message",
        json!({"channel": "C024BE91L", "ts": "1700000000.000100", "text": "Refunded"}),
    )
    .await
    .expect("updated");
    assert_eq!(
        output,
        json!({"channel": "C024BE91L", "ts": "1700000000.000100", "text": "Refunded"})
    );
}

#[tokio::test]
async fn slack_update_ok_false_is_a_permanent_error_with_slacks_code() {
    let server = MockServer::start().await;
    Mock::given(path("/chat.update"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "message_not_found"})),
        )
        .mount(&server)
        .await;
    let error = run(
        &server,
        "slack.update_message",
        json!({"channel": "C024BE91L", "ts": "1.2", "blocks": [{"type": "divider"}]}),
    )
    .await
    .expect_err("not found");
    assert_eq!(
        error,
        ActionError::Permanent("Slack chat.update failed: message_not_found".to_owned())
    );
}

/// One `conversations.list` page answering the request with `cursor` (none for the first).
async fn channel_page(server: &MockServer, cursor: Option<&str>, ids: &[&str], next: &str) {
    let channels: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "name": format!("chan-{id}"), "is_channel": true,
                   "is_private": *id == "G3", "is_archived": false, "is_member": true,
                   "num_members": 4, "created": 1449252889})
        })
        .collect();
    let mock = Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("limit", "2"))
        .and(query_param("types", "public_channel,private_channel"))
        .and(query_param("exclude_archived", "true"));
    let mock = match cursor {
        Some(cursor) => mock.and(query_param("cursor", cursor)),
        None => mock.and(query_param_is_missing("cursor")),
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "ok": true, "channels": channels, "response_metadata": {"next_cursor": next}
    })))
    .mount(server)
    .await;
}

async fn three_channel_pages(server: &MockServer) {
    channel_page(server, None, &["C1", "C2"], "dGVhbTpDMg==").await;
    channel_page(server, Some("dGVhbTpDMg=="), &["G3", "C4"], "dGVhbTpDNA==").await;
    channel_page(server, Some("dGVhbTpDNA=="), &["C5"], "").await;
}

fn channel_ids(output: &Value) -> Vec<&str> {
    output["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|channel| channel["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test]
async fn slack_lists_channels_across_pages_by_cursor() {
    let server = MockServer::start().await;
    three_channel_pages(&server).await;
    let input = json!({"types": ["public_channel", "private_channel"], "exclude_archived": true,
                       "limit": 2});
    let output = run(&server, "slack.list_channels", input)
        .await
        .expect("listed");
    assert_eq!(channel_ids(&output), ["C1", "C2", "G3", "C4", "C5"]);
    assert_eq!(output["next_cursor"], Value::Null);
    assert_eq!(
        output["channels"][2],
        json!({"id": "G3", "name": "chan-G3", "is_private": true, "is_archived": false,
               "is_member": true, "num_members": 4, "created": 1449252889})
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        3
    );
}

#[tokio::test]
async fn slack_list_channels_stops_at_max_pages_and_resumes_from_the_cursor() {
    let server = MockServer::start().await;
    three_channel_pages(&server).await;
    let input = json!({"types": ["public_channel", "private_channel"], "exclude_archived": true,
                       "limit": 2, "max_pages": 2});
    let first = run(&server, "slack.list_channels", input.clone())
        .await
        .expect("listed");
    assert_eq!(channel_ids(&first), ["C1", "C2", "G3", "C4"]);
    assert_eq!(first["next_cursor"], "dGVhbTpDNA==");
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        2
    );

    let mut rest = input;
    rest["cursor"] = first["next_cursor"].clone();
    let second = run(&server, "slack.list_channels", rest)
        .await
        .expect("listed");
    assert_eq!(channel_ids(&second), ["C5"]);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test]
async fn slack_list_channels_refuses_out_of_range_bounds() {
    let server = MockServer::start().await;
    for input in [
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"max_pages": 0}),
    ] {
        let error = run(&server, "slack.list_channels", input.clone())
            .await
            .expect_err("out of range");
        assert!(
            matches!(error, ActionError::InvalidInput(_)),
            "{input}: {error:?}"
        );
    }
    assert!(
        server
            .received_requests()
            .await
            .expect("recording")
            .is_empty()
    );
}
