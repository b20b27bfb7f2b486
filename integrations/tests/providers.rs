//! The provider actions against wiremock stand-ins: requests as the providers document them,
//! and their error shapes mapped to retryable or permanent failures.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stepwise_integrations::ActionError;
use stepwise_workflows::HttpRetry;
use wiremock::matchers::{
    body_json, body_string, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = support::PROVIDER_TOKEN;

async fn run(server: &MockServer, action: &str, input: Value) -> Result<Value, ActionError> {
    support::run_provider_action(&server.uri(), action, input).await
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

#[tokio::test]
async fn github_comments_on_an_issue() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/issues/1347/comments"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({"body": "Fixed in run 42"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1_234_567, "node_id": "IC_kwDOABC", "body": "Fixed in run 42",
            "html_url": "https://github.com/acme/web/issues/1347#issuecomment-1234567"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "github.comment",
        json!({"owner": "acme", "repo": "web", "issue_number": 1347, "body": "Fixed in run 42"}),
    )
    .await
    .expect("commented");
    assert_eq!(
        output,
        json!({"id": 1_234_567,
               "html_url": "https://github.com/acme/web/issues/1347#issuecomment-1234567"})
    );
}

#[tokio::test]
async fn github_404_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/acme/web/issues/9999/comments"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
        })))
        .mount(&server)
        .await;
    let error = run(
        &server,
        "github.comment",
        json!({"owner": "acme", "repo": "web", "issue_number": 9999, "body": "hi"}),
    )
    .await
    .expect_err("missing");
    assert_eq!(
        error,
        ActionError::Permanent("GitHub comment answered HTTP 404 Not Found: Not Found".to_owned())
    );
    assert_eq!(
        server.received_requests().await.expect("recording").len(),
        1,
        "a 404 is not retried"
    );
}

fn github_issue(number: u64, pull_request: bool) -> Value {
    let mut issue = json!({
        "id": 1_000 + number, "number": number, "title": format!("Issue {number}"),
        "state": "open", "html_url": format!("https://github.com/acme/web/issues/{number}"),
        "user": {"login": "octocat", "id": 1}, "labels": [{"id": 208_045_946, "name": "bug"}],
        "assignees": [{"login": "hubot", "id": 2}], "comments": 3,
        "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z",
        "closed_at": null
    });
    if pull_request {
        issue["pull_request"] = json!({"url": "https://api.github.com/repos/acme/web/pulls/1"});
    }
    issue
}

/// Page `page` of `/repositories/1/issues` (GitHub's links name the repository by ID), the
/// first one at the documented path; `next` is the Link target of the following page.
async fn issue_page(server: &MockServer, page: u64, issues: Vec<Value>, next: Option<String>) {
    let first = format!(
        "<{}/repositories/1/issues?page=1>; rel=\"first\"",
        server.uri()
    );
    let link = match next {
        Some(next) => format!("<{next}>; rel=\"next\", {first}"),
        None => first,
    };
    let mock = Mock::given(method("GET"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()));
    let mock = if page == 1 {
        mock.and(path("/repos/acme/web/issues"))
            .and(query_param("state", "all"))
            .and(query_param("labels", "bug,ui"))
            .and(query_param("per_page", "2"))
    } else {
        mock.and(path("/repositories/1/issues"))
            .and(query_param("page", page.to_string().as_str()))
    };
    mock.respond_with(
        ResponseTemplate::new(200)
            .insert_header("link", link.as_str())
            .set_body_json(issues),
    )
    .expect(1)
    .mount(server)
    .await;
}

