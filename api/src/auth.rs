//! Authentication: `Authorization: Bearer <key>` resolves to the API key's tenant; the
//! dashboard's session cookie resolves to its session's tenant. A state-changing request
//! authenticated by the cookie must also carry `X-Stepwise-CSRF` (a custom header: a
//! cross-site form cannot send one and a cross-site script would need a CORS preflight we never
//! grant), besides the cookie being `SameSite=Strict`.
//!
//! Authentication is route middleware ([`authenticate`], installed by
//! [`crate::routes::Routes::authenticated`]): it runs before any of the handler's extractors,
//! so a bad credential is answered 401 before the body is read, whatever the body is.
//! (Extractors of one handler are polled together; an authenticating extractor could lose to
//! a body extractor that fails first.)

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::future::{Ready, ready};
use stepwise_engine::Tenant;

use crate::error::ApiError;
use crate::state::AppState;

/// The tenant of the request's credential. Taking it as a handler argument scopes every engine
/// call of the handler to this tenant; the route must be registered as authenticated, which
/// is what resolves it.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Tenant);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(request.extensions().get::<Self>().cloned().ok_or_else(|| {
            ApiError::Internal(format!(
                "{} {} takes `Authenticated` but is not registered as authenticated",
                request.method(),
                request.path()
            ))
        }))
    }
}

/// Route middleware: resolves the credential to its tenant (for [`Authenticated`]) or answers
/// the error without calling the handler.
pub async fn authenticate(
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match tenant(request.request()).await {
        Ok(tenant) => {
            request.extensions_mut().insert(Authenticated(tenant));
            next.call(request).await
        }
        Err(error) => Ok(request.error_response(error)),
    }
}

async fn tenant(request: &HttpRequest) -> Result<Tenant, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("AppState is not registered".into()))?;
    let tenant = match credential(request)? {
        Credential::ApiKey(key) => {
            state
                .call(move |engine| async move { engine.authenticate(&key).await })
                .await?
        }
        Credential::Session(token) => {
            state
                .call(move |engine| async move { engine.session_tenant(&token).await })
                .await?
        }
    };
    tenant.ok_or(ApiError::Unauthorized)
}

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "stepwise_session";
/// The header a session-cookie request must send unless it is a GET or HEAD.
pub const CSRF_HEADER: &str = "x-stepwise-csrf";

enum Credential {
    ApiKey(String),
    Session(String),
}

/// The request's credential: a bearer key first, else the session cookie (checked for the
/// anti-CSRF header on state-changing methods).
fn credential(request: &HttpRequest) -> Result<Credential, ApiError> {
    if let Some(key) = bearer_token(request) {
        return Ok(Credential::ApiKey(key.to_owned()));
    }
    let cookie = request
        .cookie(SESSION_COOKIE)
        .filter(|cookie| !cookie.value().is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && !request.headers().contains_key(CSRF_HEADER) {
        return Err(ApiError::CsrfRejected);
    }
    Ok(Credential::Session(cookie.value().to_owned()))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn token(value: &str) -> Option<String> {
        let request = TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request();
        bearer_token(&request).map(str::to_owned)
    }

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(token("Bearer sw_abc").as_deref(), Some("sw_abc"));
        assert_eq!(token("bearer  sw_abc ").as_deref(), Some("sw_abc"));
        assert_eq!(token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("sw_abc"), None);
    }
}
