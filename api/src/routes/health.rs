//! Probes for orchestrators: liveness (`/healthz`) and readiness (`/readyz`).

use actix_web::{HttpResponse, web};
use serde::Serialize;
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

/// Ready when the database answers, so load balancers skip nodes that cannot do work.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers.", body = Health),
        (status = 503, description = "`unavailable`: the database is not reachable.", body = ErrorBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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
