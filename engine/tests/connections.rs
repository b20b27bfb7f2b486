//! OAuth apps, connections, the authorization-code flow and the token manager against wiremock
//! providers, on every backend: sealed secrets, state handling, client authentication,
//! refresh-token rotation, `invalid_grant`, transient failures, single-flight refreshes in
//! one engine and across three, and a client certificate (mutual TLS) on an OAuth connection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, databases, services, services_with};
use oauth2::url::Url;
use serde_json::{Value, json};
use stepwise_engine::Engine;
use stepwise_engine::oauth::tokens::TokenError;
use stepwise_engine::oauth::{CallbackError, CallbackOutcome};
use stepwise_engine::store::connections::ConnectionStatus;
use stepwise_engine::vault::{KeyRing, LocalKeyProvider, MasterKey};
use stepwise_integrations::http::{HttpConfig, install_crypto_provider};
use stepwise_integrations::{ConnectionAuth, Registry, SecretValue};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid request")
}

fn bearer(auth: &ConnectionAuth) -> &str {
    match auth {
        ConnectionAuth::Bearer(token) => token.expose(),
        other => panic!("not a bearer token: {other:?}"),
    }
}

/// Creates the `generic` OAuth app `app` at `server` and the oauth2 connection `name`.
async fn oauth_connection(engine: &Engine, tenant: &str, server: &MockServer, extra: Value) {
    let mut app = json!({
        "name": "app",
        "integration": "generic",
        "client_id": "client-1",
        "client_secret": "app-secret-canary-7c1",
        "scopes": ["read", "write"],
        "authorize_url": format!("{}/authorize", server.uri()),
        "token_url": format!("{}/token", server.uri()),
        "revoke_url": format!("{}/revoke", server.uri()),
    });
    if let (Value::Object(app), Value::Object(extra)) = (&mut app, extra) {
        app.extend(extra);
    }
    engine
        .create_oauth_app(tenant, from_json(app))
        .await
        .expect("create app");
    engine
        .create_connection(
            tenant,
            from_json(json!({"name": "conn", "integration": "generic", "kind": "oauth2", "oauth_app": "app"})),
        )
        .await
        .expect("create connection");
}

/// Starts an authorization and returns its `state`.
async fn start(engine: &Engine, tenant: &str) -> (String, Url) {
    let url = engine
        .authorize_connection(tenant, "generic", "conn", REDIRECT)
        .await
        .expect("authorize");
    let url = Url::parse(&url).expect("url");
    let state = url
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .expect("state");
    (state, url)
}

/// The credential a provider answered 401 to.
fn rejected(token: &str) -> ConnectionAuth {
    ConnectionAuth::Bearer(SecretValue::new(token))
}

fn code(value: &str) -> CallbackOutcome {
    CallbackOutcome::Code(SecretValue::new(value))
}

fn token_response(access: &str, refresh: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": refresh,
        "expires_in": expires_in,
        "scope": "read write"
    }))
}

/// An authorized connection whose access token `A1` expires in `expires_in` seconds.
async fn authorized(h: &Harness, server: &MockServer, expires_in: u64) {
    authorize_on(&h.engine, &h.tenant_id, server, expires_in).await;
}

