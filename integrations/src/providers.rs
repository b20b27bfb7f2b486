//! Provider declarations: everything about a provider that is not an action, one
//! `catalog/{name}/provider.yaml` per provider (ARCHITECTURE.md, `integrations/`). They are
//! embedded at build time (`catalog::DECLARATIONS`, one registration line per provider) and
//! parsed once; the runtime policy, the rate-limit seed, the connection probe, the OAuth
//! defaults, the webhook secret headers and the contract-spec list all derive from them.
//! Every OAuth field can be overridden per OAuth app (sandboxes, self-hosted GitHub, tests).

mod auth;

use std::collections::BTreeMap;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

pub use auth::{
    ConnectionValues, KeptValue, Location, ParamInfo, ParamSpec, Placement, TokenAnswer,
    placeholders, render_url,
};

use serde::{Deserialize, Deserializer, Serialize};
use stepwise_workflows::HttpRetry;

use crate::catalog::DECLARATIONS;
use crate::declarative::ErrorEnvelope;
use crate::http::TlsVersion;
use crate::ratelimit::{HeaderQuota, ProviderProfile};
use crate::runtime::IntegrationPolicy;
use crate::runtime::circuit::CircuitConfig;
use crate::runtime::retry::RetryPolicy;
use crate::runtime::scheduler::RateLimitMode;

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

/// One provider's declaration (`provider.yaml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The integration name: the prefix of its actions, `connection.integration`.
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub docs_url: Option<String>,
    /// The API base URL; `None` when every OAuth app must configure its own.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The connection kinds the provider accepts, as named by connections (`oauth2`,
    /// `bearer`, `api_key`, `basic`).
    pub auth: Vec<String>,
    #[serde(default)]
    pub oauth2: Option<OAuth2Spec>,
    /// The cheap authenticated request a connection test sends; `None` when the integration
    /// has none (a connection may configure its own `probe_url`).
    #[serde(default)]
    pub probe: Option<ProbeSpec>,
    /// The bucket to seed before any response states a limit; `None` paces the provider only
    /// once its responses state one.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    /// How its answers state an error (`crate::declarative::ErrorEnvelope`); every action of
    /// the provider, declared or Rust, reads errors with it.
    #[serde(default)]
    pub errors: Option<ErrorEnvelope>,
    /// Overrides of the runtime's short retry (the fields a step's `http_retry:` has).
    #[serde(default)]
    pub retry: Option<HttpRetry>,
    #[serde(default)]
    pub circuit: Option<CircuitSpec>,
    /// The lowest TLS version the provider's servers need, when below the client's 1.3.
    #[serde(default)]
    pub tls_min: Option<TlsVersion>,
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
    /// Where `contract/refresh.mjs` finds the provider's published OpenAPI description.
    #[serde(default)]
    pub contract: Option<ContractSource>,
    /// Why the folder holds no contract fixtures (`contract/{action}.json`), when it holds
    /// none: a provider without actions of its own (`api/tests/architecture.rs`).
    #[serde(default)]
    pub no_fixtures: Option<String>,
    /// Values each connection gives (`shop`, `subdomain`, `tenant`), read as `{name}` by the
    /// base URL and the OAuth endpoints (`providers/auth.rs`).
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Where an `api_key` connection's key goes, unless the connection names its own header.
    #[serde(default)]
    pub api_key: Option<Placement>,
    /// Headers every call to the provider carries (`Notion-Version`), unless the action sets
    /// them.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `headers` as requests carry them, parsed once when the declaration is loaded.
    #[serde(skip)]
    header_map: reqwest::header::HeaderMap,
}

