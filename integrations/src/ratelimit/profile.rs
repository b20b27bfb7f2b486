//! Provider profiles: which headers a provider sends and the bucket to assume before any arrive.

use std::time::Duration;

/// The providers whose headers need special handling; [`Provider::Generic`] reads only the
/// standard families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Generic,
    GitHub,
    /// Slack Web API; `tier` is 1..=4.
    Slack {
        tier: u8,
    },
    /// Shopify REST Admin API (leaky bucket).
    Shopify,
    HubSpot,
    /// Stripe; `live` selects live-mode (100 rps) over test-mode (25 rps) limits.
    Stripe {
        live: bool,
    },
}

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
    pub provider: Provider,
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
}

impl ProviderProfile {
    fn base(provider: Provider, capacity: u64, refill_per_sec: f64) -> Self {
        Self {
            provider,
            seed: SeedBucket {
                capacity,
                refill_per_sec,
            },
            default_window: None,
            reserve_fraction: 0.01,
            min_reserve: 1,
            burst_fraction: 0.05,
            reset_grace: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(3600),
            rejection_wait: Duration::from_secs(5),
        }
    }

    /// Standard headers only; seed 10 requests, 10 per second.
    pub fn generic() -> Self {
        Self::base(Provider::Generic, 10, 10.0)
    }

    /// GitHub REST: 5,000 requests per hour for an authenticated user; 60 s after a secondary
    /// limit without `Retry-After`.
    pub fn github() -> Self {
        Self {
            default_window: Some(Duration::from_secs(3600)),
            rejection_wait: Duration::from_secs(60),
            ..Self::base(Provider::GitHub, 5000, 5000.0 / 3600.0)
        }
    }

    /// Slack Web API tier 1..=4: 1, 20, 50, 100 requests per minute (other values act as tier 1).
    pub fn slack(tier: u8) -> Self {
        let per_minute = match tier {
            2 => 20,
            3 => 50,
            4 => 100,
            _ => 1,
        };
        Self {
            default_window: Some(Duration::from_secs(60)),
            rejection_wait: Duration::from_secs(60),
            ..Self::base(
                Provider::Slack { tier },
                per_minute,
                per_minute as f64 / 60.0,
            )
        }
    }

    /// Shopify REST: a 40-request bucket leaking 2 per second.
    pub fn shopify() -> Self {
        Self {
            rejection_wait: Duration::from_secs(2),
            ..Self::base(Provider::Shopify, 40, 2.0)
        }
    }

    /// HubSpot: 100 requests per 10 s (the daily quota comes from headers).
    pub fn hubspot() -> Self {
        Self {
            default_window: Some(Duration::from_secs(10)),
            rejection_wait: Duration::from_secs(10),
            ..Self::base(Provider::HubSpot, 100, 10.0)
        }
    }

    /// Stripe: no headers; 100 requests/s live, 25 test.
    pub fn stripe(live: bool) -> Self {
        let rate = if live { 100 } else { 25 };
        Self {
            rejection_wait: Duration::from_secs(1),
            ..Self::base(Provider::Stripe { live }, rate, rate as f64)
        }
    }

    /// The scope a profile implies when no header names one (the Slack tier).
    pub(crate) fn implied_scope(&self) -> Option<String> {
        match self.provider {
            Provider::Slack { tier } => Some(format!("tier{tier}")),
            _ => None,
        }
    }
}

impl Default for ProviderProfile {
    fn default() -> Self {
        Self::generic()
    }
}
