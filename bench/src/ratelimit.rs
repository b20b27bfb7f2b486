//! Scheduler efficiency: how much of a fixed-window quota `http.request` steps on one
//! connection use (used / allowed per window) against a local provider that allows `limit`
//! requests per window and answers 429 beyond it, through one engine or through several
//! engines (their own pools and workers: stand-ins for processes) on one database. On Postgres
//! the engines share one bucket per connection; on SQLite the one engine keeps it in memory.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use stepwise_engine::vault::{KeyProvider, KeyRing, LocalKeyProvider, MasterKey};
use stepwise_engine::{Engine, RunStatus, RuntimeOptions};
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::ratelimit::ProviderProfile;
use stepwise_integrations::runtime::scheduler::{InMemoryBuckets, RateLimitMode};
use stepwise_integrations::runtime::{
    HTTP_INTEGRATION, IntegrationPolicy, MetricsRegistry, RuntimeConfig,
};
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::db::BenchDatabase;

/// The scenario's shape.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Requests the provider allows per window.
    pub limit: u64,
    /// Window length; whole seconds, as `X-RateLimit-Reset` states epoch seconds.
    pub window: Duration,
    /// Windows' worth of steps to run.
    pub windows: u64,
    /// The bucket's wait after a stated reset before it assumes the quota refilled.
    pub reset_grace: Duration,
    /// Requests kept back per window.
    pub reserve: u64,
    /// Steps each engine executes at once.
    pub concurrency: usize,
}

/// Windows spent learning the quota (see [`Efficiency::full`]).
const LEARNING: usize = 2;

/// What the provider saw in one window.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    pub accepted: u64,
    pub rejected: u64,
}

pub struct Efficiency {
    pub runs: usize,
    pub succeeded: usize,
    pub wall_s: f64,
    /// Every window with traffic, in order.
    pub windows: Vec<Window>,
}

impl Efficiency {
    /// The windows after learning and before the last (cut short by the end of the work).
    /// Learning takes two: the first request lands somewhere in a window, and in the next (the
    /// first full one) the limit arrives with requests already in flight and the reset tells
    /// the window's length.
    pub fn full(&self) -> &[Window] {
        match self.windows.len() {
            0..=LEARNING => &[],
            len => &self.windows[LEARNING..len - 1],
        }
    }

    /// Used / allowed over the full windows.
    pub fn used(&self, limit: u64) -> f64 {
        let full = self.full();
        let accepted: u64 = full.iter().map(|w| w.accepted).sum();
        accepted as f64 / (limit as f64 * full.len().max(1) as f64)
    }

    pub fn min_used(&self, limit: u64) -> f64 {
        self.full()
            .iter()
            .map(|w| w.accepted as f64 / limit as f64)
            .fold(f64::INFINITY, f64::min)
    }

    /// 429s while learning, and after.
    pub fn rejected(&self) -> (u64, u64) {
        let learning = self.windows.iter().take(LEARNING).map(|w| w.rejected).sum();
        let later = self.windows.iter().skip(LEARNING).map(|w| w.rejected).sum();
        (learning, later)
    }
}

/// Runs `limit * windows` single-step runs through `engines` engines on `database`.
pub async fn bench(
    database: &BenchDatabase,
    engines: usize,
    settings: Settings,
) -> Result<Efficiency> {
    let window_ms = i64::try_from(settings.window.as_millis())?;
    if window_ms < 1000 || window_ms % 1000 != 0 {
        bail!("the rate-limit window must be whole seconds");
    }
    let provider = Provider::new(settings.limit, window_ms);
    let address = provider.serve().await?;

    let keys: Arc<dyn KeyProvider> = Arc::new(LocalKeyProvider::new(KeyRing::new(vec![
        MasterKey::generate(),
    ])));
    let mut opened = Vec::new();
    for _ in 0..engines {
        opened.push(
            Engine::open_with_keys(
                &database.url,
                Arc::new(Registry::builtin()),
                services(settings.reset_grace, settings.reserve)?,
                keys.clone(),
            )
            .await
            .context("opening an engine")?,
        );
    }
    let engine = &opened[0];
    let (tenant, _) = engine
        .create_tenant(&format!("rate-{engines}"))
        .await
        .map_err(|error| anyhow::anyhow!("creating the tenant: {error}"))?;
    engine
        .create_connection(
            &tenant.id,
            serde_json::from_value(json!({
                "name": "quota", "integration": "generic", "kind": "api_key",
                "api_key": "bench-key", "api_key_header": "X-Api-Key",
            }))?,
        )
        .await
        .map_err(|error| anyhow::anyhow!("creating the connection: {error}"))?;
    let source = format!(
        "name: paced\nsteps:\n  - id: call\n    uses: http.request\n    with:\n      url: http://{address}/items\n      connection: quota\n"
    );
    engine
        .deploy(&tenant.id, "paced.yaml", &source)
        .await
        .map_err(|error| anyhow::anyhow!("deploying: {error:?}"))?;

    let runtimes: Vec<_> = opened
        .iter()
        .map(|engine| {
            engine.start(RuntimeOptions {
                concurrency: settings.concurrency,
                poll_interval: Duration::from_millis(100),
                ..RuntimeOptions::default()
            })
        })
        .collect();
    let started = Instant::now();
    let result = async {
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..settings.limit * settings.windows {
            let (engine, tenant) = (engine.clone(), tenant.id.clone());
            starts.spawn(async move {
                engine
                    .start_run(&tenant, "paced", json!({}), "manual", Value::Null)
                    .await
            });
        }
        let mut runs = Vec::new();
        for started in starts.join_all().await {
            runs.push(started.map_err(|error| anyhow::anyhow!("starting a run: {error}"))?);
        }
        let mut succeeded = 0;
        let mut reported = false;
        let deadline = Duration::from_secs(settings.window.as_secs() * settings.windows * 3 + 60);
        for run_id in &runs {
            let run = tokio::time::timeout(deadline, engine.wait_for_run(&tenant.id, run_id))
                .await
                .context("a run did not finish in time")?
                .map_err(|error| anyhow::anyhow!("waiting for a run: {error}"))?;
            if run.summary.status == RunStatus::Succeeded {
                succeeded += 1;
            } else if !reported {
                reported = true;
                let errors: Vec<_> = run.steps.iter().filter_map(|s| s.error.clone()).collect();
                eprintln!("a run ended {:?}: {errors:?}", run.summary.status);
            }
        }
        anyhow::Ok((runs.len(), succeeded))
    }
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    for runtime in runtimes {
        runtime.shutdown().await;
    }
    for engine in &opened {
        engine.database().close().await;
    }
    let (runs, succeeded) = result?;
    Ok(Efficiency {
        runs,
        succeeded,
        wall_s,
        windows: provider.windows(),
    })
}

