//! Declared actions against wiremock stand-ins, for what the migrated provider actions do not
//! use: page and offset pagination, a cursor in the JSON body with a `has_more` flag, a
//! multipart body, an error envelope with transient and permanent codes (Google's shape), and
//! an answer that does not fit the output schema. The provider actions' own tests
//! (`catalog/{provider}/tests.rs`, `contract_fixtures.rs`) cover the rest.

mod support;

use serde_json::{Value, json};
use std::sync::OnceLock;
use stepwise_integrations::declarative::{ActionSpec, DeclaredAction};

use stepwise_integrations::providers::{self, ProviderSpec};
use stepwise_integrations::{ActionError, DynAction};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A provider reading errors the way Google's APIs state them.
const PROVIDER: &str = "name: acme\ndisplay_name: Acme\nauth: [bearer]\nheaders:\n  x-api-version: '7'\n\
    errors:\n  code: [error.status]\n  message: error.message\n  transient_codes: [UNAVAILABLE]\n";

/// The action `name` declared by `yaml`, of the provider above.
fn action(name: &str, yaml: &str) -> &'static DeclaredAction {
    // Registered, as a catalogue provider is, so the runtime adds its static headers.
    static ACME: OnceLock<&'static ProviderSpec> = OnceLock::new();
    let provider = *ACME.get_or_init(|| providers::register(PROVIDER).expect("provider"));
    let spec: ActionSpec = serde_saphyr::from_str(yaml).expect("an action declaration");
    Box::leak(Box::new(
        DeclaredAction::new(provider, name, spec).expect("a consistent declaration"),
    ))
}

async fn run(
    server: &MockServer,
    action: &'static DeclaredAction,
    input: Value,
) -> Result<Value, ActionError> {
    let ctx = support::provider_context(&server.uri(), support::provider_step());
    match DynAction::execute_json(&action, &ctx, input).await? {
        stepwise_integrations::ActionOutcome::Done(output) => Ok(output),
        other => panic!("the action did not finish: {other:?}"),
    }
}

const LIST_INPUT: &str = "input:\n  properties:\n    size: {type: integer, default: 2, description: Page size.}\n    \
    max_pages: {type: integer, minimum: 1, maximum: 10, default: 10, description: Pages at most.}\n";

const LIST_OUTPUT: &str = "output:\n  schema:\n    properties:\n      names: {type: array, items: {type: string}}\n      \
    resume: {type: [integer, string, \"null\"]}\n  fields:\n    names: {each: data.items, value: name}\n";

fn names(output: &Value) -> Vec<&str> {
    output["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|name| name.as_str().expect("a name"))
        .collect()
}

async fn page(server: &MockServer, param: &str, at: &str, names: &[&str]) {
    let items: Vec<Value> = names.iter().map(|name| json!({"name": name})).collect();
    Mock::given(method("GET"))
        .and(path("/things"))
        .and(query_param("size", "2"))
        .and(query_param(param, at))
        .and(header("x-api-version", "7"))
        .and(header(
            "authorization",
            format!("Bearer {}", support::PROVIDER_TOKEN).as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"items": items}})))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn page_numbers_run_until_an_empty_page_or_max_pages() {
    let list = action(
        "list",
        &format!(
            "description: d\nmethod: GET\npath: /things\nquery: [size]\n{LIST_INPUT}\
             pagination: {{style: page, items: data.items, param: page, max_pages: max_pages, resume: resume}}\n{LIST_OUTPUT}"
        ),
    );
    let server = MockServer::start().await;
    page(&server, "page", "1", &["a", "b"]).await;
    page(&server, "page", "2", &["c"]).await;
    page(&server, "page", "3", &[]).await;
    let output = run(&server, list, json!({})).await.expect("listed");
    assert_eq!(names(&output), ["a", "b", "c"]);
    assert_eq!(output["resume"], Value::Null);

    let server = MockServer::start().await;
    page(&server, "page", "1", &["a", "b"]).await;
    let output = run(&server, list, json!({"max_pages": 1}))
        .await
        .expect("listed");
    assert_eq!(names(&output), ["a", "b"]);
    assert_eq!(output["resume"], 2, "the page to continue from");
}

