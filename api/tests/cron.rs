//! Cron triggers, black-box: `GET /api/v1/workflows/{name}/schedules` on every backend, and
//! the issue's scale-out check: three `stepwise worker` processes on one Postgres database
//! with an every-second schedule for 30 s fire every slot exactly once.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::for_each_backend;
use reqwest::StatusCode;
use serde_json::Value;
use stepwise_engine::Engine;
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};

const EVERY_SECOND: &str = r#"name: every-second
on:
  cron:
    - { schedule: "* * * * * *", catch_up: all, overlap: allow }
    - { schedule: "30 2 * * *", timezone: Europe/Berlin }
steps:
  - id: log
    uses: core.log
    with:
      message: ${{ trigger.scheduled_at }}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_show_next_fire_times_and_recent_fires() {
    for_each_backend(|app| async move {
        let backend = app.backend;
        assert_eq!(app.deploy(EVERY_SECOND).await.status(), StatusCode::CREATED);
        // The server's own scheduler fires the every-second entry; wait (bounded) for two.
        let deadline = Instant::now() + Duration::from_secs(60);
        let body = loop {
            let response = app.get("/api/v1/workflows/every-second/schedules").await;
            assert_eq!(response.status(), StatusCode::OK, "[{backend}]");
            let body: Value = response.json().await.expect("json");
            let fires = body["items"][0]["recent_fires"].as_array().unwrap().len();
            if fires >= 2 {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "[{backend}] no fires in 60 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "[{backend}] {body}");
        assert_eq!(items[0]["schedule"], "* * * * * *");
        assert_eq!(items[0]["timezone"], "UTC");
        assert_eq!(items[0]["catch_up"], "all");
        assert_eq!(items[0]["overlap"], "allow");
        assert_eq!(items[0]["max_catch_up"], 100);
        let fire = &items[0]["recent_fires"][0];
        assert_eq!(fire["outcome"], "started", "[{backend}] {fire}");
        let run_id = fire["run_id"].as_str().unwrap();
        let run: Value = app
            .get(&format!("/api/v1/runs/{run_id}"))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(run["trigger_kind"], "cron", "[{backend}] {run}");
        assert_eq!(run["trigger"]["scheduled_at"], fire["scheduled_at"]);
        assert_eq!(run["steps"][0]["output"]["message"], fire["scheduled_at"]);

        let berlin = &items[1];
        assert_eq!(berlin["timezone"], "Europe/Berlin");
        assert_eq!(berlin["catch_up"], "latest");
        assert_eq!(berlin["overlap"], "skip");
        let local = berlin["next_fire_local"].as_str().unwrap();
        assert!(
            local.contains("T02:30:00+0") || local.contains("T03:00:00+02:00"),
            "[{backend}] {local}"
        );
        assert!(berlin["recent_fires"].as_array().unwrap().is_empty());

        let missing = app.get("/api/v1/workflows/nope/schedules").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let error: Value = missing.json().await.expect("json");
        assert_eq!(error["error"]["code"], "not_found", "[{backend}] {error}");
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cron_entries_are_refused_with_diagnostics() {
    for_each_backend(|app| async move {
        let response = app
            .deploy(
                "name: bad-cron\non:\n  cron:\n    - { schedule: '0 * * * *', timezone: Europe/Berln, max_catch_up: 5 }\nsteps:\n  - { id: a, uses: core.log, with: { message: a } }\n",
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = response.text().await.expect("body");
        assert!(body.contains("WF0017"), "{body}");
        assert!(body.contains("only applies with `catch_up: all`"), "{body}");
        app
    })
    .await;
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(database_url: &str) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(["worker", "--database-url", database_url, "--workers", "2"])
        .env_remove("FAILPOINTS")
        .env("STEPWISE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stepwise worker");
    KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_fire_every_second_slot_exactly_once() {
    let Some(database) = common::databases()
        .await
        .into_iter()
        .find(|database| database.backend == "postgres")
    else {
        return;
    };
    let http = HttpClient::new(HttpConfig::default()).expect("http client");
    let engine = Engine::open(
        &database.url,
        Arc::new(Registry::builtin()),
        Arc::new(ActionServices::new(
            IntegrationRuntime::new(http, &MetricsRegistry::new()).expect("integration runtime"),
        )),
    )
    .await
    .expect("open engine");
    let (tenant, _) = engine.create_tenant("cron").await.expect("tenant");
    let source = EVERY_SECOND.replace(
        "    - { schedule: \"30 2 * * *\", timezone: Europe/Berlin }\n",
        "",
    );
    engine
        .deploy(&tenant.id, "every-second.yaml", &source)
        .await
        .expect("deploy");
    let first = engine
        .schedules(&tenant.id, "every-second")
        .await
        .unwrap()
        .unwrap()[0]
        .next_fire_at
        .unwrap();

    let workers: Vec<KillOnDrop> = (0..3).map(|_| worker(&database.url)).collect();
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(workers);

    // Every slot from the first to the schedule's next fire time was fired: `catch_up: all`
    // only moves the next fire time past slots it fired. Both are read in one snapshot: the
    // server may still be committing a killed worker's last claim.
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let mut snapshot = pool.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *snapshot)
        .await
        .expect("repeatable read");
    let next: i64 = sqlx::query_scalar(
        "SELECT next_fire_at FROM schedules WHERE workflow_name = 'every-second'",
    )
    .fetch_one(&mut *snapshot)
    .await
    .expect("next fire time");
    let runs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT trigger->>'scheduled_at', COUNT(*) FROM runs WHERE trigger_kind = 'cron' \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut *snapshot)
    .await
    .expect("runs per slot");
    snapshot.commit().await.expect("end snapshot");
    let expected = ((next - first) / 1000) as usize;
    assert!(
        expected >= 20,
        "the workers fired only {expected} slots in 30 s"
    );
    eprintln!("three workers fired {expected} one-second slots");
    let doubled: Vec<_> = runs.iter().filter(|(_, count)| *count != 1).collect();
    assert!(
        doubled.is_empty(),
        "slots with more than one run: {doubled:?}"
    );
    let fired: Vec<String> = runs.into_iter().map(|(slot, _)| slot).collect();
    let wanted: Vec<String> = (0..expected as i64)
        .map(|k| {
            chrono::DateTime::from_timestamp_millis(first + k * 1000)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    assert_eq!(fired, wanted, "every slot in the window, once");
    let outcomes: BTreeMap<String, i64> =
        sqlx::query_as("SELECT outcome, COUNT(*) FROM schedule_fires GROUP BY 1")
            .fetch_all(&pool)
            .await
            .expect("fires")
            .into_iter()
            .collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([("started".to_owned(), expected as i64)])
    );
    pool.close().await;
    engine.database().close().await;
    database.drop_database().await;
}
