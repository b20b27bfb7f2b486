//! The authentication and connection half of provider declarations (`providers/auth.rs`),
//! proven against wiremock servers that behave like the providers whose shapes they declare,
//! on every backend: Google's offline access (a refresh token only after `prompt=consent`),
//! PKCE switched off, Salesforce's `instance_url` kept (sealed) from the token answer and read
//! by the base URL, Slack's user token under `authed_user` and its `ok: false` refusals,
//! Microsoft's tenant in the endpoint URLs, Shopify's `shop` parameter and header token, an
//! API key in the query with a static header, and basic authentication.
//!
//! The declarations are test-only (`providers::register`); each provider's server address is
//! the OAuth app's endpoint override (itself a template), since a declaration lives as long as
//! the process and every test starts its own server.

mod common;

use std::sync::Once;

use common::{Harness, databases};
use oauth2::url::Url;
use serde_json::{Value, json};
use stepwise_engine::Engine;
use stepwise_engine::oauth::{CallbackError, CallbackOutcome};
use stepwise_engine::store::connections::ConnectionStatus;
use stepwise_integrations::probe::ProbeReport;
use stepwise_integrations::{ConnectionAuth, SecretValue};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

/// The test declarations, registered once per process.
fn declare() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for text in [
            // Google: no refresh token unless the user is asked for consent again.
            "name: fakegoogle\ndisplay_name: Google-like\nauth: [oauth2]\n\
             oauth2:\n  authorize_params:\n    access_type: offline\n    prompt: consent\n",
            // A provider that refuses PKCE parameters.
            "name: fakeplain\ndisplay_name: No PKCE\nauth: [oauth2]\noauth2:\n  pkce: false\n",
            // Salesforce: the API lives at the instance the token answer names.
            "name: fakesalesforce\ndisplay_name: Salesforce-like\nauth: [oauth2]\n\
             base_url: '{instance_url}/services/data/v60.0'\n\
             oauth2:\n  client_auth: client_secret_post\n  keep:\n    instance_url:\n\
             \x20     pattern: 'http://127\\.0\\.0\\.1:[0-9]+/sf-instance-7q'\n\
             probe:\n  method: GET\n  path: /limits\n  check: status\n",
            // Slack: the user token is under `authed_user`; refusals are HTTP 200.
            "name: fakeslack\ndisplay_name: Slack-like\nauth: [oauth2]\n\
             oauth2:\n  scope_separator: ','\n  token_path: authed_user\n\
             \x20 keep:\n    team_id:\n      pattern: 'T[A-Z0-9]+'\n",
            // Microsoft: the directory is part of the endpoints' path.
            "name: fakemicrosoft\ndisplay_name: Microsoft-like\nauth: [oauth2]\n\
             params:\n  tenant:\n    description: the directory (tenant) id or domain\n\
             \x20   pattern: '[A-Za-z0-9.-]+'\n    default: common\n\
             oauth2: {}\n",
            // Shopify: one shop per connection, the token in its own header.
            "name: fakeshop\ndisplay_name: Shopify-like\nauth: [oauth2, api_key]\n\
             params:\n  shop:\n    description: the shop's myshopify.com subdomain\n\
             api_key:\n  in: header\n  name: X-Shopify-Access-Token\n\
             oauth2:\n  scope_separator: ','\n  scopes: [read_orders, read_products]\n  \
             token:\n    in: header\n    name: X-Shopify-Access-Token\n\
             probe:\n  method: GET\n  path: /shop.json\n  check: status\n",
            // An API key in the query string, and a version header on every call.
            "name: fakekeyquery\ndisplay_name: Key-in-query\nauth: [api_key]\n\
             api_key:\n  in: query\n  name: key\nheaders:\n  Example-Version: '2022-06-28'\n",
            // Basic authentication with an account id as the user name (Twilio).
            "name: fakebasic\ndisplay_name: Basic\nauth: [basic]\n",
        ] {
            stepwise_integrations::providers::register(text).expect("a valid declaration");
        }
    });
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid request")
}

