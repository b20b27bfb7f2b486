//! API-key authentication: `Authorization: Bearer <key>` resolves to the key's tenant.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use stepwise_engine::Tenant;

use crate::error::ApiError;
use crate::state::AppState;

/// The tenant of the request's API key. Taking it as a handler argument is what makes a
/// route authenticated; every engine call of such a handler is scoped to this tenant.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Tenant);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = bearer_token(request).map(str::to_owned);
        let state = request.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::Internal("AppState is not registered".into()))?;
            let key = key.ok_or(ApiError::Unauthorized)?;
            state
                .call(move |engine| async move { engine.authenticate(&key).await })
                .await?
                .map(Authenticated)
                .ok_or(ApiError::Unauthorized)
        })
    }
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
