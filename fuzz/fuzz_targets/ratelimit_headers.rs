//! Response headers, a status and a body through the rate-limit header parser for every
//! provider profile: an observation (with diagnostics for what it could not read), never a
//! panic.
#![no_main]

mod common;

use chrono::{DateTime, Utc};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use stepwise_integrations::providers;
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
    let providers = providers::providers();
    let profile = match usize::from(selector) % (providers.len() + 1) {
        0 => ProviderProfile::generic(),
        index => providers[index - 1].rate_limit_profile(),
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
