//! All database code, one module per aggregate.

pub mod connections;
pub mod entities;
pub mod health;
pub mod oauth_apps;
pub mod outbox;
pub mod rate_limits;
pub mod run_state;
pub mod runs;
pub mod schedules;
pub mod secrets;
pub mod sessions;
pub mod steps;
pub mod tenants;
pub mod unmasked;
pub mod waits;
pub mod webhooks;
pub mod workflows;

use crate::vault::Envelope;

/// Milliseconds since the Unix epoch: the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Names of connections and OAuth apps: `[a-z0-9-]+`, at most 64 characters.
pub fn validate_slug(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "invalid {what} name `{name}`: use 1 to 64 lower-case letters, digits and `-`"
        ));
    }
    Ok(())
}

/// The columns of an optional envelope (a row whose secret field may be absent).
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    pub version: Option<i16>,
    pub key_id: Option<String>,
    pub wrapped_key: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
}

impl From<Envelope> for Sealed {
    fn from(envelope: Envelope) -> Self {
        Self {
            version: Some(i16::from(envelope.version)),
            key_id: Some(envelope.key_id),
            wrapped_key: Some(envelope.wrapped_key),
            nonce: Some(envelope.nonce),
            ciphertext: Some(envelope.ciphertext),
        }
    }
}

impl Sealed {
    /// The stored envelope, when every column is set.
    pub fn envelope_of(
        version: Option<i16>,
        key_id: &Option<String>,
        wrapped_key: &Option<Vec<u8>>,
        nonce: &Option<Vec<u8>>,
        ciphertext: &Option<Vec<u8>>,
    ) -> Option<Envelope> {
        Some(Envelope {
            version: u8::try_from(version?).unwrap_or(u8::MAX),
            key_id: key_id.clone()?,
            wrapped_key: wrapped_key.clone()?,
            nonce: nonce.clone()?,
            ciphertext: ciphertext.clone()?,
        })
    }
}
