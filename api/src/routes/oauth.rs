//! The OAuth 2.0 authorization-code flow in the browser: `/oauth/{integration}/authorize`
//! (authenticated, redirects to the provider) and `/oauth/callback` (where the provider sends
//! the user back; answers with a small HTML page).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use stepwise_engine::oauth::{CallbackError, CallbackOutcome};
use stepwise_integrations::SecretValue;
use utoipa::IntoParams;

use crate::auth::{Authenticated, bearer_token};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// The `oauth2` connection to authorize.
    pub connection: String,
}

/// `302 Found` to the provider's authorization page.
#[utoipa::path(
    get,
    path = "/oauth/{integration}/authorize",
    tag = "oauth",
    params(
        ("integration" = String, Path, description = "The connection's integration (`github`, `slack`, ...)."),
        AuthorizeQuery,
    ),
    responses(
        (status = 302, description = "To the provider's authorization page (with `state` and a PKCE S256 challenge).", headers(("Location" = String, description = "The provider's authorization URL."))),
        (status = 400, description = "`invalid_input`: not an `oauth2` connection of this integration, or its app cannot authorize.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such connection.", body = ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn authorize(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    integration: web::Path<String>,
    query: web::Query<AuthorizeQuery>,
) -> Result<HttpResponse, ApiError> {
    let integration = integration.into_inner();
    let connection = query.into_inner().connection;
    let redirect_uri = state.oauth_redirect_uri();
    let url = state
        .call(move |engine| async move {
            engine
                .authorize_connection(&tenant.id, &integration, &connection, &redirect_uri)
                .await
        })
        .await?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The provider's redirect: `state` plus `code`, or `error` and `error_description`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The `state` issued by the authorize redirect.
    state: Option<String>,
    /// The authorization code, when the user consented.
    code: Option<SecretValue>,
    /// The provider's error code, when the user refused or the request was bad.
    error: Option<String>,
    error_description: Option<String>,
}

/// `200` with a success page once the tokens are stored; otherwise a page that says what went
/// wrong: 400 (unknown, reused or expired state, provider error, malformed request), 401 (bad
/// API key), 403 (another tenant's state), 502 (the code exchange failed).
#[utoipa::path(
    get,
    path = "/oauth/callback",
    tag = "oauth",
    params(CallbackQuery),
    responses(
        (status = 200, description = "The tokens are stored; a page says so.", content_type = "text/html", body = String),
        (status = 400, description = "A page: unknown, reused or expired `state`, a provider error, or neither `code` nor `error`.", content_type = "text/html", body = String),
        (status = 401, description = "A page: an API key was sent and is not valid.", content_type = "text/html", body = String),
        (status = 403, description = "A page: the `state` belongs to another tenant than the API key sent.", content_type = "text/html", body = String),
        (status = 502, description = "A page: the provider refused or failed the code exchange.", content_type = "text/html", body = String),
        (status = 500, description = "A page: an internal error (details in the log).", content_type = "text/html", body = String),
    )
)]
pub async fn callback(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let CallbackQuery {
        state: oauth_state,
        code,
        error,
        error_description,
    } = query.into_inner();
    let Some(oauth_state) = oauth_state.filter(|value| !value.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization failed",
            "The request has no `state` parameter.",
        );
    };
    let outcome = match (code, error) {
        (_, Some(error)) => CallbackOutcome::Error {
            error,
            description: error_description,
        },
        (Some(code), None) => CallbackOutcome::Code(code),
        (None, None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Authorization failed",
                "The request has neither `code` nor `error`.",
            );
        }
    };
    // The callback is usually a browser redirect without an API key; when one is sent, the
    // state must belong to its tenant.
    let expected_tenant = match bearer_token(&request).map(str::to_owned) {
        Some(key) => match state
            .call(move |engine| async move { engine.authenticate(&key).await })
            .await
        {
            Ok(Some(tenant)) => Some(tenant.id),
            Ok(None) => {
                return page(
                    StatusCode::UNAUTHORIZED,
                    "Authorization failed",
                    "The API key is not valid.",
                );
            }
            Err(error) => return internal(&error.to_string()),
        },
        None => None,
    };
    let redirect_uri = state.oauth_redirect_uri();
    let completed = state
        .call_with(move |engine| async move {
            Ok::<_, ApiError>(
                engine
                    .complete_authorization(
                        expected_tenant.as_deref(),
                        &oauth_state,
                        outcome,
                        &redirect_uri,
                    )
                    .await,
            )
        })
        .await;
    match completed {
        Ok(Ok(connection)) => {
            tracing::info!(
                message = "Connection authorized.",
                connection = connection.name
            );
            page(
                StatusCode::OK,
                "Connected",
                &format!(
                    "Connection `{}` is authorized. You can close this page.",
                    connection.name
                ),
            )
        }
        Ok(Err(error)) => {
            let status = match &error {
                CallbackError::UnknownState
                | CallbackError::Expired
                | CallbackError::Provider { .. } => StatusCode::BAD_REQUEST,
                CallbackError::OtherTenant => StatusCode::FORBIDDEN,
                CallbackError::Exchange(_) => StatusCode::BAD_GATEWAY,
                CallbackError::Engine(engine_error) => return internal(&engine_error.to_string()),
            };
            tracing::warn!(message = "OAuth callback refused.", %error);
            page(status, "Authorization failed", &error.to_string())
        }
        Err(error) => internal(&error.to_string()),
    }
}

fn internal(detail: &str) -> HttpResponse {
    tracing::error!(message = "OAuth callback failed.", error = %detail);
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Authorization failed",
        "An internal error occurred; see the server log.",
    )
}

/// A minimal page. The callback URL holds the code: no referrer leaves it, nothing caches it.
fn page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} - Stepwise</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>\n",
        title = escape(title),
        message = escape(message)
    );
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(html)
}

/// HTML text escaping: provider error texts are attacker-controlled.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
