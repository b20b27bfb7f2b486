//! The authentication and connection half of a provider declaration (ARCHITECTURE.md,
//! `integrations/`, provider declarations): where a key or token goes on each request, the
//! static headers every call carries, the per-connection parameters and the URL templates
//! they fill (`https://{shop}.myshopify.com/admin/api/2025-01`), and how an OAuth 2.0 token
//! answer is read (a nested token, values kept from it). Pure: the engine stores what these
//! functions check and shape.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ProviderSpec;

/// Where a credential goes on each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// `header` or `query`.
    #[serde(rename = "in")]
    pub location: Location,
    /// The header or query parameter name (`X-Shopify-Access-Token`, `key`).
    pub name: String,
    /// Written before the secret (`"Bearer "`); headers only.
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Header,
    Query,
}

/// A value each connection of the provider gives at creation (Shopify's `shop`, Zendesk's
/// `subdomain`, Microsoft's `tenant`), which the provider's URL templates read as `{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// What to type, for the dashboard's form and error messages.
    pub description: String,
    /// A regular expression the whole value must match; a DNS label when not declared, so a
    /// value placed in a host name cannot leave the provider's domain.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Used when the connection gives none; without one the parameter is required.
    #[serde(default)]
    pub default: Option<String>,
}

/// A parameter as `GET /api/v1/providers` shows it, for the dashboard's connection form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ParamInfo {
    #[schema(example = "shop")]
    pub name: String,
    pub description: String,
    /// The regular expression the whole value must match.
    pub pattern: String,
    pub default: Option<String>,
}

/// A value kept from the OAuth 2.0 token answer (Salesforce's `instance_url`), readable by
/// URL templates like a parameter; stored sealed with the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptValue {
    /// A regular expression the whole value must match before a URL uses it: the token answer
    /// comes over the network and must not point requests elsewhere.
    pub pattern: String,
}

/// A lower-case DNS label: the default pattern of a parameter.
const DNS_LABEL: &str = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";

/// Characters no parameter value may hold, whatever its pattern: each could change which
/// host or path a URL template points at (so could a value of dots only, refused too).
const URL_STRUCTURE: &[char] = &['/', '?', '#', '@', ':', '\\', '%', '{', '}'];

/// Whether the whole of `value` matches `pattern` (compiled once per pattern).
fn full_match(pattern: &str, value: &str) -> Result<bool, String> {
    static CACHE: LazyLock<std::sync::Mutex<BTreeMap<String, regex::Regex>>> =
        LazyLock::new(Default::default);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !cache.contains_key(pattern) {
        let compiled = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|error| format!("pattern `{pattern}` is invalid: {error}"))?;
        cache.insert(pattern.to_owned(), compiled);
    }
    Ok(cache[pattern].is_match(value))
}

impl ParamSpec {
    fn pattern(&self) -> &str {
        self.pattern.as_deref().unwrap_or(DNS_LABEL)
    }

    /// Whether `value` is acceptable; the message names the parameter, never the value's
    /// place in a URL.
    fn check(&self, name: &str, value: &str) -> Result<(), String> {
        if value.is_empty()
            || value.len() > 255
            || value.bytes().all(|b| b == b'.')
            || value.contains(URL_STRUCTURE)
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
            || !full_match(self.pattern(), value)?
        {
            return Err(format!(
                "parameter `{name}` must match `{}` ({})",
                self.pattern(),
                self.description
            ));
        }
        Ok(())
    }
}

/// The values a connection's URL templates read: its parameters and what was kept from its
/// token answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionValues {
    pub params: BTreeMap<String, String>,
    pub kept: BTreeMap<String, String>,
}

