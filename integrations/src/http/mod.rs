//! The outbound HTTP client every action uses: rustls with the ring provider, the SSRF guard
//! (see [`guard`]) and the mapping of transport errors and statuses to [`ActionError`] classes.
//!
//! TLS: the platform's roots plus the operator's extra CAs (`STEPWISE_EXTRA_CA_FILE`), TLS 1.3
//! minimum unless a request's [`TlsOptions`] lower it (an integration's policy or a
//! connection's setting), and a client certificate per connection for mutual TLS. A request
//! with non-default options goes through a client built for them, kept per connection (or per
//! TLS floor) and rebuilt when the connection's certificate changes.

mod guard;
mod status;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use reqwest::{Certificate, Identity, Method, Request, RequestBuilder, Response, Url};
use serde::{Deserialize, Serialize};

pub use guard::{Blocked, UrlRejected, blocked_reason};
pub use status::{
    error_for_status, is_retryable_status, parse_http_date, parse_retry_after, retry_after,
};

use crate::error::ActionError;
use crate::secrets::SecretValue;
use guard::{Guard, GuardedResolver};

/// The lowest TLS protocol version a connection may negotiate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    /// `"1.2"` or `"1.3"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "1.2" => Some(Self::Tls12),
            "1.3" => Some(Self::Tls13),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }

    fn reqwest(self) -> reqwest::tls::Version {
        match self {
            Self::Tls12 => reqwest::tls::Version::TLS_1_2,
            Self::Tls13 => reqwest::tls::Version::TLS_1_3,
        }
    }
}

/// A client certificate (PEM, chain first) and its private key (PEM, a secret), presented for
/// mutual TLS. Debug shows only whose it is.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Whose identity this is (a connection id): one client is kept per owner.
    owner: String,
    certificate: String,
    identity: Identity,
}

impl ClientIdentity {
    /// Reads `certificate` (at least one certificate) and `key` (a PKCS#8, PKCS#1 or SEC1
    /// private key). Errors name no key material.
    pub fn new(owner: &str, certificate: &str, key: &SecretValue) -> Result<Self, String> {
        if !certificate.contains("-----BEGIN CERTIFICATE-----") {
            return Err("the client certificate must be PEM (BEGIN CERTIFICATE)".into());
        }
        let mut pem = zeroize::Zeroizing::new(Vec::with_capacity(
            certificate.len() + key.expose().len() + 1,
        ));
        pem.extend_from_slice(key.expose().as_bytes());
        pem.push(b'\n');
        pem.extend_from_slice(certificate.as_bytes());
        let identity = Identity::from_pem(&pem).map_err(|_| {
            "the client key must be a PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned()
        })?;
        Ok(Self {
            owner: owner.to_owned(),
            certificate: certificate.to_owned(),
            identity,
        })
    }

    /// [`ClientIdentity::new`], and rustls accepts the key for the certificate (what a new
    /// connection is checked with).
    pub fn validate(certificate: &str, key: &SecretValue) -> Result<(), String> {
        let identity = Self::new("", certificate, key)?;
        reqwest::Client::builder()
            .tls_certs_only(Vec::new())
            .identity(identity.identity)
            .build()
            .map(drop)
            .map_err(|_| "the client key does not fit the certificate or is not supported".into())
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// How one request's TLS differs from the client's defaults.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// The lowest protocol version accepted; `None` keeps the client's (TLS 1.3).
    pub min_version: Option<TlsVersion>,
    /// The client certificate to present.
    pub identity: Option<ClientIdentity>,
}

/// The key of a client built for non-default TLS options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VariantKey {
    owner: Option<String>,
    min_version: TlsVersion,
}

struct Variant {
    /// The certificate the client presents: a changed one replaces the client.
    certificate: Option<String>,
    client: reqwest::Client,
}

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
    /// PEM certificates trusted on top of the platform's roots (`STEPWISE_EXTRA_CA_FILE`).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The lowest TLS version unless a request's options lower it.
    pub min_tls_version: TlsVersion,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            connect_timeout: Duration::from_secs(10),
            default_timeout: Duration::from_secs(30),
            user_agent: concat!("stepwise/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_ca_pem: None,
            min_tls_version: TlsVersion::Tls13,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// reqwest refused the configuration, or no trusted root certificate could be loaded.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    #[error("the extra CA file holds no usable PEM certificate: {0}")]
    ExtraCa(String),
}

