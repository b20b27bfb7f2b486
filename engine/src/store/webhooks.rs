//! Webhook sources (signing scheme plus sealed signing secrets), accepted deliveries and the
//! short log of rejected ones.
//!
//! A signing secret is sealed by the [`Vault`] with associated data binding its tenant, the
//! kind `webhook_source`, the source's id and the field `signing_secret`. The previous secret
//! of a rotation keeps the same binding, so rotating moves the current envelope to the
//! `previous_*` columns without decrypting it.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::Value;
use stepwise_integrations::SecretValue;
use stepwise_integrations::webhooks::{SigningSecret, WebhookScheme};

use super::entities::{webhook_delivery, webhook_rejection, webhook_source};
use super::now_ms;
use super::runs::Page;
use crate::db::begin_write;
use crate::error::EngineError;
use crate::vault::{AadContext, Envelope, Vault};

/// Longest accepted source name.
pub const MAX_NAME_LEN: usize = 64;

/// Largest accepted signing secret, in bytes.
pub const MAX_SECRET_BYTES: usize = 4096;

/// Rejections kept per source; older ones are pruned when a new one is recorded.
pub const KEPT_REJECTIONS: u64 = 100;

const KIND: &str = "webhook_source";
const FIELD: &str = "signing_secret";

/// A source as listed: never its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// The scheme's settings (for `generic`: header names, algorithm, ...); no secret.
    pub scheme: WebhookScheme,
    /// When a rotated-out secret stops verifying (epoch ms), while one is kept.
    pub previous_valid_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A refused delivery, as the rejection log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RejectionInfo {
    pub id: String,
    pub received_at: i64,
    /// The stable reason code (`signature_mismatch`, `stale_timestamp`, ...).
    pub code: String,
    pub message: String,
    /// The request headers without signature, authorization or cookie headers.
    pub headers: Value,
}

/// An accepted delivery, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryInfo {
    pub id: String,
    /// The provider's (or the `Idempotency-Key`) delivery id, when the delivery had one.
    pub delivery_id: Option<String>,
    pub event_type: Option<String>,
    pub received_at: i64,
    /// The runs it started.
    pub run_ids: Vec<String>,
    /// Redelivered copies answered as duplicates (they started nothing).
    pub duplicates: i32,
    pub last_duplicate_at: Option<i64>,
}

/// Most deliveries one page lists.
pub const MAX_DELIVERY_PAGE: u64 = 100;

/// A stored source with its sealed secrets, for verification.
#[derive(Debug, Clone)]
pub struct Source {
    pub info: SourceInfo,
    pub tenant_id: String,
    row: webhook_source::Model,
}

/// Source names are `[a-z0-9-]+`, at most [`MAX_NAME_LEN`] characters, as workflow names.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "invalid source name `{name}`: use lower-case letters, digits and `-`, e.g. `acme-stripe`"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "source name is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    Ok(())
}

fn check_secret(scheme: &WebhookScheme, secret: &SecretValue) -> Result<(), EngineError> {
    if secret.len() > MAX_SECRET_BYTES {
        return Err(EngineError::InvalidInput(format!(
            "a signing secret may hold at most {MAX_SECRET_BYTES} bytes"
        )));
    }
    scheme
        .check_secret(secret.expose().as_bytes())
        .map_err(|reason| EngineError::InvalidInput(format!("unusable signing secret: {reason}")))
}

fn context<'a>(tenant_id: &'a str, source_id: &'a str) -> AadContext<'a> {
    AadContext {
        tenant_id,
        kind: KIND,
        record: source_id,
        field: FIELD,
    }
}

