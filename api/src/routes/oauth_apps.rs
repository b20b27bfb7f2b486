//! Per-tenant OAuth apps: list, create, get, delete. The client secret goes in and never
//! comes back.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use stepwise_engine::store::oauth_apps::{NewOAuthApp, OAuthAppInfo};

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct OAuthAppList {
    pub items: Vec<OAuthAppInfo>,
}

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
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    body: web::Json<NewOAuthApp>,
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
