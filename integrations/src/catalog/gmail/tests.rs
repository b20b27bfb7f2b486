//! `gmail.*` against a wiremock stand-in that answers as Gmail does: bearer auth, `me` as the
//! mailbox, `nextPageToken` pages, Google's error object (`status` and `errors[0].reason`)
//! and its 429s; and the MIME messages `send_message` builds, read back.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::mime::{Body, Mailbox, Message};
use super::send_message::SendMessage;
use crate::ActionError;
use crate::action::Action;
use crate::testing::{self, PROVIDER_TOKEN as TOKEN, run};

const SEND: &str = "/gmail/v1/users/me/messages/send";

/// Google's error object, with the finer reason of its `errors` list.
fn google_error(code: u16, status: &str, reason: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status,
                     "errors": [{"message": message, "domain": "usageLimits", "reason": reason}]}})
}

/// Gmail's answer to a send: the stored message.
fn sent(id: &str, thread: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"id": id, "threadId": thread, "labelIds": ["SENT"]}))
}

/// The message of a send request: `raw` decoded, and the rest of the JSON body.
fn raw_message(request: &Request) -> (String, Value) {
    let mut body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    let raw = body
        .as_object_mut()
        .and_then(|fields| fields.remove("raw"))
        .and_then(|raw| raw.as_str().map(str::to_owned))
        .expect("`raw`");
    let bytes = URL_SAFE.decode(raw).expect("base64url");
    (String::from_utf8(bytes).expect("UTF-8"), body)
}

/// The header block of `message` and the text of its base64 parts, decoded.
fn headers_and_parts(message: &str) -> (String, Vec<String>) {
    let (headers, body) = message.split_once("\r\n\r\n").expect("a header block");
    let parts = body
        .split("\r\n\r\n")
        .skip(usize::from(headers.contains("multipart/")))
        .map(|part| {
            let encoded: String = part
                .lines()
                .take_while(|line| !line.starts_with("--"))
                .collect();
            String::from_utf8(STANDARD.decode(encoded).expect("base64 lines")).expect("UTF-8")
        })
        .collect();
    (headers.to_owned(), parts)
}

/// The text of RFC 2047 `B` encoded words (folded or not).
fn decode_words(value: &str) -> String {
    value
        .split_whitespace()
        .map(|word| {
            let payload = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|rest| rest.strip_suffix("?="))
                .unwrap_or_else(|| panic!("`{word}` is not an encoded word"));
            String::from_utf8(STANDARD.decode(payload).expect("base64")).expect("UTF-8")
        })
        .collect()
}

#[tokio::test]
async fn sends_text_and_html_as_one_base64url_mime_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(sent("18f4a2c6e1b0d7a3", "18f4a2c6e1b0d7a3"))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "gmail.send_message",
        json!({"to": ["Ada Lovelace <ada@example.com>", "grace@example.com"],
               "cc": "billing@example.com", "bcc": ["audit@example.com"],
               "subject": "Order 42 refunded",
               "text": "Hi Ada,\nrefunded.\n", "html": "<p>Hi Ada,</p><p>refunded.</p>"}),
    )
    .await
    .expect("sent");
    assert_eq!(
        output,
        json!({"id": "18f4a2c6e1b0d7a3", "thread_id": "18f4a2c6e1b0d7a3", "label_ids": ["SENT"]})
    );
    let received = server.received_requests().await.expect("recording");
    let (message, rest) = raw_message(&received[0]);
    assert_eq!(rest, json!({}), "no thread named");
    let (headers, parts) = headers_and_parts(&message);
    assert_eq!(
        headers,
        "To: Ada Lovelace <ada@example.com>,\r\n grace@example.com\r\n\
         Cc: billing@example.com\r\nBcc: audit@example.com\r\nSubject: Order 42 refunded\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"=_stepwise_alternative\""
    );
    assert_eq!(
        parts,
        ["Hi Ada,\r\nrefunded.\r\n", "<p>Hi Ada,</p><p>refunded.</p>"],
        "the text with CRLF line breaks, then the HTML"
    );
    assert!(
        message.ends_with("--=_stepwise_alternative--\r\n"),
        "{message}"
    );
    assert!(message.lines().all(|line| line.len() <= 78), "{message}");
}

