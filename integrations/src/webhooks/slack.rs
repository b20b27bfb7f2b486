//! Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{body}`.
//!
//! Events API deliveries are JSON; slash commands and interactivity are form-encoded (the
//! latter with a JSON `payload` field).

use super::common::{
    DEFAULT_TOLERANCE, KeyFormat, SignedRequest, check_timestamp, delivery_id, json_object,
    media_type, parse_timestamp, required, signed_id, str_field,
};
use super::{Algorithm, Rejection, SigningSecret, Verified, signed_at};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::{Map, Value};

const SIGNATURE: &str = "x-slack-signature";
const TIMESTAMP: &str = "x-slack-request-timestamp";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

pub(super) fn verify(
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    let signature = required(headers, SIGNATURE)?
        .strip_prefix("v0=")
        .ok_or_else(|| Rejection::malformed(SIGNATURE, "expected v0=<hex>"))?;
    let signature =
        hex::decode(signature).map_err(|_| Rejection::malformed(SIGNATURE, "expected v0=<hex>"))?;
    let timestamp_text = required(headers, TIMESTAMP)?;
    let timestamp = parse_timestamp(TIMESTAMP, timestamp_text)?;
    let secret_index = SignedRequest {
        algorithm: Algorithm::Sha256,
        key_format: KeyFormat::Raw,
        content: vec![b"v0:", timestamp_text.as_bytes(), b":", body],
        signatures: vec![signature],
    }
    .authenticate(secrets, now)?;
    check_timestamp(timestamp, DEFAULT_TOLERANCE, now)?;

    let read = match media_type(headers)?.as_deref() {
        Some(JSON) => read_event(&json_object(body)?)?,
        Some(FORM) => read_form(body)?,
        _ => {
            return Err(Rejection::UnsupportedMediaType {
                expected: "application/json or application/x-www-form-urlencoded",
            });
        }
    };
    Ok(Verified {
        delivery_id: delivery_id(read.id.as_deref(), headers, &[])?,
        event_type: read.event_type,
        challenge: read.challenge,
        signed_at: signed_at(timestamp),
        secret_index,
    })
}

#[derive(Default)]
struct Read {
    id: Option<String>,
    event_type: Option<String>,
    challenge: Option<String>,
}

/// An Events API delivery (`event_callback`, `url_verification`, `app_rate_limited`).
fn read_event(object: &Map<String, Value>) -> Result<Read, Rejection> {
    let kind = str_field(object, "type");
    if kind == Some("url_verification") {
        let challenge = str_field(object, "challenge").ok_or(Rejection::MalformedBody {
            reason: "url_verification without a challenge",
        })?;
        return Ok(Read {
            event_type: kind.map(str::to_owned),
            challenge: Some(challenge.to_owned()),
            ..Read::default()
        });
    }
    let inner_type = object
        .get("event")
        .and_then(Value::as_object)
        .and_then(|event| str_field(event, "type"));
    Ok(Read {
        id: signed_id(str_field(object, "event_id"))?.map(str::to_owned),
        event_type: inner_type.or(kind).map(str::to_owned),
        challenge: None,
    })
}

/// A slash command (`command=/deploy&trigger_id=...`) or an interaction (`payload={json}`).
fn read_form(body: &[u8]) -> Result<Read, Rejection> {
    let field = |name: &str| {
        form_urlencoded::parse(body)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if let Some(payload) = field("payload") {
        let object = json_object(payload.as_bytes())?;
        return Ok(Read {
            id: signed_id(str_field(&object, "trigger_id"))?.map(str::to_owned),
            event_type: str_field(&object, "type").map(str::to_owned),
            challenge: None,
        });
    }
    let trigger_id = field("trigger_id");
    Ok(Read {
        id: signed_id(trigger_id.as_deref())?.map(str::to_owned),
        event_type: field("command").map(|_| "slash_command".to_owned()),
        challenge: None,
    })
}
