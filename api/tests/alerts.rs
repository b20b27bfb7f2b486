//! The monitoring kit in `deploy/`: the Prometheus alert rules pass their unit tests under
//! `promtool` (Debian's `prometheus` package; with CI=true a missing promtool fails), and the
//! Grafana dashboard and the rules name only metrics a live server exports.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// `promtool` with `args` in `deploy/prometheus`, or `None` when it is not installed (outside
/// CI only).
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir().join("prometheus"))
        .output()
    {
        Ok(output) => Some(output),
        Err(error) => {
            assert!(
                std::env::var("CI").map_or(true, |ci| ci != "true"),
                "CI=true but promtool cannot run ({error}); .ci/run installs Debian's prometheus"
            );
            eprintln!("skipping: promtool cannot run ({error})");
            None
        }
    }
}

#[test]
fn alert_rules_are_valid_and_pass_their_unit_tests() {
    for args in [
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts.test.yaml"],
    ] {
        let Some(output) = promtool(&args) else {
            return;
        };
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The `stepwise_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("stepwise_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every sample name a live server exports once it has seen an integration call of each
/// kind, a webhook delivery and a token refresh, against the names the dashboard's queries
/// and the alert rules use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_name_only_exported_metrics() {
    let database = common::databases()
        .await
        .into_iter()
        .next()
        .expect("SQLite");
    let app = common::spawn_app(database).await;
    let server = MockServer::start().await;
    // A spent quota makes the next call wait; failing calls open the circuit (five
    // transient failures).
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-RateLimit-Limit", "100")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset-After", "1"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let source = format!(
        "name: traffic\nsteps:\n  - id: limited\n    uses: http.request\n    with: {{ url: \"{uri}/limited\" }}\n  - id: paced\n    uses: http.request\n    with: {{ url: \"{uri}/limited\" }}\n  - id: down\n    uses: http.request\n    retry: {{ max_attempts: 1 }}\n    with: {{ url: \"{uri}/down\" }}\n  - id: again\n    needs: [down]\n    if: ${{{{ always() }}}}\n    uses: http.request\n    retry: {{ max_attempts: 1 }}\n    with: {{ url: \"{uri}/down\" }}\n",
        uri = server.uri()
    );
    assert_eq!(app.deploy(&source).await.status(), StatusCode::CREATED);
    let run_id = app.trigger("traffic", "{}").await;
    let run = app.wait_for_run(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let delivery = app
        .client
        .post(app.url(&format!("/webhooks/github/{}", uuid::Uuid::new_v4())))
        .body("{}")
        .send()
        .await
        .expect("deliver");
    assert_eq!(delivery.status(), StatusCode::NOT_FOUND);
    // The token manager reports each refresh here (a refresh needs an OAuth provider; the
    // refresh paths are tested in engine/tests/provider_auth.rs).
    let tenant = app
        .engine
        .tenant("test")
        .await
        .expect("read")
        .expect("tenant");
    app.engine
        .health_recorder()
        .token_refresh(&tenant.id, "slack", chrono::Utc::now(), false);

    let exported = tokio::time::timeout(Duration::from_secs(10), app.get("/metrics"))
        .await
        .expect("metrics in time")
        .text()
        .await
        .expect("metrics body");
    let samples: BTreeSet<String> = exported
        .lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(metric_names)
        .collect();
    for file in ["grafana/stepwise.json", "prometheus/alerts.yaml"] {
        let text = std::fs::read_to_string(deploy_dir().join(file)).expect("read");
        let referenced = metric_names(&text);
        assert!(referenced.len() >= 6, "{file}: {referenced:?}");
        let missing: Vec<_> = referenced.difference(&samples).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics /metrics does not export: {missing:?}\n{exported}"
        );
    }
    app.stop().await;
}
