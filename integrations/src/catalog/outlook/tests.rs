//! Outlook's actions against a stand-in that answers as Microsoft Graph does: a bearer token,
//! `202 Accepted` with no body for sends and replies, `@odata.nextLink` pages, the OData error
//! envelope, and throttling as a 429 (or 503/504) with `Retry-After`.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::error::ActionError;
use crate::providers::{ConnectionValues, provider, render_url};
use crate::testing::{self, PROVIDER_TOKEN};

async fn run(server: &MockServer, action: &str, input: Value) -> Result<Value, ActionError> {
    testing::run_provider_action(&server.uri(), action, input).await
}

fn bearer() -> String {
    format!("Bearer {PROVIDER_TOKEN}")
}

fn graph_error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message,
                     "innerError": {"date": "2024-11-18T09:30:05", "request-id": "b4d0b4f6-6c4f-4f5e-9b1e-0d6b4f0f2a11"}}})
}

fn graph_message(id: &str, subject: &str, from: &str) -> Value {
    json!({
        "@odata.etag": "W/\"CQAAABYAAADHcgC8Hl9tRZ/hc1wEUs1TAAAwR4Hg\"",
        "id": id, "subject": subject, "receivedDateTime": "2024-11-18T08:12:44Z",
        "isRead": false, "hasAttachments": false, "bodyPreview": "Hello",
        "conversationId": "AAQkADhNmAiUmCEgDGTRkmA4nQYk=",
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={id}"),
        "from": {"emailAddress": {"name": "Ada Lovelace", "address": from}},
        "toRecipients": [{"emailAddress": {"name": "Megan Bowen", "address": "MeganB@contoso.com"}},
                         {"emailAddress": {"address": "billing@contoso.com"}}]
    })
}

/// One attempt of `action` in a fresh runtime: the step's own retry decides what comes next.
async fn once(server: &MockServer, action: &str, input: Value) -> Result<Value, ActionError> {
    let step = testing::provider_step_attempting(1);
    testing::run_in(&testing::provider_context(&server.uri(), step), action, input).await
}

#[test]
fn the_tenant_parameter_shapes_the_sign_in_endpoints() {
    let outlook = provider("outlook").expect("declared");
    let oauth = outlook.oauth2.as_ref().expect("oauth2");
    let authorize = oauth.authorize_url.as_deref().expect("authorize_url");
    let token = oauth.token_url.as_deref().expect("token_url");
    let common = outlook
        .url_values(&ConnectionValues::default())
        .expect("the default tenant");
    assert_eq!(
        render_url(authorize, &common).expect("rendered"),
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    );
    let mut contoso = ConnectionValues::default();
    contoso
        .params
        .insert("tenant".into(), "contoso.onmicrosoft.com".into());
    outlook.check_params(&contoso.params).expect("a domain");
    assert_eq!(
        render_url(token, &outlook.url_values(&contoso).expect("values")).expect("rendered"),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    for escaping in ["contoso.com/evil", "..", "a?b", "evil.com#"] {
        let mut values = ConnectionValues::default();
        values.params.insert("tenant".into(), escaping.into());
        assert!(outlook.check_params(&values.params).is_err(), "{escaping}");
    }
    assert_eq!(outlook.scope_separator(), " ");
}

#[tokio::test]
async fn sends_mail_that_graph_accepts_without_a_body() {
    let server = MockServer::start().await;
    let message = json!({
        "subject": "Order 42 refunded",
        "body": {"contentType": "text", "content": "Your refund is on its way."},
        "toRecipients": [{"emailAddress": {"address": "ada@contoso.com"}}]
    });
    Mock::given(method("POST"))
        .and(path("/me/microsoft.graph.sendMail"))
        .and(header("authorization", bearer().as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"Message": message, "SaveToSentItems": false}),
        ))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "outlook.send_mail",
        json!({"message": message, "save_to_sent_items": false}),
    )
    .await
    .expect("accepted");
    assert_eq!(output, json!({}));
    let no_recipient = run(
        &server,
        "outlook.send_mail",
        json!({"message": {"subject": "s", "toRecipients": []}}),
    )
    .await
    .expect_err("no recipient");
    assert!(
        matches!(&no_recipient, ActionError::InvalidInput(m) if m.contains("with.message.toRecipients")),
        "{no_recipient:?}"
    );
}

#[tokio::test]
async fn replies_with_a_comment_and_refuses_a_comment_with_a_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/me/messages/AAMkADhMGAAA=/microsoft.graph.reply"))
        .and(header("authorization", bearer().as_str()))
        .and(body_json(json!({"Comment": "Refunded."})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "outlook.reply",
        json!({"message_id": "AAMkADhMGAAA=", "comment": "Refunded."}),
    )
    .await
    .expect("replied");
    assert_eq!(output, json!({}));
    let both = run(
        &server,
        "outlook.reply",
        json!({"message_id": "AAMkADhMGAAA=", "comment": "a",
               "message": {"body": {"contentType": "text", "content": "b"}}}),
    )
    .await
    .expect_err("both");
    assert_eq!(
        both,
        ActionError::InvalidInput("set `comment` or `message.body`, not both".into())
    );
}

