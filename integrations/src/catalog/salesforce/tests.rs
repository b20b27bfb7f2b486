//! Salesforce's actions against a stand-in that answers as the REST API does: the org's own
//! host from the token answer's `instance_url`, query batches linked by a `nextRecordsUrl`
//! path, `204 No Content` for updates, errors as a JSON array, and `Sforce-Limit-Info` on every
//! answer.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::error::ActionError;
use crate::providers::{ConnectionValues, provider, render_url};
use crate::testing::{self, PROVIDER_TOKEN};

const API: &str = "/services/data/v62.0";

/// The connection's API base on the stand-in: what `{instance_url}/services/data/v62.0`
/// renders to for an org whose token answer named the stand-in.
fn base(server: &MockServer) -> String {
    format!("{}{API}", server.uri())
}

async fn run(server: &MockServer, action: &str, input: Value) -> Result<Value, ActionError> {
    testing::run_provider_action(&base(server), action, input).await
}

/// One attempt of `action` in a fresh runtime: the step's own retry decides what comes next.
async fn once(server: &MockServer, action: &str, input: Value) -> Result<Value, ActionError> {
    let step = testing::provider_step_attempting(1);
    testing::run_in(&testing::provider_context(&base(server), step), action, input).await
}

fn bearer() -> String {
    format!("Bearer {PROVIDER_TOKEN}")
}

/// Every Salesforce answer states the org's 24-hour API usage.
fn usage(template: ResponseTemplate, used: u32) -> ResponseTemplate {
    template.insert_header("sforce-limit-info", format!("api-usage={used}/15000").as_str())
}

fn account(id: &str, name: &str) -> Value {
    json!({"attributes": {"type": "Account", "url": format!("{API}/sobjects/Account/{id}")},
           "Id": id, "Name": name})
}

#[test]
fn the_token_answers_instance_url_becomes_the_api_base() {
    let salesforce = provider("salesforce").expect("declared");
    let oauth = salesforce.oauth2.as_ref().expect("oauth2");
    // The web server flow's answer: no `expires_in`, the org's host in `instance_url`.
    let answer = oauth.read_token_answer(
        br#"{"access_token":"00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog","refresh_token":"5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJrMNfL9iUjfd0Vb0PTtSqbAbt2yJUGGhSJeOeMg","signature":"CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=","scope":"refresh_token api","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001Sv6AAAS","token_type":"Bearer","issued_at":"1278448384422"}"#,
    );
    assert!(!answer.is_error);
    let values = ConnectionValues {
        kept: answer.kept.clone(),
        ..ConnectionValues::default()
    };
    let resolved = salesforce.url_values(&values).expect("a Salesforce host");
    let template = salesforce.base_url.as_deref().expect("base_url");
    assert_eq!(
        render_url(template, &resolved).expect("rendered"),
        "https://acme.my.salesforce.com/services/data/v62.0"
    );
    for foreign in [
        "https://acme.my.salesforce.com.evil.example",
        "http://acme.my.salesforce.com",
        "https://evil.example/x.salesforce.com",
        "https://acme.my.salesforce.com/path",
    ] {
        let mut values = ConnectionValues::default();
        values.kept.insert("instance_url".into(), foreign.into());
        assert!(salesforce.url_values(&values).is_err(), "{foreign}");
    }
    let sandbox = {
        let mut values = ConnectionValues::default();
        values.params.insert("login".into(), "test".into());
        salesforce.url_values(&values).expect("a sandbox")
    };
    assert_eq!(
        render_url(oauth.token_url.as_deref().expect("token_url"), &sandbox).expect("rendered"),
        "https://test.salesforce.com/services/oauth2/token"
    );
    let not_yet = render_url(
        template,
        &salesforce
            .url_values(&ConnectionValues::default())
            .expect("values"),
    )
    .expect_err("no token answer yet");
    assert!(not_yet.contains("instance_url"), "{not_yet}");
}