#[tokio::test]
async fn offsets_advance_by_the_items_seen_until_has_more_is_false() {
    let list = action(
        "list",
        &format!(
            "description: d\nmethod: GET\npath: /things\nquery: [size]\n{LIST_INPUT}\
             pagination: {{style: offset, items: data.items, param: offset, has_more: data.more, max_pages: max_pages, resume: resume}}\n{LIST_OUTPUT}"
        ),
    );
    let server = MockServer::start().await;
    for (offset, names, more) in [("0", vec!["a", "b"], true), ("2", vec!["c", "d"], false)] {
        let items: Vec<Value> = names.iter().map(|name| json!({"name": name})).collect();
        Mock::given(path("/things"))
            .and(query_param("offset", offset))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"data": {"items": items, "more": more}})),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    let output = run(&server, list, json!({})).await.expect("listed");
    assert_eq!(names(&output), ["a", "b", "c", "d"]);
    assert_eq!(output["resume"], Value::Null);
}

#[tokio::test]
async fn a_cursor_in_the_json_body_follows_next_cursor_while_has_more() {
    let query = action(
        "query",
        "description: d\nmethod: POST\npath: /databases/{id}/query\nbody: {json: [filter, start_cursor]}\n\
         input:\n  required: [id]\n  properties:\n    id: {type: string, description: The database.}\n    \
         filter: {type: object, description: A filter.}\n    start_cursor: {type: [string, \"null\"], description: Where to start.}\n    \
         max_pages: {type: integer, minimum: 1, maximum: 5, default: 5, description: Pages at most.}\n\
         pagination: {style: cursor, items: results, next: next_cursor, param: start_cursor, param_in: body, has_more: has_more, max_pages: max_pages, resume: next}\n\
         output:\n  schema:\n    properties:\n      ids: {type: array}\n      next: {type: [string, \"null\"]}\n  \
         fields:\n    ids: {each: results, value: id}\n",
    );
    let server = MockServer::start().await;
    let filter = json!({"property": "Done", "checkbox": {"equals": true}});
    Mock::given(method("POST"))
        .and(path("/databases/db%201/query"))
        .and(body_json(json!({"filter": filter})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"results": [{"id": "p1"}], "next_cursor": "c2", "has_more": true}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/databases/db%201/query"))
        .and(body_json(json!({"filter": filter, "start_cursor": "c2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"results": [{"id": "p2"}], "next_cursor": "c3", "has_more": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(&server, query, json!({"id": "db 1", "filter": filter}))
        .await
        .expect("queried");
    assert_eq!(output, json!({"ids": ["p1", "p2"], "next": null}));
}

/// `next_url`: the answer names the next page's URL, absolute (`@odata.nextLink`, a key with
/// dots) or a path on the same host; the query it carries replaces the first request's.
fn next_url_listing(next: &str) -> &'static DeclaredAction {
    action(
        "list_urls",
        &format!(
            "description: d\nmethod: GET\npath: /v1/things\nquery: [{{$top: top}}]\n\
             input:\n  properties:\n    top: {{type: integer, default: 2, description: Page size.}}\n    \
             max_pages: {{type: integer, minimum: 1, maximum: 10, default: 10, description: Pages at most.}}\n\
             pagination: {{style: next_url, items: value, next: '{next}', max_pages: max_pages, more: more}}\n\
             output:\n  schema:\n    properties:\n      names: {{type: array}}\n      more: {{type: boolean}}\n  \
             fields:\n    names: {{each: value, value: name}}\n"
        ),
    )
}

#[tokio::test]
async fn a_next_url_in_the_answer_is_followed_as_a_url_or_a_path() {
    let server = MockServer::start().await;
    let page = |names: &[&str], next: Option<String>| {
        let value: Vec<Value> = names.iter().map(|name| json!({"name": name})).collect();
        ResponseTemplate::new(200).set_body_json(json!({"value": value, "@odata.nextLink": next}))
    };
    Mock::given(path("/v1/things"))
        .and(query_param("$top", "2"))
        .and(query_param_is_missing("$skiptoken"))
        .respond_with(page(
            &["a", "b"],
            Some(format!("{}/v1/things?$top=2&$skiptoken=X1", server.uri())),
        ))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/v1/things"))
        .and(query_param("$skiptoken", "X1"))
        .respond_with(page(&["c"], Some("/v1/things?$top=2&$skiptoken=X2".into())))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/v1/things"))
        .and(query_param("$skiptoken", "X2"))
        .respond_with(page(&["d"], None))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(&server, next_url_listing("@odata.nextLink"), json!({}))
        .await
        .expect("listed");
    assert_eq!(
        output,
        json!({"names": ["a", "b", "c", "d"], "more": false})
    );
    let output = run(
        &server,
        next_url_listing("@odata.nextLink"),
        json!({"max_pages": 2}),
    )
    .await
    .expect("two pages");
    assert_eq!(output, json!({"names": ["a", "b", "c"], "more": true}));
}

#[tokio::test]
async fn a_next_url_to_another_origin_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/things"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [{"name": "a"}], "next": "https://elsewhere.example/v1/things?page=2"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let refused = run(&server, next_url_listing("next"), json!({}))
        .await
        .expect_err("another origin");
    assert!(
        matches!(&refused, ActionError::Permanent(message)
            if message.contains("points to https://elsewhere.example")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_write_answered_without_a_body_succeeds_and_a_json_value_is_the_whole_body() {
    let update = action(
        "update",
        "description: d\nmethod: PATCH\npath: /records/{id}\nbody: {json_value: fields}\n\
         input:\n  required: [id, fields]\n  properties:\n    id: {type: string, description: The record.}\n    \
         fields: {type: object, description: Its new values.}\n\
         output:\n  schema: {properties: {}}\n  fields: {}\n",
    );
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/records/r1"))
        .and(body_json(json!({"Name": "Acme", "Rating": null})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        update,
        json!({"id": "r1", "fields": {"Name": "Acme", "Rating": null}}),
    )
    .await
    .expect("updated");
    assert_eq!(output, json!({}));
}

#[tokio::test]
async fn a_multipart_body_carries_one_text_part_per_input() {
    let upload = action(
        "note",
        "description: d\nmethod: POST\npath: /notes\nbody: {multipart: [title, tags]}\n\
         input:\n  properties:\n    title: {type: string, description: The title.}\n    tags: {type: array, description: Tags.}\n\
         output:\n  schema:\n    properties:\n      id: {type: string}\n  fields:\n    id: id\n",
    );
    let server = MockServer::start().await;
    Mock::given(path("/notes"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "n1"})))
        .mount(&server)
        .await;
    let output = run(&server, upload, json!({"title": "Q3", "tags": ["a"]}))
        .await
        .expect("sent");
    assert_eq!(output, json!({"id": "n1"}));
    let received = server.received_requests().await.expect("recording");
    let content_type = received[0].headers["content-type"].to_str().expect("ASCII");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    assert_eq!(
        String::from_utf8_lossy(&received[0].body),
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\n[\"a\"]\r\n--{boundary}--\r\n"
        )
    );
}

const GET: &str = "description: Read a thing.\nmethod: GET\npath: /things/{id}\n\
    input:\n  required: [id]\n  properties:\n    id: {type: string, description: The thing.}\n\
    output:\n  schema:\n    required: [id, size]\n    properties:\n      id: {type: string}\n      size: {type: integer}\n  \
    fields:\n    id: id\n    size: stats.size\n";

#[tokio::test]
async fn the_providers_error_envelope_decides_transient_and_permanent() {
    let get = action("get_thing", GET);
    let server = MockServer::start().await;
    let google = |code: u16, status: &str| {
        ResponseTemplate::new(code).set_body_json(
            json!({"error": {"code": code, "status": status, "message": format!("{status} now")}}),
        )
    };
    Mock::given(path("/things/busy"))
        .respond_with(google(400, "UNAVAILABLE"))
        .mount(&server)
        .await;
    Mock::given(path("/things/secret"))
        .respond_with(google(403, "PERMISSION_DENIED"))
        .mount(&server)
        .await;
    let busy = run(&server, get, json!({"id": "busy"}))
        .await
        .expect_err("busy");
    assert!(busy.is_retryable(), "a transient code: {busy:?}");
    let denied = run(&server, get, json!({"id": "secret"}))
        .await
        .expect_err("denied");
    assert_eq!(
        denied,
        ActionError::Permanent(
            "Acme get thing answered HTTP 403 Forbidden PERMISSION_DENIED: PERMISSION_DENIED now"
                .into()
        )
    );
}

#[tokio::test]
async fn an_answer_that_does_not_fit_the_output_schema_fails_permanently() {
    let get = action("get_thing", GET);
    let server = MockServer::start().await;
    Mock::given(path("/things/t1"))
        .and(query_param_is_missing("id"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "t1", "stats": {"size": 3}})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/things/t2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "t2"})))
        .mount(&server)
        .await;
    assert_eq!(
        run(&server, get, json!({"id": "t1"})).await,
        Ok(json!({"id": "t1", "size": 3}))
    );
    let odd = run(&server, get, json!({"id": "t2"}))
        .await
        .expect_err("odd");
    assert!(
        matches!(&odd, ActionError::Permanent(message)
            if message.starts_with("Acme get thing answered oddly: /size")),
        "{odd:?}"
    );
}
