//! Pieces every scheme shares: header reading, timestamps, the MAC check, delivery ids.

use super::{Algorithm, DeliveryId, IdSource, Rejection, SigningSecret};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::time::Duration;
use zeroize::Zeroizing;

/// Default replay window of the timestamped schemes (Stripe, Slack, Standard Webhooks).
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Longest delivery id or idempotency key we accept (they become database keys).
pub(crate) const MAX_ID_LEN: usize = 255;

/// The explicit idempotency header a sender may add.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Standard alphabet, padding optional: senders differ on padding, never on the alphabet.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The value of a header sent at most once, trimmed; an empty value counts as absent.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Rejection> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::malformed(name, "sent more than once"));
    }
    let value = value
        .to_str()
        .map_err(|_| Rejection::malformed(name, "not visible ASCII"))?
        .trim();
    Ok((!value.is_empty()).then_some(value))
}

/// A header the scheme cannot verify without.
pub(crate) fn required<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Rejection> {
    header(headers, name)?.ok_or_else(|| Rejection::missing(name))
}

/// A Unix timestamp in seconds, digits only (what is signed is the text as sent).
pub(crate) fn parse_timestamp(header: &str, value: &str) -> Result<i64, Rejection> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::malformed(
            header,
            "not a Unix timestamp in seconds",
        ));
    }
    value
        .parse()
        .map_err(|_| Rejection::malformed(header, "not a Unix timestamp in seconds"))
}

/// Refuses a timestamp further than `tolerance` from `now`, in either direction.
pub(crate) fn check_timestamp(
    timestamp: i64,
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    let tolerance_secs = tolerance.as_secs();
    let age = i128::from(now.timestamp()) - i128::from(timestamp);
    let clamp = |secs: i128| u64::try_from(secs).unwrap_or(u64::MAX);
    if age > i128::from(tolerance_secs) {
        Err(Rejection::StaleTimestamp {
            age_secs: clamp(age),
            tolerance_secs,
        })
    } else if -age > i128::from(tolerance_secs) {
        Err(Rejection::FutureTimestamp {
            ahead_secs: clamp(-age),
            tolerance_secs,
        })
    } else {
        Ok(())
    }
}

/// How a scheme turns a stored secret into the HMAC key.
#[derive(Clone, Copy)]
pub(crate) enum KeyFormat {
    /// The secret's bytes are the key (GitHub, Stripe, Slack, Shopify, generic).
    Raw,
    /// `whsec_<base64>`, or the bare base64, decoded (Standard Webhooks).
    WhsecBase64,
}

impl KeyFormat {
    /// The HMAC key, or `None` when the secret is unusable (empty, undecodable).
    pub(crate) fn key(self, secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let key = match self {
            Self::Raw => Zeroizing::new(secret.to_vec()),
            Self::WhsecBase64 => {
                let text = std::str::from_utf8(secret).ok()?.trim();
                let text = text.strip_prefix("whsec_").unwrap_or(text);
                Zeroizing::new(BASE64.decode(text).ok()?)
            }
        };
        // An empty key lets anyone sign: never verify with one.
        (!key.is_empty()).then_some(key)
    }
}

/// What a scheme read from the request: the signed content and the candidate signatures.
pub(crate) struct SignedRequest<'a> {
    pub algorithm: Algorithm,
    pub key_format: KeyFormat,
    /// Concatenated, these are the bytes the sender signed.
    pub content: Vec<&'a [u8]>,
    /// Decoded signatures; any one matching any active secret is enough.
    pub signatures: Vec<Vec<u8>>,
}

