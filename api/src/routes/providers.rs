//! The provider catalogue: every provider's declaration as the dashboard's pickers need it,
//! and the webhook schemes a source may use. The same for every tenant.

use actix_web::web;
use serde::Serialize;
use stepwise_integrations::providers::{ProviderInfo, providers};
use stepwise_integrations::webhooks::WebhookScheme;
use utoipa::ToSchema;

use crate::auth::Authenticated;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderCatalog {
    /// Every provider, in registration order.
    pub providers: Vec<ProviderInfo>,
    /// What a webhook source's `provider` may be: `POST /webhooks/{provider}/{source}`.
    pub webhook_schemes: Vec<SchemeInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemeInfo {
    #[schema(example = "stripe")]
    pub name: &'static str,
    /// A source of this scheme needs the scheme's settings (`generic`: header, algorithm...).
    pub needs_settings: bool,
}

/// Every provider (from its declaration) and every webhook scheme.
#[utoipa::path(
    get,
    path = "/api/v1/providers",
    tag = "integrations",
    responses((status = 200, description = "The providers and webhook schemes.", body = ProviderCatalog))
)]
pub async fn list(_: Authenticated) -> web::Json<ProviderCatalog> {
    web::Json(ProviderCatalog {
        providers: providers().iter().map(|spec| spec.info()).collect(),
        webhook_schemes: WebhookScheme::NAMES
            .iter()
            .map(|&name| SchemeInfo {
                name,
                needs_settings: WebhookScheme::named(name, None).is_err(),
            })
            .collect(),
    })
}
