//! Workflows and their immutable versions. A deploy whose source differs from the latest
//! version creates the next version; runs reference the version they started with.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use stepwise_workflows::Workflow;

use super::entities::{workflow, workflow_version};
use super::now_ms;
use crate::error::EngineError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub latest_version: i32,
    /// False while disabled: no manual trigger, webhook delivery, cron slot or `workflow.run`
    /// starts it; runs in flight go on.
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub id: String,
    pub version: i32,
    pub content_hash: String,
    pub created_at: i64,
    pub source: String,
    /// The version's `inputs:` (one JSON Schema per input name), when it declares any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub workflow_id: String,
    pub name: String,
    pub version: i32,
    pub version_id: String,
    /// False when the source equals the latest version's and no version was created.
    pub created: bool,
}

/// A workflow version as the executor needs it.
#[derive(Debug, Clone)]
pub struct VersionRef {
    pub workflow_id: String,
    pub version_id: String,
    pub version: i32,
    pub definition: Arc<Workflow>,
    /// Whether the workflow was enabled when this was read.
    pub enabled: bool,
}

fn content_hash(source: &str) -> String {
    Sha256::digest(source.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn description(definition: &serde_json::Value) -> Option<String> {
    definition
        .get("description")
        .and_then(|value| value.as_str())
        .map(str::to_owned)
}

pub async fn deploy(
    db: &DatabaseConnection,
    tenant_id: &str,
    definition: &Workflow,
    source: &str,
) -> Result<Deployed, EngineError> {
    let hash = content_hash(source);
    let tx = crate::db::begin_write(db).await?;
    let now = now_ms();
    let existing = workflow::Entity::find()
        .filter(workflow::Column::TenantId.eq(tenant_id))
        .filter(workflow::Column::Name.eq(&definition.name))
        .one(&tx)
        .await?;
    let (workflow_id, next_version) = match existing {
        Some(row) => {
            let latest = workflow_version::Entity::find()
                .filter(workflow_version::Column::WorkflowId.eq(&row.id))
                .filter(workflow_version::Column::Version.eq(row.latest_version))
                .one(&tx)
                .await?;
            if let Some(latest) = latest.filter(|latest| latest.content_hash == hash) {
                return Ok(Deployed {
                    workflow_id: row.id,
                    name: row.name,
                    version: latest.version,
                    version_id: latest.id,
                    created: false,
                });
            }
            let next = row.latest_version + 1;
            let mut active: workflow::ActiveModel = row.clone().into();
            active.latest_version = Set(next);
            active.updated_at = Set(now);
            active.update(&tx).await?;
            (row.id, next)
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            workflow::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(tenant_id.to_owned()),
                name: Set(definition.name.clone()),
                latest_version: Set(1),
                created_at: Set(now),
                updated_at: Set(now),
                enabled: Set(true),
            }
            .insert(&tx)
            .await?;
            (id, 1)
        }
    };
    let version_id = uuid::Uuid::now_v7().to_string();
    workflow_version::ActiveModel {
        id: Set(version_id.clone()),
        workflow_id: Set(workflow_id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        version: Set(next_version),
        source: Set(source.to_owned()),
        definition: Set(serde_json::to_value(definition)?),
        content_hash: Set(hash),
        created_at: Set(now),
    }
    .insert(&tx)
    .await?;
    // The new version's cron entries take effect with it, in the same transaction.
    super::schedules::sync(
        &tx,
        tenant_id,
        &workflow_id,
        &definition.name,
        &definition.on.cron,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Deployed {
        workflow_id,
        name: definition.name.clone(),
        version: next_version,
        version_id,
        created: true,
    })
}

pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<WorkflowSummary>, EngineError> {
    let workflows = workflow::Entity::find()
        .filter(workflow::Column::TenantId.eq(tenant_id))
        .order_by_asc(workflow::Column::Name)
        .all(db)
        .await?;
    let mut summaries = Vec::with_capacity(workflows.len());
    for row in workflows {
        let latest = workflow_version::Entity::find()
            .filter(workflow_version::Column::WorkflowId.eq(&row.id))
            .filter(workflow_version::Column::Version.eq(row.latest_version))
            .one(db)
            .await?;
        summaries.push(WorkflowSummary {
            description: latest.and_then(|version| description(&version.definition)),
            id: row.id,
            name: row.name,
            latest_version: row.latest_version,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        });
    }
    Ok(summaries)
}

/// Which version of a workflow is the latest, without its definition (the engine caches
/// definitions by version id: versions are immutable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestVersion {
    pub workflow_id: String,
    pub version_id: String,
    pub version: i32,
    pub enabled: bool,
}

/// `SELECT` of the latest version of the tenant's workflows: one join, no definition.
fn latest_query(tenant_id: &str) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    Query::select()
        .column((workflow::Entity, workflow::Column::Id))
        .column((workflow_version::Entity, workflow_version::Column::Id))
        .column((workflow_version::Entity, workflow_version::Column::Version))
        .column((workflow::Entity, workflow::Column::Enabled))
        .from(workflow::Entity)
        .inner_join(
            workflow_version::Entity,
            Expr::col((
                workflow_version::Entity,
                workflow_version::Column::WorkflowId,
            ))
            .equals((workflow::Entity, workflow::Column::Id))
            .and(
                Expr::col((workflow_version::Entity, workflow_version::Column::Version))
                    .equals((workflow::Entity, workflow::Column::LatestVersion)),
            ),
        )
        .and_where(Expr::col((workflow::Entity, workflow::Column::TenantId)).eq(tenant_id))
        .order_by(
            (workflow::Entity, workflow::Column::Name),
            sea_orm::Order::Asc,
        )
        .to_owned()
}

