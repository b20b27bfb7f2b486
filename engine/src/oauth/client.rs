//! The `oauth2` crate over our outbound [`HttpClient`] (SSRF guard, rustls, timeouts), and the
//! client of one OAuth app.
//!
//! oauth2 is built without its reqwest feature (which pulls in reqwest 0.12); this adapter
//! implements its `AsyncHttpClient` instead. A 429 or 5xx from the token endpoint becomes a
//! [`TokenHttpError::Status`] here rather than an OAuth error response, so callers can tell a
//! transient failure from a refusal such as `invalid_grant`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, RedirectUrl, RequestTokenError, StandardErrorResponse, TokenUrl,
};
use stepwise_integrations::ActionError;
use stepwise_integrations::http::{HttpClient, TlsOptions, build_request};
use stepwise_integrations::providers::{ClientAuthMethod, OAuth2Spec, provider, render_url};

use crate::store::oauth_apps::OAuthApp;

/// Limit on one token-endpoint exchange.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest token-endpoint response read.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// An oauth2 client with both endpoints set.
pub type AppClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

#[derive(Debug, thiserror::Error)]
pub enum TokenHttpError {
    /// 429 or 5xx: the endpoint may answer next time.
    #[error("the token endpoint answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(ActionError),
}

/// `oauth2::AsyncHttpClient` over [`HttpClient`], with the connection's TLS options: its client
/// certificate is presented to the token endpoint too (RFC 8705 mutual-TLS client
/// authentication and certificate-bound tokens; a server that asks for none never sees it).
/// With the provider's OAuth declaration, its answer is read as declared
/// ([`OAuth2Spec::read_token_answer`]: a nested token lifted, an error in a 200 made an error)
/// and the values it keeps are noted for [`TokenEndpoint::kept`].
pub struct TokenEndpoint<'a> {
    pub http: &'a HttpClient,
    pub tls: &'a TlsOptions,
    pub spec: Option<&'a OAuth2Spec>,
    kept: Mutex<BTreeMap<String, String>>,
}

impl<'a> TokenEndpoint<'a> {
    /// The token endpoint of `integration`'s provider (its declaration, if any, shapes the
    /// answer).
    pub fn new(http: &'a HttpClient, tls: &'a TlsOptions, integration: &str) -> Self {
        Self {
            http,
            tls,
            spec: provider(integration).and_then(|spec| spec.oauth2.as_ref()),
            kept: Mutex::default(),
        }
    }

    /// The values the last answer held that the declaration keeps.
    pub fn kept(&self) -> BTreeMap<String, String> {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenEndpoint<'_> {
    type Error = TokenHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let builder = self
                .http
                .request(parts.method, &parts.uri.to_string())
                .map_err(TokenHttpError::Transport)?
                .headers(parts.headers)
                .timeout(TOKEN_REQUEST_TIMEOUT)
                .body(body);
            let response = self
                .http
                .execute_with(
                    build_request(builder).map_err(TokenHttpError::Transport)?,
                    self.tls,
                )
                .await
                .map_err(|failure| TokenHttpError::Transport(failure.error))?;
            let status = response.status();
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(TokenHttpError::Status(status.as_u16()));
            }
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(|error| {
                TokenHttpError::Transport(ActionError::retryable(format!(
                    "reading the token endpoint's response failed: {}",
                    error.without_url()
                )))
            })?;
            if bytes.len() > MAX_RESPONSE_BYTES {
                return Err(TokenHttpError::Transport(ActionError::Permanent(
                    "the token endpoint's response is too large".into(),
                )));
            }
            let (body, status) = match self.spec {
                Some(spec) => {
                    let answer = spec.read_token_answer(&bytes);
                    *self.kept.lock().unwrap_or_else(PoisonError::into_inner) = answer.kept;
                    let status = if answer.is_error && status.is_success() {
                        http::StatusCode::BAD_REQUEST
                    } else {
                        status
                    };
                    (answer.body, status)
                }
                None => (bytes.to_vec(), status),
            };
            let mut response = http::Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok(response)
        })
    }
}