async fn authorize_on(engine: &Engine, tenant: &str, server: &MockServer, expires_in: u64) {
    oauth_connection(engine, tenant, server, json!({})).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(token_response("A1", "R1", expires_in))
        .up_to_n_times(1)
        .mount(server)
        .await;
    let (state, _) = start(engine, tenant).await;
    let connection = engine
        .complete_authorization(None, &state, code("the-code"), REDIRECT)
        .await
        .expect("complete");
    assert_eq!(connection.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn secrets_are_sealed_and_never_listed() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(&h.engine, &h.tenant_id, &server, json!({})).await;
        for connection in [
            json!({"name": "key", "integration": "generic", "kind": "api_key", "api_key": "key-canary-91f", "api_key_header": "X-Token"}),
            json!({"name": "tok", "integration": "generic", "kind": "bearer", "token": "bearer-canary-3d2"}),
            json!({"name": "user", "integration": "generic", "kind": "basic", "username": "ann", "password": "password-canary-55a"}),
        ] {
            h.engine
                .create_connection(&h.tenant_id, from_json(connection))
                .await
                .expect("create");
        }
        let key = h
            .engine
            .connection_auth(&h.tenant_id, "key")
            .await
            .expect("auth");
        assert_eq!(
            key,
            ConnectionAuth::ApiKey {
                header: "X-Token".into(),
                key: SecretValue::new("key-canary-91f")
            }
        );
        let tok = h
            .engine
            .connection_auth(&h.tenant_id, "tok")
            .await
            .expect("auth");
        assert_eq!(bearer(&tok), "bearer-canary-3d2");
        let listed = serde_json::to_string(&(
            h.engine.list_connections(&h.tenant_id).await.expect("list"),
            h.engine.list_oauth_apps(&h.tenant_id).await.expect("list"),
        ))
        .expect("json");
        let dump = h.dump_database().await;
        for canary in [
            "app-secret-canary-7c1",
            "key-canary-91f",
            "bearer-canary-3d2",
            "password-canary-55a",
        ] {
            assert!(!listed.contains(canary), "[{}] listed {canary}", h.label);
            assert!(
                !dump.contains(canary),
                "[{}] stored {canary} in plaintext",
                h.label
            );
        }
        // A fresh oauth2 connection is not usable until it is authorized.
        let error = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect_err("not authorized");
        assert!(matches!(error, TokenError::NeedsReauth { .. }), "{error}");
        assert!(error.to_string().contains("reconnected"), "{error}");
        h.stop().await;
    }
}

/// An integration named with `_` gets an app named with `-` (app names are slugs), and a
/// connection that names no app finds that one.
#[tokio::test]
async fn an_unnamed_app_of_an_integration_with_an_underscore_is_found_by_its_connections() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let app = h
            .engine
            .create_oauth_app(
                &h.tenant_id,
                from_json(
                    json!({"integration": "google_sheets", "client_id": "client-1",
                                 "client_secret": "app-secret"}),
                ),
            )
            .await
            .expect("create app");
        assert_eq!(app.name, "google-sheets", "[{}]", h.label);
        let connection = h
            .engine
            .create_connection(
                &h.tenant_id,
                from_json(
                    json!({"name": "sheets", "integration": "google_sheets", "kind": "oauth2"}),
                ),
            )
            .await
            .expect("create connection");
        assert_eq!(
            connection.oauth_app.as_deref(),
            Some("google-sheets"),
            "[{}]",
            h.label
        );
        let url = h
            .engine
            .authorize_connection(&h.tenant_id, "google_sheets", "sheets", REDIRECT)
            .await
            .expect("authorize");
        assert!(
            url.starts_with("https://accounts.google.com/") && url.contains("client_id=client-1"),
            "[{}] {url}",
            h.label
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn the_code_exchange_uses_pkce_and_basic_auth_with_encoded_credentials() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(
            &h.engine,
            &h.tenant_id,
            &server,
            json!({"client_id": "my client:1", "client_secret": "s3cr%t&+/=:", "auth_method": "client_secret_basic"}),
        )
        .await;
        // RFC 6749 2.3.1: each part form-urlencoded, then `id:secret` in base64.
        let expected = {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode("my+client%3A1:s3cr%25t%26%2B%2F%3D%3A")
            )
        };
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("authorization", expected.as_str()))
            .and(body_string_contains("grant_type=authorization_code"))
            .and(body_string_contains("code=the-code"))
            .and(body_string_contains("code_verifier="))
            .respond_with(token_response("A1", "R1", 3600))
            .expect(1)
            .mount(&server)
            .await;
        let (state, url) = start(&h.engine, &h.tenant_id).await;
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(param("code_challenge_method"), Some("S256"));
        assert_eq!(param("response_type"), Some("code"));
        assert_eq!(param("scope"), Some("read write"));
        assert_eq!(param("redirect_uri"), Some(REDIRECT));
        assert!(param("code_challenge").is_some_and(|c| c.len() == 43));
        let connection = h
            .engine
            .complete_authorization(None, &state, code("the-code"), REDIRECT)
            .await
            .expect("complete");
        assert_eq!(connection.scopes, ["read", "write"]);
        assert!(connection.expires_at.is_some());
        assert!(!h.dump_database().await.contains("R1\""), "[{}]", h.label);
        h.stop().await;
    }
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_body() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(
            &h.engine,
            &h.tenant_id,
            &server,
            json!({"auth_method": "client_secret_post"}),
        )
        .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("client_id=client-1"))
            .and(body_string_contains("client_secret=app-secret-canary-7c1"))
            .respond_with(token_response("A1", "R1", 3600))
            .expect(1)
            .mount(&server)
            .await;
        let (state, _) = start(&h.engine, &h.tenant_id).await;
        h.engine
            .complete_authorization(None, &state, code("c"), REDIRECT)
            .await
            .expect("complete");
        let requests = server.received_requests().await.expect("recorded");
        assert!(requests[0].headers.get("authorization").is_none());
        h.stop().await;
    }
}