/// Creates the OAuth app named after `integration`, its endpoints (and base URL, when given)
/// on `server` (they may be templates), and the oauth2 connection `conn` with `params`.
async fn oauth_connection(
    h: &Harness,
    integration: &str,
    server: &MockServer,
    endpoints: (&str, &str),
    params: Value,
) -> Result<(), stepwise_engine::EngineError> {
    let mut app = json!({
        "name": integration, "integration": integration, "client_id": "client-1",
        "client_secret": "app-secret-canary-4b2", "scopes": ["read", "write"],
        "authorize_url": format!("{}{}", server.uri(), endpoints.0),
        "token_url": format!("{}{}", server.uri(), endpoints.1),
    });
    if integration == "fakeshop" {
        app["base_url"] = json!(format!("{}/{{shop}}/admin/api/2025-01", server.uri()));
        // An app naming no scopes asks for the declared ones.
        app["scopes"] = json!([]);
    }
    h.engine
        .create_oauth_app(&h.tenant_id, from_json(app))
        .await
        .expect("create app");
    h.engine
        .create_connection(
            &h.tenant_id,
            from_json(json!({
                "name": "conn", "integration": integration, "kind": "oauth2", "params": params,
            })),
        )
        .await
        .map(|_| ())
}

/// Starts authorizing `conn` and returns the authorization URL and its state.
async fn start(engine: &Engine, tenant: &str, integration: &str) -> (Url, String) {
    let url = engine
        .authorize_connection(tenant, integration, "conn", REDIRECT)
        .await
        .expect("authorize");
    let url = Url::parse(&url).expect("url");
    let state = query(&url, "state").expect("state");
    (url, state)
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The connection test's report for connection `name`.
async fn probe(h: &Harness, name: &str) -> ProbeReport {
    h.engine
        .test_connection(&h.tenant_id, name)
        .await
        .expect("test")
        .report
}

/// A failed probe whose message names `named` and never `hidden`.
fn assert_failed_naming(report: &ProbeReport, named: &str, hidden: &str) {
    assert!(!report.ok);
    assert!(report.message.contains(named), "{}", report.message);
    assert!(!report.message.contains(hidden), "{}", report.message);
}

fn code(value: &str) -> CallbackOutcome {
    CallbackOutcome::Code(SecretValue::new(value))
}

fn bearer(auth: &ConnectionAuth) -> &str {
    match auth {
        ConnectionAuth::Bearer(token) => token.expose(),
        other => panic!("not a bearer token: {other:?}"),
    }
}

/// The bodies of the token requests the server received.
async fn token_requests(server: &MockServer, token_path: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|request| request.url.path() == token_path)
        .map(|request| String::from_utf8_lossy(&request.body).into_owned())
        .collect()
}

#[tokio::test]
async fn offline_access_parameters_bring_a_refresh_token_and_pkce_can_be_switched_off() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(&h, "fakegoogle", &server, ("/auth", "/token"), json!({}))
            .await
            .expect("connection");
        // Like Google: the code of a consented offline authorization yields a refresh token.
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("code=consented-offline-code"))
            .and(body_string_contains("code_verifier="))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "G1", "token_type": "Bearer", "expires_in": 1,
                "refresh_token": "G-refresh", "scope": "read write",
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains("refresh_token=G-refresh"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "G2", "token_type": "Bearer", "expires_in": 3600,
            })))
            .mount(&server)
            .await;
        let (url, state) = start(&h.engine, &h.tenant_id, "fakegoogle").await;
        assert_eq!(url.path(), "/auth");
        assert_eq!(query(&url, "access_type").as_deref(), Some("offline"));
        assert_eq!(query(&url, "prompt").as_deref(), Some("consent"));
        assert_eq!(
            query(&url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        // The authorization server: consent and offline access asked for, so that code.
        let offline = query(&url, "prompt").as_deref() == Some("consent")
            && query(&url, "access_type").as_deref() == Some("offline");
        let granted = if offline {
            "consented-offline-code"
        } else {
            "online-code"
        };
        h.engine
            .complete_authorization(None, &state, code(granted), REDIRECT)
            .await
            .expect("complete");
        let auth = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("auth");
        assert_eq!(bearer(&auth), "G1");
        // After a 401, the refresh token (there only thanks to the offline consent) gets G2;
        // Google sends no new refresh token, so the stored one is kept for the next time.
        for expected in ["G2", "G2"] {
            let auth = h
                .engine
                .refresh_connection_auth(
                    &h.tenant_id,
                    "conn",
                    &ConnectionAuth::Bearer(SecretValue::new("G1")),
                )
                .await
                .expect("refresh");
            assert_eq!(bearer(&auth), expected);
        }
        assert_eq!(token_requests(&server, "/token").await.len(), 2);

        // Without PKCE: no challenge in the authorization, no verifier in the exchange.
        let plain = MockServer::start().await;
        h.engine
            .create_oauth_app(
                &h.tenant_id,
                from_json(json!({
                    "name": "plain", "integration": "fakeplain", "client_id": "c",
                    "client_secret": "s3cret-plain",
                    "authorize_url": format!("{}/auth", plain.uri()),
                    "token_url": format!("{}/token", plain.uri()),
                })),
            )
            .await
            .expect("app");
        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({"name": "plain-conn", "integration": "fakeplain", "kind": "oauth2", "oauth_app": "plain"})),
            )
            .await
            .expect("connection");
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "P1", "token_type": "Bearer",
            })))
            .mount(&plain)
            .await;
        let url = h
            .engine
            .authorize_connection(&h.tenant_id, "fakeplain", "plain-conn", REDIRECT)
            .await
            .expect("authorize");
        let url = Url::parse(&url).expect("url");
        assert_eq!(query(&url, "code_challenge"), None);
        assert_eq!(query(&url, "code_challenge_method"), None);
        let state = query(&url, "state").expect("state");
        h.engine
            .complete_authorization(None, &state, code("plain-code"), REDIRECT)
            .await
            .expect("complete");
        let bodies = token_requests(&plain, "/token").await;
        assert_eq!(bodies.len(), 1);
        assert!(bodies[0].contains("code=plain-code"), "{}", bodies[0]);
        assert!(!bodies[0].contains("code_verifier"), "{}", bodies[0]);
        h.stop().await;
    }
}

