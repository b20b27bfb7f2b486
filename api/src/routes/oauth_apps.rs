//! Per-tenant OAuth apps: list, create, get, delete. The client secret goes in and never
//! comes back.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use stepwise_engine::store::oauth_apps::{NewOAuthApp, OAuthAppInfo};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::body::Json;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthAppList {
    pub items: Vec<OAuthAppInfo>,
}

/// The tenant's OAuth apps with their effective endpoints; never the client secret.
#[utoipa::path(
    get,
    path = "/api/v1/oauth-apps",
    tag = "oauth-apps",
    responses((status = 200, description = "Every OAuth app of the tenant.", body = OAuthAppList))
)]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<web::Json<OAuthAppList>, ApiError> {
    let items = state
        .call(move |engine| async move { engine.list_oauth_apps(&tenant.id).await })
        .await?;
    Ok(web::Json(OAuthAppList { items }))
}

/// `201 Created` with the app; 409 when the tenant has one of that name.
#[utoipa::path(
    post,
    path = "/api/v1/oauth-apps",
    tag = "oauth-apps",
    request_body = NewOAuthApp,
    responses(
        (status = 201, description = "The app.", body = OAuthAppInfo),
        (status = 400, description = "`invalid_input`: unknown integration, bad auth method or URL, missing endpoints for `generic`, bad JSON.", body = ErrorBody),
        (status = 409, description = "`conflict`: the tenant has an app of that name.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no master key is configured.", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    body: Json<NewOAuthApp>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner();
    let app = state
        .call(move |engine| async move { engine.create_oauth_app(&tenant.id, new).await })
        .await?;
    tracing::info!(
        message = "OAuth app created.",
        app = app.name,
        integration = app.integration
    );
    Ok(HttpResponse::Created().json(app))
}

#[utoipa::path(
    get,
    path = "/api/v1/oauth-apps/{name}",
    tag = "oauth-apps",
    params(("name" = String, Path, description = "The app's name.")),
    responses(
        (status = 200, description = "The app.", body = OAuthAppInfo),
        (status = 404, description = "`not_found`: the tenant has no such app.", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<OAuthAppInfo>, ApiError> {
    let name = name.into_inner();
    let app = state
        .call(move |engine| async move { engine.get_oauth_app(&tenant.id, &name).await })
        .await?;
    Ok(web::Json(app))
}

/// `204 No Content`, or 404.
#[utoipa::path(
    delete,
    path = "/api/v1/oauth-apps/{name}",
    tag = "oauth-apps",
    params(("name" = String, Path, description = "The app's name.")),
    responses(
        (status = 204, description = "The app is deleted."),
        (status = 404, description = "`not_found`: the tenant has no such app.", body = ErrorBody),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    state
        .call(move |engine| async move { engine.delete_oauth_app(&tenant.id, &name).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