#[tokio::test]
async fn a_state_is_single_use_bound_to_its_tenant_and_expires() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(&h.engine, &h.tenant_id, &server, json!({})).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(token_response("A1", "R1", 3600))
            .mount(&server)
            .await;
        let complete = |state: String, tenant: Option<String>, outcome: CallbackOutcome| {
            let engine = h.engine.clone();
            async move {
                engine
                    .complete_authorization(tenant.as_deref(), &state, outcome, REDIRECT)
                    .await
            }
        };

        let result = complete("never-issued".into(), None, code("c")).await;
        assert!(
            matches!(result, Err(CallbackError::UnknownState)),
            "{result:?}"
        );

        let (state, _) = start(&h.engine, &h.tenant_id).await;
        complete(state.clone(), Some(h.tenant_id.clone()), code("c"))
            .await
            .expect("first use");
        let reused = complete(state, None, code("c")).await;
        assert!(
            matches!(reused, Err(CallbackError::UnknownState)),
            "{reused:?}"
        );

        let (other, _) = h.engine.create_tenant("other").await.expect("tenant");
        let (state, _) = start(&h.engine, &h.tenant_id).await;
        let foreign = complete(state.clone(), Some(other.id), code("c")).await;
        assert!(
            matches!(foreign, Err(CallbackError::OtherTenant)),
            "{foreign:?}"
        );
        // Refused once means consumed.
        let after = complete(state, None, code("c")).await;
        assert!(
            matches!(after, Err(CallbackError::UnknownState)),
            "{after:?}"
        );

        let (state, _) = start(&h.engine, &h.tenant_id).await;
        let refused = complete(
            state,
            None,
            CallbackOutcome::Error {
                error: "access_denied".into(),
                description: Some("The user said no".into()),
            },
        )
        .await;
        let Err(CallbackError::Provider { error, .. }) = refused else {
            panic!("{refused:?}")
        };
        assert_eq!(error, "access_denied");

        let (state, _) = start(&h.engine, &h.tenant_id).await;
        expire_states(&database).await;
        let expired = complete(state, None, code("c")).await;
        assert!(
            matches!(expired, Err(CallbackError::Expired)),
            "{expired:?}"
        );
        h.stop().await;
    }
}

/// Moves every stored state's expiry into the past, as eleven minutes of waiting would.
async fn expire_states(database: &common::TestDatabase) {
    const STATEMENT: &str = "UPDATE oauth_states SET expires_at = expires_at - 660000";
    if database.label == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&database.url)
            .await
            .expect("connect");
        sqlx::query(STATEMENT).execute(&pool).await.expect("expire");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        sqlx::query(STATEMENT).execute(&pool).await.expect("expire");
        pool.close().await;
    }
}

#[tokio::test]
async fn refresh_ahead_of_expiry_rotates_the_refresh_token() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        // A 4 s token is refreshed once it expires within a quarter of its lifetime (1 s).
        authorized(&h, &server, 4).await;
        tokio::time::sleep(Duration::from_millis(3200)).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains("refresh_token=R1"))
            .respond_with(token_response("A2", "R2", 3600))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains("refresh_token=R2"))
            .respond_with(token_response("A3", "R3", 3600))
            .expect(1)
            .mount(&server)
            .await;
        let auth = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("auth");
        assert_eq!(bearer(&auth), "A2", "[{}]", h.label);
        // Fresh now: no further refresh.
        let again = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("auth");
        assert_eq!(bearer(&again), "A2");
        // A 401 for A2 refreshes once more, with the rotated refresh token.
        let after_401 = h
            .engine
            .refresh_connection_auth(&h.tenant_id, "conn", &auth)
            .await
            .expect("refresh");
        assert_eq!(bearer(&after_401), "A3");
        // A second 401 for the already replaced A2 uses A3 without a refresh.
        let sibling = h
            .engine
            .refresh_connection_auth(&h.tenant_id, "conn", &auth)
            .await
            .expect("refresh");
        assert_eq!(bearer(&sibling), "A3");
        h.stop().await;
        server.verify().await;
    }
}

