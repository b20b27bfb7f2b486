//! Signing secrets, with an expiry so a rotated-out secret keeps verifying for a while.

use chrono::{DateTime, Utc};
use std::fmt;
use zeroize::Zeroizing;

/// One signing secret of a webhook source.
///
/// Holds the secret exactly as the provider shows it (for Standard Webhooks the `whsec_...`
/// text; the scheme decodes it). `Debug` never prints it and the bytes are zeroed on drop.
///
/// Rotation: keep the previous secret with [`valid_until`](Self::valid_until) set; it verifies
/// up to and including that instant, then is ignored.
#[derive(Clone)]
pub struct SigningSecret {
    bytes: Zeroizing<Vec<u8>>,
    valid_until: Option<DateTime<Utc>>,
}

impl SigningSecret {
    /// A secret that never expires.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.into()),
            valid_until: None,
        }
    }

    /// The same secret, accepted only up to and including `until`.
    pub fn valid_until(mut self, until: DateTime<Utc>) -> Self {
        self.valid_until = Some(until);
        self
    }

    /// When this secret stops verifying, if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.valid_until
    }

    /// Whether the secret still verifies at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.valid_until.is_none_or(|until| now <= until)
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSecret")
            .field("bytes", &"***")
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_up_to_and_including_valid_until_and_never_prints() {
        let until = DateTime::from_timestamp(1_000, 0).unwrap();
        let secret = SigningSecret::new("s3cr3t").valid_until(until);
        assert!(secret.is_active(DateTime::from_timestamp(999, 0).unwrap()));
        assert!(secret.is_active(until));
        assert!(!secret.is_active(DateTime::from_timestamp(1_001, 0).unwrap()));
        assert!(SigningSecret::new("s3cr3t").is_active(DateTime::<Utc>::MAX_UTC));
        assert_eq!(secret.expires_at(), Some(until));
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }
}