/// Why a token request failed, classified; messages never hold a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// `invalid_grant`: the code or refresh token is no longer valid.
    InvalidGrant(String),
    /// Another OAuth error response (`invalid_client`, ...): a configuration problem.
    Refused(String),
    /// Timeouts, connection errors, 429/5xx, unreadable responses: try again later.
    Transient(String),
}

impl TokenFailure {
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidGrant(message) | Self::Refused(message) | Self::Transient(message) => {
                message
            }
        }
    }
}

type RequestError =
    RequestTokenError<TokenHttpError, StandardErrorResponse<BasicErrorResponseType>>;

/// Classifies an oauth2 request error. The raw body of an unparsable response is dropped: it
/// may hold a token.
pub fn classify(error: RequestError) -> TokenFailure {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let description = response
                .error_description()
                .map(|text| format!(": {text}"))
                .unwrap_or_default();
            let message = format!("the provider refused: {}{description}", response.error());
            if *response.error() == BasicErrorResponseType::InvalidGrant {
                TokenFailure::InvalidGrant(message)
            } else {
                TokenFailure::Refused(message)
            }
        }
        RequestTokenError::Request(TokenHttpError::Status(status)) => {
            TokenFailure::Transient(format!("the token endpoint answered HTTP {status}"))
        }
        RequestTokenError::Request(TokenHttpError::Transport(error)) => {
            if error.is_retryable() {
                TokenFailure::Transient(error.to_string())
            } else {
                TokenFailure::Refused(error.to_string())
            }
        }
        RequestTokenError::Parse(error, _body) => TokenFailure::Transient(format!(
            "the token endpoint's response is not a token response ({})",
            error.path()
        )),
        RequestTokenError::Other(message) => TokenFailure::Transient(message),
    }
}

/// The oauth2 client of `app`, authenticating as its auth method says; `values` fill the
/// `{name}` placeholders of its endpoints (the connection's parameters, such as Microsoft's
/// `{tenant}`, and its kept token values).
pub fn app_client(
    app: &OAuthApp,
    redirect_uri: Option<&str>,
    values: &BTreeMap<String, String>,
) -> Result<AppClient, String> {
    let endpoint = |url: &Option<String>, what: &str| {
        let template = url
            .as_deref()
            .ok_or_else(|| format!("OAuth app `{}` has no {what} URL", app.info.name))?;
        render_url(template, values).map_err(|error| format!("its {what} URL: {error}"))
    };
    let authorize_url = endpoint(&app.info.authorize_url, "authorize")?;
    let token_url = endpoint(&app.info.token_url, "token")?;
    let mut client = BasicClient::new(ClientId::new(app.info.client_id.clone()))
        .set_auth_uri(AuthUrl::new(authorize_url).map_err(|error| error.to_string())?)
        .set_token_uri(TokenUrl::new(token_url).map_err(|error| error.to_string())?)
        .set_auth_type(match app.info.auth_method {
            ClientAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            ClientAuthMethod::ClientSecretPost => AuthType::RequestBody,
        });
    if let Some(secret) = &app.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    if let Some(redirect_uri) = redirect_uri {
        client = client.set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|error| error.to_string())?,
        );
    }
    Ok(client)
}

/// The scopes of an authorization request (the app's, else the provider's declared ones),
/// joined as the provider expects.
pub fn scope_parameter(integration: &str, configured: &[String]) -> Vec<oauth2::Scope> {
    let spec = provider(integration);
    let separator = spec.map_or(" ", |spec| spec.scope_separator());
    let scopes = spec.map_or(configured, |spec| spec.requested_scopes(configured));
    if scopes.is_empty() {
        Vec::new()
    } else if separator == " " {
        scopes.iter().cloned().map(oauth2::Scope::new).collect()
    } else {
        vec![oauth2::Scope::new(scopes.join(separator))]
    }
}
