//! Per-tenant OAuth apps: a client id, a sealed client secret, scopes, the client
//! authentication method and endpoint overrides of the integration's provider spec.
//!
//! The client secret's associated data binds its tenant, the kind `oauth_app`, the app's id and
//! the field `client_secret`. Listing never returns the secret; only the OAuth flow and the
//! token manager open it.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use stepwise_integrations::SecretValue;
use stepwise_integrations::providers::{ClientAuthMethod, OAuth2Spec, provider};

use super::entities::oauth_app;
use super::{Sealed, now_ms, validate_slug};
use crate::db::begin_write;
use crate::error::EngineError;
use crate::vault::{AadContext, Vault};

const KIND: &str = "oauth_app";
const FIELD: &str = "client_secret";

/// The OAuth app a connection uses when it names none: the one named after its integration,
/// with `_` spelled `-` as app names are (`google_sheets` → `google-sheets`).
pub fn default_name(integration: &str) -> String {
    integration.replace('_', "-")
}

/// Largest accepted client secret, in bytes.
pub const MAX_SECRET_BYTES: usize = 4096;

/// A new OAuth app, as the API and CLI submit it. `name` defaults to the integration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOAuthApp {
    #[serde(default)]
    pub name: Option<String>,
    pub integration: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretValue>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `client_secret_basic` (or `basic`) or `client_secret_post` (or `post`); defaults to
    /// the provider's.
    #[serde(default)]
    pub auth_method: Option<String>,
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub revoke_url: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    /// The authorization server's issuer identifier: endpoints not given are discovered from
    /// its RFC 8414 / OpenID metadata when the app is created.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The metadata document's URL, when it is not at the issuer's well-known locations.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// How long before an access token expires it is refreshed (`30s`, `5m`; at most 24 h),
    /// instead of the engine's margin (60 s). Never more than a quarter of the token's lifetime.
    #[serde(default)]
    #[schema(example = "30s")]
    pub refresh_margin: Option<String>,
}

/// An app as listed: effective endpoints (overrides, else the provider's), never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OAuthAppInfo {
    pub id: String,
    pub name: String,
    pub integration: String,
    pub client_id: String,
    pub has_client_secret: bool,
    pub auth_method: ClientAuthMethod,
    pub scopes: Vec<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub base_url: Option<String>,
    /// Set when the endpoints were discovered from the issuer's metadata.
    pub issuer: Option<String>,
    /// The app's own refresh margin (`30s`), when it has one.
    pub refresh_margin: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An app with its client secret opened, for the OAuth flow and token refreshes.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub info: OAuthAppInfo,
    pub client_secret: Option<SecretValue>,
}

fn context<'a>(tenant_id: &'a str, app_id: &'a str) -> AadContext<'a> {
    AadContext {
        tenant_id,
        kind: KIND,
        record: app_id,
        field: FIELD,
    }
}

fn check_url(field: &str, url: &Option<String>) -> Result<(), EngineError> {
    let Some(url) = url else { return Ok(()) };
    match oauth2::url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(EngineError::InvalidInput(format!(
            "`{field}` must be an absolute http(s) URL"
        ))),
    }
}