impl SignedRequest<'_> {
    /// The index (into `secrets`) of the first active secret that produced one of the
    /// signatures.
    pub(crate) fn authenticate(
        &self,
        secrets: &[SigningSecret],
        now: DateTime<Utc>,
    ) -> Result<usize, Rejection> {
        let mut usable = false;
        for (index, secret) in secrets.iter().enumerate() {
            if !secret.is_active(now) {
                continue;
            }
            let Some(key) = self.key_format.key(secret.expose()) else {
                continue;
            };
            usable = true;
            let matched = match self.algorithm {
                Algorithm::Sha1 => self.matches::<Hmac<sha1::Sha1>>(&key),
                Algorithm::Sha256 => self.matches::<Hmac<Sha256>>(&key),
                Algorithm::Sha512 => self.matches::<Hmac<sha2::Sha512>>(&key),
            };
            if matched {
                return Ok(index);
            }
        }
        Err(if usable {
            Rejection::SignatureMismatch
        } else {
            Rejection::NoUsableSecret
        })
    }

    fn matches<M: Mac + KeyInit + Clone>(&self, key: &[u8]) -> bool {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return false;
        };
        for part in &self.content {
            Mac::update(&mut mac, part);
        }
        // Constant-time comparison (`verify_slice`); every candidate is checked.
        self.signatures.iter().fold(false, |found, signature| {
            mac.clone().verify_slice(signature).is_ok() | found
        })
    }
}

const UNUSABLE_ID: &str = "over 255 bytes or holds control characters";

/// A delivery id read from the signed body: absent is fine, unusable is a malformed body.
pub(crate) fn signed_id(value: Option<&str>) -> Result<Option<&str>, Rejection> {
    value
        .map(|id| {
            bounded_id(id).ok_or(Rejection::MalformedBody {
                reason: "the delivery id is empty, over 255 bytes or holds control characters",
            })
        })
        .transpose()
}

/// A delivery id read from a header or the body, bounded in length.
pub(crate) fn bounded_id(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty() && value.len() <= MAX_ID_LEN && !value.chars().any(char::is_control))
        .then_some(value)
}

/// The deduplication key, in order of trust: an id covered by the signature, then the sender's
/// `Idempotency-Key`, then the provider's (unsigned) id headers. None of them: no key, and the
/// delivery is not deduplicated (never on a hash of the body: two identical events are two
/// events).
///
/// `Idempotency-Key` is not covered by any provider's signature, so it never overrides a signed
/// id: otherwise a captured delivery could be replayed within the tolerance under a fresh key.
pub(crate) fn delivery_id(
    signed: Option<&str>,
    headers: &HeaderMap,
    id_headers: &[&str],
) -> Result<Option<DeliveryId>, Rejection> {
    if let Some(id) = signed {
        return Ok(Some(DeliveryId::new(id, IdSource::Signed)));
    }
    if let Some(key) = header(headers, IDEMPOTENCY_KEY)? {
        let key =
            bounded_id(key).ok_or_else(|| Rejection::malformed(IDEMPOTENCY_KEY, UNUSABLE_ID))?;
        return Ok(Some(DeliveryId::new(key, IdSource::IdempotencyKey)));
    }
    for name in id_headers {
        if let Some(id) = header(headers, name)? {
            let id = bounded_id(id).ok_or_else(|| Rejection::malformed(name, UNUSABLE_ID))?;
            return Ok(Some(DeliveryId::new(id, IdSource::Header)));
        }
    }
    Ok(None)
}

/// The media type of the request (`application/json`), lowercased, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Result<Option<String>, Rejection> {
    Ok(header(headers, "content-type")?.map(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }))
}

/// The body as a JSON object.
pub(crate) fn json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(_) => Err(Rejection::MalformedBody {
            reason: "expected a JSON object",
        }),
        Err(_) => Err(Rejection::MalformedBody {
            reason: "not valid JSON",
        }),
    }
}

