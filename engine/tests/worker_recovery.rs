//! A database outage under load must not stop a process from executing steps (issue 14,
//! item 2). Postgres: every connection of the test database is terminated and new ones are
//! refused for a few seconds; SQLite: another connection holds the write lock longer than the
//! pool waits (10 s busy timeout, 30 s acquire timeout), so every waiting statement fails.
//! Runs started before and after the outage must all finish, and the worker status must have
//! reported the loop down while it was.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Harness, TestDatabase, databases};
use serde_json::json;
use sqlx::Connection;
use stepwise_engine::{RunStatus, WorkerState};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const RUNS_PER_WAVE: usize = 20;

/// How long Postgres refuses connections.
const POSTGRES_OUTAGE: Duration = Duration::from_secs(3);

/// How long the SQLite write lock is held: beyond the pool's 30 s acquire timeout, so every
/// statement of the engine waiting for it fails, whichever order they queued in.
const SQLITE_LOCK: Duration = Duration::from_secs(32);

fn workflow(server: &MockServer) -> String {
    let mut yaml = String::from("name: chain\nsteps:\n");
    for step in ["one", "two", "three"] {
        yaml.push_str(&format!(
            "  - id: {step}\n    uses: http.request\n    with: {{ method: POST, url: \"{}/{step}\" }}\n",
            server.uri()
        ));
    }
    yaml
}

fn admin_url() -> String {
    std::env::var("STEPWISE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| common::POSTGRES_ADMIN_URL.to_owned())
}

/// Terminates every connection of the test database and refuses new ones for `outage`.
async fn postgres_outage(database: &TestDatabase, outage: Duration) {
    let name = database.url.rsplit('/').next().expect("database name");
    let mut admin = sqlx::PgConnection::connect(&admin_url())
        .await
        .expect("admin connection");
    let refuse = format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false");
    sqlx::query(sqlx::AssertSqlSafe(refuse))
        .execute(&mut admin)
        .await
        .expect("refuse connections");
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_all(&mut admin)
    .await
    .expect("terminate backends");
    assert!(
        !terminated.is_empty(),
        "the engine had no connection to kill"
    );
    tokio::time::sleep(outage).await;
    let allow = format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true");
    sqlx::query(sqlx::AssertSqlSafe(allow))
        .execute(&mut admin)
        .await
        .expect("allow connections");
    admin.close().await.ok();
}

/// Holds SQLite's write lock from another connection for `outage`.
async fn sqlite_outage(database: &TestDatabase, outage: Duration) {
    let mut locker = sqlx::SqliteConnection::connect(&database.url)
        .await
        .expect("second connection");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .expect("take the write lock");
    tokio::time::sleep(outage).await;
    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("release the write lock");
    locker.close().await.ok();
}

/// Polls the worker status until `stop`; true when it was ever seen down.
fn watch_for_down(h: &Harness, stop: CancellationToken) -> tokio::task::JoinHandle<bool> {
    let engine = h.engine.clone();
    let seen_down = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            if matches!(engine.worker_status().state, WorkerState::Down { .. }) {
                seen_down.store(true, Ordering::Relaxed);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = stop.cancelled() => return seen_down.load(Ordering::Relaxed),
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_finishes_across_a_database_outage() {
    for database in databases().await {
        let h = Harness::start(&database).await;
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true}))
                    .set_delay(Duration::from_millis(20)),
            )
            .mount(&server)
            .await;
        h.deploy(&workflow(&server)).await;

        let mut run_ids = Vec::new();
        for n in 0..RUNS_PER_WAVE {
            run_ids.push(h.start_run("chain", json!({ "n": n })).await);
        }
        let stop_watching = CancellationToken::new();
        let watcher = watch_for_down(&h, stop_watching.clone());
        if database.label == "postgres" {
            postgres_outage(&database, POSTGRES_OUTAGE).await;
        } else {
            sqlite_outage(&database, SQLITE_LOCK).await;
        }
        for n in 0..RUNS_PER_WAVE {
            run_ids.push(h.start_run("chain", json!({ "n": n })).await);
        }
        for run_id in &run_ids {
            let run = h.finish(run_id).await;
            assert_eq!(
                run.summary.status,
                RunStatus::Succeeded,
                "[{}] {run_id}: {run:?}",
                h.label
            );
        }
        stop_watching.cancel();
        let seen_down = watcher.await.expect("watcher");
        let status = h.engine.worker_status();
        // Refused and killed connections always stop apalis' worker; a held SQLite lock only
        // when one of its queries outwaits the busy timeout, so there the runs are the proof.
        if database.label == "postgres" {
            assert!(
                seen_down,
                "[{}] the outage stopped the loop; its status must have said so",
                h.label
            );
        }
        assert_eq!(status.state, WorkerState::Up, "[{}] {status:?}", h.label);
        assert!(
            !seen_down || status.restarts >= 1,
            "[{}] {status:?}",
            h.label
        );
        h.stop().await;
    }
}