/// The provider's OAuth 2.0 defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    /// An RFC 7009 revocation endpoint; `None` when the provider has none.
    #[serde(default)]
    pub revoke_url: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// Joins scopes in the authorization request (Slack wants commas).
    #[serde(default = "space")]
    pub scope_separator: String,
    /// What an authorization asks for when the OAuth app names no scopes: what the declared
    /// actions need (Google refuses a request without `scope`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether the authorization request carries a PKCE S256 challenge (RFC 7636); on unless
    /// the provider refuses it.
    #[serde(default = "yes")]
    pub pkce: bool,
    /// Extra authorization request parameters (Google's `access_type: offline` and `prompt:
    /// consent`, without which it gives no refresh token).
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// The dotted path of the object holding the token in the token answer, when it is not at
    /// the top level (Slack's user token: `authed_user`).
    #[serde(default)]
    pub token_path: Option<String>,
    /// Top-level values of the token answer stored with the connection (Salesforce's
    /// `instance_url`), readable as `{name}` by URL templates.
    #[serde(default)]
    pub keep: BTreeMap<String, KeptValue>,
    /// Where the access token goes on each request; `Authorization: Bearer` when not declared.
    #[serde(default)]
    pub token: Option<Placement>,
}

fn yes() -> bool {
    true
}

fn space() -> String {
    " ".to_owned()
}

/// A cheap authenticated request that shows whether a connection's credentials work.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// `GET` or `POST`.
    pub method: String,
    /// Appended to the API base URL.
    pub path: String,
    pub check: ProbeCheck,
}

/// How a probe's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// A 2xx status is success.
    Status,
    /// A 2xx status whose JSON body says `"ok": true` (Slack's Web API envelope).
    OkField,
}

/// The provider's rate limit as the bucket seed: `requests` per `per`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub requests: u64,
    #[serde(deserialize_with = "duration")]
    pub per: Duration,
    /// The fixed window length when headers give a reset but no policy.
    #[serde(default, deserialize_with = "optional_duration")]
    pub window: Option<Duration>,
    /// Wait after a rejection that names no `Retry-After` and no exhausted quota.
    #[serde(default, deserialize_with = "optional_duration")]
    pub rejection_wait: Option<Duration>,
    /// The bucket scope when no header names one (Slack's tier).
    #[serde(default)]
    pub scope: Option<String>,
    /// Quotas stated in headers of the provider's own naming (OpenAI's
    /// `x-ratelimit-remaining-requests` and `-tokens`), lower case.
    #[serde(default)]
    pub header_quotas: Vec<HeaderQuota>,
}

/// Overrides of the runtime's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitSpec {
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub window: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub cool_down: Option<Duration>,
}

/// How the provider signs its webhook deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// The signature scheme (`crate::webhooks::WebhookScheme`): the `{provider}` segment of
    /// `POST /webhooks/{provider}/{source}`.
    pub scheme: String,
    /// Headers that carry signatures or secrets: never stored or shown (lower case).
    pub secret_headers: Vec<String>,
}

/// An npm package holding the provider's published OpenAPI description, and the file in it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSource {
    pub package: String,
    pub file: String,
}

/// What the API and the dashboard show of a provider (`GET /api/v1/providers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    /// The integration name of its connections, OAuth apps and actions.
    #[schema(example = "github")]
    pub name: String,
    #[schema(example = "GitHub")]
    pub display_name: String,
    pub categories: Vec<String>,
    pub docs_url: Option<String>,
    /// The connection kinds it accepts: `oauth2`, `bearer`, `api_key`, `basic`.
    pub auth: Vec<String>,
    /// Its OAuth 2.0 endpoints are known, so an OAuth app needs only a client id and secret.
    pub oauth_endpoints: bool,
    /// The webhook scheme its deliveries are signed with, if it sends webhooks.
    pub webhook_scheme: Option<String>,
    /// The values each of its connections gives (`params` of a new connection).
    pub params: Vec<ParamInfo>,
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

