//! The rate-limit scheduler end to end: many `http.request` steps on one connection against a
//! provider that allows N requests per fixed window and answers 429 beyond it, through one
//! engine (SQLite, Postgres) and through three engines sharing buckets on one Postgres; a
//! `Retry-After` one process receives holds the other back; the database bucket store books
//! atomically across pools.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{TestDatabase, databases};
use serde_json::{Value, json};
use stepwise_engine::store::rate_limits::DatabaseBuckets;
use stepwise_engine::vault::{KeyProvider, KeyRing, LocalKeyProvider, MasterKey};
use stepwise_engine::{Engine, RunStatus, Runtime, RuntimeOptions};
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::ratelimit::{ProviderProfile, RateLimitObservation};
use stepwise_integrations::runtime::retry::RetryPolicy;
use stepwise_integrations::runtime::scheduler::{
    Acquisition, BucketKey, BucketStore, InMemoryBuckets, RateLimitMode,
};
use stepwise_integrations::runtime::{
    HTTP_INTEGRATION, IntegrationPolicy, MetricsRegistry, RuntimeConfig,
};
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Requests the test provider allows per window.
const LIMIT: u64 = 60;
const WINDOW_MS: i64 = 2000;
/// Windows' worth of steps each scenario runs.
const WINDOWS: u64 = 7;

/// A provider with a fixed-window quota: windows are aligned to multiples of `window_ms` since
/// the epoch; within one, the first `limit` requests get 200, later ones 429 with `Retry-After`
/// (seconds to the reset, rounded up). Every answer states `X-RateLimit-Limit`, `-Remaining`
/// and `-Reset` (epoch seconds).
#[derive(Clone)]
struct FixedWindowProvider {
    limit: u64,
    window_ms: i64,
    tally: Arc<Mutex<BTreeMap<i64, Tally>>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    accepted: u64,
    rejected: u64,
}

impl FixedWindowProvider {
    fn new(limit: u64, window_ms: i64) -> Self {
        Self {
            limit,
            window_ms,
            tally: Arc::default(),
        }
    }

    fn tally(&self) -> BTreeMap<i64, Tally> {
        self.tally.lock().expect("tally").clone()
    }
}

impl Respond for FixedWindowProvider {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let now = Utc::now().timestamp_millis();
        let window = now.div_euclid(self.window_ms);
        let reset_ms = (window + 1) * self.window_ms;
        let mut tally = self.tally.lock().expect("tally");
        let counts = tally.entry(window).or_default();
        let used = counts.accepted;
        let template = if used < self.limit {
            counts.accepted += 1;
            ResponseTemplate::new(200).set_body_json(json!({"ok": true}))
        } else {
            counts.rejected += 1;
            let wait_ms = reset_ms - now;
            ResponseTemplate::new(429)
                .insert_header("retry-after", ((wait_ms + 999) / 1000).to_string())
        };
        template
            .insert_header("x-ratelimit-limit", self.limit.to_string())
            .insert_header(
                "x-ratelimit-remaining",
                (self.limit - counts.accepted).to_string(),
            )
            .insert_header("x-ratelimit-reset", (reset_ms / 1000).to_string())
    }
}

/// Answers the first request 429 with `Retry-After`, every later one 200; records when each
/// request arrived.
#[derive(Clone)]
struct RejectFirst {
    retry_after_secs: u64,
    arrivals: Arc<Mutex<Vec<DateTime<Utc>>>>,
}

impl Respond for RejectFirst {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().expect("arrivals");
        arrivals.push(Utc::now());
        if arrivals.len() == 1 {
            ResponseTemplate::new(429)
                .insert_header("retry-after", self.retry_after_secs.to_string())
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"ok": true}))
        }
    }
}

/// Services whose `http` integration reads the generic headers with a reset grace scaled to
/// the test's 2 s windows (the default second suits windows of a minute or more), and whose
/// in-request retry is `retry`. On Postgres the engine replaces the in-memory buckets with its
/// shared store.
fn services(retry: RetryPolicy) -> Arc<ActionServices> {
    let http = HttpClient::new(HttpConfig {
        allow_private_networks: true,
        ..HttpConfig::default()
    })
    .expect("http client");
    // Two requests kept back per window: at 30 requests per second through debug builds on a
    // shared machine, about two are still on their way when a window ends.
    let profile = ProviderProfile {
        reset_grace: Duration::from_millis(100),
        min_reserve: 2,
        ..ProviderProfile::generic()
    };
    let policy = IntegrationPolicy {
        rate_limit: RateLimitMode::Learned(profile),
        retry,
        ..IntegrationPolicy::builtin(HTTP_INTEGRATION)
    };
    let config = RuntimeConfig {
        policies: HashMap::from([(HTTP_INTEGRATION.to_owned(), policy)]),
        ..RuntimeConfig::default()
    };
    let runtime = IntegrationRuntime::with_config(
        http,
        config,
        Arc::new(InMemoryBuckets::new()),
        &MetricsRegistry::new(),
    )
    .expect("integration runtime");
    Arc::new(ActionServices::new(runtime))
}

