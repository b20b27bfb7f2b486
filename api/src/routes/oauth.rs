//! The OAuth 2.0 authorization-code flow in the browser: `/oauth/{integration}/authorize`
//! (authenticated, redirects to the provider) and `/oauth/callback` (where the provider sends
//! the user back; answers with a small HTML page, or sends the browser back to the dashboard's
//! connections page when the flow started there).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
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
    /// `dashboard`: the callback sends the browser back to the dashboard's connections page
    /// instead of answering with a page of its own.
    pub return_to: Option<String>,
}

/// Marks a flow started from the dashboard, for the callback. `SameSite=Lax`: the provider's
/// redirect back is a cross-site top-level navigation, which a `Strict` cookie would miss. It
/// decides only where the browser lands, never whether the callback is accepted.
const RETURN_COOKIE: &str = "stepwise_oauth_return";
const RETURN_TO_DASHBOARD: &str = "dashboard";
/// Where a dashboard flow ends; the query says how (see [`Finish::dashboard_query`]).
const DASHBOARD_CONNECTIONS: &str = "/ui/#/connections";

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
        (status = 400, description = "`invalid_input`: not an `oauth2` connection of this integration, its app cannot authorize, or an unknown `return_to`.", body = ErrorBody),
        (status = 404, description = "`not_found`: the tenant has no such connection.", body = ErrorBody),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub async fn authorize(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    integration: web::Path<String>,
    query: web::Query<AuthorizeQuery>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let integration = integration.into_inner();
    let AuthorizeQuery {
        connection,
        return_to,
    } = query.into_inner();
    let to_dashboard = match return_to.as_deref() {
        None => false,
        Some(RETURN_TO_DASHBOARD) => true,
        Some(other) => {
            return Err(ApiError::InvalidInput(format!(
                "unknown `return_to` `{other}`: the only value is `{RETURN_TO_DASHBOARD}`"
            )));
        }
    };
    let redirect_uri = state.oauth_redirect_uri();
    let url = state
        .call(move |engine| async move {
            engine
                .authorize_connection(&tenant.id, &integration, &connection, &redirect_uri)
                .await
        })
        .await?;
    let mut response = HttpResponse::Found();
    response
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if to_dashboard {
        // As long as the state it accompanies.
        response.cookie(return_cookie(&request, CookieDuration::minutes(10)));
    }
    Ok(response.finish())
}

fn return_cookie(request: &HttpRequest, max_age: CookieDuration) -> Cookie<'static> {
    Cookie::build(RETURN_COOKIE, RETURN_TO_DASHBOARD)
        .path("/oauth/callback")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(request.connection_info().scheme() == "https")
        .max_age(max_age)
        .finish()
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

/// How a callback ended.
enum Finish {
    Connected(String),
    Failed {
        status: StatusCode,
        /// A stable code the dashboard explains (`unknown_state`, `expired`, ...).
        reason: &'static str,
        message: String,
        /// The provider's error code (`access_denied`, ...), when it sent one.
        provider_error: Option<String>,
    },
}

impl Finish {
    fn failed(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self::Failed {
            status,
            reason,
            message: message.into(),
            provider_error: None,
        }
    }

    fn internal(detail: &str) -> Self {
        tracing::error!(message = "OAuth callback failed.", error = %detail);
        Self::failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "An internal error occurred; see the server log.",
        )
    }

    /// The small page a flow started outside the dashboard ends on.
    fn page(self) -> HttpResponse {
        match self {
            Self::Connected(name) => page(
                StatusCode::OK,
                "Connected",
                &format!("Connection `{name}` is authorized. You can close this page."),
            ),
            Self::Failed {
                status, message, ..
            } => page(status, "Authorization failed", &message),
        }
    }

    /// The query of the dashboard's connections page: codes only, which the dashboard turns
    /// into its own words, so no text from the provider is shown as ours. Nothing to encode:
    /// connection names are `[a-z0-9-]+`, reasons and error codes `[a-z_]+`.
    fn dashboard_query(&self) -> String {
        match self {
            Self::Connected(name) => format!("oauth=connected&connection={name}"),
            Self::Failed {
                reason,
                provider_error,
                ..
            } => match provider_error.as_deref().filter(|code| is_error_code(code)) {
                Some(code) => format!("oauth=failed&reason={reason}&error={code}"),
                None => format!("oauth=failed&reason={reason}"),
            },
        }
    }

    /// `303 See Other` to the dashboard's connections page, clearing the return cookie.
    fn to_dashboard(&self, request: &HttpRequest) -> HttpResponse {
        let location = format!("{DASHBOARD_CONNECTIONS}?{}", self.dashboard_query());
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .cookie(return_cookie(request, CookieDuration::ZERO))
            .finish()
    }
}