impl ProviderSpec {
    /// Checks the parameters a new connection gives: each declared, each matching its
    /// pattern, every parameter without a default present.
    pub fn check_params(&self, params: &BTreeMap<String, String>) -> Result<(), String> {
        for (name, value) in params {
            let spec = self.params.get(name).ok_or_else(|| {
                let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                format!(
                    "integration `{}` has no parameter `{name}` (it has: {})",
                    self.name,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })?;
            spec.check(name, value)?;
        }
        for (name, spec) in &self.params {
            if spec.default.is_none() && !params.contains_key(name) {
                return Err(format!(
                    "a connection of `{}` needs parameter `{name}` ({})",
                    self.name, spec.description
                ));
            }
        }
        Ok(())
    }

    /// What `{name}` stands for in this provider's URL templates: the connection's parameters
    /// (checked again: a declaration may have tightened a pattern since), their defaults, and
    /// the kept token values that match their patterns.
    pub fn url_values(
        &self,
        values: &ConnectionValues,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut resolved = BTreeMap::new();
        for (name, spec) in &self.params {
            let value = values.params.get(name).or(spec.default.as_ref());
            if let Some(value) = value {
                spec.check(name, value)?;
                resolved.insert(name.clone(), value.clone());
            }
        }
        let kept = self.oauth2.as_ref().map(|oauth| &oauth.keep);
        for (name, spec) in kept.into_iter().flatten() {
            if let Some(value) = values.kept.get(name) {
                if !full_match(&spec.pattern, value)? {
                    return Err(format!(
                        "the token answer's `{name}` does not match `{}`",
                        spec.pattern
                    ));
                }
                resolved.insert(name.clone(), value.clone());
            }
        }
        Ok(resolved)
    }

    /// Its parameters as the API shows them.
    pub fn param_infos(&self) -> Vec<ParamInfo> {
        self.params
            .iter()
            .map(|(name, spec)| ParamInfo {
                name: name.clone(),
                description: spec.description.clone(),
                pattern: spec.pattern().to_owned(),
                default: spec.default.clone(),
            })
            .collect()
    }

    /// The declared headers, parsed; a malformed one is refused by the declaration's checks,
    /// so none is dropped here in practice.
    pub(super) fn parse_headers(&self) -> http::HeaderMap {
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                    http::HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect()
    }

    /// How a credential of connection kind `kind` is placed: the declared placement of an
    /// `api_key` key or an `oauth2` token; `None` keeps the kind's own header.
    pub fn placement(&self, kind: &str) -> Option<&Placement> {
        match kind {
            "api_key" => self.api_key.as_ref(),
            "oauth2" => self.oauth2.as_ref()?.token.as_ref(),
            _ => None,
        }
    }

    /// Every `{name}` any of this provider's URL templates reads.
    fn template_names(&self) -> Vec<String> {
        let oauth = self.oauth2.as_ref();
        [
            self.base_url.as_ref(),
            oauth.and_then(|o| o.authorize_url.as_ref()),
            oauth.and_then(|o| o.token_url.as_ref()),
            oauth.and_then(|o| o.revoke_url.as_ref()),
        ]
        .into_iter()
        .flatten()
        .flat_map(|template| placeholders(template))
        .collect()
    }

    /// The declaration's own consistency: patterns compile, defaults match them, every
    /// template placeholder is a parameter or a kept value, placements are well formed.
    pub(super) fn check_auth(&self) -> Result<(), String> {
        for (name, spec) in &self.params {
            full_match(spec.pattern(), "")?;
            if let Some(default) = &spec.default {
                spec.check(name, default)?;
            }
        }
        let oauth = self.oauth2.as_ref();
        for spec in oauth.into_iter().flat_map(|o| o.keep.values()) {
            full_match(&spec.pattern, "")?;
        }
        for name in self.template_names() {
            let kept = oauth.is_some_and(|o| o.keep.contains_key(&name));
            if !self.params.contains_key(&name) && !kept {
                return Err(format!(
                    "`{{{name}}}` is neither a parameter nor a kept token value"
                ));
            }
        }
        let placements = [self.api_key.as_ref(), oauth.and_then(|o| o.token.as_ref())];
        for placement in placements.into_iter().flatten() {
            let header = placement.location == Location::Header;
            if placement.name.is_empty()
                || (header && http::HeaderName::from_bytes(placement.name.as_bytes()).is_err())
                || (!header && !placement.prefix.is_empty())
            {
                return Err(format!("placement `{}` is malformed", placement.name));
            }
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(format!("static header `{name}` is malformed"));
            }
        }
        if oauth.is_some_and(|o| {
            o.authorize_params
                .keys()
                .any(|key| RESERVED.contains(&key.as_str()))
        }) {
            return Err(format!("authorize_params may not set any of {RESERVED:?}"));
        }
        Ok(())
    }
}

