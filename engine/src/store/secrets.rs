//! Per-tenant secrets, each value sealed by the [`Vault`] in its own envelope.
//!
//! The associated data of a secret binds its tenant, the kind `secret`, its name and the field
//! `value`: an envelope copied to another name or tenant does not decrypt. Values are written
//! and decrypted here and nowhere else; listing returns names and timestamps only.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use stepwise_integrations::{SecretValue, SecretValues};
use stepwise_workflows::SecretsRead;

use super::entities::secret;
use super::now_ms;
use crate::db::begin_write;
use crate::error::EngineError;
use crate::vault::{AadContext, Envelope, Vault};

/// Longest accepted secret name.
pub const MAX_NAME_LEN: usize = 128;

/// Largest accepted secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The record kind bound into a secret's associated data.
const KIND: &str = "secret";
/// The field bound into a secret's associated data.
const FIELD: &str = "value";

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Outcome of [`set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWritten {
    pub info: SecretInfo,
    /// False when an existing secret was replaced.
    pub created: bool,
}

/// Outcome of [`rewrap_all`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewrapReport {
    /// The master key every envelope is under now.
    pub key_id: String,
    /// Envelopes re-wrapped by this call.
    pub rewrapped: u64,
    /// Envelopes still under another key (written concurrently by a process that has not yet
    /// seen the new key); run the rotation again.
    pub remaining: u64,
}

/// Secret names are upper case, as environment variables: `[A-Z_][A-Z0-9_]*`, at most
/// [`MAX_NAME_LEN`] characters. Names are case-sensitive, so a lower-case name is refused
/// rather than silently upper-cased: `${{ secrets.NAME }}` must spell it exactly as stored.
pub fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(first) => {
            (first.is_ascii_uppercase() || first == '_')
                && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        }
        None => false,
    };
    if !valid {
        let hint = if !name.is_empty() && name.to_ascii_uppercase() != name {
            format!(" (did you mean `{}`?)", name.to_ascii_uppercase())
        } else {
            String::new()
        };
        return Err(format!(
            "invalid secret name `{name}`: use upper-case letters, digits and `_`, not starting \
             with a digit, e.g. `API_TOKEN`{hint}"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "secret name is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    Ok(())
}

fn context<'a>(tenant_id: &'a str, name: &'a str) -> AadContext<'a> {
    AadContext {
        tenant_id,
        kind: KIND,
        record: name,
        field: FIELD,
    }
}

fn envelope(row: &secret::Model) -> Envelope {
    Envelope {
        version: u8::try_from(row.envelope_version).unwrap_or(u8::MAX),
        key_id: row.key_id.clone(),
        wrapped_key: row.wrapped_key.clone(),
        nonce: row.nonce.clone(),
        ciphertext: row.ciphertext.clone(),
    }
}

fn info(row: &secret::Model) -> SecretInfo {
    SecretInfo {
        name: row.name.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

async fn find(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<secret::Model>, EngineError> {
    Ok(secret::Entity::find()
        .filter(secret::Column::TenantId.eq(tenant_id))
        .filter(secret::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// Creates the secret or replaces its value.
pub async fn set(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    name: &str,
    value: &SecretValue,
) -> Result<SecretWritten, EngineError> {
    validate_name(name).map_err(EngineError::InvalidInput)?;
    if value.is_empty() {
        return Err(EngineError::InvalidInput(
            "a secret value must not be empty".into(),
        ));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(EngineError::InvalidInput(format!(
            "a secret value may hold at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    // Sealing may call a remote key service: do it before the transaction.
    let sealed = vault
        .seal(&context(tenant_id, name), value.expose().as_bytes())
        .await?;
    let now = now_ms();
    let tx = begin_write(db).await?;
    let existing = find(&tx, tenant_id, name).await?;
    // The envelope is bound to (tenant, name), not to the row id, so the upsert may keep the
    // existing row's id and creation time.
    secret::Entity::insert(secret::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(tenant_id.to_owned()),
        name: Set(name.to_owned()),
        envelope_version: Set(i16::from(sealed.version)),
        key_id: Set(sealed.key_id),
        wrapped_key: Set(sealed.wrapped_key),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([secret::Column::TenantId, secret::Column::Name])
            .update_columns([
                secret::Column::EnvelopeVersion,
                secret::Column::KeyId,
                secret::Column::WrappedKey,
                secret::Column::Nonce,
                secret::Column::Ciphertext,
                secret::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(&tx)
    .await?;
    let row = find(&tx, tenant_id, name)
        .await?
        .ok_or_else(|| EngineError::Corrupt(format!("secret `{name}` vanished while written")))?;
    tx.commit().await?;
    Ok(SecretWritten {
        info: info(&row),
        created: existing.is_none(),
    })
}

/// Names and timestamps, by name.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<SecretInfo>, EngineError> {
    Ok(secret::Entity::find()
        .filter(secret::Column::TenantId.eq(tenant_id))
        .order_by_asc(secret::Column::Name)
        .all(db)
        .await?
        .iter()
        .map(info)
        .collect())
}

/// Deletes the secret; false when there was none.
pub async fn delete(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<bool, EngineError> {
    let result = secret::Entity::delete_many()
        .filter(secret::Column::TenantId.eq(tenant_id))
        .filter(secret::Column::Name.eq(name))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The secrets of the tenant that `read` names (every one for [`SecretsRead::All`]),
/// decrypted: a step decrypts only what its templates read. Fails as a whole, naming the
/// secret and key, when one does not decrypt: a run must not go ahead with a secret silently
/// missing.
pub async fn values(
    db: &impl ConnectionTrait,
    vault: &Vault,
    tenant_id: &str,
    read: &SecretsRead,
) -> Result<SecretValues, EngineError> {
    let query = secret::Entity::find().filter(secret::Column::TenantId.eq(tenant_id));
    let query = match read {
        SecretsRead::All => query,
        SecretsRead::Only(names) if names.is_empty() => return Ok(SecretValues::new()),
        SecretsRead::Only(names) => {
            query.filter(secret::Column::Name.is_in(names.iter().map(String::as_str)))
        }
    };
    let rows = query.all(db).await?;
    let mut values = SecretValues::new();
    for row in rows {
        let value = vault
            .open_string(&context(tenant_id, &row.name), &envelope(&row))
            .await?;
        values.insert(row.name, value);
    }
    Ok(values)
}

/// Re-wraps the data key of every secret that is not under the vault's current master key, in
/// batches of `batch_size`, one transaction per batch. Ciphertexts are not touched. An update
/// applies only if the row still holds the envelope that was read, so a concurrent `set` is
/// never overwritten. Safe to run again at any point: rows already under the current key are
/// skipped. A row whose key is missing stops the rotation with an error and changes nothing.
pub async fn rewrap_all(
    db: &DatabaseConnection,
    vault: &Vault,
    batch_size: u64,
) -> Result<RewrapReport, EngineError> {
    let key_id = vault.current_key_id().await?;
    let batch_size = batch_size.max(1);
    let mut rewrapped = 0;
    // A few passes catch rows written under an old key while an earlier pass ran.
    for _pass in 0..3 {
        let mut after: Option<String> = None;
        let mut found_any = false;
        loop {
            let mut query = secret::Entity::find()
                .filter(secret::Column::KeyId.ne(key_id.as_str()))
                .order_by_asc(secret::Column::Id)
                .limit(batch_size);
            if let Some(after) = &after {
                query = query.filter(secret::Column::Id.gt(after.as_str()));
            }
            let rows = query.all(db).await?;
            let Some(last) = rows.last() else {
                break;
            };
            found_any = true;
            after = Some(last.id.clone());
            let mut updates = Vec::with_capacity(rows.len());
            for row in &rows {
                let context = context(&row.tenant_id, &row.name);
                if let Some(wrapped) = vault.rewrap(&context, &envelope(row)).await? {
                    updates.push((row, wrapped));
                }
            }
            let tx = begin_write(db).await?;
            for (row, wrapped) in updates {
                let result = secret::Entity::update_many()
                    .col_expr(secret::Column::KeyId, Expr::value(wrapped.key_id))
                    .col_expr(secret::Column::WrappedKey, Expr::value(wrapped.bytes))
                    .filter(secret::Column::Id.eq(row.id.as_str()))
                    .filter(secret::Column::KeyId.eq(row.key_id.as_str()))
                    .filter(secret::Column::WrappedKey.eq(row.wrapped_key.clone()))
                    .exec(&tx)
                    .await?;
                rewrapped += result.rows_affected;
            }
            tx.commit().await?;
        }
        if !found_any {
            break;
        }
    }
    let remaining = remaining(db, &key_id).await?;
    Ok(RewrapReport {
        key_id,
        rewrapped,
        remaining,
    })
}

/// Secrets whose data key is not wrapped under `key_id`.
pub async fn remaining(db: &impl ConnectionTrait, key_id: &str) -> Result<u64, EngineError> {
    Ok(secret::Entity::find()
        .filter(secret::Column::KeyId.ne(key_id))
        .count(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_env_var_convention() {
        for good in ["API_TOKEN", "_X", "A1", "A", "SLACK_WEBHOOK_2"] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1ABC",
            "api_token",
            "API-TOKEN",
            "API TOKEN",
            "ÄPI",
            "A.B",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let error = validate_name("api_token").expect_err("lower case");
        assert!(error.contains("did you mean `API_TOKEN`"), "{error}");
        assert!(validate_name(&"A".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