fn keys() -> Arc<dyn KeyProvider> {
    Arc::new(LocalKeyProvider::new(KeyRing::new(vec![
        MasterKey::generate(),
    ])))
}

async fn open(database: &TestDatabase, keys: &Arc<dyn KeyProvider>, retry: RetryPolicy) -> Engine {
    Engine::open_with_keys(
        &database.url,
        Arc::new(Registry::builtin()),
        services(retry),
        keys.clone(),
    )
    .await
    .expect("open engine")
}

fn start(engine: &Engine) -> Runtime {
    engine.start(RuntimeOptions {
        concurrency: 8,
        poll_interval: Duration::from_millis(100),
        ..RuntimeOptions::default()
    })
}

/// Waits (bounded) until every run has finished; returns those that did not succeed.
async fn unsuccessful(engine: &Engine, tenant: &str, runs: &[String]) -> Vec<(String, Value)> {
    let mut failed = Vec::new();
    for run_id in runs {
        let run = tokio::time::timeout(
            Duration::from_secs(120),
            engine.wait_for_run(tenant, run_id),
        )
        .await
        .unwrap_or_else(|_| panic!("run {run_id} did not finish"))
        .expect("wait for run");
        if run.summary.status != RunStatus::Succeeded {
            let errors = run.steps.iter().map(|step| json!(step.error)).collect();
            failed.push((run_id.clone(), Value::Array(errors)));
        }
    }
    failed
}

