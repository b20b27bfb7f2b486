//! Webhook acknowledgements over loopback HTTP: the real server (`stepwise_api::startup`) with
//! a GitHub (HMAC-SHA256) source and a subscribed one-step workflow, sent signed deliveries
//! with distinct delivery ids by `concurrency` keep-alive connections; beside it a bare actix
//! handler answering 200, measured by the same client in the same process run.
//!
//! The client is a minimal HTTP/1.1 keep-alive client over a Tokio `TcpStream` (requests are
//! written whole, responses read by `Content-Length`): client and server share the machine's
//! two cores, so a lean client disturbs the measurement least.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, bail, ensure};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use stepwise_api::config::AppConfig;
use stepwise_api::startup::Application;
use stepwise_engine::vault::MasterKey;
use stepwise_integrations::SecretValue;
use stepwise_integrations::webhooks::WebhookScheme;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::db::BenchDatabase;
use crate::stats::{Summary, summarize};

const SOURCE: &str = "bench-github";
const SECRET: &str = "bench-webhook-secret";
/// Deliveries sent (and discarded) before each target is measured.
const WARMUP: usize = 200;

/// One measured (target, concurrency) cell.
pub struct AckResult {
    pub target: Target,
    pub concurrency: usize,
    pub sent: usize,
    pub ok: usize,
    pub per_second: f64,
    pub latency: Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /webhooks/github/{source}`: verify, commit delivery + run, answer 200.
    Stepwise,
    /// An actix handler that answers 200 and does nothing else.
    Bare,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::Stepwise => "Stepwise ingest (verify + commit delivery and run)",
            Target::Bare => "bare actix handler (200, nothing else)",
        }
    }
}

/// The workflow every delivery starts: one pure step, executed inside the ingest transaction.
fn workflow_yaml() -> String {
    format!(
        "name: bench-webhook\non:\n  webhook: {{ source: {SOURCE} }}\nsteps:\n  - id: ack\n    uses: core.set\n    with:\n      n: ${{{{ trigger.body.n }}}}\n"
    )
}

pub async fn bench(
    database: &BenchDatabase,
    deliveries: usize,
    concurrencies: &[usize],
    workers: usize,
    limit: Duration,
) -> Result<Vec<AckResult>> {
    let mut config = AppConfig::local(database.url.clone());
    config.workers = workers;
    config.master_key.keys = Some(SecretValue::new(MasterKey::generate().to_base64().as_str()));
    let app = Application::build(&config)
        .await
        .context("starting the server")?;
    let address = app.address();
    let engine = app.engine().clone();
    let handle = app.server_handle();
    let server = tokio::spawn(app.run_until_stopped());

    let (tenant, _) = engine.create_tenant("bench-webhooks").await?;
    let source = engine
        .create_source(
            &tenant.id,
            SOURCE,
            &WebhookScheme::Github,
            &SecretValue::new(SECRET),
        )
        .await?;
    engine
        .deploy(&tenant.id, "bench-webhook.yaml", &workflow_yaml())
        .await
        .map_err(|error| anyhow::anyhow!("deploying the webhook workflow: {error:?}"))?;
    let ingest_path = format!("/webhooks/github/{}", source.id);

    let bare = HttpServer::new(|| {
        App::new().route(
            "/bare",
            web::post().to(|_body: web::Bytes| async { HttpResponse::Ok().finish() }),
        )
    })
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .context("binding the bare server")?;
    let bare_address = *bare.addrs().first().context("bare server address")?;
    let bare = bare.run();
    let bare_handle = bare.handle();
    let bare_server = tokio::spawn(bare);

    let next_id = Arc::new(AtomicUsize::new(0));
    let mut results = Vec::new();
    let measured = async {
        for &concurrency in concurrencies {
            for target in [Target::Bare, Target::Stepwise] {
                let (address, path) = match target {
                    Target::Bare => (bare_address, "/bare"),
                    Target::Stepwise => (address, ingest_path.as_str()),
                };
                let load = Load {
                    address,
                    path: path.to_owned(),
                    concurrency,
                    next_id: next_id.clone(),
                    expect_run: target == Target::Stepwise,
                };
                load.send(WARMUP.min(deliveries), limit).await?;
                let result = load.send(deliveries, limit).await?;
                eprintln!(
                    "[{}] webhooks, {} at concurrency {concurrency}: {}/{} ok, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                    database.kind.label(),
                    target.label(),
                    result.ok,
                    result.sent,
                    result.per_second,
                    result.latency.p50,
                    result.latency.p99,
                );
                results.push(AckResult {
                    target,
                    concurrency,
                    ..result
                });
            }
        }
        anyhow::Ok(())
    }
    .await;
    bare_handle.stop(true).await;
    handle.stop(true).await;
    let _ = bare_server.await;
    let _ = server.await;
    engine.database().close().await;
    measured?;
    Ok(results)
}

/// One load generator: `concurrency` connections sending deliveries as fast as answered.
struct Load {
    address: SocketAddr,
    path: String,
    concurrency: usize,
    next_id: Arc<AtomicUsize>,
    /// The answer must say a run was started (not a duplicate).
    expect_run: bool,
}

impl Load {
    async fn send(&self, count: usize, limit: Duration) -> Result<AckResult> {
        let remaining = Arc::new(AtomicUsize::new(count));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            let remaining = remaining.clone();
            let next_id = self.next_id.clone();
            let address = self.address;
            let path = self.path.clone();
            let expect_run = self.expect_run;
            tasks.push(tokio::spawn(async move {
                let mut connection = Connection::open(address).await?;
                let mut latencies = Vec::new();
                let mut ok = 0usize;
                while started.elapsed() < limit
                    && remaining
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let request = signed_request(&path, next_id.fetch_add(1, Ordering::Relaxed));
                    let sent = Instant::now();
                    let (status, body) = connection.exchange(&request).await?;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    let accepted = status == 200 && (!expect_run || body_started_a_run(&body));
                    if accepted {
                        ok += 1;
                    } else if ok == 0 && latencies.len() == 1 {
                        eprintln!(
                            "unexpected answer {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                }
                anyhow::Ok((ok, latencies))
            }));
        }
        let mut latencies = Vec::with_capacity(count);
        let mut ok = 0;
        for task in tasks {
            let (task_ok, task_latencies) = task.await.context("client task panicked")??;
            ok += task_ok;
            latencies.extend(task_latencies);
        }
        let wall = started.elapsed().as_secs_f64();
        Ok(AckResult {
            target: Target::Bare,
            concurrency: self.concurrency,
            sent: latencies.len(),
            ok,
            per_second: latencies.len() as f64 / wall,
            latency: summarize(&latencies),
        })
    }
}

fn body_started_a_run(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("\"duplicate\":false") && !text.contains("\"run_ids\":[]")
}

/// A GitHub-style delivery: `X-Hub-Signature-256` over the body, a distinct delivery id.
fn signed_request(path: &str, n: usize) -> Vec<u8> {
    let body = format!("{{\"action\":\"opened\",\"n\":{n}}}");
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: bench-{n}\r\nX-Hub-Signature-256: sha256={signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Connection {
    async fn open(address: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    /// Sends one request and reads its answer: (status, body).
    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>)> {
        self.stream.get_mut().write_all(request).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = None;
        loop {
            self.line.clear();
            ensure!(
                self.stream.read_line(&mut self.line).await? > 0,
                "connection closed mid-response"
            );
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse::<usize>()?);
            }
        }
        let Some(length) = length else {
            bail!("response without Content-Length (status {status})");
        };
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_integrations::Registry;

    #[test]
    fn the_workflow_validates() {
        let parsed = stepwise_workflows::parse_workflow(
            "bench-webhook.yaml",
            &workflow_yaml(),
            &Registry::builtin(),
        );
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    }
}
