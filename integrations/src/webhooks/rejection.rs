//! Why a delivery was refused, with a stable code and the HTTP status the api answers with.

use http::StatusCode;

/// Why a webhook delivery was refused.
///
/// Each variant has a stable [`code`](Self::code) and maps to one
/// [`status`](Self::status): 401 when the delivery cannot be authenticated (nothing about it
/// is trusted), 400 when an authentic-looking delivery is malformed, 415 when the scheme needs
/// a content type the request does not have.
///
/// Messages name headers and limits, never a secret or the signature we expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A header that carries signature material (signature, timestamp, signed id) is absent.
    #[error("the {header} header is missing")]
    MissingHeader { header: String },

    /// The signature header is present but holds no signature of a version this scheme verifies
    /// (Stripe without `v1=`, Standard Webhooks without `v1,`).
    #[error("the {header} header carries no {expected} signature")]
    NoSupportedSignature {
        header: String,
        expected: &'static str,
    },

    /// No signature matches any active signing secret (wrong secret, tampered body or headers).
    #[error("no signature matches an active signing secret")]
    SignatureMismatch,

    /// The signed timestamp is older than the scheme's tolerance: a replay or a badly late retry.
    #[error("the signed timestamp is {age_secs}s old, beyond the {tolerance_secs}s tolerance")]
    StaleTimestamp { age_secs: u64, tolerance_secs: u64 },

    /// The signed timestamp is further in the future than the scheme's tolerance.
    #[error(
        "the signed timestamp is {ahead_secs}s in the future, beyond the {tolerance_secs}s tolerance"
    )]
    FutureTimestamp {
        ahead_secs: u64,
        tolerance_secs: u64,
    },

    /// The source has no secret that is configured, unexpired and usable by this scheme (for
    /// Standard Webhooks: valid base64). The api should also log this: it is a configuration
    /// problem on our side.
    #[error("no usable signing secret is configured for this source")]
    NoUsableSecret,

    /// A header is present but cannot be read (duplicated, not visible ASCII, wrong shape).
    #[error("the {header} header is malformed: {reason}")]
    MalformedHeader {
        header: String,
        reason: &'static str,
    },

    /// The signature is valid but the body cannot be read as the scheme requires.
    #[error("the body is malformed: {reason}")]
    MalformedBody { reason: &'static str },

    /// The scheme reads the body and the request's content type is not one it understands.
    #[error("unsupported content type: expected {expected}")]
    UnsupportedMediaType { expected: &'static str },
}

impl Rejection {
    /// Stable machine-readable code for `{"error": {"code": ...}}`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader { .. } => "missing_header",
            Self::NoSupportedSignature { .. } => "no_supported_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::FutureTimestamp { .. } => "future_timestamp",
            Self::NoUsableSecret => "no_usable_secret",
            Self::MalformedHeader { .. } => "malformed_header",
            Self::MalformedBody { .. } => "malformed_body",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
        }
    }

    /// The HTTP status the webhook route answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingHeader { .. }
            | Self::NoSupportedSignature { .. }
            | Self::SignatureMismatch
            | Self::StaleTimestamp { .. }
            | Self::FutureTimestamp { .. }
            | Self::NoUsableSecret => StatusCode::UNAUTHORIZED,
            Self::MalformedHeader { .. } | Self::MalformedBody { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub(crate) fn missing(header: &str) -> Self {
        Self::MissingHeader {
            header: header.to_owned(),
        }
    }

    pub(crate) fn malformed(header: &str, reason: &'static str) -> Self {
        Self::MalformedHeader {
            header: header.to_owned(),
            reason,
        }
    }
}
