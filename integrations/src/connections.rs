//! How an action authenticates with a tenant's connection: the [`ConnectionProvider`] the engine
//! implements with its token manager, and the [`ResolvedConnection`] it hands out. Actions reach
//! it only through their [`crate::ActionContext`], which resolves a connection once per step.

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use reqwest::{Request, RequestBuilder};

use crate::error::ActionError;
use crate::http::TlsOptions;
use crate::providers::{ConnectionValues, Location, Placement};
use crate::secrets::SecretValue;

/// The credentials a request carries for a connection. Debug output shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAuth {
    /// `Authorization: Bearer <token>` (OAuth 2.0 access tokens and bearer connections).
    Bearer(SecretValue),
    /// The key in the named header.
    ApiKey { header: String, key: SecretValue },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        username: String,
        password: SecretValue,
    },
    /// The secret where the provider's declaration places it: a header with an optional
    /// prefix (`X-Shopify-Access-Token`, `Authorization: Token `) or a query parameter
    /// (`?key=`).
    Placed {
        placement: Placement,
        secret: SecretValue,
    },
}

impl ConnectionAuth {
    /// `request` with this authentication, its header marked sensitive.
    pub fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ActionError> {
        let (name, value) = self.header()?;
        Ok(request.header(name, value))
    }

    /// Adds this authentication to a built request: its header (replacing one of the same
    /// name), or its query parameter. The runtime never logs a query or a header value.
    pub fn apply_to(&self, request: &mut Request) -> Result<(), ActionError> {
        if let Self::Placed {
            placement:
                Placement {
                    location: Location::Query,
                    name,
                    ..
                },
            secret,
        } = self
        {
            request
                .url_mut()
                .query_pairs_mut()
                .append_pair(name, secret.expose());
            return Ok(());
        }
        let (name, value) = self.header()?;
        request.headers_mut().insert(name, value);
        Ok(())
    }

    /// The header this authentication sends, its value marked sensitive; an error for a
    /// credential placed in the query.
    pub fn header(&self) -> Result<(HeaderName, HeaderValue), ActionError> {
        let header_name = |name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ActionError::Permanent(format!("`{name}` is not a valid header name")))
        };
        let (name, value) = match self {
            Self::Bearer(token) => (AUTHORIZATION, format!("Bearer {}", token.expose())),
            Self::ApiKey { header, key } => (header_name(header)?, key.expose().to_owned()),
            Self::Placed { placement, secret } => {
                if placement.location == Location::Query {
                    return Err(ActionError::Permanent(format!(
                        "the credential goes in the query parameter `{}`, not a header",
                        placement.name
                    )));
                }
                (
                    header_name(&placement.name)?,
                    format!("{}{}", placement.prefix, secret.expose()),
                )
            }
            Self::Basic { username, password } => {
                use base64::Engine as _;
                let pair = zeroize::Zeroizing::new(format!("{username}:{}", password.expose()));
                (
                    AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                    ),
                )
            }
        };
        let value = zeroize::Zeroizing::new(value);
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            ActionError::Permanent("the connection's credential is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }

    /// The secret part, for redaction.
    pub fn secret(&self) -> &SecretValue {
        match self {
            Self::Bearer(token) => token,
            Self::ApiKey { key, .. } => key,
            Self::Basic { password, .. } => password,
            Self::Placed { secret, .. } => secret,
        }
    }
}

/// A connection as one step uses it, read and opened once per step (ARCHITECTURE.md,
/// "Connections"): its credentials, TLS settings, base URL override and the values its
/// provider's URL templates read. Debug output shows no secret.
#[derive(Debug, Clone)]
pub struct ResolvedConnection {
    pub auth: ConnectionAuth,
    /// Its client certificate (mutual TLS) and lowest TLS version.
    pub tls: TlsOptions,
    /// The API base URL its OAuth app sets (sandboxes, self-hosted servers, tests); `None`
    /// means the provider's default.
    pub base_url: Option<String>,
    /// Its parameters and the values kept from its token answer.
    pub values: ConnectionValues,
}

/// Credentials of a tenant's connections, with OAuth 2.0 tokens refreshed as needed.
#[async_trait]
pub trait ConnectionProvider: Send + Sync {
    /// `connection` as a step uses it; an OAuth 2.0 token close to expiry is refreshed first.
    /// A connection that needs re-authorization fails with a permanent error that says so.
    async fn resolve(
        &self,
        tenant_id: &str,
        connection: &str,
    ) -> Result<ResolvedConnection, ActionError>;

    /// After the provider answered 401 to `rejected`: the credentials to retry with once. An
    /// OAuth 2.0 token is refreshed unless a sibling already replaced it; other kinds cannot
    /// be refreshed and fail with a permanent error.
    async fn refresh_rejected(
        &self,
        tenant_id: &str,
        connection: &str,
        rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError>;
}
