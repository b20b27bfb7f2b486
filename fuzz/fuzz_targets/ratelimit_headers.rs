//! Response headers, a status and a body through the rate-limit header parser for every
//! provider profile: an observation (with diagnostics for what it could not read), never a
//! panic.
#![no_main]

mod common;

use chrono::{DateTime, Utc};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use stepwise_integrations::ratelimit::{ProviderProfile, parse_with_body};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(rest.len());
    let (header_text, body) = rest.split_at(split);
    let headers = common::headers(header_text);
    let status = [200, 403, 429, 500, 503][usize::from(selector >> 5) % 5];
    let status = StatusCode::from_u16(status).unwrap();
    let profile = match selector % 7 {
        0 => ProviderProfile::generic(),
        1 => ProviderProfile::github(),
        2 => ProviderProfile::slack(selector >> 3),
        3 => ProviderProfile::shopify(),
        4 => ProviderProfile::hubspot(),
        5 => ProviderProfile::stripe(true),
        _ => ProviderProfile::stripe(false),
    };
    let now = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let _ = parse_with_body(
        &headers,
        status,
        body.get(1..).unwrap_or_default(),
        now,
        &profile,
    );
});