/// A string field of a JSON object.
pub(crate) fn str_field<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    object.get(name).and_then(serde_json::Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn timestamps_are_digits_only_and_fit_an_i64() {
        assert_eq!(parse_timestamp("t", "1614265330"), Ok(1_614_265_330));
        assert_eq!(parse_timestamp("t", "0"), Ok(0));
        for bad in ["", "-1", "+1", "1.5", " 1", "1e9", "9223372036854775808"] {
            assert_eq!(
                parse_timestamp("t", bad).unwrap_err().code(),
                "malformed_header",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tolerance_is_inclusive_in_both_directions_and_never_overflows() {
        let tolerance = Duration::from_secs(300);
        assert!(check_timestamp(1_000, tolerance, at(1_300)).is_ok());
        assert!(check_timestamp(1_300, tolerance, at(1_000)).is_ok());
        assert_eq!(
            check_timestamp(1_000, tolerance, at(1_301)),
            Err(Rejection::StaleTimestamp {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check_timestamp(1_301, tolerance, at(1_000)),
            Err(Rejection::FutureTimestamp {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(matches!(
            check_timestamp(i64::MAX, tolerance, DateTime::<Utc>::MIN_UTC),
            Err(Rejection::FutureTimestamp { .. })
        ));
        assert!(matches!(
            check_timestamp(i64::MIN, tolerance, DateTime::<Utc>::MAX_UTC),
            Err(Rejection::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn standard_webhooks_keys_accept_the_prefix_or_bare_base64_and_refuse_empty_keys() {
        let decoded = KeyFormat::WhsecBase64
            .key(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(decoded.len(), 24);
        let bare = KeyFormat::WhsecBase64
            .key(b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(*decoded, *bare);
        assert!(KeyFormat::WhsecBase64.key(b"whsec_").is_none());
        assert!(KeyFormat::WhsecBase64.key(b"whsec_not base64").is_none());
        assert!(KeyFormat::WhsecBase64.key(&[0xff, 0xfe]).is_none());
        assert!(KeyFormat::Raw.key(b"").is_none());
        assert_eq!(
            *KeyFormat::Raw.key(b"whsec_x").unwrap(),
            b"whsec_x".to_vec()
        );
    }

    #[test]
    fn headers_sent_twice_or_not_ascii_are_malformed_and_blank_ones_absent() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("  one "));
        headers.insert("x-blank", HeaderValue::from_static("   "));
        headers.insert("x-bytes", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        headers.append("x-twice", HeaderValue::from_static("1"));
        headers.append("x-twice", HeaderValue::from_static("2"));
        assert_eq!(header(&headers, "X-A"), Ok(Some("one")));
        assert_eq!(header(&headers, "x-blank"), Ok(None));
        assert_eq!(header(&headers, "not a header name"), Ok(None));
        assert_eq!(
            required(&headers, "x-blank").unwrap_err().code(),
            "missing_header"
        );
        assert_eq!(
            header(&headers, "x-bytes").unwrap_err().code(),
            "malformed_header"
        );
        assert_eq!(
            header(&headers, "x-twice").unwrap_err().code(),
            "malformed_header"
        );
    }

    #[test]
    fn delivery_ids_prefer_signed_then_idempotency_key_then_headers_and_never_hash_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert("x-id", HeaderValue::from_static("header-id"));
        let id = |signed, headers: &HeaderMap| {
            delivery_id(signed, headers, &["x-other", "x-id"])
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            id(None, &headers),
            DeliveryId::new("header-id", IdSource::Header)
        );
        let none = HeaderMap::new();
        assert_eq!(delivery_id(None, &none, &["x-id"]), Ok(None));
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("idem"));
        assert_eq!(
            id(None, &headers),
            DeliveryId::new("idem", IdSource::IdempotencyKey)
        );
        assert_eq!(
            id(Some("evt_1"), &headers),
            DeliveryId::new("evt_1", IdSource::Signed)
        );
        headers.insert(
            IDEMPOTENCY_KEY,
            HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        );
        assert_eq!(
            delivery_id(None, &headers, &[]).unwrap_err().code(),
            "malformed_header"
        );
        assert_eq!(signed_id(Some("")).unwrap_err().code(), "malformed_body");
        assert_eq!(signed_id(None), Ok(None));
    }
}
