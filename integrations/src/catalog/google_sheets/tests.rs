//! `google_sheets.*` against a wiremock stand-in that answers as the Sheets API does: bearer
//! auth, ranges in the path (`{range}:append`), values as lists of rows, Google's error object
//! (`status`, `errors[0].reason`) and its 429s and 503s.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::ActionError;
use crate::testing::{self, PROVIDER_TOKEN as TOKEN, run};

const VALUES: &str = "/v4/spreadsheets/s1/values";

fn google_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

fn rows() -> Value {
    json!([
        ["2024-05-01", "Order 42", 42.5, true],
        ["2024-05-01", "Order 43", 18, false]
    ])
}

#[tokio::test]
async fn appends_rows_after_the_table_as_the_user_would_type_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{VALUES}/Orders!A:D:append")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("valueInputOption", "USER_ENTERED"))
        .and(query_param("insertDataOption", "INSERT_ROWS"))
        .and(body_json(json!({"values": rows()})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "spreadsheetId": "s1", "tableRange": "Orders!A1:D10",
            "updates": {"spreadsheetId": "s1", "updatedRange": "Orders!A11:D12",
                        "updatedRows": 2, "updatedColumns": 4, "updatedCells": 8}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "google_sheets.append_rows",
        json!({"spreadsheet_id": "s1", "range": "Orders!A:D", "values": rows()}),
    )
    .await
    .expect("appended");
    assert_eq!(
        output,
        json!({"spreadsheet_id": "s1", "table_range": "Orders!A1:D10",
               "updated_range": "Orders!A11:D12", "updated_rows": 2, "updated_cells": 8})
    );
}

#[tokio::test]
async fn a_sheet_name_with_spaces_and_slashes_stays_one_path_segment() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{VALUES}/'Q2%2F2024%20Orders'!A1:append")))
        .and(query_param("valueInputOption", "RAW"))
        .and(query_param("insertDataOption", "OVERWRITE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "spreadsheetId": "s1",
            "updates": {"spreadsheetId": "s1", "updatedRange": "'Q2/2024 Orders'!A1:B1",
                        "updatedRows": 1, "updatedCells": 2}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "google_sheets.append_rows",
        json!({"spreadsheet_id": "s1", "range": "'Q2/2024 Orders'!A1", "values": [["=1+1", 2]],
               "value_input_option": "RAW", "insert_data_option": "OVERWRITE"}),
    )
    .await
    .expect("appended");
    assert_eq!(
        output["table_range"],
        Value::Null,
        "an empty sheet has no table yet"
    );
    assert_eq!(output["updated_range"], "'Q2/2024 Orders'!A1:B1");
}

#[tokio::test]
async fn reads_values_and_an_empty_range_reads_as_no_rows() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{VALUES}/Orders!A1:D3")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("valueRenderOption", "UNFORMATTED_VALUE"))
        .and(query_param_is_missing("majorDimension"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "range": "Orders!A1:D3", "majorDimension": "ROWS",
            "values": [["Date", "Order", "Amount", "Paid"], [45413, "Order 42", 42.5, true]]
        })))
        .expect(1)
        .mount(&server)
        .await;
    // Google leaves `values` out when every cell of the range is empty.
    Mock::given(path(format!("{VALUES}/Orders!F1:F9")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "range": "Orders!F1:F9", "majorDimension": "ROWS"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "google_sheets.get_values",
        json!({"spreadsheet_id": "s1", "range": "Orders!A1:D3",
               "value_render_option": "UNFORMATTED_VALUE"}),
    )
    .await
    .expect("read");
    assert_eq!(
        output,
        json!({"range": "Orders!A1:D3", "major_dimension": "ROWS",
               "values": [["Date", "Order", "Amount", "Paid"], [45413, "Order 42", 42.5, true]]})
    );
    let empty = run(
        &server,
        "google_sheets.get_values",
        json!({"spreadsheet_id": "s1", "range": "Orders!F1:F9"}),
    )
    .await
    .expect("read");
    assert_eq!(
        empty,
        json!({"range": "Orders!F1:F9", "major_dimension": "ROWS", "values": []})
    );
}

#[tokio::test]
async fn an_update_is_a_put_retried_within_the_call_after_unavailable() {
    let server = MockServer::start().await;
    let update = || {
        Mock::given(method("PUT"))
            .and(path(format!("{VALUES}/Orders!D3:D4")))
            .and(query_param("valueInputOption", "USER_ENTERED"))
            .and(body_json(
                json!({"majorDimension": "COLUMNS", "values": [[true, false]]}),
            ))
    };
    update()
        .respond_with(ResponseTemplate::new(503).set_body_json(google_error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        )))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    update()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "spreadsheetId": "s1", "updatedRange": "Orders!D3:D4", "updatedRows": 2,
            "updatedColumns": 1, "updatedCells": 2
        })))
        .expect(1)
        .mount(&server)
        .await;
    let step = testing::provider_step_attempting(2);
    let ctx = testing::provider_context(&server.uri(), step);
    let output = testing::run_in(
        &ctx,
        "google_sheets.update_values",
        json!({"spreadsheet_id": "s1", "range": "Orders!D3:D4", "values": [[true, false]],
               "major_dimension": "COLUMNS"}),
    )
    .await
    .expect("written on the second attempt");
    assert_eq!(
        output,
        json!({"spreadsheet_id": "s1", "updated_range": "Orders!D3:D4", "updated_rows": 2,
               "updated_columns": 1, "updated_cells": 2})
    );
}

