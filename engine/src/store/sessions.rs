//! Dashboard sessions: random tokens (only their SHA-256 stored) bound to a tenant, with an
//! expiry. Expired sessions are deleted when a new one is opened.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::entities::{dashboard_session, tenant};
use super::now_ms;
use super::tenants::{Tenant, hash_key};
use crate::error::EngineError;

const TOKEN_PREFIX: &str = "ss_";

/// Opens a session of `tenant_id` lasting `ttl_ms`; returns its token, readable only now.
pub async fn open(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    ttl_ms: i64,
) -> Result<String, EngineError> {
    let now = now_ms();
    dashboard_session::Entity::delete_many()
        .filter(dashboard_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    dashboard_session::ActiveModel {
        token_hash: Set(hash_key(&token)),
        tenant_id: Set(tenant_id.to_owned()),
        created_at: Set(now),
        expires_at: Set(now.saturating_add(ttl_ms)),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// The tenant of a live session.
pub async fn tenant(db: &impl ConnectionTrait, token: &str) -> Result<Option<Tenant>, EngineError> {
    let Some(session) = dashboard_session::Entity::find_by_id(hash_key(token))
        .filter(dashboard_session::Column::ExpiresAt.gt(now_ms()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(tenant::Entity::find_by_id(session.tenant_id)
        .one(db)
        .await?
        .map(|row| Tenant {
            id: row.id,
            name: row.name,
        }))
}

pub async fn close(db: &impl ConnectionTrait, token: &str) -> Result<(), EngineError> {
    dashboard_session::Entity::delete_by_id(hash_key(token))
        .exec(db)
        .await?;
    Ok(())
}
