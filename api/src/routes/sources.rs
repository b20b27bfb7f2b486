//! Webhook sources: list, create, rotate the signing secret, delete, and read the recent
//! deliveries and the rejection log. Signing secrets go in and never come back.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use stepwise_engine::{DeliveryInfo, Page, RejectionInfo, SourceInfo};
use stepwise_integrations::SecretValue;
use stepwise_integrations::webhooks::{GenericScheme, WebhookScheme};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::body::Json;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A source on the wire: where to point the sender, never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceBody {
    pub id: String,
    pub name: String,
    pub provider: String,
    /// The ingest path, relative to the server: `/webhooks/{provider}/{id}`.
    pub url: String,
    /// The generic scheme's settings (header, algorithm, ...), for `generic` sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericScheme>,
    /// While a rotated-out secret still verifies: until when (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<SourceInfo> for SourceBody {
    fn from(info: SourceInfo) -> Self {
        let generic = match info.scheme {
            WebhookScheme::Generic(generic) => Some(generic),
            _ => None,
        };
        Self {
            url: format!("/webhooks/{}/{}", info.provider, info.id),
            id: info.id,
            name: info.name,
            provider: info.provider,
            generic,
            previous_valid_until: info.previous_valid_until,
            created_at: info.created_at,
            updated_at: info.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceList {
    pub items: Vec<SourceBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionList {
    pub items: Vec<RejectionInfo>,
}

/// `{"name": "acme-stripe", "provider": "stripe", "secret": "whsec_..."}`; a `generic`
/// source adds `"generic": {"header": "X-Signature", "algorithm": "sha256", ...}`. Debug
/// shows `***` for the secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    /// `[a-z0-9-]+`, unique in the tenant; workflows subscribe with `on.webhook.source`.
    #[schema(example = "acme-stripe")]
    pub name: String,
    /// A webhook scheme (`GET /api/v1/providers` lists them in `webhook_schemes`).
    #[schema(example = "stripe")]
    pub provider: String,
    #[serde(default)]
    pub generic: Option<GenericScheme>,
    pub secret: SecretValue,
}

/// `{"secret": "...", "previous_valid_for": "24h"}`: the new secret, and how long the old
/// one keeps verifying (omitted: not at all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    pub secret: SecretValue,
    /// How long the replaced secret keeps verifying (humantime, e.g. `24h`).
    #[serde(default)]
    #[schema(example = "24h")]
    pub previous_valid_for: Option<String>,
}

/// Deliveries per page unless `limit` says otherwise.
const DEFAULT_DELIVERY_PAGE: u64 = 20;

fn scheme(provider: &str, generic: Option<GenericScheme>) -> Result<WebhookScheme, ApiError> {
    WebhookScheme::named(provider, generic).map_err(ApiError::InvalidInput)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    stepwise_engine::store::webhooks::validate_name(name).map_err(ApiError::InvalidInput)
}

/// The tenant's webhook sources with their ingest URLs.
#[utoipa::path(
    get,
    path = "/api/v1/sources",
    tag = "sources",
    responses((status = 200, description = "Every source of the tenant.", body = SourceList))
)]
pub async fn list(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<web::Json<SourceList>, ApiError> {
    let items = state
        .call(move |engine| async move { engine.list_sources(&tenant.id).await })
        .await?;
    Ok(web::Json(SourceList {
        items: items.into_iter().map(SourceBody::from).collect(),
    }))
}

/// `201 Created` with the source and its ingest URL; 409 when the name is taken.
#[utoipa::path(
    post,
    path = "/api/v1/sources",
    tag = "sources",
    request_body = CreateSource,
    responses(
        (status = 201, description = "The source; point the sender at its `url`.", body = SourceBody),
        (status = 400, description = "`invalid_input`: bad name, unknown provider, missing or misplaced generic settings, bad JSON.", body = ErrorBody),
        (status = 409, description = "`conflict`: the tenant has a source of that name.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no master key is configured.", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    body: Json<CreateSource>,
) -> Result<HttpResponse, ApiError> {
    let CreateSource {
        name,
        provider,
        generic,
        secret,
    } = body.into_inner();
    check_name(&name)?;
    let scheme = scheme(&provider, generic)?;
    let source = state
        .call(move |engine| async move {
            engine
                .create_source(&tenant.id, &name, &scheme, &secret)
                .await
        })
        .await?;
    tracing::info!(
        message = "Webhook source created.",
        source = source.name,
        provider = source.provider
    );
    Ok(HttpResponse::Created().json(SourceBody::from(source)))
}

/// Replaces the signing secret; `200 OK` with the source.
#[utoipa::path(
    post,
    path = "/api/v1/sources/{name}/secret",
    tag = "sources",
    params(("name" = String, Path, description = "The source's name.")),
    request_body = RotateSecret,
    responses(
        (status = 200, description = "The secret is replaced.", body = SourceBody),
        (status = 400, description = "`invalid_input`: bad name, bad `previous_valid_for`, bad JSON.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such source.", body = ErrorBody),
        (status = 503, description = "`unavailable`: no master key is configured.", body = ErrorBody),
    )
)]
pub async fn rotate(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
    body: Json<RotateSecret>,
) -> Result<web::Json<SourceBody>, ApiError> {
    let name = name.into_inner();
    check_name(&name)?;
    let RotateSecret {
        secret,
        previous_valid_for,
    } = body.into_inner();
    let valid_for = previous_valid_for
        .map(|text| {
            humantime::parse_duration(&text).map_err(|error| {
                ApiError::InvalidInput(format!(
                    "invalid `previous_valid_for` `{text}` ({error}); e.g. `24h`"
                ))
            })
        })
        .transpose()?;
    let source = state
        .call(move |engine| async move {
            engine
                .rotate_source_secret(&tenant.id, &name, &secret, valid_for)
                .await
        })
        .await?;
    Ok(web::Json(SourceBody::from(source)))
}

