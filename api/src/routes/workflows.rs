//! Workflows: list, deploy (YAML body, a new version per change), detail with versions, the
//! diff between two versions, and the cron schedules of the latest version.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use stepwise_engine::{ScheduleInfo, VersionInfo, WorkflowSummary};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Names the request body in diagnostics that point elsewhere in the "file".
const BODY_PATH: &str = "request body";

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub items: Vec<WorkflowSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeployResponse {
    pub name: String,
    pub version: i32,
    pub version_id: String,
    /// False when the source equals the latest version's: nothing was created.
    pub created: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub workflow: WorkflowSummary,
    /// Every version, with its source.
    pub versions: Vec<VersionInfo>,
}

/// The tenant's workflows, by name.
#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "workflows",
    responses((status = 200, description = "Every workflow of the tenant.", body = WorkflowList))
)]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<web::Json<WorkflowList>, ApiError> {
    let items = state
        .call(move |engine| async move { engine.list_workflows(&tenant.id).await })
        .await?;
    Ok(web::Json(WorkflowList { items }))
}

/// Deploys a workflow from its YAML source: `201 Created` for a new version, `200 OK` when the
/// source equals the latest version's.
#[utoipa::path(
    post,
    path = "/api/v1/workflows",
    tag = "workflows",
    request_body(
        description = "The workflow's YAML source (UTF-8). Sent as `application/json`, the body must be JSON (no duplicate keys): a workflow written in JSON, which is YAML too.",
        content(
            (String = "application/yaml"),
            (String = "text/yaml"),
            (Object = "application/json"),
        )
    ),
    responses(
        (status = 201, description = "A new version was created.", body = DeployResponse),
        (status = 200, description = "The source is unchanged: nothing was created.", body = DeployResponse),
        (status = 400, description = "`invalid_input`: the source is not UTF-8, or it is sent as `application/json` and is not JSON.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: more than 1 MiB.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: neither YAML, text nor JSON.", body = ErrorBody),
        (status = 422, description = "`invalid_workflow`: every problem, located in `diagnostics`.", body = ErrorBody),
    )
)]
pub async fn deploy(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let source_type = source_type(&request)?;
    let source = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::InvalidInput("the workflow source must be UTF-8".into()))?;
    if source_type == SourceType::Json {
        crate::body::check_unique_keys(source.as_bytes()).map_err(|error| {
            ApiError::InvalidInput(format!(
                "the body is sent as `application/json` but is not JSON ({error}); send YAML as \
                 `application/yaml`"
            ))
        })?;
    }
    let deployed = state
        .call(move |engine| async move { engine.deploy(&tenant.id, BODY_PATH, &source).await })
        .await?;
    if deployed.created {
        tracing::info!(
            message = "Workflow deployed.",
            workflow = deployed.name,
            version = deployed.version
        );
    }
    let mut response = if deployed.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(DeployResponse {
        name: deployed.name,
        version: deployed.version,
        version_id: deployed.version_id,
        created: deployed.created,
    }))
}

