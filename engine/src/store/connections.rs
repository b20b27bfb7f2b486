//! Per-tenant connections: how actions authenticate at a provider. OAuth 2.0 connections get
//! their tokens from the authorization-code flow; API-key, bearer and basic ones are created
//! with their secret.
//!
//! Every secret field of a connection (access token, refresh token, API key, password, client
//! certificate key) is in one envelope per connection, whose associated data binds its tenant,
//! the kind `connection`, the connection's id and the field `credentials`: one data key per
//! record, and a rotated refresh token is written in the same update as its access token. Token
//! writes re-seal the whole envelope, so they carry the client key over ([`NewTokens`]); it
//! never changes after creation. The rest (status, scopes, expiry, user name, the client
//! certificate itself) stays queryable.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Expr, ExprTrait, Func, IntoCondition};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    JoinType, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use stepwise_integrations::SecretValue;
use stepwise_integrations::http::{ClientIdentity, TlsOptions, TlsVersion};
use zeroize::Zeroize;

use super::entities::{connection, oauth_app};
use super::{Sealed, now_ms, validate_slug};
use crate::db::begin_write;
use crate::error::EngineError;
use crate::vault::{AadContext, Vault};

const KIND: &str = "connection";
const FIELD: &str = "credentials";

/// Largest accepted secret field, in bytes.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// Header an API key goes in unless the connection names another.
pub const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    Oauth2,
    ApiKey,
    Bearer,
    Basic,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oauth2 => "oauth2",
            Self::ApiKey => "api_key",
            Self::Bearer => "bearer",
            Self::Basic => "basic",
        }
    }

    fn parse(text: &str) -> Result<Self, EngineError> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|_| EngineError::Corrupt(format!("unknown connection kind `{text}`")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    /// The user must (re-)authorize: never authorized, or the refresh token was refused.
    NeedsReauth,
    Error,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReauth => "needs_reauth",
            Self::Error => "error",
        }
    }

    fn parse(text: &str) -> Result<Self, EngineError> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|_| EngineError::Corrupt(format!("unknown connection status `{text}`")))
    }
}

/// A new connection, as the API and CLI submit it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    pub integration: String,
    pub kind: ConnectionKind,
    /// For `oauth2`: the tenant's OAuth app; defaults to the integration's name.
    #[serde(default)]
    pub oauth_app: Option<String>,
    /// For `api_key`.
    #[serde(default)]
    pub api_key: Option<SecretValue>,
    /// For `api_key`: the header it is sent in (default: where the provider's declaration
    /// places it, else `X-API-Key`).
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// For `bearer`.
    #[serde(default)]
    pub token: Option<SecretValue>,
    /// For `basic`.
    #[serde(default)]
    pub username: Option<String>,
    /// For `basic`.
    #[serde(default)]
    pub password: Option<SecretValue>,
    /// What a connection test requests (GET, with the connection's credentials) instead of
    /// the integration's built-in probe; the only way to test a `generic` one at the provider.
    #[serde(default)]
    pub probe_url: Option<String>,
    /// Client certificate (PEM, chain first) presented for mutual TLS, to the provider's API
    /// and, on an `oauth2` connection, to its token and revocation endpoints; with `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The client certificate's private key (PEM); sealed with the other secret fields.
    #[serde(default)]
    pub client_key: Option<SecretValue>,
    /// The lowest TLS version the provider may use: `"1.2"` or `"1.3"` (the default).
    #[serde(default)]
    pub tls_min: Option<String>,
    /// Values for the provider's declared parameters (Shopify's `shop`, Microsoft's
    /// `tenant`), which its base URL and OAuth endpoints read; checked against the
    /// declaration's patterns.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A connection as listed: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConnectionInfo {
    pub id: String,
    pub name: String,
    pub integration: String,
    pub kind: ConnectionKind,
    pub oauth_app: Option<String>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub scopes: Vec<String>,
    /// When the access token expires (epoch ms), when the provider said.
    pub expires_at: Option<i64>,
    pub username: Option<String>,
    pub api_key_header: Option<String>,
    pub probe_url: Option<String>,
    pub has_client_cert: bool,
    pub tls_min: Option<String>,
    /// The values it gave for its provider's parameters.
    pub params: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The secret fields of a connection, opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub access_token: Option<SecretValue>,
    pub refresh_token: Option<SecretValue>,
    pub api_key: Option<SecretValue>,
    pub password: Option<SecretValue>,
    /// The private key of the connection's client certificate (PEM).
    pub client_key: Option<SecretValue>,
    /// Values kept from the token answer, as the provider's declaration says (`keep`).
    pub kept: BTreeMap<String, String>,
}