/// How many token requests `server` received.
async fn token_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path() == "/token")
        .count()
}

#[tokio::test]
async fn a_short_lived_token_is_not_refreshed_on_every_call() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        // 30 s tokens: within the default 60 s margin from the start, but the margin is at
        // most a quarter of the lifetime (7.5 s).
        authorized(&h, &server, 30).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(token_response("A2", "R2", 30))
            .mount(&server)
            .await;
        for _ in 0..20 {
            let auth = h
                .engine
                .connection_auth(&h.tenant_id, "conn")
                .await
                .expect("auth");
            assert_eq!(bearer(&auth), "A1", "[{}]", h.label);
        }
        assert_eq!(
            token_requests(&server).await,
            1,
            "[{}] only the code exchange asks for a token",
            h.label
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn an_apps_refresh_margin_replaces_the_default() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(
            &h.engine,
            &h.tenant_id,
            &server,
            json!({"refresh_margin": "0s"}),
        )
        .await;
        let app = h
            .engine
            .get_oauth_app(&h.tenant_id, "app")
            .await
            .expect("app");
        assert_eq!(app.refresh_margin.as_deref(), Some("0s"), "[{}]", h.label);
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(token_response("A1", "R1", 8))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(token_response("A2", "R2", 8))
            .mount(&server)
            .await;
        let (state, _) = start(&h.engine, &h.tenant_id).await;
        h.engine
            .complete_authorization(None, &state, code("the-code"), REDIRECT)
            .await
            .expect("complete");
        // 1.5 s before expiry: inside the default margin (a quarter of 8 s), outside the
        // app's (none).
        tokio::time::sleep(Duration::from_millis(6500)).await;
        let auth = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("auth");
        assert_eq!(bearer(&auth), "A1", "[{}]", h.label);
        assert_eq!(token_requests(&server).await, 1, "[{}]", h.label);
        for (margin, problem) in [
            ("soon", "invalid `refresh_margin`"),
            ("2d", "longer than 24h"),
        ] {
            let refused = h
                .engine
                .create_oauth_app(
                    &h.tenant_id,
                    from_json(json!({
                        "name": "other", "integration": "github", "client_id": "c",
                        "refresh_margin": margin,
                    })),
                )
                .await
                .expect_err("a bad margin");
            assert!(refused.to_string().contains(problem), "{refused}");
        }
        h.stop().await;
    }
}

#[tokio::test]
async fn invalid_grant_needs_reauth_and_later_calls_fail_fast() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        authorized(&h, &server, 0).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": "invalid_grant", "error_description": "refresh token revoked"}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        for _ in 0..3 {
            let error = h
                .engine
                .connection_auth(&h.tenant_id, "conn")
                .await
                .expect_err("invalid grant");
            assert!(matches!(error, TokenError::NeedsReauth { .. }), "{error}");
            assert!(
                error
                    .to_string()
                    .contains("/oauth/generic/authorize?connection=conn"),
                "{error}"
            );
        }
        let connection = h
            .engine
            .get_connection(&h.tenant_id, "conn")
            .await
            .expect("get");
        assert_eq!(connection.status, ConnectionStatus::NeedsReauth);
        assert!(
            connection
                .status_reason
                .is_some_and(|reason| reason.contains("refresh token revoked"))
        );
        h.stop().await;
        server.verify().await;
    }
}

#[tokio::test]
async fn a_5xx_while_refreshing_is_transient_and_keeps_the_connection() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        authorized(&h, &server, 0).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(
                ResponseTemplate::new(503)
                    .set_body_json(json!({"error": "temporarily_unavailable"})),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let error = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect_err("503");
        assert!(matches!(error, TokenError::Transient { .. }), "{error}");
        assert!(stepwise_integrations::ActionError::from(error).is_retryable());
        let connection = h
            .engine
            .get_connection(&h.tenant_id, "conn")
            .await
            .expect("get");
        assert_eq!(connection.status, ConnectionStatus::Connected);
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("refresh_token=R1"))
            .respond_with(token_response("A2", "R2", 3600))
            .mount(&server)
            .await;
        let auth = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("recovered");
        assert_eq!(bearer(&auth), "A2");
        h.stop().await;
    }
}