#[tokio::test]
async fn a_kept_instance_url_is_sealed_and_shapes_the_base_url() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(
            &h,
            "fakesalesforce",
            &server,
            ("/services/oauth2/authorize", "/services/oauth2/token"),
            json!({}),
        )
        .await
        .expect("connection");
        let instance = format!("{}/sf-instance-7q", server.uri());
        Mock::given(method("POST"))
            .and(path("/services/oauth2/token"))
            .and(body_string_contains("client_secret=app-secret-canary-4b2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "00Dsf-access-canary", "instance_url": instance,
                "id": "https://login.salesforce.com/id/00D/005", "token_type": "Bearer",
                "issued_at": "1700000000000", "signature": "c2ln",
            })))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/sf-instance-7q/services/data/v60.0/limits"))
            .and(header("authorization", "Bearer 00Dsf-access-canary"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&server)
            .await;
        let (_, state) = start(&h.engine, &h.tenant_id, "fakesalesforce").await;
        h.engine
            .complete_authorization(None, &state, code("sf-code"), REDIRECT)
            .await
            .expect("complete");
        let tested = probe(&h, "conn").await;
        assert!(tested.ok, "{:?}", tested);
        let dump = h.dump_database().await;
        assert!(
            !dump.contains("sf-instance-7q"),
            "the kept value is stored sealed"
        );
        assert!(!dump.contains("00Dsf-access-canary"));

        // A token answer naming an instance outside the declared pattern is never called.
        h.engine
            .delete_connection(&h.tenant_id, "conn")
            .await
            .expect("delete");
        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(
                    json!({"name": "conn", "integration": "fakesalesforce", "kind": "oauth2"}),
                ),
            )
            .await
            .expect("connection");
        Mock::given(method("POST"))
            .and(path("/services/oauth2/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "00Dsf-second", "instance_url": "http://169.254.169.254/sf-instance-7q",
                "token_type": "Bearer",
            })))
            .mount(&server)
            .await;
        let (_, state) = start(&h.engine, &h.tenant_id, "fakesalesforce").await;
        h.engine
            .complete_authorization(None, &state, code("sf-code-2"), REDIRECT)
            .await
            .expect("complete");
        let before = server.received_requests().await.unwrap_or_default().len();
        let tested = probe(&h, "conn").await;
        assert_failed_naming(&tested, "instance_url", "169.254");
        assert_eq!(
            server.received_requests().await.unwrap_or_default().len(),
            before
        );
        h.stop().await;
    }
}

