//! Webhook signature verification against the providers' published test vectors, vectors
//! computed independently (Python's `hmac` module), and the failure cases of every scheme.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;
use sha2::Sha256;
use stepwise_integrations::webhooks::{
    Algorithm, DeliveryId, Encoding, GenericScheme, IdSource, Rejection, SigningSecret, Verified,
    WebhookScheme, verify,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::try_from(*name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn at(timestamp: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(timestamp, 0).unwrap()
}

fn secret(text: &str) -> Vec<SigningSecret> {
    vec![SigningSecret::new(text)]
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn id(value: &str, source: IdSource) -> Option<DeliveryId> {
    Some(DeliveryId {
        value: value.to_owned(),
        source,
    })
}

#[track_caller]
fn rejected(result: Result<Verified, Rejection>, code: &str, status: StatusCode) -> Rejection {
    let rejection = result.expect_err("the delivery should be refused");
    assert_eq!(rejection.code(), code, "{rejection}");
    assert_eq!(rejection.status(), status, "{rejection}");
    rejection
}

#[track_caller]
fn unauthorized(result: Result<Verified, Rejection>, code: &str) -> Rejection {
    rejected(result, code, StatusCode::UNAUTHORIZED)
}

#[track_caller]
fn bad_request(result: Result<Verified, Rejection>) -> Rejection {
    rejected(result, "malformed_header", StatusCode::BAD_REQUEST)
}

// ---------------------------------------------------------------------------------------------
// GitHub

/// GitHub docs, "Validating webhook deliveries": secret "It's a Secret to Everybody",
/// payload "Hello, World!".
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn github_headers(signature: &str) -> HeaderMap {
    headers(&[
        ("X-Hub-Signature-256", signature),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "push"),
    ])
}

#[test]
fn github_documented_example_verifies() {
    let verified = verify(
        &WebhookScheme::Github,
        &secret(GITHUB_SECRET),
        &github_headers(GITHUB_SIGNATURE),
        GITHUB_BODY,
        at(1_700_000_000),
    )
    .unwrap();
    assert_eq!(
        verified,
        Verified {
            delivery_id: id("72d3162e-cc78-11e3-81ab-4c9367dc0958", IdSource::Header),
            event_type: Some("push".to_owned()),
            challenge: None,
            signed_at: None,
            secret_index: 0,
        }
    );
}

#[test]
fn github_refuses_wrong_secret_tampered_body_and_bad_headers() {
    let now = at(1_700_000_000);
    let check = |secrets: &[SigningSecret], headers: &HeaderMap, body: &[u8]| {
        verify(&WebhookScheme::Github, secrets, headers, body, now)
    };
    let good = github_headers(GITHUB_SIGNATURE);
    unauthorized(
        check(&secret("It's a secret to everybody"), &good, GITHUB_BODY),
        "signature_mismatch",
    );
    unauthorized(
        check(&secret(GITHUB_SECRET), &good, b"Hello, World?"),
        "signature_mismatch",
    );
    let missing = unauthorized(
        check(
            &secret(GITHUB_SECRET),
            &headers(&[("X-GitHub-Event", "push")]),
            GITHUB_BODY,
        ),
        "missing_header",
    );
    assert_eq!(
        missing.to_string(),
        "the x-hub-signature-256 header is missing"
    );
    // Wrong prefix (the legacy SHA-1 header's form), not hex, uppercase hex is fine.
    let sha1 = "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    bad_request(check(
        &secret(GITHUB_SECRET),
        &github_headers(sha1),
        GITHUB_BODY,
    ));
    bad_request(check(
        &secret(GITHUB_SECRET),
        &github_headers("sha256=zz"),
        GITHUB_BODY,
    ));
    let upper = format!("sha256={}", GITHUB_SIGNATURE[7..].to_uppercase());
    check(&secret(GITHUB_SECRET), &github_headers(&upper), GITHUB_BODY).unwrap();
    // Truncated: decodes, does not match.
    unauthorized(
        check(
            &secret(GITHUB_SECRET),
            &github_headers(&GITHUB_SIGNATURE[..41]),
            GITHUB_BODY,
        ),
        "signature_mismatch",
    );
    // Two signature headers: ambiguous, refused rather than guessed at.
    let mut twice = github_headers(GITHUB_SIGNATURE);
    twice.append("x-hub-signature-256", HeaderValue::from_static("sha256=00"));
    let rejection = bad_request(check(&secret(GITHUB_SECRET), &twice, GITHUB_BODY));
    assert_eq!(
        rejection.to_string(),
        "the x-hub-signature-256 header is malformed: sent more than once"
    );
}

#[test]
fn github_idempotency_key_wins_over_the_unsigned_delivery_header() {
    let mut map = github_headers(GITHUB_SIGNATURE);
    map.insert("idempotency-key", HeaderValue::from_static("retry-7"));
    let verified = verify(
        &WebhookScheme::Github,
        &secret(GITHUB_SECRET),
        &map,
        GITHUB_BODY,
        at(0),
    )
    .unwrap();
    assert_eq!(
        verified.delivery_id,
        id("retry-7", IdSource::IdempotencyKey)
    );

    // Without any id there is no key: never a hash of the body.
    let map = headers(&[("X-Hub-Signature-256", GITHUB_SIGNATURE)]);
    let verified = verify(
        &WebhookScheme::Github,
        &secret(GITHUB_SECRET),
        &map,
        GITHUB_BODY,
        at(0),
    )
    .unwrap();
    assert_eq!(verified.delivery_id, None);
    assert_eq!(verified.event_type, None);
}

// ---------------------------------------------------------------------------------------------
// Rotation, for every scheme: a previous secret verifies until its valid_until, then not.

