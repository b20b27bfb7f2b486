//! Shopify: `X-Shopify-Hmac-SHA256: <base64>`, HMAC-SHA256 of the raw body.

use super::common::{BASE64, KeyFormat, SignedRequest, delivery_id, header, required};
use super::{Algorithm, Rejection, SigningSecret, Verified};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::HeaderMap;

const SIGNATURE: &str = "x-shopify-hmac-sha256";
/// Shopify's documented deduplication key ("Ignore duplicate webhooks").
const EVENT_ID: &str = "x-shopify-event-id";
/// Older deliveries carry only this one.
const WEBHOOK_ID: &str = "x-shopify-webhook-id";
const TOPIC: &str = "x-shopify-topic";

pub(super) fn verify(
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    let signature = BASE64
        .decode(required(headers, SIGNATURE)?)
        .map_err(|_| Rejection::malformed(SIGNATURE, "expected base64"))?;
    let secret_index = SignedRequest {
        algorithm: Algorithm::Sha256,
        key_format: KeyFormat::Raw,
        content: vec![body],
        signatures: vec![signature],
    }
    .authenticate(secrets, now)?;
    Ok(Verified {
        delivery_id: delivery_id(None, headers, &[EVENT_ID, WEBHOOK_ID])?,
        event_type: header(headers, TOPIC)?.map(str::to_owned),
        challenge: None,
        signed_at: None,
        secret_index,
    })
}