fn issue_numbers(output: &Value) -> Vec<u64> {
    output["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|issue| issue["number"].as_u64().expect("number"))
        .collect()
}

fn list_issues_input() -> Value {
    json!({"owner": "acme", "repo": "web", "state": "all", "labels": ["bug", "ui"], "per_page": 2})
}

#[tokio::test]
async fn github_lists_issues_across_pages_by_link_header() {
    let server = MockServer::start().await;
    let page_url = |page: u64| {
        format!(
            "{}/repositories/1/issues?state=all&labels=bug%2Cui&per_page=2&page={page}",
            server.uri()
        )
    };
    issue_page(
        &server,
        1,
        vec![github_issue(5, false), github_issue(4, true)],
        Some(page_url(2)),
    )
    .await;
    issue_page(
        &server,
        2,
        vec![github_issue(3, false), github_issue(2, false)],
        Some(page_url(3)),
    )
    .await;
    issue_page(&server, 3, vec![github_issue(1, false)], None).await;

    let output = run(&server, "github.list_issues", list_issues_input())
        .await
        .expect("listed");
    assert_eq!(issue_numbers(&output), [5, 4, 3, 2, 1]);
    assert_eq!(output["has_more"], false);
    assert_eq!(
        output["issues"][1],
        json!({"id": 1004, "number": 4, "title": "Issue 4", "state": "open",
               "html_url": "https://github.com/acme/web/issues/4", "user": "octocat",
               "labels": ["bug"], "assignees": ["hubot"], "comments": 3,
               "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z",
               "closed_at": null, "is_pull_request": true})
    );
}

#[tokio::test]
async fn github_list_issues_stops_at_max_pages() {
    let server = MockServer::start().await;
    let page_url = |page: u64| format!("{}/repositories/1/issues?page={page}", server.uri());
    issue_page(&server, 1, vec![github_issue(5, false)], Some(page_url(2))).await;
    issue_page(&server, 2, vec![github_issue(4, false)], Some(page_url(3))).await;
    let mut input = list_issues_input();
    input["max_pages"] = json!(2);
    let output = run(&server, "github.list_issues", input)
        .await
        .expect("listed");
    assert_eq!(issue_numbers(&output), [5, 4]);
    assert_eq!(output["has_more"], true);
}

#[tokio::test]
async fn github_list_issues_never_follows_a_link_to_another_origin() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&elsewhere)
        .await;
    for next in [
        format!("{}/repositories/1/issues?page=2", elsewhere.uri()),
        "https://evil.example.com/repositories/1/issues?page=2".to_owned(),
    ] {
        server.reset().await;
        issue_page(&server, 1, vec![github_issue(5, false)], Some(next.clone())).await;
        let error = run(&server, "github.list_issues", list_issues_input())
            .await
            .expect_err("refused");
        let ActionError::Permanent(message) = &error else {
            panic!("{next}: expected a permanent error, got {error:?}");
        };
        let origin = next.split("/repositories").next().expect("origin");
        assert_eq!(
            *message,
            format!(
                "GitHub list issues: the next page link points to {origin}, not to the \
                 connection's API at {}; refused",
                server.uri()
            )
        );
    }
    assert!(
        elsewhere
            .received_requests()
            .await
            .expect("recording")
            .is_empty(),
        "nothing was sent to the other origin"
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
    let mut step = support::provider_step();
    step.http_retry = http_retry;
    let ctx = support::provider_context(&server.uri(), step);
    let error = support::run_in(&ctx, "stripe.get_payment_intent", json!({"id": "pi_1"}))
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

/// A Notion page as a database query or a page read returns it.
fn notion_page(id: &str) -> Value {
    json!({
        "object": "page", "id": id, "created_time": "2022-03-01T19:05:00.000Z",
        "last_edited_time": "2022-07-06T20:25:00.000Z", "archived": false, "cover": null,
        "icon": null, "parent": {"type": "database_id", "database_id": "897e5a76"},
        "properties": {"Status": {"id": "Z%3ClH", "type": "select",
                                  "select": {"id": "1", "name": "Reading", "color": "red"}}},
        "url": format!("https://www.notion.so/{id}")
    })
}

/// One page of `databases/db1/query` answering the request with `cursor` in its body (none
/// for the first).
async fn notion_query_page(server: &MockServer, cursor: Option<&str>, ids: &[&str], next: Value) {
    let mut body = json!({"filter": {"property": "Status", "select": {"equals": "Reading"}},
                          "page_size": 2});
    if let Some(cursor) = cursor {
        body["start_cursor"] = json!(cursor);
    }
    Mock::given(method("POST"))
        .and(path("/v1/databases/db1/query"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("notion-version", "2022-06-28"))
        .and(body_json(body))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "type": "page_or_database", "page_or_database": {},
            "results": ids.iter().map(|id| notion_page(id)).collect::<Vec<_>>(),
            "has_more": !next.is_null(), "next_cursor": next
        })))
        .expect(1)
        .mount(server)
        .await;
}

fn notion_query_input() -> Value {
    json!({"database_id": "db1", "filter": {"property": "Status", "select": {"equals": "Reading"}},
           "page_size": 2})
}