/// A correctly signed request for each scheme, signed with `key`, at `timestamp`.
fn signed_request(scheme: &WebhookScheme, key: &str, timestamp: i64) -> (HeaderMap, Vec<u8>) {
    let ts = timestamp.to_string();
    match scheme {
        WebhookScheme::Github => {
            let body = b"{\"zen\":\"Keep it logically awesome.\"}".to_vec();
            let signature = hex::encode(hmac_sha256(key.as_bytes(), &[&body]));
            (
                headers(&[("X-Hub-Signature-256", &format!("sha256={signature}"))]),
                body,
            )
        }
        WebhookScheme::Stripe => {
            let body = b"{\"id\":\"evt_1\",\"type\":\"charge.succeeded\"}".to_vec();
            let signature = hex::encode(hmac_sha256(key.as_bytes(), &[ts.as_bytes(), b".", &body]));
            let header = format!("t={ts},v1={signature}");
            (
                headers(&[
                    ("Stripe-Signature", &header),
                    ("Content-Type", "application/json"),
                ]),
                body,
            )
        }
        WebhookScheme::Slack => {
            let body = b"{\"type\":\"event_callback\",\"event_id\":\"Ev1\",\"event\":{\"type\":\"message\"}}".to_vec();
            let signature = hex::encode(hmac_sha256(
                key.as_bytes(),
                &[b"v0:", ts.as_bytes(), b":", &body],
            ));
            (
                headers(&[
                    ("X-Slack-Signature", &format!("v0={signature}")),
                    ("X-Slack-Request-Timestamp", &ts),
                    ("Content-Type", "application/json"),
                ]),
                body,
            )
        }
        WebhookScheme::Shopify => {
            let body = b"{\"id\":1}".to_vec();
            let signature = BASE64.encode(hmac_sha256(key.as_bytes(), &[&body]));
            (headers(&[("X-Shopify-Hmac-SHA256", &signature)]), body)
        }
        WebhookScheme::Standard => {
            let body = b"{\"type\":\"user.created\"}".to_vec();
            let raw_key = BASE64.decode(key.strip_prefix("whsec_").unwrap()).unwrap();
            let signature = BASE64.encode(hmac_sha256(
                &raw_key,
                &[b"msg_1.", ts.as_bytes(), b".", &body],
            ));
            (
                headers(&[
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", &ts),
                    ("webhook-signature", &format!("v1,{signature}")),
                ]),
                body,
            )
        }
        WebhookScheme::Generic(generic) => {
            assert_eq!(generic.algorithm, Algorithm::Sha256);
            let body = b"ping".to_vec();
            let signature = hex::encode(hmac_sha256(key.as_bytes(), &[ts.as_bytes(), b".", &body]));
            (
                headers(&[(generic.header.as_str(), &signature), ("x-timestamp", &ts)]),
                body,
            )
        }
    }
}

fn timestamped_generic() -> WebhookScheme {
    WebhookScheme::Generic(GenericScheme {
        timestamp_header: Some("x-timestamp".to_owned()),
        ..GenericScheme::new("x-signature", Algorithm::Sha256, Encoding::Hex)
    })
}

fn all_schemes() -> Vec<WebhookScheme> {
    vec![
        WebhookScheme::Github,
        WebhookScheme::Stripe,
        WebhookScheme::Slack,
        WebhookScheme::Shopify,
        WebhookScheme::Standard,
        timestamped_generic(),
    ]
}

const OLD_KEY: &str = "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA==";
const NEW_KEY: &str = "whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldw==";

#[test]
fn every_scheme_accepts_the_previous_secret_until_valid_until_and_refuses_it_after() {
    let t = 1_700_000_000;
    let cutover = at(t + 60);
    let secrets = [
        SigningSecret::new(NEW_KEY),
        SigningSecret::new(OLD_KEY).valid_until(cutover),
    ];
    for scheme in all_schemes() {
        let name = scheme.provider();
        // Signed with the previous secret, delivered before and exactly at the cutover.
        let (map, body) = signed_request(&scheme, OLD_KEY, t);
        let verified = verify(&scheme, &secrets, &map, &body, at(t + 10)).unwrap();
        assert_eq!(verified.secret_index, 1, "{name}");
        verify(&scheme, &secrets, &map, &body, cutover).unwrap();

        // After the cutover the previous secret is ignored.
        let (map, body) = signed_request(&scheme, OLD_KEY, t + 61);
        unauthorized(
            verify(&scheme, &secrets, &map, &body, at(t + 61)),
            "signature_mismatch",
        );
        // ... while the current one keeps working.
        let (map, body) = signed_request(&scheme, NEW_KEY, t + 61);
        let verified = verify(&scheme, &secrets, &map, &body, at(t + 61)).unwrap();
        assert_eq!(verified.secret_index, 0, "{name}");

        // Only expired secrets: nothing can verify.
        unauthorized(
            verify(&scheme, &secrets[1..], &map, &body, at(t + 61)),
            "no_usable_secret",
        );
        unauthorized(
            verify(&scheme, &[], &map, &body, at(t + 61)),
            "no_usable_secret",
        );
    }
}