fn info(row: &webhook_source::Model) -> Result<SourceInfo, EngineError> {
    Ok(SourceInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        provider: row.provider.clone(),
        scheme: serde_json::from_value(row.scheme.clone())?,
        previous_valid_until: row
            .previous_ciphertext
            .as_ref()
            .and(row.previous_valid_until),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn source(row: webhook_source::Model) -> Result<Source, EngineError> {
    Ok(Source {
        info: info(&row)?,
        tenant_id: row.tenant_id.clone(),
        row,
    })
}

async fn find_by_name(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<webhook_source::Model>, EngineError> {
    Ok(webhook_source::Entity::find()
        .filter(webhook_source::Column::TenantId.eq(tenant_id))
        .filter(webhook_source::Column::Name.eq(name))
        .one(db)
        .await?)
}

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("source `{name}` not found"))
}

/// Creates a source; [`EngineError::Conflict`] when the tenant has one of that name.
pub async fn create(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    name: &str,
    scheme: &WebhookScheme,
    secret: &SecretValue,
) -> Result<SourceInfo, EngineError> {
    validate_name(name).map_err(EngineError::InvalidInput)?;
    scheme.validate().map_err(EngineError::InvalidInput)?;
    check_secret(scheme, secret)?;
    let id = uuid::Uuid::now_v7().to_string();
    let sealed = vault
        .seal(&context(tenant_id, &id), secret.expose().as_bytes())
        .await?;
    let now = now_ms();
    let tx = begin_write(db).await?;
    if find_by_name(&tx, tenant_id, name).await?.is_some() {
        return Err(EngineError::Conflict(format!(
            "source `{name}` already exists"
        )));
    }
    let row = webhook_source::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id.to_owned()),
        name: Set(name.to_owned()),
        provider: Set(scheme.provider().to_owned()),
        scheme: Set(serde_json::to_value(scheme)?),
        envelope_version: Set(i16::from(sealed.version)),
        key_id: Set(sealed.key_id),
        wrapped_key: Set(sealed.wrapped_key),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        previous_envelope_version: Set(None),
        previous_key_id: Set(None),
        previous_wrapped_key: Set(None),
        previous_nonce: Set(None),
        previous_ciphertext: Set(None),
        previous_valid_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    info(&row)
}