fn page_ids(output: &Value) -> Vec<&str> {
    output["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|page| page["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test]
async fn notion_queries_a_database_across_pages_by_cursor_in_the_body() {
    let server = MockServer::start().await;
    notion_query_page(&server, None, &["p1", "p2"], json!("c-2")).await;
    notion_query_page(&server, Some("c-2"), &["p3", "p4"], json!("c-3")).await;
    notion_query_page(&server, Some("c-3"), &["p5"], Value::Null).await;
    let output = run(&server, "notion.query_database", notion_query_input())
        .await
        .expect("queried");
    assert_eq!(page_ids(&output), ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(output["next_cursor"], Value::Null);
    assert_eq!(
        output["pages"][0],
        json!({"id": "p1", "url": "https://www.notion.so/p1", "archived": false,
               "created_time": "2022-03-01T19:05:00.000Z",
               "last_edited_time": "2022-07-06T20:25:00.000Z",
               "properties": notion_page("p1")["properties"]})
    );
}

#[tokio::test]
async fn notion_query_stops_at_max_pages_and_resumes_from_the_cursor() {
    let server = MockServer::start().await;
    notion_query_page(&server, None, &["p1", "p2"], json!("c-2")).await;
    notion_query_page(&server, Some("c-2"), &["p3"], Value::Null).await;
    let mut input = notion_query_input();
    input["max_pages"] = json!(1);
    let first = run(&server, "notion.query_database", input.clone())
        .await
        .expect("first page");
    assert_eq!(page_ids(&first), ["p1", "p2"]);
    assert_eq!(first["next_cursor"], "c-2");
    input["start_cursor"] = first["next_cursor"].clone();
    let rest = run(&server, "notion.query_database", input)
        .await
        .expect("the rest");
    assert_eq!(page_ids(&rest), ["p3"]);
    assert_eq!(rest["next_cursor"], Value::Null);
}

fn notion_error(status: u16, code: &str, message: &str) -> Value {
    json!({"object": "error", "status": status, "code": code, "message": message,
           "request_id": "c5fcd9a6-1c6a-4bb4-b1d3-2b2b2c2d2e2f"})
}

#[tokio::test]
async fn notion_rate_limited_is_retryable_after_its_retry_after_and_errors_carry_the_code() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/pages/limited"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(notion_error(
                    429,
                    "rate_limited",
                    "You have been rate limited. Please try again in a few minutes.",
                )),
        )
        .mount(&server)
        .await;
    Mock::given(path("/v1/pages/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(notion_error(
            404,
            "object_not_found",
            "Could not find page with ID: missing. Make sure the relevant pages and databases \
             are shared with your integration.",
        )))
        .mount(&server)
        .await;
    // A step may retry a read itself (GET is idempotent): one 429 per attempt here.
    let mut step = support::provider_step();
    step.http_retry = Some(HttpRetry {
        max_attempts: Some(1),
        ..HttpRetry::default()
    });
    let ctx = support::provider_context(&server.uri(), step);
    let limited = support::run_in(&ctx, "notion.get_page", json!({"page_id": "limited"}))
        .await
        .expect_err("limited");
    assert_eq!(
        limited,
        ActionError::Retryable {
            message: "Notion get page answered HTTP 429 Too Many Requests rate_limited: You \
                      have been rate limited. Please try again in a few minutes."
                .to_owned(),
            retry_after: Some(Duration::from_secs(7)),
        }
    );
    let missing = run(&server, "notion.get_page", json!({"page_id": "missing"}))
        .await
        .expect_err("missing");
    assert_eq!(
        missing,
        ActionError::Permanent(
            "Notion get page answered HTTP 404 Not Found object_not_found: Could not find page \
             with ID: missing. Make sure the relevant pages and databases are shared with your \
             integration."
                .to_owned()
        )
    );
}

#[tokio::test]
async fn notion_reads_a_page_with_the_version_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/pages/p1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("notion-version", "2022-06-28"))
        .respond_with(ResponseTemplate::new(200).set_body_json(notion_page("p1")))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(&server, "notion.get_page", json!({"page_id": "p1"}))
        .await
        .expect("read");
    assert_eq!(
        output,
        json!({"id": "p1", "url": "https://www.notion.so/p1", "archived": false,
               "created_time": "2022-03-01T19:05:00.000Z",
               "last_edited_time": "2022-07-06T20:25:00.000Z",
               "parent": {"type": "database_id", "database_id": "897e5a76"},
               "properties": notion_page("p1")["properties"]})
    );
}

#[tokio::test]
async fn notion_appends_blocks_and_a_conflict_is_retryable() {
    let server = MockServer::start().await;
    let children = json!([{"object": "block", "type": "paragraph",
                           "paragraph": {"rich_text": [{"type": "text",
                                                        "text": {"content": "Refunded"}}]}}]);
    Mock::given(method("PATCH"))
        .and(path("/v1/blocks/p1/children"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("notion-version", "2022-06-28"))
        .and(body_json(json!({"children": children})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "next_cursor": null, "has_more": false,
            "results": [{"object": "block", "id": "b1", "type": "paragraph", "has_children": false}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/blocks/busy/children"))
        .respond_with(ResponseTemplate::new(409).set_body_json(notion_error(
            409,
            "conflict_error",
            "Conflict occurred while saving. Please try again.",
        )))
        .mount(&server)
        .await;
    let output = run(
        &server,
        "notion.append_block_children",
        json!({"block_id": "p1", "children": children}),
    )
    .await
    .expect("appended");
    assert_eq!(output, json!({"block_ids": ["b1"]}));
    let conflict = run(
        &server,
        "notion.append_block_children",
        json!({"block_id": "busy", "children": children}),
    )
    .await
    .expect_err("conflict");
    assert!(conflict.is_retryable(), "{conflict:?}");
}