#[test]
fn every_scheme_refuses_a_wrong_secret_and_a_tampered_body() {
    let t = 1_700_000_000;
    for scheme in all_schemes() {
        let (map, body) = signed_request(&scheme, OLD_KEY, t);
        verify(&scheme, &secret(OLD_KEY), &map, &body, at(t)).unwrap();
        unauthorized(
            verify(&scheme, &secret(NEW_KEY), &map, &body, at(t)),
            "signature_mismatch",
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        unauthorized(
            verify(&scheme, &secret(OLD_KEY), &map, &tampered, at(t)),
            "signature_mismatch",
        );
        unauthorized(
            verify(&scheme, &secret(OLD_KEY), &HeaderMap::new(), &body, at(t)),
            "missing_header",
        );
    }
}

#[test]
fn timestamped_schemes_refuse_stale_and_future_deliveries_beyond_five_minutes() {
    let t = 1_700_000_000;
    for scheme in [
        WebhookScheme::Stripe,
        WebhookScheme::Slack,
        WebhookScheme::Standard,
        timestamped_generic(),
    ] {
        let name = scheme.provider();
        let (map, body) = signed_request(&scheme, OLD_KEY, t);
        let check = |now| verify(&scheme, &secret(OLD_KEY), &map, &body, at(now));
        let verified = check(t + 300).unwrap();
        assert_eq!(verified.signed_at, Some(at(t)), "{name}");
        check(t - 300).unwrap();
        let stale = unauthorized(check(t + 301), "stale_timestamp");
        assert_eq!(
            stale,
            Rejection::StaleTimestamp {
                age_secs: 301,
                tolerance_secs: 300
            },
            "{name}"
        );
        let future = unauthorized(check(t - 301), "future_timestamp");
        assert_eq!(
            future.to_string(),
            "the signed timestamp is 301s in the future, beyond the 300s tolerance"
        );
    }
}

#[test]
fn rejection_messages_never_carry_the_secret_or_the_expected_signature() {
    let t = 1_700_000_000;
    for scheme in all_schemes() {
        let (map, body) = signed_request(&scheme, OLD_KEY, t);
        let (expected_map, _) = signed_request(&scheme, NEW_KEY, t);
        let expected: Vec<String> = expected_map
            .values()
            .map(|value| value.to_str().unwrap().to_owned())
            .filter(|value| value.len() > 20)
            .collect();
        for now in [t, t + 10_000, t - 10_000] {
            if let Err(rejection) = verify(&scheme, &secret(NEW_KEY), &map, &body, at(now)) {
                let text = format!("{rejection} {rejection:?}");
                assert!(!text.contains("whsec_"), "{text}");
                assert!(!text.contains("c2VjcmV0"), "{text}");
                for value in &expected {
                    assert!(!text.contains(value.as_str()), "{text}");
                }
            }
        }
    }
    let debug = format!("{:?}", SigningSecret::new(NEW_KEY));
    assert_eq!(debug, "SigningSecret { bytes: \"***\", valid_until: None }");
}

// ---------------------------------------------------------------------------------------------
// Stripe

/// Computed with Python: hmac.new(b"whsec_test_secret", b"1700000000." + body, sha256).
const STRIPE_BODY: &[u8] =
    br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid"}"#;
const STRIPE_V1: &str = "8fcb50c2d45bc391e3252f24411d84654bfdfc8e96eaf71d71534ee00b714f1e";

fn stripe(
    header: &str,
    content_type: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    let mut map = headers(&[("Stripe-Signature", header)]);
    if let Some(content_type) = content_type {
        map.insert("content-type", HeaderValue::from_str(content_type).unwrap());
    }
    verify(
        &WebhookScheme::Stripe,
        &secret("whsec_test_secret"),
        &map,
        body,
        at(now),
    )
}

#[test]
fn stripe_verifies_any_matching_v1_and_reads_the_event() {
    let header = format!("t=1700000000,v1={STRIPE_V1}");
    let verified = stripe(
        &header,
        Some("application/json; charset=utf-8"),
        STRIPE_BODY,
        1_700_000_010,
    )
    .unwrap();
    assert_eq!(
        verified,
        Verified {
            delivery_id: id("evt_1NG8Du2eZvKYlo2CUI79vXWy", IdSource::Signed),
            event_type: Some("invoice.paid".to_owned()),
            challenge: None,
            signed_at: Some(at(1_700_000_000)),
            secret_index: 0,
        }
    );
    // Several v1 (Stripe signs with every active endpoint secret), a v0 and an unknown scheme.
    let zeros = "0".repeat(64);
    let header = format!("t=1700000000, v1={zeros},v0={zeros},v1={STRIPE_V1},v9=whatever");
    stripe(&header, None, STRIPE_BODY, 1_700_000_000).unwrap();
    unauthorized(
        stripe(
            &format!("t=1700000000,v1={zeros},v1={zeros}"),
            None,
            STRIPE_BODY,
            1_700_000_000,
        ),
        "signature_mismatch",
    );
}

#[test]
fn stripe_refuses_malformed_headers_and_bodies() {
    let now = 1_700_000_000;
    let nov1 = unauthorized(
        stripe(&format!("t={now},v0={STRIPE_V1}"), None, STRIPE_BODY, now),
        "no_supported_signature",
    );
    assert_eq!(
        nov1.to_string(),
        "the stripe-signature header carries no v1 signature"
    );
    for header in [
        format!("v1={STRIPE_V1}"),
        format!("t=soon,v1={STRIPE_V1}"),
        format!("t=-5,v1={STRIPE_V1}"),
        format!("t={now},t={now},v1={STRIPE_V1}"),
        format!("t={now},v1=xyz"),
        format!("t={now};v1={STRIPE_V1}"),
        format!("t={now},{STRIPE_V1}"),
    ] {
        bad_request(stripe(&header, None, STRIPE_BODY, now));
    }
    // The signature is fine, the content is not what Stripe sends.
    let header = format!("t={now},v1={STRIPE_V1}");
    rejected(
        stripe(&header, Some("text/plain"), STRIPE_BODY, now),
        "unsupported_media_type",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    let body = b"not json";
    let v1 = hex::encode(hmac_sha256(b"whsec_test_secret", &[b"1700000000.", body]));
    rejected(
        stripe(&format!("t={now},v1={v1}"), None, body, now),
        "malformed_body",
        StatusCode::BAD_REQUEST,
    );
}

#[test]
fn stripe_signed_event_id_is_not_overridden_by_an_idempotency_key() {
    let mut map = headers(&[
        ("Stripe-Signature", &format!("t=1700000000,v1={STRIPE_V1}")),
        ("Idempotency-Key", "replayed-under-a-fresh-key"),
    ]);
    let verified = verify(
        &WebhookScheme::Stripe,
        &secret("whsec_test_secret"),
        &map,
        STRIPE_BODY,
        at(1_700_000_000),
    )
    .unwrap();
    assert_eq!(verified.delivery_id.unwrap().source, IdSource::Signed);
    // An unusable key is not even read when a signed id exists.
    map.insert(
        "idempotency-key",
        HeaderValue::from_str(&"k".repeat(300)).unwrap(),
    );
    verify(
        &WebhookScheme::Stripe,
        &secret("whsec_test_secret"),
        &map,
        STRIPE_BODY,
        at(1_700_000_000),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Slack

/// Slack docs, "Verifying requests from Slack": the documented slash-command request.
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TIMESTAMP: &str = "1531420618";
const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
const FORM: &str = "application/x-www-form-urlencoded";

fn slack(pairs: &[(&str, &str)], body: &[u8], now: i64) -> Result<Verified, Rejection> {
    verify(
        &WebhookScheme::Slack,
        &secret(SLACK_SECRET),
        &headers(pairs),
        body,
        at(now),
    )
}

#[test]
fn slack_documented_example_verifies() {
    let verified = slack(
        &[
            ("X-Slack-Signature", SLACK_SIGNATURE),
            ("X-Slack-Request-Timestamp", SLACK_TIMESTAMP),
            ("Content-Type", FORM),
        ],
        SLACK_BODY,
        1_531_420_618 + 5,
    )
    .unwrap();
    assert_eq!(
        verified.delivery_id,
        id(
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
            IdSource::Signed
        )
    );
    assert_eq!(verified.event_type.as_deref(), Some("slash_command"));
    assert_eq!(verified.challenge, None);
}

#[test]
fn slack_url_verification_returns_the_challenge() {
    // Computed with Python: hmac.new(secret, b"v0:1531420618:" + body, sha256).
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let signature = "v0=f9bd80929259f3f6d5fe3a3186c453c89cd1ad4862815a15837584f31c993652";
    let verified = slack(
        &[
            ("X-Slack-Signature", signature),
            ("X-Slack-Request-Timestamp", SLACK_TIMESTAMP),
            ("Content-Type", "application/json"),
        ],
        body,
        1_531_420_618,
    )
    .unwrap();
    assert_eq!(
        verified.challenge.as_deref(),
        Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
    assert_eq!(verified.event_type.as_deref(), Some("url_verification"));
    assert_eq!(verified.delivery_id, None);
}

fn slack_signed(body: &[u8], content_type: &str) -> Result<Verified, Rejection> {
    let signature = hex::encode(hmac_sha256(
        SLACK_SECRET.as_bytes(),
        &[b"v0:1531420618:", body],
    ));
    slack(
        &[
            ("X-Slack-Signature", &format!("v0={signature}")),
            ("X-Slack-Request-Timestamp", SLACK_TIMESTAMP),
            ("Content-Type", content_type),
        ],
        body,
        1_531_420_618,
    )
}

#[test]
fn slack_reads_event_ids_and_types_from_events_and_interactions() {
    let event = br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"hi"}}"#;
    let verified = slack_signed(event, "application/json").unwrap();
    assert_eq!(verified.delivery_id, id("Ev08MFMKH6", IdSource::Signed));
    assert_eq!(verified.event_type.as_deref(), Some("app_mention"));

    let limited = br#"{"type":"app_rate_limited","team_id":"T1"}"#;
    assert_eq!(
        slack_signed(limited, "application/json")
            .unwrap()
            .event_type
            .as_deref(),
        Some("app_rate_limited")
    );

    let interaction = b"payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%2213345224609.8534564800.6f8ab1f53e13d0cd15f96106292d5536%22%7D";
    let verified = slack_signed(interaction, FORM).unwrap();
    assert_eq!(verified.event_type.as_deref(), Some("block_actions"));
    assert_eq!(
        verified.delivery_id,
        id(
            "13345224609.8534564800.6f8ab1f53e13d0cd15f96106292d5536",
            IdSource::Signed
        )
    );
}

#[test]
fn slack_refuses_other_content_types_and_malformed_bodies() {
    for content_type in ["text/plain", "multipart/form-data; boundary=x"] {
        rejected(
            slack_signed(b"{}", content_type),
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        );
    }
    let no_type = slack(
        &[
            ("X-Slack-Signature", SLACK_SIGNATURE),
            ("X-Slack-Request-Timestamp", SLACK_TIMESTAMP),
        ],
        SLACK_BODY,
        1_531_420_618,
    );
    rejected(
        no_type,
        "unsupported_media_type",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    for body in [
        &b"not json"[..],
        b"[1,2]",
        br#"{"type":"url_verification"}"#,
        b"payload=nope",
    ] {
        let content_type = if body.starts_with(b"payload") {
            FORM
        } else {
            "application/json"
        };
        rejected(
            slack_signed(body, content_type),
            "malformed_body",
            StatusCode::BAD_REQUEST,
        );
    }
}

#[test]
fn slack_refuses_missing_and_malformed_headers() {
    let now = 1_531_420_618;
    unauthorized(
        slack(
            &[
                ("X-Slack-Request-Timestamp", SLACK_TIMESTAMP),
                ("Content-Type", FORM),
            ],
            SLACK_BODY,
            now,
        ),
        "missing_header",
    );
    unauthorized(
        slack(
            &[
                ("X-Slack-Signature", SLACK_SIGNATURE),
                ("Content-Type", FORM),
            ],
            SLACK_BODY,
            now,
        ),
        "missing_header",
    );
    bad_request(slack(
        &[
            ("X-Slack-Signature", &SLACK_SIGNATURE[3..]),
            ("X-Slack-Request-Timestamp", SLACK_TIMESTAMP),
        ],
        SLACK_BODY,
        now,
    ));
    bad_request(slack(
        &[
            ("X-Slack-Signature", SLACK_SIGNATURE),
            ("X-Slack-Request-Timestamp", "1531420618.5"),
        ],
        SLACK_BODY,
        now,
    ));
    bad_request(slack(
        &[
            ("X-Slack-Signature", SLACK_SIGNATURE),
            ("X-Slack-Request-Timestamp", "99999999999999999999"),
        ],
        SLACK_BODY,
        now,
    ));
    // The timestamp is part of what is signed: changing it breaks the signature.
    unauthorized(
        slack(
            &[
                ("X-Slack-Signature", SLACK_SIGNATURE),
                ("X-Slack-Request-Timestamp", "1531420619"),
                ("Content-Type", FORM),
            ],
            SLACK_BODY,
            now,
        ),
        "signature_mismatch",
    );
}

// ---------------------------------------------------------------------------------------------
// Shopify

/// Computed with Python: base64(hmac.new(b"shpss_test_secret", body, sha256).digest()).
const SHOPIFY_BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@doe.ca"}"#;
const SHOPIFY_HMAC: &str = "ydL79GgFis+45WlpB77OS7dfcX+8t6iObguHVHAAEPc=";

fn shopify(pairs: &[(&str, &str)], body: &[u8]) -> Result<Verified, Rejection> {
    verify(
        &WebhookScheme::Shopify,
        &secret("shpss_test_secret"),
        &headers(pairs),
        body,
        at(0),
    )
}

#[test]
fn shopify_verifies_and_dedups_on_the_event_id() {
    let verified = shopify(
        &[
            ("X-Shopify-Hmac-SHA256", SHOPIFY_HMAC),
            ("X-Shopify-Topic", "orders/create"),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
        ],
        SHOPIFY_BODY,
    )
    .unwrap();
    assert_eq!(
        verified.delivery_id,
        id("98880550-7158-44d4-b7cd-2c97c8a091b5", IdSource::Header)
    );
    assert_eq!(verified.event_type.as_deref(), Some("orders/create"));

    let verified = shopify(
        &[
            ("X-Shopify-Hmac-SHA256", SHOPIFY_HMAC),
            ("X-Shopify-Webhook-Id", "b54557e4"),
        ],
        SHOPIFY_BODY,
    )
    .unwrap();
    assert_eq!(verified.delivery_id, id("b54557e4", IdSource::Header));
    // Unpadded base64 is read too.
    shopify(
        &[("X-Shopify-Hmac-SHA256", SHOPIFY_HMAC.trim_end_matches('='))],
        SHOPIFY_BODY,
    )
    .unwrap();
}

#[test]
fn shopify_refuses_malformed_and_wrong_signatures() {
    bad_request(shopify(
        &[("X-Shopify-Hmac-SHA256", "not base64!")],
        SHOPIFY_BODY,
    ));
    let hex = hex::encode(BASE64.decode(SHOPIFY_HMAC).unwrap());
    // Hex is valid base64 text but decodes to other bytes.
    unauthorized(
        shopify(&[("X-Shopify-Hmac-SHA256", &hex)], SHOPIFY_BODY),
        "signature_mismatch",
    );
    unauthorized(
        shopify(&[("X-Shopify-Hmac-SHA256", SHOPIFY_HMAC)], b"{}"),
        "signature_mismatch",
    );
    bad_request(shopify(
        &[
            ("X-Shopify-Hmac-SHA256", SHOPIFY_HMAC),
            ("X-Shopify-Event-Id", &"e".repeat(256)),
        ],
        SHOPIFY_BODY,
    ));
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

/// The Standard Webhooks / Svix published vector ("Verifying payloads manually").
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STANDARD_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const STANDARD_TIMESTAMP: &str = "1614265330";
const STANDARD_BODY: &[u8] = br#"{"test": 2432232314}"#;
const STANDARD_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn standard(
    secret_text: &str,
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    let map = headers(&[
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ]);
    verify(
        &WebhookScheme::Standard,
        &secret(secret_text),
        &map,
        body,
        at(now),
    )
}

#[test]
fn standard_webhooks_specification_vectors_verify() {
    let now = 1_614_265_330;
    let verified = standard(
        STANDARD_SECRET,
        STANDARD_ID,
        STANDARD_TIMESTAMP,
        STANDARD_SIGNATURE,
        STANDARD_BODY,
        now,
    )
    .unwrap();
    assert_eq!(verified.delivery_id, id(STANDARD_ID, IdSource::Signed));
    assert_eq!(verified.event_type, None);
    assert_eq!(verified.signed_at, Some(at(now)));
    // The bare base64 secret, as the reference libraries accept it.
    standard(
        &STANDARD_SECRET[6..],
        STANDARD_ID,
        STANDARD_TIMESTAMP,
        STANDARD_SIGNATURE,
        STANDARD_BODY,
        now,
    )
    .unwrap();

    // The reference Rust library's vector (libraries/rust test_sign).
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    standard(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        "1649367553",
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        body,
        1_649_367_553,
    )
    .unwrap();
}

#[test]
fn standard_webhooks_accepts_one_valid_signature_among_several() {
    let now = 1_614_265_330;
    let several = format!(
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= {STANDARD_SIGNATURE}  v2,whatever"
    );
    standard(
        STANDARD_SECRET,
        STANDARD_ID,
        STANDARD_TIMESTAMP,
        &several,
        STANDARD_BODY,
        now,
    )
    .unwrap();
    let none_valid = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=";
    unauthorized(
        standard(
            STANDARD_SECRET,
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            none_valid,
            STANDARD_BODY,
            now,
        ),
        "signature_mismatch",
    );
    let asymmetric_only = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    unauthorized(
        standard(
            STANDARD_SECRET,
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            asymmetric_only,
            STANDARD_BODY,
            now,
        ),
        "no_supported_signature",
    );
}

#[test]
fn standard_webhooks_refuses_tampering_and_malformed_headers() {
    let now = 1_614_265_330;
    let check = |secret: &str, id: &str, ts: &str, sig: &str, body: &[u8]| {
        standard(secret, id, ts, sig, body, now)
    };
    // The id and the timestamp are signed.
    unauthorized(
        check(
            STANDARD_SECRET,
            "msg_other",
            STANDARD_TIMESTAMP,
            STANDARD_SIGNATURE,
            STANDARD_BODY,
        ),
        "signature_mismatch",
    );
    unauthorized(
        check(
            STANDARD_SECRET,
            STANDARD_ID,
            "1614265331",
            STANDARD_SIGNATURE,
            STANDARD_BODY,
        ),
        "signature_mismatch",
    );
    unauthorized(
        check(
            STANDARD_SECRET,
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            STANDARD_SIGNATURE,
            br#"{"test": 2432232315}"#,
        ),
        "signature_mismatch",
    );
    unauthorized(
        check(
            "whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA==",
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            STANDARD_SIGNATURE,
            STANDARD_BODY,
        ),
        "signature_mismatch",
    );
    bad_request(check(
        STANDARD_SECRET,
        STANDARD_ID,
        STANDARD_TIMESTAMP,
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        STANDARD_BODY,
    ));
    bad_request(check(
        STANDARD_SECRET,
        STANDARD_ID,
        STANDARD_TIMESTAMP,
        "v1,not*base64",
        STANDARD_BODY,
    ));
    bad_request(check(
        STANDARD_SECRET,
        STANDARD_ID,
        "2021-02-25",
        STANDARD_SIGNATURE,
        STANDARD_BODY,
    ));
    // Secrets that cannot be keys: not base64, or an empty key after the prefix.
    unauthorized(
        check(
            "whsec_***",
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            STANDARD_SIGNATURE,
            STANDARD_BODY,
        ),
        "no_usable_secret",
    );
    unauthorized(
        check(
            "whsec_",
            STANDARD_ID,
            STANDARD_TIMESTAMP,
            STANDARD_SIGNATURE,
            STANDARD_BODY,
        ),
        "no_usable_secret",
    );
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut map = headers(&[
            ("webhook-id", STANDARD_ID),
            ("webhook-timestamp", STANDARD_TIMESTAMP),
            ("webhook-signature", STANDARD_SIGNATURE),
        ]);
        map.remove(missing);
        let rejection = unauthorized(
            verify(
                &WebhookScheme::Standard,
                &secret(STANDARD_SECRET),
                &map,
                STANDARD_BODY,
                at(now),
            ),
            "missing_header",
        );
        assert_eq!(
            rejection,
            Rejection::MissingHeader {
                header: missing.to_owned()
            }
        );
    }
    assert!(
        WebhookScheme::Standard
            .check_secret(STANDARD_SECRET.as_bytes())
            .is_ok()
    );
    assert!(WebhookScheme::Standard.check_secret(b"whsec_***").is_err());
    assert!(WebhookScheme::Github.check_secret(b"").is_err());
}

// ---------------------------------------------------------------------------------------------
// Generic

#[test]
fn generic_sha1_hex_with_a_prefix_and_configured_id_and_event_headers() {
    // Computed with Python: hmac.new(b"generic-secret", b"hello", sha1).hexdigest().
    let scheme = WebhookScheme::Generic(GenericScheme {
        prefix: Some("sha1=".to_owned()),
        id_header: Some("x-delivery".to_owned()),
        event_header: Some("x-event".to_owned()),
        ..GenericScheme::new("X-Signature", Algorithm::Sha1, Encoding::Hex)
    });
    let signature = "sha1=0954c560cc9251237e1d2dd63d667284b523401f";
    let mut map = headers(&[
        ("x-signature", signature),
        ("x-delivery", "d-1"),
        ("x-event", "build.done"),
    ]);
    let verified = verify(&scheme, &secret("generic-secret"), &map, b"hello", at(0)).unwrap();
    assert_eq!(verified.delivery_id, id("d-1", IdSource::Header));
    assert_eq!(verified.event_type.as_deref(), Some("build.done"));
    assert_eq!(verified.signed_at, None);

    // The sender's explicit Idempotency-Key wins over the (unsigned) id header.
    map.insert("idempotency-key", HeaderValue::from_static("idem-1"));
    let verified = verify(&scheme, &secret("generic-secret"), &map, b"hello", at(0)).unwrap();
    assert_eq!(verified.delivery_id, id("idem-1", IdSource::IdempotencyKey));

    let unprefixed = headers(&[("x-signature", &signature[5..])]);
    bad_request(verify(
        &scheme,
        &secret("generic-secret"),
        &unprefixed,
        b"hello",
        at(0),
    ));
    unauthorized(
        verify(&scheme, &secret("generic-secret"), &map, b"hello!", at(0)),
        "signature_mismatch",
    );
}

#[test]
fn generic_sha512_base64_with_a_timestamp_header_and_tolerance() {
    // Computed with Python: base64(hmac.new(b"generic-secret", b"1700000000.hello", sha512)).
    let scheme: WebhookScheme = serde_json::from_str(
        r#"{"provider": "generic", "header": "X-Sig", "algorithm": "sha512", "encoding": "base64",
            "timestamp_header": "X-Sig-Timestamp", "tolerance": "1m"}"#,
    )
    .unwrap();
    let signature =
        "voXFjIi29lqBfOCFseZbrldgAAIQ4hIjlWaj7PUDgBATAlh8KfqO2tNPKTcaRmzmCB4SQyfFcoYxdEphGWH7zw==";
    let map = headers(&[("X-Sig", signature), ("X-Sig-Timestamp", "1700000000")]);
    let check = |now| verify(&scheme, &secret("generic-secret"), &map, b"hello", at(now));
    assert_eq!(
        check(1_700_000_060).unwrap().signed_at,
        Some(at(1_700_000_000))
    );
    unauthorized(check(1_700_000_061), "stale_timestamp");
    unauthorized(check(1_699_999_939), "future_timestamp");
    unauthorized(
        verify(
            &scheme,
            &secret("generic-secret"),
            &headers(&[("X-Sig", signature)]),
            b"hello",
            at(0),
        ),
        "missing_header",
    );
}

#[test]
fn schemes_serialise_with_a_provider_tag_and_validate_their_configuration() {
    let json = serde_json::to_value(WebhookScheme::Standard).unwrap();
    assert_eq!(json, serde_json::json!({"provider": "standard"}));
    let generic = timestamped_generic();
    let json = serde_json::to_value(&generic).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"provider": "generic", "header": "x-signature", "algorithm": "sha256",
                           "encoding": "hex", "timestamp_header": "x-timestamp", "tolerance": "5m"})
    );
    assert_eq!(
        serde_json::from_value::<WebhookScheme>(json).unwrap(),
        generic
    );
    for scheme in all_schemes() {
        scheme.validate().unwrap();
        let back: WebhookScheme =
            serde_json::from_value(serde_json::to_value(&scheme).unwrap()).unwrap();
        assert_eq!(back, scheme);
    }
    let typo = serde_json::from_str::<WebhookScheme>(
        r#"{"provider": "generic", "header": "x", "algorithm": "sha256", "encoding": "hex", "prefx": "a"}"#,
    );
    assert!(typo.is_err());
    let bad_name = WebhookScheme::Generic(GenericScheme::new(
        "bad header",
        Algorithm::Sha256,
        Encoding::Hex,
    ));
    assert_eq!(
        bad_name.validate().unwrap_err(),
        "header: \"bad header\" is not a valid header name"
    );
    assert_eq!(bad_name.provider(), "generic");
}

