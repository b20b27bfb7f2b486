//! Standard Webhooks (Svix): `webhook-signature: v1,<base64> v1,<base64>`, HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}` keyed by the base64-decoded `whsec_` secret.

use super::common::{
    BASE64, DEFAULT_TOLERANCE, KeyFormat, SignedRequest, bounded_id, check_timestamp, delivery_id,
    parse_timestamp, required, str_field,
};
use super::{Algorithm, Rejection, SigningSecret, Verified, signed_at};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::HeaderMap;

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";

/// The `v1` signatures of the space-separated list; `v1a` (asymmetric) and other versions are
/// ignored.
fn v1_signatures(value: &str) -> Result<Vec<Vec<u8>>, Rejection> {
    let mut signatures = Vec::new();
    for entry in value.split_ascii_whitespace() {
        let (version, signature) = entry
            .split_once(',')
            .ok_or_else(|| Rejection::malformed(SIGNATURE, "expected <version>,<signature>"))?;
        if version == "v1" {
            signatures.push(
                BASE64
                    .decode(signature)
                    .map_err(|_| Rejection::malformed(SIGNATURE, "a v1 signature is not base64"))?,
            );
        }
    }
    Ok(signatures)
}

pub(super) fn verify(
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    let id = required(headers, ID)?;
    let timestamp_text = required(headers, TIMESTAMP)?;
    let signatures = v1_signatures(required(headers, SIGNATURE)?)?;
    let timestamp = parse_timestamp(TIMESTAMP, timestamp_text)?;
    let id = bounded_id(id)
        .ok_or_else(|| Rejection::malformed(ID, "over 255 bytes or holds control characters"))?;
    if signatures.is_empty() {
        return Err(Rejection::NoSupportedSignature {
            header: SIGNATURE.to_owned(),
            expected: "v1",
        });
    }
    let secret_index = SignedRequest {
        algorithm: Algorithm::Sha256,
        key_format: KeyFormat::WhsecBase64,
        content: vec![id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body],
        signatures,
    }
    .authenticate(secrets, now)?;
    check_timestamp(timestamp, DEFAULT_TOLERANCE, now)?;

    // The payload should be JSON with a `type`; other content types are allowed.
    let event_type = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            value
                .as_object()
                .and_then(|object| str_field(object, "type"))
                .map(str::to_owned)
        });
    Ok(Verified {
        delivery_id: delivery_id(Some(id), headers, &[])?,
        event_type,
        challenge: None,
        signed_at: signed_at(timestamp),
        secret_index,
    })
}