#[tokio::test]
async fn a_reply_names_its_thread_and_the_message_it_answers() {
    let server = MockServer::start().await;
    Mock::given(path(SEND))
        .respond_with(sent("18f4a2d0", "18f4a1d09c3e52b7"))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "gmail.send_message",
        json!({"to": "<ada@example.com>", "subject": "Re: Charged twice for order 42",
               "text": "Refunded.", "thread_id": "18f4a1d09c3e52b7",
               "in_reply_to": "CAF7x2Qp9d8Yw1vZ@mail.gmail.com",
               "from": "Support <support@example.com>", "reply_to": "billing@example.com"}),
    )
    .await
    .expect("sent");
    assert_eq!(output["thread_id"], "18f4a1d09c3e52b7");
    let received = server.received_requests().await.expect("recording");
    let (message, rest) = raw_message(&received[0]);
    assert_eq!(rest, json!({"threadId": "18f4a1d09c3e52b7"}));
    let (headers, parts) = headers_and_parts(&message);
    assert_eq!(
        headers,
        "From: Support <support@example.com>\r\nTo: ada@example.com\r\n\
         Reply-To: billing@example.com\r\nSubject: Re: Charged twice for order 42\r\n\
         In-Reply-To: <CAF7x2Qp9d8Yw1vZ@mail.gmail.com>\r\n\
         References: <CAF7x2Qp9d8Yw1vZ@mail.gmail.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64"
    );
    assert_eq!(parts, ["Refunded."]);
}

#[test]
fn names_and_subjects_beyond_printable_ascii_are_encoded_words_in_short_lines() {
    let mailbox = |text| Mailbox::parse("to", text).expect("an address");
    let subject = "Remboursement de la commande n° 42 — confirmé, merci de votre patience ✓";
    let message = Message {
        from: None,
        to: vec![
            mailbox("Zoë Müller <zoe@example.com>"),
            mailbox("\"Lovelace, Ada\" <ada@example.com>"),
            mailbox("Grace Hopper <grace@example.com>"),
        ],
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: Vec::new(),
        subject: subject.to_owned(),
        in_reply_to: None,
        body: Body::Html("<p>Bonjour Zoë</p>".to_owned()),
    };
    let rendered = message.render();
    assert!(rendered.lines().all(|line| line.len() <= 78), "{rendered}");
    assert!(rendered.is_ascii(), "{rendered}");
    let (headers, parts) = headers_and_parts(&rendered);
    let (to, rest) = headers
        .strip_prefix("To: ")
        .and_then(|rest| rest.split_once("\r\nSubject: "))
        .expect("To, then Subject");
    let to: Vec<&str> = to.split(",\r\n ").collect();
    let (zoe, address) = to[0].rsplit_once(' ').expect("a name and an address");
    assert_eq!(
        (decode_words(zoe).as_str(), address),
        ("Zoë Müller", "<zoe@example.com>")
    );
    assert_eq!(
        to[1..],
        [
            "\"Lovelace, Ada\" <ada@example.com>",
            "Grace Hopper <grace@example.com>"
        ]
    );
    let (encoded_subject, _) = rest.split_once("\r\nMIME-Version").expect("Subject ends");
    assert!(
        encoded_subject.matches("=?UTF-8?B?").count() > 1,
        "folded: {encoded_subject}"
    );
    assert_eq!(decode_words(encoded_subject), subject);
    assert_eq!(parts, ["<p>Bonjour Zoë</p>"]);
}

#[test]
fn a_subject_that_looks_encoded_is_encoded_and_a_plain_one_is_not() {
    let render = |subject: &str| {
        Message {
            from: None,
            to: vec![Mailbox::parse("to", "ada@example.com").expect("an address")],
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            subject: subject.to_owned(),
            in_reply_to: None,
            body: Body::Text(String::new()),
        }
        .render()
    };
    assert!(render("Order 42 refunded").contains("\r\nSubject: Order 42 refunded\r\n"));
    let tricky = render("=?UTF-8?B?SGk=?= is not a word here");
    let line = tricky
        .lines()
        .find(|line| line.starts_with("Subject: "))
        .expect("a subject");
    assert_ne!(line, "Subject: =?UTF-8?B?SGk=?= is not a word here");
    let long = "a".repeat(100);
    let folded = render(&long);
    assert!(folded.lines().all(|line| line.len() <= 78), "{folded}");
}

#[tokio::test]
async fn header_injection_bad_addresses_and_an_empty_body_are_refused_unsent() {
    let server = MockServer::start().await;
    let message = |change: Value| {
        let mut input = json!({"to": "ada@example.com", "subject": "Order 42", "text": "Hi"});
        for (key, value) in change.as_object().expect("fields") {
            input[key] = value.clone();
        }
        input
    };
    let cases = [
        (
            json!({"subject": "Order 42\r\nBcc: mallory@example.com"}),
            "`subject` is one line",
        ),
        (
            json!({"to": "ada@example.com\r\nBcc: mallory@example.com"}),
            "spans several lines",
        ),
        (
            json!({"cc": ["billing@example.com", "not an address"]}),
            "`cc`: `not an address` is not an email address",
        ),
        (json!({"to": []}), "`to` names no recipient"),
        (json!({"text": null}), "set `text`, `html` or both"),
        (
            json!({"in_reply_to": "<a b@mail>"}),
            "`in_reply_to` is a Message-ID",
        ),
        (json!({"to": "zoë@exämple.com"}), "is not ASCII"),
    ];
    for (change, says) in cases {
        let error = run(&server, "gmail.send_message", message(change.clone()))
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, ActionError::InvalidInput(text) if text.contains(says)),
            "{change}: {error:?}"
        );
    }
    let received = server.received_requests().await.expect("recording");
    assert!(received.is_empty(), "nothing is sent");
}