/// A refresh endpoint that answers slowly, so concurrent callers really overlap.
async fn slow_refresh(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(token_response("A2", "R2", 3600).set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(server)
        .await;
}

async fn fifty_calls(engines: &[Engine], tenant: &str) {
    let calls = (0..50).map(|index| {
        let engine = engines[index % engines.len()].clone();
        let tenant = tenant.to_owned();
        async move { engine.connection_auth(&tenant, "conn").await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(bearer(&result.expect("auth")), "A2");
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_on_an_expired_token_refresh_once() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        authorized(&h, &server, 0).await;
        slow_refresh(&server).await;
        fifty_calls(std::slice::from_ref(&h.engine), &h.tenant_id).await;
        h.stop().await;
        server.verify().await;
    }
}

/// Three engines with their own pools and token managers on one Postgres database stand in
/// for three processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_across_three_engines_refresh_once() {
    for database in databases().await {
        if database.label != "postgres" {
            continue;
        }
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        authorized(&h, &server, 0).await;
        slow_refresh(&server).await;
        let mut engines = Vec::new();
        for _ in 0..3 {
            engines.push(
                Engine::open_with_keys(
                    &database.url,
                    Arc::new(Registry::builtin()),
                    services(),
                    h.engine.vault().key_provider().clone(),
                )
                .await
                .expect("open engine"),
            );
        }
        fifty_calls(&engines, &h.tenant_id).await;
        for engine in engines {
            engine.database().close().await;
        }
        h.stop().await;
        server.verify().await;
    }
}

#[tokio::test]
async fn deleting_revokes_both_tokens() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        authorized(&h, &server, 3600).await;
        for (token, hint) in [("R1", "refresh_token"), ("A1", "access_token")] {
            Mock::given(method("POST"))
                .and(path("/revoke"))
                .and(body_string_contains(format!(
                    "token={token}&token_type_hint={hint}"
                )))
                .and(header("content-type", "application/x-www-form-urlencoded"))
                .respond_with(ResponseTemplate::new(200))
                .expect(1)
                .mount(&server)
                .await;
        }
        let deleted = h
            .engine
            .delete_connection(&h.tenant_id, "conn")
            .await
            .expect("delete");
        assert!(deleted.revoked);
        assert!(h.engine.get_connection(&h.tenant_id, "conn").await.is_err());
        h.stop().await;
        server.verify().await;
    }
}

#[tokio::test]
async fn http_request_carries_the_connection_and_refreshes_once_on_401() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        authorized(&h, &server, 3600).await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(token_response("A2", "R2", 3600))
            .expect(1)
            .mount(&server)
            .await;
        // The provider has revoked A1 early: it answers 401 until the token is refreshed.
        Mock::given(method("GET"))
            .and(path("/api/me"))
            .and(header("authorization", "Bearer A1"))
            .respond_with(ResponseTemplate::new(401))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/me"))
            .and(header("authorization", "Bearer A2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": "ann"})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/key"))
            .and(header("x-token", "key-9"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .expect(1)
            .mount(&server)
            .await;
        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({"name": "key", "integration": "generic", "kind": "api_key", "api_key": "key-9", "api_key_header": "X-Token"})),
            )
            .await
            .expect("create");
        h.deploy(&format!(
            r#"name: who
steps:
  - id: me
    uses: http.request
    with:
      url: {uri}/api/me
      connection: conn
  - id: key
    uses: http.request
    with:
      url: {uri}/api/key
      connection: key
outputs:
  login: ${{{{ steps.me.output.body.login }}}}
  ok: ${{{{ steps.key.output.body.ok }}}}
"#,
            uri = server.uri()
        ))
        .await;
        let run_id = h.start_run("who", json!({})).await;
        let run = h.finish(&run_id).await;
        assert_eq!(
            run.output,
            Some(json!({"login": "ann", "ok": true})),
            "[{}] {run:#?}",
            h.label
        );
        let stored = serde_json::to_string(&run).expect("json");
        assert!(
            !stored.contains("A2") && !stored.contains("key-9"),
            "{stored}"
        );
        h.stop().await;
        server.verify().await;
    }
}

