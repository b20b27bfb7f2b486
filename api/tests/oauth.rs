//! Connections and the OAuth 2.0 authorization-code flow through the HTTP API: CRUD with JSON
//! errors, secrets never in responses, the callback's pages, and the whole flow (PKCE, code
//! exchange, refresh with rotation, revocation) against oauth2-mock-server, a standards-
//! compliant server from npm (installed by `.ci/run` into `.ci/oauth-mock`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestApp, for_each_backend};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use stepwise_integrations::ConnectionAuth;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CLIENT_SECRET: &str = "mock-secret-canary-19f";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("location header")
        .to_owned()
}

async fn tenant_id(app: &TestApp) -> String {
    app.engine
        .authenticate(&app.api_key)
        .await
        .expect("authenticate")
        .expect("tenant")
        .id
}

#[tokio::test]
async fn oauth_apps_and_connections_crud_with_json_errors() {
    for_each_backend(|app| async move {
        let created = app
            .post_json(
                "/api/v1/oauth-apps",
                &json!({"integration": "github", "client_id": "Iv1.abc", "client_secret": CLIENT_SECRET, "scopes": ["repo"]}).to_string(),
            )
            .await;
        let created = app.expect_json(created, StatusCode::CREATED).await;
        assert_eq!(created["name"], "github");
        assert_eq!(created["token_url"], "https://github.com/login/oauth/access_token");
        assert_eq!(created["auth_method"], "client_secret_post");
        assert_eq!(created["has_client_secret"], true);
        let duplicate = app
            .post_json(
                "/api/v1/oauth-apps",
                &json!({"integration": "github", "client_id": "x"}).to_string(),
            )
            .await;
        app.expect_error(duplicate, StatusCode::CONFLICT, "conflict").await;
        let unknown = app
            .post_json(
                "/api/v1/oauth-apps",
                &json!({"integration": "myspace", "client_id": "x"}).to_string(),
            )
            .await;
        app.expect_error(unknown, StatusCode::BAD_REQUEST, "invalid_input").await;
        let generic = app
            .post_json(
                "/api/v1/oauth-apps",
                &json!({"integration": "generic", "client_id": "x"}).to_string(),
            )
            .await;
        let body = app
            .expect_error(generic, StatusCode::BAD_REQUEST, "invalid_input")
            .await;
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains("token_url"));

        let oauth = app
            .post_json(
                "/api/v1/connections",
                &json!({"name": "gh", "integration": "github", "kind": "oauth2"}).to_string(),
            )
            .await;
        let oauth = app.expect_json(oauth, StatusCode::CREATED).await;
        assert_eq!(oauth["status"], "needs_reauth");
        assert_eq!(
            oauth["authorize_url"],
            app.url("/oauth/github/authorize?connection=gh")
        );
        let bearer = app
            .post_json(
                "/api/v1/connections",
                &json!({"name": "tok", "integration": "generic", "kind": "bearer", "token": "bearer-canary-4e"}).to_string(),
            )
            .await;
        let bearer = app.expect_json(bearer, StatusCode::CREATED).await;
        assert_eq!(bearer["status"], "connected");
        let missing = app
            .post_json(
                "/api/v1/connections",
                &json!({"name": "key", "integration": "generic", "kind": "api_key"}).to_string(),
            )
            .await;
        app.expect_error(missing, StatusCode::BAD_REQUEST, "invalid_input").await;
        let bad_name = app
            .post_json(
                "/api/v1/connections",
                &json!({"name": "Bad Name", "integration": "generic", "kind": "bearer", "token": "t"}).to_string(),
            )
            .await;
        app.expect_error(bad_name, StatusCode::BAD_REQUEST, "invalid_input").await;

        let listed = app.get("/api/v1/connections").await;
        let listed = app.expect_json(listed, StatusCode::OK).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
        let apps = app.get("/api/v1/oauth-apps").await;
        let apps = app.expect_json(apps, StatusCode::OK).await;
        for text in [listed.to_string(), apps.to_string(), created.to_string()] {
            assert!(!text.contains(CLIENT_SECRET) && !text.contains("bearer-canary-4e"), "{text}");
        }

        // Authorizing: only OAuth connections, of the right integration, of this tenant.
        let wrong_kind = app.get("/oauth/generic/authorize?connection=tok").await;
        app.expect_error(wrong_kind, StatusCode::BAD_REQUEST, "invalid_input").await;
        let unknown = app.get("/oauth/github/authorize?connection=nope").await;
        app.expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
        let anonymous = app
            .client
            .get(app.url("/oauth/github/authorize?connection=gh"))
            .send()
            .await
            .expect("send");
        app.expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let redirect = no_redirects()
            .get(app.url("/oauth/github/authorize?connection=gh"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .expect("send");
        assert_eq!(redirect.status(), StatusCode::FOUND);
        let target = location(&redirect);
        assert!(target.starts_with("https://github.com/login/oauth/authorize?"), "{target}");
        assert!(target.contains("code_challenge_method=S256"), "{target}");
        assert!(target.contains(&format!(
            "redirect_uri={}",
            form_encode(&app.url("/oauth/callback"))
        )), "{target}");

        let deleted = app.delete("/api/v1/connections/tok").await;
        let deleted = app.expect_json(deleted, StatusCode::OK).await;
        assert_eq!(deleted["revoked"], false);
        let again = app.delete("/api/v1/connections/tok").await;
        app.expect_error(again, StatusCode::NOT_FOUND, "not_found").await;
        let app_deleted = app.delete("/api/v1/oauth-apps/github").await;
        assert_eq!(app_deleted.status(), StatusCode::NO_CONTENT);
        app
    })
    .await;
}

fn form_encode(text: &str) -> String {
    text.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn connection_parameters_are_checked_at_creation_and_shown() {
    // A test-only declaration: a shop per connection, like Shopify.
    static DECLARED: std::sync::Once = std::sync::Once::new();
    DECLARED.call_once(|| {
        stepwise_integrations::providers::register(
            "name: apishop\ndisplay_name: Shop\nauth: [api_key]\n\
             base_url: https://{shop}.myshopify.com/admin/api/2025-01\n\
             params:\n  shop:\n    description: the shop's subdomain\n\
             api_key:\n  in: header\n  name: X-Shopify-Access-Token\n",
        )
        .expect("declaration");
    });
    for_each_backend(|app| async move {
        let connection = |params: Value| {
            json!({"name": "store", "integration": "apishop", "kind": "api_key",
                   "api_key": "shpat-canary-6d", "params": params})
            .to_string()
        };
        for params in [
            json!({}),
            json!({"shop": "evil.example/x"}),
            json!({"shop": "a", "x": "b"}),
        ] {
            let refused = app
                .post_json("/api/v1/connections", &connection(params))
                .await;
            let body = app
                .expect_error(refused, StatusCode::BAD_REQUEST, "invalid_input")
                .await;
            assert!(!body.to_string().contains("shpat-canary-6d"), "{body}");
        }
        let created = app
            .post_json("/api/v1/connections", &connection(json!({"shop": "acme"})))
            .await;
        let created = app.expect_json(created, StatusCode::CREATED).await;
        assert_eq!(created["params"], json!({"shop": "acme"}));
        // The key goes where the declaration places it, not in a header of its own.
        assert_eq!(created["api_key_header"], Value::Null);
        let listed = app.get("/api/v1/connections/store").await;
        let listed = app.expect_json(listed, StatusCode::OK).await;
        assert_eq!(listed["params"]["shop"], "acme");
        let catalogue = app.get("/api/v1/providers").await;
        let catalogue = app.expect_json(catalogue, StatusCode::OK).await;
        let providers = catalogue["providers"].as_array().expect("providers");
        assert!(
            providers.iter().all(|p| p["params"].is_array()),
            "{catalogue}"
        );
        app
    })
    .await;
}

#[tokio::test]
async fn the_callback_answers_with_pages_and_the_right_status() {
    for_each_backend(|app| async move {
        let client = no_redirects();
        let cases = [
            (
                "/oauth/callback?code=c",
                StatusCode::BAD_REQUEST,
                "no `state`",
            ),
            (
                "/oauth/callback?state=s",
                StatusCode::BAD_REQUEST,
                "neither",
            ),
            (
                "/oauth/callback?state=unknown&code=c",
                StatusCode::BAD_REQUEST,
                "unknown or was already used",
            ),
            (
                "/oauth/callback?state=unknown&error=access_denied&error_description=%3Cscript%3E",
                StatusCode::BAD_REQUEST,
                "unknown or was already used",
            ),
        ];
        for (path, status, text) in cases {
            let response = client.get(app.url(path)).send().await.expect("send");
            assert_eq!(response.status(), status, "[{}] {path}", app.backend);
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                content_type.starts_with("text/html"),
                "{path}: {content_type}"
            );
            let body = response.text().await.expect("body");
            assert!(body.contains(text), "[{}] {path}: {body}", app.backend);
            assert!(!body.contains("<script>"), "{body}");
        }
        let bad_key = client
            .get(app.url("/oauth/callback?state=s&code=c"))
            .bearer_auth("sw_not_a_key")
            .send()
            .await
            .expect("send");
        assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);
        app
    })
    .await;
}