#[tokio::test]
async fn a_send_limited_with_429_is_retryable_after_its_retry_after_and_not_repeated() {
    let server = MockServer::start().await;
    Mock::given(path(SEND))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "12")
                .set_body_json(google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "rateLimitExceeded",
                    "User-rate limit exceeded.  Retry after 2026-12-08T01:00:12.000Z",
                )),
        )
        .mount(&server)
        .await;
    let error = run(
        &server,
        "gmail.send_message",
        json!({"to": "ada@example.com", "subject": "Order 42", "text": "Hi"}),
    )
    .await
    .expect_err("limited");
    assert_eq!(
        error,
        ActionError::Retryable {
            message: "Gmail messages.send answered HTTP 429 Too Many Requests \
                      RESOURCE_EXHAUSTED rateLimitExceeded: User-rate limit exceeded.  Retry \
                      after 2026-12-08T01:00:12.000Z"
                .to_owned(),
            retry_after: Some(Duration::from_secs(12)),
        }
    );
    let received = server.received_requests().await.expect("recording");
    assert_eq!(received.len(), 1, "a send is not repeated within the call");
}

#[tokio::test]
async fn a_per_user_403_limit_is_transient_and_the_daily_sending_limit_is_not() {
    let server = MockServer::start().await;
    Mock::given(path(SEND))
        .and(body_json(json!({"raw": URL_SAFE.encode(
            "To: ada@example.com\r\nSubject: busy\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             SGk=\r\n")})))
        .respond_with(ResponseTemplate::new(403).set_body_json(google_error(
            403,
            "PERMISSION_DENIED",
            "userRateLimitExceeded",
            "User Rate Limit Exceeded",
        )))
        .mount(&server)
        .await;
    Mock::given(path(SEND))
        .respond_with(ResponseTemplate::new(403).set_body_json(google_error(
            403,
            "PERMISSION_DENIED",
            "dailyLimitExceeded",
            "Daily user sending limit exceeded.",
        )))
        .mount(&server)
        .await;
    let send = |subject: &str| json!({"to": "ada@example.com", "subject": subject, "text": "Hi"});
    let busy = run(&server, "gmail.send_message", send("busy"))
        .await
        .expect_err("limited");
    assert!(busy.is_retryable(), "{busy:?}");
    let daily = run(&server, "gmail.send_message", send("daily"))
        .await
        .expect_err("over the daily limit");
    assert_eq!(
        daily,
        ActionError::Permanent(
            "Gmail messages.send answered HTTP 403 Forbidden PERMISSION_DENIED \
             dailyLimitExceeded: Daily user sending limit exceeded."
                .to_owned()
        )
    );
}

#[tokio::test]
async fn a_backend_error_on_send_is_retryable_but_not_repeated_within_the_call() {
    let server = MockServer::start().await;
    Mock::given(path(SEND))
        .respond_with(ResponseTemplate::new(500).set_body_json(google_error(
            500,
            "INTERNAL",
            "backendError",
            "Backend Error",
        )))
        .mount(&server)
        .await;
    let error = run(
        &server,
        "gmail.send_message",
        json!({"to": "ada@example.com", "subject": "Order 42", "text": "Hi"}),
    )
    .await
    .expect_err("failed");
    assert!(error.is_retryable(), "{error:?}");
    let received = server.received_requests().await.expect("recording");
    assert_eq!(
        received.len(),
        1,
        "Gmail may have sent it: the step's retry decides"
    );
}

/// One `messages.list` page answering the request with `token` (none for the first).
async fn list_page(server: &MockServer, token: Option<&str>, ids: &[&str], next: Option<&str>) {
    let mut mock = Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/messages"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("q", "from:ada@example.com is:unread"))
        .and(query_param("maxResults", "2"));
    mock = match token {
        Some(token) => mock.and(query_param("pageToken", token)),
        None => mock.and(query_param_is_missing("pageToken")),
    };
    let mut body = json!({
        "messages": ids.iter().map(|id| json!({"id": id, "threadId": format!("t-{id}")}))
            .collect::<Vec<_>>(),
        "resultSizeEstimate": 5
    });
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(server)
        .await;
}