impl ProviderSpec {
    /// Parses one `provider.yaml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut spec: Self = serde_saphyr::from_str(text).map_err(|error| error.to_string())?;
        spec.header_map = spec.parse_headers();
        Ok(spec)
    }

    /// The declared headers every call carries (parsed when the declaration was loaded).
    pub fn static_headers(&self) -> &reqwest::header::HeaderMap {
        &self.header_map
    }

    /// What the API shows of this provider.
    pub fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            categories: self.categories.clone(),
            docs_url: self.docs_url.clone(),
            auth: self.auth.clone(),
            oauth_endpoints: self
                .oauth2
                .as_ref()
                .is_some_and(|o| o.authorize_url.is_some() && o.token_url.is_some()),
            webhook_scheme: self.webhook.as_ref().map(|w| w.scheme.clone()),
            params: self.param_infos(),
        }
    }

    /// The token endpoint's client authentication (HTTP Basic when not declared).
    pub fn client_auth(&self) -> ClientAuthMethod {
        self.oauth2
            .as_ref()
            .map_or_else(ClientAuthMethod::default, |oauth| oauth.client_auth)
    }

    /// The scopes an authorization asks for: the OAuth app's, else the declared defaults.
    pub fn requested_scopes<'a>(&'a self, configured: &'a [String]) -> &'a [String] {
        match &self.oauth2 {
            Some(oauth) if configured.is_empty() => &oauth.scopes,
            _ => configured,
        }
    }

    /// Joins scopes in the authorization request.
    pub fn scope_separator(&self) -> &str {
        self.oauth2
            .as_ref()
            .map_or(" ", |oauth| oauth.scope_separator.as_str())
    }

    /// The rate-limit profile: the declared seed over the generic profile.
    pub fn rate_limit_profile(&self) -> ProviderProfile {
        let generic = ProviderProfile::generic();
        let Some(limit) = &self.rate_limit else {
            return generic;
        };
        ProviderProfile {
            default_window: limit.window,
            rejection_wait: limit.rejection_wait.unwrap_or(generic.rejection_wait),
            implied_scope: limit.scope.clone(),
            header_quotas: limit.header_quotas.clone(),
            ..ProviderProfile::seeded(limit.requests, limit.per)
        }
    }

    /// How the runtime treats this provider: a declared rate limit seeds its buckets (else
    /// they are learned from responses), and the declared retry, circuit and TLS overrides
    /// replace the defaults.
    pub fn policy(&self) -> IntegrationPolicy {
        let rate_limit = match self.rate_limit {
            Some(_) => RateLimitMode::Seeded(self.rate_limit_profile()),
            None => RateLimitMode::Learned(ProviderProfile::generic()),
        };
        let retry = self
            .retry
            .as_ref()
            .map_or_else(RetryPolicy::default, |retry| {
                RetryPolicy::default().overridden_by(retry)
            });
        let defaults = CircuitConfig::default();
        let circuit = self.circuit.map_or(defaults, |circuit| CircuitConfig {
            failure_threshold: circuit
                .failure_threshold
                .unwrap_or(defaults.failure_threshold),
            window: circuit.window.unwrap_or(defaults.window),
            cool_down: circuit.cool_down.unwrap_or(defaults.cool_down),
        });
        IntegrationPolicy {
            rate_limit,
            retry,
            circuit,
            tls_min: self.tls_min,
        }
    }
}

/// Every declaration, parsed once. A test parses them all, so a bad one never ships.
static PROVIDERS: LazyLock<Vec<ProviderSpec>> = LazyLock::new(|| {
    DECLARATIONS
        .iter()
        .map(|(_, text)| {
            ProviderSpec::parse(text).unwrap_or_else(|error| {
                panic!("an embedded provider.yaml is invalid (see providers::tests): {error}")
            })
        })
        .collect()
});

/// Declarations added at run time with [`register`], after the catalogue's.
static REGISTERED: RwLock<Vec<&'static ProviderSpec>> = RwLock::new(Vec::new());

/// Every provider's declaration of the catalogue, in registration order.
pub fn providers() -> &'static [ProviderSpec] {
    &PROVIDERS
}

/// The spec of `name` (the catalogue's, else a registered one), or `None` for an unknown
/// integration.
pub fn provider(name: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|spec| spec.name == name).or_else(|| {
        REGISTERED
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .find(|spec| spec.name == name)
    })
}

/// Adds a declaration that is not in the catalogue (a test proving a provider shape) after
/// the same checks a catalogue declaration passes; refused when its name is taken. It lives
/// as long as the process.
pub fn register(text: &str) -> Result<&'static ProviderSpec, String> {
    let spec = ProviderSpec::parse(text)?;
    spec.check_auth()?;
    let mut registered = REGISTERED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if PROVIDERS
        .iter()
        .chain(registered.iter().copied())
        .any(|known| known.name == spec.name)
    {
        return Err(format!("provider `{}` is already declared", spec.name));
    }
    let spec: &'static ProviderSpec = Box::leak(Box::new(spec));
    registered.push(spec);
    Ok(spec)
}

