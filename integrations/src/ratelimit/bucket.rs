//! The per-connection bucket: when may the next request go out.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::parse::plus_seconds;
use super::{ProviderProfile, RateLimitObservation};

/// A reset stated within this of the one we hold is the same window (delta-seconds resets
/// jitter by a second from one response to the next).
const SAME_WINDOW_TOLERANCE: TimeDelta = TimeDelta::seconds(2);
/// Float slack when comparing token counts.
const EPSILON: f64 = 1e-9;

/// A pure rate-limit state machine for one connection (or one scope of it).
///
/// Two regimes, chosen by what the provider tells us:
/// - **fixed window** (a reset time is known: GitHub, `X-RateLimit-*`, IETF): the quota refills
///   to `capacity` once the reset (plus a grace period) has passed; until then requests are
///   paced so that the remaining quota, minus a reserve, is spread evenly up to the reset (the
///   first few percent may go out back to back). After a reset the next one is projected one
///   window later until a response says otherwise.
/// - **leaky** (no reset: Shopify, HubSpot, the profile seed for Slack/Stripe): tokens refill
///   continuously at `capacity / window` (or the seed rate) up to `capacity`.
///
/// In both, a request is only granted while at least `1 + reserve` tokens are left, so the
/// provider's counter never reaches zero through our own traffic; `Retry-After` (and every
/// other `not_before`) is honoured absolutely; a rejection empties the bucket.
///
/// Observations may lag requests already granted (in flight): within one window the bucket keeps
/// the smaller of its own count and the provider's `remaining`; a new window (a reset more than
/// 2 s later than the one held) adopts the provider's count. The reserve absorbs the requests in
/// flight at a window change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    capacity: f64,
    tokens: f64,
    refill_per_sec: f64,
    reset_at: Option<DateTime<Utc>>,
    window: Option<Duration>,
    blocked_until: Option<DateTime<Utc>>,
    /// The time the state has been advanced to; grants never go before it.
    clock: DateTime<Utc>,
    /// GCRA theoretical arrival time, for pacing within a fixed window.
    tat: DateTime<Utc>,
    /// Whether a provider count has been seen (before that, the seed is a guess).
    synced: bool,
    reserve_fraction: f64,
    min_reserve: u64,
    burst_fraction: f64,
    reset_grace: Duration,
}

impl Bucket {
    /// A full bucket seeded from `profile`.
    pub fn new(profile: &ProviderProfile, now: DateTime<Utc>) -> Self {
        let capacity = (profile.seed.capacity.max(1)) as f64;
        Self {
            capacity,
            tokens: capacity,
            refill_per_sec: sane_rate(profile.seed.refill_per_sec, capacity),
            reset_at: None,
            window: profile.default_window.filter(|w| !w.is_zero()),
            blocked_until: None,
            clock: now,
            tat: now,
            synced: false,
            reserve_fraction: if profile.reserve_fraction.is_finite() {
                profile.reserve_fraction.clamp(0.0, 1.0)
            } else {
                0.0
            },
            min_reserve: profile.min_reserve,
            burst_fraction: if profile.burst_fraction.is_finite() {
                profile.burst_fraction.clamp(0.0, 1.0)
            } else {
                0.0
            },
            reset_grace: profile.reset_grace,
        }
    }

    /// Requests per window (or bucket capacity) as currently believed.
    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    /// Requests believed left, after those already granted.
    pub fn remaining(&self) -> u64 {
        self.tokens.max(0.0) as u64
    }

    /// The reset of the current fixed window, if one is known or projected.
    pub fn reset_at(&self) -> Option<DateTime<Utc>> {
        self.reset_at
    }

    /// No request is granted before this (`Retry-After`, rejections).
    pub fn blocked_until(&self) -> Option<DateTime<Utc>> {
        self.blocked_until
    }

    /// Requests kept back: `max(min_reserve, ceil(capacity * reserve_fraction))`, below capacity.
    pub fn reserve(&self) -> u64 {
        self.reserve_f64() as u64
    }

    fn reserve_f64(&self) -> f64 {
        let wanted = (self.min_reserve as f64).max((self.capacity * self.reserve_fraction).ceil());
        wanted.min(self.capacity - 1.0).max(0.0)
    }

