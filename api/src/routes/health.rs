//! Probes for orchestrators: liveness (`/healthz`) and readiness (`/readyz`).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use stepwise_engine::WorkerState;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

const OK: Health = Health { status: "ok" };

/// The process is up and serving; says nothing about its dependencies.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is serving.", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(OK)
}

/// Ready when the database answers and this process' step worker is up, so load balancers
/// and orchestrators skip (or restart) nodes that cannot do work.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers and the step worker is up.", body = Health),
        (status = 503, description = "`unavailable`: the database is not reachable, or the step \
            worker stopped on an error and is being restarted (the message says which).", body = ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if let WorkerState::Down {
        failures, since_ms, ..
    } = state.engine().worker_status().state
    {
        // The error itself is in the log; this endpoint answers without credentials.
        let since = chrono::DateTime::from_timestamp_millis(since_ms)
            .map(|since| since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        return Err(ApiError::Unavailable(format!(
            "the step worker is down since {since} after {failures} failed attempt(s); \
             it is being restarted (see the log for the error)"
        )));
    }
    match state
        .call(|engine| async move { engine.database().ping().await })
        .await
    {
        Ok(()) => Ok(HttpResponse::Ok().json(OK)),
        Err(error) => {
            tracing::warn!(message = "Readiness check failed.", %error);
            Err(ApiError::Unavailable(
                "the database is not reachable".into(),
            ))
        }
    }
}
