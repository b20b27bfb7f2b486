//! Integration health counts on both backends: two engines (two processes' runtimes) flushing
//! into one database add up per (tenant, integration, minute), also when they flush at the same
//! moment; counts land in the minute they happened; the runtime flushes at shutdown; the
//! retention pass deletes old minutes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{databases, services};
use stepwise_engine::Engine;
use stepwise_engine::health::HealthWindow;
use stepwise_engine::retention::Retention;
use stepwise_engine::vault::{KeyRing, LocalKeyProvider, MasterKey};
use stepwise_integrations::Registry;
use stepwise_integrations::runtime::metrics::Outcome;

const MINUTE_MS: i64 = 60_000;

async fn open(url: &str) -> Engine {
    let keys = Arc::new(LocalKeyProvider::new(KeyRing::new(vec![
        MasterKey::generate(),
    ])));
    Engine::open_with_keys(url, Arc::new(Registry::builtin()), services(), keys)
        .await
        .expect("open engine")
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("valid time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_of_several_processes_add_up_per_minute_and_expire() {
    for database in databases().await {
        let label = database.label;
        let first = open(&database.url).await;
        let second = open(&database.url).await;
        let (tenant, _) = first.create_tenant("test").await.expect("tenant");
        let (other, _) = first.create_tenant("other").await.expect("tenant");
        let tenant = tenant.id.as_str();
        let now = Utc::now().timestamp_millis();
        // Five minutes ago, so both minutes used lie well inside the last hour.
        let minute = (now / MINUTE_MS - 5) * MINUTE_MS;
        let fast = Some(Duration::from_millis(20));

        let a = first.health_recorder();
        for offset in [1_000, 2_000, 3_000] {
            a.request(tenant, "slack", at(minute + offset), Outcome::Success, fast);
        }
        a.request(
            tenant,
            "slack",
            at(minute + MINUTE_MS - 1),
            Outcome::ServerError,
            Some(Duration::from_millis(400)),
        );
        a.request(
            tenant,
            "slack",
            at(minute + MINUTE_MS),
            Outcome::Timeout,
            None,
        );
        a.request(&other.id, "slack", at(minute), Outcome::Success, fast);
        assert_eq!(
            first.flush_integration_health().await.expect("flush"),
            3,
            "[{label}]"
        );
        assert_eq!(
            first.flush_integration_health().await.expect("flush"),
            0,
            "[{label}]"
        );

        // The second process counts the same minute; its runtime writes at shutdown.
        let b = second.health_recorder();
        b.request(tenant, "slack", at(minute + 30_000), Outcome::Success, fast);
        b.request(tenant, "slack", at(minute + 31_000), Outcome::Success, fast);
        b.token_refresh(tenant, "slack", at(minute + 32_000), true);
        b.rate_limit_wait(
            tenant,
            "slack",
            at(minute + 33_000),
            Duration::from_millis(500),
        );
        second.start(Default::default()).shutdown().await;
        assert!(
            second.health_recorder().pending(tenant).is_empty(),
            "[{label}]"
        );

        // Both flush the same rows at the same moment: the upserts add, neither is lost.
        for engine in [&first, &second] {
            engine.health_recorder().request(
                tenant,
                "slack",
                at(minute + 40_000),
                Outcome::RateLimited,
                fast,
            );
            engine.health_recorder().request(
                tenant,
                "github",
                at(minute),
                Outcome::ClientError,
                fast,
            );
        }
        let (one, two) = tokio::join!(
            first.flush_integration_health(),
            second.flush_integration_health()
        );
        assert_eq!(
            (one.expect("flush"), two.expect("flush")),
            (2, 2),
            "[{label}]"
        );

        let report = first
            .integration_health(tenant, HealthWindow::Hour, now)
            .await
            .expect("report");
        let names: Vec<_> = report
            .integrations
            .iter()
            .map(|i| i.integration.as_str())
            .collect();
        assert_eq!(names, ["github", "slack"], "[{label}]");
        assert_eq!(
            report.integrations[0].totals.outcomes.client_error, 2,
            "[{label}]"
        );
        let slack = &report.integrations[1];
        let index = usize::try_from((minute - report.from_ms) / MINUTE_MS).expect("index");
        let point = &slack.points[index];
        assert_eq!(point.at_ms, minute, "[{label}]");
        assert_eq!(
            (
                point.outcomes.ok,
                point.outcomes.server_error,
                point.outcomes.rate_limited
            ),
            (5, 1, 2),
            "[{label}]"
        );
        assert_eq!(slack.points[index + 1].outcomes.timeout, 1, "[{label}]");
        assert_eq!(slack.points[index + 1].p95_latency_ms, None, "[{label}]");
        let totals = &slack.totals;
        assert_eq!(totals.requests, 9, "[{label}]");
        assert_eq!(totals.success_rate, Some(5.0 / 9.0), "[{label}]");
        assert_eq!(totals.token_refreshes_ok, 1, "[{label}]");
        assert_eq!(
            (totals.rate_limit_waits, totals.rate_limit_wait_ms),
            (1, 500),
            "[{label}]"
        );
        // Seven of the eight measured requests took 20 ms, one 400 ms: the 95th percentile
        // lies in the 250-500 ms bucket.
        let p95 = totals.p95_latency_ms.expect("p95");
        assert!((250.0..=500.0).contains(&p95), "[{label}] p95 {p95}");
        assert_eq!(slack.circuit, "closed", "[{label}]");

        let other_report = first
            .integration_health(&other.id, HealthWindow::Day, now)
            .await
            .expect("report");
        assert_eq!(other_report.integrations.len(), 1, "[{label}]");
        assert_eq!(other_report.integrations[0].totals.requests, 1, "[{label}]");

        // Retention: kept for eight days, then deleted.
        let day = 24 * 60 * MINUTE_MS;
        let retention = Retention::default();
        let pruned = first
            .prune_history(now + 7 * day, &retention)
            .await
            .expect("prune");
        assert_eq!(pruned.health_minutes, 0, "[{label}]");
        let pruned = first
            .prune_history(now + 9 * day, &retention)
            .await
            .expect("prune");
        assert_eq!(pruned.health_minutes, 4, "[{label}]");
        let report = first
            .integration_health(tenant, HealthWindow::Hour, now)
            .await
            .expect("report");
        assert!(report.integrations.is_empty(), "[{label}] {report:?}");

        first.database().close().await;
        second.database().close().await;
        database.drop().await;
    }
}