/// `http.request` reads the generic headers, with the reset grace scaled to the short windows
/// (the default second suits windows of a minute or more) and `reserve` requests kept back (at
/// tens of requests per second a couple are still on their way when a window ends). On
/// Postgres the engine replaces the in-memory buckets with its shared store.
fn services(reset_grace: Duration, reserve: u64) -> Result<Arc<ActionServices>> {
    let http = HttpClient::new(HttpConfig {
        allow_private_networks: true,
        ..HttpConfig::default()
    })?;
    let policy = IntegrationPolicy {
        rate_limit: RateLimitMode::Learned(ProviderProfile {
            reset_grace,
            min_reserve: reserve,
            ..ProviderProfile::generic()
        }),
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
    .context("building the integration runtime")?;
    Ok(Arc::new(ActionServices::new(runtime)))
}

/// A fixed-window provider on a local keep-alive HTTP/1.1 server: windows are aligned to
/// multiples of the window since the epoch; the first `limit` requests of a window get 200,
/// later ones 429 with `Retry-After`; every answer states `X-RateLimit-Limit`, `-Remaining`
/// and `-Reset` (epoch seconds).
#[derive(Clone)]
struct Provider {
    limit: u64,
    window_ms: i64,
    tally: Arc<Mutex<BTreeMap<i64, Window>>>,
}

impl Provider {
    fn new(limit: u64, window_ms: i64) -> Self {
        Self {
            limit,
            window_ms,
            tally: Arc::default(),
        }
    }

    fn windows(&self) -> Vec<Window> {
        let tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(first), Some(last)) = (tally.keys().next(), tally.keys().next_back()) else {
            return Vec::new();
        };
        (*first..=*last)
            .map(|window| tally.get(&window).copied().unwrap_or_default())
            .collect()
    }

    fn respond(&self) -> Vec<u8> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        let window = now.div_euclid(self.window_ms);
        let reset_ms = (window + 1) * self.window_ms;
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let counts = tally.entry(window).or_default();
        let (status, extra, body) = if counts.accepted < self.limit {
            counts.accepted += 1;
            ("200 OK", String::new(), "{\"ok\":true}")
        } else {
            counts.rejected += 1;
            let retry_after = (reset_ms - now + 999) / 1000;
            (
                "429 Too Many Requests",
                format!("retry-after: {retry_after}\r\n"),
                "{\"ok\":false}",
            )
        };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-ratelimit-limit: {}\r\nx-ratelimit-remaining: {}\r\nx-ratelimit-reset: {}\r\n{extra}\r\n{body}",
            body.len(),
            self.limit,
            self.limit - counts.accepted,
            reset_ms / 1000,
        )
        .into_bytes()
    }

    async fn serve(&self) -> Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let provider = self.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let provider = provider.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::with_capacity(1024);
                    let mut chunk = [0u8; 1024];
                    while let Ok(read) = stream.read(&mut chunk).await {
                        if read == 0 {
                            break;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        // GET requests have no body: each header block is one request.
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            buffer.drain(..end + 4);
                            if stream.write_all(&provider.respond()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Ok(address)
    }
}