#[tokio::test]
async fn a_user_token_nested_under_authed_user_is_used_and_a_200_refusal_is_a_refusal() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        oauth_connection(
            &h,
            "fakeslack",
            &server,
            ("/oauth/v2/authorize", "/api/oauth.v2.access"),
            json!({}),
        )
        .await
        .expect("connection");
        Mock::given(method("POST"))
            .and(path("/api/oauth.v2.access"))
            .and(body_string_contains("code=bad-code"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": false, "error": "invalid_code"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/oauth.v2.access"))
            .and(body_string_contains("code=good-code"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true, "app_id": "A1", "team_id": "T0ACME",
                "team": {"id": "T0ACME", "name": "Acme"},
                "authed_user": {
                    "id": "U1", "scope": "chat:write,channels:read",
                    "access_token": "xoxp-user-canary-11", "token_type": "user",
                },
            })))
            .mount(&server)
            .await;
        let (url, state) = start(&h.engine, &h.tenant_id, "fakeslack").await;
        assert_eq!(query(&url, "scope").as_deref(), Some("read,write"));
        let refused = h
            .engine
            .complete_authorization(None, &state, code("bad-code"), REDIRECT)
            .await
            .expect_err("refused");
        let CallbackError::Exchange(message) = refused else {
            panic!("an exchange failure: {refused:?}")
        };
        assert!(message.contains("invalid_code"), "{message}");
        let (_, state) = start(&h.engine, &h.tenant_id, "fakeslack").await;
        let connection = h
            .engine
            .complete_authorization(None, &state, code("good-code"), REDIRECT)
            .await
            .expect("complete");
        assert_eq!(connection.status, ConnectionStatus::Connected);
        assert_eq!(connection.scopes, ["chat:write,channels:read"]);
        let auth = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("auth");
        assert_eq!(bearer(&auth), "xoxp-user-canary-11");
        h.stop().await;
    }
}

#[tokio::test]
async fn the_tenant_parameter_fills_the_endpoints_and_defaults_to_common() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        let endpoints = (
            "/{tenant}/oauth2/v2.0/authorize",
            "/{tenant}/oauth2/v2.0/token",
        );
        oauth_connection(&h, "fakemicrosoft", &server, endpoints, json!({}))
            .await
            .expect("connection");
        for directory in ["common", "contoso.onmicrosoft.com"] {
            for (grant, access) in [
                ("authorization_code", "ms"),
                ("refresh_token", "ms-refreshed"),
            ] {
                Mock::given(method("POST"))
                    .and(path(format!("/{directory}/oauth2/v2.0/token")))
                    .and(body_string_contains(format!("grant_type={grant}")))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                        "access_token": format!("{access}-{directory}"), "token_type": "Bearer",
                        "expires_in": 3600, "refresh_token": format!("ms-refresh-{directory}"),
                    })))
                    .mount(&server)
                    .await;
            }
        }
        let (url, state) = start(&h.engine, &h.tenant_id, "fakemicrosoft").await;
        assert_eq!(url.path(), "/common/oauth2/v2.0/authorize");
        h.engine
            .complete_authorization(None, &state, code("c1"), REDIRECT)
            .await
            .expect("complete");

        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({
                    "name": "contoso", "integration": "fakemicrosoft", "kind": "oauth2",
                    "params": {"tenant": "contoso.onmicrosoft.com"},
                })),
            )
            .await
            .expect("connection");
        let url = h
            .engine
            .authorize_connection(&h.tenant_id, "fakemicrosoft", "contoso", REDIRECT)
            .await
            .expect("authorize");
        let url = Url::parse(&url).expect("url");
        assert_eq!(url.path(), "/contoso.onmicrosoft.com/oauth2/v2.0/authorize");
        h.engine
            .complete_authorization(
                None,
                &query(&url, "state").expect("state"),
                code("c2"),
                REDIRECT,
            )
            .await
            .expect("complete");
        // A refresh goes to the connection's own directory's endpoint.
        let rejected = ConnectionAuth::Bearer(SecretValue::new("ms-contoso.onmicrosoft.com"));
        let auth = h
            .engine
            .refresh_connection_auth(&h.tenant_id, "contoso", &rejected)
            .await
            .expect("refresh");
        assert_eq!(bearer(&auth), "ms-refreshed-contoso.onmicrosoft.com");
        let refreshes: Vec<String> =
            token_requests(&server, "/contoso.onmicrosoft.com/oauth2/v2.0/token")
                .await
                .into_iter()
                .filter(|body| body.contains("grant_type=refresh_token"))
                .collect();
        assert_eq!(refreshes.len(), 1);
        assert!(refreshes[0].contains("ms-refresh-contoso.onmicrosoft.com"));

        let bad = h
            .engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({"name": "bad", "integration": "fakemicrosoft", "kind": "oauth2", "params": {"tenant": ".."}})),
            )
            .await
            .expect_err("refused");
        assert!(bad.to_string().contains("`tenant`"), "{bad}");
        h.stop().await;
    }
}

