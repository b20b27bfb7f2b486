//! Rate-limit buckets in the database, shared by every process on it: one `rate_limit_buckets`
//! row per bucket key holding the scheduler's serde [`Bucket`].
//!
//! Every `acquire` and `observe` is one short write transaction: lock the key's row
//! (`SELECT ... FOR UPDATE` on Postgres; SQLite's write transaction holds the database lock
//! already), apply the runtime's pure rule ([`acquire_in`] / [`observe_in`]), write the bucket
//! back if it changed, commit. The lock is held for two statements, never across a request.
//! A bucket is only a cache of what the provider said, so on Postgres these transactions commit
//! without waiting for the WAL flush (`synchronous_commit = off`): a crash may forget the last
//! few bookings, never corrupt them.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use stepwise_integrations::ActionError;
use stepwise_integrations::ratelimit::{Bucket, RateLimitObservation};
use stepwise_integrations::runtime::scheduler::{
    Acquisition, BucketKey, BucketStore, RateLimitMode, acquire_in, observe_in,
};

use super::entities::rate_limit_bucket;
use crate::db::{Backend, Database, begin_write};
use crate::error::EngineError;

/// The database's [`BucketStore`]. The engine installs it in the integration runtime when it
/// runs on Postgres, so every process paces one quota together.
#[derive(Debug, Clone)]
pub struct DatabaseBuckets {
    conn: DatabaseConnection,
    backend: Backend,
}

impl DatabaseBuckets {
    pub fn new(db: &Database) -> Self {
        Self {
            conn: db.conn.clone(),
            backend: db.backend(),
        }
    }

    /// The bucket of `key` as stored, if any.
    pub async fn load(&self, key: &BucketKey) -> Result<Option<Bucket>, EngineError> {
        let row = rate_limit_bucket::Entity::find_by_id(primary_key(key))
            .one(&self.conn)
            .await?;
        Ok(row.and_then(|row| decode(key, row.bucket)))
    }

    /// Runs `change` on `key`'s slot in one write transaction with the row locked, and stores
    /// the bucket when it changed.
    async fn with_slot<T>(
        &self,
        key: &BucketKey,
        now: DateTime<Utc>,
        mut change: impl FnMut(&mut Option<Bucket>) -> T + Send,
    ) -> Result<T, EngineError> {
        loop {
            let tx = begin_write(&self.conn).await?;
            if self.backend == Backend::Postgres {
                tx.execute_unprepared("SET LOCAL synchronous_commit = off")
                    .await?;
            }
            let row = rate_limit_bucket::Entity::find_by_id(primary_key(key))
                .lock_exclusive()
                .one(&tx)
                .await?;
            let existed = row.is_some();
            let before = row.and_then(|row| decode(key, row.bucket));
            let mut slot = before.clone();
            let result = change(&mut slot);
            if let Some(bucket) = slot.filter(|bucket| before.as_ref() != Some(bucket)) {
                let stored = serde_json::to_value(&bucket)?;
                let updated_at = now.timestamp_millis();
                if existed {
                    update(&tx, key, stored, updated_at).await?;
                } else if !insert(&tx, key, stored, updated_at).await? {
                    // Another process created the row since we looked (nothing deletes rows,
                    // so the next pass finds and locks it): book again on its bucket.
                    tx.rollback().await?;
                    continue;
                }
            }
            tx.commit().await?;
            return Ok(result);
        }
    }
}

#[async_trait]
impl BucketStore for DatabaseBuckets {
    async fn acquire(
        &self,
        key: &BucketKey,
        mode: &RateLimitMode,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> Result<Acquisition, ActionError> {
        self.with_slot(key, now, |slot| acquire_in(slot, mode, now, max_wait))
            .await
            .map_err(unavailable)
    }

    async fn observe(
        &self,
        key: &BucketKey,
        mode: &RateLimitMode,
        observation: &RateLimitObservation,
        now: DateTime<Utc>,
    ) -> Result<(), ActionError> {
        self.with_slot(key, now, |slot| observe_in(slot, mode, observation, now))
            .await
            .map_err(unavailable)
    }
}

fn primary_key(key: &BucketKey) -> (String, String, String) {
    (
        key.tenant_id.clone(),
        key.integration.clone(),
        key.scope.clone(),
    )
}

/// A stored bucket that no longer reads (a format from another version) is dropped: it is
/// relearned from the next response, and its row overwritten.
fn decode(key: &BucketKey, stored: serde_json::Value) -> Option<Bucket> {
    serde_json::from_value(stored)
        .inspect_err(|error| {
            tracing::warn!(
                message = "Unreadable rate-limit bucket; starting it afresh.",
                tenant = %key.tenant_id,
                integration = %key.integration,
                scope = %key.scope,
                %error,
            );
        })
        .ok()
}

async fn update(
    tx: &impl ConnectionTrait,
    key: &BucketKey,
    bucket: serde_json::Value,
    updated_at: i64,
) -> Result<(), EngineError> {
    rate_limit_bucket::Entity::update_many()
        .col_expr(rate_limit_bucket::Column::Bucket, Expr::value(bucket))
        .col_expr(
            rate_limit_bucket::Column::UpdatedAt,
            Expr::value(updated_at),
        )
        .filter(rate_limit_bucket::Column::TenantId.eq(&key.tenant_id))
        .filter(rate_limit_bucket::Column::Integration.eq(&key.integration))
        .filter(rate_limit_bucket::Column::Scope.eq(&key.scope))
        .exec(tx)
        .await?;
    Ok(())
}

/// Inserts the row unless one exists; whether it did.
async fn insert(
    tx: &impl ConnectionTrait,
    key: &BucketKey,
    bucket: serde_json::Value,
    updated_at: i64,
) -> Result<bool, EngineError> {
    let inserted = rate_limit_bucket::Entity::insert(rate_limit_bucket::ActiveModel {
        tenant_id: Set(key.tenant_id.clone()),
        integration: Set(key.integration.clone()),
        scope: Set(key.scope.clone()),
        bucket: Set(bucket),
        updated_at: Set(updated_at),
    })
    .on_conflict(
        OnConflict::columns([
            rate_limit_bucket::Column::TenantId,
            rate_limit_bucket::Column::Integration,
            rate_limit_bucket::Column::Scope,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(tx)
    .await?;
    Ok(inserted > 0)
}

/// The store could not be reached: the call is retried like any transient failure.
fn unavailable(error: EngineError) -> ActionError {
    ActionError::retryable(format!(
        "the rate-limit bucket store is unavailable: {error}"
    ))
}
