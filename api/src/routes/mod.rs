//! HTTP routes. Everything under `/api/v1` is registered with [`Routes::authenticated`] (the
//! credential is checked before the handler reads anything), takes
//! [`crate::auth::Authenticated`] and scopes every engine call to its tenant.
//!
//! The router is built through [`Routes`], which records every method and path it registers:
//! `crate::openapi`'s test holds that list to the OpenAPI document, so a route without
//! documentation (or documentation without a route) fails the build's tests.

pub mod connections;
pub mod dashboard;
pub mod health;
pub mod integration_health;
pub mod integrations;
pub mod metrics;
pub mod oauth;
pub mod oauth_apps;
pub mod providers;
pub mod runs;
pub mod secrets;
pub mod sources;
pub mod webhooks;
pub mod workflows;

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{FromRequest, Handler, HttpResponse, Responder, Route, web};

use crate::error::ApiError;

/// A method and path the router serves, spelled as the OpenAPI document spells them
/// (lower-case method, `{param}` segments).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
    /// Needs a credential (the document gives the operation a `security` requirement).
    pub authenticated: bool,
}

/// One handler of a resource, for one method.
pub struct MethodRoute {
    method: Method,
    route: Route,
}

fn on<F, Args>(method: Method, handler: F) -> MethodRoute
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    MethodRoute {
        route: web::route().method(method.clone()).to(handler),
        method,
    }
}

pub fn get<F, Args>(handler: F) -> MethodRoute
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    on(Method::GET, handler)
}

pub fn post<F, Args>(handler: F) -> MethodRoute
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    on(Method::POST, handler)
}

pub fn delete<F, Args>(handler: F) -> MethodRoute
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    on(Method::DELETE, handler)
}

/// Registers resources on an actix `ServiceConfig` and remembers what it registered.
pub struct Routes<'a> {
    config: &'a mut web::ServiceConfig,
    endpoints: Vec<Endpoint>,
}

impl Routes<'_> {
    /// Serves `path` with one handler per method; any other method answers 405.
    pub fn resource(
        &mut self,
        path: &str,
        routes: impl IntoIterator<Item = MethodRoute>,
    ) -> &mut Self {
        self.register(path, routes, false)
    }

    /// [`Routes::resource`] whose every method is authenticated first: a missing or wrong
    /// credential is answered before the handler's extractors run (so before the body is read).
    pub fn authenticated(
        &mut self,
        path: &str,
        routes: impl IntoIterator<Item = MethodRoute>,
    ) -> &mut Self {
        self.register(path, routes, true)
    }

    fn register(
        &mut self,
        path: &str,
        routes: impl IntoIterator<Item = MethodRoute>,
        authenticated: bool,
    ) -> &mut Self {
        let mut resource = web::resource(path);
        for MethodRoute { method, route } in routes {
            self.endpoints.push(Endpoint {
                method: method.as_str().to_ascii_lowercase(),
                path: path.to_owned(),
                authenticated,
            });
            resource = resource.route(if authenticated {
                route.wrap(from_fn(crate::auth::authenticate))
            } else {
                route
            });
        }
        self.config.service(resource);
        self
    }
}

/// Registers every route; `webhook_max_bytes` limits a webhook delivery's body (413 beyond).
/// Returns what was registered (see [`Endpoint`]).
pub fn configure(config: &mut web::ServiceConfig, webhook_max_bytes: usize) -> Vec<Endpoint> {
    config.app_data(web::Data::new(webhooks::WebhookMaxBytes(webhook_max_bytes)));
    let mut routes = Routes {
        config,
        endpoints: Vec::new(),
    };
    dashboard::configure(&mut routes);
    routes
        .resource("/healthz", [get(health::healthz)])
        .resource("/readyz", [get(health::readyz)])
        .resource("/metrics", [get(metrics::metrics)])
        .resource("/api/openapi.json", [get(crate::openapi::document)])
        .resource("/webhooks/{provider}/{source}", [post(webhooks::ingest)])
        .authenticated("/oauth/{integration}/authorize", [get(oauth::authorize)])
        .resource("/oauth/callback", [get(oauth::callback)])
        .authenticated(
            "/api/v1/workflows",
            [get(workflows::list), post(workflows::deploy)],
        )
        .authenticated("/api/v1/workflows/{name}", [get(workflows::get)])
        .authenticated("/api/v1/workflows/{name}/diff", [get(workflows::diff)])
        .authenticated(
            "/api/v1/workflows/{name}/schedules",
            [get(workflows::schedules)],
        )
        .authenticated("/api/v1/workflows/{name}/runs", [post(runs::trigger)])
        .authenticated(
            "/api/v1/workflows/{name}/disable",
            [post(workflows::disable)],
        )
        .authenticated("/api/v1/workflows/{name}/enable", [post(workflows::enable)])
        .authenticated("/api/v1/runs", [get(runs::list)])
        .authenticated("/api/v1/runs/{id}", [get(runs::get)])
        .authenticated("/api/v1/runs/{id}/cancel", [post(runs::cancel)])
        .authenticated("/api/v1/runs/{id}/retry", [post(runs::retry)])
        .authenticated("/api/v1/runs/{id}/rerun", [post(runs::rerun)])
        .authenticated("/api/v1/secrets", [get(secrets::list), post(secrets::set)])
        .authenticated("/api/v1/secrets/{name}", [delete(secrets::delete)])
        .authenticated(
            "/api/v1/oauth-apps",
            [get(oauth_apps::list), post(oauth_apps::create)],
        )
        .authenticated(
            "/api/v1/oauth-apps/{name}",
            [get(oauth_apps::get), delete(oauth_apps::delete)],
        )
        .authenticated(
            "/api/v1/connections",
            [get(connections::list), post(connections::create)],
        )
        .authenticated(
            "/api/v1/connections/{name}",
            [get(connections::get), delete(connections::delete)],
        )
        .authenticated("/api/v1/connections/{name}/test", [post(connections::test)])
        .authenticated(
            "/api/v1/sources",
            [get(sources::list), post(sources::create)],
        )
        .authenticated("/api/v1/sources/{name}", [delete(sources::delete)])
        .authenticated("/api/v1/sources/{name}/secret", [post(sources::rotate)])
        .authenticated(
            "/api/v1/sources/{name}/rejections",
            [get(sources::rejections)],
        )
        .authenticated(
            "/api/v1/sources/{name}/deliveries",
            [get(sources::deliveries)],
        )
        .authenticated(
            "/api/v1/integrations/health",
            [get(integration_health::get)],
        )
        .authenticated("/api/v1/providers", [get(providers::list)])
        .authenticated("/api/v1/integrations", [get(integrations::list)])
        // After `/api/v1/integrations/health`, which is matched first (no integration or
        // action is named `health`: action names hold a dot, provider names are their folders).
        .authenticated("/api/v1/integrations/{name}", [get(integrations::get)]);
    routes.endpoints
}

/// Every unknown route, API or not.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".into()))
}
