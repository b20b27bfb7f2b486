//! Overhead of the integration runtime's middleware chain (circuit breaker, rate-limit
//! scheduler, retry, logging, metrics) per request, against a bare call on the same HTTP client
//! to the same local server in the same run. Calls alternate between the two paths so drift
//! (CPU frequency, other load) hits both alike.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http::Method;
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{
    ActionContext, ActionOutcome, ActionServices, IntegrationCall, IntegrationRuntime,
    StepInvocation,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::stats::{Summary, summarize};

const WARMUP: usize = 200;
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

pub struct ChainOverhead {
    pub requests: usize,
    /// Per-request latency in ms, bare client.
    pub bare: Summary,
    pub bare_mean: f64,
    /// Per-request latency in ms, through the chain.
    pub chain: Summary,
    pub chain_mean: f64,
}

pub async fn measure(requests: usize) -> Result<ChainOverhead> {
    let url = format!("http://{}/ping", serve().await?);
    let http = HttpClient::new(HttpConfig {
        allow_private_networks: true,
        ..HttpConfig::default()
    })?;
    let runtime = IntegrationRuntime::new(http.clone(), &MetricsRegistry::new())
        .context("building the integration runtime")?;
    let ctx = ActionContext::new(
        StepInvocation {
            tenant_id: "bench".into(),
            run_id: "bench".into(),
            step_id: "ping".into(),
            attempt: 1,
            idempotency_key: "bench:ping".into(),
            wake_at: None,
            connection: None,
            http_retry: None,
        },
        Arc::new(ActionServices::new(runtime)),
        CancellationToken::new(),
    );
    let (mut bare, mut chain) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
    for index in 0..WARMUP + requests {
        let started = Instant::now();
        let response = http.send(http.request(Method::GET, &url)?).await?;
        let status = response.status();
        response.bytes().await?;
        let bare_ms = started.elapsed().as_secs_f64() * 1000.0;

        let started = Instant::now();
        let call = IntegrationCall::new(
            "bench",
            "bench.ping",
            ctx.http().request(Method::GET, &url)?,
        );
        let ActionOutcome::Done(chained) = ctx.send(call).await? else {
            bail!("the chain parked a request to a server that states no limit");
        };
        let chain_ms = started.elapsed().as_secs_f64() * 1000.0;
        if !(status.is_success() && chained.status.is_success()) {
            bail!("the local server answered {status} / {}", chained.status);
        }
        if index >= WARMUP {
            bare.push(bare_ms);
            chain.push(chain_ms);
        }
    }
    let mean = |samples: &[f64]| samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    Ok(ChainOverhead {
        requests,
        bare: summarize(&bare),
        bare_mean: mean(&bare),
        chain: summarize(&chain),
        chain_mean: mean(&chain),
    })
}

/// A local HTTP/1.1 keep-alive server answering every request with a small JSON body.
pub async fn serve() -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
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
                        if stream.write_all(RESPONSE).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok(address)
}
