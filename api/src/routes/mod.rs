//! HTTP routes. Everything under `/api/v1` takes [`crate::auth::Authenticated`] and scopes every
//! engine call to its tenant.

pub mod connections;
pub mod dashboard;
pub mod health;
pub mod metrics;
pub mod oauth;
pub mod oauth_apps;
pub mod runs;
pub mod secrets;
pub mod sources;
pub mod webhooks;
pub mod workflows;

use actix_web::{HttpResponse, web};

use crate::error::ApiError;

/// The routes; `webhook_max_bytes` limits a webhook delivery's body (413 beyond).
pub fn configure(config: &mut web::ServiceConfig, webhook_max_bytes: usize) {
    config
        .configure(dashboard::configure)
        .route("/healthz", web::get().to(health::healthz))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(
            web::resource("/webhooks/{provider}/{source}")
                .app_data(web::Data::new(webhooks::WebhookMaxBytes(webhook_max_bytes)))
                .route(web::post().to(webhooks::ingest)),
        )
        .route("/readyz", web::get().to(health::readyz))
        .route(
            "/oauth/{integration}/authorize",
            web::get().to(oauth::authorize),
        )
        .route("/oauth/callback", web::get().to(oauth::callback))
        .service(
            web::scope("/api/v1")
                .service(
                    web::resource("/workflows")
                        .route(web::get().to(workflows::list))
                        .route(web::post().to(workflows::deploy)),
                )
                .route("/workflows/{name}", web::get().to(workflows::get))
                .route("/workflows/{name}/diff", web::get().to(workflows::diff))
                .route(
                    "/workflows/{name}/schedules",
                    web::get().to(workflows::schedules),
                )
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
                .route("/secrets/{name}", web::delete().to(secrets::delete))
                .service(
                    web::resource("/oauth-apps")
                        .route(web::get().to(oauth_apps::list))
                        .route(web::post().to(oauth_apps::create)),
                )
                .service(
                    web::resource("/oauth-apps/{name}")
                        .route(web::get().to(oauth_apps::get))
                        .route(web::delete().to(oauth_apps::delete)),
                )
                .service(
                    web::resource("/connections")
                        .route(web::get().to(connections::list))
                        .route(web::post().to(connections::create)),
                )
                .service(
                    web::resource("/connections/{name}")
                        .route(web::get().to(connections::get))
                        .route(web::delete().to(connections::delete)),
                )
                .service(
                    web::resource("/connections/{name}/test")
                        .route(web::post().to(connections::test)),
                )
                .service(
                    web::resource("/sources")
                        .route(web::get().to(sources::list))
                        .route(web::post().to(sources::create)),
                )
                .route("/sources/{name}", web::delete().to(sources::delete))
                .route("/sources/{name}/secret", web::post().to(sources::rotate))
                .route(
                    "/sources/{name}/rejections",
                    web::get().to(sources::rejections),
                ),
        );
}

/// Every unknown route, API or not.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}