#[tokio::test]
async fn a_step_on_a_connection_that_needs_reauth_fails_with_a_reconnect_error() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(&h.engine, &h.tenant_id, &server, json!({})).await;
        h.deploy(&format!(
            r#"name: who
steps:
  - id: me
    uses: http.request
    with:
      url: {uri}/api/me
      connection: conn
"#,
            uri = server.uri()
        ))
        .await;
        let run_id = h.start_run("who", json!({})).await;
        let run = h.finish(&run_id).await;
        let error = run.steps[0].error.clone().expect("step error").to_string();
        assert!(
            error.contains("needs to be reconnected"),
            "[{}] {error}",
            h.label
        );
        // Permanent: one attempt, no retry storm.
        assert_eq!(run.steps[0].attempts, 1);
        assert!(
            server
                .received_requests()
                .await
                .expect("recorded")
                .is_empty()
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn key_rotation_keeps_apps_and_connections_usable() {
    for database in databases().await {
        let open = |keys: Vec<MasterKey>| {
            let url = database.url.clone();
            async move {
                Engine::open_with_keys(
                    &url,
                    Arc::new(Registry::builtin()),
                    services(),
                    Arc::new(LocalKeyProvider::new(KeyRing::new(keys))),
                )
                .await
                .expect("open engine")
            }
        };
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let engine = open(vec![old.clone()]).await;
        let (tenant, _) = engine.create_tenant("rotating").await.expect("tenant");
        let server = MockServer::start().await;
        authorize_on(&engine, &tenant.id, &server, 3600).await;
        engine.database().close().await;

        let rotating = open(vec![new.clone(), old]).await;
        let report = rotating.rewrap_secrets(100).await.expect("rotate");
        // The client secret and the connection's credentials.
        assert_eq!(
            (report.rewrapped, report.remaining),
            (2, 0),
            "[{}]",
            database.label
        );
        rotating.database().close().await;

        let rotated = open(vec![new]).await;
        let auth = rotated
            .connection_auth(&tenant.id, "conn")
            .await
            .expect("auth");
        assert_eq!(bearer(&auth), "A1");
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("refresh_token=R1"))
            .respond_with(token_response("A2", "R2", 3600))
            .expect(1)
            .mount(&server)
            .await;
        let refreshed = rotated
            .refresh_connection_auth(&tenant.id, "conn", &auth)
            .await
            .expect("refresh with the re-wrapped client secret");
        assert_eq!(bearer(&refreshed), "A2");
        rotated.database().close().await;
        database.drop().await;
    }
}

type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("CA")
}

/// A certificate for `name` issued by `ca` for `usage`: (certificate PEM, key PEM, the pair).
fn leaf(
    ca: &Ca,
    name: &str,
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String, rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.extended_key_usages = vec![usage];
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, ca).expect("sign");
    (certificate.pem(), key.serialize_pem(), certificate, key)
}

/// An HTTPS resource server on localhost (certificate issued by `server_ca`) that completes a
/// handshake only with a client certificate issued by `client_ca`, answers `200 {}` and
/// records each request's `Authorization` header. Returns its URL and the headers.
async fn mtls_resource_server(
    server_ca: &Ca,
    client_ca: &Ca,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    install_crypto_provider();
    let (_, _, certificate, key) = leaf(
        server_ca,
        "localhost",
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der().clone()).expect("client CA");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![certificate.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, recorded) = (acceptor.clone(), recorded.clone());
            tokio::spawn(async move {
                // A client without an accepted certificate fails here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let head = String::from_utf8_lossy(&request).into_owned();
                let authorization = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .starts_with("authorization:")
                            .then(|| line["authorization:".len()..].trim().to_owned())
                    })
                    .unwrap_or_default();
                recorded.lock().expect("lock").push(authorization);
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}"), seen)
}