#[tokio::test]
async fn an_append_is_not_repeated_after_unavailable_but_retryable() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{VALUES}/Orders:append")))
        .respond_with(ResponseTemplate::new(503).set_body_json(google_error(
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        )))
        .mount(&server)
        .await;
    let error = run(
        &server,
        "google_sheets.append_rows",
        json!({"spreadsheet_id": "s1", "range": "Orders", "values": rows()}),
    )
    .await
    .expect_err("unavailable");
    assert_eq!(
        error,
        ActionError::Retryable {
            message: "Google Sheets values.append answered HTTP 503 Service Unavailable \
                      UNAVAILABLE: The service is currently unavailable."
                .to_owned(),
            retry_after: None,
        }
    );
    let received = server.received_requests().await.expect("recording");
    assert_eq!(
        received.len(),
        1,
        "Sheets may have appended: the step's retry decides"
    );
}

#[tokio::test]
async fn a_read_quota_429_is_retryable_after_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{VALUES}/Orders!A1:D3")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"error": {
                    "code": 429, "status": "RESOURCE_EXHAUSTED",
                    "message": "Quota exceeded for quota metric 'Read requests' and limit \
                                'Read requests per minute per user' of service \
                                'sheets.googleapis.com'.",
                    "errors": [{"message": "Quota exceeded", "domain": "global",
                                "reason": "rateLimitExceeded"}]}})),
        )
        .mount(&server)
        .await;
    let step = testing::provider_step_attempting(1);
    let ctx = testing::provider_context(&server.uri(), step);
    let error = testing::run_in(
        &ctx,
        "google_sheets.get_values",
        json!({"spreadsheet_id": "s1", "range": "Orders!A1:D3"}),
    )
    .await
    .expect_err("limited");
    assert_eq!(
        error,
        ActionError::Retryable {
            message: "Google Sheets values.get answered HTTP 429 Too Many Requests \
                      RESOURCE_EXHAUSTED rateLimitExceeded: Quota exceeded for quota metric \
                      'Read requests' and limit 'Read requests per minute per user' of service \
                      'sheets.googleapis.com'."
                .to_owned(),
            retry_after: Some(Duration::from_secs(30)),
        }
    );
}

#[tokio::test]
async fn permission_bad_ranges_and_missing_spreadsheets_are_permanent_with_googles_words() {
    let server = MockServer::start().await;
    let cases = [
        (
            "private",
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            "403 Forbidden",
        ),
        (
            "s1",
            400,
            "INVALID_ARGUMENT",
            "Unable to parse range: Nope!A1",
            "400 Bad Request",
        ),
        (
            "gone",
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            "404 Not Found",
        ),
    ];
    for (spreadsheet, code, status, message, _) in cases {
        Mock::given(path(format!(
            "/v4/spreadsheets/{spreadsheet}/values/Nope!A1"
        )))
        .respond_with(
            ResponseTemplate::new(code).set_body_json(google_error(code, status, message)),
        )
        .expect(1)
        .mount(&server)
        .await;
    }
    for (spreadsheet, _, status, message, http) in cases {
        let error = run(
            &server,
            "google_sheets.get_values",
            json!({"spreadsheet_id": spreadsheet, "range": "Nope!A1"}),
        )
        .await
        .expect_err("refused");
        assert_eq!(
            error,
            ActionError::Permanent(format!(
                "Google Sheets values.get answered HTTP {http} {status}: {message}"
            ))
        );
    }
}

#[tokio::test]
async fn reads_a_spreadsheets_title_and_sheets() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v4/spreadsheets/s1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "spreadsheetId": "s1",
            "properties": {"title": "Orders 2024", "locale": "en_US", "timeZone": "Europe/Paris",
                           "autoRecalc": "ON_CHANGE"},
            "sheets": [
                {"properties": {"sheetId": 0, "title": "Orders", "index": 0, "sheetType": "GRID",
                                "gridProperties": {"rowCount": 1000, "columnCount": 26}}},
                {"properties": {"sheetId": 1_843_576_299, "title": "Refunds", "index": 1,
                                "sheetType": "GRID",
                                "gridProperties": {"rowCount": 100, "columnCount": 4}}}
            ],
            "spreadsheetUrl": "https://docs.google.com/spreadsheets/d/s1/edit"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let output = run(
        &server,
        "google_sheets.get_spreadsheet",
        json!({"spreadsheet_id": "s1"}),
    )
    .await
    .expect("read");
    assert_eq!(
        output,
        json!({"spreadsheet_id": "s1", "title": "Orders 2024",
               "url": "https://docs.google.com/spreadsheets/d/s1/edit", "locale": "en_US",
               "time_zone": "Europe/Paris", "sheets": [
                   {"sheet_id": 0, "title": "Orders", "index": 0, "row_count": 1000,
                    "column_count": 26},
                   {"sheet_id": 1_843_576_299, "title": "Refunds", "index": 1,
                    "row_count": 100, "column_count": 4}]})
    );
}

#[test]
fn offline_access_and_default_scopes_are_declared() {
    let oauth = crate::providers::provider(provider!())
        .and_then(|spec| spec.oauth2.as_ref())
        .expect("OAuth 2.0 declared");
    assert_eq!(
        oauth
            .authorize_params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect::<Vec<_>>(),
        [("access_type", "offline"), ("prompt", "consent")]
    );
    assert_eq!(
        oauth.scopes,
        ["https://www.googleapis.com/auth/spreadsheets"]
    );
}