/// Authorization request parameters the flow itself sets.
const RESERVED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The `{name}` placeholders of `template`, in order.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start..].find('}') else {
            break;
        };
        names.push(rest[start + 1..start + length].to_owned());
        rest = &rest[start + length + 1..];
    }
    names
}

/// `template` with each `{name}` replaced by its value; the result must still be an absolute
/// http(s) URL. Errors name the missing placeholder, never a value.
pub fn render_url(template: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut rendered = template.to_owned();
    for name in placeholders(template) {
        let value = values.get(&name).ok_or_else(|| {
            format!("the URL template needs `{name}`, which the connection does not have")
        })?;
        rendered = rendered.replace(&format!("{{{name}}}"), value);
    }
    match reqwest::Url::parse(&rendered) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(rendered),
        _ => Err("the rendered URL is not an absolute http(s) URL".into()),
    }
}

/// An OAuth 2.0 token answer as the engine's OAuth client reads it (RFC 6749 5.1 at the top
/// level), and the values the declaration keeps from it.
#[derive(Debug)]
pub struct TokenAnswer {
    /// The answer reshaped into RFC 6749's: the nested token lifted to the top level, an
    /// error answered with HTTP 200 turned into an error answer. Holds tokens: never logged.
    pub body: Vec<u8>,
    /// The answer is an OAuth error (`{"error": ...}`), whatever its HTTP status said.
    pub is_error: bool,
    pub kept: BTreeMap<String, String>,
}

