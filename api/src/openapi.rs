//! The OpenAPI 3.1 document of the HTTP surface, served at `GET /api/openapi.json`. Generated
//! from the code: every handler carries a `#[utoipa::path]` attribute and every wire type
//! derives `ToSchema`; nothing is written by hand. What every authenticated operation shares
//! (security requirements, 401/403, 413/415 for a JSON body, 500) is added once by [`SharedResponses`].

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::auth::{CSRF_HEADER, SESSION_COOKIE};
use crate::error::ErrorBody;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stepwise",
        description = "Durable YAML workflows: deploy, trigger and inspect runs, manage secrets, \
            webhook sources, OAuth apps and connections, and read integration health. Every `/api/v1` route needs \
            `Authorization: Bearer <api key>` (or the dashboard's session cookie) and sees only \
            its tenant's data. Errors are `{\"error\": {\"code\", \"message\"}}`; clients switch \
            on `code`."
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::metrics,
        document,
        routes::webhooks::ingest,
        routes::oauth::authorize,
        routes::oauth::callback,
        routes::dashboard::to_dashboard,
        routes::dashboard::ui_to_dashboard,
        routes::dashboard::index,
        routes::dashboard::app_js,
        routes::dashboard::connect_js,
        routes::dashboard::health_js,
        routes::dashboard::app_css,
        routes::dashboard::session,
        routes::dashboard::login,
        routes::dashboard::logout,
        routes::workflows::list,
        routes::workflows::deploy,
        routes::workflows::get,
        routes::workflows::diff,
        routes::workflows::schedules,
        routes::workflows::disable,
        routes::workflows::enable,
        routes::runs::trigger,
        routes::runs::list,
        routes::runs::get,
        routes::runs::cancel,
        routes::runs::retry,
        routes::runs::rerun,
        routes::secrets::list,
        routes::secrets::set,
        routes::secrets::delete,
        routes::oauth_apps::list,
        routes::oauth_apps::create,
        routes::oauth_apps::get,
        routes::oauth_apps::delete,
        routes::connections::list,
        routes::connections::create,
        routes::connections::get,
        routes::connections::delete,
        routes::connections::test,
        routes::sources::list,
        routes::sources::create,
        routes::sources::delete,
        routes::sources::rotate,
        routes::sources::rejections,
        routes::sources::deliveries,
        routes::integration_health::get,
        routes::providers::list,
        routes::integrations::list,
        routes::integrations::get,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SharedResponses),
    tags(
        (name = "workflows", description = "Deploy YAML workflows (a new version per change) and read them."),
        (name = "runs", description = "Trigger, list, inspect, cancel, retry and re-run runs."),
        (name = "secrets", description = "Per-tenant secrets for `${{ secrets.NAME }}`; values are never returned."),
        (name = "sources", description = "Webhook sources: where senders deliver and how deliveries are verified."),
        (name = "oauth-apps", description = "Per-tenant OAuth 2.0 client registrations."),
        (name = "connections", description = "Credentials actions use: OAuth 2.0, API key, bearer or basic."),
        (name = "integrations", description = "The integration catalogue (providers, actions with their fields, schemas and an example step) and integration health: request outcomes, latency, token refreshes, rate-limit waits and circuits over time."),
        (name = "webhooks", description = "Signed deliveries from providers; the signature authenticates them."),
        (name = "oauth", description = "The browser side of the OAuth 2.0 authorization-code flow."),
        (name = "dashboard", description = "The web dashboard's assets and its cookie session."),
        (name = "operations", description = "Probes, metrics and this document."),
    )
)]
pub struct ApiDoc;

/// The document, built once.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route.", body = serde_json::Value))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(&*DOCUMENT)
}

