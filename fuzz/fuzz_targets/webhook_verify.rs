//! A webhook delivery (headers and body) through `verify` for every scheme, unsigned and
//! correctly signed (so the body parsers behind the signature check are reached too):
//! `Verified` or a `Rejection`, never a panic.
#![no_main]

mod common;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use stepwise_integrations::webhooks::{
    Algorithm, Encoding, GenericScheme, SigningSecret, WebhookScheme, verify,
};

const SECRET: &[u8] = b"fuzz-secret";
/// 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;

fn hmac_hex(parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(rest.len());
    let (header_text, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or_default();
    let mut headers = common::headers(header_text);
    let now = DateTime::<Utc>::from_timestamp(NOW, 0).unwrap();
    let timestamp = NOW.to_string();
    let scheme = match selector % 6 {
        0 => WebhookScheme::Github,
        1 => WebhookScheme::Slack,
        2 => WebhookScheme::Stripe,
        3 => WebhookScheme::Shopify,
        4 => WebhookScheme::Standard,
        _ => WebhookScheme::Generic(GenericScheme::new(
            "x-signature",
            Algorithm::Sha256,
            Encoding::Hex,
        )),
    };
    if selector & 0x80 != 0 {
        let signed = match &scheme {
            WebhookScheme::Github => Some((
                "x-hub-signature-256",
                format!("sha256={}", hmac_hex(&[body])),
            )),
            WebhookScheme::Slack => {
                headers.insert(
                    "x-slack-request-timestamp",
                    HeaderValue::from_str(&timestamp).unwrap(),
                );
                Some((
                    "x-slack-signature",
                    format!(
                        "v0={}",
                        hmac_hex(&[b"v0:", timestamp.as_bytes(), b":", body])
                    ),
                ))
            }
            WebhookScheme::Stripe => Some((
                "stripe-signature",
                format!(
                    "t={timestamp},v1={}",
                    hmac_hex(&[timestamp.as_bytes(), b".", body])
                ),
            )),
            WebhookScheme::Generic(_) => Some(("x-signature", hmac_hex(&[body]))),
            _ => None,
        };
        if let Some((name, value)) = signed {
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
        }
    }
    let secrets = [
        SigningSecret::new(SECRET.to_vec()),
        SigningSecret::new(b"whsec_ZnV6ei1zZWNyZXQ=".to_vec()),
    ];
    let _ = verify(&scheme, &secrets, &headers, body, now);
});
