//! The rate-limit layer against simulated providers: a bucket fed the provider's responses never
//! causes a 429 and still uses at least 95% of the quota; random header values never panic.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;
use stepwise_integrations::ratelimit::{
    Bucket, MAX_RESET_HORIZON, ProviderProfile, RateLimitObservation, parse,
};

/// The rate-limit profile a provider declares.
fn declared(name: &str) -> ProviderProfile {
    stepwise_integrations::providers::provider(name)
        .expect(name)
        .rate_limit_profile()
}

/// Shopify REST's leaky bucket: 40 requests leaking 2 per second.
fn leaky_bucket() -> ProviderProfile {
    ProviderProfile {
        rejection_wait: Duration::from_secs(2),
        ..ProviderProfile::seeded(40, Duration::from_secs(20))
    }
}

/// `requests` per minute in fixed windows (Slack's tiers).
fn per_minute(requests: u64) -> ProviderProfile {
    ProviderProfile {
        default_window: Some(Duration::from_secs(60)),
        rejection_wait: Duration::from_secs(60),
        ..ProviderProfile::seeded(requests, Duration::from_secs(60))
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn ms(millis: i64) -> TimeDelta {
    TimeDelta::milliseconds(millis)
}

fn header(map: &mut HeaderMap, name: &'static str, value: String) {
    map.insert(name, HeaderValue::from_str(&value).unwrap());
}

#[derive(Clone, Copy, Debug)]
enum Style {
    /// GitHub: the window starts at the first request after the last one ended; the reset is
    /// epoch seconds rounded up.
    GitHubEpoch,
    /// Windows on a fixed schedule (offset by 0.5 s from whole seconds), reset as epoch seconds
    /// rounded *down*: the bucket's grace period has to cover it.
    ScheduleEpochFloor,
    /// IETF current draft, delta seconds rounded up, fixed schedule.
    IetfDelta,
}

/// A provider allowing `n` requests per fixed `window`.
struct FixedWindowProvider {
    n: u64,
    window: TimeDelta,
    style: Style,
    end: Option<DateTime<Utc>>,
    /// Accepted requests per window, in order.
    windows: Vec<u64>,
    rejected: u64,
    /// The index in `windows` of every rejection.
    rejected_in: Vec<usize>,
}

impl FixedWindowProvider {
    fn new(n: u64, window_secs: i64, style: Style) -> Self {
        Self {
            n,
            window: TimeDelta::seconds(window_secs),
            style,
            end: None,
            windows: Vec::new(),
            rejected: 0,
            rejected_in: Vec::new(),
        }
    }

    fn respond(&mut self, at: DateTime<Utc>) -> (StatusCode, HeaderMap) {
        if self.end.is_none_or(|end| at >= end) {
            let end = match self.style {
                Style::GitHubEpoch => at + self.window,
                Style::ScheduleEpochFloor | Style::IetfDelta => {
                    let origin = t0() + ms(500);
                    let elapsed = (at - origin).num_milliseconds();
                    let k = elapsed.div_euclid(self.window.num_milliseconds());
                    origin + self.window * (k as i32 + 1)
                }
            };
            self.end = Some(end);
            self.windows.push(0);
        }
        let end = self.end.unwrap();
        let used = *self.windows.last().unwrap();
        let status = if used >= self.n {
            self.rejected += 1;
            self.rejected_in.push(self.windows.len() - 1);
            StatusCode::TOO_MANY_REQUESTS
        } else {
            *self.windows.last_mut().unwrap() += 1;
            StatusCode::OK
        };
        let remaining = self.n - *self.windows.last().unwrap();
        let mut headers = HeaderMap::new();
        let end_secs = end.timestamp_millis() as f64 / 1000.0;
        match self.style {
            Style::GitHubEpoch | Style::ScheduleEpochFloor => {
                let reset = match self.style {
                    Style::GitHubEpoch => end_secs.ceil(),
                    _ => end_secs.floor(),
                };
                header(&mut headers, "x-ratelimit-limit", self.n.to_string());
                header(&mut headers, "x-ratelimit-remaining", remaining.to_string());
                header(
                    &mut headers,
                    "x-ratelimit-reset",
                    (reset as i64).to_string(),
                );
                header(&mut headers, "x-ratelimit-resource", "core".into());
            }
            Style::IetfDelta => {
                let t = ((end - at).num_milliseconds() as f64 / 1000.0).ceil() as i64;
                let w = self.window.num_seconds();
                header(
                    &mut headers,
                    "ratelimit-policy",
                    format!("\"default\";q={};w={w}", self.n),
                );
                header(
                    &mut headers,
                    "ratelimit",
                    format!("\"default\";r={remaining};t={t}"),
                );
            }
        }
        (status, headers)
    }
}

/// A client that always wants to send: acquires, sends at the granted time, and gets each
/// response `latency` later (several requests may be in flight). Returns the grants.
fn drive(
    profile: &ProviderProfile,
    mut respond: impl FnMut(DateTime<Utc>) -> (StatusCode, HeaderMap),
    duration: TimeDelta,
    latency: TimeDelta,
) -> Vec<DateTime<Utc>> {
    let mut bucket = Bucket::new(profile, t0());
    let mut now = t0();
    let mut in_flight: VecDeque<(DateTime<Utc>, RateLimitObservation)> = VecDeque::new();
    let mut grants = Vec::new();
    while now < t0() + duration {
        while in_flight
            .front()
            .is_some_and(|(arrival, _)| *arrival <= now)
        {
            let (arrival, observation) = in_flight.pop_front().unwrap();
            bucket.observe(&observation, arrival);
        }
        let at = bucket.acquire_at(now);
        assert!(at >= now, "granted {at} before {now}");
        assert!(grants.last().is_none_or(|last| at >= *last));
        let (status, headers) = respond(at);
        let arrival = at + latency;
        in_flight.push_back((arrival, parse(&headers, status, arrival, profile)));
        grants.push(at);
        if grants.len() > 200_000 {
            panic!("no progress: {:?} {bucket:?}", &grants[grants.len() - 3..]);
        }
        // The next request is wanted right away, but not before the next response is due when
        // nothing may be granted earlier: advancing to `at` models that.
        now = at;
    }
    grants
}

fn assert_fixed_window_use(provider: &FixedWindowProvider) {
    assert_eq!(provider.rejected, 0, "429s: windows {:?}", provider.windows);
    let full = &provider.windows[1..provider.windows.len() - 1];
    assert!(full.len() >= 2, "windows {:?}", provider.windows);
    // The reserve is kept from the second full window on: the window in which the first
    // response arrives may also hold a request booked on the profile's guess.
    for used in &full[1..] {
        assert!(*used < provider.n, "reserve spent: {:?}", provider.windows);
    }
    for used in full {
        assert!(
            *used as f64 >= 0.95 * provider.n as f64,
            "used {used} of {} in windows {:?}",
            provider.n,
            provider.windows
        );
    }
}

fn fixed_window_case(n: u64, window_secs: i64, style: Style, latency_ms: i64, windows: i32) {
    let mut provider = FixedWindowProvider::new(n, window_secs, style);
    let mut profile = declared("github");
    profile.default_window = Some(Duration::from_secs(window_secs as u64));
    drive(
        &profile,
        |at| provider.respond(at),
        TimeDelta::seconds(window_secs) * windows,
        ms(latency_ms),
    );
    eprintln!(
        "{style:?} n={n} latency={latency_ms}ms: {:?}",
        provider.windows
    );
    assert_fixed_window_use(&provider);
}

#[test]
fn github_style_windows_never_429_and_use_95_percent() {
    fixed_window_case(100, 60, Style::GitHubEpoch, 0, 8);
    fixed_window_case(60, 3600, Style::GitHubEpoch, 150, 4);
    fixed_window_case(5000, 3600, Style::GitHubEpoch, 150, 4);
}

#[test]
fn scheduled_windows_with_floored_resets_never_429() {
    fixed_window_case(100, 60, Style::ScheduleEpochFloor, 0, 8);
    fixed_window_case(20, 10, Style::ScheduleEpochFloor, 200, 10);
}

#[test]
fn ietf_delta_windows_never_429_and_use_95_percent() {
    fixed_window_case(100, 60, Style::IetfDelta, 0, 8);
    fixed_window_case(1000, 60, Style::IetfDelta, 250, 6);
}

/// `X-RateLimit-*` without a window length (the generic profile knows none): the bucket refills
/// at the stated reset, and the next window's responses arrive while the requests granted
/// since are still in flight. Their count must not hand the window out a second time, a late
/// 429 from the window before must not empty it, and the window's length is learned from the
/// resets. This client has no bound on requests in flight, so the first two full windows are
/// spent learning: in the first, the generic seed (10 per second) has more requests in flight
/// when the first count arrives than the reserve absorbs; in the second, until its first
/// response states the reset, the bucket refills continuously at the seed rate.
#[test]
fn windows_of_unknown_length_never_429_once_learned_and_use_95_percent() {
    for (n, window_secs, style, latency_ms) in [
        (100, 60, Style::ScheduleEpochFloor, 150),
        (100, 60, Style::GitHubEpoch, 400),
        (40, 10, Style::ScheduleEpochFloor, 250),
    ] {
        let mut provider = FixedWindowProvider::new(n, window_secs, style);
        drive(
            &ProviderProfile::generic(),
            |at| provider.respond(at),
            TimeDelta::seconds(window_secs) * 8,
            ms(latency_ms),
        );
        let windows = &provider.windows;
        eprintln!(
            "{style:?} n={n} window={window_secs}s latency={latency_ms}ms: {windows:?}, 429s in {:?}",
            provider.rejected_in
        );
        assert!(
            provider.rejected_in.iter().all(|index| *index <= 2),
            "429s after the second full window: {windows:?}, 429s in {:?}",
            provider.rejected_in
        );
        let later = &windows[3..windows.len() - 1];
        assert!(later.len() >= 4, "windows {windows:?}");
        for used in later {
            assert!(
                *used as f64 >= 0.95 * n as f64,
                "used {used} of {n} in windows {windows:?}"
            );
        }
    }
}

#[test]
fn fixed_windows_are_paced_not_burst() {
    let mut provider = FixedWindowProvider::new(100, 60, Style::GitHubEpoch);
    let mut profile = declared("github");
    profile.default_window = Some(Duration::from_secs(60));
    let grants = drive(
        &profile,
        |at| provider.respond(at),
        TimeDelta::seconds(180),
        ms(0),
    );
    // In the second window no 10 s stretch carries more than a third of the quota.
    let second_start = grants[provider.windows[0] as usize];
    let second: Vec<_> = grants
        .iter()
        .filter(|g| **g >= second_start && **g < second_start + TimeDelta::seconds(60))
        .collect();
    for g in &second {
        let dense = second
            .iter()
            .filter(|h| ***h >= **g && ***h < **g + TimeDelta::seconds(10))
            .count();
        assert!(dense <= 33, "{dense} requests in 10 s from {g}");
    }
}

/// Shopify's leaky bucket: capacity 40, leaking 2 per second.
struct LeakyProvider {
    capacity: f64,
    leak_per_sec: f64,
    level: f64,
    at: DateTime<Utc>,
    accepted: u64,
    rejected: u64,
}

impl LeakyProvider {
    fn respond(&mut self, at: DateTime<Utc>) -> (StatusCode, HeaderMap) {
        let elapsed = (at - self.at).num_milliseconds() as f64 / 1000.0;
        self.level = (self.level - elapsed * self.leak_per_sec).max(0.0);
        self.at = at;
        let status = if self.level + 1.0 > self.capacity {
            self.rejected += 1;
            StatusCode::TOO_MANY_REQUESTS
        } else {
            self.level += 1.0;
            self.accepted += 1;
            StatusCode::OK
        };
        let mut headers = HeaderMap::new();
        header(
            &mut headers,
            "x-shopify-shop-api-call-limit",
            format!("{}/{}", self.level.ceil() as u64, self.capacity as u64),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            header(&mut headers, "retry-after", "2.0".into());
        }
        (status, headers)
    }
}

#[test]
fn shopify_leaky_bucket_never_429_and_keeps_the_leak_rate() {
    for latency in [0, 300] {
        let mut provider = LeakyProvider {
            capacity: 40.0,
            leak_per_sec: 2.0,
            level: 0.0,
            at: t0(),
            accepted: 0,
            rejected: 0,
        };
        let seconds = 600;
        drive(
            &leaky_bucket(),
            |at| provider.respond(at),
            TimeDelta::seconds(seconds),
            ms(latency),
        );
        assert_eq!(provider.rejected, 0, "latency {latency}");
        let sustained = (provider.accepted as f64 - 40.0) / seconds as f64;
        assert!(
            sustained >= 0.95 * 2.0,
            "{sustained}/s at latency {latency}"
        );
    }
}

#[test]
fn retry_after_is_honoured_absolutely() {
    // A provider with no quota headers that rejects every third request for 30 s.
    let profile = declared("slack");
    let mut bucket = Bucket::new(&profile, t0());
    let mut now = t0();
    let mut blocked_until = t0();
    for i in 0..200 {
        let at = bucket.acquire_at(now);
        assert!(
            at >= blocked_until,
            "request {i} at {at} before {blocked_until}"
        );
        let mut headers = HeaderMap::new();
        let status = if i % 3 == 2 {
            header(&mut headers, "retry-after", "30".into());
            blocked_until = at + TimeDelta::seconds(30);
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::OK
        };
        let observation = parse(&headers, status, at, &profile);
        assert_eq!(observation.scope.as_deref(), Some("tier3"));
        bucket.observe(&observation, at);
        now = at;
    }
}

#[test]
fn seeds_pace_before_any_header() {
    // Stripe test mode: 25 requests/s, evenly spaced (no bursts on a guessed quota).
    let profile = ProviderProfile::seeded(25, Duration::from_secs(1));
    let mut bucket = Bucket::new(&profile, t0());
    for i in 0..100 {
        assert_eq!(bucket.acquire_at(t0()), t0() + ms(40 * i));
    }
    // Slack tier 1: one request per minute, no reserve possible.
    let profile = per_minute(1);
    let mut bucket = Bucket::new(&profile, t0());
    assert_eq!(bucket.acquire_at(t0()), t0());
    assert_eq!(bucket.acquire_at(t0()), t0() + TimeDelta::seconds(60));
}

#[test]
fn exhausted_window_waits_for_reset_and_grace() {
    let profile = declared("github");
    let mut bucket = Bucket::new(&profile, t0());
    let mut headers = HeaderMap::new();
    header(&mut headers, "x-ratelimit-limit", "5000".into());
    header(&mut headers, "x-ratelimit-remaining", "1".into());
    header(
        &mut headers,
        "x-ratelimit-reset",
        (t0().timestamp() + 120).to_string(),
    );
    let observation = parse(&headers, StatusCode::OK, t0(), &profile);
    bucket.observe(&observation, t0());
    // One left is the reserve: nothing until the reset plus the 1 s grace.
    assert_eq!(bucket.acquire_at(t0()), t0() + TimeDelta::seconds(121));
    assert_eq!(bucket.remaining(), 4999);
    assert_eq!(
        bucket.reset_at(),
        Some(t0() + TimeDelta::seconds(121 + 3600))
    );
}

#[test]
fn bucket_survives_a_serde_round_trip() {
    let profile = declared("github");
    let mut bucket = Bucket::new(&profile, t0());
    bucket.acquire_at(t0());
    let json = serde_json::to_string(&bucket).unwrap();
    let back: Bucket = serde_json::from_str(&json).unwrap();
    assert_eq!(back, bucket);
}

const NAMES: &[&str] = &[
    "retry-after",
    "date",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-reset-after",
    "x-ratelimit-resource",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit",
    "ratelimit-policy",
    "x-shopify-shop-api-call-limit",
    "x-hubspot-ratelimit-max",
    "x-hubspot-ratelimit-remaining",
    "x-hubspot-ratelimit-interval-milliseconds",
    "x-hubspot-ratelimit-daily",
    "x-hubspot-ratelimit-daily-remaining",
];

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        "[-+]?[0-9]{1,25}(\\.[0-9]{0,6})?".prop_map(String::into_bytes),
        "[0-9]{1,20}/[0-9]{1,20}".prop_map(String::into_bytes),
        "\"[a-z]{0,6}\";[qrwt]=-?[0-9]{1,18}(;[qrwt]=-?[0-9]{1,18}){0,2}(, [a-z]{1,4};[rq]=[0-9]{1,3})?"
            .prop_map(String::into_bytes),
        "(limit|remaining|reset)=-?[0-9]{1,18}(, (limit|remaining|reset)=-?[0-9]{1,18}){0,2}"
            .prop_map(String::into_bytes),
        "(Mon|Thu|Sunday), [0-9]{2}[ -](Jan|Nov|Foo)[ -][0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
            .prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn profile_strategy() -> impl Strategy<Value = ProviderProfile> {
    prop_oneof![
        Just(ProviderProfile::generic()),
        Just(declared("github")),
        Just(declared("slack")),
        Just(declared("stripe")),
        (1u64..=100).prop_map(per_minute),
        Just(leaky_bucket()),
        (1u64..=1000)
            .prop_map(|per_second| ProviderProfile::seeded(per_second, Duration::from_secs(1))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_headers_never_panic(
        pairs in proptest::collection::vec((0..NAMES.len(), value_strategy()), 0..8),
        status in prop_oneof![Just(200u16), Just(403), Just(429), Just(503), 100u16..600],
        offset in -1_000_000_000i64..4_000_000_000,
        profile in profile_strategy(),
        body_secondary in any::<bool>(),
    ) {
        let now = DateTime::from_timestamp(offset, 0).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.append(HeaderName::from_static(NAMES[name]), value);
            }
        }
        let status = StatusCode::from_u16(status).unwrap();
        let body: &[u8] = if body_secondary { b"secondary rate limit" } else { b"" };
        let obs = stepwise_integrations::ratelimit::parse_with_body(
            &headers, status, body, now, &profile,
        );
        let horizon = now + TimeDelta::from_std(MAX_RESET_HORIZON).unwrap();
        if let Some(reset) = obs.reset_at {
            prop_assert!(reset >= now && reset <= horizon, "{reset}");
        }
        if let Some(retry) = obs.retry_after {
            let max = now + TimeDelta::from_std(profile.max_retry_after).unwrap();
            prop_assert!(retry >= now && retry <= max, "{retry}");
        }
        if let Some(not_before) = obs.not_before {
            prop_assert!(not_before >= now);
        }
        prop_assert!(obs.limit != Some(0));

        // The bucket takes any observation and still grants monotonically, never before now.
        let mut bucket = Bucket::new(&profile, now);
        bucket.observe(&obs, now);
        let mut last = now;
        for _ in 0..5 {
            let at = bucket.acquire_at(now);
            prop_assert!(at >= last);
            if let Some(not_before) = obs.not_before {
                prop_assert!(at >= not_before);
            }
            last = at;
        }
    }
}

/// Long, repeated and list-shaped values: the parser's cost stays linear, whatever a provider
/// (or a proxy in front of it) sends.
fn long_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        value_strategy(),
        (1usize..20_000).prop_map(|digits| vec![b'9'; digits]),
        (1usize..2_000).prop_map(|items| {
            let item = "\"p\";q=100;w=60";
            vec![item; items].join(", ").into_bytes()
        }),
        (1usize..2_000).prop_map(|items| vec!["limit=1"; items].join(", ").into_bytes()),
        prop::collection::vec(
            prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
            0..4_000
        ),
    ]
}