/// An RFC 6749 error code's shape (`access_denied`); anything else is not passed on.
fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
}

/// `200` with a success page once the tokens are stored; otherwise a page that says what went
/// wrong: 400 (unknown, reused or expired state, provider error, malformed request), 401 (bad
/// API key), 403 (another tenant's state), 502 (the code exchange failed). A flow started from
/// the dashboard (`return_to=dashboard`) ends with `303` to the dashboard's connections page
/// instead, its query saying how it went.
#[utoipa::path(
    get,
    path = "/oauth/callback",
    tag = "oauth",
    params(CallbackQuery),
    responses(
        (status = 200, description = "The tokens are stored; a page says so.", content_type = "text/html", body = String),
        (status = 303, description = "A flow started from the dashboard: to `/ui/#/connections?oauth=connected&connection=NAME`, or `?oauth=failed&reason=CODE` (`unknown_state`, `expired`, `other_tenant`, `provider_error` with the provider's `error`, `exchange_failed`, `invalid_key`, `malformed`, `internal`).", headers(("Location" = String, description = "The dashboard's connections page."))),
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
    let finish = finish_callback(&request, &state, query.into_inner()).await;
    if request.cookie(RETURN_COOKIE).is_some() {
        finish.to_dashboard(&request)
    } else {
        finish.page()
    }
}

async fn finish_callback(
    request: &HttpRequest,
    state: &web::Data<AppState>,
    query: CallbackQuery,
) -> Finish {
    let CallbackQuery {
        state: oauth_state,
        code,
        error,
        error_description,
    } = query;
    let Some(oauth_state) = oauth_state.filter(|value| !value.is_empty()) else {
        return Finish::failed(
            StatusCode::BAD_REQUEST,
            "malformed",
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
            return Finish::failed(
                StatusCode::BAD_REQUEST,
                "malformed",
                "The request has neither `code` nor `error`.",
            );
        }
    };
    // The callback is usually a browser redirect without an API key; when one is sent, the
    // state must belong to its tenant.
    let expected_tenant = match bearer_token(request).map(str::to_owned) {
        Some(key) => match state
            .call(move |engine| async move { engine.authenticate(&key).await })
            .await
        {
            Ok(Some(tenant)) => Some(tenant.id),
            Ok(None) => {
                return Finish::failed(
                    StatusCode::UNAUTHORIZED,
                    "invalid_key",
                    "The API key is not valid.",
                );
            }
            Err(error) => return Finish::internal(&error.to_string()),
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
            Finish::Connected(connection.name)
        }
        Ok(Err(error)) => {
            let (status, reason) = match &error {
                CallbackError::UnknownState => (StatusCode::BAD_REQUEST, "unknown_state"),
                CallbackError::Expired => (StatusCode::BAD_REQUEST, "expired"),
                CallbackError::Provider { .. } => (StatusCode::BAD_REQUEST, "provider_error"),
                CallbackError::OtherTenant => (StatusCode::FORBIDDEN, "other_tenant"),
                CallbackError::Exchange(_) => (StatusCode::BAD_GATEWAY, "exchange_failed"),
                CallbackError::Engine(engine_error) => {
                    return Finish::internal(&engine_error.to_string());
                }
            };
            tracing::warn!(message = "OAuth callback refused.", %error);
            let provider_error = match &error {
                CallbackError::Provider { error, .. } => Some(error.clone()),
                _ => None,
            };
            Finish::Failed {
                status,
                reason,
                message: error.to_string(),
                provider_error,
            }
        }
        Err(error) => Finish::internal(&error.to_string()),
    }
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
    fn only_error_codes_reach_the_dashboard() {
        let failed = |code: &str| Finish::Failed {
            status: StatusCode::BAD_REQUEST,
            reason: "provider_error",
            message: String::new(),
            provider_error: Some(code.to_owned()),
        };
        assert_eq!(
            failed("access_denied").dashboard_query(),
            "oauth=failed&reason=provider_error&error=access_denied"
        );
        assert_eq!(
            failed("Call 555-0100 now").dashboard_query(),
            "oauth=failed&reason=provider_error"
        );
        assert_eq!(
            Finish::Connected("my-idp".into()).dashboard_query(),
            "oauth=connected&connection=my-idp"
        );
    }

    #[test]
    fn provider_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