// ---------------------------------------------------------------------------------------------
// Robustness: no input panics, and everything signed correctly verifies.

const HEADER_NAMES: &[&str] = &[
    "x-hub-signature-256",
    "x-github-delivery",
    "x-github-event",
    "stripe-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "content-type",
    "x-shopify-hmac-sha256",
    "x-shopify-event-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "idempotency-key",
    "x-signature",
    "x-timestamp",
];

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,80}",
        "t=[0-9]{0,20},v1=[0-9a-f]{0,64}(,v0=[0-9a-f]{0,8})?",
        "(v0=|sha256=)[0-9a-fA-F]{0,70}",
        "(v1|v1a|v2),[A-Za-z0-9+/=]{0,50}( v1,[A-Za-z0-9+/]{0,44}=?)?",
        "[0-9]{0,25}",
        Just("application/json".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_headers_and_bodies_never_panic(
        pairs in prop::collection::vec((prop::sample::select(HEADER_NAMES), header_value()), 0..8),
        body in prop::collection::vec(any::<u8>(), 0..200),
        now in any::<i64>().prop_map(|secs| secs % 100_000_000_000),
        keys in prop::collection::vec("(whsec_)?[A-Za-z0-9+/=*]{0,20}", 0..3),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(*name, value);
            }
        }
        let secrets: Vec<SigningSecret> = keys.iter().map(|key| SigningSecret::new(key.as_str())).collect();
        let now = DateTime::from_timestamp(now, 0).unwrap_or_default();
        for scheme in all_schemes() {
            if let Err(rejection) = verify(&scheme, &secrets, &map, &body, now) {
                prop_assert!(!rejection.code().is_empty());
                prop_assert!(rejection.status().is_client_error());
            }
        }
    }

    #[test]
    fn a_correct_signature_always_verifies(
        timestamp in 0i64..4_000_000_000,
        skew in -300i64..=300,
        key_bytes in prop::collection::vec(any::<u8>(), 24..48),
    ) {
        let key = format!("whsec_{}", BASE64.encode(key_bytes));
        for scheme in all_schemes() {
            let (map, body) = signed_request(&scheme, &key, timestamp);
            let verified = verify(&scheme, &secret(&key), &map, &body, at(timestamp + skew));
            prop_assert!(verified.is_ok(), "{}: {:?}", scheme.provider(), verified);
        }
    }
}

