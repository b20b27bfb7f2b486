//! The outbound HTTP client every action uses: rustls with the ring provider, the SSRF guard
//! (see [`guard`]) and the mapping of transport errors and statuses to [`ActionError`] classes.

mod guard;
mod status;

use std::error::Error as StdError;
use std::sync::Once;
use std::time::Duration;

use reqwest::{Method, Request, RequestBuilder, Response, Url};

pub use guard::{Blocked, UrlRejected, blocked_reason};
pub use status::{
    error_for_status, is_retryable_status, parse_http_date, parse_retry_after, retry_after,
};

use crate::error::ActionError;
use guard::{Guard, GuardedResolver};

/// How the process-wide HTTP client behaves; built by the composition root from flags and env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Lifts the SSRF guard (`STEPWISE_ALLOW_PRIVATE_NETWORKS=1`): for tests and local setups.
    pub allow_private_networks: bool,
    /// Limit on establishing a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Limit on a whole request, response body included, unless the request sets its own.
    pub default_timeout: Duration,
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            connect_timeout: Duration::from_secs(10),
            default_timeout: Duration::from_secs(30),
            user_agent: concat!("stepwise/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// reqwest refused the configuration, or no trusted root certificate could be loaded.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// The outbound HTTP client. Cloning is cheap: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    guard: Guard,
}

impl HttpClient {
    /// Builds the client. TLS is rustls with the ring provider (installed process-wide on first
    /// use), the platform's trusted roots and TLS 1.3 minimum (DESIGN 7).
    pub fn new(config: HttpConfig) -> Result<HttpClient, HttpClientError> {
        install_crypto_provider();
        let guard = Guard {
            allow_private_networks: config.allow_private_networks,
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent)
            .connect_timeout(config.connect_timeout)
            .timeout(config.default_timeout)
            .tls_version_min(reqwest::tls::Version::TLS_1_3)
            .redirect(guard.redirect_policy())
            // The Referer of a redirect hop would leak the previous URL, query secrets included.
            .referer(false)
            // A proxy resolves names itself, so DNS-level SSRF filtering could not see them.
            .no_proxy();
        if !config.allow_private_networks {
            builder = builder.dns_resolver(GuardedResolver);
        }
        let client = builder.build().map_err(HttpClientError::Build)?;
        Ok(Self { client, guard })
    }

    /// Starts a request after checking `url`: only http(s), and only public addresses unless
    /// the guard is lifted. A malformed URL or scheme is [`ActionError::InvalidInput`]; a
    /// refused address is [`ActionError::Permanent`].
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, ActionError> {
        let url = Url::parse(url)
            .map_err(|error| ActionError::InvalidInput(format!("invalid URL: {error}")))?;
        self.check_url(&url)?;
        Ok(self.client.request(method, url))
    }

    /// Checks a URL against the scheme rule and the SSRF guard without sending anything.
    pub fn check_url(&self, url: &Url) -> Result<(), ActionError> {
        self.guard
            .check_url(url)
            .map_err(|rejected| match rejected {
                UrlRejected::Blocked(blocked) => ActionError::Permanent(blocked.to_string()),
                other => ActionError::InvalidInput(other.to_string()),
            })
    }

    /// Sends a request built by [`HttpClient::request`] and returns the response whatever its
    /// status (see [`error_for_status`]). Transport failures are classified: timeouts,
    /// connection failures and dropped connections are retryable, TLS and redirect failures are
    /// permanent. Messages name the URL without its query, which may hold secrets.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ActionError> {
        let request = build_request(request)?;
        self.execute(request).await.map_err(|failure| failure.error)
    }

    /// Sends a built request (see [`HttpClient::send`]); a failure also says whether the
    /// request provably never reached the server, which decides if a non-idempotent request
    /// may be sent again.
    pub async fn execute(&self, request: Request) -> Result<Response, SendFailure> {
        // Re-checked here so a request from elsewhere cannot skip the guard.
        self.check_url(request.url()).map_err(|error| SendFailure {
            error,
            never_sent: true,
            timed_out: false,
        })?;
        let target = display_url(request.url());
        self.client
            .execute(request)
            .await
            .map_err(|error| SendFailure {
                never_sent: error.is_connect(),
                timed_out: error.is_timeout(),
                error: classify_transport_error(&error, &target),
            })
    }
}

/// A request that could not be sent or whose response did not arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct SendFailure {
    pub error: ActionError,
    /// The connection was never established (refused, DNS, connect timeout, guard): nothing
    /// reached the server.
    pub never_sent: bool,
    pub timed_out: bool,
}

/// Builds `request`; a builder error names no URL (its query may hold secrets).
pub fn build_request(request: RequestBuilder) -> Result<Request, ActionError> {
    request
        .build()
        .map_err(|error| ActionError::InvalidInput(error.without_url().to_string()))
}

/// `url` without credentials, query or fragment: safe for logs and error messages.
pub fn display_url(url: &Url) -> String {
    let mut url = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// Maps a reqwest error to an [`ActionError`] class; `target` is the redacted URL.
pub fn classify_transport_error(error: &reqwest::Error, target: &str) -> ActionError {
    let sources = || causes(error);
    if let Some(blocked) = sources().find_map(|e| e.downcast_ref::<Blocked>()) {
        return ActionError::Permanent(blocked.to_string());
    }
    if let Some(rejected) = sources().find_map(|e| e.downcast_ref::<UrlRejected>()) {
        return ActionError::Permanent(format!("redirect from {target} refused: {rejected}"));
    }
    if let Some(tls) = sources().find_map(tls_error) {
        return ActionError::Permanent(format!("TLS error talking to {target}: {tls}"));
    }
    let cause = root_cause(error);
    if error.is_timeout() {
        ActionError::retryable(format!("request to {target} timed out"))
    } else if error.is_builder() {
        ActionError::InvalidInput(format!("cannot build the request to {target}: {cause}"))
    } else if error.is_redirect() {
        ActionError::Permanent(format!("redirect from {target} failed: {cause}"))
    } else if error.is_connect() || error.is_request() || error.is_body() {
        // Connection refused or reset, DNS failure, connection closed mid-exchange: the
        // endpoint may well answer next time, and the idempotency key makes a resend safe.
        ActionError::retryable(format!("request to {target} failed: {cause}"))
    } else {
        ActionError::Permanent(format!("request to {target} failed: {cause}"))
    }
}

/// The chain of errors underneath `error`, outermost first.
fn causes(error: &reqwest::Error) -> impl Iterator<Item = &(dyn StdError + 'static)> {
    std::iter::successors(error.source(), |&cause| cause.source())
}

/// The rustls error tokio-rustls wraps in an `io::Error` (which `source()` skips over).
fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .or_else(|| error.downcast_ref::<rustls::Error>())
}

/// The innermost error message: reqwest's own Display repeats the URL, query included.
fn root_cause(error: &reqwest::Error) -> String {
    causes(error)
        .last()
        .map_or_else(|| error.to_string(), ToString::to_string)
}

/// reqwest is built without a default crypto provider (`rustls-no-provider`), so ring must be
/// installed before the first client. Another component may have installed one already; any
/// provider it chose is fine, so that error is ignored.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
