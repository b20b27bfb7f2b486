//! Schemathesis (PyPI, pinned and installed by `.ci/run` into `.ci/schemathesis`) against the
//! OpenAPI document of a real `stepwise serve` on SQLite: generated requests for every
//! operation, bounded, and every answer must be no 5xx and conform to its documented schema.
//! Without schemathesis the test is skipped, unless CI=true, where it fails. Generated header
//! and cookie values keep to the bytes HTTP allows (`schemathesis_hooks.py` says why).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Examples per operation; with the 49 operations this takes ~20 s, well under the time limit.
const MAX_EXAMPLES: &str = "30";
/// The whole schemathesis run; beyond it the test fails rather than hang CI.
const TIME_LIMIT: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// `.ci/schemathesis/bin/schemathesis`, else `schemathesis` on the PATH.
fn schemathesis() -> Option<PathBuf> {
    let pinned =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/schemathesis/bin/schemathesis");
    if pinned.is_file() {
        return Some(pinned);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("schemathesis"))
            .find(|candidate| candidate.is_file())
    })
}

fn stepwise() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stepwise"));
    command.env("STEPWISE_LOG", "warn").env(
        "STEPWISE_MASTER_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    command
}

async fn create_tenant(database_url: &str) -> String {
    let output = stepwise()
        .args([
            "tenants",
            "create",
            "schemathesis",
            "--database-url",
            database_url,
        ])
        .output()
        .await
        .expect("run tenants create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "tenants create failed: {stdout}");
    stdout
        .split("API key (shown once): ")
        .nth(1)
        .expect("key in output")
        .trim()
        .to_owned()
}

async fn wait_until_healthy(client: &reqwest::Client, base: &str, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!("stepwise serve exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stepwise did not become healthy at {base}");
}

/// Data for the generated requests to find: a workflow with a run, a secret, a source.
async fn seed(client: &reqwest::Client, base: &str, key: &str) {
    let workflow = "name: hello\ninputs:\n  name: { type: string, default: World }\nsteps:\n  - id: greet\n    uses: core.set\n    with:\n      greeting: \"Hello, ${{ inputs.name }}\"\n";
    let requests = [
        ("/api/v1/workflows", "application/yaml", workflow.to_owned()),
        (
            "/api/v1/workflows/hello/runs",
            "application/json",
            "{}".into(),
        ),
        (
            "/api/v1/secrets",
            "application/json",
            r#"{"name": "API_TOKEN", "value": "s3cr3t"}"#.into(),
        ),
        (
            "/api/v1/sources",
            "application/json",
            r#"{"name": "gh", "provider": "github", "secret": "whsec"}"#.into(),
        ),
    ];
    for (path, content_type, body) in requests {
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("seed");
        assert!(
            response.status().is_success(),
            "seeding {path}: {}",
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_no_5xx_and_documented_answers() {
    let Some(schemathesis) = schemathesis() else {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("CI=true but schemathesis is not installed (.ci/run installs it)");
        }
        eprintln!("skipping: schemathesis is not installed (.ci/run installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("st.db").display());
    let key = create_tenant(&database_url).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = stepwise()
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &database_url])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn stepwise serve");
    stepwise_integrations::http::install_crypto_provider();
    let client = reqwest::Client::new();
    wait_until_healthy(&client, &base, &mut server).await;
    seed(&client, &base, &key).await;

    let run = Command::new(schemathesis)
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args(["--experimental", "openapi-3.1"])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--hypothesis-max-examples", MAX_EXAMPLES])
        .args(["--hypothesis-derandomize", "--hypothesis-deadline", "None"])
        .args(["--request-timeout", "10000", "--workers", "2"])
        .args(["--no-color", "--show-trace"])
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(TIME_LIMIT, run)
        .await
        .expect("schemathesis finished within the time limit")
        .expect("run schemathesis");
    let _ = server.kill().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