    /// Books the next request and returns when it may be sent (`>= now`, and never before an
    /// earlier grant). The caller sleeps until then and sends; the booking is not undone.
    pub fn acquire_at(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut t = now.max(self.clock);
        if let Some(blocked) = self.blocked_until {
            if t < blocked {
                t = blocked;
            } else {
                self.blocked_until = None;
            }
        }
        self.advance(t);

        let need = 1.0 + self.reserve_f64();
        if self.tokens + EPSILON < need {
            let refilled = match self.reset_at {
                Some(reset) => plus_seconds(reset, self.reset_grace.as_secs_f64()),
                None => plus_seconds(t, (need - self.tokens) / self.refill_per_sec),
            };
            t = t.max(refilled);
            self.advance(t);
            // Waited exactly as long as the refill needs; absorb float rounding.
            self.tokens = self.tokens.max(need);
        }

        if let Some(reset) = self.reset_at.filter(|reset| *reset > t) {
            // GCRA pacing: spread what is usable over the time left, allowing a small burst.
            let usable = (self.tokens - self.reserve_f64()).max(1.0);
            let interval = seconds(reset - t) / usable;
            let burst = (self.capacity * self.burst_fraction)
                .floor()
                .clamp(1.0, usable);
            let earliest = plus_seconds(self.tat, -interval * (burst - 1.0));
            let allowed = t.max(earliest);
            self.tat = plus_seconds(self.tat.max(allowed), interval);
            if allowed > t {
                t = allowed;
                self.advance(t);
            }
        }

        self.tokens -= 1.0;
        t
    }

    /// Folds one response's observation in (see the type docs for the rules).
    pub fn observe(&mut self, observation: &RateLimitObservation, now: DateTime<Utc>) {
        self.advance(now);
        if let Some(not_before) = observation.not_before.filter(|nb| *nb > now) {
            self.blocked_until = Some(self.blocked_until.map_or(not_before, |b| b.max(not_before)));
        }
        if let Some(limit) = observation.limit.filter(|l| *l > 0) {
            self.capacity = limit as f64;
            self.tokens = self.tokens.min(self.capacity);
        }
        if let Some(window) = observation
            .policy
            .as_ref()
            .and_then(|p| p.window)
            .filter(|w| !w.is_zero())
        {
            self.window = Some(window);
            self.refill_per_sec = sane_rate(self.capacity / window.as_secs_f64(), self.capacity);
        }
        if let Some(remaining) = observation.remaining {
            let remaining = remaining as f64;
            match observation.reset_at {
                Some(reset) if reset > now => {
                    let new_window = !self.synced
                        || self
                            .reset_at
                            .is_none_or(|held| reset > held + SAME_WINDOW_TOLERANCE);
                    self.tokens = if new_window {
                        remaining
                    } else {
                        self.tokens.min(remaining)
                    };
                    self.reset_at = Some(reset);
                    self.synced = true;
                }
                // That window is over: its count is stale.
                Some(_) => {}
                None => {
                    self.tokens = if self.synced {
                        self.tokens.min(remaining)
                    } else {
                        remaining
                    };
                    self.synced = true;
                }
            }
            self.capacity = self.capacity.max(remaining).max(1.0);
        }
        if observation.rejected {
            self.tokens = self.tokens.min(0.0);
        }
    }

    /// Moves the state forward to `t`: refills, and starts the next fixed window once the reset
    /// (plus grace) has passed.
    fn advance(&mut self, t: DateTime<Utc>) {
        if t <= self.clock {
            return;
        }
        match self.reset_at {
            Some(reset) => {
                if t >= plus_seconds(reset, self.reset_grace.as_secs_f64()) {
                    self.tokens = self.capacity;
                    self.reset_at = self.window.map(|w| plus_seconds(t, w.as_secs_f64()));
                    self.tat = t;
                }
            }
            None => {
                let refill = seconds(t - self.clock) * self.refill_per_sec;
                self.tokens = (self.tokens + refill).min(self.capacity);
            }
        }
        self.clock = t;
    }
}

fn seconds(delta: TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 1000.0
}

/// A usable refill rate: positive and finite (a day per bucket at the slowest).
fn sane_rate(rate: f64, capacity: f64) -> f64 {
    let slowest = capacity.max(1.0) / 86_400.0;
    if rate.is_finite() {
        rate.max(slowest)
    } else {
        slowest
    }
}
