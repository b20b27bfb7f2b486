//! Runs: manual trigger, keyset-paginated listing, detail with steps, cancellation, retry from
//! the failed steps and re-run.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stepwise_engine::{Page, RunDetail, RunFilter, RunStatus, RunSummary};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::body::OptionalJson;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Page size when the client asks for none.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: String,
}

/// A run's new status after cancel or retry.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStatusChange {
    pub run_id: String,
    pub status: RunStatus,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs with this status: `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// Trigger kind: `manual`, `webhook`, `cron` or `workflow`.
    pub trigger: Option<String>,
    /// Created at or after this time: RFC 3339 or epoch milliseconds.
    pub from: Option<String>,
    /// Created before this time: RFC 3339 or epoch milliseconds.
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 500; default 50.
    pub limit: Option<u64>,
}

/// Starts a run of the workflow's latest version. The body is the run input, a JSON object; an
/// empty body means `{}`. Answers 202 once the run is committed.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/runs",
    tag = "runs",
    params(("name" = String, Path, description = "The workflow's name.")),
    request_body(
        description = "The run input, checked against the workflow's `inputs`; empty means `{}`.",
        content((Object = "application/json")),
    ),
    responses(
        (status = 202, description = "The run is committed and running.", body = RunStarted),
        (status = 400, description = "`invalid_input`: not JSON, an object with a duplicate key, not an object, or it does not match the workflow's `inputs`.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such workflow.", body = ErrorBody),
        (status = 409, description = "`workflow_disabled`: the workflow is disabled.", body = ErrorBody),
    )
)]
pub async fn trigger(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
    OptionalJson(input): OptionalJson<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = run_input(input)?;
    let workflow = name.into_inner();
    let run_id = state
        .call(move |engine| async move {
            engine
                .start_run(
                    &tenant.id,
                    &workflow,
                    input,
                    "manual",
                    json!({ "source": "api" }),
                )
                .await
        })
        .await?;
    Ok(HttpResponse::Accepted().json(RunStarted { run_id }))
}

/// A `from`/`to` query parameter: RFC 3339 or epoch milliseconds.
fn time_bound(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|time| Some(time.timestamp_millis()))
        .map_err(|error| {
            ApiError::InvalidInput(format!(
                "`{name}`: `{value}` is neither an RFC 3339 time (2026-11-29T10:00:00Z) nor epoch milliseconds: {error}"
            ))
        })
}

/// The run input: an object, `{}` for an empty body.
fn run_input(body: Option<Value>) -> Result<Value, ApiError> {
    match body {
        None => Ok(json!({})),
        Some(input) if input.is_object() => Ok(input),
        Some(_) => Err(ApiError::InvalidInput(
            "the run input must be a JSON object".into(),
        )),
    }
}

/// The tenant's runs, newest first, in keyset-paginated pages.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of runs.", body = Page<RunSummary>),
        (status = 400, description = "`invalid_input`: unknown status, bad time bound or cursor.", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    query: web::Query<ListQuery>,
) -> Result<web::Json<Page<RunSummary>>, ApiError> {
    let query = query.into_inner();
    let status = query
        .status
        .filter(|status| !status.is_empty())
        .map(|status| {
            status.parse::<RunStatus>().map_err(|_| {
                let allowed: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::InvalidInput(format!(
                    "unknown status `{status}`; expected one of: {}",
                    allowed.join(", ")
                ))
            })
        })
        .transpose()?;
    let filter = RunFilter {
        workflow: query.workflow.filter(|workflow| !workflow.is_empty()),
        status,
        trigger: query.trigger.filter(|trigger| !trigger.is_empty()),
        created_from: time_bound("from", query.from.as_deref())?,
        created_before: time_bound("to", query.to.as_deref())?,
    };
    let limit = query
        .limit
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE);
    let cursor = query.cursor.filter(|cursor| !cursor.is_empty());
    let page = state
        .call(move |engine| async move {
            engine
                .list_runs(&tenant.id, &filter, cursor.as_deref(), limit)
                .await
        })
        .await?;
    Ok(web::Json(page))
}

/// The run with every step; 404 also for another tenant's run, so ids do not leak.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run with its steps, attempts, inputs and outputs (secrets as `***`).", body = RunDetail),
        (status = 404, description = "`not_found`: the tenant has no such run.", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
) -> Result<web::Json<RunDetail>, ApiError> {
    let run_id = id.into_inner();
    let lookup = run_id.clone();
    state
        .call(move |engine| async move { engine.get_run(&tenant.id, &lookup).await })
        .await?
        .map(web::Json)
        .ok_or_else(|| ApiError::NotFound(format!("run {run_id} not found")))
}

/// 200 when cancelled, 409 when the run had already finished.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run is cancelled.", body = RunStatusChange),
        (status = 404, description = "`not_found`: the tenant has no such run.", body = ErrorBody),
        (status = 409, description = "`conflict`: the run has already finished.", body = ErrorBody),
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run_id = id.into_inner();
    let target = run_id.clone();
    state
        .call(move |engine| async move { engine.cancel_run(&tenant.id, &target).await })
        .await?;
    Ok(HttpResponse::Ok().json(RunStatusChange {
        run_id,
        status: RunStatus::Cancelled,
    }))
}

/// Which workflow version a retry runs on.
#[derive(Debug, Default, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryVersion {
    /// The version the run started with.
    #[default]
    Original,
    /// The workflow's current version (e.g. after fixing it).
    Current,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    #[serde(default)]
    pub version: RetryVersion,
}

/// Retries a failed or cancelled run from its failed steps: 202 once it is running again (or
/// queued for a concurrency slot), 409 when the run is still running, has nothing to retry,
/// or its concurrency limit refuses it.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/retry",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    request_body(
        description = "Optional; empty means `{\"version\": \"original\"}`.",
        content((RetryRequest = "application/json")),
    ),
    responses(
        (status = 202, description = "The failed steps and their dependents run again (`running`), or will once the workflow's `concurrency` limit frees a slot (`queued`).", body = RunStatusChange),
        (status = 400, description = "`invalid_input`: the body is not a retry request, or the workflow's `concurrency.key` does not render for the run.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such run.", body = ErrorBody),
        (status = 409, description = "`conflict`: the run is still active or has nothing to retry. `concurrency_limit`: the workflow's `concurrency` limit for the run's key is reached and its `on_limit` is `cancel_new`; nothing changed.", body = ErrorBody),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
    OptionalJson(request): OptionalJson<RetryRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = request.unwrap_or_default();
    let run_id = id.into_inner();
    let target = run_id.clone();
    let latest = request.version == RetryVersion::Current;
    let status = state
        .call(move |engine| async move { engine.retry_run(&tenant.id, &target, latest).await })
        .await?;
    Ok(HttpResponse::Accepted().json(RunStatusChange { run_id, status }))
}

/// Starts a new run of the same workflow with the same input: 202 with the new run's id.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/rerun",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 202, description = "The new run is committed and running.", body = RunStarted),
        (status = 400, description = "`invalid_input`: the input no longer matches the workflow's `inputs`.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such run, or its workflow is gone.", body = ErrorBody),
        (status = 409, description = "`workflow_disabled`: the run's workflow is disabled.", body = ErrorBody),
    )
)]
pub async fn rerun(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let original = id.into_inner();
    let run_id = state
        .call(move |engine| async move { engine.rerun(&tenant.id, &original).await })
        .await?;
    Ok(HttpResponse::Accepted().json(RunStarted { run_id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_an_empty_object() {
        assert_eq!(run_input(None).expect("empty"), json!({}));
        assert_eq!(
            run_input(Some(json!({"a": 1}))).expect("object"),
            json!({"a": 1})
        );
        assert!(run_input(Some(json!([1]))).is_err());
    }
}