fn message_ids(output: &Value) -> Vec<&str> {
    output["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["id"].as_str().expect("id"))
        .collect()
}

fn list_input() -> Value {
    json!({"q": "from:ada@example.com is:unread", "max_results": 2})
}

#[tokio::test]
async fn lists_messages_across_pages_by_next_page_token() {
    let server = MockServer::start().await;
    list_page(&server, None, &["m1", "m2"], Some("p-2")).await;
    list_page(&server, Some("p-2"), &["m3", "m4"], Some("p-3")).await;
    list_page(&server, Some("p-3"), &["m5"], None).await;
    let output = run(&server, "gmail.list_messages", list_input())
        .await
        .expect("listed");
    assert_eq!(message_ids(&output), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(
        output["messages"][0],
        json!({"id": "m1", "thread_id": "t-m1"})
    );
    assert_eq!(output["next_page_token"], Value::Null);
}

#[tokio::test]
async fn list_stops_at_max_pages_and_resumes_from_the_page_token() {
    let server = MockServer::start().await;
    list_page(&server, None, &["m1", "m2"], Some("p-2")).await;
    list_page(&server, Some("p-2"), &["m3"], None).await;
    let mut input = list_input();
    input["max_pages"] = json!(1);
    let first = run(&server, "gmail.list_messages", input.clone())
        .await
        .expect("first page");
    assert_eq!(message_ids(&first), ["m1", "m2"]);
    assert_eq!(first["next_page_token"], "p-2");
    input["page_token"] = first["next_page_token"].clone();
    let rest = run(&server, "gmail.list_messages", input)
        .await
        .expect("the rest");
    assert_eq!(message_ids(&rest), ["m3"]);
    assert_eq!(rest["next_page_token"], Value::Null);
}

#[tokio::test]
async fn an_empty_mailbox_lists_no_messages() {
    let server = MockServer::start().await;
    Mock::given(path("/gmail/v1/users/me/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resultSizeEstimate": 0})))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(&server, "gmail.list_messages", json!({}))
        .await
        .expect("listed");
    assert_eq!(output, json!({"messages": [], "next_page_token": null}));
}

#[tokio::test]
async fn gets_a_message_with_its_headers_and_a_missing_one_is_permanent() {
    let server = MockServer::start().await;
    let payload = json!({"partId": "", "mimeType": "text/plain", "filename": "",
        "headers": [{"name": "From", "value": "Ada Lovelace <ada@example.com>"},
                    {"name": "Subject", "value": "Charged twice for order 42"}],
        "body": {"size": 9, "data": "SGVsbG8gQWRh"}});
    Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/messages/m1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("format", "full"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "m1", "threadId": "t1", "labelIds": ["UNREAD", "INBOX"],
            "snippet": "Hello Ada", "sizeEstimate": 512, "historyId": "99",
            "internalDate": "1714547647000", "payload": payload
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/gmail/v1/users/me/messages/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
            "errors": [{"message": "Requested entity was not found.", "domain": "global",
                        "reason": "notFound"}]}})))
        .mount(&server)
        .await;
    let output = run(&server, "gmail.get_message", json!({"message_id": "m1"}))
        .await
        .expect("read");
    assert_eq!(
        output,
        json!({"id": "m1", "thread_id": "t1", "label_ids": ["UNREAD", "INBOX"],
               "snippet": "Hello Ada", "internal_date": "1714547647000", "size_estimate": 512,
               "headers": payload["headers"], "payload": payload})
    );
    let gone = run(&server, "gmail.get_message", json!({"message_id": "gone"}))
        .await
        .expect_err("missing");
    assert_eq!(
        gone,
        ActionError::Permanent(
            "Gmail messages.get answered HTTP 404 Not Found NOT_FOUND notFound: Requested \
             entity was not found."
                .to_owned()
        )
    );
}

#[tokio::test]
async fn a_read_is_retried_after_unavailable_within_the_call() {
    let server = MockServer::start().await;
    Mock::given(path("/gmail/v1/users/me/messages/m1"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": {
            "code": 503, "message": "The service is currently unavailable.",
            "status": "UNAVAILABLE"}})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/gmail/v1/users/me/messages/m1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "m1", "threadId": "t1", "labelIds": ["INBOX"]})))
        .expect(1)
        .mount(&server)
        .await;
    let step = testing::provider_step_attempting(2);
    let ctx = testing::provider_context(&server.uri(), step);
    let output = testing::run_in(
        &ctx,
        "gmail.get_message",
        json!({"message_id": "m1", "format": "minimal"}),
    )
    .await
    .expect("read on the second attempt");
    assert_eq!(
        output,
        json!({"id": "m1", "thread_id": "t1", "label_ids": ["INBOX"], "snippet": null,
               "internal_date": null, "size_estimate": null, "headers": [], "payload": null})
    );
}

#[test]
fn the_rust_action_is_named_after_its_folder() {
    let (provider, _) = SendMessage::NAME.split_once('.').expect("provider.action");
    assert_eq!(provider, provider!());
}
