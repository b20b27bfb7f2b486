//! `/api/v1/secrets`, black-box, on every backend.

mod common;

use common::for_each_backend;
use reqwest::StatusCode;
use serde_json::json;
use stepwise_integrations::SecretValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_written_listed_and_deleted_but_never_read_back() {
    for_each_backend(|app| async move {
        let value = format!("canary-{}", uuid::Uuid::new_v4().simple());
        let body = json!({"name": "API_TOKEN", "value": value}).to_string();
        let created = app
            .expect_json(
                app.post_json("/api/v1/secrets", &body).await,
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(created["name"], "API_TOKEN");
        assert_eq!(created["created"], true);
        assert!(created["created_at"].is_i64() && created["updated_at"].is_i64());
        assert!(!created.to_string().contains(&value));

        let body = json!({"name": "API_TOKEN", "value": format!("{value}-2")}).to_string();
        let replaced = app
            .expect_json(
                app.post_json("/api/v1/secrets", &body).await,
                StatusCode::OK,
            )
            .await;
        assert_eq!(replaced["created"], false);
        assert_eq!(replaced["created_at"], created["created_at"]);
        let body = json!({"name": "DB_URL", "value": "postgres://u:p@h/db"}).to_string();
        app.expect_json(
            app.post_json("/api/v1/secrets", &body).await,
            StatusCode::CREATED,
        )
        .await;

        let list = app
            .expect_json(app.get("/api/v1/secrets").await, StatusCode::OK)
            .await;
        let names: Vec<_> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["API_TOKEN", "DB_URL"], "[{}] {list:#}", app.backend);
        let text = list.to_string();
        assert!(!text.contains(&value) && !text.contains("u:p@h"), "{text}");
        assert!(list["items"][0].get("value").is_none());

        // The executor's view has the current value.
        let tenant = app
            .engine
            .authenticate(&app.api_key)
            .await
            .expect("auth")
            .expect("tenant");
        let values = app.engine.tenant_secrets(&tenant.id).await.expect("values");
        let expected = format!("{value}-2");
        assert_eq!(
            values.get("API_TOKEN").map(SecretValue::expose),
            Some(expected.as_str())
        );

        let response = app.delete("/api/v1/secrets/DB_URL").await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "[{}]",
            app.backend
        );
        app.expect_error(
            app.delete("/api/v1/secrets/DB_URL").await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let list = app
            .expect_json(app.get("/api/v1/secrets").await, StatusCode::OK)
            .await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_json_errors_with_codes() {
    for_each_backend(|app| async move {
        for name in ["api_token", "1ABC", "A-B", ""] {
            let body = json!({"name": name, "value": "x"}).to_string();
            app.expect_error(
                app.post_json("/api/v1/secrets", &body).await,
                StatusCode::BAD_REQUEST,
                "invalid_secret_name",
            )
            .await;
        }
        let body = app
            .expect_error(
                app.post_json("/api/v1/secrets", r#"{"name": "lower", "value": "x"}"#)
                    .await,
                StatusCode::BAD_REQUEST,
                "invalid_secret_name",
            )
            .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("LOWER"),
            "{body:#}"
        );
        for body in [
            r#"{"name": "EMPTY", "value": ""}"#,
            r#"{"name": "NO_VALUE"}"#,
            r#"{"name": "A", "value": 5}"#,
            "not json",
        ] {
            app.expect_error(
                app.post_json("/api/v1/secrets", body).await,
                StatusCode::BAD_REQUEST,
                "invalid_input",
            )
            .await;
        }
        app.expect_error(
            app.delete("/api/v1/secrets/not-valid").await,
            StatusCode::BAD_REQUEST,
            "invalid_secret_name",
        )
        .await;
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_tenant_scoped_and_need_a_key() {
    for_each_backend(|app| async move {
        let body = json!({"name": "SHARED_NAME", "value": "first-tenant"}).to_string();
        app.expect_json(
            app.post_json("/api/v1/secrets", &body).await,
            StatusCode::CREATED,
        )
        .await;

        let (_, other_key) = app.engine.create_tenant("other").await.expect("tenant");
        let other_list = app
            .client
            .get(app.url("/api/v1/secrets"))
            .bearer_auth(&other_key)
            .send()
            .await
            .expect("send");
        let other_list = app.expect_json(other_list, StatusCode::OK).await;
        assert_eq!(other_list["items"], json!([]), "[{}]", app.backend);
        let other_delete = app
            .client
            .delete(app.url("/api/v1/secrets/SHARED_NAME"))
            .bearer_auth(&other_key)
            .send()
            .await
            .expect("send");
        app.expect_error(other_delete, StatusCode::NOT_FOUND, "not_found")
            .await;
        let mine = app
            .expect_json(app.get("/api/v1/secrets").await, StatusCode::OK)
            .await;
        assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));

        let anonymous = [
            app.client.get(app.url("/api/v1/secrets")),
            app.client
                .post(app.url("/api/v1/secrets"))
                .header("content-type", "application/json")
                .body(body.clone()),
            app.client.delete(app.url("/api/v1/secrets/SHARED_NAME")),
            app.client
                .get(app.url("/api/v1/secrets"))
                .bearer_auth("sw_not-a-key"),
        ];
        for request in anonymous {
            let response = request.send().await.expect("send");
            app.expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized")
                .await;
        }
        app
    })
    .await;
}