fn info(row: &oauth_app::Model) -> Result<OAuthAppInfo, EngineError> {
    let spec = provider(&row.integration);
    let oauth = spec.and_then(|spec| spec.oauth2.as_ref());
    let default = |pick: fn(&OAuth2Spec) -> &Option<String>| oauth.and_then(|o| pick(o).clone());
    Ok(OAuthAppInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        integration: row.integration.clone(),
        client_id: row.client_id.clone(),
        has_client_secret: row.ciphertext.is_some(),
        auth_method: ClientAuthMethod::parse(&row.auth_method).ok_or_else(|| {
            EngineError::Corrupt(format!("unknown auth method `{}`", row.auth_method))
        })?,
        scopes: serde_json::from_value(row.scopes.clone())?,
        authorize_url: row
            .authorize_url
            .clone()
            .or_else(|| default(|o| &o.authorize_url)),
        token_url: row.token_url.clone().or_else(|| default(|o| &o.token_url)),
        revoke_url: row
            .revoke_url
            .clone()
            .or_else(|| default(|o| &o.revoke_url)),
        base_url: row
            .base_url
            .clone()
            .or_else(|| spec.and_then(|spec| spec.base_url.clone())),
        issuer: row.issuer.clone(),
        refresh_margin: row.refresh_margin_ms.map(|ms| {
            humantime::format_duration(std::time::Duration::from_millis(ms.unsigned_abs()))
                .to_string()
        }),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

async fn find(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<oauth_app::Model>, EngineError> {
    Ok(oauth_app::Entity::find()
        .filter(oauth_app::Column::TenantId.eq(tenant_id))
        .filter(oauth_app::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// Largest refresh margin an app may set.
const MAX_REFRESH_MARGIN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `refresh_margin` (`30s`, `5m`) in milliseconds.
fn parse_refresh_margin(text: &str) -> Result<i64, EngineError> {
    let margin = humantime::parse_duration(text).map_err(|error| {
        EngineError::InvalidInput(format!(
            "invalid `refresh_margin` `{text}` ({error}); e.g. `30s`"
        ))
    })?;
    if margin > MAX_REFRESH_MARGIN {
        return Err(EngineError::InvalidInput(format!(
            "`refresh_margin` `{text}` is longer than 24h"
        )));
    }
    Ok(margin.as_millis() as i64)
}

/// The app's own refresh margin in milliseconds, if it has one; `None` also when there is
/// no such app.
pub async fn refresh_margin_ms(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<i64>, EngineError> {
    Ok(find(db, tenant_id, name)
        .await?
        .and_then(|row| row.refresh_margin_ms))
}

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("OAuth app `{name}` not found"))
}

/// Creates an app; [`EngineError::Conflict`] when the tenant has one of that name. Endpoints
/// are stored as given: `Engine::create_oauth_app` fills them from the issuer's metadata
/// first (`discovery_url` is read only there).
pub async fn create(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    new: NewOAuthApp,
) -> Result<OAuthAppInfo, EngineError> {
    let spec = provider(&new.integration).ok_or_else(|| {
        EngineError::InvalidInput(format!(
            "unknown integration `{}`; known: {}",
            new.integration,
            stepwise_integrations::providers::provider_names()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let name = new
        .name
        .clone()
        .unwrap_or_else(|| default_name(&new.integration));
    validate_slug("OAuth app", &name).map_err(EngineError::InvalidInput)?;

    if new.client_id.trim().is_empty() {
        return Err(EngineError::InvalidInput(
            "`client_id` must not be empty".into(),
        ));
    }
    let auth_method = match &new.auth_method {
        Some(text) => ClientAuthMethod::parse(text).ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "unknown auth method `{text}`: use client_secret_basic or client_secret_post"
            ))
        })?,
        None => spec.client_auth(),
    };
    for (field, url) in [
        ("authorize_url", &new.authorize_url),
        ("token_url", &new.token_url),
        ("revoke_url", &new.revoke_url),
        ("base_url", &new.base_url),
    ] {
        check_url(field, url)?;
    }
    let defaults = spec.oauth2.as_ref();
    if new.authorize_url.is_none() && defaults.is_none_or(|o| o.authorize_url.is_none())
        || new.token_url.is_none() && defaults.is_none_or(|o| o.token_url.is_none())
    {
        return Err(EngineError::InvalidInput(format!(
            "integration `{}` has no default endpoints: set `authorize_url` and `token_url`",
            spec.name
        )));
    }
    if new
        .client_secret
        .as_ref()
        .is_some_and(|secret| secret.is_empty() || secret.len() > MAX_SECRET_BYTES)
    {
        return Err(EngineError::InvalidInput(format!(
            "`client_secret` must hold 1 to {MAX_SECRET_BYTES} bytes"
        )));
    }
    let refresh_margin_ms = new
        .refresh_margin
        .as_deref()
        .map(parse_refresh_margin)
        .transpose()?;
    let id = uuid::Uuid::now_v7().to_string();
    let sealed = match &new.client_secret {
        Some(secret) => Some(Sealed::from(
            vault
                .seal(&context(tenant_id, &id), secret.expose().as_bytes())
                .await?,
        )),
        None => None,
    };
    let sealed = sealed.unwrap_or_default();
    let now = now_ms();
    let tx = begin_write(db).await?;
    if find(&tx, tenant_id, &name).await?.is_some() {
        return Err(EngineError::Conflict(format!(
            "OAuth app `{name}` already exists"
        )));
    }
    let row = oauth_app::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id.to_owned()),
        name: Set(name),
        integration: Set(new.integration),
        client_id: Set(new.client_id),
        auth_method: Set(auth_method.as_str().to_owned()),
        scopes: Set(serde_json::to_value(&new.scopes)?),
        authorize_url: Set(new.authorize_url),
        token_url: Set(new.token_url),
        revoke_url: Set(new.revoke_url),
        base_url: Set(new.base_url),
        envelope_version: Set(sealed.version),
        key_id: Set(sealed.key_id),
        wrapped_key: Set(sealed.wrapped_key),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        created_at: Set(now),
        updated_at: Set(now),
        issuer: Set(new.issuer),
        refresh_margin_ms: Set(refresh_margin_ms),
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    info(&row)
}

pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<OAuthAppInfo>, EngineError> {
    oauth_app::Entity::find()
        .filter(oauth_app::Column::TenantId.eq(tenant_id))
        .order_by_asc(oauth_app::Column::Name)
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
) -> Result<OAuthAppInfo, EngineError> {
    info(
        &find(db, tenant_id, name)
            .await?
            .ok_or_else(|| not_found(name))?,
    )
}

/// The app with its client secret opened.
pub async fn load(
    db: &impl ConnectionTrait,
    vault: &Vault,
    tenant_id: &str,
    name: &str,
) -> Result<OAuthApp, EngineError> {
    let row = find(db, tenant_id, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    let client_secret = match Sealed::envelope_of(
        row.envelope_version,
        &row.key_id,
        &row.wrapped_key,
        &row.nonce,
        &row.ciphertext,
    ) {
        Some(envelope) => Some(
            vault
                .open_string(&context(tenant_id, &row.id), &envelope)
                .await?,
        ),
        None => None,
    };
    Ok(OAuthApp {
        info: info(&row)?,
        client_secret,
    })
}

/// Deletes the app; false when there was none.
pub async fn delete(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<bool, EngineError> {
    let result = oauth_app::Entity::delete_many()
        .filter(oauth_app::Column::TenantId.eq(tenant_id))
        .filter(oauth_app::Column::Name.eq(name))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Re-wraps every client secret not under `key_id`; returns (re-wrapped, remaining).
pub async fn rewrap_all(db: &DatabaseConnection, vault: &Vault) -> Result<(u64, u64), EngineError> {
    let key_id = vault.current_key_id().await?;
    let stale = || {
        oauth_app::Entity::find()
            .filter(oauth_app::Column::KeyId.is_not_null())
            .filter(oauth_app::Column::KeyId.ne(key_id.as_str()))
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
        let result = oauth_app::Entity::update_many()
            .col_expr(
                oauth_app::Column::KeyId,
                sea_orm::sea_query::Expr::value(wrapped.key_id),
            )
            .col_expr(
                oauth_app::Column::WrappedKey,
                sea_orm::sea_query::Expr::value(wrapped.bytes),
            )
            .filter(oauth_app::Column::Id.eq(row.id.as_str()))
            .filter(oauth_app::Column::KeyId.eq(envelope.key_id.as_str()))
            .exec(db)
            .await?;
        rewrapped += result.rows_affected;
    }
    let remaining = sea_orm::PaginatorTrait::count(stale(), db).await?;
    Ok((rewrapped, remaining))
}