/// How long one parse may take before it counts as a hang (generous: microseconds are normal).
const PARSE_BOUND: Duration = Duration::from_secs(2);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn long_and_repeated_headers_are_read_quickly(
        pairs in proptest::collection::vec((0..NAMES.len(), long_value(), 1usize..5), 0..10),
        status in prop_oneof![Just(200u16), Just(403), Just(429), 100u16..600],
        offset in 0i64..4_000_000_000,
        profile in profile_strategy(),
        body in proptest::collection::vec(any::<u8>(), 0..100_000),
    ) {
        let now = DateTime::from_timestamp(offset, 0).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value, copies) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                for _ in 0..copies {
                    headers.append(HeaderName::from_static(NAMES[name]), value.clone());
                }
            }
        }
        let status = StatusCode::from_u16(status).unwrap();
        let started = std::time::Instant::now();
        let obs = stepwise_integrations::ratelimit::parse_with_body(
            &headers, status, &body, now, &profile,
        );
        prop_assert!(started.elapsed() < PARSE_BOUND, "{:?}", started.elapsed());
        let horizon = now + TimeDelta::from_std(MAX_RESET_HORIZON).unwrap();
        prop_assert!(obs.reset_at.is_none_or(|reset| reset >= now && reset <= horizon));
        prop_assert!(obs.limit != Some(0));
    }
}

