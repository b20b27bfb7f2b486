//! The token manager: a connection's credentials for actions, OAuth 2.0 access tokens refreshed
//! ahead of expiry and once after a 401.
//!
//! "Ahead of expiry" is a margin: the app's `refresh_margin`, else the manager's (60 s), but
//! never more than a quarter of the token's lifetime (`refresh_margin_ms`).
//!
//! A refresh is single-flight per connection: inside a process, callers queue on one async
//! mutex per connection; across processes, the refresher holds a lease on the connection row
//! (`refresh_lease_owner/until`, taken with one conditional update, so it works the same on
//! SQLite and Postgres and no transaction stays open during the network call). Whoever gets
//! the lease re-reads the row first and uses what a sibling already refreshed. The new access
//! token and a rotated refresh token are written in one update, only while the lease is still
//! held. `invalid_grant` marks the connection `needs_reauth`; later calls fail fast until it is
//! authorized again. Transient failures (timeouts, 429, 5xx) keep the connection as it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oauth2::RefreshToken;
use sea_orm::DatabaseConnection;
use stepwise_integrations::http::HttpClient;
use stepwise_integrations::providers::{ConnectionValues, provider};
use stepwise_integrations::runtime::health::HealthRecorder;
use stepwise_integrations::{
    ActionError, ConnectionAuth, ConnectionProvider, ResolvedConnection, SecretValue,
};

use super::client::{TokenEndpoint, TokenFailure, app_client, classify};
use super::new_tokens;
use crate::error::EngineError;
use crate::store::connections::{
    self, Connection, ConnectionKind, ConnectionStatus, DEFAULT_API_KEY_HEADER,
};
use crate::store::entities::oauth_app;
use crate::store::now_ms;
use crate::store::oauth_apps;
use crate::vault::Vault;

/// Default: refresh when the access token expires within a minute (or within a quarter of
/// its lifetime, when that is shorter; see [`refresh_margin_ms`]).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long a refresh lease lasts: longer than a token request may take, short enough that a
/// crashed refresher does not block the connection for long.
const LEASE_MS: i64 = 2 * super::client::TOKEN_REQUEST_TIMEOUT.as_millis() as i64;

/// How often a process waiting for another process' refresh looks again.
const LEASE_POLL: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "connection `{connection}` needs to be reconnected ({reason}): authorize it again with GET /oauth/{integration}/authorize?connection={connection}"
    )]
    NeedsReauth {
        connection: String,
        integration: String,
        reason: String,
    },
    #[error("refreshing the token of connection `{connection}` failed, will retry: {message}")]
    Transient { connection: String, message: String },
    #[error("connection `{connection}` cannot be used: {message}")]
    Failed { connection: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<TokenError> for ActionError {
    fn from(error: TokenError) -> Self {
        match &error {
            TokenError::Transient { .. } => ActionError::retryable(error.to_string()),
            TokenError::Engine(EngineError::Database(_) | EngineError::Sqlx(_)) => {
                ActionError::retryable(error.to_string())
            }
            _ => ActionError::Permanent(error.to_string()),
        }
    }
}

/// Refreshes and hands out connection credentials; one per engine (process).
pub struct TokenManager {
    db: DatabaseConnection,
    vault: Vault,
    http: HttpClient,
    /// Identifies this process in refresh leases.
    owner: String,
    refresh_margin_ms: AtomicI64,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Counts each refresh sent to a provider, by integration (the integration health page).
    health: Arc<HealthRecorder>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("owner", &self.owner)
            .finish()
    }
}

impl TokenManager {
    pub fn new(
        db: DatabaseConnection,
        vault: Vault,
        http: HttpClient,
        owner: String,
        health: Arc<HealthRecorder>,
    ) -> Self {
        Self {
            db,
            vault,
            http,
            owner,
            refresh_margin_ms: AtomicI64::new(DEFAULT_REFRESH_MARGIN.as_millis() as i64),
            flights: Mutex::default(),
            health,
        }
    }

    /// Refresh access tokens that expire within `margin` (or a quarter of their lifetime,
    /// when shorter), unless their OAuth app sets its own margin.
    pub fn set_refresh_margin(&self, margin: Duration) {
        self.refresh_margin_ms
            .store(margin.as_millis() as i64, Ordering::Relaxed);
    }

