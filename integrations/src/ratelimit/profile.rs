//! Provider profiles: the bucket to assume before any rate-limit header arrives and how to
//! read rejections. Providers declare theirs in `provider.yaml` (`crate::providers`); every
//! header family is read for every provider (`parse`).

use std::time::Duration;

use serde::Deserialize;

/// The bucket assumed before any header is seen: `capacity` requests, refilled continuously at
/// `refill_per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedBucket {
    pub capacity: u64,
    pub refill_per_sec: f64,
}

/// How to read one provider's rate-limit headers and how to pace it. Data, not code: the
/// constructors below are the defaults, every field may be overridden per integration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderProfile {
    pub seed: SeedBucket,
    /// The fixed window length when headers give a reset but no policy (GitHub: 1 h). Used to
    /// project the next reset after one passes.
    pub default_window: Option<Duration>,
    /// Requests kept back from every window: `max(min_reserve, ceil(capacity * fraction))`,
    /// at most `capacity - 1`.
    pub reserve_fraction: f64,
    pub min_reserve: u64,
    /// Share of the capacity that may go out back to back before pacing applies (fixed windows).
    pub burst_fraction: f64,
    /// Waited after a stated reset before the quota is assumed refilled (reset values are whole
    /// seconds and clocks drift).
    pub reset_grace: Duration,
    /// Upper bound for `Retry-After`.
    pub max_retry_after: Duration,
    /// Wait after a rejection that names no `Retry-After` and no exhausted quota.
    pub rejection_wait: Duration,
    /// The bucket scope when no header names one (Slack's tier, `tier3`).
    pub implied_scope: Option<String>,
    /// Quotas stated in headers of the provider's own naming, read before every standard
    /// family (OpenAI's `x-ratelimit-remaining-requests` and `-tokens`).
    pub header_quotas: Vec<HeaderQuota>,
}

/// A quota a provider states in headers it names itself. Header names are lower case.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderQuota {
    /// The quota per window.
    #[serde(default)]
    pub limit: Option<String>,
    /// What is left of it.
    #[serde(default)]
    pub remaining: Option<String>,
    /// A header stating the quota as `used/limit` instead, with `key` the entry's name when
    /// it holds `name=used/limit` entries separated by commas (Salesforce's
    /// `Sforce-Limit-Info: api-usage=25/15000`).
    #[serde(default)]
    pub usage: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// When it refills: delta seconds, an epoch time, or a duration with units (`6m0s`,
    /// `20ms`, as OpenAI states it).
    #[serde(default)]
    pub reset: Option<String>,
    /// What it counts: `requests` (the bucket's unit, the default) or anything else
    /// (`tokens`), which paces nothing but blocks every request until its reset once it is
    /// exhausted.
    #[serde(default = "requests")]
    pub counts: String,
}

impl HeaderQuota {
    /// Whether the quota counts requests, the unit the bucket paces.
    pub fn counts_requests(&self) -> bool {
        self.counts == REQUESTS
    }
}

const REQUESTS: &str = "requests";

fn requests() -> String {
    REQUESTS.to_owned()
}

impl ProviderProfile {
    /// `requests` per `per`, refilled continuously, with the default reserve, burst and waits.
    pub fn seeded(requests: u64, per: Duration) -> Self {
        Self {
            seed: SeedBucket {
                capacity: requests,
                refill_per_sec: requests as f64 / per.as_secs_f64(),
            },
            default_window: None,
            reserve_fraction: 0.01,
            min_reserve: 1,
            burst_fraction: 0.05,
            reset_grace: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(3600),
            rejection_wait: Duration::from_secs(5),
            implied_scope: None,
            header_quotas: Vec::new(),
        }
    }

    /// Standard headers only; seed 10 requests, 10 per second.
    pub fn generic() -> Self {
        Self::seeded(10, Duration::from_secs(1))
    }
}

impl Default for ProviderProfile {
    fn default() -> Self {
        Self::generic()
    }
}