#[test]
fn a_response_from_a_refilled_window_is_ignored() {
    let mut profile = declared("github");
    profile.default_window = Some(Duration::from_secs(60));
    let mut bucket = Bucket::new(&profile, t0());
    let observe = |bucket: &mut Bucket, remaining: &str, reset_offset: i64, at: DateTime<Utc>| {
        let mut headers = HeaderMap::new();
        header(&mut headers, "x-ratelimit-limit", "100".into());
        header(&mut headers, "x-ratelimit-remaining", remaining.into());
        header(
            &mut headers,
            "x-ratelimit-reset",
            (t0().timestamp() + reset_offset).to_string(),
        );
        bucket.observe(&parse(&headers, StatusCode::OK, at, &profile), at);
    };
    observe(&mut bucket, "1", 60, t0());
    // Reserve reached: the next grant refills at reset + grace.
    let refill = bucket.acquire_at(t0());
    assert_eq!(refill, t0() + TimeDelta::seconds(61));
    assert_eq!(bucket.remaining(), 99);
    // The previous window's last response, delayed, must not empty the new window.
    observe(&mut bucket, "0", 60, t0() + TimeDelta::seconds(59));
    assert_eq!(bucket.remaining(), 99);
    assert_eq!(bucket.reset_at(), Some(refill + TimeDelta::seconds(60)));
}
