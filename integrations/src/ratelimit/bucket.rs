//! The per-connection bucket: when may the next request go out.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::parse::plus_seconds;
use super::{ProviderProfile, RateLimitObservation};

/// A reset stated within this of the one we hold is the same window (delta-seconds resets
/// jitter by a second from one response to the next).
const SAME_WINDOW_TOLERANCE: TimeDelta = TimeDelta::seconds(2);
/// Resets stated closer together than this teach no window length (a provider moving its reset).
const MIN_LEARNED_WINDOW: Duration = Duration::from_secs(1);
/// Float slack when comparing token counts.
const EPSILON: f64 = 1e-9;

/// A pure rate-limit state machine for one connection (or one scope of it).
///
/// Two regimes, chosen by what the provider tells us:
/// - **fixed window** (a reset time is known: GitHub, `X-RateLimit-*`, IETF): the quota refills
///   to `capacity` once the reset (plus a grace period) has passed; until then, when the window
///   length is known (policy `w`, profile default), requests are paced on a straight line that
///   spends the quota minus the reserve evenly over the window, at most `burst_fraction` of the
///   capacity ahead of it. After a reset the next one is projected one
///   window later until a response says otherwise. A window length no profile or policy gives
///   is learned from the distance between the resets stated for consecutive windows.
/// - **leaky** (no reset: Shopify, HubSpot, the profile seed for Slack/Stripe): tokens refill
///   continuously at `capacity / window` (or the seed rate) up to `capacity`.
///
/// Until the first provider count arrives the seed is only a guess, so requests are spaced at
/// the seed's refill rate without bursts.
///
/// In both, a request is only granted while at least `1 + reserve` tokens are left, so the
/// provider's counter never reaches zero through our own traffic; `Retry-After` (and every
/// other `not_before`) is honoured absolutely; a rejection empties the bucket.
///
/// Observations may lag requests already granted (in flight): within one window the bucket keeps
/// the smaller of its own count and the provider's `remaining`; a new window (a reset more than
/// 2 s later than the one held) adopts the provider's count; a response about a window already
/// refilled is ignored. A window the bucket refilled itself without knowing its length counts
/// from the refill, so the first reset stated in it starts no new window. The reserve absorbs
/// requests in flight when a count is adopted.
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
    /// Before the first provider count: the earliest next grant (seed spacing).
    tat: DateTime<Utc>,
    /// When a fixed window was last refilled; responses about earlier resets are stale.
    #[serde(default)]
    refilled_at: Option<DateTime<Utc>>,
    /// The first reset stated for the latest window, to learn the window's length from the next.
    #[serde(default)]
    stated_reset: Option<DateTime<Utc>>,
    /// Whether `window` was learned from stated resets (not given by the profile or a policy),
    /// so a shorter distance between resets may still correct it.
    #[serde(default)]
    window_learned: bool,
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
            refilled_at: None,
            stated_reset: None,
            window_learned: false,
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
        // Each round either refills a fixed window or waits for the continuous refill; a second
        // round only absorbs millisecond rounding.
        for _ in 0..3 {
            if self.tokens + EPSILON >= need {
                break;
            }
            let refilled = match self.reset_at {
                Some(reset) => plus_seconds(reset, self.reset_grace.as_secs_f64()),
                None => plus_seconds(t, ((need - self.tokens) / self.refill_per_sec).max(0.001)),
            };
            t = t.max(refilled);
            self.advance(t);
        }

        if let (Some(reset), Some(window)) = (self.reset_at.filter(|r| *r > t), self.window) {
            // Pacing on a straight line: a window of `W` seconds spends `B = capacity - reserve`
            // requests, one every `W / B`, and may run at most `burst` requests ahead of that
            // line. With `U` usable requests left, the earliest send is the time from which the
            // rest of the line needs no more than `U - 1 + burst` requests.
            let reserve = self.reserve_f64();
            let per_window = (self.capacity - reserve).max(1.0);
            let usable = (self.tokens - reserve).max(1.0);
            let burst = (self.capacity * self.burst_fraction).floor().max(1.0);
            let ahead = (usable - 1.0 + burst) * window.as_secs_f64() / per_window;
            let earliest = plus_seconds(reset, -ahead);
            if earliest > t {
                t = earliest;
                self.advance(t);
            }
        }

        if !self.synced && self.reset_at.is_none() {
            // The seed is a guess: no bursts on it, one request per refill interval until a
            // response tells us the real quota.
            if self.tat > t {
                t = self.tat;
                self.advance(t);
            }
            self.tat = plus_seconds(t, 1.0 / self.refill_per_sec);
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
            self.window_learned = false;
            self.refill_per_sec = sane_rate(self.capacity / window.as_secs_f64(), self.capacity);
        }
        // A response from a window this bucket has already refilled (it was in flight across
        // the reset): its count, reset and rejection are stale.
        let grace = self.reset_grace.as_secs_f64();
        let stale = observation.reset_at.is_some_and(|reset| {
            plus_seconds(reset, grace) <= self.clock
                || self.refilled_at.is_some_and(|refilled| reset < refilled)
        });
        if let Some(remaining) = observation.remaining {
            let remaining = remaining as f64;
            match observation.reset_at {
                Some(_) if stale => {}
                Some(reset) if reset > now => {
                    // A window of unknown length that this bucket refilled itself has no
                    // reset yet; the first one stated is that window's, and the requests
                    // granted since the refill (some not yet counted) are its own count.
                    let refilled_unstated = self.reset_at.is_none() && self.refilled_at.is_some();
                    let new_window = !self.synced
                        || (!refilled_unstated
                            && self
                                .reset_at
                                .is_none_or(|held| reset > held + SAME_WINDOW_TOLERANCE));
                    if new_window || refilled_unstated {
                        self.learn_window(reset);
                    }
                    // Stated resets are rounded up and measured from when the response
                    // arrived, so within one window the earliest is the closest to the truth.
                    if new_window {
                        self.tokens = remaining;
                        self.reset_at = Some(reset);
                    } else {
                        self.tokens = self.tokens.min(remaining);
                        self.reset_at = Some(self.reset_at.map_or(reset, |held| held.min(reset)));
                    }
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
        if observation.rejected && !stale {
            self.tokens = self.tokens.min(0.0);
        }
    }

    /// Learns the window's length as the distance between the first resets stated for two
    /// consecutive windows, unless the profile or a policy gave it. Windows that start with the
    /// first request after an idle gap (GitHub) make that distance longer than the window, so
    /// the shortest one seen wins; a projected reset is only used until a response states one.
    fn learn_window(&mut self, reset: DateTime<Utc>) {
        let distance = self
            .stated_reset
            .and_then(|previous| (reset - previous).to_std().ok())
            .filter(|distance| *distance >= MIN_LEARNED_WINDOW);
        if let Some(distance) = distance
            && (self.window.is_none() || self.window_learned)
        {
            let window = self.window.map_or(distance, |held| held.min(distance));
            self.window = Some(window);
            self.window_learned = true;
            self.refill_per_sec = sane_rate(self.capacity / window.as_secs_f64(), self.capacity);
        }
        self.stated_reset = Some(reset);
    }

    /// Moves the state forward to `t`: refills, and starts the next fixed window once the reset
    /// (plus grace) has passed.
    fn advance(&mut self, t: DateTime<Utc>) {
        // The window check does not depend on the clock: a reset may have been moved earlier
        // (to a time already passed) by an observation.
        match self.reset_at {
            Some(reset) if t >= plus_seconds(reset, self.reset_grace.as_secs_f64()) => {
                self.tokens = self.capacity;
                self.reset_at = self.window.map(|w| plus_seconds(t, w.as_secs_f64()));
                self.refilled_at = Some(t);
            }
            Some(_) => {}
            None if t > self.clock => {
                let refill = seconds(t - self.clock) * self.refill_per_sec;
                self.tokens = (self.tokens + refill).min(self.capacity);
            }
            None => {}
        }
        self.clock = self.clock.max(t);
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
