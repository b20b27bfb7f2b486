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
                        "authorize_url": format!("{url}/authorize"),
                        "token_url": format!("{url}/token"),
                        "revoke_url": format!("{url}/revoke"),
                    })
                    .to_string(),
                )
                .await;
            app.expect_json(created, StatusCode::CREATED).await;
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
