//! Per-tenant connections: list, create, get, delete (which revokes OAuth tokens), test.
//! Secrets go in and never come back; an OAuth 2.0 connection answers with the URL that
//! authorizes it.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use stepwise_engine::store::connections::{ConnectionInfo, ConnectionKind, NewConnection};
use stepwise_engine::{ConnectionDeleted, ConnectionTest};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::body::Json;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionBody {
    #[serde(flatten)]
    pub connection: ConnectionInfo,
    /// For `oauth2` connections: open this (with the API key) to authorize or re-authorize.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
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

/// The tenant's connections with their status; never a secret.
#[utoipa::path(
    get,
    path = "/api/v1/connections",
    tag = "connections",
    responses((status = 200, description = "Every connection of the tenant.", body = ConnectionList))
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/connections",
    tag = "connections",
    request_body = NewConnection,
    responses(
        (status = 201, description = "The connection; an `oauth2` one is authorized at its `authorize_url`.", body = ConnectionBody),
        (status = 400, description = "`invalid_input`: bad name, fields that do not fit the kind, unknown OAuth app, bad JSON.", body = ErrorBody),
        (status = 409, description = "`conflict`: the tenant has a connection of that name.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no master key is configured.", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    new: Json<NewConnection>,
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

#[utoipa::path(
    get,
    path = "/api/v1/connections/{name}",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name.")),
    responses(
        (status = 200, description = "The connection.", body = ConnectionBody),
        (status = 404, description = "`not_found`: the tenant has no such connection.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{name}",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name.")),
    responses(
        (status = 200, description = "The connection is deleted; OAuth tokens were revoked when the provider allows it (RFC 7009).", body = ConnectionDeleted),
        (status = 404, description = "`not_found`: the tenant has no such connection.", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/connections/{name}/test",
    tag = "connections",
    params(("name" = String, Path, description = "The connection's name.")),
    responses(
        (status = 200, description = "The probe's verdict (testConnection): an authenticated request to the provider through the integration chain. Refused credentials mark the connection `needs_reauth`.", body = ConnectionTest),
        (status = 404, description = "`not_found`: the tenant has no such connection.", body = ErrorBody),
    )
)]
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
