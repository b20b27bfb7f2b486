//! The dashboard in a real headless browser: `web/tests/dashboard.mjs` and `health.mjs` drive
//! Debian's `chromium` through `playwright-core` against the real binary, on SQLite and
//! Postgres; the OAuth connection is authorized at oauth2-mock-server (`.ci/oauth-mock`).
//! Without Chromium or the npm packages (`.ci/run` installs them) the test is skipped with a
//! message; with `CI=true` it fails instead.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

fn web_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests")
}

fn oauth_mock() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/oauth-mock")
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is not installed (apt-get install chromium)"
        ));
    }
    if !web_tests().join("node_modules/playwright-core").exists() {
        return Some("playwright-core is not installed (npm ci in web/tests)".into());
    }
    if !oauth_mock()
        .join("node_modules/oauth2-mock-server/package.json")
        .exists()
    {
        return Some("oauth2-mock-server is not installed (npm ci in .ci/oauth-mock)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    None
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// oauth2-mock-server on a free port (it stops when its stdin closes, or is killed on drop).
/// Returns the process and its URL.
fn start_oauth_mock() -> (KillOnDrop, String) {
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(oauth_mock())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start oauth2-mock-server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening: serde_json::Value = serde_json::from_str(
        &lines
            .next()
            .expect("a listening line")
            .expect("read the mock's stdout"),
    )
    .expect("json");
    let url = listening["url"].as_str().expect("url").to_owned();
    // Its later lines (one per token request) are drained so the pipe never fills.
    std::thread::spawn(move || lines.for_each(drop));
    (KillOnDrop(child), url)
}

/// Creates a tenant with the CLI; returns its API key.
fn create_tenant(database_url: &str, name: &str, label: &str) -> String {
    let created = stepwise()
        .args(["tenants", "create", name, "--database-url", database_url])
        .output()
        .expect("run tenants create");
    let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(created.status.success(), "{label} tenants create: {stdout}");
    stdout
        .split("API key (shown once): ")
        .nth(1)
        .expect("key in output")
        .trim()
        .to_owned()
}

fn stepwise() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    command
        .env_remove("FAILPOINTS")
        .env("STEPWISE_LOG", "warn")
        .env(
            "STEPWISE_MASTER_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        );
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_takes_a_failed_run_to_success_in_a_browser() {
    if let Some(missing) = missing_prerequisite() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("CI=true but the browser test cannot run: {missing}");
        }
        eprintln!("skipping the browser test: {missing}");
        return;
    }
    let (_oauth_mock, oauth_url) = start_oauth_mock();
    for database in common::databases().await {
        let label = format!("[{}]", database.backend);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let workflows = tempfile::tempdir().expect("tempdir");
        let _server = KillOnDrop(
            stepwise()
                .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
                // The OAuth server, the flaky endpoint of the retried step and the health
                // scenario's provider are on loopback.
                .arg("--allow-private-networks")
                .args(["--database-url", &database.url])
                .arg("--workflows")
                .arg(workflows.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn stepwise serve"),
        );
        let base = format!("http://127.0.0.1:{port}");
        stepwise_integrations::http::install_crypto_provider();
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            assert!(Instant::now() < deadline, "{label} stepwise did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Each scenario has a tenant of its own: the health page of a fresh tenant is empty.
        for (scenario, tenant) in [("dashboard.mjs", "dashboard"), ("health.mjs", "health")] {
            let key = create_tenant(&database.url, tenant, &label);
            let output = tokio::task::spawn_blocking({
                let base = base.clone();
                let oauth_url = oauth_url.clone();
                move || {
                    Command::new("node")
                        .arg(scenario)
                        .current_dir(web_tests())
                        .env("STEPWISE_URL", base)
                        .env("STEPWISE_KEY", key)
                        .env("OAUTH_URL", oauth_url)
                        .env("CHROMIUM", CHROMIUM)
                        .output()
                        .expect("run node")
                }
            })
            .await
            .expect("browser test task");
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                output.status.success(),
                "{label} {scenario} failed:\n{report}"
            );
            eprintln!("{label} {scenario}\n{report}");
        }
        database.drop_database().await;
    }
}