/// Runs `LIMIT * WINDOWS` single-step runs calling `provider` through the API-key connection
/// `key` on `engines` (each with its own workers), then checks the provider's tally: after the
/// first window no 429, and at least 95% of the quota used in every full window.
async fn saturate(label: &str, engines: &[Engine], tenant: &str) {
    let server = MockServer::start().await;
    let provider = FixedWindowProvider::new(LIMIT, WINDOW_MS);
    Mock::given(method("GET"))
        .respond_with(provider.clone())
        .mount(&server)
        .await;
    let engine = &engines[0];
    engine
        .create_connection(
            tenant,
            serde_json::from_value(json!({
                "name": "key", "integration": "generic", "kind": "api_key",
                "api_key": "key-1", "api_key_header": "X-Api-Key",
            }))
            .expect("connection"),
        )
        .await
        .expect("create connection");
    let source = format!(
        "name: paced\nsteps:\n  - id: call\n    uses: http.request\n    with:\n      url: {}/items\n      connection: key\n",
        server.uri()
    );
    engine
        .deploy(tenant, "paced.yaml", &source)
        .await
        .expect("deploy");
    let runtimes: Vec<Runtime> = engines.iter().map(start).collect();
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..LIMIT * WINDOWS {
        let engine = engine.clone();
        let tenant = tenant.to_owned();
        starts.spawn(async move {
            engine
                .start_run(&tenant, "paced", json!({}), "manual", Value::Null)
                .await
                .expect("start run")
        });
    }
    let runs = starts.join_all().await;
    let failed = unsuccessful(engine, tenant, &runs).await;
    for runtime in runtimes {
        runtime.shutdown().await;
    }
    assert!(failed.is_empty(), "[{label}] runs failed: {failed:?}");

    let tally = provider.tally();
    let first = *tally.keys().next().expect("requests arrived");
    let last = *tally.keys().next_back().expect("requests arrived");
    // Learning: the first request lands somewhere in a window, and the first full window is
    // when the limit arrives (with requests already in flight) and the reset tells the window's
    // length. The last window is cut short by the end of the work. Every window in between
    // must be used.
    let learned = first + 2;
    let full: Vec<(i64, Tally)> = (learned..last)
        .map(|window| (window, tally.get(&window).copied().unwrap_or_default()))
        .collect();
    eprintln!(
        "[{label}] requests per window (accepted/rejected), limit {LIMIT}: {:?}",
        tally
            .values()
            .map(|t| format!("{}/{}", t.accepted, t.rejected))
            .collect::<Vec<_>>()
    );
    assert!(
        full.len() >= (WINDOWS - 3) as usize,
        "[{label}] too few full windows: {tally:?}"
    );
    let rejected: u64 = tally.range(learned..).map(|(_, t)| t.rejected).sum();
    assert_eq!(
        rejected, 0,
        "[{label}] 429s after the first full window: {tally:?}"
    );
    let used: u64 = full.iter().map(|(_, t)| t.accepted).sum();
    let share = used as f64 / (LIMIT * full.len() as u64) as f64;
    eprintln!("[{label}] used/allowed over the full windows after learning: {share:.3}");
    assert!(
        share >= 0.95,
        "[{label}] used {share:.3} of the quota: {tally:?}"
    );
    // A single window may lose a little to a stall of this shared machine, never much.
    for (window, counts) in &full {
        assert!(
            counts.accepted as f64 >= 0.9 * LIMIT as f64,
            "[{label}] window {window} used {} of {LIMIT}: {tally:?}",
            counts.accepted
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_engine_uses_the_quota_without_429s() {
    for database in databases().await {
        let keys = keys();
        let engine = open(&database, &keys, RetryPolicy::default()).await;
        let (tenant, _) = engine.create_tenant("test").await.expect("tenant");
        saturate(database.label, std::slice::from_ref(&engine), &tenant.id).await;
        engine.database().close().await;
        database.drop().await;
    }
}

/// Three engines with their own pools and workers on one Postgres stand in for three
/// processes: they share one bucket per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_engines_on_postgres_share_the_quota_without_429s() {
    for database in databases().await {
        if database.label != "postgres" {
            continue;
        }
        let keys = keys();
        let mut engines = Vec::new();
        for _ in 0..3 {
            engines.push(open(&database, &keys, RetryPolicy::default()).await);
        }
        let (tenant, _) = engines[0].create_tenant("test").await.expect("tenant");
        saturate("postgres, 3 engines", &engines, &tenant.id).await;
        for engine in engines {
            engine.database().close().await;
        }
        database.drop().await;
    }
}

/// A 429 with `Retry-After: 3` answered to one engine keeps another engine's request back
/// until then: the wait is recorded in the shared bucket, and the second engine parks its
/// step (longer than the 2 s it may sleep in a request) instead of sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_seen_by_one_engine_holds_back_the_others() {
    for database in databases().await {
        if database.label != "postgres" {
            continue;
        }
        let server = MockServer::start().await;
        let provider = RejectFirst {
            retry_after_secs: 3,
            arrivals: Arc::default(),
        };
        Mock::given(method("GET"))
            .respond_with(provider.clone())
            .mount(&server)
            .await;
        let keys = keys();
        // The first engine hands the 429 straight to the step (no in-request retry, the status
        // as output), so its run ends before the second engine starts.
        let no_retry = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let first = open(&database, &keys, no_retry).await;
        let second = open(&database, &keys, RetryPolicy::default()).await;
        let (tenant, _) = first.create_tenant("test").await.expect("tenant");
        let source = format!(
            "name: call\nsteps:\n  - id: call\n    uses: http.request\n    with:\n      url: {}/items\n      fail_on_status: false\noutputs:\n  status: ${{{{ steps.call.output.status }}}}\n",
            server.uri()
        );
        first
            .deploy(&tenant.id, "call.yaml", &source)
            .await
            .expect("deploy");

        let runtime = start(&first);
        let rejected = first
            .start_run(&tenant.id, "call", json!({}), "manual", Value::Null)
            .await
            .expect("start");
        let run = first
            .wait_for_run(&tenant.id, &rejected)
            .await
            .expect("wait");
        assert_eq!(run.output, Some(json!({"status": 429})), "{run:?}");
        runtime.shutdown().await;

        let runtime = start(&second);
        let held = second
            .start_run(&tenant.id, "call", json!({}), "manual", Value::Null)
            .await
            .expect("start");
        let run = tokio::time::timeout(
            Duration::from_secs(30),
            second.wait_for_run(&tenant.id, &held),
        )
        .await
        .expect("finished in time")
        .expect("wait");
        runtime.shutdown().await;
        assert_eq!(run.output, Some(json!({"status": 200})), "{run:?}");
        let arrivals = provider.arrivals.lock().expect("arrivals").clone();
        assert_eq!(arrivals.len(), 2, "{arrivals:?}");
        assert!(
            arrivals[1] >= arrivals[0] + TimeDelta::seconds(3),
            "the second engine sent at {} after a 429 at {} with Retry-After: 3",
            arrivals[1],
            arrivals[0]
        );
        first.database().close().await;
        second.database().close().await;
        database.drop().await;
    }
}

fn key(tenant: &str) -> BucketKey {
    BucketKey {
        tenant_id: tenant.to_owned(),
        integration: "example".into(),
        scope: "connection:main".into(),
    }
}

/// Until a response states the real quota, a seeded bucket spaces requests at the seed rate
/// (one per 100 ms for 10 per second): 40 concurrent bookings through two stores with their
/// own pools get 40 distinct slots, 100 ms apart, as one store would give them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_through_two_pools_never_share_a_slot() {
    for database in databases().await {
        let keys = keys();
        let engines = [
            open(&database, &keys, RetryPolicy::default()).await,
            open(&database, &keys, RetryPolicy::default()).await,
        ];
        let (tenant, _) = engines[0].create_tenant("test").await.expect("tenant");
        let stores = engines
            .each_ref()
            .map(|engine| Arc::new(DatabaseBuckets::new(engine.database())));
        let mode = RateLimitMode::Seeded(ProviderProfile::generic());
        let now = Utc::now();
        let mut bookings = tokio::task::JoinSet::new();
        for index in 0..40 {
            let store = stores[index % 2].clone();
            let (key, mode) = (key(&tenant.id), mode.clone());
            bookings.spawn(async move {
                store
                    .acquire(&key, &mode, now, Duration::from_secs(60))
                    .await
                    .expect("acquire")
            });
        }
        let mut slots: Vec<DateTime<Utc>> = bookings
            .join_all()
            .await
            .into_iter()
            .map(|acquired| match acquired {
                Acquisition::SendAt(at) => at,
                Acquisition::ParkUntil(at) => panic!("parked until {at}"),
            })
            .collect();
        slots.sort();
        for pair in slots.windows(2) {
            assert!(
                pair[1] - pair[0] >= TimeDelta::milliseconds(100),
                "[{}] slots {} and {} overlap",
                database.label,
                pair[0],
                pair[1]
            );
        }
        assert_eq!(slots[0], now, "[{}]", database.label);
        for engine in engines {
            engine.database().close().await;
        }
        database.drop().await;
    }
}