#[tokio::test]
async fn a_client_certificate_on_an_oauth_connection_survives_refresh_and_key_rotation() {
    let (server_ca, client_ca) = (ca("resource server CA"), ca("client CA"));
    let (resource, seen) = mtls_resource_server(&server_ca, &client_ca).await;
    let (client_cert, client_key, _, _) = leaf(
        &client_ca,
        "stepwise-client",
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let services = services_with(HttpConfig {
        allow_private_networks: true,
        extra_ca_pem: Some(server_ca.pem().into_bytes()),
        ..HttpConfig::default()
    });
    for database in databases().await {
        let open = |keys: Vec<MasterKey>| {
            let (url, services) = (database.url.clone(), services.clone());
            async move {
                Engine::open_with_keys(
                    &url,
                    Arc::new(Registry::builtin()),
                    services,
                    Arc::new(LocalKeyProvider::new(KeyRing::new(keys))),
                )
                .await
                .expect("open engine")
            }
        };
        // Each probe must pass the mutual-TLS handshake and send the expected token.
        let probe = |engine: Engine, tenant: String| {
            let seen = seen.clone();
            async move {
                let tested = engine
                    .test_connection(&tenant, "conn")
                    .await
                    .expect("test connection");
                assert!(tested.report.ok, "{:?}", tested.report);
                let last = seen.lock().expect("lock").last().cloned();
                (engine, last.unwrap_or_default())
            }
        };
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let engine = open(vec![old.clone()]).await;
        let (tenant, _) = engine.create_tenant("mtls").await.expect("tenant");
        let tenant = tenant.id;
        let provider = MockServer::start().await;
        engine
            .create_oauth_app(
                &tenant,
                from_json(json!({
                    "name": "app", "integration": "generic", "client_id": "client-1",
                    "client_secret": "app-secret", "scopes": ["read"],
                    "authorize_url": format!("{}/authorize", provider.uri()),
                    "token_url": format!("{}/token", provider.uri()),
                })),
            )
            .await
            .expect("create app");
        engine
            .create_connection(
                &tenant,
                from_json(json!({
                    "name": "conn", "integration": "generic", "kind": "oauth2", "oauth_app": "app",
                    "probe_url": format!("{resource}/me"),
                    "client_cert": client_cert, "client_key": client_key,
                })),
            )
            .await
            .expect("an oauth2 connection takes a client certificate");
        // Without a certificate the server refuses the handshake.
        engine
            .create_connection(
                &tenant,
                from_json(json!({
                    "name": "no-cert", "integration": "generic", "kind": "bearer",
                    "token": "t", "probe_url": format!("{resource}/me"),
                })),
            )
            .await
            .expect("create");
        let refused = engine
            .test_connection(&tenant, "no-cert")
            .await
            .expect("test connection");
        assert!(!refused.report.ok, "[{}] {refused:?}", database.label);
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(token_response("mtls-access-1", "mtls-refresh-1", 3600))
            .expect(1)
            .mount(&provider)
            .await;
        let (state, _) = start(&engine, &tenant).await;
        engine
            .complete_authorization(None, &state, code("the-code"), REDIRECT)
            .await
            .expect("complete");
        let (engine, sent) = probe(engine, tenant.clone()).await;
        assert_eq!(sent, "Bearer mtls-access-1", "[{}]", database.label);

        // The provider refuses the access token: the refresh rotates the refresh token and
        // re-seals the credentials, client key included.
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("refresh_token=mtls-refresh-1"))
            .respond_with(token_response("mtls-access-2", "mtls-refresh-2", 3600))
            .expect(1)
            .mount(&provider)
            .await;
        engine
            .refresh_connection_auth(&tenant, "conn", &rejected("mtls-access-1"))
            .await
            .expect("refresh");
        let (engine, sent) = probe(engine, tenant.clone()).await;
        assert_eq!(sent, "Bearer mtls-access-2", "[{}]", database.label);
        let (engine, sent) = probe(engine, tenant.clone()).await;
        assert_eq!(sent, "Bearer mtls-access-2", "[{}]", database.label);
        let dump = database.dump().await;
        for line in client_key.lines().filter(|line| !line.starts_with("-----")) {
            assert!(
                !dump.contains(line),
                "[{}] the client key is stored in plaintext",
                database.label
            );
        }
        assert!(!dump.contains("mtls-refresh-2"), "[{}]", database.label);
        engine.database().close().await;

        let rotating = open(vec![new.clone(), old]).await;
        let report = rotating.rewrap_secrets(100).await.expect("rotate");
        // The client secret and both connections' credentials.
        assert_eq!(
            (report.rewrapped, report.remaining),
            (3, 0),
            "[{}]",
            database.label
        );
        rotating.database().close().await;

        let rotated = open(vec![new]).await;
        let (rotated, sent) = probe(rotated, tenant.clone()).await;
        assert_eq!(sent, "Bearer mtls-access-2", "[{}]", database.label);
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("refresh_token=mtls-refresh-2"))
            .respond_with(token_response("mtls-access-3", "mtls-refresh-3", 3600))
            .expect(1)
            .mount(&provider)
            .await;
        rotated
            .refresh_connection_auth(&tenant, "conn", &rejected("mtls-access-2"))
            .await
            .expect("refresh");
        let (rotated, sent) = probe(rotated, tenant.clone()).await;
        assert_eq!(sent, "Bearer mtls-access-3", "[{}]", database.label);
        provider.verify().await;
        rotated.database().close().await;
        database.drop().await;
    }
}
