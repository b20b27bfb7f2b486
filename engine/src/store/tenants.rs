//! Tenants and their API keys. Keys are random 256-bit values shown once; only their SHA-256
//! is stored, so a database leak does not leak usable keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

use super::entities::{api_key, tenant};
use super::now_ms;
use crate::error::EngineError;

const KEY_PREFIX: &str = "sw_";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
}

pub(crate) fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn new_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub async fn find_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<Tenant>, EngineError> {
    Ok(tenant::Entity::find()
        .filter(tenant::Column::Name.eq(name))
        .one(db)
        .await?
        .map(|row| Tenant {
            id: row.id,
            name: row.name,
        }))
}

pub async fn create(db: &impl ConnectionTrait, name: &str) -> Result<Tenant, EngineError> {
    if find_by_name(db, name).await?.is_some() {
        return Err(EngineError::Conflict(format!(
            "tenant `{name}` already exists"
        )));
    }
    let row = tenant::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set(name.to_owned()),
        created_at: Set(now_ms()),
    }
    .insert(db)
    .await?;
    Ok(Tenant {
        id: row.id,
        name: row.name,
    })
}

/// Issues a new API key for the tenant and returns it; this is the only time it is readable.
pub async fn issue_key(db: &impl ConnectionTrait, tenant_id: &str) -> Result<String, EngineError> {
    let key = new_key();
    api_key::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(tenant_id.to_owned()),
        key_hash: Set(hash_key(&key)),
        prefix: Set(key.chars().take(KEY_PREFIX.len() + 4).collect()),
        created_at: Set(now_ms()),
    }
    .insert(db)
    .await?;
    Ok(key)
}

pub async fn authenticate(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<Tenant>, EngineError> {
    let Some(row) = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash_key(key)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(tenant::Entity::find_by_id(row.tenant_id)
        .one(db)
        .await?
        .map(|row| Tenant {
            id: row.id,
            name: row.name,
        }))
}