    /// The connection's credentials, refreshing an OAuth 2.0 token close to expiry.
    pub async fn auth(&self, tenant_id: &str, name: &str) -> Result<ConnectionAuth, TokenError> {
        let (connection, app) = self.read(tenant_id, name).await?;
        self.current_auth(&connection, app.as_ref()).await
    }

    /// Everything a step's calls need of the connection, from one read and one decryption:
    /// its credentials (an OAuth 2.0 token close to expiry refreshed first), its TLS settings
    /// (the client key opened with the credentials), the base URL its OAuth app sets, and
    /// what the provider's URL templates read.
    pub async fn resolve(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<ResolvedConnection, TokenError> {
        let (connection, app) = self.read(tenant_id, name).await?;
        let auth = self.current_auth(&connection, app.as_ref()).await?;
        let tls = connection
            .tls_options()
            .map_err(|message| TokenError::Failed {
                connection: name.to_owned(),
                message,
            })?;
        Ok(ResolvedConnection {
            auth,
            tls,
            base_url: app.and_then(|app| app.base_url),
            values: ConnectionValues {
                params: connection.info.params,
                kept: connection.credentials.kept,
            },
        })
    }

    /// After a 401 for `rejected`: a refreshed token, unless a sibling already replaced it.
    pub async fn refresh_rejected(
        &self,
        tenant_id: &str,
        name: &str,
        rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, TokenError> {
        let info = connections::get(&self.db, tenant_id, name).await?;
        if info.kind != ConnectionKind::Oauth2 {
            return Err(TokenError::Failed {
                connection: name.to_owned(),
                message: format!(
                    "the provider refused its {} credentials (HTTP 401)",
                    info.kind.as_str()
                ),
            });
        }
        self.refresh(tenant_id, name, &info.id, Some(rejected.secret()))
            .await
    }

    /// The connection with its credentials opened, and its OAuth app: one statement, one
    /// decryption.
    async fn read(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<(Connection, Option<oauth_app::Model>), TokenError> {
        let (row, app) = connections::find_with_app(&self.db, tenant_id, name)
            .await?
            .ok_or_else(|| connections::not_found(name))?;
        Ok((connections::connection(&self.vault, &row).await?, app))
    }

    /// The credentials of a connection just read, refreshing an OAuth 2.0 token close to
    /// expiry.
    async fn current_auth(
        &self,
        connection: &Connection,
        app: Option<&oauth_app::Model>,
    ) -> Result<ConnectionAuth, TokenError> {
        if connection.info.kind != ConnectionKind::Oauth2 {
            return static_auth(connection);
        }
        if let Some(token) = self.usable(connection, None, self.margin_ms(app))? {
            return Ok(oauth_credential(connection, token));
        }
        let info = &connection.info;
        self.refresh(&connection.tenant_id, &info.name, &info.id, None)
            .await
    }

    /// The refresh margin the connection's OAuth app sets, else this manager's.
    fn margin_ms(&self, app: Option<&oauth_app::Model>) -> i64 {
        app.and_then(|app| app.refresh_margin_ms)
            .unwrap_or_else(|| self.refresh_margin_ms.load(Ordering::Relaxed))
    }

    /// The stored access token when it can be used: connected, present, not expiring within
    /// the margin (see [`refresh_margin_ms`]) and not the one the provider just rejected. A
    /// connection that needs re-authorization fails fast.
    fn usable(
        &self,
        connection: &Connection,
        rejected: Option<&SecretValue>,
        margin_ms: i64,
    ) -> Result<Option<SecretValue>, TokenError> {
        if connection.info.status == ConnectionStatus::NeedsReauth {
            return Err(needs_reauth(
                connection,
                connection
                    .info
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "not authorized".into()),
            ));
        }
        let Some(token) = &connection.credentials.access_token else {
            return Ok(None);
        };
        let margin = refresh_margin_ms(margin_ms, connection.token_lifetime_ms);
        let fresh = connection
            .info
            .expires_at
            .is_none_or(|expires_at| expires_at > now_ms().saturating_add(margin));
        Ok((fresh && rejected != Some(token)).then(|| token.clone()))
    }

    fn flight(&self, connection_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(connection_id.to_owned())
            .or_default()
            .clone()
    }

    /// Refreshes the token of connection `id` (`name`) once this caller holds the in-process
    /// flight and the cross-process lease, re-reading the connection once under the lease: a
    /// sibling (in this process or another) may have refreshed while this caller waited.
    async fn refresh(
        &self,
        tenant_id: &str,
        name: &str,
        id: &str,
        rejected: Option<&SecretValue>,
    ) -> Result<ConnectionAuth, TokenError> {
        let flight = self.flight(id);
        let _in_process = flight.lock().await;
        while !connections::take_lease(&self.db, id, &self.owner, now_ms() + LEASE_MS).await? {
            tokio::time::sleep(LEASE_POLL).await;
        }
        let (connection, app) = self.read(tenant_id, name).await?;
        let outcome = self
            .refresh_leased(&connection, rejected, self.margin_ms(app.as_ref()))
            .await;
        match &outcome {
            Ok(_) => {}
            Err(TokenError::NeedsReauth { reason, .. }) => {
                tracing::warn!(message = "Token refresh refused; the connection needs re-authorization.", connection = name, %reason);
                connections::release_lease(
                    &self.db,
                    id,
                    &self.owner,
                    Some((ConnectionStatus::NeedsReauth, reason.as_str())),
                )
                .await?;
            }
            Err(TokenError::Failed { message, .. }) => {
                tracing::warn!(message = "Token refresh failed.", connection = name, error = %message);
                connections::release_lease(
                    &self.db,
                    id,
                    &self.owner,
                    Some((ConnectionStatus::Error, message.as_str())),
                )
                .await?;
            }
            Err(error) => {
                tracing::warn!(message = "Token refresh failed; the connection is kept.", connection = name, %error);
                connections::release_lease(&self.db, id, &self.owner, None).await?;
            }
        }
        outcome
    }

    /// Refreshes while holding the lease; the lease is released by the caller on failure and
    /// by the token write on success.
    async fn refresh_leased(
        &self,
        connection: &Connection,
        rejected: Option<&SecretValue>,
        margin_ms: i64,
    ) -> Result<ConnectionAuth, TokenError> {
        if let Some(token) = self.usable(connection, rejected, margin_ms)? {
            connections::release_lease(&self.db, &connection.info.id, &self.owner, None).await?;
            return Ok(oauth_credential(connection, token));
        }
        let Some(refresh_token) = connection.credentials.refresh_token.clone() else {
            return Err(needs_reauth(
                connection,
                "the access token expired and the provider gave no refresh token".into(),
            ));
        };
        let app_name = connection
            .info
            .oauth_app
            .clone()
            .unwrap_or_else(|| oauth_apps::default_name(&connection.info.integration));
        let app = oauth_apps::load(&self.db, &self.vault, &connection.tenant_id, &app_name).await?;
        let failed = |message: String| TokenError::Failed {
            connection: connection.info.name.clone(),
            message,
        };
        let values = super::endpoint_values(
            &connection.info.integration,
            &connection.info.params,
            &connection.credentials.kept,
        )
        .map_err(failed)?;
        let client = app_client(&app, None, &values).map_err(failed)?;
        let tls = connection.tls_options().map_err(failed)?;
        let endpoint = TokenEndpoint::new(&self.http, &tls, &connection.info.integration);
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_owned()))
            .request_async(&endpoint)
            .await;
        self.health.token_refresh(
            &connection.tenant_id,
            &connection.info.integration,
            chrono::Utc::now(),
            response.is_ok(),
        );
        let token = match response.map_err(classify) {
            Ok(token) => token,
            Err(TokenFailure::InvalidGrant(message)) => {
                return Err(needs_reauth(connection, message));
            }
            Err(TokenFailure::Refused(message)) => {
                return Err(TokenError::Failed {
                    connection: connection.info.name.clone(),
                    message,
                });
            }
            Err(TokenFailure::Transient(message)) => {
                return Err(TokenError::Transient {
                    connection: connection.info.name.clone(),
                    message,
                });
            }
        };
        let tokens = new_tokens(
            &token,
            Some(refresh_token),
            endpoint.kept(),
            &connection.credentials,
            &connection.info.scopes,
        );
        let access_token = tokens
            .credentials
            .access_token
            .clone()
            .unwrap_or_else(|| SecretValue::new(""));
        let written = connections::store_tokens(
            &self.db,
            &self.vault,
            &connection.tenant_id,
            &connection.info.id,
            &tokens,
            Some(&self.owner),
        )
        .await?;
        if !written {
            // The lease expired and another process took over; its tokens win, and this
            // token is still valid at the provider for this one call.
            tracing::warn!(
                message = "Refresh lease lost before the tokens were written.",
                connection = connection.info.name
            );
        }
        tracing::info!(
            message = "Token refreshed.",
            connection = connection.info.name
        );
        Ok(oauth_credential(connection, access_token))
    }
}