/// Replaces the signing secret; the current one keeps verifying until `previous_valid_until`
/// (epoch ms; `None` drops it at once).
pub async fn rotate(
    db: &DatabaseConnection,
    vault: &Vault,
    tenant_id: &str,
    name: &str,
    secret: &SecretValue,
    previous_valid_until: Option<i64>,
) -> Result<SourceInfo, EngineError> {
    let row = find_by_name(db, tenant_id, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    let scheme: WebhookScheme = serde_json::from_value(row.scheme.clone())?;
    check_secret(&scheme, secret)?;
    let sealed = vault
        .seal(&context(tenant_id, &row.id), secret.expose().as_bytes())
        .await?;
    let tx = begin_write(db).await?;
    let keep = previous_valid_until.is_some();
    let result = webhook_source::Entity::update_many()
        .col_expr(
            webhook_source::Column::PreviousEnvelopeVersion,
            Expr::value(keep.then_some(row.envelope_version)),
        )
        .col_expr(
            webhook_source::Column::PreviousKeyId,
            Expr::value(keep.then(|| row.key_id.clone())),
        )
        .col_expr(
            webhook_source::Column::PreviousWrappedKey,
            Expr::value(keep.then(|| row.wrapped_key.clone())),
        )
        .col_expr(
            webhook_source::Column::PreviousNonce,
            Expr::value(keep.then(|| row.nonce.clone())),
        )
        .col_expr(
            webhook_source::Column::PreviousCiphertext,
            Expr::value(keep.then(|| row.ciphertext.clone())),
        )
        .col_expr(
            webhook_source::Column::PreviousValidUntil,
            Expr::value(previous_valid_until),
        )
        .col_expr(
            webhook_source::Column::EnvelopeVersion,
            Expr::value(i16::from(sealed.version)),
        )
        .col_expr(webhook_source::Column::KeyId, Expr::value(sealed.key_id))
        .col_expr(
            webhook_source::Column::WrappedKey,
            Expr::value(sealed.wrapped_key),
        )
        .col_expr(webhook_source::Column::Nonce, Expr::value(sealed.nonce))
        .col_expr(
            webhook_source::Column::Ciphertext,
            Expr::value(sealed.ciphertext),
        )
        .col_expr(webhook_source::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(webhook_source::Column::Id.eq(row.id.as_str()))
        // Compare-and-set: a concurrent rotation is not silently overwritten.
        .filter(webhook_source::Column::Ciphertext.eq(row.ciphertext.clone()))
        .exec(&tx)
        .await?;
    if result.rows_affected == 0 {
        return Err(EngineError::Conflict(format!(
            "source `{name}` changed while its secret was rotated; try again"
        )));
    }
    let row = webhook_source::Entity::find_by_id(row.id.clone())
        .one(&tx)
        .await?
        .ok_or_else(|| not_found(name))?;
    tx.commit().await?;
    info(&row)
}

/// The tenant's sources, by name.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<SourceInfo>, EngineError> {
    webhook_source::Entity::find()
        .filter(webhook_source::Column::TenantId.eq(tenant_id))
        .order_by_asc(webhook_source::Column::Name)
        .all(db)
        .await?
        .iter()
        .map(info)
        .collect()
}

/// Deletes the source with its deliveries and rejections; false when there was none.
pub async fn delete(
    db: &DatabaseConnection,
    tenant_id: &str,
    name: &str,
) -> Result<bool, EngineError> {
    let tx = begin_write(db).await?;
    let Some(row) = find_by_name(&tx, tenant_id, name).await? else {
        return Ok(false);
    };
    // Explicit rather than relying on ON DELETE CASCADE (SQLite needs foreign_keys on).
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::SourceId.eq(row.id.as_str()))
        .exec(&tx)
        .await?;
    webhook_rejection::Entity::delete_many()
        .filter(webhook_rejection::Column::SourceId.eq(row.id.as_str()))
        .exec(&tx)
        .await?;
    webhook_source::Entity::delete_by_id(row.id.clone())
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// A source by its id (the `{source}` of the ingest URL), any tenant.
pub async fn find_by_id(
    db: &impl ConnectionTrait,
    source_id: &str,
) -> Result<Option<Source>, EngineError> {
    webhook_source::Entity::find_by_id(source_id.to_owned())
        .one(db)
        .await?
        .map(source)
        .transpose()
}

/// The source's signing secrets, decrypted: the current one, then a previous one that has
/// not expired yet (at `now_ms`).
pub async fn signing_secrets(
    vault: &Vault,
    source: &Source,
    now_ms: i64,
) -> Result<Vec<SigningSecret>, EngineError> {
    let row = &source.row;
    let context = context(&row.tenant_id, &row.id);
    let current = Envelope {
        version: u8::try_from(row.envelope_version).unwrap_or(u8::MAX),
        key_id: row.key_id.clone(),
        wrapped_key: row.wrapped_key.clone(),
        nonce: row.nonce.clone(),
        ciphertext: row.ciphertext.clone(),
    };
    let mut secrets = vec![SigningSecret::new(
        vault.open(&context, &current).await?.to_vec(),
    )];
    if let (
        Some(version),
        Some(key_id),
        Some(wrapped_key),
        Some(nonce),
        Some(ciphertext),
        Some(until),
    ) = (
        row.previous_envelope_version,
        &row.previous_key_id,
        &row.previous_wrapped_key,
        &row.previous_nonce,
        &row.previous_ciphertext,
        row.previous_valid_until,
    ) && until >= now_ms
    {
        let previous = Envelope {
            version: u8::try_from(version).unwrap_or(u8::MAX),
            key_id: key_id.clone(),
            wrapped_key: wrapped_key.clone(),
            nonce: nonce.clone(),
            ciphertext: ciphertext.clone(),
        };
        let until = chrono::DateTime::from_timestamp_millis(until).unwrap_or_default();
        secrets.push(
            SigningSecret::new(vault.open(&context, &previous).await?.to_vec()).valid_until(until),
        );
    }
    Ok(secrets)
}

/// Records a refused delivery and prunes the source's log to the [`KEPT_REJECTIONS`] newest.
pub async fn record_rejection(
    db: &DatabaseConnection,
    source: &Source,
    code: &str,
    message: &str,
    headers: Value,
) -> Result<(), EngineError> {
    let tx = begin_write(db).await?;
    webhook_rejection::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(source.tenant_id.clone()),
        source_id: Set(source.info.id.clone()),
        received_at: Set(now_ms()),
        code: Set(code.to_owned()),
        message: Set(message.to_owned()),
        headers: Set(headers),
    }
    .insert(&tx)
    .await?;
    let oldest_kept: Option<String> = webhook_rejection::Entity::find()
        .select_only()
        .column(webhook_rejection::Column::Id)
        .filter(webhook_rejection::Column::SourceId.eq(source.info.id.as_str()))
        .order_by_desc(webhook_rejection::Column::Id)
        .offset(KEPT_REJECTIONS - 1)
        .limit(1)
        .into_tuple()
        .one(&tx)
        .await?;
    if let Some(oldest_kept) = oldest_kept {
        webhook_rejection::Entity::delete_many()
            .filter(webhook_rejection::Column::SourceId.eq(source.info.id.as_str()))
            .filter(webhook_rejection::Column::Id.lt(oldest_kept))
            .exec(&tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The source's recent rejections, newest first.
pub async fn rejections(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Vec<RejectionInfo>, EngineError> {
    let source = find_by_name(db, tenant_id, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    Ok(webhook_rejection::Entity::find()
        .filter(webhook_rejection::Column::SourceId.eq(source.id))
        .order_by_desc(webhook_rejection::Column::Id)
        .limit(KEPT_REJECTIONS)
        .all(db)
        .await?
        .into_iter()
        .map(|row| RejectionInfo {
            id: row.id,
            received_at: row.received_at,
            code: row.code,
            message: row.message,
            headers: row.headers,
        })
        .collect())
}

/// Re-wraps the data keys of every source envelope (current and previous secret) that is not
/// under the vault's current master key; one transaction per source, compare-and-set on the
/// envelope that was read. Returns (envelopes re-wrapped, sources still under another key).
pub async fn rewrap_all(db: &DatabaseConnection, vault: &Vault) -> Result<(u64, u64), EngineError> {
    let key_id = vault.current_key_id().await?;
    let stale = || {
        webhook_source::Entity::find().filter(
            sea_orm::Condition::any()
                .add(webhook_source::Column::KeyId.ne(key_id.as_str()))
                .add(webhook_source::Column::PreviousKeyId.ne(key_id.as_str())),
        )
    };
    let mut rewrapped = 0;
    for row in stale().all(db).await? {
        let context = context(&row.tenant_id, &row.id);
        let current = vault
            .rewrap(
                &context,
                &Envelope {
                    version: u8::try_from(row.envelope_version).unwrap_or(u8::MAX),
                    key_id: row.key_id.clone(),
                    wrapped_key: row.wrapped_key.clone(),
                    nonce: row.nonce.clone(),
                    ciphertext: row.ciphertext.clone(),
                },
            )
            .await?;
        let previous = match (
            row.previous_envelope_version,
            &row.previous_key_id,
            &row.previous_wrapped_key,
            &row.previous_nonce,
            &row.previous_ciphertext,
        ) {
            (Some(version), Some(key_id), Some(wrapped_key), Some(nonce), Some(ciphertext)) => {
                vault
                    .rewrap(
                        &context,
                        &Envelope {
                            version: u8::try_from(version).unwrap_or(u8::MAX),
                            key_id: key_id.clone(),
                            wrapped_key: wrapped_key.clone(),
                            nonce: nonce.clone(),
                            ciphertext: ciphertext.clone(),
                        },
                    )
                    .await?
            }
            _ => None,
        };
        if current.is_none() && previous.is_none() {
            continue;
        }
        let mut update = webhook_source::Entity::update_many()
            .filter(webhook_source::Column::Id.eq(row.id.as_str()))
            .filter(webhook_source::Column::Ciphertext.eq(row.ciphertext.clone()))
            .filter(webhook_source::Column::WrappedKey.eq(row.wrapped_key.clone()));
        let mut count = 0;
        if let Some(wrapped) = current {
            update = update
                .col_expr(webhook_source::Column::KeyId, Expr::value(wrapped.key_id))
                .col_expr(
                    webhook_source::Column::WrappedKey,
                    Expr::value(wrapped.bytes),
                );
            count += 1;
        }
        if let Some(wrapped) = previous {
            update = update
                .col_expr(
                    webhook_source::Column::PreviousKeyId,
                    Expr::value(wrapped.key_id),
                )
                .col_expr(
                    webhook_source::Column::PreviousWrappedKey,
                    Expr::value(wrapped.bytes),
                );
            count += 1;
        }
        let tx = begin_write(db).await?;
        if update.exec(&tx).await?.rows_affected > 0 {
            rewrapped += count;
        }
        tx.commit().await?;
    }
    let remaining = stale().all(db).await?.len() as u64;
    Ok((rewrapped, remaining))
}

/// A new accepted delivery row.
pub struct NewDelivery<'a> {
    pub source: &'a Source,
    pub delivery_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// The runs the delivery starts.
    pub run_ids: &'a [String],
}

/// Inserts the delivery; false when a delivery with the same id already exists for the source
/// (the unique index decides, also between racing transactions).
pub async fn insert_delivery(
    tx: &DatabaseTransaction,
    new: NewDelivery<'_>,
) -> Result<bool, EngineError> {
    let inserted = webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(new.source.tenant_id.clone()),
        source_id: Set(new.source.info.id.clone()),
        delivery_id: Set(new.delivery_id.map(str::to_owned)),
        event_type: Set(new.event_type.map(str::to_owned)),
        received_at: Set(now_ms()),
        run_ids: Set(serde_json::to_value(new.run_ids)?),
        duplicates: Set(0),
        last_duplicate_at: Set(None),
    })
    .on_conflict(
        OnConflict::columns([
            webhook_delivery::Column::SourceId,
            webhook_delivery::Column::DeliveryId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(tx)
    .await?;
    Ok(inserted > 0)
}

/// The runs an earlier delivery with this id started.
pub async fn delivery_runs(
    db: &impl ConnectionTrait,
    source_id: &str,
    delivery_id: &str,
) -> Result<Vec<String>, EngineError> {
    let row = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::SourceId.eq(source_id))
        .filter(webhook_delivery::Column::DeliveryId.eq(delivery_id))
        .one(db)
        .await?
        .ok_or_else(|| {
            EngineError::Corrupt(format!(
                "delivery `{delivery_id}` vanished after a conflict"
            ))
        })?;
    Ok(serde_json::from_value(row.run_ids)?)
}

/// Counts a redelivered copy on the delivery's row. A transaction of its own, after the
/// copy was answered: taking the row lock inside the shared start transaction could make two
/// batches with copies of the same deliveries wait for each other.
pub async fn count_duplicate(
    db: &DatabaseConnection,
    source_id: &str,
    delivery_id: &str,
) -> Result<(), EngineError> {
    let tx = begin_write(db).await?;
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::Duplicates,
            Expr::col(webhook_delivery::Column::Duplicates).add(1),
        )
        .col_expr(
            webhook_delivery::Column::LastDuplicateAt,
            Expr::value(now_ms()),
        )
        .filter(webhook_delivery::Column::SourceId.eq(source_id))
        .filter(webhook_delivery::Column::DeliveryId.eq(delivery_id))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The source's accepted deliveries, newest first, in pages of `limit` (1 to
/// [`MAX_DELIVERY_PAGE`]); `cursor` is the previous page's `next_cursor` (a delivery row id:
/// UUIDv7, so id order is arrival order).
pub async fn deliveries(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
    cursor: Option<&str>,
    limit: u64,
) -> Result<Page<DeliveryInfo>, EngineError> {
    let source = find_by_name(db, tenant_id, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    let limit = limit.clamp(1, MAX_DELIVERY_PAGE);
    let mut query =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::SourceId.eq(source.id));
    if let Some(cursor) = cursor {
        query = query.filter(webhook_delivery::Column::Id.lt(cursor));
    }
    let rows = query
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(|row| {
            Ok(DeliveryInfo {
                run_ids: serde_json::from_value(row.run_ids)?,
                id: row.id,
                delivery_id: row.delivery_id,
                event_type: row.event_type,
                received_at: row.received_at,
                duplicates: row.duplicates,
                last_duplicate_at: row.last_duplicate_at,
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let next_cursor = has_more
        .then(|| items.last().map(|item| item.id.clone()))
        .flatten();
    Ok(Page { items, next_cursor })
}

/// Deletes up to `limit` accepted deliveries received before `before` (epoch ms); returns how
/// many. A redelivery of a pruned one is accepted again, so the retention must outlive the
/// providers' redelivery window.
pub async fn prune_deliveries(
    db: &DatabaseConnection,
    before: i64,
    limit: u64,
) -> Result<u64, EngineError> {
    let tx = begin_write(db).await?;
    let deleted = webhook_delivery::Entity::delete_many()
        .filter(
            webhook_delivery::Column::Id.in_subquery(
                Query::select()
                    .column(webhook_delivery::Column::Id)
                    .from(webhook_delivery::Entity)
                    .and_where(webhook_delivery::Column::ReceivedAt.lt(before))
                    .limit(limit)
                    .to_owned(),
            ),
        )
        .exec(&tx)
        .await?
        .rows_affected;
    tx.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_digits_and_dashes() {
        for good in ["acme-stripe", "gh", "a1-b2"] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Acme", "a_b", "a b", "ä", "a/b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