#[tokio::test]
async fn a_query_follows_next_records_url_until_done() {
    let server = MockServer::start().await;
    let soql = "SELECT Id, Name FROM Account WHERE Industry = 'Energy'";
    Mock::given(method("GET"))
        .and(path(format!("{API}/query")))
        .and(header("authorization", bearer().as_str()))
        .and(query_param("q", soql))
        .respond_with(usage(
            ResponseTemplate::new(200).set_body_json(json!({
                "totalSize": 3, "done": false,
                "nextRecordsUrl": format!("{API}/query/01gD0000002HU6KIAW-2000"),
                "records": [account("001D000000IRFmaIAH", "Edge"), account("001D000000IomazIAB", "Burlington")]
            })),
            25,
        ))
        .expect(1)
        .mount(&server)
        .await;
    // The next batch is asked for by its path alone, without the query.
    Mock::given(method("GET"))
        .and(path(format!("{API}/query/01gD0000002HU6KIAW-2000")))
        .and(header("authorization", bearer().as_str()))
        .and(query_param_is_missing("q"))
        .respond_with(usage(
            ResponseTemplate::new(200).set_body_json(json!({
                "totalSize": 3, "done": true,
                "records": [account("001D000000IomqzIAB", "United Oil")]
            })),
            26,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(&server, "salesforce.query", json!({"soql": soql}))
        .await
        .expect("queried");
    assert_eq!(output["total_size"], 3);
    assert_eq!(output["has_more"], false);
    let names: Vec<&str> = output["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| record["Name"].as_str().expect("Name"))
        .collect();
    assert_eq!(names, ["Edge", "Burlington", "United Oil"]);
    assert_eq!(output["records"][0]["attributes"]["type"], "Account");
}

#[tokio::test]
async fn creates_updates_and_reads_a_record() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/sobjects/Account")))
        .and(header("authorization", bearer().as_str()))
        .and(body_json(json!({"Name": "Acme", "Industry": "Energy"})))
        .respond_with(usage(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "001D000000IqhSLIAZ", "errors": [], "success": true})),
            30,
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{API}/sobjects/Account/001D000000IqhSLIAZ")))
        .and(header("authorization", bearer().as_str()))
        .and(body_json(json!({"BillingCity": "San Francisco", "Phone": null})))
        .respond_with(usage(ResponseTemplate::new(204), 31))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/sobjects/Account/001D000000IqhSLIAZ")))
        .and(query_param("fields", "Name,BillingCity"))
        .respond_with(usage(
            ResponseTemplate::new(200).set_body_json(json!({
                "attributes": {"type": "Account", "url": format!("{API}/sobjects/Account/001D000000IqhSLIAZ")},
                "Id": "001D000000IqhSLIAZ", "Name": "Acme", "BillingCity": "San Francisco"
            })),
            32,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let created = run(
        &server,
        "salesforce.create_record",
        json!({"sobject": "Account", "fields": {"Name": "Acme", "Industry": "Energy"}}),
    )
    .await
    .expect("created");
    assert_eq!(created, json!({"id": "001D000000IqhSLIAZ"}));
    let updated = run(
        &server,
        "salesforce.update_record",
        json!({"sobject": "Account", "id": "001D000000IqhSLIAZ",
               "fields": {"BillingCity": "San Francisco", "Phone": null}}),
    )
    .await
    .expect("updated");
    assert_eq!(updated, json!({}));
    let read = run(
        &server,
        "salesforce.get_record",
        json!({"sobject": "Account", "id": "001D000000IqhSLIAZ", "fields": ["Name", "BillingCity"]}),
    )
    .await
    .expect("read");
    assert_eq!(read["id"], "001D000000IqhSLIAZ");
    assert_eq!(read["record"]["BillingCity"], "San Francisco");
    let traversal = run(
        &server,
        "salesforce.get_record",
        json!({"sobject": "Account/../limits", "id": "001D000000IqhSLIAZ"}),
    )
    .await
    .expect_err("not an object name");
    assert!(
        matches!(&traversal, ActionError::InvalidInput(m) if m.starts_with("`with.sobject`")),
        "{traversal:?}"
    );
}

#[tokio::test]
async fn errors_are_read_from_the_array_envelope() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{API}/sobjects/Account")))
        .respond_with(usage(
            ResponseTemplate::new(400).set_body_json(json!([{
                "message": "Required fields are missing: [Name]",
                "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]
            }])),
            40,
        ))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/sobjects/Contact")))
        .respond_with(usage(
            ResponseTemplate::new(403).set_body_json(json!([{
                "message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"
            }])),
            15000,
        ))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/sobjects/Lead")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([{
            "message": "unable to obtain exclusive access to this record",
            "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []
        }])))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/sobjects/Account/001D000000INjVe")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!([{
            "errorCode": "NOT_FOUND", "message": "The requested resource does not exist"
        }])))
        .mount(&server)
        .await;
    let create = |sobject: &str| json!({"sobject": sobject, "fields": {"Industry": "Energy"}});
    let missing = once(&server, "salesforce.create_record", create("Account"))
        .await
        .expect_err("missing field");
    assert_eq!(
        missing,
        ActionError::Permanent(
            "Salesforce create record answered HTTP 400 Bad Request REQUIRED_FIELD_MISSING \
             param `Name`: Required fields are missing: [Name]"
                .into()
        )
    );
    let spent = once(&server, "salesforce.create_record", create("Contact"))
        .await
        .expect_err("allowance spent");
    // `api-usage=15000/15000`: the allowance is spent, so the step waits the declared
    // `rejection_wait` rather than hammering a refusing org.
    let ActionError::Retryable {
        message,
        retry_after: Some(wait),
    } = &spent
    else {
        panic!("expected a retryable error with a wait, got {spent:?}");
    };
    assert!(
        message.contains("403 Forbidden REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."),
        "{message}"
    );
    assert!(
        *wait > Duration::from_secs(295) && *wait <= Duration::from_secs(300),
        "{wait:?}"
    );
    let locked = once(&server, "salesforce.create_record", create("Lead"))
        .await
        .expect_err("locked");
    assert!(locked.is_retryable(), "{locked:?}");
    let gone = once(
        &server,
        "salesforce.get_record",
        json!({"sobject": "Account", "id": "001D000000INjVe"}),
    )
    .await
    .expect_err("gone");
    assert_eq!(
        gone,
        ActionError::Permanent(
            "Salesforce get record answered HTTP 404 Not Found NOT_FOUND: The requested \
             resource does not exist"
                .into()
        )
    );
}