impl super::OAuth2Spec {
    /// Reads a token endpoint's JSON answer: `token_path` names the object that holds the
    /// token (Slack's user token under `authed_user`), `keep` the top-level string values to
    /// store with the connection. Slack and GitHub answer a refused code with HTTP 200 and an
    /// `error` field; that is an error answer. A body that is not a JSON object is left as it
    /// is for the OAuth client to refuse.
    pub fn read_token_answer(&self, body: &[u8]) -> TokenAnswer {
        let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
            return TokenAnswer {
                body: body.to_vec(),
                is_error: false,
                kept: BTreeMap::new(),
            };
        };
        let kept = self
            .keep
            .keys()
            .filter_map(|name| Some((name.clone(), top.get(name)?.as_str()?.to_owned())))
            .collect();
        let is_error =
            top.get("error").is_some_and(Value::is_string) && top.get("access_token").is_none();
        let nested = self
            .token_path
            .as_deref()
            .and_then(|path| {
                let mut keys = path.split('.');
                let first = top.get(keys.next()?)?;
                keys.try_fold(first, |node, key| node.get(key))
            })
            .and_then(Value::as_object)
            .filter(|nested| nested.contains_key("access_token"))
            .cloned();
        let mut shaped = match nested {
            Some(nested) if !is_error => nested,
            _ => top,
        };
        // Slack's envelope field is not part of RFC 6749's answer.
        shaped.remove("ok");
        if is_error {
            shaped.retain(|key, _| {
                matches!(key.as_str(), "error" | "error_description" | "error_uri")
            });
        } else if !shaped.contains_key("token_type") {
            // Some providers (Slack's user token, Salesforce) omit it; the token is a bearer
            // token unless the declaration places it elsewhere.
            shaped.insert("token_type".into(), Value::String("bearer".into()));
        }
        TokenAnswer {
            body: serde_json::to_vec(&Value::Object(shaped)).unwrap_or_else(|_| body.to_vec()),
            is_error,
            kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ProviderSpec {
        let spec = ProviderSpec::parse(yaml).expect("parse");
        spec.check_auth().expect("consistent");
        spec
    }

    fn shopify_like() -> ProviderSpec {
        spec(
            "name: shop\ndisplay_name: Shop\nauth: [oauth2, api_key]\n\
             base_url: https://{shop}.myshopify.com/admin/api/2025-01\n\
             params:\n  shop:\n    description: the shop's subdomain\n\
             api_key:\n  in: header\n  name: X-Shopify-Access-Token\n\
             oauth2:\n  authorize_url: https://{shop}.myshopify.com/admin/oauth/authorize\n\
             \x20 token_url: https://{shop}.myshopify.com/admin/oauth/access_token\n\
             \x20 token:\n    in: header\n    name: X-Shopify-Access-Token\n",
        )
    }

    fn values(params: &[(&str, &str)]) -> ConnectionValues {
        ConnectionValues {
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            kept: BTreeMap::new(),
        }
    }

    #[test]
    fn a_parameter_shapes_the_base_url_and_cannot_leave_the_domain() {
        let shop = shopify_like();
        let good = values(&[("shop", "acme-store")]);
        shop.check_params(&good.params).expect("a DNS label");
        let resolved = shop.url_values(&good).expect("values");
        assert_eq!(
            render_url(shop.base_url.as_deref().unwrap(), &resolved).expect("render"),
            "https://acme-store.myshopify.com/admin/api/2025-01"
        );
        for evil in [
            "evil.com/",
            "evil.com#",
            "evil.com?",
            "a@evil.com",
            "evil.com:443",
            "a.evil",
            "-acme",
            "ACME",
            "",
            "a b",
            "%2e",
            &"a".repeat(64),
        ] {
            let error = shop
                .check_params(&values(&[("shop", evil)]).params)
                .expect_err(evil);
            assert!(error.contains("`shop`"), "{error}");
            assert!(
                shop.url_values(&values(&[("shop", evil)])).is_err(),
                "{evil}"
            );
        }
        let missing = shop.check_params(&BTreeMap::new()).expect_err("required");
        assert!(missing.contains("needs parameter `shop`"), "{missing}");
        let unknown = shop
            .check_params(&values(&[("shop", "a"), ("region", "eu")]).params)
            .expect_err("unknown");
        assert!(unknown.contains("no parameter `region`"), "{unknown}");
    }

    #[test]
    fn a_default_fills_a_tenant_in_the_path_and_a_pattern_widens_it() {
        let microsoft = spec(
            "name: ms\ndisplay_name: MS\nauth: [oauth2]\nbase_url: https://graph.microsoft.com/v1.0\n\
             params:\n  tenant:\n    description: directory\n    pattern: '[A-Za-z0-9.-]+'\n    default: common\n\
             oauth2:\n  authorize_url: https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize\n\
             \x20 token_url: https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token\n",
        );
        let template = microsoft
            .oauth2
            .as_ref()
            .unwrap()
            .authorize_url
            .clone()
            .unwrap();
        let default = microsoft.url_values(&ConnectionValues::default()).unwrap();
        assert_eq!(
            render_url(&template, &default).unwrap(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        );
        let own = microsoft
            .url_values(&values(&[("tenant", "contoso.onmicrosoft.com")]))
            .unwrap();
        assert!(
            render_url(&template, &own)
                .unwrap()
                .contains("/contoso.onmicrosoft.com/")
        );
        for climbing in ["..", ".", "contoso/x", "a%2f"] {
            assert!(
                microsoft
                    .check_params(&values(&[("tenant", climbing)]).params)
                    .is_err()
            );
        }
    }

    #[test]
    fn a_kept_value_is_used_only_when_it_matches_its_pattern() {
        let salesforce = spec(
            "name: sf\ndisplay_name: SF\nauth: [oauth2]\nbase_url: '{instance_url}/services/data/v60.0'\n\
             oauth2:\n  authorize_url: https://login.salesforce.com/services/oauth2/authorize\n\
             \x20 token_url: https://login.salesforce.com/services/oauth2/token\n\
             \x20 keep:\n    instance_url:\n      pattern: 'https://[a-z0-9-]+(\\.[a-z0-9-]+)*\\.my\\.salesforce\\.com'\n",
        );
        let mut found = ConnectionValues::default();
        found.kept.insert(
            "instance_url".into(),
            "https://acme.my.salesforce.com".into(),
        );
        let resolved = salesforce.url_values(&found).unwrap();
        assert_eq!(
            render_url(salesforce.base_url.as_deref().unwrap(), &resolved).unwrap(),
            "https://acme.my.salesforce.com/services/data/v60.0"
        );
        found.kept.insert(
            "instance_url".into(),
            "https://evil.example/x?.my.salesforce.com".into(),
        );
        assert!(salesforce.url_values(&found).is_err());
        let error = render_url(
            salesforce.base_url.as_deref().unwrap(),
            &salesforce.url_values(&ConnectionValues::default()).unwrap(),
        )
        .expect_err("not authorized yet");
        assert!(error.contains("instance_url"), "{error}");
    }

    #[test]
    fn inconsistent_declarations_are_refused() {
        let refused = |yaml: &str| {
            ProviderSpec::parse(yaml)
                .expect("parse")
                .check_auth()
                .expect_err(yaml)
        };
        let head = "name: x\ndisplay_name: X\nauth: [api_key]\n";
        refused(&format!("{head}base_url: https://{{region}}.x.com\n"));
        refused(&format!(
            "{head}params:\n  a:\n    description: d\n    pattern: '('\n"
        ));
        refused(&format!(
            "{head}params:\n  a:\n    description: d\n    default: Not_A_Label\n"
        ));
        refused(&format!(
            "{head}api_key:\n  in: query\n  name: key\n  prefix: 'Bearer '\n"
        ));
        refused(&format!(
            "{head}api_key:\n  in: header\n  name: 'bad header'\n"
        ));
        refused(&format!(
            "{head}headers:\n  Notion-Version: \"bad\\nvalue\"\n"
        ));
        refused(
            "name: x\ndisplay_name: X\nauth: [oauth2]\noauth2:\n  authorize_params:\n    state: fixed\n",
        );
    }

    #[test]
    fn a_nested_token_is_lifted_and_values_are_kept() {
        let slack = spec(
            "name: s\ndisplay_name: S\nauth: [oauth2]\noauth2:\n  token_path: authed_user\n\
             \x20 keep:\n    team_id:\n      pattern: 'T[A-Z0-9]+'\n",
        );
        let oauth = slack.oauth2.as_ref().unwrap();
        let answer = oauth.read_token_answer(
            br#"{"ok":true,"team_id":"T1","authed_user":{"id":"U1","scope":"chat:write","access_token":"xoxp-1","token_type":"user"}}"#,
        );
        assert!(!answer.is_error);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["access_token"], "xoxp-1");
        assert_eq!(body["scope"], "chat:write");
        assert_eq!(answer.kept.get("team_id").map(String::as_str), Some("T1"));
        let refused = oauth.read_token_answer(br#"{"ok":false,"error":"invalid_code"}"#);
        assert!(refused.is_error);
        assert_eq!(
            serde_json::from_slice::<Value>(&refused.body).unwrap(),
            serde_json::json!({"error": "invalid_code"})
        );
        let bot =
            oauth.read_token_answer(br#"{"ok":true,"access_token":"xoxb-1","token_type":"bot"}"#);
        assert_eq!(
            serde_json::from_slice::<Value>(&bot.body).unwrap()["access_token"],
            "xoxb-1"
        );
        assert_eq!(oauth.read_token_answer(b"not json").body, b"not json");
    }
}