/// The sealed plaintext: JSON of the present fields. Wiped on drop.
#[derive(Default, Serialize, Deserialize)]
struct StoredCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    kept: BTreeMap<String, String>,
}

impl Drop for StoredCredentials {
    fn drop(&mut self) {
        for value in [
            &mut self.access_token,
            &mut self.refresh_token,
            &mut self.api_key,
            &mut self.password,
            &mut self.client_key,
        ]
        .into_iter()
        .flatten()
        {
            value.zeroize();
        }
    }
}

/// A connection row with its credentials opened.
#[derive(Debug, Clone)]
pub struct Connection {
    pub info: ConnectionInfo,
    pub tenant_id: String,
    pub credentials: Credentials,
    /// The client certificate (PEM) presented with `credentials.client_key`.
    pub client_cert: Option<String>,
    /// Who holds the refresh lease, until when (epoch ms).
    pub refresh_lease: Option<(String, i64)>,
    /// The stored access token's lifetime (`expires_in`), when the provider stated one.
    pub token_lifetime_ms: Option<i64>,
}

impl Connection {
    /// The TLS options of every request made for this connection: its client certificate and
    /// its lowest TLS version. Errors name no key material.
    pub fn tls_options(&self) -> Result<TlsOptions, String> {
        let identity = match &self.client_cert {
            None => None,
            Some(certificate) => {
                let key = self
                    .credentials
                    .client_key
                    .as_ref()
                    .ok_or("its client key is missing")?;
                Some(ClientIdentity::new(&self.info.id, certificate, key)?)
            }
        };
        Ok(TlsOptions {
            min_version: self.info.tls_min.as_deref().and_then(TlsVersion::parse),
            identity,
        })
    }
}

/// Tokens to store after an authorization or a refresh. `credentials` replaces the sealed
/// envelope whole, so it carries the connection's client key too.
#[derive(Debug)]
pub struct NewTokens {
    pub credentials: Credentials,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    /// The access token's lifetime as the provider stated it (`expires_in`).
    pub lifetime_ms: Option<i64>,
}

fn context<'a>(tenant_id: &'a str, connection_id: &'a str) -> AadContext<'a> {
    AadContext {
        tenant_id,
        kind: KIND,
        record: connection_id,
        field: FIELD,
    }
}