/// The outbound HTTP client. Cloning is cheap: clones share their connection pools.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    guard: Guard,
    config: Arc<HttpConfig>,
    extra_roots: Arc<Vec<Certificate>>,
    variants: Arc<Mutex<HashMap<VariantKey, Variant>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("guard", &self.guard)
            .field("min_tls_version", &self.config.min_tls_version)
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client. TLS is rustls with the ring provider (installed process-wide on first
    /// use), the platform's trusted roots plus the extra CAs, and TLS 1.3 minimum by default
    /// (ARCHITECTURE.md, `integrations/`).
    pub fn new(config: HttpConfig) -> Result<HttpClient, HttpClientError> {
        install_crypto_provider();
        let guard = Guard {
            allow_private_networks: config.allow_private_networks,
        };
        let extra_roots = match &config.extra_ca_pem {
            Some(pem) => {
                let roots = Certificate::from_pem_bundle(pem)
                    .map_err(|error| HttpClientError::ExtraCa(error.to_string()))?;
                if roots.is_empty() {
                    return Err(HttpClientError::ExtraCa("no certificate in it".into()));
                }
                roots
            }
            None => Vec::new(),
        };
        let client = build_client(&config, &guard, &extra_roots, config.min_tls_version, None)
            .map_err(HttpClientError::Build)?;
        Ok(Self {
            client,
            guard,
            config: Arc::new(config),
            extra_roots: Arc::new(extra_roots),
            variants: Arc::default(),
        })
    }

    /// The client for `tls`: the default one, or one built for those options (kept per
    /// identity owner and TLS floor, rebuilt when the owner's certificate changes).
    fn client_for(&self, tls: &TlsOptions) -> Result<reqwest::Client, ActionError> {
        let min_version = tls.min_version.unwrap_or(self.config.min_tls_version);
        if tls.identity.is_none() && min_version == self.config.min_tls_version {
            return Ok(self.client.clone());
        }
        let key = VariantKey {
            owner: tls.identity.as_ref().map(|identity| identity.owner.clone()),
            min_version,
        };
        let certificate = tls
            .identity
            .as_ref()
            .map(|identity| identity.certificate.clone());
        let mut variants = self
            .variants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(variant) = variants.get(&key)
            && variant.certificate == certificate
        {
            return Ok(variant.client.clone());
        }
        let client = build_client(
            &self.config,
            &self.guard,
            &self.extra_roots,
            min_version,
            tls.identity
                .as_ref()
                .map(|identity| identity.identity.clone()),
        )
        .map_err(|error| {
            ActionError::Permanent(format!(
                "cannot set up TLS for this connection: {}",
                error.without_url()
            ))
        })?;
        variants.insert(
            key,
            Variant {
                certificate,
                client: client.clone(),
            },
        );
        Ok(client)
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
        self.execute_with(request, &TlsOptions::default()).await
    }

    /// [`HttpClient::execute`] with the TLS options of the request's connection.
    pub async fn execute_with(
        &self,
        request: Request,
        tls: &TlsOptions,
    ) -> Result<Response, SendFailure> {
        let never_sent = |error| SendFailure {
            error,
            never_sent: true,
            timed_out: false,
        };
        // Re-checked here so a request from elsewhere cannot skip the guard.
        self.check_url(request.url()).map_err(never_sent)?;
        let client = self.client_for(tls).map_err(never_sent)?;
        let target = display_url(request.url());
        client.execute(request).await.map_err(|error| SendFailure {
            never_sent: error.is_connect(),
            timed_out: error.is_timeout(),
            error: classify_transport_error(&error, &target),
        })
    }
}

fn build_client(
    config: &HttpConfig,
    guard: &Guard,
    extra_roots: &[Certificate],
    min_version: TlsVersion,
    identity: Option<Identity>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .connect_timeout(config.connect_timeout)
        .timeout(config.default_timeout)
        .tls_version_min(min_version.reqwest())
        .tls_certs_merge(extra_roots.iter().cloned())
        .redirect(guard.redirect_policy())
        // The Referer of a redirect hop would leak the previous URL, query secrets included.
        .referer(false)
        // A proxy resolves names itself, so DNS-level SSRF filtering could not see them.
        .no_proxy();
    if !config.allow_private_networks {
        builder = builder.dns_resolver(GuardedResolver);
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build()
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

/// The rustls error tokio-rustls wraps in an `io::Error` (which `source()` skips over), the
/// connector sometimes in a second one.
fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut error = error;
    loop {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        error = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
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
