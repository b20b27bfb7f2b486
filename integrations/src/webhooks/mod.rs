//! Webhook signature verification: pure functions from (scheme, secrets, headers, raw body, now)
//! to a [`Verified`] delivery or a [`Rejection`]. No I/O; the api's
//! `POST /webhooks/{provider}/{source}` route calls [`verify`] before storing anything.
//!
//! # Schemes
//!
//! | Scheme | Signature | Signed content | Timestamp, tolerance | Delivery id (dedup) | Event type |
//! |---|---|---|---|---|---|
//! | `github` | `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256) | raw body | none | `X-GitHub-Delivery` | `X-GitHub-Event` |
//! | `stripe` | `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]`; `v0` and unknown keys ignored | `{t}.{body}` | `t`, 300 s | body `id` (signed) | body `type` |
//! | `slack` | `X-Slack-Signature: v0=<hex>` | `v0:{X-Slack-Request-Timestamp}:{body}` | `X-Slack-Request-Timestamp`, 300 s | body `event_id`, else `trigger_id` (signed) | `event.type`, else `type`; slash commands `slash_command` |
//! | `shopify` | `X-Shopify-Hmac-SHA256: <base64>` | raw body | none | `X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id` | `X-Shopify-Topic` |
//! | `standard` (Standard Webhooks, Svix) | `webhook-signature: v1,<base64> [v1,<base64> ...]`; `v1a` and other versions ignored | `{webhook-id}.{webhook-timestamp}.{body}` | `webhook-timestamp`, 300 s | `webhook-id` (signed) | body `type` |
//! | `generic` | configured header, algorithm (`sha1`, `sha256`, `sha512`), encoding (`hex`, `base64`) and optional prefix | body, or `{timestamp}.{body}` with a timestamp header | configured header, `tolerance` (default 5m) | configured `id_header` | configured `event_header` |
//!
//! Every tolerance applies in both directions: a timestamp too old or too far in the future is
//! refused. Timestamps are Unix seconds, digits only.
//!
//! Secrets: the bytes of the secret as the provider shows it. Standard Webhooks secrets are
//! `whsec_<base64>`; the bare base64 (without the prefix) is accepted too, as the reference
//! libraries do. An empty key never verifies.
//!
//! # Rules shared by every scheme
//!
//! - Every active secret is tried against every signature; one match is enough. A secret
//!   whose [`SigningSecret::valid_until`] has passed is ignored (rotation).
//! - The MAC comparison is constant-time (`hmac`'s `verify_slice`).
//! - The signature is checked before the timestamp and before the body is read, so a caller
//!   without the secret learns nothing but 401.
//! - Deduplication ([`DeliveryId`]): an id covered by the signature wins; then an explicit
//!   `Idempotency-Key` header; then the provider's id header. With none of them the delivery
//!   has no id and is not deduplicated: never on a hash of the body (two identical events,
//!   say two equal form posts, are two events).
//!   `Idempotency-Key` is never signed, so it does not override a signed id (a captured
//!   delivery replayed within the tolerance under a fresh key would otherwise pass).
//! - A header read by the scheme and sent twice is malformed (400), never guessed at.
//! - Slack reads the body (`application/json` or `application/x-www-form-urlencoded`, else
//!   415) and answers a `url_verification` with its [`Verified::challenge`]. Stripe reads its
//!   JSON body (`application/json` when a content type is sent, else 415). The other schemes
//!   do not need a content type: GitHub may send form-encoded bodies, Shopify XML ones.
//!
//! Status codes ([`Rejection::status`]): 401 missing or wrong signature, no usable secret,
//! stale or future timestamp; 400 malformed header or body; 415 wrong content type.

mod common;
mod generic;
mod github;
mod rejection;
mod secret;
mod shopify;
mod slack;
mod standard;
mod stripe;

pub use generic::{Encoding, GenericScheme};
pub use rejection::Rejection;
pub use secret::SigningSecret;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// How a webhook source's deliveries are signed. Serialised with a `provider` tag:
/// `{"provider": "github"}`, `{"provider": "generic", "header": "X-Signature", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum WebhookScheme {
    Github,
    Stripe,
    Slack,
    Shopify,
    /// Standard Webhooks (<https://www.standardwebhooks.com>), as sent by Svix and others.
    Standard,
    Generic(GenericScheme),
}

/// A scheme's name in the OpenAPI document: a string, one of [`WebhookScheme::NAMES`].
pub struct WebhookSchemeName;

impl utoipa::PartialSchema for WebhookSchemeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(WebhookScheme::NAMES.iter().copied()))
            .into()
    }
}

impl utoipa::ToSchema for WebhookSchemeName {}

/// The HMAC hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// Signature headers of the schemes no provider declares yet; a provider's declaration lists
/// its own (`webhook.secret_headers` in `provider.yaml`).
const UNDECLARED_SECRET_HEADERS: &[&str] = &[
    "x-shopify-hmac-sha256",
    "webhook-signature",
    "svix-signature",
];

/// Every header that carries a webhook signature or secret (lower case): the declared
/// providers' and the other schemes'. Such headers are never stored or shown.
pub fn secret_headers() -> impl Iterator<Item = &'static str> {
    crate::providers::providers()
        .iter()
        .filter_map(|spec| spec.webhook.as_ref())
        .flat_map(|webhook| webhook.secret_headers.iter().map(String::as_str))
        .chain(UNDECLARED_SECRET_HEADERS.iter().copied())
}

impl WebhookScheme {
    /// Every scheme's name: the `{provider}` segment of `POST /webhooks/{provider}/{source}`.
    pub const NAMES: &[&str] = &[
        "github", "stripe", "slack", "shopify", "standard", "generic",
    ];