#[tokio::test]
async fn the_shop_parameter_is_validated_and_its_token_goes_in_the_declared_header() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        for (params, expected) in [
            (json!({}), "needs parameter `shop`"),
            (json!({"shop": "evil.com/x"}), "parameter `shop` must match"),
            (
                json!({"shop": "acme", "region": "eu"}),
                "no parameter `region`",
            ),
        ] {
            let refused = h
                .engine
                .create_connection(
                    &h.tenant_id,
                    from_json(json!({"name": "s", "integration": "fakeshop", "kind": "api_key", "api_key": "shpat-k", "params": params})),
                )
                .await
                .expect_err("refused");
            assert!(refused.to_string().contains(expected), "{refused}");
        }
        let endpoints = (
            "/{shop}/admin/oauth/authorize",
            "/{shop}/admin/oauth/access_token",
        );
        oauth_connection(
            &h,
            "fakeshop",
            &server,
            endpoints,
            json!({"shop": "acme-store"}),
        )
        .await
        .expect("connection");
        Mock::given(method("POST"))
            .and(path("/acme-store/admin/oauth/access_token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "shpua-canary-81", "scope": "read_orders",
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/acme-store/admin/api/2025-01/shop.json"))
            .and(header("x-shopify-access-token", "shpua-canary-81"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"shop": {}})))
            .mount(&server)
            .await;
        let (url, state) = start(&h.engine, &h.tenant_id, "fakeshop").await;
        assert_eq!(url.path(), "/acme-store/admin/oauth/authorize");
        assert_eq!(
            query(&url, "scope").as_deref(),
            Some("read_orders,read_products")
        );
        h.engine
            .complete_authorization(None, &state, code("shop-code"), REDIRECT)
            .await
            .expect("complete");
        let auth = h
            .engine
            .connection_auth(&h.tenant_id, "conn")
            .await
            .expect("auth");
        assert!(matches!(auth, ConnectionAuth::Placed { .. }), "{auth:?}");
        assert!(!format!("{auth:?}").contains("shpua-canary-81"));
        // The OAuth token and an API key connection's key both go in the shop's header, to
        // the base URL its `shop` shapes.
        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({"name": "store", "integration": "fakeshop", "kind": "api_key", "api_key": "shpua-canary-81", "params": {"shop": "acme-store"}})),
            )
            .await
            .expect("api key connection");
        for name in ["conn", "store"] {
            let tested = probe(&h, name).await;
            assert!(tested.ok, "{name}: {:?}", tested);
        }
        let probe = server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|request| request.url.path().ends_with("/shop.json"))
            .expect("the probe");
        assert!(!probe.headers.contains_key("authorization"));
        h.stop().await;
    }
}

#[tokio::test]
async fn an_api_key_in_the_query_and_static_headers_go_on_every_call_and_nowhere_else() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({
                    "name": "q", "integration": "fakekeyquery", "kind": "api_key",
                    "api_key": "AIza-query-canary-5e", "probe_url": format!("{}/v1/models?page=1", server.uri()),
                })),
            )
            .await
            .expect("connection");
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .and(query_param("key", "AIza-query-canary-5e"))
            .and(query_param("page", "1"))
            .and(header("example-version", "2022-06-28"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403))
            .mount(&server)
            .await;
        let tested = probe(&h, "q").await;
        assert!(tested.ok, "{:?}", tested);
        // A failing probe's message names the URL without the key.
        let failed = probe(&h, "q").await;
        assert_failed_naming(&failed, "/v1/models", "canary");
        let dump = h.dump_database().await;
        assert!(!dump.contains("AIza-query-canary-5e"));
        h.stop().await;
    }
}

#[tokio::test]
async fn basic_authentication_sends_the_account_id_as_the_user_name() {
    declare();
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        h.engine
            .create_connection(
                &h.tenant_id,
                from_json(json!({
                    "name": "twilio", "integration": "fakebasic", "kind": "basic",
                    "username": "AC0123456789", "password": "auth-token-canary-2f",
                    "probe_url": format!("{}/2010-04-01/Accounts.json", server.uri()),
                })),
            )
            .await
            .expect("connection");
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AC0123456789:auth-token-canary-2f")
        );
        Mock::given(method("GET"))
            .and(path("/2010-04-01/Accounts.json"))
            .and(header("authorization", expected.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&server)
            .await;
        let tested = probe(&h, "twilio").await;
        assert!(tested.ok, "{:?}", tested);
        h.stop().await;
    }
}
