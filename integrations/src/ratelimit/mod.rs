//! Rate-limit scheduling, pure layer: turning response headers into a [`RateLimitObservation`]
//! ([`parse`]) and deciding when the next request may go out ([`Bucket::acquire_at`]).
//!
//! Nothing here does I/O, reads a clock or sleeps: the engine passes `now`, sleeps until the
//! instant [`Bucket::acquire_at`] returns, sends, and feeds the response back through [`parse`]
//! and [`Bucket::observe`]. [`Bucket`] is serde data so the engine can keep one per connection
//! in the database and share it across workers (ARCHITECTURE.md, `integrations/`).
//!
//! # Header formats
//!
//! | Family | Headers | Notes |
//! |---|---|---|
//! | `Retry-After` (RFC 9110 §10.2.3) | `Retry-After: 120` / `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT` | delay seconds (decimals are rounded up) or any of the three HTTP-date forms. A number ≥ 10⁹ is read as epoch seconds (some APIs do that). Past = no wait; clamped to [`ProviderProfile::max_retry_after`] (1 h by default). |
//! | IETF, current draft (httpapi-ratelimit-headers-09/10) | `RateLimit-Policy: "default";q=100;w=60`, `RateLimit: "default";r=50;t=30` | RFC 9651 lists (parsed with `sfv`); names may be strings or tokens; items are matched by name; `t` is delta seconds. With several policies the one with the fewest remaining requests wins. |
//! | IETF, older drafts | `RateLimit: limit=100, remaining=50, reset=30` (dictionary), `RateLimit-Policy: 100;w=60` (integers with `w`) | `reset` is delta seconds. |
//! | `X-RateLimit-*` and legacy `RateLimit-Limit/-Remaining/-Reset` | `X-RateLimit-Limit: 5000`, `X-RateLimit-Remaining: 4999`, `X-RateLimit-Reset: 1700000000` | Reset is disambiguated: ≥ 10¹² → epoch milliseconds, ≥ 10⁹ → epoch seconds, else delta seconds. `X-RateLimit-Reset-After` (delta) is read too. |
//! | GitHub | `x-ratelimit-*` + `x-ratelimit-resource` (the scope) | secondary limits: 403/429 with `Retry-After`, or with `x-ratelimit-remaining: 0`, or a body mentioning "secondary rate limit" ([`parse_with_body`]); no `Retry-After` → wait until the reset when remaining is 0, else 60 s. |
//! | Slack | `Retry-After` on 429 | no quota headers; the profile seeds the tier (1–4 → 1/20/50/100 per minute) and names the scope `tierN`. |
//! | Shopify (REST) | `X-Shopify-Shop-Api-Call-Limit: 32/40` | a leaky bucket: used/capacity, leaks capacity/20 per second (2/s for 40). |
//! | HubSpot | `X-HubSpot-RateLimit-Max`, `-Remaining`, `-Interval-Milliseconds`, `-Daily`, `-Daily-Remaining` | the interval and daily quotas are both read; the one with fewer remaining requests wins. |
//! | Stripe | none | seed only: 100 requests/s live, 25 test. |
//! | Declared ([`HeaderQuota`]) | OpenAI `x-ratelimit-limit-requests`, `-remaining-requests`, `-reset-requests: 6m0s` (and `-tokens`) | named in the provider's `rate_limit.header_quotas`; resets may carry units (`1h2m3.5s`, `20ms`); one header may state `used/limit` under a key instead (Salesforce `Sforce-Limit-Info: api-usage=25/15000`). A quota of requests is read like `X-RateLimit-*`; one of anything else (tokens) only blocks until its reset once exhausted, and a rejection waits for it. |
//!
//! # Precedence
//!
//! For the next-allowed time ([`RateLimitObservation::not_before`]):
//! **`Retry-After` > rejection > IETF > `X-RateLimit` > profile seed.** A `Retry-After` wins
//! absolutely (even on a 503). A rejection without one waits for the reset when the quota is
//! known to be exhausted and otherwise for the profile's [`ProviderProfile::rejection_wait`].
//! Otherwise no wait is imposed and the [`Bucket`] paces requests from the quota fields.
//!
//! For the quota fields (`limit`, `remaining`, `reset_at`, `policy`), each field is taken from
//! the first family that supplies it: IETF (current draft, then older draft) >
//! declared header quotas > provider-specific headers (Shopify, HubSpot) > `X-RateLimit-*` > legacy `RateLimit-*`.
//! Fields no header supplies stay `None`; the bucket then keeps its profile seed.
//!
//! # Malformed values
//!
//! Parsing never fails and never panics; every value that is ignored or adjusted leaves a
//! [`Diagnostic`]:
//! - non-numeric or empty values are ignored;
//! - negative `remaining` is clamped to 0 (the conservative reading), negative `limit` is
//!   ignored, a `limit` of 0 is ignored (it would stop all traffic forever), negative resets and
//!   retry delays mean "now";
//! - numbers that do not fit in a `u64` are ignored;
//! - duplicated header lines and comma lists (`100, 100;w=60`) take the most conservative
//!   value: the smallest `limit`/`remaining`, the latest reset or retry time;
//! - resets further than [`MAX_RESET_HORIZON`] (31 days) ahead are clamped to it; resets in the
//!   past become `now` (the window is over: no wait, and its `remaining` is stale);
//! - header names are case-insensitive (the `http` crate) and values are trimmed.
//!
//! Absolute times the server states (epoch resets, HTTP dates) are corrected for clock skew when
//! the response's `Date` header differs from `now` by 2 s to 1 day.