fn latest_version(row: &sea_orm::QueryResult) -> Result<LatestVersion, EngineError> {
    Ok(LatestVersion {
        workflow_id: row.try_get_by_index(0)?,
        version_id: row.try_get_by_index(1)?,
        version: row.try_get_by_index(2)?,
        enabled: row.try_get_by_index(3)?,
    })
}

/// The latest version of a tenant's workflow, by name.
pub async fn latest(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<LatestVersion>, EngineError> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let query = latest_query(tenant_id)
        .and_where(Expr::col((workflow::Entity, workflow::Column::Name)).eq(name))
        .to_owned();
    db.query_one(&query)
        .await?
        .as_ref()
        .map(latest_version)
        .transpose()
}

/// The latest version of every workflow of the tenant, by name.
pub async fn latest_all(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<LatestVersion>, EngineError> {
    db.query_all(&latest_query(tenant_id))
        .await?
        .iter()
        .map(latest_version)
        .collect()
}

pub async fn definition(
    db: &impl ConnectionTrait,
    version_id: &str,
) -> Result<Workflow, EngineError> {
    let row = workflow_version::Entity::find_by_id(version_id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| EngineError::Corrupt(format!("workflow version {version_id} missing")))?;
    Ok(serde_json::from_value(row.definition)?)
}

/// A workflow with every version, newest first.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
) -> Result<Option<(WorkflowSummary, Vec<VersionInfo>)>, EngineError> {
    let Some(row) = workflow::Entity::find()
        .filter(workflow::Column::TenantId.eq(tenant_id))
        .filter(workflow::Column::Name.eq(name))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let versions = workflow_version::Entity::find()
        .filter(workflow_version::Column::WorkflowId.eq(&row.id))
        .order_by_desc(workflow_version::Column::Version)
        .all(db)
        .await?;
    let summary = WorkflowSummary {
        description: versions.first().and_then(|v| description(&v.definition)),
        id: row.id,
        name: row.name,
        latest_version: row.latest_version,
        enabled: row.enabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
    };
    let versions = versions
        .into_iter()
        .map(|version| VersionInfo {
            inputs: version
                .definition
                .get("inputs")
                .filter(|inputs| inputs.is_object())
                .cloned(),
            id: version.id,
            version: version.version,
            content_hash: version.content_hash,
            created_at: version.created_at,
            source: version.source,
        })
        .collect();
    Ok(Some((summary, versions)))
}

/// Enables or disables the tenant's workflow; false when it has none of that name. Deploys
/// keep the flag.
pub async fn set_enabled(
    db: &DatabaseConnection,
    tenant_id: &str,
    name: &str,
    enabled: bool,
) -> Result<bool, EngineError> {
    use sea_orm::sea_query::Expr;
    let tx = crate::db::begin_write(db).await?;
    let updated = workflow::Entity::update_many()
        .col_expr(workflow::Column::Enabled, Expr::value(enabled))
        .filter(workflow::Column::TenantId.eq(tenant_id))
        .filter(workflow::Column::Name.eq(name))
        .exec(&tx)
        .await?
        .rows_affected;
    tx.commit().await?;
    Ok(updated > 0)
}

/// `SELECT id FROM workflows WHERE enabled`: what the scheduler may fire.
pub(crate) fn enabled_ids() -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    Query::select()
        .column(workflow::Column::Id)
        .from(workflow::Entity)
        .and_where(Expr::col(workflow::Column::Enabled).eq(true))
        .to_owned()
}
