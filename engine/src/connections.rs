//! The engine facade for OAuth apps, connections, the authorization-code flow and tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stepwise_integrations::probe::{self, ProbeReport};
use stepwise_integrations::providers::ClientAuthMethod;
use stepwise_integrations::{
    ActionContext, ActionError, ActionServices, ConnectionAuth, ConnectionProvider,
    ResolvedConnection, StepInvocation,
};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::oauth::tokens::TokenError;
use crate::oauth::{self, CallbackError, CallbackOutcome};
use crate::store::connections::{
    self, ConnectionInfo, ConnectionKind, ConnectionStatus, NewConnection,
};
use crate::store::oauth_apps::{self, NewOAuthApp, OAuthAppInfo};

/// Outcome of [`Engine::test_connection`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    #[serde(flatten)]
    pub report: ProbeReport,
    /// The connection's status after the test.
    pub connection_status: ConnectionStatus,
}

/// Outcome of [`Engine::delete_connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ConnectionDeleted {
    /// True when tokens were revoked at the provider (RFC 7009).
    pub revoked: bool,
}

impl Engine {
    /// Creates an OAuth app. With an `issuer` or `discovery_url`, the endpoints it does not
    /// give explicitly are discovered from the authorization server's metadata (RFC 8414 /
    /// OpenID Discovery, see [`oauth::discovery`]) and stored with the app.
    pub async fn create_oauth_app(
        &self,
        tenant_id: &str,
        mut new: NewOAuthApp,
    ) -> Result<OAuthAppInfo, EngineError> {
        let discovery_url = new.discovery_url.take();
        if new.issuer.is_some() || discovery_url.is_some() {
            let metadata = oauth::discovery::discover(
                self.inner.services.http(),
                new.issuer.as_deref(),
                discovery_url.as_deref(),
            )
            .await?;
            new.authorize_url = new.authorize_url.or(metadata.authorization_endpoint);
            new.token_url = new.token_url.or(metadata.token_endpoint);
            new.revoke_url = new.revoke_url.or(metadata.revocation_endpoint);
            if new.auth_method.is_none() {
                new.auth_method = preferred_auth_method(
                    &new.integration,
                    metadata.token_endpoint_auth_methods_supported.as_deref(),
                );
            }
            new.issuer = Some(metadata.issuer);
        }
        oauth_apps::create(&self.inner.db.conn, &self.inner.vault, tenant_id, new).await
    }

    pub async fn list_oauth_apps(&self, tenant_id: &str) -> Result<Vec<OAuthAppInfo>, EngineError> {
        oauth_apps::list(&self.inner.db.conn, tenant_id).await
    }

