//! HTTP routes. Everything under `/api/v1` takes [`crate::auth::Authenticated`] and scopes every
//! engine call to its tenant.

pub mod health;
pub mod runs;
pub mod secrets;
pub mod workflows;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::scope("/api/v1")
                .service(
                    web::resource("/workflows")
                        .route(web::get().to(workflows::list))
                        .route(web::post().to(workflows::deploy)),
                )
                .route("/workflows/{name}", web::get().to(workflows::get))
                .route("/workflows/{name}/diff", web::get().to(workflows::diff))
                .route("/workflows/{name}/runs", web::post().to(runs::trigger))
                .route("/runs", web::get().to(runs::list))
                .route("/runs/{id}", web::get().to(runs::get))
                .route("/runs/{id}/cancel", web::post().to(runs::cancel))
                .route("/runs/{id}/retry", web::post().to(runs::retry))
                .route("/runs/{id}/rerun", web::post().to(runs::rerun))
                .service(
                    web::resource("/secrets")
                        .route(web::get().to(secrets::list))
                        .route(web::post().to(secrets::set)),
                )
                .route("/secrets/{name}", web::delete().to(secrets::delete)),
        );
}

/// Every unknown route, API or not.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}
