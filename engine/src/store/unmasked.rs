//! The true values behind masked run data, sealed by the [`Vault`].
//!
//! What is stored of a step is masked with the secrets it resolved (and the connection
//! credentials it fetched). When masking changed its output (or a `for_each` step's rendered
//! list), or changed a run's `outputs`, the unmasked values are sealed into the row's
//! `sealed_unmasked` column: the API, the dashboard and the logs read the masked columns, later
//! steps and a parent's `workflow.run` step read these. The associated data binds the tenant,
//! the run and the row, so a sealed value copied to another row does not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use super::entities::{run, step};
use crate::db::begin_write;
use crate::error::EngineError;
use crate::vault::{AadContext, Envelope, Vault};

/// Rows re-wrapped per transaction by [`rewrap_all`].
const REWRAP_BATCH: u64 = 500;

/// A row's values before masking (only those that masking changed), with the values that were
/// masked: whatever reads the true data must mask them in what it stores in turn.
#[derive(Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Unmasked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<String>,
}

/// The row a sealed value belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner<'a> {
    Step { run_id: &'a str, row_id: &'a str },
    Run { run_id: &'a str },
}

impl Owner<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Owner::Step { .. } => "step",
            Owner::Run { .. } => "run",
        }
    }

    fn record(&self) -> String {
        match self {
            Owner::Step { run_id, row_id } => format!("{run_id}/{row_id}"),
            Owner::Run { run_id } => (*run_id).to_owned(),
        }
    }
}

fn context<'a>(tenant_id: &'a str, owner: &Owner<'_>, record: &'a str) -> AadContext<'a> {
    AadContext {
        tenant_id,
        kind: owner.kind(),
        record,
        field: "unmasked",
    }
}

/// The envelope as stored in one column: versioned JSON, binary parts in base64.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u8,
    key_id: String,
    wrapped_key: String,
    nonce: String,
    ciphertext: String,
}

fn encode(envelope: &Envelope) -> Result<Vec<u8>, EngineError> {
    Ok(serde_json::to_vec(&Stored {
        version: envelope.version,
        key_id: envelope.key_id.clone(),
        wrapped_key: STANDARD.encode(&envelope.wrapped_key),
        nonce: STANDARD.encode(&envelope.nonce),
        ciphertext: STANDARD.encode(&envelope.ciphertext),
    })?)
}

fn decode(bytes: &[u8]) -> Result<Envelope, EngineError> {
    let corrupt = || EngineError::Corrupt("a sealed unmasked value is not an envelope".into());
    let stored: Stored = serde_json::from_slice(bytes).map_err(|_| corrupt())?;
    let base64 = |text: &str| STANDARD.decode(text).map_err(|_| corrupt());
    Ok(Envelope {
        version: stored.version,
        key_id: stored.key_id,
        wrapped_key: base64(&stored.wrapped_key)?,
        nonce: base64(&stored.nonce)?,
        ciphertext: base64(&stored.ciphertext)?,
    })
}

/// Seals `values` for `owner`, a row of the tenant's.
pub(crate) async fn seal(
    vault: &Vault,
    tenant_id: &str,
    owner: Owner<'_>,
    values: &Unmasked,
) -> Result<Vec<u8>, EngineError> {
    let plaintext = Zeroizing::new(serde_json::to_vec(values)?);
    let record = owner.record();
    let envelope = vault
        .seal(&context(tenant_id, &owner, &record), &plaintext)
        .await?;
    encode(&envelope)
}

/// Opens what [`seal`] sealed for `owner`.
pub(crate) async fn open(
    vault: &Vault,
    tenant_id: &str,
    owner: Owner<'_>,
    sealed: &[u8],
) -> Result<Unmasked, EngineError> {
    let record = owner.record();
    let plaintext = vault
        .open(&context(tenant_id, &owner, &record), &decode(sealed)?)
        .await?;
    serde_json::from_slice(&plaintext)
        .map_err(|_| EngineError::Corrupt(format!("the unmasked values of {record} are not JSON")))
}

/// `sealed` with its data key re-wrapped under the current master key, or `None` when it is
/// already.
async fn rewrap_sealed(
    vault: &Vault,
    tenant_id: &str,
    owner: Owner<'_>,
    sealed: &[u8],
) -> Result<Option<Vec<u8>>, EngineError> {
    let record = owner.record();
    let envelope = decode(sealed)?;
    let Some(wrapped) = vault
        .rewrap(&context(tenant_id, &owner, &record), &envelope)
        .await?
    else {
        return Ok(None);
    };
    encode(&Envelope {
        key_id: wrapped.key_id,
        wrapped_key: wrapped.bytes,
        ..envelope
    })
    .map(Some)
}

