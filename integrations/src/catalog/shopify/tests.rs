//! `shopify.*` against a wiremock stand-in that answers as a shop's Admin REST API does: the
//! token in `X-Shopify-Access-Token`, pages by the `Link` header's `page_info` cursor, the
//! call-limit bucket header, `{"errors": ...}` answers and 429s with a Retry-After.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::testing::{self, PROVIDER_TOKEN as TOKEN};
use crate::{ActionError, ConnectionAuth, SecretValue};

/// Runs `action` against `server` the way the engine connects a Shopify shop: the token
/// placed as the declaration says, in `X-Shopify-Access-Token`.
async fn run(
    server: &MockServer,
    step: crate::StepInvocation,
    action: &str,
    input: Value,
) -> Result<Value, ActionError> {
    let placement = crate::providers::provider("shopify")
        .and_then(|spec| spec.placement("oauth2"))
        .expect("Shopify places its OAuth token")
        .clone();
    let auth = ConnectionAuth::Placed {
        placement,
        secret: SecretValue::new(TOKEN),
    };
    let ctx = testing::provider_context_with(&server.uri(), step, auth);
    testing::run_in(&ctx, action, input).await
}

fn order(id: u64, name: &str) -> Value {
    json!({
        "id": id, "name": name, "email": "bob.norman@mail.example.com",
        "created_at": "2008-01-10T11:00:00-05:00", "financial_status": "paid",
        "fulfillment_status": null, "total_price": "598.94", "currency": "USD",
    })
}

#[tokio::test]
async fn shopify_lists_orders_across_pages_by_link_header_with_the_token_header() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}/orders.json?limit=2&page_info=eyJsYXN0X2lkIjo0NTA3ODk0Njl9>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/orders.json"))
        .and(header("x-shopify-access-token", TOKEN))
        .and(query_param("status", "any"))
        .and(query_param("limit", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .insert_header("x-shopify-shop-api-call-limit", "1/40")
                .set_body_json(json!({"orders": [order(1002, "#1002"), order(1001, "#1001")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Shopify refuses any parameter but `limit` and `fields` beside `page_info`.
    Mock::given(method("GET"))
        .and(path("/orders.json"))
        .and(query_param("page_info", "eyJsYXN0X2lkIjo0NTA3ODk0Njl9"))
        .and(query_param_is_missing("status"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-shopify-shop-api-call-limit", "2/40")
                .set_body_json(json!({"orders": [order(1000, "#1000")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        testing::provider_step(),
        "shopify.list_orders",
        json!({"status": "any", "limit": 2}),
    )
    .await
    .expect("listed");
    let names: Vec<&str> = output["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|order| order["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["#1002", "#1001", "#1000"]);
    assert_eq!(output["has_more"], false);
    assert_eq!(output["orders"][0]["total_price"], "598.94");
    let received = server.received_requests().await.expect("recording");
    assert!(
        received
            .iter()
            .all(|request| !request.headers.contains_key("authorization")),
        "the token goes only in X-Shopify-Access-Token"
    );
}

#[tokio::test]
async fn shopify_gets_an_order_and_a_missing_one_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orders/450789469.json"))
        .and(header("x-shopify-access-token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"order": {
            "id": 450789469, "name": "#1001", "email": null, "total_price": "598.94",
            "subtotal_price": "597.00", "total_tax": "11.94", "currency": "USD",
            "financial_status": "partially_refunded", "fulfillment_status": null,
            "created_at": "2008-01-10T11:00:00-05:00",
            "line_items": [{"id": 466157049, "title": "IPod Nano - 8gb", "variant_id": 39072856,
                            "sku": "IPOD2008GREEN", "quantity": 1, "price": "199.00"}],
        }})))
        .mount(&server)
        .await;
    Mock::given(path("/orders/1.json"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"errors": "Not Found"})))
        .mount(&server)
        .await;
    let order = run(
        &server,
        testing::provider_step(),
        "shopify.get_order",
        json!({"order_id": 450789469}),
    )
    .await
    .expect("read");
    assert_eq!(order["name"], "#1001");
    assert_eq!(order["line_items"][0]["sku"], "IPOD2008GREEN");
    let missing = run(
        &server,
        testing::provider_step(),
        "shopify.get_order",
        json!({"order_id": 1}),
    )
    .await
    .expect_err("missing");
    assert_eq!(
        missing,
        ActionError::Permanent("Shopify get order answered HTTP 404 Not Found: Not Found".into())
    );
}

#[tokio::test]
async fn shopify_429_with_a_full_bucket_is_retryable_after_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path("/products.json"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2.0")
                .insert_header("x-shopify-shop-api-call-limit", "40/40")
                .set_body_json(json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})),
        )
        .mount(&server)
        .await;
    // A step may retry a read itself (GET is idempotent): one 429 per attempt here.
    let step = testing::provider_step_attempting(1);
    let error = run(&server, step, "shopify.list_products", json!({}))
        .await
        .expect_err("limited");
    let ActionError::Retryable {
        message,
        retry_after,
    } = &error
    else {
        panic!("expected retryable, got {error:?}");
    };
    assert!(
        message.starts_with("Shopify list products answered HTTP 429 Too Many Requests: Exceeded"),
        "{message}"
    );
    assert!(
        retry_after.is_some_and(|wait| wait > Duration::from_secs(1) && wait <= Duration::from_secs(2)),
        "{retry_after:?}"
    );
}

#[tokio::test]
async fn shopify_creates_a_product_and_a_422_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/products.json"))
        .and(header("x-shopify-access-token", TOKEN))
        .and(body_json(json!({"product": {"title": "Burton Custom Freestyle 151", "status": "draft"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"product": {
            "id": 1071559748, "title": "Burton Custom Freestyle 151",
            "handle": "burton-custom-freestyle-151", "status": "draft",
            "admin_graphql_api_id": "gid://shopify/Product/1071559748",
            "variants": [{"id": 1070325019, "title": "Default Title", "sku": "", "price": "0.00"}],
        }})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/products.json"))
        .and(body_json(json!({"product": {"title": " "}})))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"errors": {"title": ["can't be blank"]}})),
        )
        .mount(&server)
        .await;
    let created = run(
        &server,
        testing::provider_step(),
        "shopify.create_product",
        json!({"product": {"title": "Burton Custom Freestyle 151", "status": "draft"}}),
    )
    .await
    .expect("created");
    assert_eq!(
        created,
        json!({"id": 1071559748, "title": "Burton Custom Freestyle 151",
               "handle": "burton-custom-freestyle-151", "status": "draft",
               "admin_graphql_api_id": "gid://shopify/Product/1071559748",
               "variants": [{"id": 1070325019, "title": "Default Title", "sku": "", "price": "0.00"}]})
    );
    let refused = run(
        &server,
        testing::provider_step(),
        "shopify.create_product",
        json!({"product": {"title": " "}}),
    )
    .await
    .expect_err("refused");
    assert_eq!(
        refused,
        ActionError::Permanent(
            "Shopify create product answered HTTP 422 Unprocessable Entity".into()
        )
    );
    let received = server.received_requests().await.expect("recording");
    assert_eq!(received.len(), 2, "a refused write is sent once");
}
