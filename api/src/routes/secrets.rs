//! Per-tenant secrets: list names, create or replace, delete. Values go in and never come back.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use stepwise_engine::SecretInfo;
use stepwise_integrations::SecretValue;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct SecretList {
    pub items: Vec<SecretInfo>,
}

/// `{"name": "API_TOKEN", "value": "..."}`. Its Debug output shows `***` for the value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    pub name: String,
    pub value: SecretValue,
}

#[derive(Debug, Serialize)]
pub struct SecretWrittenBody {
    #[serde(flatten)]
    pub secret: SecretInfo,
    /// False when an existing secret's value was replaced.
    pub created: bool,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    stepwise_engine::store::secrets::validate_name(name).map_err(ApiError::InvalidSecretName)
}

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
pub async fn set(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    body: web::Json<SetSecret>,
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