/// The database store applies the same rules as the in-memory one: the same calls give the
/// same answers and leave the same bucket.
#[tokio::test]
async fn the_database_store_books_like_the_in_memory_store() {
    for database in databases().await {
        let keys = keys();
        let engine = open(&database, &keys, RetryPolicy::default()).await;
        let (tenant, _) = engine.create_tenant("test").await.expect("tenant");
        let stored = DatabaseBuckets::new(engine.database());
        let memory = InMemoryBuckets::new();
        let key = key(&tenant.id);
        let learned = RateLimitMode::Learned(ProviderProfile::generic());
        let now = DateTime::from_timestamp(1_900_000_000, 0).expect("time");
        let max_wait = Duration::from_secs(2);
        let exhausted = RateLimitObservation {
            limit: Some(5),
            remaining: Some(2),
            reset_at: Some(now + TimeDelta::seconds(10)),
            ..RateLimitObservation::default()
        };
        let retry_after = RateLimitObservation {
            rejected: true,
            not_before: Some(now + TimeDelta::seconds(30)),
            ..RateLimitObservation::default()
        };
        let stores: [&dyn BucketStore; 2] = [&stored, &memory];
        let mut answers: [Vec<Acquisition>; 2] = Default::default();
        for (store, answers) in stores.iter().zip(answers.iter_mut()) {
            // Unpaced until the host states a limit.
            answers.push(
                store
                    .acquire(&key, &learned, now, max_wait)
                    .await
                    .expect("acquire"),
            );
            store
                .observe(&key, &learned, &exhausted, now)
                .await
                .expect("observe");
            for _ in 0..3 {
                answers.push(
                    store
                        .acquire(&key, &learned, now, max_wait)
                        .await
                        .expect("acquire"),
                );
            }
            store
                .observe(&key, &learned, &retry_after, now)
                .await
                .expect("observe");
            let later = now + TimeDelta::seconds(20);
            answers.push(
                store
                    .acquire(&key, &learned, later, max_wait)
                    .await
                    .expect("acquire"),
            );
        }
        assert_eq!(answers[0], answers[1], "[{}]", database.label);
        assert_eq!(answers[0][0], Acquisition::SendAt(now));
        assert!(
            matches!(answers[0][2], Acquisition::ParkUntil(at) if at >= now + TimeDelta::seconds(10)),
            "[{}] the reserve keeps the last request back: {:?}",
            database.label,
            answers[0]
        );
        assert!(
            matches!(answers[0][4], Acquisition::ParkUntil(at) if at >= now + TimeDelta::seconds(30)),
            "[{}] Retry-After holds: {:?}",
            database.label,
            answers[0]
        );
        let bucket = stored.load(&key).await.expect("load").expect("stored");
        assert_eq!(
            bucket.blocked_until(),
            Some(now + TimeDelta::seconds(30)),
            "[{}]",
            database.label
        );
        engine.database().close().await;
        database.drop().await;
    }
}