#[test]
fn extreme_timestamps_are_refused_without_overflow() {
    let (map, body) = signed_request(&WebhookScheme::Stripe, OLD_KEY, 9_223_372_036_854_775_807);
    unauthorized(
        verify(
            &WebhookScheme::Stripe,
            &secret(OLD_KEY),
            &map,
            &body,
            DateTime::<Utc>::MIN_UTC,
        ),
        "future_timestamp",
    );
    let (map, body) = signed_request(&WebhookScheme::Slack, OLD_KEY, 0);
    unauthorized(
        verify(
            &WebhookScheme::Slack,
            &secret(OLD_KEY),
            &map,
            &body,
            DateTime::<Utc>::MAX_UTC,
        ),
        "stale_timestamp",
    );
    assert_eq!(at(0) + Duration::seconds(1), at(1));
}

// ---------------------------------------------------------------------------------------------
// Properties past the signature: correctly signed arbitrary bodies and arbitrary extra headers
// reach the schemes' body and header parsing. Each verification ends in a delivery or a
// client-error rejection with a code, quickly: never a panic or a hang.

/// How long one verification may take before it counts as a hang (generous: a hang or a
/// super-linear blow-up takes far longer; a normal verification takes microseconds).
const VERIFY_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// The headers signing `body` at `timestamp` with `key` under `scheme`.
fn sign(scheme: &WebhookScheme, key: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let ts = timestamp.to_string();
    let pair = |name: &str, value: String| (name.to_owned(), value);
    match scheme {
        WebhookScheme::Github => vec![pair(
            "x-hub-signature-256",
            format!(
                "sha256={}",
                hex::encode(hmac_sha256(key.as_bytes(), &[body]))
            ),
        )],
        WebhookScheme::Stripe => vec![pair(
            "stripe-signature",
            format!(
                "t={ts},v1={}",
                hex::encode(hmac_sha256(key.as_bytes(), &[ts.as_bytes(), b".", body]))
            ),
        )],
        WebhookScheme::Slack => vec![
            pair(
                "x-slack-signature",
                format!(
                    "v0={}",
                    hex::encode(hmac_sha256(
                        key.as_bytes(),
                        &[b"v0:", ts.as_bytes(), b":", body]
                    ))
                ),
            ),
            pair("x-slack-request-timestamp", ts.clone()),
        ],
        WebhookScheme::Shopify => vec![pair(
            "x-shopify-hmac-sha256",
            BASE64.encode(hmac_sha256(key.as_bytes(), &[body])),
        )],
        WebhookScheme::Standard => {
            let raw_key = BASE64.decode(key.strip_prefix("whsec_").unwrap()).unwrap();
            vec![
                pair("webhook-id", "msg_1".to_owned()),
                pair("webhook-timestamp", ts.clone()),
                pair(
                    "webhook-signature",
                    format!(
                        "v1,{}",
                        BASE64.encode(hmac_sha256(
                            &raw_key,
                            &[b"msg_1.", ts.as_bytes(), b".", body]
                        ))
                    ),
                ),
            ]
        }
        WebhookScheme::Generic(generic) => vec![
            pair(
                &generic.header,
                hex::encode(hmac_sha256(key.as_bytes(), &[ts.as_bytes(), b".", body])),
            ),
            pair("x-timestamp", ts.clone()),
        ],
    }
}