/// Page 1 names page 2 by a full `@odata.nextLink` carrying the query and a skip token.
async fn two_message_pages(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/me/messages"))
        .and(header("authorization", bearer().as_str()))
        .and(query_param("$top", "2"))
        .and(query_param("$filter", "isRead eq false"))
        .and(query_param_is_missing("$skip"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('bb8775a4')/messages",
            "value": [graph_message("m1", "Refund for order 42", "ada@contoso.com"),
                      graph_message("m2", "Invoice 7", "grace@contoso.com")],
            "@odata.nextLink": format!(
                "{}/me/messages?%24top=2&%24filter=isRead+eq+false&%24skip=2", server.uri()
            )
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/me/messages"))
        .and(header("authorization", bearer().as_str()))
        .and(query_param("$skip", "2"))
        .and(query_param("$top", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [graph_message("m3", "Welcome", "hello@contoso.com")]
        })))
        .mount(server)
        .await;
}

fn subjects(output: &Value) -> Vec<&str> {
    output["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["subject"].as_str().expect("subject"))
        .collect()
}

#[tokio::test]
async fn lists_messages_across_next_links() {
    let server = MockServer::start().await;
    two_message_pages(&server).await;
    let input = json!({"top": 2, "filter": "isRead eq false"});
    let output = run(&server, "outlook.list_messages", input.clone())
        .await
        .expect("listed");
    assert_eq!(
        subjects(&output),
        ["Refund for order 42", "Invoice 7", "Welcome"]
    );
    assert_eq!(output["has_more"], false);
    assert_eq!(
        output["messages"][0],
        json!({"id": "m1", "subject": "Refund for order 42", "from": "ada@contoso.com",
               "from_name": "Ada Lovelace", "to": ["MeganB@contoso.com", "billing@contoso.com"],
               "received_at": "2024-11-18T08:12:44Z", "is_read": false,
               "has_attachments": false, "body_preview": "Hello",
               "conversation_id": "AAQkADhNmAiUmCEgDGTRkmA4nQYk=",
               "web_link": "https://outlook.office365.com/owa/?ItemID=m1"})
    );
    let mut first_page = input;
    first_page["max_pages"] = json!(1);
    let output = run(&server, "outlook.list_messages", first_page)
        .await
        .expect("one page");
    assert_eq!(subjects(&output), ["Refund for order 42", "Invoice 7"]);
    assert_eq!(output["has_more"], true);
}

#[tokio::test]
async fn gets_a_message_with_its_body() {
    let server = MockServer::start().await;
    let mut message = graph_message("AAMkADhMGAAA=", "Refund for order 42", "ada@contoso.com");
    message["body"] = json!({"contentType": "html", "content": "<p>Charged twice</p>"});
    message["ccRecipients"] = json!([{"emailAddress": {"address": "billing@contoso.com"}}]);
    Mock::given(method("GET"))
        .and(path("/me/messages/AAMkADhMGAAA="))
        .and(header("authorization", bearer().as_str()))
        .and(query_param("$select", "subject,body,ccRecipients"))
        .respond_with(ResponseTemplate::new(200).set_body_json(message))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "outlook.get_message",
        json!({"message_id": "AAMkADhMGAAA=", "select": ["subject", "body", "ccRecipients"]}),
    )
    .await
    .expect("read");
    assert_eq!(output["body_type"], "html");
    assert_eq!(output["body"], "<p>Charged twice</p>");
    assert_eq!(output["cc"], json!(["billing@contoso.com"]));
    assert_eq!(output["from"], "ada@contoso.com");
}

#[tokio::test]
async fn throttling_waits_for_retry_after_and_errors_carry_graphs_code() {
    let server = MockServer::start().await;
    Mock::given(path("/me/messages/throttled"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "12")
                .set_body_json(graph_error(
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                )),
        )
        .mount(&server)
        .await;
    Mock::given(path("/me/messages/busy"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "3")
                .set_body_json(graph_error(
                    "serviceNotAvailable",
                    "The service is temporarily unavailable.",
                )),
        )
        .mount(&server)
        .await;
    Mock::given(path("/me/messages/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(graph_error(
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )))
        .mount(&server)
        .await;
    let throttled = once(&server, "outlook.get_message", json!({"message_id": "throttled"}))
        .await
        .expect_err("throttled");
    assert_eq!(
        throttled,
        ActionError::Retryable {
            message: "Microsoft Outlook get message answered HTTP 429 Too Many Requests \
                      ApplicationThrottled: Application is over its MailboxConcurrency limit."
                .into(),
            retry_after: Some(Duration::from_secs(12)),
        }
    );
    let busy = once(&server, "outlook.get_message", json!({"message_id": "busy"}))
        .await
        .expect_err("busy");
    assert!(
        matches!(&busy, ActionError::Retryable { retry_after: Some(wait), .. }
            if *wait == Duration::from_secs(3)),
        "{busy:?}"
    );
    let get = |id: &str| json!({"message_id": id});
    let gone = run(&server, "outlook.get_message", get("gone"))
        .await
        .expect_err("gone");
    assert_eq!(
        gone,
        ActionError::Permanent(
            "Microsoft Outlook get message answered HTTP 404 Not Found ErrorItemNotFound: The \
             specified object was not found in the store."
                .into()
        )
    );
}
