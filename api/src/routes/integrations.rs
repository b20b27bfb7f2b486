//! The integration catalogue for people and tools: every integration with its actions, and one
//! integration or action in full (fields, schemas, an example step), from the registry the
//! engine runs and the provider declarations. The same for every tenant; `stepwise
//! integrations` prints the same content.

use actix_web::web;
use stepwise_integrations::reference::{self, IntegrationList, Reference};

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Every integration (built-in families, then providers) with its actions.
#[utoipa::path(
    get,
    path = "/api/v1/integrations",
    tag = "integrations",
    responses((status = 200, description = "The integrations and their actions.", body = IntegrationList))
)]
pub async fn list(state: web::Data<AppState>, _: Authenticated) -> web::Json<IntegrationList> {
    web::Json(reference::list(state.engine().registry()))
}

/// An action with its fields, schemas and an example step (`action` set), or an integration
/// with its actions (`action` null).
#[utoipa::path(
    get,
    path = "/api/v1/integrations/{name}",
    tag = "integrations",
    params(("name" = String, Path, description = "An action (`slack.post_message`) or an integration (`slack`).")),
    responses(
        (status = 200, description = "The integration, and the action when `name` is one.", body = Reference),
        (status = 404, description = "`not_found`: no integration or action has that name; the message names the closest one.", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    _: Authenticated,
    name: web::Path<String>,
) -> Result<web::Json<Reference>, ApiError> {
    reference::lookup(state.engine().registry(), &name)
        .map(web::Json)
        .map_err(|unknown| ApiError::NotFound(unknown.to_string()))
}