/// An OAuth 2.0 access token where the provider's declaration places it (Shopify's
/// `X-Shopify-Access-Token`), else `Authorization: Bearer`.
fn oauth_credential(connection: &Connection, token: SecretValue) -> ConnectionAuth {
    match provider(&connection.info.integration).and_then(|spec| spec.placement("oauth2")) {
        Some(placement) => ConnectionAuth::Placed {
            placement: placement.clone(),
            secret: token,
        },
        None => ConnectionAuth::Bearer(token),
    }
}

/// How long before expiry a token is refreshed: the configured margin, but at most a quarter
/// of the token's lifetime, so a provider issuing 30 s tokens is asked every 22.5 s rather
/// than on every call. An unknown lifetime leaves the margin as configured.
pub fn refresh_margin_ms(configured_ms: i64, lifetime_ms: Option<i64>) -> i64 {
    lifetime_ms.map_or(configured_ms, |lifetime| {
        configured_ms.min(lifetime.max(0) / 4)
    })
}

fn needs_reauth(connection: &Connection, reason: String) -> TokenError {
    TokenError::NeedsReauth {
        connection: connection.info.name.clone(),
        integration: connection.info.integration.clone(),
        reason,
    }
}

fn static_auth(connection: &Connection) -> Result<ConnectionAuth, TokenError> {
    let missing = || TokenError::Failed {
        connection: connection.info.name.clone(),
        message: "its stored credentials are incomplete".into(),
    };
    let credentials = &connection.credentials;
    Ok(match connection.info.kind {
        ConnectionKind::ApiKey => {
            let key = credentials.api_key.clone().ok_or_else(missing)?;
            let declared =
                provider(&connection.info.integration).and_then(|spec| spec.placement("api_key"));
            match (&connection.info.api_key_header, declared) {
                (None, Some(placement)) => ConnectionAuth::Placed {
                    placement: placement.clone(),
                    secret: key,
                },
                (header, _) => ConnectionAuth::ApiKey {
                    header: header
                        .clone()
                        .unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_owned()),
                    key,
                },
            }
        }
        ConnectionKind::Bearer => {
            ConnectionAuth::Bearer(credentials.access_token.clone().ok_or_else(missing)?)
        }
        ConnectionKind::Basic => ConnectionAuth::Basic {
            username: connection.info.username.clone().ok_or_else(missing)?,
            password: credentials.password.clone().ok_or_else(missing)?,
        },
        ConnectionKind::Oauth2 => return Err(missing()),
    })
}

#[async_trait]
impl ConnectionProvider for TokenManager {
    async fn resolve(
        &self,
        tenant_id: &str,
        connection: &str,
    ) -> Result<ResolvedConnection, ActionError> {
        Ok(TokenManager::resolve(self, tenant_id, connection).await?)
    }

    async fn refresh_rejected(
        &self,
        tenant_id: &str,
        connection: &str,
        rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        Ok(TokenManager::refresh_rejected(self, tenant_id, connection, rejected).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_at_most_a_quarter_of_the_lifetime() {
        assert_eq!(refresh_margin_ms(60_000, Some(30_000)), 7_500);
        assert_eq!(refresh_margin_ms(60_000, Some(3_600_000)), 60_000);
        assert_eq!(refresh_margin_ms(1_000, Some(30_000)), 1_000);
        assert_eq!(refresh_margin_ms(60_000, None), 60_000);
        assert_eq!(refresh_margin_ms(60_000, Some(0)), 0);
        assert_eq!(refresh_margin_ms(60_000, Some(-5)), 0);
    }
}
