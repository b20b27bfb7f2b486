//! A configurable HMAC scheme for senders without a named scheme.

use super::common::{
    BASE64, DEFAULT_TOLERANCE, KeyFormat, SignedRequest, check_timestamp, delivery_id, header,
    parse_timestamp, required,
};
use super::{Algorithm, Rejection, SigningSecret, Verified, signed_at};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a generic sender signs: `HMAC-<algorithm>` of the body (or of `{timestamp}.{body}` when
/// `timestamp_header` is set), encoded and optionally prefixed in `header`.
///
/// ```json
/// {"provider": "generic", "header": "X-Signature", "algorithm": "sha256", "encoding": "hex",
///  "prefix": "sha256=", "timestamp_header": "X-Timestamp", "tolerance": "5m",
///  "id_header": "X-Delivery-Id", "event_header": "X-Event"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenericScheme {
    /// The header holding the signature.
    pub header: String,
    /// The HMAC hash function.
    pub algorithm: Algorithm,
    /// How the MAC is written in the header.
    pub encoding: Encoding,
    /// Text before the encoded MAC (`sha256=`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The header holding the Unix timestamp (seconds); when set, the signed content is
    /// `{timestamp}.{body}` and the timestamp must be within `tolerance` of now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Replay window in both directions (humantime: `5m`, `30s`). Default 5 minutes.
    #[serde(default = "default_tolerance", with = "humantime_text")]
    #[schema(value_type = String, example = "5m")]
    pub tolerance: Duration,
    /// The header carrying the sender's delivery id, for deduplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// The header carrying the event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_header: Option<String>,
}

/// How a MAC is written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Lower- or upper-case hexadecimal.
    Hex,
    /// Standard base64, padding optional.
    Base64,
}

fn default_tolerance() -> Duration {
    DEFAULT_TOLERANCE
}

impl GenericScheme {
    /// A scheme reading `header` with no prefix, timestamp, id or event header.
    pub fn new(header: impl Into<String>, algorithm: Algorithm, encoding: Encoding) -> Self {
        Self {
            header: header.into(),
            algorithm,
            encoding,
            prefix: None,
            timestamp_header: None,
            tolerance: DEFAULT_TOLERANCE,
            id_header: None,
            event_header: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let names = [
            ("header", Some(&self.header)),
            ("timestamp_header", self.timestamp_header.as_ref()),
            ("id_header", self.id_header.as_ref()),
            ("event_header", self.event_header.as_ref()),
        ];
        for (field, name) in names {
            if let Some(name) = name
                && HeaderName::try_from(name.as_str()).is_err()
            {
                return Err(format!("{field}: {name:?} is not a valid header name"));
            }
        }
        if self.prefix.as_deref() == Some("") {
            return Err("prefix: leave it out instead of setting it empty".to_owned());
        }
        if self.timestamp_header.is_some() && self.tolerance.is_zero() {
            return Err("tolerance: must be more than zero".to_owned());
        }
        Ok(())
    }

    pub(super) fn verify(
        &self,
        secrets: &[SigningSecret],
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Verified, Rejection> {
        let name = self.header.as_str();
        let mut value = required(headers, name)?;
        if let Some(prefix) = &self.prefix {
            value = value.strip_prefix(prefix.as_str()).ok_or_else(|| {
                Rejection::malformed(name, "does not start with the configured prefix")
            })?;
        }
        let signature = match self.encoding {
            Encoding::Hex => {
                hex::decode(value).map_err(|_| Rejection::malformed(name, "expected hex"))
            }
            Encoding::Base64 => BASE64
                .decode(value)
                .map_err(|_| Rejection::malformed(name, "expected base64")),
        }?;
        let timestamp = match &self.timestamp_header {
            Some(header) => {
                let text = required(headers, header)?;
                Some((text, parse_timestamp(header, text)?))
            }
            None => None,
        };
        let content = match timestamp {
            Some((text, _)) => vec![text.as_bytes(), b".", body],
            None => vec![body],
        };
        let secret_index = SignedRequest {
            algorithm: self.algorithm,
            key_format: KeyFormat::Raw,
            content,
            signatures: vec![signature],
        }
        .authenticate(secrets, now)?;
        if let Some((_, timestamp)) = timestamp {
            check_timestamp(timestamp, self.tolerance, now)?;
        }
        let id_headers: Vec<&str> = self.id_header.iter().map(String::as_str).collect();
        let event_type = match &self.event_header {
            Some(name) => header(headers, name)?.map(str::to_owned),
            None => None,
        };
        Ok(Verified {
            delivery_id: delivery_id(None, headers, &id_headers)?,
            event_type,
            challenge: None,
            signed_at: timestamp.and_then(|(_, timestamp)| signed_at(timestamp)),
            secret_index,
        })
    }
}

/// `Duration` as humantime text (`5m`), like the workflow language's durations.
mod humantime_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim()).map_err(serde::de::Error::custom)
    }
}
