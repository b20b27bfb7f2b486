//! The engine facade for OAuth apps, connections, the authorization-code flow and tokens.

use std::time::Duration;

use stepwise_integrations::ConnectionAuth;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::oauth::tokens::TokenError;
use crate::oauth::{self, CallbackError, CallbackOutcome};
use crate::store::connections::{self, ConnectionInfo, ConnectionKind, NewConnection};
use crate::store::oauth_apps::{self, NewOAuthApp, OAuthAppInfo};

/// Outcome of [`Engine::delete_connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ConnectionDeleted {
    /// True when tokens were revoked at the provider (RFC 7009).
    pub revoked: bool,
}

impl Engine {
    pub async fn create_oauth_app(
        &self,
        tenant_id: &str,
        new: NewOAuthApp,
    ) -> Result<OAuthAppInfo, EngineError> {
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
                .unwrap_or_else(|| connection.info.integration.clone());
            match oauth_apps::load(db, &self.inner.vault, tenant_id, &app_name).await {
                Ok(app) => {
                    match oauth::revoke(self.inner.services.http(), &app, &connection.credentials)
                        .await
                    {
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

    /// Refresh OAuth 2.0 access tokens that expire within `margin` (default 60 s).
    pub fn set_token_refresh_margin(&self, margin: Duration) {
        self.inner.tokens.set_refresh_margin(margin);
    }
}
