//! Authorization server metadata discovery (RFC 8414, and OpenID Connect Discovery 1.0) for
//! OAuth apps that give an `issuer` (or a metadata URL) instead of their endpoints.
//!
//! For issuer `https://host/path` the documents tried, in order, are
//! `https://host/.well-known/oauth-authorization-server/path` (RFC 8414 section 3.1: the
//! well-known segment goes between host and path), then
//! `https://host/.well-known/openid-configuration/path` (the same insertion, RFC 8414 section
//! 5) and `https://host/path/.well-known/openid-configuration` (OpenID Discovery's appended
//! form; the same URL as the previous one when there is no path). The first document served
//! is used, and its `issuer` must be exactly the configured one (RFC 8414 section 3.3), so a
//! document cannot redirect an app to another server's endpoints.

use oauth2::url::Url;
use serde::Deserialize;
use stepwise_integrations::http::{HttpClient, display_url};

use crate::error::EngineError;

/// Largest metadata document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The fields of a metadata document an OAuth app uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The metadata URLs of `issuer`, in the order they are tried.
pub fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let at = |path_and_more: String| {
        let mut url = issuer.clone();
        url.set_path(&path_and_more);
        url
    };
    let mut urls = vec![
        at(format!("/.well-known/oauth-authorization-server{path}")),
        at(format!("/.well-known/openid-configuration{path}")),
    ];
    if !path.is_empty() {
        urls.push(at(format!("{path}/.well-known/openid-configuration")));
    }
    urls
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidInput(message)
}

/// An absolute http(s) URL without query or fragment, as an issuer identifier must be.
fn parse_issuer(issuer: &str) -> Result<Url, EngineError> {
    match Url::parse(issuer) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            Ok(url)
        }
        _ => Err(invalid(
            "`issuer` must be an absolute http(s) URL without query or fragment".into(),
        )),
    }
}

/// Discovers the metadata of `issuer`, or reads it from `discovery_url`; with both, the
/// document found at `discovery_url` must name `issuer`.
pub async fn discover(
    http: &HttpClient,
    issuer: Option<&str>,
    discovery_url: Option<&str>,
) -> Result<Metadata, EngineError> {
    let expected = issuer.map(parse_issuer).transpose()?;
    let candidates = match (discovery_url, &expected) {
        (Some(url), _) => vec![
            Url::parse(url)
                .map_err(|_| invalid("`discovery_url` must be an absolute http(s) URL".into()))?,
        ],
        (None, Some(issuer)) => metadata_urls(issuer),
        (None, None) => return Err(invalid("give `issuer` or `discovery_url`".into())),
    };
    let mut misses = Vec::new();
    for url in candidates {
        let shown = display_url(&url);
        match fetch(http, &url).await? {
            Fetched::Document(metadata) => {
                let issuer = issuer.unwrap_or(&metadata.issuer);
                if metadata.issuer != issuer {
                    return Err(invalid(format!(
                        "the metadata at {shown} is for issuer `{}`, not `{issuer}` (RFC 8414 \
                         requires them to be identical)",
                        metadata.issuer
                    )));
                }
                parse_issuer(&metadata.issuer)?;
                return Ok(metadata);
            }
            Fetched::Missing(why) => misses.push(format!("{shown}: {why}")),
        }
    }
    Err(invalid(format!(
        "no authorization server metadata found ({})",
        misses.join("; ")
    )))
}

enum Fetched {
    Document(Metadata),
    /// Not served here (4xx): the next candidate may have it.
    Missing(String),
}

async fn fetch(http: &HttpClient, url: &Url) -> Result<Fetched, EngineError> {
    let shown = display_url(url);
    let unreachable = |message: String| {
        invalid(format!(
            "cannot read the authorization server metadata at {shown}: {message}"
        ))
    };
    let request = http
        .request(http::Method::GET, url.as_str())
        .map_err(|error| unreachable(error.to_string()))?
        .header(http::header::ACCEPT, "application/json");
    let mut response = http
        .send(request)
        .await
        .map_err(|error| unreachable(error.to_string()))?;
    let status = response.status();
    if status.is_client_error() {
        return Ok(Fetched::Missing(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(unreachable(format!("HTTP {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| unreachable(error.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(unreachable(format!(
                "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map(Fetched::Document)
        .map_err(|error| unreachable(format!("not a metadata document: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(issuer: &str) -> Vec<String> {
        metadata_urls(&Url::parse(issuer).expect("url"))
            .iter()
            .map(Url::to_string)
            .collect()
    }

    #[test]
    fn well_known_segments_go_between_host_and_path() {
        assert_eq!(
            urls("https://idp.example.com"),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server",
                "https://idp.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("https://idp.example.com/tenant/1/"),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/tenant/1",
                "https://idp.example.com/.well-known/openid-configuration/tenant/1",
                "https://idp.example.com/tenant/1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn an_issuer_is_an_absolute_url_without_query() {
        assert!(parse_issuer("https://idp.example.com/x").is_ok());
        for bad in [
            "idp.example.com",
            "https://idp/?a=b",
            "https://idp/#f",
            "ftp://idp",
        ] {
            assert!(parse_issuer(bad).is_err(), "{bad}");
        }
    }
}