/// oauth2-mock-server in a child process; its stdout lines are JSON events.
struct MockProvider {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    _child: Child,
}

impl MockProvider {
    /// `None` (with a message) when the npm package is not installed, unless CI=true.
    async fn start() -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/oauth-mock");
        if !dir
            .join("node_modules/oauth2-mock-server/package.json")
            .is_file()
        {
            let message = format!(
                "oauth2-mock-server is not installed in {}: run `npm ci` there (.ci/run does)",
                dir.display()
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("CI=true but {message}");
            }
            eprintln!("skipping the OAuth flow against oauth2-mock-server: {message}");
            return None;
        }
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines
            .next_line()
            .await
            .expect("read")
            .expect("listening line");
        let listening: Value = serde_json::from_str(&first).expect("json");
        let url = listening["url"].as_str().expect("url").to_owned();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("events").push(event);
                }
            }
        });
        Some(Self {
            url,
            events,
            _child: child,
        })
    }

    /// The events of `kind` once there are at least `count` (bounded wait).
    async fn events(&self, kind: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Value> = self
                .events
                .lock()
                .expect("events")
                .iter()
                .filter(|event| event["event"] == kind)
                .cloned()
                .collect();
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `Set-Cookie` header of a response that sets `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

#[tokio::test]
async fn a_flow_started_from_the_dashboard_returns_to_its_connections_page() {
    for_each_backend(|app| async move {
        create(
            &app,
            "/api/v1/oauth-apps",
            json!({"integration": "github", "client_id": "id", "client_secret": CLIENT_SECRET}),
        )
        .await;
        create(
            &app,
            "/api/v1/connections",
            json!({"name": "gh", "integration": "github", "kind": "oauth2"}),
        )
        .await;
        let client = no_redirects();
        let elsewhere =
            client
                .get(app.url(
                    "/oauth/github/authorize?connection=gh&return_to=https%3A%2F%2Fevil.example",
                ))
                .bearer_auth(&app.api_key)
                .send()
                .await
                .expect("send");
        let elsewhere = app.expect_json(elsewhere, StatusCode::BAD_REQUEST).await;
        assert!(
            elsewhere["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("return_to"))
        );

        let authorize = client
            .get(app.url("/oauth/github/authorize?connection=gh&return_to=dashboard"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .expect("send");
        assert_eq!(authorize.status(), StatusCode::FOUND);
        let cookie = set_cookie(&authorize, "stepwise_oauth_return");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/oauth/callback"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        let to_github = reqwest::Url::parse(&location(&authorize)).expect("url");
        let state = to_github
            .query_pairs()
            .find(|(key, _)| key == "state")
            .map(|(_, value)| value.into_owned())
            .expect("state");

        // The user refused at the provider: back on the dashboard with the provider's code only.
        let refused = client
            .get(app.url(&format!(
                "/oauth/callback?state={state}&error=access_denied&error_description=Call+us"
            )))
            .header("cookie", "stepwise_oauth_return=dashboard")
            .send()
            .await
            .expect("send");
        assert_eq!(refused.status(), StatusCode::SEE_OTHER, "[{}]", app.backend);
        assert_eq!(
            location(&refused),
            "/ui/#/connections?oauth=failed&reason=provider_error&error=access_denied"
        );
        assert!(set_cookie(&refused, "stepwise_oauth_return").contains("Max-Age=0"));
        // The state was spent: the same link again is unknown.
        let replayed = client
            .get(app.url(&format!("/oauth/callback?state={state}&code=c")))
            .header("cookie", "stepwise_oauth_return=dashboard")
            .send()
            .await
            .expect("send");
        assert_eq!(
            location(&replayed),
            "/ui/#/connections?oauth=failed&reason=unknown_state"
        );
        // Without the cookie the callback answers with its own page, as before.
        let page = client
            .get(app.url(&format!("/oauth/callback?state={state}&code=c")))
            .send()
            .await
            .expect("send");
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        assert!(
            page.text()
                .await
                .expect("body")
                .contains("unknown or was already used")
        );
        app
    })
    .await;
}

#[tokio::test]
async fn full_flow_against_oauth2_mock_server() {
    let Some(provider) = MockProvider::start().await else {
        return;
    };
    let provider = Arc::new(provider);
    for_each_backend(|app| {
        let provider = provider.clone();
        async move {
            provider.events.lock().expect("events").clear();
            let url = &provider.url;
            let created = app
                .post_json(
                    "/api/v1/oauth-apps",
                    &json!({
                        "name": "mock",
                        "integration": "generic",
                        "client_id": "stepwise-test",
                        "client_secret": CLIENT_SECRET,
                        "scopes": ["openid", "profile"],
                        "auth_method": "client_secret_basic",
                        // Every endpoint comes from the server's OpenID metadata.
                        "issuer": url,
                    })
                    .to_string(),
                )
                .await;
            let created = app.expect_json(created, StatusCode::CREATED).await;
            assert_eq!(created["issuer"], url.as_str(), "{created:#}");
            assert_eq!(created["authorize_url"], format!("{url}/authorize"));
            assert_eq!(created["token_url"], format!("{url}/token"));
            assert_eq!(created["revoke_url"], format!("{url}/revoke"));
            let connection = app
                .post_json(
                    "/api/v1/connections",
                    &json!({"name": "idp", "integration": "generic", "kind": "oauth2", "oauth_app": "mock"}).to_string(),
                )
                .await;
            let connection = app.expect_json(connection, StatusCode::CREATED).await;

            // Our redirect to the provider, the provider's back to us, our callback.
            let client = no_redirects();
            let to_provider = client
                .get(connection["authorize_url"].as_str().expect("authorize_url"))
                .bearer_auth(&app.api_key)
                .send()
                .await
                .expect("authorize");
            assert_eq!(to_provider.status(), StatusCode::FOUND);
            let back = client
                .get(location(&to_provider))
                .send()
                .await
                .expect("provider");
            assert_eq!(back.status(), StatusCode::FOUND, "[{}]", app.backend);
            let callback = location(&back);
            assert!(callback.starts_with(&app.url("/oauth/callback?")), "{callback}");
            let page = client.get(&callback).send().await.expect("callback");
            assert_eq!(page.status(), StatusCode::OK, "[{}]", app.backend);
            assert!(page.text().await.expect("page").contains("is authorized"));
            // The same redirect again: the state was single use.
            let replay = client.get(&callback).send().await.expect("callback");
            assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

            let stored = app.get("/api/v1/connections/idp").await;
            let stored = app.expect_json(stored, StatusCode::OK).await;
            assert_eq!(stored["status"], "connected", "{stored:#}");
            assert!(stored["expires_at"].is_i64(), "{stored:#}");
            assert!(stored["scopes"].as_array().is_some_and(|s| !s.is_empty()));
            // `generic` has no built-in probe: the test shows the token can be obtained.
            let tested = test_connection(&app, "idp").await;
            assert_eq!(tested["ok"], true, "{tested:#}");
            assert_eq!(tested["connection_status"], "connected");

            let exchange = &provider.events("token", 1).await[0];
            assert_eq!(exchange["grant_type"], "authorization_code");
            assert!(exchange["code_verifier"].as_str().is_some_and(|v| v.len() >= 43));
            assert!(exchange["authorization"].as_str().is_some_and(|a| a.starts_with("Basic ")));

            // Refresh twice (as after two 401s): the second presents the rotated token.
            let tenant = tenant_id(&app).await;
            let first = app.engine.connection_auth(&tenant, "idp").await.expect("auth");
            let second = app
                .engine
                .refresh_connection_auth(&tenant, "idp", &first)
                .await
                .expect("refresh");
            let third = app
                .engine
                .refresh_connection_auth(&tenant, "idp", &second)
                .await
                .expect("refresh");
            // The server's access tokens are JWTs of second resolution, so two refreshes in
            // one second may return equal ones; the refresh tokens are random per response.
            assert!(matches!(first, ConnectionAuth::Bearer(_)));
            let tokens = provider.events("token", 3).await;
            let presented: Vec<&str> = tokens[1..]
                .iter()
                .map(|event| {
                    assert_eq!(event["grant_type"], "refresh_token");
                    event["refresh_token"].as_str().expect("refresh token")
                })
                .collect();
            assert_ne!(presented[0], presented[1], "the rotated refresh token was not used");

            let deleted = app.delete("/api/v1/connections/idp").await;
            let deleted = app.expect_json(deleted, StatusCode::OK).await;
            assert_eq!(deleted["revoked"], true);
            let revoked = provider.events("revoke", 2).await;
            assert_eq!(revoked.len(), 2, "{revoked:#?}");
            assert_eq!(revoked[0]["token_type_hint"], "refresh_token");
            let latest_refresh = revoked[0]["token"].as_str().expect("token");
            assert!(!presented.contains(&latest_refresh));
            assert_eq!(revoked[1]["token_type_hint"], "access_token");
            let ConnectionAuth::Bearer(latest_access) = &third else {
                panic!("not bearer")
            };
            assert_eq!(revoked[1]["token"], latest_access.expose());
            app
        }
    })
    .await;
}

/// `POST /api/v1/connections/{name}/test`: `200` with the verdict.
async fn test_connection(app: &TestApp, name: &str) -> Value {
    let response = app
        .post_json(&format!("/api/v1/connections/{name}/test"), "")
        .await;
    app.expect_json(response, StatusCode::OK).await
}

async fn create(app: &TestApp, path: &str, body: Value) {
    let response = app.post_json(path, &body.to_string()).await;
    app.expect_json(response, StatusCode::CREATED).await;
}

#[tokio::test]
async fn connection_tests_probe_each_provider_through_the_chain() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .and(header("authorization", "Bearer gh-good-canary"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"login": "octocat"})))
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/auth.test"))
        .and(header("authorization", "Bearer xoxb-good-canary"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "team": "T1"})))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/auth.test"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
        )
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .and(header("x-api-key", "generic-key-canary"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&provider)
        .await;
    let base = provider.uri();
    // Nothing listens on port 1 of the loopback address: connection refused.
    let unreachable = "http://127.0.0.1:1";

    for_each_backend(|app| {
        let base = base.clone();
        async move {
            for (integration, base_url) in [
                ("github", base.clone()),
                ("slack", format!("{base}/api")),
                ("stripe", unreachable.to_owned()),
            ] {
                create(
                    &app,
                    "/api/v1/oauth-apps",
                    json!({"integration": integration, "client_id": "cid", "base_url": base_url}),
                )
                .await;
            }
            for (name, integration, token) in [
                ("gh", "github", "gh-good-canary"),
                ("gh-revoked", "github", "gh-revoked-canary"),
                ("sl", "slack", "xoxb-good-canary"),
                ("sl-revoked", "slack", "xoxb-revoked-canary"),
                ("st", "stripe", "sk-test-canary"),
                ("plain", "generic", "plain-canary"),
            ] {
                create(
                    &app,
                    "/api/v1/connections",
                    json!({"name": name, "integration": integration, "kind": "bearer", "token": token}),
                )
                .await;
            }
            create(
                &app,
                "/api/v1/connections",
                json!({"name": "probed", "integration": "generic", "kind": "api_key",
                       "api_key": "generic-key-canary", "probe_url": format!("{base}/health")}),
            )
            .await;
            // TLS settings are checked at creation; the key never comes back.
            for (body, field) in [
                (json!({"client_cert": "-----BEGIN CERTIFICATE-----"}), "client_key"),
                (json!({"client_cert": "not pem", "client_key": "key-canary"}), "PEM"),
                (json!({"tls_min": "1.1"}), "tls_min"),
            ] {
                let mut new = json!({"name": "tls", "integration": "generic", "kind": "bearer", "token": "t"});
                new.as_object_mut().expect("object").extend(body.as_object().expect("object").clone());
                let refused = app.post_json("/api/v1/connections", &new.to_string()).await;
                let refused = app.expect_error(refused, StatusCode::BAD_REQUEST, "invalid_input").await;
                let message = refused["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains(field) && !message.contains("canary"), "{message}");
            }
            let oauth_cert = app
                .post_json(
                    "/api/v1/connections",
                    &json!({"name": "tls", "integration": "github", "kind": "oauth2",
                            "client_cert": "-----BEGIN CERTIFICATE-----", "client_key": "k"})
                    .to_string(),
                )
                .await;
            // Allowed on oauth2 connections too, and checked the same way.
            let refused = app.expect_error(oauth_cert, StatusCode::BAD_REQUEST, "invalid_input").await;
            let message = refused["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("PEM") && !message.contains("does not apply"), "{message}");
            create(
                &app,
                "/api/v1/connections",
                json!({"name": "legacy", "integration": "generic", "kind": "bearer", "token": "t", "tls_min": "1.2"}),
            )
            .await;
            let legacy = app.expect_json(app.get("/api/v1/connections/legacy").await, StatusCode::OK).await;
            assert_eq!((legacy["tls_min"].clone(), legacy["has_client_cert"].clone()), (json!("1.2"), json!(false)));
            let bad_probe = app
                .post_json(
                    "/api/v1/connections",
                    &json!({"name": "bad", "integration": "generic", "kind": "bearer",
                            "token": "t", "probe_url": "ftp://example.com"})
                    .to_string(),
                )
                .await;
            app.expect_error(bad_probe, StatusCode::BAD_REQUEST, "invalid_input").await;

            let mut bodies = Vec::new();
            let gh = test_connection(&app, "gh").await;
            assert_eq!(gh["ok"], true, "[{}] {gh:#}", app.backend);
            assert_eq!(gh["status"], 200, "{gh:#}");
            assert!(gh["latency_ms"].is_u64(), "{gh:#}");
            assert_eq!(gh["connection_status"], "connected");
            bodies.push(gh);

            // A bearer token cannot be refreshed: the 401 stands, the connection needs new
            // credentials.
            let revoked = test_connection(&app, "gh-revoked").await;
            assert_eq!(revoked["ok"], false, "{revoked:#}");
            assert!(revoked["message"].as_str().unwrap_or_default().contains("401"), "{revoked:#}");
            assert_eq!(revoked["connection_status"], "needs_reauth", "{revoked:#}");
            let stored = app.expect_json(app.get("/api/v1/connections/gh-revoked").await, StatusCode::OK).await;
            assert_eq!(stored["status"], "needs_reauth");
            assert!(stored["status_reason"].as_str().unwrap_or_default().contains("refused"), "{stored:#}");
            bodies.push(revoked);

            let slack = test_connection(&app, "sl").await;
            assert_eq!((slack["ok"].clone(), slack["status"].clone()), (json!(true), json!(200)), "{slack:#}");
            bodies.push(slack);
            // HTTP 200 with `ok: false` is a failure, and `invalid_auth` means revoked.
            let slack_revoked = test_connection(&app, "sl-revoked").await;
            assert_eq!(slack_revoked["ok"], false, "{slack_revoked:#}");
            assert_eq!(slack_revoked["status"], 200);
            assert!(slack_revoked["message"].as_str().unwrap_or_default().contains("invalid_auth"));
            assert_eq!(slack_revoked["connection_status"], "needs_reauth");
            bodies.push(slack_revoked);

            // Unreachable: a failure, but the credentials are not to blame.
            let stripe = test_connection(&app, "st").await;
            assert_eq!(stripe["ok"], false, "{stripe:#}");
            assert_eq!(stripe["status"], Value::Null);
            assert!(stripe["message"].as_str().unwrap_or_default().contains("127.0.0.1:1"), "{stripe:#}");
            assert_eq!(stripe["connection_status"], "connected");
            bodies.push(stripe);

            let probed = test_connection(&app, "probed").await;
            assert_eq!((probed["ok"].clone(), probed["status"].clone()), (json!(true), json!(204)), "{probed:#}");
            bodies.push(probed);
            // No probe for `generic` without `probe_url`: only the credentials are checked.
            let plain = test_connection(&app, "plain").await;
            assert_eq!(plain["ok"], true, "{plain:#}");
            assert_eq!(plain["status"], Value::Null);
            assert!(plain["message"].as_str().unwrap_or_default().contains("probe_url"));
            bodies.push(plain);
            for body in &bodies {
                let text = body.to_string();
                assert!(!text.contains("canary"), "a credential leaked: {text}");
            }

            // Another tenant's connection, and no connection at all, are 404.
            let (_, other_key) = app.engine.create_tenant("other").await.expect("tenant");
            let foreign = app
                .client
                .post(app.url("/api/v1/connections/gh/test"))
                .bearer_auth(&other_key)
                .send()
                .await
                .expect("send");
            app.expect_error(foreign, StatusCode::NOT_FOUND, "not_found").await;
            let missing = app.post_json("/api/v1/connections/nope/test", "").await;
            app.expect_error(missing, StatusCode::NOT_FOUND, "not_found").await;
            app
        }
    })
    .await;
}

#[tokio::test]
async fn discovery_follows_rfc_8414_paths_and_checks_the_issuer() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let base = server.uri();
    let document = |issuer: &str| {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        })
    };
    // RFC 8414 path insertion for an issuer with a path; the OpenID document under it must
    // not be used while the RFC 8414 one exists.
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server/tenant-a"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(document(&format!("{base}/tenant-a"))),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/tenant-a/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document("https://wrong.example")))
        .mount(&server)
        .await;
    // Only OpenID Discovery's appended form.
    Mock::given(method("GET"))
        .and(path("/realm/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document(&format!("{base}/realm"))))
        .mount(&server)
        .await;
    // A document naming another issuer.
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server/spoofed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document("https://evil.example")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/meta.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document(&format!("{base}/custom"))))
        .mount(&server)
        .await;

    for_each_backend(|app| {
        let base = base.clone();
        async move {
            let create = |body: Value| {
                let app = &app;
                async move { app.post_json("/api/v1/oauth-apps", &body.to_string()).await }
            };
            let issuer = format!("{base}/tenant-a");
            let created = create(json!({"name": "a", "integration": "generic", "client_id": "c",
                                        "issuer": issuer, "token_url": "https://override.example/token"}))
                .await;
            let created = app.expect_json(created, StatusCode::CREATED).await;
            assert_eq!(created["issuer"], issuer.as_str());
            assert_eq!(created["authorize_url"], format!("{issuer}/auth"));
            assert_eq!(created["token_url"], "https://override.example/token", "explicit wins");
            assert_eq!(created["revoke_url"], format!("{issuer}/revoke"));
            assert_eq!(created["auth_method"], "client_secret_post", "from the metadata");
            let stored = app.expect_json(app.get("/api/v1/oauth-apps/a").await, StatusCode::OK).await;
            assert_eq!(stored, created);

            let realm = format!("{base}/realm");
            let created = create(json!({"name": "r", "integration": "generic", "client_id": "c",
                                        "issuer": realm, "auth_method": "basic"}))
                .await;
            let created = app.expect_json(created, StatusCode::CREATED).await;
            assert_eq!(created["token_url"], format!("{realm}/token"));
            assert_eq!(created["auth_method"], "client_secret_basic", "explicit wins");

            let direct = create(json!({"name": "d", "integration": "generic", "client_id": "c",
                                       "discovery_url": format!("{base}/meta.json")}))
                .await;
            let direct = app.expect_json(direct, StatusCode::CREATED).await;
            assert_eq!(direct["issuer"], format!("{base}/custom"));
            let mismatched = create(json!({"name": "m", "integration": "generic", "client_id": "c",
                                           "issuer": "https://other.example",
                                           "discovery_url": format!("{base}/meta.json")}))
                .await;
            app.expect_error(mismatched, StatusCode::BAD_REQUEST, "invalid_input").await;

            let spoofed = create(json!({"name": "s", "integration": "generic", "client_id": "c",
                                        "issuer": format!("{base}/spoofed")}))
                .await;
            let body = app.expect_error(spoofed, StatusCode::BAD_REQUEST, "invalid_input").await;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("evil.example"), "{message}");

            let missing = create(json!({"name": "n", "integration": "generic", "client_id": "c",
                                        "issuer": format!("{base}/nothing")}))
                .await;
            let body = app.expect_error(missing, StatusCode::BAD_REQUEST, "invalid_input").await;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("no authorization server metadata") && message.contains("404"), "{message}");
            assert!(message.contains("/.well-known/openid-configuration/nothing"), "{message}");
            let bad = create(json!({"name": "b", "integration": "generic", "client_id": "c",
                                    "issuer": "https://idp.example/?tenant=1"}))
                .await;
            app.expect_error(bad, StatusCode::BAD_REQUEST, "invalid_input").await;
            let listed = app.expect_json(app.get("/api/v1/oauth-apps").await, StatusCode::OK).await;
            assert_eq!(listed["items"].as_array().map(Vec::len), Some(3), "nothing stored on failure");
            app
        }
    })
    .await;
}
