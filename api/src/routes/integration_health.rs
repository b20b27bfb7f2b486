//! Integration health over time: per integration, success and error rates, p95 latency,
//! token refreshes, rate-limit waits and the circuit's state, as totals and a series.

use actix_web::web;
use serde::Deserialize;
use stepwise_engine::health::{HealthReport, HealthWindow};
use utoipa::IntoParams;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// `1h` (the default; a point per minute) or `24h` (a point per 15 minutes).
    pub window: Option<String>,
}

fn window(value: Option<&str>) -> Result<HealthWindow, ApiError> {
    match value.unwrap_or("1h") {
        "1h" => Ok(HealthWindow::Hour),
        "24h" => Ok(HealthWindow::Day),
        other => Err(ApiError::InvalidInput(format!(
            "unknown window `{other}`; expected `1h` or `24h`"
        ))),
    }
}

/// The tenant's integration health over the last hour or day: what every process counted
/// (written every few seconds; this process' counts are current) and each circuit's state in
/// the process that answers.
#[utoipa::path(
    get,
    path = "/api/v1/integrations/health",
    tag = "integrations",
    params(HealthQuery),
    responses(
        (status = 200, description = "Totals and a series of points per integration.", body = HealthReport),
        (status = 400, description = "`invalid_input`: unknown window.", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    query: web::Query<HealthQuery>,
) -> Result<web::Json<HealthReport>, ApiError> {
    let window = window(query.window.as_deref())?;
    let report = state
        .call(move |engine| async move {
            engine
                .integration_health(&tenant.id, window, stepwise_engine::store::now_ms())
                .await
        })
        .await?;
    Ok(web::Json(report))
}
