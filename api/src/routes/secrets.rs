//! Per-tenant secrets: list names, create or replace, delete. Values go in and never come back.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use stepwise_engine::SecretInfo;
use stepwise_integrations::SecretValue;
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::body::Json;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    pub items: Vec<SecretInfo>,
}

/// `{"name": "API_TOKEN", "value": "..."}`. Its Debug output shows `***` for the value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// `[A-Z_][A-Z0-9_]*`.
    #[schema(example = "API_TOKEN")]
    pub name: String,
    pub value: SecretValue,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretWrittenBody {
    #[serde(flatten)]
    pub secret: SecretInfo,
    /// False when an existing secret's value was replaced.
    pub created: bool,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    stepwise_engine::store::secrets::validate_name(name).map_err(ApiError::InvalidSecretName)
}

/// The tenant's secrets: names and times, never values.
#[utoipa::path(
    get,
    path = "/api/v1/secrets",
    tag = "secrets",
    responses((status = 200, description = "Every secret's name.", body = SecretList))
)]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<web::Json<SecretList>, ApiError> {
    let items = state
        .call(move |engine| async move { engine.list_secrets(&tenant.id).await })
        .await?;
    Ok(web::Json(SecretList { items }))
}

/// `201 Created` for a new secret, `200 OK` when an existing one's value was replaced.
#[utoipa::path(
    post,
    path = "/api/v1/secrets",
    tag = "secrets",
    request_body = SetSecret,
    responses(
        (status = 201, description = "The secret was created.", body = SecretWrittenBody),
        (status = 200, description = "The secret's value was replaced.", body = SecretWrittenBody),
        (status = 400, description = "`invalid_secret_name`: the name is not `[A-Z_][A-Z0-9_]*`; `invalid_input`: bad JSON or an oversized value.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no master key is configured.", body = ErrorBody),
    )
)]
pub async fn set(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    body: Json<SetSecret>,
) -> Result<HttpResponse, ApiError> {
    let SetSecret { name, value } = body.into_inner();
    check_name(&name)?;
    let written = state
        .call(move |engine| async move { engine.set_secret(&tenant.id, &name, &value).await })
        .await?;
    tracing::info!(
        message = "Secret written.",
        secret = written.info.name,
        created = written.created
    );
    let mut response = if written.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(SecretWrittenBody {
        secret: written.info,
        created: written.created,
    }))
}

/// `204 No Content`, or 404 when the tenant has no secret of that name.
#[utoipa::path(
    delete,
    path = "/api/v1/secrets/{name}",
    tag = "secrets",
    params(("name" = String, Path, description = "The secret's name.")),
    responses(
        (status = 204, description = "The secret is deleted."),
        (status = 400, description = "`invalid_secret_name`: the name is not `[A-Z_][A-Z0-9_]*`.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such secret.", body = ErrorBody),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    check_name(&name)?;
    state
        .call(move |engine| async move { engine.delete_secret(&tenant.id, &name).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
