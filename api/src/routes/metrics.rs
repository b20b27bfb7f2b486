//! `GET /metrics`: every metric of the process registry in the Prometheus text format.
//! Unauthenticated, like `/healthz`: it carries counts, never tenant data.

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Every metric of the process in the Prometheus text exposition format.",
        content_type = "text/plain; version=0.0.4",
        body = String
    ))
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics()
        .render()
        .map_err(|error| ApiError::Internal(format!("encoding metrics: {error}")))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