/// A workflow with every version (newest first) and its source.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}",
    tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name.")),
    responses(
        (status = 200, description = "The workflow and its versions.", body = WorkflowDetail),
        (status = 404, description = "`not_found`: the tenant has no such workflow.", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<WorkflowDetail>, ApiError> {
    let name = name.into_inner();
    let lookup = name.clone();
    let (workflow, versions) = state
        .call(move |engine| async move { engine.get_workflow(&tenant.id, &lookup).await })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` not found")))?;
    Ok(web::Json(WorkflowDetail { workflow, versions }))
}

/// Disables the workflow: it starts no new run until enabled; runs in flight go on.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/disable",
    tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name.")),
    responses(
        (status = 200, description = "The workflow, now with `enabled: false` (also when it already was).", body = WorkflowSummary),
        (status = 404, description = "`not_found`: the tenant has no such workflow.", body = ErrorBody),
    )
)]
pub async fn disable(
    state: web::Data<AppState>,
    tenant: Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<WorkflowSummary>, ApiError> {
    set_enabled(state, tenant, name.into_inner(), false).await
}

/// Enables the workflow again; cron slots missed meanwhile follow the entry's `catch_up`.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/enable",
    tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name.")),
    responses(
        (status = 200, description = "The workflow, now with `enabled: true` (also when it already was).", body = WorkflowSummary),
        (status = 404, description = "`not_found`: the tenant has no such workflow.", body = ErrorBody),
    )
)]
pub async fn enable(
    state: web::Data<AppState>,
    tenant: Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<WorkflowSummary>, ApiError> {
    set_enabled(state, tenant, name.into_inner(), true).await
}

async fn set_enabled(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: String,
    enabled: bool,
) -> Result<web::Json<WorkflowSummary>, ApiError> {
    let workflow = state
        .call(move |engine| async move {
            engine
                .set_workflow_enabled(&tenant.id, &name, enabled)
                .await
        })
        .await?;
    Ok(web::Json(workflow))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// One per `on.cron` entry, in file order: next fire time and the most recent fires.
    pub items: Vec<ScheduleInfo>,
}

/// The cron schedules of the workflow's latest version.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/schedules",
    tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name.")),
    responses(
        (status = 200, description = "One schedule per `on.cron` entry.", body = ScheduleList),
        (status = 404, description = "`not_found`: the tenant has no such workflow.", body = ErrorBody),
    )
)]
pub async fn schedules(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<ScheduleList>, ApiError> {
    let name = name.into_inner();
    let lookup = name.clone();
    let items = state
        .call(move |engine| async move { engine.schedules(&tenant.id, &lookup).await })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` not found")))?;
    Ok(web::Json(ScheduleList { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Defaults to the version before `to`.
    pub from: Option<i32>,
    /// Defaults to the latest version.
    pub to: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDiff {
    pub from: i32,
    pub to: i32,
    /// Unified diff of the two sources (empty when they are equal).
    pub diff: String,
}

/// The unified diff of two versions' sources: `?from=1&to=2`; by default the latest version
/// against the one before it.
#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/diff",
    tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name."), DiffQuery),
    responses(
        (status = 200, description = "The unified diff.", body = VersionDiff),
        (status = 400, description = "`invalid_input`: `from` or `to` is not a number.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such workflow, or no such version of it.", body = ErrorBody),
    )
)]
pub async fn diff(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
    query: web::Query<DiffQuery>,
) -> Result<web::Json<VersionDiff>, ApiError> {
    let name = name.into_inner();
    let lookup = name.clone();
    let (_, versions) = state
        .call(move |engine| async move { engine.get_workflow(&tenant.id, &lookup).await })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` not found")))?;
    let latest = versions.iter().map(|v| v.version).max().unwrap_or(1);
    let to = query.to.unwrap_or(latest);
    let from = query.from.unwrap_or((to - 1).max(1));
    let source = |number: i32| {
        versions
            .iter()
            .find(|v| v.version == number)
            .map(|v| v.source.as_str())
            .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` has no version {number}")))
    };
    let diff = similar::TextDiff::from_lines(source(from)?, source(to)?)
        .unified_diff()
        .header(&format!("{name} v{from}"), &format!("{name} v{to}"))
        .to_string();
    Ok(web::Json(VersionDiff { from, to, diff }))
}

/// YAML (`application/yaml`, `application/x-yaml`, `text/*`) or JSON, which is YAML too. A
/// missing content type is accepted for `curl --data-binary` convenience.
/// How the body of a deploy says it is written.
#[derive(Debug, PartialEq, Eq)]
enum SourceType {
    Yaml,
    /// A workflow written in JSON; parsed by the YAML parser, which keeps locations.
    Json,
}

fn source_type(request: &HttpRequest) -> Result<SourceType, ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(SourceType::Yaml);
    };
    let media_type = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let yaml = media_type.starts_with("text/")
        || matches!(
            media_type.as_str(),
            "application/yaml" | "application/x-yaml"
        );
    if yaml {
        Ok(SourceType::Yaml)
    } else if media_type == "application/json" {
        Ok(SourceType::Json)
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "send the workflow as YAML (Content-Type: application/yaml), not `{media_type}`"
        )))
    }
}
