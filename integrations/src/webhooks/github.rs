//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body.

use super::common::{KeyFormat, SignedRequest, delivery_id, header, required};
use super::{Algorithm, Rejection, SigningSecret, Verified};
use chrono::{DateTime, Utc};
use http::HeaderMap;

const SIGNATURE: &str = "x-hub-signature-256";
const DELIVERY: &str = "x-github-delivery";
const EVENT: &str = "x-github-event";

pub(super) fn verify(
    secrets: &[SigningSecret],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejection> {
    let signature = required(headers, SIGNATURE)?
        .strip_prefix("sha256=")
        .ok_or_else(|| Rejection::malformed(SIGNATURE, "expected sha256=<hex>"))?;
    let signature = hex::decode(signature)
        .map_err(|_| Rejection::malformed(SIGNATURE, "expected sha256=<hex>"))?;
    let secret_index = SignedRequest {
        algorithm: Algorithm::Sha256,
        key_format: KeyFormat::Raw,
        content: vec![body],
        signatures: vec![signature],
    }
    .authenticate(secrets, now)?;
    Ok(Verified {
        delivery_id: delivery_id(None, headers, &[DELIVERY])?,
        event_type: header(headers, EVENT)?.map(str::to_owned),
        challenge: None,
        signed_at: None,
        secret_index,
    })
}