mod bucket;
mod parse;
mod profile;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use bucket::Bucket;
pub use parse::{is_secondary_rate_limit_body, parse, parse_with_body};
pub use profile::{HeaderQuota, ProviderProfile, SeedBucket};

/// Resets further ahead than this are clamped to it (monthly quotas fit).
pub const MAX_RESET_HORIZON: Duration = Duration::from_secs(31 * 24 * 3600);

/// What one response says about the provider's rate limit. Built by [`parse`]; every field is
/// optional because most responses carry only some of them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateLimitObservation {
    /// Requests allowed per window (or the bucket capacity for leaky buckets).
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// When the current window ends and the quota refills; `now` when it already has.
    pub reset_at: Option<DateTime<Utc>>,
    /// When the provider asked us to retry (`Retry-After`), clamped to the profile maximum.
    pub retry_after: Option<DateTime<Utc>>,
    /// The quota policy (IETF `RateLimit-Policy`, or derived from provider headers).
    pub policy: Option<QuotaPolicy>,
    /// What the limit applies to: GitHub `x-ratelimit-resource`, the Slack tier, the IETF policy
    /// name, `x-ratelimit-scope`.
    pub scope: Option<String>,
    /// Whether the response is a rate-limit rejection (429, GitHub secondary-limit 403).
    pub rejected: bool,
    /// The earliest time the next request may be sent, by the precedence in the module docs;
    /// `None` means no wait is imposed by this response.
    pub not_before: Option<DateTime<Utc>>,
    /// Which header family supplied `remaining`.
    pub source: Option<HeaderSource>,
    /// Values that were ignored or adjusted.
    pub diagnostics: Vec<Diagnostic>,
}

/// A quota: `quota` requests per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// The IETF policy name, or a provider-specific one (`"interval"`, `"daily"`).
    pub name: Option<String>,
    pub quota: u64,
    pub window: Option<Duration>,
}

/// The header family an observation's quota came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSource {
    /// `RateLimit` / `RateLimit-Policy`, current structured-field draft.
    Ietf,
    /// `RateLimit: limit=.., remaining=.., reset=..`, older dictionary draft.
    IetfDictionary,
    /// Shopify or HubSpot headers.
    Provider,
    /// `X-RateLimit-*`.
    XRateLimit,
    /// `RateLimit-Limit/-Remaining/-Reset`.
    LegacyRateLimit,
}

/// A header value that was ignored or adjusted while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The header name, lower case.
    pub header: String,
    pub problem: Problem,
}

/// What was wrong with a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not valid UTF-8/visible ASCII, or empty.
    Unreadable,
    /// Not a number (or not an HTTP date, or not a structured field).
    NotNumeric,
    /// Negative: clamped to 0 or "now", or ignored for limits.
    Negative,
    /// Too large to represent: ignored.
    TooLarge,
    /// Zero limit: ignored.
    ZeroLimit,
    /// Several values (duplicate lines or a comma list): the most conservative was kept.
    Multiple,
    /// Further ahead than the allowed maximum: clamped.
    Clamped,
    /// A reset or retry time already past: no wait.
    InThePast,
    /// A number read as an epoch time rather than a delay.
    ReadAsEpoch,
}
