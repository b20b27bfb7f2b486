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
    let alive_within = state.metrics().alive_within();
    match state
        .call(move |engine| async move { engine.queue_stats(alive_within).await })
        .await
    {
        Ok(stats) => state.metrics().set_queue(&stats),
        // The rest of the metrics still matter (`stepwise_worker_up` says the database is
        // gone); the queue gauges keep their last values.
        Err(error) => tracing::warn!(message = "Reading the queue for metrics failed.", %error),
    }
    let text = state
        .metrics()
        .render()
        .map_err(|error| ApiError::Internal(format!("encoding metrics: {error}")))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