/// JSON documents of any shape (the schemes read ids and types from them).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
        prop::sample::select(
            &[
                "event_callback",
                "url_verification",
                "message",
                "evt_1",
                "Ev1",
            ][..]
        )
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(
                    &[
                        "id",
                        "type",
                        "event",
                        "event_id",
                        "trigger_id",
                        "challenge",
                        "payload",
                        "command",
                        "x"
                    ][..]
                )
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        // Slack's form bodies, payloads of interactions included.
        "((payload|command|trigger_id|challenge|type|ssl_check|[a-z%]{1,8})=[A-Za-z0-9%+{}\":,_]{0,40}&?){0,8}"
            .prop_map(String::into_bytes),
        // Nesting far beyond any parser's recursion limit.
        (1usize..20_000).prop_map(|depth| {
            let mut body = "[".repeat(depth).into_bytes();
            body.extend(std::iter::repeat_n(b']', depth / 2));
            body
        }),
        (0usize..200_000).prop_map(|size| vec![b'a'; size]),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(
        &[
            "application/json",
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ][..],
    ))
}

/// Header names the schemes read (sent again, they make a duplicate) and others.
fn extra_header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(HEADER_NAMES).prop_map(str::to_owned),
        "[a-z][a-z0-9-]{0,24}",
    ]
}