/// Re-wraps the data key of every sealed unmasked value (of steps and runs) that is not under
/// the vault's current master key, one transaction per batch; an update applies only if the
/// row still holds what was read. Returns (values re-wrapped, values that changed meanwhile
/// and were not re-wrapped: run the rotation again).
pub async fn rewrap_all(db: &DatabaseConnection, vault: &Vault) -> Result<(u64, u64), EngineError> {
    let mut rewrapped = 0;
    let mut remaining = 0;
    let mut after: Option<(String, String)> = None;
    loop {
        let mut query = step::Entity::find()
            .select_only()
            .columns([
                step::Column::RunId,
                step::Column::StepId,
                step::Column::SealedUnmasked,
            ])
            .filter(step::Column::SealedUnmasked.is_not_null())
            .order_by_asc(step::Column::RunId)
            .order_by_asc(step::Column::StepId)
            .limit(REWRAP_BATCH);
        if let Some((run_id, step_id)) = &after {
            query = query.filter(
                Condition::any()
                    .add(step::Column::RunId.gt(run_id.as_str()))
                    .add(
                        Condition::all()
                            .add(step::Column::RunId.eq(run_id.as_str()))
                            .add(step::Column::StepId.gt(step_id.as_str())),
                    ),
            );
        }
        let rows: Vec<(String, String, Vec<u8>)> = query.into_tuple().all(db).await?;
        let Some((last_run, last_step, _)) = rows.last() else {
            break;
        };
        after = Some((last_run.clone(), last_step.clone()));
        let tenants = tenants_of(db, rows.iter().map(|(run_id, _, _)| run_id.as_str())).await?;
        let mut updates = Vec::new();
        for (run_id, row_id, sealed) in &rows {
            let Some(tenant_id) = tenants.get(run_id) else {
                continue;
            };
            let owner = Owner::Step { run_id, row_id };
            if let Some(new) = rewrap_sealed(vault, tenant_id, owner, sealed).await? {
                updates.push((run_id, row_id, sealed, new));
            }
        }
        let tx = begin_write(db).await?;
        for (run_id, row_id, old, new) in updates {
            let result = step::Entity::update_many()
                .col_expr(step::Column::SealedUnmasked, Expr::value(new))
                .filter(step::Column::RunId.eq(run_id.as_str()))
                .filter(step::Column::StepId.eq(row_id.as_str()))
                .filter(step::Column::SealedUnmasked.eq(old.clone()))
                .exec(&tx)
                .await?;
            rewrapped += result.rows_affected;
            remaining += 1 - result.rows_affected;
        }
        tx.commit().await?;
    }
    let mut after: Option<String> = None;
    loop {
        let mut query = run::Entity::find()
            .select_only()
            .columns([
                run::Column::Id,
                run::Column::TenantId,
                run::Column::SealedUnmasked,
            ])
            .filter(run::Column::SealedUnmasked.is_not_null())
            .order_by_asc(run::Column::Id)
            .limit(REWRAP_BATCH);
        if let Some(after) = &after {
            query = query.filter(run::Column::Id.gt(after.as_str()));
        }
        let rows: Vec<(String, String, Vec<u8>)> = query.into_tuple().all(db).await?;
        let Some((last, _, _)) = rows.last() else {
            break;
        };
        after = Some(last.clone());
        let mut updates = Vec::new();
        for (run_id, tenant_id, sealed) in &rows {
            if let Some(new) =
                rewrap_sealed(vault, tenant_id, Owner::Run { run_id }, sealed).await?
            {
                updates.push((run_id, sealed, new));
            }
        }
        let tx = begin_write(db).await?;
        for (run_id, old, new) in updates {
            let result = run::Entity::update_many()
                .col_expr(run::Column::SealedUnmasked, Expr::value(new))
                .filter(run::Column::Id.eq(run_id.as_str()))
                .filter(run::Column::SealedUnmasked.eq(old.clone()))
                .exec(&tx)
                .await?;
            rewrapped += result.rows_affected;
            remaining += 1 - result.rows_affected;
        }
        tx.commit().await?;
    }
    Ok((rewrapped, remaining))
}

/// The tenant of each of these runs.
async fn tenants_of(
    db: &impl ConnectionTrait,
    run_ids: impl Iterator<Item = &str>,
) -> Result<std::collections::HashMap<String, String>, EngineError> {
    let mut run_ids: Vec<&str> = run_ids.collect();
    run_ids.dedup();
    let rows: Vec<(String, String)> = run::Entity::find()
        .select_only()
        .columns([run::Column::Id, run::Column::TenantId])
        .filter(run::Column::Id.is_in(run_ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}
