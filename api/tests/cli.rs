//! The real `stepwise` binary, black-box.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A CLI command that has not exited by then is hung: the test fails with the threads' stacks
/// instead of stalling the suite.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Waits for `child` with its output, up to [`COMMAND_DEADLINE`]; past it, prints every
/// thread's stack (gdb, where installed), kills the process and fails.
fn finish(mut child: Child) -> Output {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes)
                    .expect("read the child's output");
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if started.elapsed() > COMMAND_DEADLINE {
            let stacks = Command::new("gdb")
                .args([
                    "-p",
                    &child.id().to_string(),
                    "-batch",
                    "-ex",
                    "thread apply all bt",
                ])
                .output()
                .map(|output| text(&output.stdout))
                .unwrap_or_else(|error| format!("(no stacks: gdb: {error})"));
            child.kill().expect("kill the hung command");
            child.wait().expect("reap the hung command");
            panic!(
                "the command did not exit within {COMMAND_DEADLINE:?}\nstderr:\n{}\nstacks:\n{stacks}",
                text(&stderr.join().expect("stderr reader"))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stepwise");
    (finish(output), dir)
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
    stepwise_api::startup::action_services(
        true,
        &stepwise_integrations::runtime::MetricsRegistry::new(),
    )
    .expect("install the TLS provider");
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

/// Runs the binary in `dir` with `stdin` as standard input and no key or database configured
/// in the environment.
fn stepwise_in(dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("STEPWISE_DATABASE_URL")
        .env_remove("STEPWISE_DATA_DIR")
        .env_remove("STEPWISE_MASTER_KEY")
        .env_remove("STEPWISE_MASTER_KEY_FILE")
        .env_remove("STEPWISE_TENANT")
        .env_remove("STEPWISE_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stepwise");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    finish(child)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_set_reads_stdin_and_keys_rotate_keeps_it_readable() {
    use stepwise_engine::vault::{MasterKeySettings, read_key_file};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());

    let created = stepwise_in(
        dir.path(),
        &["tenants", "create", "default", "--data-dir", data_arg],
        "",
    );
    assert!(created.status.success(), "{}", text(&created.stderr));

    // The value comes from stdin (one trailing newline dropped), never from argv.
    let set = stepwise_in(
        dir.path(),
        &["secrets", "set", "API_TOKEN", "--data-dir", data_arg],
        &format!("{canary}\n"),
    );
    let (stdout, stderr) = (text(&set.stdout), text(&set.stderr));
    assert!(set.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Created secret `API_TOKEN`"), "{stdout}");
    assert!(!stdout.contains(&canary) && !stderr.contains(&canary));
    let key_file = data.join("stepwise.key");
    assert!(
        stderr.contains("master key file") && stderr.contains("stepwise.key"),
        "the embedded default says it created a key: {stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let first_key = read_key_file(&key_file)
        .expect("read")
        .current()
        .id()
        .to_owned();

    let bad = stepwise_in(
        dir.path(),
        &["secrets", "set", "api_token", "--data-dir", data_arg],
        "x",
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("API_TOKEN"),
        "{}",
        text(&bad.stderr)
    );

    let list = stepwise_in(dir.path(), &["secrets", "list", "--data-dir", data_arg], "");
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(
        text(&list.stdout).starts_with("API_TOKEN\t"),
        "{}",
        text(&list.stdout)
    );
    assert!(!contains(&list.stdout, &canary));

    let rotate = stepwise_in(dir.path(), &["keys", "rotate", "--data-dir", data_arg], "");
    let rotated_out = text(&rotate.stdout);
    assert!(
        rotate.status.success(),
        "{rotated_out}{}",
        text(&rotate.stderr)
    );
    assert!(
        rotated_out.contains("Re-wrapped 1 secret(s)"),
        "{rotated_out}"
    );
    let ring = read_key_file(&key_file).expect("read");
    assert_eq!(ring.keys().len(), 1, "the old key is dropped once unused");
    assert_ne!(ring.current().id(), first_key);

    for suffix in ["stepwise.db", "stepwise.db-wal", "stepwise.db-shm"] {
        if let Ok(bytes) = std::fs::read(data.join(suffix)) {
            assert!(!contains(&bytes, &canary), "plaintext in {suffix}");
        }
    }

    // Readable with the new key only.
    let url = stepwise_api::config::sqlite_url(&data.join("stepwise.db"));
    let settings = MasterKeySettings {
        keys: None,
        key_file: Some(key_file.clone()),
    };
    let engine = stepwise_api::startup::open_engine(
        &url,
        &settings,
        false,
        &stepwise_integrations::runtime::MetricsRegistry::new(),
    )
    .await
    .expect("open");
    let tenant = engine
        .tenant("default")
        .await
        .expect("tenant")
        .expect("default");
    let values = engine.tenant_secrets(&tenant.id).await.expect("values");
    assert_eq!(
        values.get("API_TOKEN").map(|value| value.expose()),
        Some(canary.as_str())
    );
    engine.database().close().await;

    let delete = stepwise_in(
        dir.path(),
        &["secrets", "delete", "API_TOKEN", "--data-dir", data_arg],
        "",
    );
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    let again = stepwise_in(
        dir.path(),
        &["secrets", "delete", "API_TOKEN", "--data-dir", data_arg],
        "",
    );
    assert!(!again.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_test_probes_and_exits_1_on_refused_credentials() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let provider = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/me"))
        .and(header("authorization", "Bearer good-canary"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/me"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&provider)
        .await;
    let probe_url = format!("{}/me", provider.uri());
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let outputs = tokio::task::spawn_blocking(move || {
        let data = root.join("data");
        let data_arg = data.to_str().expect("utf-8 path");
        let run = |args: &[&str], stdin: &str| stepwise_in(&root, args, stdin);
        let created = run(
            &["tenants", "create", "default", "--data-dir", data_arg],
            "",
        );
        assert!(created.status.success(), "{}", text(&created.stderr));
        for (name, token) in [("good", "good-canary"), ("revoked", "revoked-canary")] {
            let connection = run(
                &[
                    "connections",
                    "create",
                    name,
                    "--integration",
                    "generic",
                    "--kind",
                    "bearer",
                    "--probe-url",
                    &probe_url,
                    "--data-dir",
                    data_arg,
                ],
                token,
            );
            assert!(connection.status.success(), "{}", text(&connection.stderr));
        }
        let test = |name: &str| {
            run(
                &[
                    "connections",
                    "test",
                    name,
                    "--allow-private-networks",
                    "--data-dir",
                    data_arg,
                ],
                "",
            )
        };
        let guarded = run(&["connections", "test", "good", "--data-dir", data_arg], "");
        let (good, revoked) = (test("good"), test("revoked"));
        let listed = run(&["connections", "list", "--data-dir", data_arg], "");
        (guarded, good, revoked, listed)
    })
    .await
    .expect("commands");
    let (guarded, good, revoked, listed) = outputs;
    assert!(
        !guarded.status.success(),
        "the SSRF guard stays on by default"
    );
    assert!(
        text(&guarded.stdout).contains("FAILED"),
        "{}",
        text(&guarded.stdout)
    );
    assert!(
        good.status.success(),
        "{}{}",
        text(&good.stdout),
        text(&good.stderr)
    );
    assert!(
        text(&good.stdout).starts_with("ok\tHTTP 200\t"),
        "{}",
        text(&good.stdout)
    );
    assert_eq!(revoked.status.code(), Some(1), "{}", text(&revoked.stderr));
    let out = text(&revoked.stdout);
    assert!(
        out.starts_with("FAILED\t") && out.contains("is needs_reauth"),
        "{out}"
    );
    let list = text(&listed.stdout);
    assert!(
        list.lines()
            .any(|line| line.starts_with("revoked\t") && line.contains("needs_reauth")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|line| line.starts_with("good\t") && line.contains("\tconnected\t")),
        "{list}"
    );
    for output in [&guarded, &good, &revoked, &listed] {
        assert!(!contains(&output.stdout, "canary") && !contains(&output.stderr, "canary"));
    }
}

#[test]
fn connections_create_reads_the_client_certificate_and_key_from_pem_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let data = root.join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let run = |args: &[&str], stdin: &str| stepwise_in(root, args, stdin);
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = rcgen::CertificateParams::new(vec!["client.example".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let key_pem = key.serialize_pem();
    std::fs::write(root.join("client.crt"), certificate.pem()).expect("write certificate");
    std::fs::write(root.join("client.key"), &key_pem).expect("write key");
    std::fs::write(root.join("junk.pem"), "not a certificate\n").expect("write junk");
    let created = run(
        &["tenants", "create", "default", "--data-dir", data_arg],
        "",
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let app = run(
        &[
            "oauth-apps",
            "create",
            "--integration",
            "github",
            "--client-id",
            "client-1",
            "--data-dir",
            data_arg,
        ],
        "app-secret",
    );
    assert!(app.status.success(), "{}", text(&app.stderr));
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "connections",
            "create",
            name,
            "--integration",
            "github",
            "--kind",
            "oauth2",
            "--data-dir",
            data_arg,
        ];
        args.extend_from_slice(extra);
        run(&args, "")
    };

    let accepted = create(
        "gh",
        &[
            "--client-cert",
            "client.crt",
            "--client-key",
            "client.key",
            "--tls-min",
            "1.2",
        ],
    );
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    let listed = run(&["connections", "list", "--data-dir", data_arg], "");
    let list = text(&listed.stdout);
    assert!(
        list.lines().any(
            |line| line.starts_with("gh\tgithub\toauth2\tneeds_reauth\t")
                && line.ends_with("\tclient certificate\tTLS 1.2+")
        ),
        "{list}"
    );

    let refusals = [
        (
            create(
                "a",
                &["--client-cert", "client.crt", "--client-key", "missing.key"],
            ),
            "cannot read the client key file `missing.key`",
        ),
        (
            create(
                "b",
                &["--client-cert", "junk.pem", "--client-key", "client.key"],
            ),
            "the client certificate file `junk.pem` is not a PEM file with a `CERTIFICATE` block",
        ),
        (
            create(
                "c",
                &["--client-cert", "client.crt", "--client-key", "client.crt"],
            ),
            "the client key file `client.crt` is not a PEM file with a `PRIVATE KEY` block",
        ),
        (
            create("d", &["--client-cert", "client.crt"]),
            "--client-key",
        ),
        (create("e", &["--tls-min", "1.1"]), "1.1"),
        // Parameters reach the declaration's check: GitHub declares none.
        (
            create("f", &["--param", "shop=acme"]),
            "integration `github` has no parameter `shop`",
        ),
        (
            create("g", &["--param", "shop"]),
            "`shop` is not NAME=VALUE",
        ),
    ];
    for (refused, message) in &refusals {
        assert!(!refused.status.success());
        assert!(
            text(&refused.stderr).contains(message),
            "{}",
            text(&refused.stderr)
        );
    }
    let listed = run(&["connections", "list", "--data-dir", data_arg], "");
    assert_eq!(
        text(&listed.stdout).lines().count(),
        1,
        "{}",
        text(&listed.stdout)
    );
    let key_body = key_pem.lines().nth(1).expect("a line of the key");
    for output in refusals
        .iter()
        .map(|(output, _)| output)
        .chain([&accepted, &listed])
    {
        assert!(!contains(&output.stdout, key_body) && !contains(&output.stderr, key_body));
    }
}

#[test]
fn validate_names_the_closest_action_and_locates_wrong_inputs() {
    let file = fixture("typos.yaml");
    let (output, _dir) = stepwise(&["validate".as_ref(), file.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let path = file.display().to_string();
    for expected in [
        format!(
            "{path}:4:11: WF0010 unknown action `slack.post_mesage`; did you mean `slack.post_message`?"
        ),
        format!(
            "{path}:12:5: WF0011 invalid input for `slack.update_message`: `with`: set `text`, `blocks` or both"
        ),
        format!("{path}:15:7: WF0011 invalid input for `slack.update_message`: `with`: "),
        format!("{path}:20:7: WF0011 invalid input for `slack.list_channels`: `with.limit`: "),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    assert!(stdout.contains("'txt' was unexpected"), "{stdout}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
}

fn run_ok(args: &[&str]) -> String {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|arg| arg.as_ref()).collect();
    let (output, _dir) = stepwise(&args);
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn integrations_list_shows_every_action_with_its_description() {
    let stdout = run_ok(&["integrations", "list"]);
    let registry = stepwise_integrations::Registry::builtin();
    for action in registry.iter() {
        assert!(
            stdout.lines().any(|line| {
                line.trim_start()
                    .starts_with(&format!("{} ", action.name()))
                    && line.ends_with(action.description())
            }),
            "no line for {} in:\n{stdout}",
            action.name()
        );
    }
    assert!(
        stdout
            .lines()
            .any(|line| line == "slack  Slack (provider; connections: oauth2, bearer)"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&["integrations", "list", "--json"])).expect("JSON");
    assert_eq!(
        json,
        serde_json::to_value(stepwise_integrations::reference::list(&registry)).expect("value")
    );
}

#[test]
fn integrations_show_prints_an_action_whose_example_step_validates() {
    let stdout = run_ok(&["integrations", "show", "slack.post_message"]);
    for expected in [
        "slack.post_message\n  Post a message to a Slack channel, thread or user.\n",
        "Integration: slack  Slack (provider; connections: oauth2, bearer)\n",
        "Connection: required;",
        "\nInput (with:):\n  channel ",
        "\nOutput (steps.<id>.output):\n",
        "\nExample step:\n  - id: post_message\n    uses: slack.post_message\n    connection: my-slack\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    let channel = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("channel "))
        .expect("channel field");
    assert!(
        channel.contains(" string ") && channel.contains(" required "),
        "{channel}"
    );

    // The example, pasted under `steps:`, is a valid workflow.
    let example: String = stdout
        .split("\nExample step:\n")
        .nth(1)
        .expect("example")
        .lines()
        .map(|line| format!("{line}\n"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pasted.yaml");
    std::fs::write(&file, format!("name: pasted\nsteps:\n{example}")).expect("write");
    let (output, _dir) = stepwise(&["validate".as_ref(), file.as_os_str()]);
    assert!(output.status.success(), "{}", text(&output.stdout));

    let json: serde_json::Value = serde_json::from_str(&run_ok(&[
        "integrations",
        "show",
        "slack.post_message",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(json["action"]["name"], "slack.post_message");
    assert_eq!(json["integration"]["name"], "slack");
    assert!(
        json["action"]["example"]
            .as_str()
            .is_some_and(|e| e.contains("connection: my-slack"))
    );
}

#[test]
fn integrations_show_prints_a_provider_and_its_actions() {
    let stdout = run_ok(&["integrations", "show", "github"]);
    assert!(
        stdout.starts_with("github  GitHub (provider; connections: "),
        "{stdout}"
    );
    assert!(stdout.contains("API documentation: https://"), "{stdout}");
    for action in [
        "github.comment",
        "github.create_issue",
        "github.list_issues",
    ] {
        assert!(
            stdout.contains(&format!("\n  {action} ")),
            "{action}: {stdout}"
        );
    }
    assert!(!stdout.contains("slack."), "{stdout}");
}

#[test]
fn integrations_show_of_an_unknown_name_exits_2_with_the_closest() {
    let (output, _dir) = stepwise(&[
        "integrations".as_ref(),
        "show".as_ref(),
        "slack.post_mesage".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr).trim_end(),
        "error: no integration or action is named `slack.post_mesage`; did you mean `slack.post_message`?"
    );
    assert!(output.stdout.is_empty());
}

/// The committed reference pages are what `stepwise integrations docs` writes now.
#[test]
fn integration_reference_pages_are_current() {
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations/src/catalog");
    let (output, _dir) = stepwise(&[
        "integrations".as_ref(),
        "docs".as_ref(),
        "--check".as_ref(),
        "--out".as_ref(),
        pages.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "the integration pages are stale; regenerate them from the repository root with \
         `cargo run -p stepwise-api -- integrations docs`:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn integrations_docs_check_fails_on_an_edited_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("pages");
    let written = run_ok(&[
        "integrations",
        "docs",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(written.ends_with("pages written\n"), "{written}");
    let registry = stepwise_integrations::Registry::builtin();
    for integration in stepwise_integrations::reference::integrations(&registry) {
        assert!(out.join(&integration.name).join("README.md").is_file());
    }
    let index = std::fs::read_to_string(out.join("README.md")).expect("index");
    assert!(
        index.contains("[`slack.post_message`](slack/README.md#slackpost_message)"),
        "{index}"
    );
    let slack = out.join("slack/README.md");
    let page = std::fs::read_to_string(&slack).expect("page");
    std::fs::write(&slack, page.replace("Post a message", "Send a message")).expect("edit");
    let (output, _dir) = stepwise(&[
        "integrations".as_ref(),
        "docs".as_ref(),
        "--check".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("{}: stale", slack.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("regenerate with `stepwise integrations docs --out "),
        "{stdout}"
    );
}
