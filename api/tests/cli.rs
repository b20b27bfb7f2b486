//! The real `stepwise` binary, black-box.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// Runs the binary in a scratch directory with no database configured in the environment.
fn stepwise(args: &[&std::ffi::OsStr]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("STEPWISE_DATABASE_URL")
        .env_remove("STEPWISE_DATA_DIR")
        .env_remove("STEPWISE_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run stepwise");
    (output, dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_examples() {
    let files = examples();
    let args: Vec<_> = std::iter::once("validate".as_ref())
        .chain(files.iter().map(|file| file.as_os_str()))
        .collect();
    let (output, _dir) = stepwise(&args);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    for file in &files {
        assert!(
            stdout.contains(&format!("{}: ok", file.display())),
            "{stdout}"
        );
    }
}

#[test]
fn validate_reports_every_mistake_with_its_location() {
    let file = fixture("broken.yaml");
    let (output, _dir) = stepwise(&["validate".as_ref(), file.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let path = file.display().to_string();
    for expected in [
        format!("{path}:1:7: WF0005 "),
        format!("{path}:4:11: WF0010 unknown action `core.sett`"),
        format!("{path}:7:9: WF0007 "),
        format!("{path}:9:5: WF0004 "),
        format!("{path}:11:16: WF0019 "),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

#[test]
fn validate_names_a_missing_file() {
    let (output, _dir) = stepwise(&["validate".as_ref(), "no-such-file.yaml".as_ref()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no-such-file.yaml: cannot read"));
}

#[test]
fn run_prints_progress_and_outputs() {
    let file = fixture("hello.yaml");
    let (output, dir) = stepwise(&[
        "run".as_ref(),
        file.as_os_str(),
        "--input".as_ref(),
        r#"{"name": "Ada"}"#.as_ref(),
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let outputs: serde_json::Value = serde_json::from_str(&stdout).expect("outputs are JSON");
    assert_eq!(outputs, serde_json::json!({"greeting": "Hello, Ada"}));
    assert!(
        stderr.contains("✓ greet  succeeded (attempt 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("✓ log  succeeded (attempt 1)"), "{stderr}");
    assert!(
        stderr.contains("Hello, Ada"),
        "the log line is shown: {stderr}"
    );
    // The scratch database is not left in the working directory.
    assert!(!dir.path().join("stepwise.db").exists());
}

#[test]
fn run_reads_input_from_a_file() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = input_dir.path().join("input.json");
    std::fs::write(&input, r#"{"name": "Grace"}"#).expect("write input");
    let file = fixture("hello.yaml");
    let at_input = format!("@{}", input.display());
    let (output, _dir) = stepwise(&[
        "run".as_ref(),
        file.as_os_str(),
        "--input".as_ref(),
        at_input.as_ref(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("Hello, Grace"));
}

#[test]
fn run_of_a_failing_workflow_exits_1_with_the_error() {
    let file = fixture("failing.yaml");
    let (output, _dir) = stepwise(&["run".as_ref(), file.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("✓ prepare  succeeded"), "{stderr}");
    assert!(
        stderr.contains("step `boom` failed: the sky is falling"),
        "{stderr}"
    );
}

#[test]
fn run_of_an_invalid_file_prints_diagnostics() {
    let file = fixture("broken.yaml");
    let (output, _dir) = stepwise(&["run".as_ref(), file.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("WF0010"));
}

#[test]
fn schema_is_json() {
    let (output, _dir) = stepwise(&["schema".as_ref()]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(schema["title"], "Stepwise workflow");
}

#[test]
fn migrate_and_tenants_use_the_data_dir() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("data");
    let (output, _dir) = stepwise(&[
        "migrate".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(data_dir.join("stepwise.db").exists());

    let create = |name: &str| {
        stepwise(&[
            "tenants".as_ref(),
            "create".as_ref(),
            name.as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ])
        .0
    };
    let output = create("acme");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("API key (shown once): sw_"));
    let again = create("acme");
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"));
}

/// Zero-config `serve`: creates the default tenant (key printed once), deploys the workflows
/// directory, answers with that key, and exits cleanly on SIGTERM.
#[cfg(unix)]
#[test]
fn serve_starts_with_zero_config_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).expect("mkdir");
    std::fs::copy(fixture("hello.yaml"), workflows.join("hello.yaml")).expect("copy");
    std::fs::copy(fixture("broken.yaml"), workflows.join("broken.yaml")).expect("copy");
    // The README's quick start serves the examples: none of them may stop the server.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/examples");
    for entry in std::fs::read_dir(&examples).expect("examples") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, workflows.join(path.file_name().expect("name"))).expect("copy");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workflows", "workflows"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("STEPWISE_DATABASE_URL")
        .env_remove("STEPWISE_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (mut key, mut url) = (None, None);
    while url.is_none() {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .expect("serve prints its URL");
        if let Some(found) = line.strip_prefix("Created tenant `default`. API key (shown once): ") {
            key = Some(found.to_owned());
        }
        if let Some(found) = line.strip_prefix("Stepwise is listening on ") {
            url = Some(found.to_owned());
        }
    }
    let (key, url) = (key.expect("key printed"), url.expect("url"));
    assert!(
        dir.path().join("stepwise.db").exists(),
        "zero-config database"
    );

    // Building Stepwise's HTTP client installs the process-wide rustls provider reqwest needs.
    stepwise_api::startup::action_services(true).expect("install the TLS provider");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(async {
        let client = reqwest::Client::new();
        let response = client
            .get(format!("{url}/api/v1/workflows/hello"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("request");
        response.status()
    });
    assert_eq!(status, reqwest::StatusCode::OK, "hello.yaml was deployed");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "clean exit on SIGTERM: {stderr}");
    assert!(stderr.contains("broken.yaml:4:11: WF0010"), "{stderr}");
}
