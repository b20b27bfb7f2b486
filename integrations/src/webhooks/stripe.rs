//! Stripe: `Stripe-Signature: t=<ts>,v1=<hex>,v1=<hex>`, HMAC-SHA256 of `{t}.{body}`.

use super::common::{
    DEFAULT_TOLERANCE, KeyFormat, SignedRequest, check_timestamp, delivery_id, json_object,
    media_type, parse_timestamp, required, signed_id, str_field,
};
use super::{Algorithm, Rejection, SigningSecret, Verified, signed_at};
use chrono::{DateTime, Utc};
use http::HeaderMap;

const SIGNATURE: &str = "stripe-signature";

/// The parts of a `Stripe-Signature` header this scheme uses.
struct Header<'a> {
    timestamp: &'a str,
    v1: Vec<Vec<u8>>,
}

fn parse(value: &str) -> Result<Header<'_>, Rejection> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or_else(|| Rejection::malformed(SIGNATURE, "expected comma-separated key=value"))?;
        match key {
            "t" if timestamp.is_some() => {
                return Err(Rejection::malformed(SIGNATURE, "more than one t="));
            }
            "t" => timestamp = Some(value),
            "v1" => v1.push(
                hex::decode(value).map_err(|_| Rejection::malformed(SIGNATURE, "v1 is not hex"))?,
            ),
            // v0 (test-mode legacy) and future schemes are ignored, as Stripe asks.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| Rejection::malformed(SIGNATURE, "no t= timestamp"))?;
    Ok(Header { timestamp, v1 })
}

pub(super) fn verify(
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    let header = parse(required(headers, SIGNATURE)?)?;
    let timestamp = parse_timestamp(SIGNATURE, header.timestamp)?;
    if header.v1.is_empty() {
        return Err(Rejection::NoSupportedSignature {
            header: SIGNATURE.to_owned(),
            expected: "v1",
        });
    }
    let secret_index = SignedRequest {
        algorithm: Algorithm::Sha256,
        key_format: KeyFormat::Raw,
        content: vec![header.timestamp.as_bytes(), b".", body],
        signatures: header.v1,
    }
    .authenticate(secrets, now)?;
    check_timestamp(timestamp, DEFAULT_TOLERANCE, now)?;

    if media_type(headers)?.is_some_and(|media| media != "application/json") {
        return Err(Rejection::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    let event = json_object(body)?;
    Ok(Verified {
        delivery_id: delivery_id(signed_id(str_field(&event, "id"))?, headers, &[])?,
        event_type: str_field(&event, "type").map(str::to_owned),
        challenge: None,
        signed_at: signed_at(timestamp),
        secret_index,
    })
}
