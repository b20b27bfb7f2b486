//! Provider specs: what an integration's OAuth 2.0 endpoints and API base URL are by default.
//! Data, not code; every field can be overridden per OAuth app (sandboxes, self-hosted
//! GitHub, tests). `generic` has no defaults: its endpoints must be configured.

use serde::{Deserialize, Serialize};

/// How the client authenticates at the token endpoint (RFC 6749 2.3.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "client_secret_basic" | "basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" | "post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }
}

/// One provider's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    pub name: &'static str,
    pub authorize_url: Option<&'static str>,
    pub token_url: Option<&'static str>,
    /// An RFC 7009 revocation endpoint; `None` when the provider has none.
    pub revoke_url: Option<&'static str>,
    pub base_url: Option<&'static str>,
    pub auth_method: ClientAuthMethod,
    /// Joins scopes in the authorization request (Slack wants commas).
    pub scope_separator: &'static str,
    /// The cheap authenticated request a connection test sends; `None` when the integration
    /// has none (a connection may configure its own `probe_url`).
    pub probe: Option<ProbeSpec>,
}

/// A cheap authenticated request that shows whether a connection's credentials work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Appended to the API base URL.
    pub path: &'static str,
    pub check: ProbeCheck,
}

/// How a probe's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeCheck {
    /// A 2xx status is success.
    Status,
    /// A 2xx status whose JSON body says `"ok": true` (Slack's Web API envelope).
    OkField,
}

/// GitHub, Slack and Stripe revoke tokens through their own APIs rather than RFC 7009, so they
/// have no `revoke_url` by default. Their probes are the cheapest authenticated reads: GitHub's
/// authenticated user, Slack's `auth.test` (HTTP 200 with `ok: false` when the token is bad)
/// and Stripe's balance.
const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        name: "github",
        authorize_url: Some("https://github.com/login/oauth/authorize"),
        token_url: Some("https://github.com/login/oauth/access_token"),
        revoke_url: None,
        base_url: Some("https://api.github.com"),
        auth_method: ClientAuthMethod::ClientSecretPost,
        scope_separator: " ",
        probe: Some(ProbeSpec {
            method: "GET",
            path: "/user",
            check: ProbeCheck::Status,
        }),
    },
    ProviderSpec {
        name: "slack",
        authorize_url: Some("https://slack.com/oauth/v2/authorize"),
        token_url: Some("https://slack.com/api/oauth.v2.access"),
        revoke_url: None,
        base_url: Some("https://slack.com/api"),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        scope_separator: ",",
        probe: Some(ProbeSpec {
            method: "POST",
            path: "/auth.test",
            check: ProbeCheck::OkField,
        }),
    },
    ProviderSpec {
        name: "stripe",
        authorize_url: Some("https://connect.stripe.com/oauth/authorize"),
        token_url: Some("https://connect.stripe.com/oauth/token"),
        revoke_url: None,
        base_url: Some("https://api.stripe.com"),
        auth_method: ClientAuthMethod::ClientSecretPost,
        scope_separator: " ",
        probe: Some(ProbeSpec {
            method: "GET",
            path: "/v1/balance",
            check: ProbeCheck::Status,
        }),
    },
    ProviderSpec {
        name: "generic",
        authorize_url: None,
        token_url: None,
        revoke_url: None,
        base_url: None,
        auth_method: ClientAuthMethod::ClientSecretBasic,
        scope_separator: " ",
        probe: None,
    },
];

/// The spec of `name`, or `None` for an unknown integration.
pub fn provider(name: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|spec| spec.name == name)
}

/// Every known integration name.
pub fn provider_names() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().map(|spec| spec.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_providers_have_endpoints_and_generic_has_none() {
        for name in ["github", "slack", "stripe"] {
            let spec = provider(name).expect(name);
            assert!(
                spec.authorize_url
                    .is_some_and(|u| u.starts_with("https://"))
            );
            assert!(spec.token_url.is_some_and(|u| u.starts_with("https://")));
        }
        let generic = provider("generic").expect("generic");
        assert_eq!((generic.authorize_url, generic.token_url), (None, None));
        assert!(provider("gitlab").is_none());
    }

    #[test]
    fn auth_methods_accept_the_short_names() {
        assert_eq!(
            ClientAuthMethod::parse("basic"),
            Some(ClientAuthMethod::ClientSecretBasic)
        );
        assert_eq!(
            ClientAuthMethod::parse("client_secret_post"),
            Some(ClientAuthMethod::ClientSecretPost)
        );
        assert_eq!(ClientAuthMethod::parse("private_key_jwt"), None);
    }
}