    /// The scheme named `provider`; `generic` is the generic scheme's settings, required for
    /// `generic` and refused for every other scheme.
    pub fn named(provider: &str, generic: Option<GenericScheme>) -> Result<Self, String> {
        if !Self::NAMES.contains(&provider) {
            return Err(format!(
                "unknown provider `{provider}`: use {}",
                Self::NAMES.join(", ")
            ));
        }
        match generic {
            Some(generic) if provider == "generic" => Ok(Self::Generic(generic)),
            Some(_) => Err("`generic` is only for provider `generic`".to_owned()),
            None => serde_json::from_value(serde_json::json!({ "provider": provider })).map_err(
                |_| {
                    "a generic source needs `generic`: {\"header\", \"algorithm\", \"encoding\", ...}"
                        .to_owned()
                },
            ),
        }
    }

    /// The `{provider}` path segment of `POST /webhooks/{provider}/{source}` for this scheme.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::Slack => "slack",
            Self::Shopify => "shopify",
            Self::Standard => "standard",
            Self::Generic(_) => "generic",
        }
    }

    /// Checks the configuration itself (header names of a generic scheme); call it when a
    /// source is created.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Generic(generic) => generic.validate(),
            _ => Ok(()),
        }
    }

    /// Whether `secret` can verify anything under this scheme (not empty; for Standard
    /// Webhooks, `whsec_` followed by base64). Call it when a secret is stored: an unusable
    /// secret is skipped at verification time.
    pub fn check_secret(&self, secret: &[u8]) -> Result<(), String> {
        let format = match self {
            Self::Standard => common::KeyFormat::WhsecBase64,
            _ => common::KeyFormat::Raw,
        };
        match format.key(secret) {
            Some(_) => Ok(()),
            None if matches!(format, common::KeyFormat::WhsecBase64) => {
                Err("expected whsec_ followed by non-empty base64".to_owned())
            }
            None => Err("the secret is empty".to_owned()),
        }
    }
}

/// A delivery whose signature matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The key to deduplicate deliveries on; `None` when the sender sent no id (such a
    /// delivery is never deduplicated).
    pub delivery_id: Option<DeliveryId>,
    /// The provider's event type (`push`, `invoice.paid`, `message`, `orders/create`), when sent.
    pub event_type: Option<String>,
    /// Slack `url_verification`: the challenge to echo back in a 200 response. Such a delivery
    /// is not an event and starts no run.
    pub challenge: Option<String>,
    /// The signed timestamp, for the schemes that send one.
    pub signed_at: Option<DateTime<Utc>>,
    /// Index into the `secrets` passed to [`verify`] of the secret that matched (a delivery
    /// still signed with a rotated-out secret is worth a log line).
    pub secret_index: usize,
}

/// The deduplication key of a delivery and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryId {
    pub value: String,
    pub source: IdSource,
}

/// Where a [`DeliveryId`] came from, most trusted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdSource {
    /// Covered by the signature: Stripe and Slack body ids, Standard Webhooks `webhook-id`.
    Signed,
    /// The sender's `Idempotency-Key` header.
    IdempotencyKey,
    /// The provider's unsigned id header (`X-GitHub-Delivery`, `X-Shopify-Event-Id`, the
    /// generic `id_header`).
    Header,
}

impl DeliveryId {
    pub(crate) fn new(value: impl Into<String>, source: IdSource) -> Self {
        Self {
            value: value.into(),
            source,
        }
    }
}

/// Verifies one delivery: `body` is the raw request body, byte for byte as received.
///
/// Tries every secret active at `now` (see [`SigningSecret::valid_until`]).
pub fn verify(
    scheme: &WebhookScheme,
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    match scheme {
        WebhookScheme::Github => github::verify(secrets, headers, body, now),
        WebhookScheme::Stripe => stripe::verify(secrets, headers, body, now),
        WebhookScheme::Slack => slack::verify(secrets, headers, body, now),
        WebhookScheme::Shopify => shopify::verify(secrets, headers, body, now),
        WebhookScheme::Standard => standard::verify(secrets, headers, body, now),
        WebhookScheme::Generic(generic) => generic.verify(secrets, headers, body, now),
    }
}

/// A signed Unix timestamp as a date, when it is one chrono can represent.
fn signed_at(timestamp: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(timestamp, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_scheme_and_every_scheme_named() {
        let generic: GenericScheme = serde_json::from_value(serde_json::json!({
            "header": "X-Signature", "algorithm": "sha256", "encoding": "hex"
        }))
        .expect("generic scheme");
        for name in WebhookScheme::NAMES {
            let settings = (*name == "generic").then(|| generic.clone());
            let scheme = WebhookScheme::named(name, settings).expect(name);
            assert_eq!(scheme.provider(), *name);
        }
        let unknown = WebhookScheme::named("gitlab", None).expect_err("unknown");
        assert!(
            unknown.contains("gitlab") && unknown.contains("standard"),
            "{unknown}"
        );
        assert!(WebhookScheme::named("generic", None).is_err());
        assert!(WebhookScheme::named("github", Some(generic)).is_err());
    }

    #[test]
    fn declared_providers_name_known_schemes_and_their_headers_are_secret() {
        let secret: Vec<&str> = secret_headers().collect();
        for spec in crate::providers::providers() {
            if let Some(webhook) = &spec.webhook {
                assert!(WebhookScheme::NAMES.contains(&webhook.scheme.as_str()));
                assert!(
                    webhook
                        .secret_headers
                        .iter()
                        .all(|h| secret.contains(&h.as_str()))
                );
            }
        }
        assert!(secret.contains(&"x-hub-signature-256"));
        assert!(secret.contains(&"x-shopify-hmac-sha256"));
    }
}
