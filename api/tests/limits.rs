//! Oversize and overdeep input through the real server, on every backend: a located refusal
//! or a JSON 400, and the server keeps serving every tenant.

mod common;

use common::{HELLO, for_each_backend};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_term_expression_is_refused_and_the_server_keeps_serving() {
    for_each_backend(|app| async move {
        let backend = app.backend;
        for expression in [
            format!("1{}", " + 1".repeat(10_000)),
            format!("{}1", "- ".repeat(10_000)),
            format!("inputs{}", ".x".repeat(10_000)),
        ] {
            let source = format!(
                "name: big\nsteps:\n  - id: log\n    uses: core.log\n    with:\n      message: \"${{{{ {expression} }}}}\"\n"
            );
            let body = app
                .expect_error(
                    app.deploy(&source).await,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_workflow",
                )
                .await;
            let diagnostic = &body["error"]["diagnostics"][0];
            assert_eq!(
                (&diagnostic["code"], &diagnostic["line"], &diagnostic["column"]),
                (&"WF0012".into(), &6.into(), &16.into()),
                "[{backend}] {diagnostic:#}"
            );
            assert!(
                diagnostic["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("the expression is too large")),
                "[{backend}] {diagnostic:#}"
            );
        }
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        let run_id = app.trigger("hello", r#"{"name": "Ada"}"#).await;
        let run = app.wait_for_run(&run_id).await;
        assert_eq!(run["status"], "succeeded", "[{backend}] {run:#}");
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_run_input_is_a_json_400() {
    for_each_backend(|app| async move {
        app.expect_json(app.deploy(HELLO).await, StatusCode::CREATED)
            .await;
        let nested = format!(
            "{{\"name\": {}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        app.expect_error(
            app.post_json("/api/v1/workflows/hello/runs", &nested).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        )
        .await;
        app
    })
    .await;
}
