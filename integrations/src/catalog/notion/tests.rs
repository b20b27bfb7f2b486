//! `notion.*` against a wiremock stand-in that answers as Notion does: the `Notion-Version`
//! header, the cursor in the JSON body, the error object and its `rate_limited` 429.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ActionError;
use crate::testing::{self, PROVIDER_TOKEN as TOKEN, run};

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
    let step = testing::provider_step_attempting(1);
    let ctx = testing::provider_context(&server.uri(), step);
    let limited = testing::run_in(&ctx, "notion.get_page", json!({"page_id": "limited"}))
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

#[tokio::test]
async fn notion_creates_a_page_in_a_database_and_a_validation_error_is_permanent() {
    let server = MockServer::start().await;
    let properties = json!({"Name": {"title": [{"text": {"content": "Order 42 refunded"}}]}});
    Mock::given(method("POST"))
        .and(path("/v1/pages"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("notion-version", "2022-06-28"))
        .and(body_json(json!({
            "parent": {"database_id": "d9824bdc84454327be8b5b47500af6ce"},
            "properties": properties,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(notion_page("p-42")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/pages"))
        .and(body_json(json!({"parent": {"page_id": "b55c9c91"}, "properties": {"Status": {}}})))
        .respond_with(ResponseTemplate::new(400).set_body_json(notion_error(
            400,
            "validation_error",
            "Status is not a property that exists.",
        )))
        .mount(&server)
        .await;
    let created = run(
        &server,
        "notion.create_page",
        json!({"parent": {"database_id": "d9824bdc84454327be8b5b47500af6ce"}, "properties": properties}),
    )
    .await
    .expect("created");
    assert_eq!(created["id"], "p-42");
    assert_eq!(created["archived"], false);
    let refused = run(
        &server,
        "notion.create_page",
        json!({"parent": {"page_id": "b55c9c91"}, "properties": {"Status": {}}}),
    )
    .await
    .expect_err("refused");
    assert_eq!(
        refused,
        ActionError::Permanent(
            "Notion create page answered HTTP 400 Bad Request validation_error: Status is not a \
             property that exists."
                .to_owned()
        )
    );
    let sent = server.received_requests().await.expect("recording");
    assert_eq!(sent.len(), 2, "a refused write is sent once");
}
