//! The web dashboard: static assets compiled into the binary (`web/`, no Node needed to build),
//! and the session endpoints. The dashboard talks to the same `/api/v1` routes as any client,
//! authenticated by an HttpOnly, `SameSite=Strict` session cookie (see [`crate::auth`]).

use std::time::Duration;

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use stepwise_engine::Tenant;
use utoipa::ToSchema;

use crate::auth::{Authenticated, CSRF_HEADER, SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::routes::{Routes, get, post};
use crate::state::AppState;

/// How long a dashboard session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const CONNECT_JS: &str = include_str!("../../../web/connect.js");
const HEALTH_JS: &str = include_str!("../../../web/health.js");
const APP_CSS: &str = include_str!("../../../web/app.css");

/// Everything the page loads comes from this server; nothing may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/", [get(to_dashboard)])
        .resource("/ui", [get(ui_to_dashboard)])
        .resource("/ui/", [get(index)])
        .resource("/ui/app.js", [get(app_js)])
        .resource("/ui/connect.js", [get(connect_js)])
        .resource("/ui/health.js", [get(health_js)])
        .resource("/ui/app.css", [get(app_css)])
        .authenticated("/ui/session", [get(session)])
        .resource("/ui/login", [post(login)])
        .resource("/ui/logout", [post(logout)]);
}

/// The logged-in tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub tenant: Tenant,
}

#[utoipa::path(
    get,
    path = "/",
    tag = "dashboard",
    responses((status = 302, description = "To the dashboard.", headers(("Location" = String, description = "`/ui/`"))))
)]
pub async fn to_dashboard() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

#[utoipa::path(
    get,
    path = "/ui",
    tag = "dashboard",
    responses((status = 302, description = "To the dashboard.", headers(("Location" = String, description = "`/ui/`"))))
)]
pub async fn ui_to_dashboard() -> HttpResponse {
    to_dashboard().await
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The dashboard page (assets embedded in the binary).
#[utoipa::path(
    get,
    path = "/ui/",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's HTML.", content_type = "text/html", body = String))
)]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(
    get,
    path = "/ui/app.js",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's script.", content_type = "text/javascript", body = String))
)]
pub async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The integration health page's script (its own file, so pages can grow apart).
#[utoipa::path(
    get,
    path = "/ui/health.js",
    tag = "dashboard",
    responses((status = 200, description = "The integration health page's script.", content_type = "text/javascript", body = String))
)]
pub async fn health_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", HEALTH_JS)
}

#[utoipa::path(
    get,
    path = "/ui/connect.js",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's connections and webhook sources pages.", content_type = "text/javascript", body = String))
)]
pub async fn connect_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CONNECT_JS)
}

#[utoipa::path(
    get,
    path = "/ui/app.css",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's style sheet.", content_type = "text/css", body = String))
)]
pub async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// Who is logged in: 200 with the tenant, or 401.
#[utoipa::path(
    get,
    path = "/ui/session",
    tag = "dashboard",
    responses((status = 200, description = "The session's tenant.", body = SessionBody)),
    security(("bearer" = []), ("session" = []))
)]
pub async fn session(Authenticated(tenant): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(SessionBody { tenant })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(format = Password)]
    api_key: String,
}

/// Exchanges an API key for a session cookie. Like every state-changing dashboard request it
/// needs the anti-CSRF header, so another site cannot log a browser into its own tenant.
#[utoipa::path(
    post,
    path = "/ui/login",
    tag = "dashboard",
    params(("X-Stepwise-CSRF" = String, Header, description = "Any value; a cross-site form cannot send it.")),
    request_body = Login,
    responses(
        (status = 200, description = "Logged in: the session cookie (HttpOnly, SameSite=Strict, 12 h) is set.", body = SessionBody, headers(("Set-Cookie" = String, description = "`stepwise_session=...`"))),
        (status = 400, description = "`invalid_input`: the body is not `{\"api_key\": \"...\"}`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: unknown API key.", body = ErrorBody),
        (status = 403, description = "`csrf_rejected`: no `X-Stepwise-CSRF` header.", body = ErrorBody),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_csrf_header(&request)?;
    crate::body::require_json_content_type(&request)?;
    let login: Login = crate::body::parse(&body)?;
    let opened = state
        .call(move |engine| async move { engine.open_session(&login.api_key, SESSION_TTL).await })
        .await?;
    let (token, tenant) = opened.ok_or(ApiError::Unauthorized)?;
    let cookie = session_cookie(
        &request,
        token,
        CookieDuration::seconds(SESSION_TTL.as_secs() as i64),
    );
    Ok(HttpResponse::Ok()
        .cookie(cookie)
        .json(SessionBody { tenant }))
}

/// Ends the session (if any) and clears the cookie.
#[utoipa::path(
    post,
    path = "/ui/logout",
    tag = "dashboard",
    params(("X-Stepwise-CSRF" = String, Header, description = "Any value; a cross-site form cannot send it.")),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared."),
        (status = 403, description = "`csrf_rejected`: no `X-Stepwise-CSRF` header.", body = ErrorBody),
    )
)]
pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    require_csrf_header(&request)?;
    if let Some(cookie) = request.cookie(SESSION_COOKIE) {
        let token = cookie.value().to_owned();
        state
            .call(move |engine| async move { engine.close_session(&token).await })
            .await?;
    }
    let cleared = session_cookie(&request, String::new(), CookieDuration::ZERO);
    Ok(HttpResponse::NoContent().cookie(cleared).finish())
}

fn require_csrf_header(request: &HttpRequest) -> Result<(), ApiError> {
    if request.headers().contains_key(CSRF_HEADER) {
        Ok(())
    } else {
        Err(ApiError::CsrfRejected)
    }
}

/// The session cookie: HttpOnly (no script reads it), `SameSite=Strict` (no cross-site request
/// carries it), `Secure` when the request came over TLS.
fn session_cookie(
    request: &HttpRequest,
    value: String,
    max_age: CookieDuration,
) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(request.connection_info().scheme() == "https")
        .max_age(max_age)
        .finish()
}