fn info(row: &connection::Model) -> Result<ConnectionInfo, EngineError> {
    Ok(ConnectionInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        integration: row.integration.clone(),
        kind: ConnectionKind::parse(&row.kind)?,
        oauth_app: row.oauth_app.clone(),
        status: ConnectionStatus::parse(&row.status)?,
        status_reason: row.status_reason.clone(),
        scopes: serde_json::from_value(row.scopes.clone())?,
        expires_at: row.expires_at,
        username: row.username.clone(),
        api_key_header: row.api_key_header.clone(),
        probe_url: row.probe_url.clone(),
        has_client_cert: row.client_cert.is_some(),
        tls_min: row.tls_min.clone(),
        params: match &row.params {
            Some(params) => serde_json::from_value(params.clone())?,
            None => BTreeMap::new(),
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

async fn seal(
    vault: &Vault,
    tenant_id: &str,
    connection_id: &str,
    credentials: &Credentials,
) -> Result<Sealed, EngineError> {
    let expose = |value: &Option<SecretValue>| value.as_ref().map(|v| v.expose().to_owned());
    let stored = StoredCredentials {
        access_token: expose(&credentials.access_token),
        refresh_token: expose(&credentials.refresh_token),
        api_key: expose(&credentials.api_key),
        password: expose(&credentials.password),
        client_key: expose(&credentials.client_key),
        kept: credentials.kept.clone(),
    };
    let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&stored)?);
    Ok(Sealed::from(
        vault
            .seal(&context(tenant_id, connection_id), &plaintext)
            .await?,
    ))
}

async fn open(vault: &Vault, row: &connection::Model) -> Result<Credentials, EngineError> {
    let Some(envelope) = Sealed::envelope_of(
        row.envelope_version,
        &row.key_id,
        &row.wrapped_key,
        &row.nonce,
        &row.ciphertext,
    ) else {
        return Ok(Credentials::default());
    };
    let plaintext = vault
        .open(&context(&row.tenant_id, &row.id), &envelope)
        .await?;
    let stored: StoredCredentials = serde_json::from_slice(&plaintext).map_err(|_| {
        EngineError::Corrupt(format!(
            "credentials of connection `{}` are unreadable",
            row.name
        ))
    })?;
    let reveal = |value: &Option<String>| value.as_deref().map(SecretValue::new);
    Ok(Credentials {
        access_token: reveal(&stored.access_token),
        refresh_token: reveal(&stored.refresh_token),
        api_key: reveal(&stored.api_key),
        password: reveal(&stored.password),
        client_key: reveal(&stored.client_key),
        kept: stored.kept.clone(),
    })
}

pub(crate) async fn find(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<connection::Model>, EngineError> {
    Ok(connection::Entity::find()
        .filter(connection::Column::TenantId.eq(tenant_id))
        .filter(connection::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// The connection row and the OAuth app its calls use (the app it names, else the tenant's app
/// named after its integration; `None` when there is none), in one statement.
pub(crate) async fn find_with_app(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<(connection::Model, Option<oauth_app::Model>)>, EngineError> {
    let app_of_connection = connection::Entity::belongs_to(oauth_app::Entity)
        .from(connection::Column::TenantId)
        .to(oauth_app::Column::TenantId)
        .on_condition(|connection_table, app_table| {
            // The app a connection names, else `oauth_apps::default_name` of its integration.
            let app_name = Func::coalesce([
                Expr::col((connection_table.clone(), connection::Column::OauthApp)),
                Func::cust("REPLACE")
                    .arg(Expr::col((
                        connection_table,
                        connection::Column::Integration,
                    )))
                    .arg("_")
                    .arg("-")
                    .into(),
            ]);
            Expr::col((app_table, oauth_app::Column::Name))
                .eq(app_name)
                .into_condition()
        });
    Ok(connection::Entity::find()
        .filter(connection::Column::TenantId.eq(tenant_id))
        .filter(connection::Column::Name.eq(name))
        .join(JoinType::LeftJoin, app_of_connection.into())
        .select_also(oauth_app::Entity)
        .one(db)
        .await?)
}

pub(crate) async fn find_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<connection::Model>, EngineError> {
    Ok(connection::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?)
}

pub fn not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("connection `{name}` not found"))
}

fn required(
    value: Option<SecretValue>,
    field: &str,
    kind: ConnectionKind,
) -> Result<SecretValue, EngineError> {
    match value {
        Some(value) if !value.is_empty() && value.len() <= MAX_SECRET_BYTES => Ok(value),
        Some(_) => Err(EngineError::InvalidInput(format!(
            "`{field}` must hold 1 to {MAX_SECRET_BYTES} bytes"
        ))),
        None => Err(EngineError::InvalidInput(format!(
            "a `{}` connection needs `{field}`",
            kind.as_str()
        ))),
    }
}

fn refuse(present: bool, field: &str, kind: ConnectionKind) -> Result<(), EngineError> {
    if present {
        return Err(EngineError::InvalidInput(format!(
            "`{field}` does not apply to a `{}` connection",
            kind.as_str()
        )));
    }
    Ok(())
}

fn check_probe_url(url: &str) -> Result<(), EngineError> {
    match oauth2::url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(EngineError::InvalidInput(
            "`probe_url` must be an absolute http(s) URL".into(),
        )),
    }
}

/// Creates a connection. An `oauth2` one starts as `needs_reauth` until it is authorized; the
/// others are `connected` at once. `oauth_app_exists` says whether the tenant has the app an
/// `oauth2` connection names.
pub async fn create(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    new: NewConnection,
) -> Result<ConnectionInfo, EngineError> {
    validate_slug("connection", &new.name).map_err(EngineError::InvalidInput)?;
    let Some(spec) = stepwise_integrations::providers::provider(&new.integration) else {
        return Err(EngineError::InvalidInput(format!(
            "unknown integration `{}`; known: {}",
            new.integration,
            stepwise_integrations::providers::provider_names()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    spec.check_params(&new.params)
        .map_err(EngineError::InvalidInput)?;
    let kind = new.kind;
    let mut credentials = Credentials::default();
    let (mut username, mut api_key_header, mut oauth_app) = (None, None, None);
    match kind {
        ConnectionKind::Oauth2 => {
            refuse(new.api_key.is_some(), "api_key", kind)?;
            refuse(new.token.is_some(), "token", kind)?;
            refuse(new.password.is_some(), "password", kind)?;
            let app = new
                .oauth_app
                .clone()
                .unwrap_or_else(|| super::oauth_apps::default_name(&new.integration));
            super::oauth_apps::get(db, tenant_id, &app)
                .await
                .map_err(|error| match error {
                    EngineError::NotFound(message) => EngineError::InvalidInput(format!(
                        "{message}: create it first (POST /api/v1/oauth-apps)"
                    )),
                    other => other,
                })?;
            oauth_app = Some(app);
        }
        ConnectionKind::ApiKey => {
            credentials.api_key = Some(required(new.api_key, "api_key", kind)?);
            // Without a header of its own, the key goes where the declaration places it.
            let header = match new.api_key_header {
                None if spec.api_key.is_some() => None,
                header => Some(header.unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_owned())),
            };
            if let Some(header) = &header
                && http::HeaderName::from_bytes(header.as_bytes()).is_err()
            {
                return Err(EngineError::InvalidInput(format!(
                    "`{header}` is not a valid header name"
                )));
            }
            api_key_header = header;
        }
        ConnectionKind::Bearer => {
            credentials.access_token = Some(required(new.token, "token", kind)?);
        }
        ConnectionKind::Basic => {
            let user = new.username.unwrap_or_default();
            if user.is_empty() || user.contains(':') {
                return Err(EngineError::InvalidInput(
                    "a `basic` connection needs a `username` without `:`".into(),
                ));
            }
            username = Some(user);
            credentials.password = Some(required(new.password, "password", kind)?);
        }
    }
    if kind != ConnectionKind::Oauth2 {
        refuse(new.oauth_app.is_some(), "oauth_app", kind)?;
    }
    if let Some(url) = &new.probe_url {
        check_probe_url(url)?;
    }
    if let Some(text) = &new.tls_min
        && TlsVersion::parse(text).is_none()
    {
        return Err(EngineError::InvalidInput(
            "`tls_min` must be \"1.2\" or \"1.3\"".into(),
        ));
    }
    match (&new.client_cert, new.client_key) {
        (None, None) => {}
        (Some(certificate), Some(key)) => {
            let key = required(Some(key), "client_key", kind)?;
            ClientIdentity::validate(certificate, &key).map_err(EngineError::InvalidInput)?;
            credentials.client_key = Some(key);
        }
        _ => {
            return Err(EngineError::InvalidInput(
                "`client_cert` and `client_key` go together".into(),
            ));
        }
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (status, reason) = if kind == ConnectionKind::Oauth2 {
        (
            ConnectionStatus::NeedsReauth,
            Some("not authorized yet".to_owned()),
        )
    } else {
        (ConnectionStatus::Connected, None)
    };
    // An `oauth2` connection has no secret before its authorization unless a client key.
    let sealed = if credentials == Credentials::default() {
        Sealed::default()
    } else {
        seal(vault, tenant_id, &id, &credentials).await?
    };
    let now = now_ms();
    let tx = begin_write(db).await?;
    if find(&tx, tenant_id, &new.name).await?.is_some() {
        return Err(EngineError::Conflict(format!(
            "connection `{}` already exists",
            new.name
        )));
    }
    let row = connection::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id.to_owned()),
        name: Set(new.name),
        integration: Set(new.integration),
        kind: Set(kind.as_str().to_owned()),
        oauth_app: Set(oauth_app),
        status: Set(status.as_str().to_owned()),
        status_reason: Set(reason),
        scopes: Set(serde_json::json!([])),
        expires_at: Set(None),
        username: Set(username),
        api_key_header: Set(api_key_header),
        envelope_version: Set(sealed.version),
        key_id: Set(sealed.key_id),
        wrapped_key: Set(sealed.wrapped_key),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        refresh_lease_owner: Set(None),
        refresh_lease_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        probe_url: Set(new.probe_url),
        client_cert: Set(new.client_cert),
        tls_min: Set(new.tls_min),
        token_lifetime_ms: Set(None),
        params: Set((!new.params.is_empty())
            .then(|| serde_json::to_value(&new.params))
            .transpose()?),
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    info(&row)
}

pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<ConnectionInfo>, EngineError> {
    connection::Entity::find()
        .filter(connection::Column::TenantId.eq(tenant_id))
        .order_by_asc(connection::Column::Name)
        .all(db)
        .await?
        .iter()
        .map(info)
        .collect()
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<ConnectionInfo, EngineError> {
    info(
        &find(db, tenant_id, name)
            .await?
            .ok_or_else(|| not_found(name))?,
    )
}

/// The connection with its credentials opened.
pub async fn load(
    db: &impl ConnectionTrait,
    vault: &Vault,
    tenant_id: &str,
    name: &str,
) -> Result<Connection, EngineError> {
    let row = find(db, tenant_id, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    connection(vault, &row).await
}

pub(crate) async fn connection(
    vault: &Vault,
    row: &connection::Model,
) -> Result<Connection, EngineError> {
    Ok(Connection {
        info: info(row)?,
        tenant_id: row.tenant_id.clone(),
        credentials: open(vault, row).await?,
        client_cert: row.client_cert.clone(),
        refresh_lease: row.refresh_lease_owner.clone().zip(row.refresh_lease_until),
        token_lifetime_ms: row.token_lifetime_ms,
    })
}

/// Deletes the connection by id; false when there was none.
pub async fn delete(db: &impl ConnectionTrait, id: &str) -> Result<bool, EngineError> {
    let result = connection::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Stores new tokens and marks the connection `connected`. With `lease_owner`, only while that
/// owner still holds the refresh lease (which is released); returns whether the row changed.
pub async fn store_tokens(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    connection_id: &str,
    tokens: &NewTokens,
    lease_owner: Option<&str>,
) -> Result<bool, EngineError> {
    let sealed = seal(vault, tenant_id, connection_id, &tokens.credentials).await?;
    let mut update = connection::Entity::update_many()
        .col_expr(
            connection::Column::EnvelopeVersion,
            Expr::value(sealed.version),
        )
        .col_expr(connection::Column::KeyId, Expr::value(sealed.key_id))
        .col_expr(
            connection::Column::WrappedKey,
            Expr::value(sealed.wrapped_key),
        )
        .col_expr(connection::Column::Nonce, Expr::value(sealed.nonce))
        .col_expr(
            connection::Column::Ciphertext,
            Expr::value(sealed.ciphertext),
        )
        .col_expr(
            connection::Column::Scopes,
            Expr::value(serde_json::to_value(&tokens.scopes)?),
        )
        .col_expr(
            connection::Column::ExpiresAt,
            Expr::value(tokens.expires_at),
        )
        .col_expr(
            connection::Column::TokenLifetimeMs,
            Expr::value(tokens.lifetime_ms),
        )
        .col_expr(
            connection::Column::Status,
            Expr::value(ConnectionStatus::Connected.as_str()),
        )
        .col_expr(
            connection::Column::StatusReason,
            Expr::value(None::<String>),
        )
        .col_expr(
            connection::Column::RefreshLeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(
            connection::Column::RefreshLeaseUntil,
            Expr::value(None::<i64>),
        )
        .col_expr(connection::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(connection::Column::Id.eq(connection_id))
        .filter(connection::Column::TenantId.eq(tenant_id));
    if let Some(owner) = lease_owner {
        update = update.filter(connection::Column::RefreshLeaseOwner.eq(owner));
    }
    let tx = begin_write(db).await?;
    let result = update.exec(&tx).await?;
    tx.commit().await?;
    Ok(result.rows_affected > 0)
}

/// Sets the connection's status and its reason (a connection test's verdict).
pub async fn set_status(
    db: &DatabaseConnection,
    connection_id: &str,
    status: ConnectionStatus,
    reason: Option<&str>,
) -> Result<(), EngineError> {
    let tx = begin_write(db).await?;
    connection::Entity::update_many()
        .col_expr(connection::Column::Status, Expr::value(status.as_str()))
        .col_expr(connection::Column::StatusReason, Expr::value(reason))
        .col_expr(connection::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(connection::Column::Id.eq(connection_id))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Takes the refresh lease of the connection until `until` (epoch ms) when nobody holds an
/// unexpired one. One conditional update: of racing processes exactly one gets it.
pub async fn take_lease(
    db: &DatabaseConnection,
    connection_id: &str,
    owner: &str,
    until: i64,
) -> Result<bool, EngineError> {
    let now = now_ms();
    let tx = begin_write(db).await?;
    let result = connection::Entity::update_many()
        .col_expr(connection::Column::RefreshLeaseOwner, Expr::value(owner))
        .col_expr(connection::Column::RefreshLeaseUntil, Expr::value(until))
        .filter(connection::Column::Id.eq(connection_id))
        .filter(
            Condition::any()
                .add(connection::Column::RefreshLeaseUntil.is_null())
                .add(connection::Column::RefreshLeaseUntil.lt(now)),
        )
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(result.rows_affected > 0)
}

/// Releases the lease held by `owner`, optionally setting a status and its reason.
pub async fn release_lease(
    db: &DatabaseConnection,
    connection_id: &str,
    owner: &str,
    status: Option<(ConnectionStatus, &str)>,
) -> Result<(), EngineError> {
    let mut update = connection::Entity::update_many()
        .col_expr(
            connection::Column::RefreshLeaseOwner,
            Expr::value(None::<String>),
        )
        .col_expr(
            connection::Column::RefreshLeaseUntil,
            Expr::value(None::<i64>),
        )
        .filter(connection::Column::Id.eq(connection_id))
        .filter(connection::Column::RefreshLeaseOwner.eq(owner));
    if let Some((status, reason)) = status {
        update = update
            .col_expr(connection::Column::Status, Expr::value(status.as_str()))
            .col_expr(connection::Column::StatusReason, Expr::value(reason))
            .col_expr(connection::Column::UpdatedAt, Expr::value(now_ms()));
    }
    let tx = begin_write(db).await?;
    update.exec(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Re-wraps every connection's data key not under the current master key; returns
/// (re-wrapped, remaining).
pub async fn rewrap_all(db: &DatabaseConnection, vault: &Vault) -> Result<(u64, u64), EngineError> {
    let key_id = vault.current_key_id().await?;
    let stale = || {
        connection::Entity::find()
            .filter(connection::Column::KeyId.is_not_null())
            .filter(connection::Column::KeyId.ne(key_id.as_str()))
    };
    let mut rewrapped = 0;
    for row in stale().all(db).await? {
        let Some(envelope) = Sealed::envelope_of(
            row.envelope_version,
            &row.key_id,
            &row.wrapped_key,
            &row.nonce,
            &row.ciphertext,
        ) else {
            continue;
        };
        let Some(wrapped) = vault
            .rewrap(&context(&row.tenant_id, &row.id), &envelope)
            .await?
        else {
            continue;
        };
        // Compare-and-set on the wrapped key: a refresh that resealed meanwhile wins.
        let result = connection::Entity::update_many()
            .col_expr(connection::Column::KeyId, Expr::value(wrapped.key_id))
            .col_expr(connection::Column::WrappedKey, Expr::value(wrapped.bytes))
            .filter(connection::Column::Id.eq(row.id.as_str()))
            .filter(connection::Column::WrappedKey.eq(envelope.wrapped_key))
            .exec(db)
            .await?;
        rewrapped += result.rows_affected;
    }
    let remaining = sea_orm::PaginatorTrait::count(stale(), db).await?;
    Ok((rewrapped, remaining))
}