/// `204 No Content`, or 404 when the tenant has no source of that name.
#[utoipa::path(
    delete,
    path = "/api/v1/sources/{name}",
    tag = "sources",
    params(("name" = String, Path, description = "The source's name.")),
    responses(
        (status = 204, description = "The source is deleted; its deliveries now answer 404."),
        (status = 400, description = "`invalid_input`: not a valid source name.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such source.", body = ErrorBody),
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
        .call(move |engine| async move { engine.delete_source(&tenant.id, &name).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The source's recent rejected deliveries, newest first (at most 100 are kept).
#[utoipa::path(
    get,
    path = "/api/v1/sources/{name}/rejections",
    tag = "sources",
    params(("name" = String, Path, description = "The source's name.")),
    responses(
        (status = 200, description = "The rejection log, without secret-bearing headers.", body = RejectionList),
        (status = 400, description = "`invalid_input`: not a valid source name.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such source.", body = ErrorBody),
    )
)]
pub async fn rejections(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<RejectionList>, ApiError> {
    let name = name.into_inner();
    check_name(&name)?;
    let items = state
        .call(move |engine| async move { engine.recent_rejections(&tenant.id, &name).await })
        .await?;
    Ok(web::Json(RejectionList { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100; default 20.
    pub limit: Option<u64>,
}

/// The source's accepted deliveries, newest first, with the runs each started and how many
/// redelivered copies were answered as duplicates.
#[utoipa::path(
    get,
    path = "/api/v1/sources/{name}/deliveries",
    tag = "sources",
    params(("name" = String, Path, description = "The source's name."), DeliveriesQuery),
    responses(
        (status = 200, description = "One page of deliveries (kept for the delivery retention, 7 days by default).", body = Page<DeliveryInfo>),
        (status = 400, description = "`invalid_input`: not a valid source name.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such source.", body = ErrorBody),
    )
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    name: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<web::Json<Page<DeliveryInfo>>, ApiError> {
    let name = name.into_inner();
    check_name(&name)?;
    let DeliveriesQuery { cursor, limit } = query.into_inner();
    let cursor = cursor.filter(|cursor| !cursor.is_empty());
    let page = state
        .call(move |engine| async move {
            engine
                .recent_deliveries(
                    &tenant.id,
                    &name,
                    cursor.as_deref(),
                    limit.unwrap_or(DEFAULT_DELIVERY_PAGE),
                )
                .await
        })
        .await?;
    Ok(web::Json(page))
}
