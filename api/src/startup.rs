//! Building and running the server process: engine, step workers and the HTTP server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, Service, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpServer, ResponseError, web};
use stepwise_engine::{Engine, EngineError, MasterKeySettings, Runtime, RuntimeOptions};
use stepwise_integrations::http::{HttpClient, HttpClientError, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};

use crate::config::AppConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use crate::tls::{ReloadableCertificate, TlsError};

/// Largest request body accepted (workflow sources, run inputs).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Default largest webhook delivery body (`STEPWISE_WEBHOOK_MAX_BYTES`).
pub const DEFAULT_WEBHOOK_MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    HttpClient(#[from] HttpClientError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Server(#[source] std::io::Error),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot read the extra CA file {path} ({EXTRA_CA_FILE_ENV}): {source}")]
    ExtraCaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// PEM certificates outbound TLS trusts on top of the platform's roots (ARCHITECTURE.md, `integrations/`).
pub const EXTRA_CA_FILE_ENV: &str = "STEPWISE_EXTRA_CA_FILE";

/// The shared services actions use, built from the operator's settings (and the extra CA
/// file named by `STEPWISE_EXTRA_CA_FILE`); the integration runtime's metrics are registered
/// into `metrics`.
pub fn action_services(
    allow_private_networks: bool,
    metrics: &MetricsRegistry,
) -> Result<ActionServices, StartupError> {
    let extra_ca_pem = match std::env::var_os(EXTRA_CA_FILE_ENV).filter(|path| !path.is_empty()) {
        Some(path) => Some(
            std::fs::read(&path).map_err(|source| StartupError::ExtraCaFile {
                path: path.to_string_lossy().into_owned(),
                source,
            })?,
        ),
        None => None,
    };
    let http = HttpClient::new(HttpConfig {
        allow_private_networks,
        extra_ca_pem,
        ..HttpConfig::default()
    })?;
    Ok(ActionServices::new(IntegrationRuntime::new(http, metrics)?))
}

/// Opens (and migrates) the database with the built-in action catalog and the configured
/// master keys. The composition root: the only place that decides which actions, services and
/// key provider the engine gets.
pub async fn open_engine(
    database_url: &str,
    master_key: &MasterKeySettings,
    allow_private_networks: bool,
    metrics: &MetricsRegistry,
) -> Result<Engine, StartupError> {
    let keys = stepwise_engine::vault::key_provider(master_key, database_url)
        .map_err(EngineError::from)?;
    let services = Arc::new(action_services(allow_private_networks, metrics)?);
    Ok(Engine::open_with_keys(database_url, Arc::new(Registry::builtin()), services, keys).await?)
}

/// A started server process: the HTTP server is listening and the step workers are running.
pub struct Application {
    address: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    engine: Engine,
    server: Server,
    runtime: Runtime,
}

impl Application {
    /// Opens the engine, starts the step workers and binds the HTTP listener, with a fresh
    /// metrics registry.
    pub async fn build(config: &AppConfig) -> Result<Self, StartupError> {
        // The process's metrics registry: the integration runtime registers its collectors
        // when the engine opens, the API its own in `from_engine`; `GET /metrics` serves it.
        let metrics = MetricsRegistry::new();
        let engine = open_engine(
            &config.database_url,
            &config.master_key,
            config.allow_private_networks,
            &metrics,
        )
        .await?;
        Self::from_engine(engine, &metrics, config)
    }

    /// Starts the step workers and the HTTP server on an opened engine, serving `registry`
    /// (where other components registered their metrics) at `/metrics`. Must be called from
    /// the runtime the process lives on: engine calls of HTTP handlers are sent there.
    pub fn from_engine(
        engine: Engine,
        registry: &prometheus::Registry,
        config: &AppConfig,
    ) -> Result<Self, StartupError> {
        let metrics = Metrics::register(registry, &engine, config.heartbeat_interval)?;
        let listener = TcpListener::bind(config.bind).map_err(|source| StartupError::Bind {
            address: config.bind,
            source,
        })?;
        let address = listener.local_addr().map_err(StartupError::Server)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = config.public_url.as_deref().map_or_else(
            || format!("{scheme}://{address}"),
            |url| url.trim_end_matches('/').to_owned(),
        );
        let state = web::Data::new(AppState::new(
            engine.clone(),
            tokio::runtime::Handle::current(),
            public_url,
            metrics,
        ));
        let webhook_max_bytes = config.webhook_max_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .app_data(web::QueryConfig::default().error_handler(|error, _| {
                    ApiError::InvalidInput(format!("invalid query: {error}")).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|error, _| {
                    ApiError::InvalidInput(format!("invalid path: {error}")).into()
                }))
                .configure(|routes| {
                    routes::configure(routes, webhook_max_bytes);
                })
                .default_service(web::to(routes::not_found))
                .wrap(ErrorHandlers::new().default_handler(json_error_fallback))
                .wrap_fn(|request, service| {
                    let method = request.method().clone();
                    let path = request.path().to_owned();
                    let started = Instant::now();
                    let response = service.call(request);
                    async move {
                        let response = response.await?;
                        tracing::info!(
                            message = "Request.",
                            %method,
                            path,
                            status = response.status().as_u16(),
                            elapsed_ms = started.elapsed().as_millis() as u64,
                        );
                        Ok(response)
                    }
                })
        })
        // Signals are handled by the caller, which also has to stop the step workers.
        .disable_signals()
        // In-flight requests get the same grace as in-flight steps (whole seconds for actix).
        .shutdown_timeout(config.shutdown_grace.as_secs_f64().ceil() as u64);
        let server = match &config.tls {
            Some(files) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let certificate = Arc::new(ReloadableCertificate::load(files.clone(), provider)?);
                #[cfg(unix)]
                tokio::spawn(crate::tls::reload_on_sighup(certificate.clone()));
                server.listen_rustls_0_23(listener, crate::tls::server_config(certificate)?)
            }
            None => server.listen(listener),
        }
        .map_err(StartupError::Server)?
        .run();
        let runtime = engine.start(RuntimeOptions {
            concurrency: config.workers.max(1),
            poll_interval: config.poll_interval,
            heartbeat_interval: config.heartbeat_interval,
            retention: config.retention,
            shutdown_grace: config.shutdown_grace,
            ..RuntimeOptions::default()
        });
        Ok(Self {
            address,
            scheme,
            engine,
            server,
            runtime,
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where the server answers: `http://` or `https://` and the bound address.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stops the server gracefully: `handle.stop(true).await`.
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped through [`Application::server_handle`], then lets
    /// the running steps finish and stops the workers.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.runtime.shutdown().await;
        served
    }

    /// Serves until `signal`, then drains: the listener closes, and in-flight requests and
    /// steps get the shutdown grace at the same time (the step workers claim nothing more
    /// from the signal on; see [`Runtime::shutdown`]).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            served = &mut server => {
                self.runtime.shutdown().await;
                return served;
            }
            () = signal => {}
        }
        tracing::info!(message = "Shutting down: finishing in-flight requests and steps.");
        // The server future must be polled for the stop to complete.
        let (served, (), ()) = tokio::join!(server, handle.stop(true), self.runtime.shutdown());
        served
    }
}

/// Re-renders error responses that do not come from our handlers (405 from the router, 413 from
/// the payload extractor, ...) as the JSON error body every client expects.
fn json_error_fallback<B: MessageBody>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors and the OAuth callback's HTML pages are ours already.
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value.as_bytes().starts_with(b"application/json")
                || value.as_bytes().starts_with(b"text/html")
        });
    if is_ours {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let replacement = ApiError::Status(response.status()).error_response();
    let (request, _) = response.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, replacement).map_into_right_body(),
    ))
}