/// Adds the security schemes, puts every `/api/v1` operation under them, and gives every
/// operation the error responses it shares with the others: 401 and (for a state-changing
/// method) 403 where a credential is required, 413 and 415 where a JSON body is read, 500
/// everywhere.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`stepwise tenants create NAME` prints one).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE.to_owned(),
                format!(
                    "The dashboard's session (`POST /ui/login`); a request other than GET or \
                     HEAD must also send the `{CSRF_HEADER}` header."
                ),
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations_mut(item) {
                if path.starts_with("/api/v1/") {
                    operation.security = Some(credentials());
                }
                let responses = &mut operation.responses.responses;
                if operation.security.is_some() {
                    responses.entry("401".into()).or_insert_with(|| {
                        error_response(
                            "`unauthorized`: no credential, or an unknown API key or session.",
                        )
                    });
                    if !matches!(method, HttpMethod::Get | HttpMethod::Head) {
                        responses.entry("403".into()).or_insert_with(|| {
                            error_response(&format!(
                                "`csrf_rejected`: authenticated by the session cookie without \
                                 the `{CSRF_HEADER}` header."
                            ))
                        });
                    }
                }
                // Bodies read by `crate::body` (JSON only); the others document their own.
                let takes_json = matches!(
                    &operation.request_body,
                    Some(RefOr::T(body))
                        if body.content.keys().all(|media_type| media_type == "application/json")
                );
                if takes_json {
                    responses.entry("413".into()).or_insert_with(|| {
                        error_response("`payload_too_large`: the body is larger than 1 MiB.")
                    });
                    responses.entry("415".into()).or_insert_with(|| {
                        error_response(
                            "`unsupported_media_type`: a body without `Content-Type: \
                             application/json`.",
                        )
                    });
                }
                responses
                    .entry("500".into())
                    .or_insert_with(|| error_response("`internal`: details are in the log."));
            }
        }
    }
}

/// A bearer API key or the dashboard's session cookie.
pub(crate) fn credentials() -> Vec<SecurityRequirement> {
    let none: [&str; 0] = [];
    vec![
        SecurityRequirement::new("bearer", none),
        SecurityRequirement::new("session", none),
    ]
}

fn error_response(description: &str) -> RefOr<Response> {
    let mut response = Response::new(description);
    response.content.insert(
        "application/json".into(),
        RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
    );
    RefOr::T(response)
}

/// Each operation of a path with its method.
pub(crate) fn operations_mut(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Options, item.options.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Trace, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::App;

    use super::*;
    use crate::routes::Endpoint;

    fn documented() -> BTreeSet<Endpoint> {
        let mut document = ApiDoc::openapi();
        document
            .paths
            .paths
            .iter_mut()
            .flat_map(|(path, item)| {
                operations_mut(item)
                    .into_iter()
                    .map(|(method, operation)| Endpoint {
                        authenticated: operation.security.is_some(),
                        method: serde_json::to_value(method)
                            .expect("method JSON")
                            .as_str()
                            .expect("a method is a string")
                            .to_owned(),
                        path: path.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_served() {
        let mut served = Vec::new();
        let _app = App::new().configure(|config| served = routes::configure(config, 1024));
        let served: BTreeSet<Endpoint> = served.into_iter().collect();
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "routes without an OpenAPI operation (or registered with other authentication than \
             documented): {undocumented:?}; documented operations without such a route: \
             {unserved:?}"
        );
    }

    #[test]
    fn api_routes_need_a_credential_and_document_their_errors() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("document JSON");
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["session"]["in"], "cookie");
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths
            .iter()
            .filter(|(path, _)| path.starts_with("/api/v1/"))
        {
            for (method, operation) in item.as_object().expect("path item") {
                let security = operation["security"].as_array();
                assert!(
                    security.is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some())),
                    "{method} {path} has no bearer security: {operation:#}"
                );
                let responses = &operation["responses"];
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
                assert!(
                    responses
                        .as_object()
                        .expect("responses")
                        .keys()
                        .any(|status| status.starts_with('2')),
                    "{method} {path} documents no success response"
                );
            }
        }
    }
}
