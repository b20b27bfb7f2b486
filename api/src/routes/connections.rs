//! Per-tenant connections: list, create, get, delete (which revokes OAuth tokens), test.
//! Secrets go in and never come back; an OAuth 2.0 connection answers with the URL that
//! authorizes it.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use stepwise_engine::store::connections::{ConnectionInfo, ConnectionKind, NewConnection};
use stepwise_engine::{ConnectionDeleted, ConnectionTest};

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct ConnectionBody {
    #[serde(flatten)]
    pub connection: ConnectionInfo,
    /// For `oauth2` connections: open this (with the API key) to authorize or re-authorize.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConnectionList {
    pub items: Vec<ConnectionBody>,
}

fn body(state: &AppState, connection: ConnectionInfo) -> ConnectionBody {
    // Connection and integration names are `[a-z0-9-]+`: nothing to escape.
    let authorize_url = (connection.kind == ConnectionKind::Oauth2).then(|| {
        state.public_url(&format!(
            "/oauth/{}/authorize?connection={}",
            connection.integration, connection.name
        ))
    });
    ConnectionBody {
        connection,
        authorize_url,
    }
}

pub async fn list(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<web::Json<ConnectionList>, ApiError> {
    let items = state
        .call(move |engine| async move { engine.list_connections(&tenant.id).await })
        .await?;
    Ok(web::Json(ConnectionList {
        items: items
            .into_iter()
            .map(|connection| body(&state, connection))
            .collect(),
    }))
}

/// `201 Created`; 409 when the tenant has a connection of that name.
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    new: web::Json<NewConnection>,
) -> Result<HttpResponse, ApiError> {
    let new = new.into_inner();
    let connection = state
        .call(move |engine| async move { engine.create_connection(&tenant.id, new).await })
        .await?;
    tracing::info!(
        message = "Connection created.",
        connection = connection.name,
        kind = connection.kind.as_str()
    );
    Ok(HttpResponse::Created().json(body(&state, connection)))
}

pub async fn get(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<ConnectionBody>, ApiError> {
    let name = name.into_inner();
    let connection = state
        .call(move |engine| async move { engine.get_connection(&tenant.id, &name).await })
        .await?;
    Ok(web::Json(body(&state, connection)))
}

/// `200 OK` with `{"revoked": bool}`, or 404.
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<ConnectionDeleted>, ApiError> {
    let name = name.into_inner();
    let deleted = state
        .call(move |engine| async move { engine.delete_connection(&tenant.id, &name).await })
        .await?;
    Ok(web::Json(deleted))
}

/// `200 OK` with `{"ok", "status", "message", "latency_ms", "connection_status"}` whatever the
/// verdict (`status` is the probe's HTTP status, `null` when none arrived), or 404.
pub async fn test(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<ConnectionTest>, ApiError> {
    let name = name.into_inner();
    let tested = state
        .call(move |engine| async move { engine.test_connection(&tenant.id, &name).await })
        .await?;
    Ok(web::Json(tested))
}
