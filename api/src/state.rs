//! State shared by every HTTP worker.

use std::future::Future;

use stepwise_engine::{Engine, EngineError};
use tokio::runtime::Handle;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The engine and the Tokio runtime it belongs to.
#[derive(Clone)]
pub struct AppState {
    engine: Engine,
    runtime: Handle,
    public_url: String,
    metrics: Metrics,
}

impl AppState {
    /// `runtime` must be the runtime the engine's workers run on (the process' main one);
    /// `public_url` is where users and providers reach this server, without trailing `/`.
    pub fn new(engine: Engine, runtime: Handle, public_url: String, metrics: Metrics) -> Self {
        Self {
            engine,
            runtime,
            public_url,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `path` (starting with `/`) on the public URL.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Where providers send the user back after an authorization.
    pub fn oauth_redirect_uri(&self) -> String {
        self.public_url("/oauth/callback")
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs an engine call on the main runtime rather than on the calling actix worker.
    ///
    /// Why: actix-web serves each worker thread from its own single-threaded runtime, and a
    /// database connection opened while polled there stays bound to that runtime's I/O driver.
    /// Such pooled connections would break when the HTTP server stops while the step workers
    /// (on the main runtime) still use the pool. Running every engine call on the main runtime
    /// keeps all pooled connections on the runtime that lives longest.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: FnOnce(Engine) -> Fut,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
        T: Send + 'static,
    {
        self.call_with(call).await
    }

    /// [`AppState::call`] for engine calls with their own error type.
    pub async fn call_with<T, E, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: FnOnce(Engine) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let task = self.runtime.spawn(call(self.engine.clone()));
        match task.await {
            Ok(result) => result.map_err(Into::into),
            Err(error) => Err(ApiError::Internal(format!("engine task failed: {error}"))),
        }
    }
}