/// Every known integration name.
pub fn provider_names() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().map(|spec| spec.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a declaration must hold beyond its shape.
    fn check(spec: &ProviderSpec) -> Result<(), String> {
        // A template may start with a kept token value (`{instance_url}`), checked by its pattern.
        let https = |url: &Option<String>| {
            url.as_deref()
                .is_none_or(|u| u.starts_with("https://") || u.starts_with('{'))
        };
        if spec.name.is_empty()
            || !spec
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(format!(
                "name `{}` is not a lower-case identifier",
                spec.name
            ));
        }
        let oauth = spec.oauth2.as_ref();
        let urls = [
            &spec.docs_url,
            &spec.base_url,
            oauth.map_or(&None, |o| &o.authorize_url),
            oauth.map_or(&None, |o| &o.token_url),
            oauth.map_or(&None, |o| &o.revoke_url),
        ];
        if !urls.into_iter().all(https) {
            return Err("every URL is https".into());
        }
        const KINDS: [&str; 4] = ["oauth2", "bearer", "api_key", "basic"];
        if spec.auth.is_empty() || !spec.auth.iter().all(|kind| KINDS.contains(&kind.as_str())) {
            return Err(format!("auth must list some of {KINDS:?}"));
        }
        if spec.auth.iter().any(|kind| kind == "oauth2") != oauth.is_some() {
            return Err("`oauth2` settings exactly when `auth` lists oauth2".into());
        }
        if spec.probe.as_ref().is_some_and(|probe| {
            !matches!(probe.method.as_str(), "GET" | "POST") || !probe.path.starts_with('/')
        }) {
            return Err("a probe is a GET or POST of a path starting with `/`".into());
        }
        if spec
            .rate_limit
            .as_ref()
            .is_some_and(|limit| limit.requests == 0 || limit.per.is_zero())
        {
            return Err("a rate limit is at least one request per non-zero time".into());
        }
        let quota_headers = spec.rate_limit.iter().flat_map(|limit| {
            limit.header_quotas.iter().flat_map(|quota| {
                [&quota.limit, &quota.remaining, &quota.reset, &quota.usage]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
            })
        });
        if quota_headers
            .into_iter()
            .any(|header| header.is_empty() || header.to_ascii_lowercase() != header)
        {
            return Err("rate-limit quota headers are lower case".into());
        }
        let quotas = spec
            .rate_limit
            .iter()
            .flat_map(|limit| &limit.header_quotas);
        for quota in quotas {
            if quota.remaining.is_some() == quota.usage.is_some()
                || (quota.key.is_some() && quota.usage.is_none())
            {
                return Err(
                    "a header quota states `remaining` or `usage` (with its `key`), not both"
                        .into(),
                );
            }
        }
        if let Some(webhook) = &spec.webhook {
            if !crate::webhooks::WebhookScheme::NAMES.contains(&webhook.scheme.as_str()) {
                return Err(format!("unknown webhook scheme `{}`", webhook.scheme));
            }
            if webhook
                .secret_headers
                .iter()
                .any(|header| header.is_empty() || header.to_ascii_lowercase() != *header)
            {
                return Err("webhook secret headers are lower case".into());
            }
        }
        spec.check_auth()
    }

    #[test]
    fn every_declaration_parses_and_is_consistent() {
        let mut names = Vec::new();
        for (folder, text) in DECLARATIONS {
            let spec = ProviderSpec::parse(text)
                .unwrap_or_else(|error| panic!("catalog/{folder}/provider.yaml: {error}"));
            check(&spec).unwrap_or_else(|error| panic!("{folder}: {error}"));
            assert_eq!(&spec.name, folder, "a provider is named after its folder");
            names.push(spec.name);
        }
        assert_eq!(provider_names().collect::<Vec<_>>(), names);
    }

    /// `provider!()` reads the folder, so every action of a provider is named after it and
    /// calls through its integration.
    #[test]
    fn every_action_belongs_to_a_provider_or_a_builtin_family() {
        for action in crate::Registry::builtin().iter() {
            let (prefix, _) = action.name().split_once('.').expect("provider.action");
            assert!(
                provider(prefix).is_some() || ["core", "http", "workflow"].contains(&prefix),
                "{}",
                action.name()
            );
        }
        assert_eq!(
            crate::catalog::provider_of("stepwise_integrations::catalog::slack::post_message"),
            "slack"
        );
    }

    #[test]
    fn an_app_without_scopes_asks_for_the_declared_ones() {
        let slack = provider("slack").expect("slack");
        assert_eq!(
            slack.requested_scopes(&[]),
            ["chat:write", "channels:read", "groups:read"]
        );
        let chosen = ["chat:write".to_owned()];
        assert_eq!(slack.requested_scopes(&chosen), chosen);
        let generic = provider("generic").expect("generic");
        assert!(generic.requested_scopes(&[]).is_empty());
    }

    #[test]
    fn a_bad_declaration_is_refused_with_its_location() {
        let error = ProviderSpec::parse("name: x\ndisplay_name: X\nauth: [bearer]\nbase_ur: y\n")
            .expect_err("unknown field");
        assert!(error.contains("base_ur") && error.contains('4'), "{error}");
        let missing = ProviderSpec::parse("name: x\n").expect_err("missing fields");
        assert!(missing.contains("display_name"), "{missing}");
    }

    #[test]
    fn known_providers_have_endpoints_and_generic_has_none() {
        for name in ["github", "slack", "stripe"] {
            let oauth = provider(name)
                .and_then(|spec| spec.oauth2.as_ref())
                .expect(name);
            assert!(
                oauth
                    .authorize_url
                    .as_ref()
                    .is_some_and(|u| u.starts_with("https://"))
            );
            assert!(
                oauth
                    .token_url
                    .as_ref()
                    .is_some_and(|u| u.starts_with("https://"))
            );
        }
        let generic = provider("generic")
            .and_then(|spec| spec.oauth2.as_ref())
            .expect("generic");
        assert_eq!((&generic.authorize_url, &generic.token_url), (&None, &None));
        assert!(provider("gitlab").is_none());
    }

    #[test]
    fn declared_limits_seed_the_policy_and_the_rest_learn() {
        let github = provider("github").expect("github").policy();
        let RateLimitMode::Seeded(profile) = github.rate_limit else {
            panic!("github is seeded")
        };
        assert_eq!(profile.seed.capacity, 5000);
        assert!((profile.seed.refill_per_sec - 5000.0 / 3600.0).abs() < 1e-9);
        assert_eq!(profile.default_window, Some(Duration::from_secs(3600)));
        assert_eq!(profile.rejection_wait, Duration::from_secs(60));
        let slack = provider("slack").expect("slack").rate_limit_profile();
        assert_eq!(slack.implied_scope.as_deref(), Some("tier3"));
        assert_eq!(slack.seed.capacity, 50);
        let generic = provider("generic").expect("generic").policy();
        assert!(matches!(generic.rate_limit, RateLimitMode::Learned(_)));
        assert_eq!(generic.retry, RetryPolicy::default());
    }

    #[test]
    fn declared_overrides_replace_the_runtime_defaults() {
        let spec = ProviderSpec::parse(
            "name: legacy\ndisplay_name: Legacy\nauth: [api_key]\ntls_min: '1.2'\n\
             retry:\n  max_attempts: 5\ncircuit:\n  cool_down: 2m\n",
        )
        .expect("parse");
        let policy = spec.policy();
        assert_eq!(policy.tls_min, Some(TlsVersion::Tls12));
        assert_eq!(policy.retry.max_attempts, 5);
        assert_eq!(policy.retry.budget, RetryPolicy::default().budget);
        assert_eq!(policy.circuit.cool_down, Duration::from_secs(120));
        assert_eq!(
            policy.circuit.failure_threshold,
            CircuitConfig::default().failure_threshold
        );
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