/// Any bytes a header value may hold, visible ASCII, obs-text (0x80-0xFF) and tabs included.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_value().prop_map(String::into_bytes),
        prop::collection::vec(
            prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
            0..300
        ),
        (0usize..20_000).prop_map(|size| vec![b'9'; size]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_arbitrary_deliveries_are_accepted_or_refused_with_a_code(
        body in body(),
        content_type in content_type(),
        extra in prop::collection::vec((extra_header_name(), header_bytes()), 0..4),
        timestamp in 0i64..4_000_000_000,
        skew in -600i64..=600,
    ) {
        for scheme in all_schemes() {
            let mut map = HeaderMap::new();
            for (name, value) in sign(&scheme, OLD_KEY, timestamp, &body) {
                map.append(HeaderName::try_from(name).unwrap(), HeaderValue::from_str(&value).unwrap());
            }
            if let Some(content_type) = content_type {
                map.append("content-type", HeaderValue::from_static(content_type));
            }
            for (name, value) in &extra {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value))
                {
                    map.append(name, value);
                }
            }
            let started = std::time::Instant::now();
            let outcome = verify(&scheme, &secret(OLD_KEY), &map, &body, at(timestamp + skew));
            prop_assert!(
                started.elapsed() < VERIFY_BOUND,
                "{}: {:?} for a {}-byte body", scheme.provider(), started.elapsed(), body.len()
            );
            if let Err(rejection) = outcome {
                prop_assert!(!rejection.code().is_empty());
                prop_assert!(rejection.status().is_client_error(), "{rejection:?}");
                prop_assert!(!rejection.to_string().contains(OLD_KEY), "{rejection}");
            } else {
                // Accepted only within the tolerance of the timestamped schemes.
                let timestamped = !matches!(scheme, WebhookScheme::Github | WebhookScheme::Shopify);
                prop_assert!(!timestamped || skew.abs() <= 300, "{}: skew {skew}", scheme.provider());
            }
        }
    }

    #[test]
    fn arbitrary_header_maps_are_refused_with_a_code(
        pairs in prop::collection::vec((extra_header_name(), header_bytes()), 0..12),
        body in body(),
        now in 0i64..4_000_000_000,
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &pairs {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value))
            {
                map.append(name, value);
            }
        }
        for scheme in all_schemes() {
            let started = std::time::Instant::now();
            let outcome = verify(&scheme, &secret(OLD_KEY), &map, &body, at(now));
            prop_assert!(started.elapsed() < VERIFY_BOUND, "{}", scheme.provider());
            // Without the key nothing verifies.
            let rejection = outcome.expect_err("unsigned");
            prop_assert!(!rejection.code().is_empty());
            prop_assert!(rejection.status().is_client_error(), "{rejection:?}");
        }
    }
}
