//! Probes for orchestrators: liveness (`/healthz`) and readiness (`/readyz`).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up and serving; says nothing about its dependencies.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database answers, so load balancers skip nodes that cannot do work.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state
        .call(|engine| async move { engine.database().ping().await })
        .await
    {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "status": "ok" }))),
        Err(error) => {
            tracing::warn!(message = "Readiness check failed.", %error);
            Err(ApiError::Unavailable(
                "the database is not reachable".into(),
            ))
        }
    }
}