    pub async fn get_oauth_app(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<OAuthAppInfo, EngineError> {
        oauth_apps::get(&self.inner.db.conn, tenant_id, name).await
    }

    pub async fn delete_oauth_app(&self, tenant_id: &str, name: &str) -> Result<(), EngineError> {
        if oauth_apps::delete(&self.inner.db.conn, tenant_id, name).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!(
                "OAuth app `{name}` not found"
            )))
        }
    }

    pub async fn create_connection(
        &self,
        tenant_id: &str,
        new: NewConnection,
    ) -> Result<ConnectionInfo, EngineError> {
        connections::create(&self.inner.db.conn, &self.inner.vault, tenant_id, new).await
    }

    pub async fn list_connections(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<ConnectionInfo>, EngineError> {
        connections::list(&self.inner.db.conn, tenant_id).await
    }

    pub async fn get_connection(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<ConnectionInfo, EngineError> {
        connections::get(&self.inner.db.conn, tenant_id, name).await
    }

    /// Deletes the connection. An OAuth 2.0 connection's tokens are revoked first when its app
    /// has a revocation endpoint; a failed revocation is logged and the connection is deleted
    /// anyway (`revoked: false`), so a provider outage cannot keep a connection alive.
    pub async fn delete_connection(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<ConnectionDeleted, EngineError> {
        let db = &self.inner.db.conn;
        let connection = connections::load(db, &self.inner.vault, tenant_id, name).await?;
        let mut revoked = false;
        if connection.info.kind == ConnectionKind::Oauth2 {
            let app_name = connection
                .info
                .oauth_app
                .clone()
                .unwrap_or_else(|| oauth_apps::default_name(&connection.info.integration));
            match oauth_apps::load(db, &self.inner.vault, tenant_id, &app_name).await {
                Ok(app) => {
                    match oauth::revoke(self.inner.services.http(), &app, &connection).await {
                        Ok(done) => revoked = done,
                        Err(error) => tracing::warn!(
                            message = "Token revocation failed; deleting the connection anyway.",
                            connection = name,
                            %error
                        ),
                    }
                }
                Err(EngineError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        connections::delete(db, &connection.info.id).await?;
        Ok(ConnectionDeleted { revoked })
    }

    /// Tests the connection with one cheap authenticated request through the integration
    /// middleware chain (see [`stepwise_integrations::probe`]). Credentials the provider
    /// refuses mark the connection `needs_reauth`, as an `invalid_grant` refresh does; a
    /// passing test marks a connection left in `error` or `needs_reauth` `connected` again.
    pub async fn test_connection(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<ConnectionTest, EngineError> {
        let db = &self.inner.db.conn;
        let connection = connections::get(db, tenant_id, name).await?;
        let credentials = Arc::new(RefusalWatch {
            inner: self.inner.tokens.clone(),
            refused: AtomicBool::new(false),
        });
        let services = ActionServices::new(self.inner.services.runtime.clone())
            .with_connections(credentials.clone());
        let ctx = ActionContext::new(
            StepInvocation {
                tenant_id: tenant_id.to_owned(),
                run_id: "connection-test".to_owned(),
                step_id: name.to_owned(),
                attempt: 1,
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                wake_at: None,
                connection: Some(name.to_owned()),
                http_retry: None,
            },
            Arc::new(services),
            CancellationToken::new(),
        );
        let mut report = probe::test_connection(
            &ctx,
            &connection.integration,
            name,
            connection.probe_url.as_deref(),
        )
        .await;
        report.credentials_rejected |= credentials.refused.load(Ordering::Relaxed);
        // Re-read: the token manager may have changed the status during the probe.
        let current = connections::get(db, tenant_id, name).await?;
        let mut status = current.status;
        if report.credentials_rejected {
            status = ConnectionStatus::NeedsReauth;
            let reason = format!("the provider refused the credentials: {}", report.message);
            connections::set_status(db, &current.id, status, Some(&reason)).await?;
        } else if report.ok && status != ConnectionStatus::Connected {
            status = ConnectionStatus::Connected;
            connections::set_status(db, &current.id, status, None).await?;
        }
        tracing::info!(
            message = "Connection tested.",
            connection = name,
            ok = report.ok,
            status = report.status,
            latency_ms = report.latency_ms,
        );
        Ok(ConnectionTest {
            report,
            connection_status: status,
        })
    }

    /// The provider URL that starts authorizing OAuth connection `name` of `integration`; the
    /// provider sends the user back to `redirect_uri`.
    pub async fn authorize_connection(
        &self,
        tenant_id: &str,
        integration: &str,
        name: &str,
        redirect_uri: &str,
    ) -> Result<String, EngineError> {
        oauth::authorize(
            &self.inner.db.conn,
            &self.inner.vault,
            tenant_id,
            integration,
            name,
            redirect_uri,
        )
        .await
    }

    /// Handles the provider's redirect back: checks and consumes `state`, exchanges the code and
    /// stores the tokens. `expected_tenant` is the caller's tenant when the request carries an
    /// API key.
    pub async fn complete_authorization(
        &self,
        expected_tenant: Option<&str>,
        state: &str,
        outcome: CallbackOutcome,
        redirect_uri: &str,
    ) -> Result<ConnectionInfo, CallbackError> {
        oauth::complete(
            &self.inner.db.conn,
            &self.inner.vault,
            self.inner.services.http(),
            expected_tenant,
            state,
            outcome,
            redirect_uri,
        )
        .await
    }

    /// The connection's current credentials (OAuth 2.0 tokens refreshed ahead of expiry), as
    /// actions get them. Never hand the result to a client.
    pub async fn connection_auth(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<ConnectionAuth, TokenError> {
        self.inner.tokens.auth(tenant_id, name).await
    }

    /// Fresh credentials after the provider rejected `rejected` with a 401.
    pub async fn refresh_connection_auth(
        &self,
        tenant_id: &str,
        name: &str,
        rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, TokenError> {
        self.inner
            .tokens
            .refresh_rejected(tenant_id, name, rejected)
            .await
    }

    /// Refresh OAuth 2.0 access tokens that expire within `margin` (default 60 s), or within a
    /// quarter of their lifetime when that is shorter; an OAuth app's `refresh_margin`
    /// replaces `margin` for its connections.
    pub fn set_token_refresh_margin(&self, margin: Duration) {
        self.inner.tokens.set_refresh_margin(margin);
    }
}

/// The client authentication method to use when the metadata lists the supported ones and
/// the integration's default is not among them; `None` keeps the default.
fn preferred_auth_method(integration: &str, supported: Option<&[String]>) -> Option<String> {
    let default = stepwise_integrations::providers::provider(integration)?.client_auth();
    let supported = supported?;
    let listed = |method: ClientAuthMethod| supported.iter().any(|m| m == method.as_str());
    if listed(default) {
        return None;
    }
    [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
    ]
    .into_iter()
    .find(|&method| listed(method))
    .map(|method| method.as_str().to_owned())
}

/// The token manager, noting whether it refused to replace credentials the provider rejected
/// with a 401 (an API key, bearer or basic connection cannot be refreshed; an OAuth 2.0
/// refresh may be refused): a connection test reports that as revoked credentials.
struct RefusalWatch {
    inner: Arc<crate::oauth::tokens::TokenManager>,
    refused: AtomicBool,
}

#[async_trait]
impl ConnectionProvider for RefusalWatch {
    async fn resolve(
        &self,
        tenant_id: &str,
        connection: &str,
    ) -> Result<ResolvedConnection, ActionError> {
        ConnectionProvider::resolve(self.inner.as_ref(), tenant_id, connection).await
    }

    async fn refresh_rejected(
        &self,
        tenant_id: &str,
        connection: &str,
        rejected: &ConnectionAuth,
    ) -> Result<ConnectionAuth, ActionError> {
        let result = ConnectionProvider::refresh_rejected(
            self.inner.as_ref(),
            tenant_id,
            connection,
            rejected,
        )
        .await;
        if result.as_ref().is_err_and(|error| !error.is_retryable()) {
            self.refused.store(true, Ordering::Relaxed);
        }
        result
    }
}
