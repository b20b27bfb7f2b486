//! The rate-limit scheduler's storage: one [`Bucket`] per connection (or per tenant and
//! integration, or per tenant and host for plain `http`), behind the async [`BucketStore`] so
//! the engine can share buckets across processes (its Postgres store). [`InMemoryBuckets`]
//! keeps them per process. Every store applies the same pure rules, [`acquire_in`] and
//! [`observe_in`], to the slot it loads and writes back atomically.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::after;
use crate::error::ActionError;
use crate::ratelimit::{Bucket, ProviderProfile, RateLimitObservation};

/// Whose quota a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub tenant_id: String,
    pub integration: String,
    /// `connection:<name>`, `host:<host>` (plain `http` without a connection) or empty.
    pub scope: String,
}

/// How an integration's bucket starts.
#[derive(Debug, Clone, PartialEq)]
pub enum RateLimitMode {
    /// A bucket from the first request, seeded from the profile (known providers).
    Seeded(ProviderProfile),
    /// No pacing until a response carries rate-limit information; from then on a bucket read
    /// with this profile (arbitrary hosts, which mostly send none).
    Learned(ProviderProfile),
}

impl RateLimitMode {
    pub fn profile(&self) -> &ProviderProfile {
        match self {
            Self::Seeded(profile) | Self::Learned(profile) => profile,
        }
    }
}

/// The scheduler's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisition {
    /// Booked: send at this time (now, or after a short wait).
    SendAt(DateTime<Utc>),
    /// The earliest slot is further away than the caller may wait; nothing was booked. The
    /// step is parked until then and asks again.
    ParkUntil(DateTime<Utc>),
}

/// Rate-limit buckets by key. Implementations must be safe to call concurrently: `acquire`
/// books atomically, `observe` folds one response in.
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Books the next request of `key` unless it would have to wait longer than `max_wait`.
    async fn acquire(
        &self,
        key: &BucketKey,
        mode: &RateLimitMode,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> Result<Acquisition, ActionError>;

    /// Folds a response's rate-limit headers into `key`'s bucket.
    async fn observe(
        &self,
        key: &BucketKey,
        mode: &RateLimitMode,
        observation: &RateLimitObservation,
        now: DateTime<Utc>,
    ) -> Result<(), ActionError>;
}

/// Buckets in this process's memory: each process paces on its own. Buckets are never evicted;
/// there is one per connection, integration or host a tenant calls.
#[derive(Debug, Default)]
pub struct InMemoryBuckets {
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

impl InMemoryBuckets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `change` on `key`'s slot under the lock.
    fn with_slot<T>(&self, key: &BucketKey, change: impl FnOnce(&mut Option<Bucket>) -> T) -> T {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut slot = buckets.remove(key);
        let result = change(&mut slot);
        if let Some(bucket) = slot {
            buckets.insert(key.clone(), bucket);
        }
        result
    }
}

#[async_trait]
impl BucketStore for InMemoryBuckets {
    async fn acquire(
        &self,
        key: &BucketKey,
        mode: &RateLimitMode,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> Result<Acquisition, ActionError> {
        Ok(self.with_slot(key, |slot| acquire_in(slot, mode, now, max_wait)))
    }

    async fn observe(
        &self,
        key: &BucketKey,
        mode: &RateLimitMode,
        observation: &RateLimitObservation,
        now: DateTime<Utc>,
    ) -> Result<(), ActionError> {
        self.with_slot(key, |slot| observe_in(slot, mode, observation, now));
        Ok(())
    }
}

/// Books the next request on `key`'s bucket (`None`: the key has none yet, and gets one when
/// `mode` is seeded). The one booking rule of every [`BucketStore`]: a store loads the slot,
/// calls this and writes the slot back atomically.
pub fn acquire_in(
    slot: &mut Option<Bucket>,
    mode: &RateLimitMode,
    now: DateTime<Utc>,
    max_wait: Duration,
) -> Acquisition {
    let bucket = match (slot, mode) {
        (Some(bucket), _) => bucket,
        (slot @ None, RateLimitMode::Seeded(profile)) => slot.insert(Bucket::new(profile, now)),
        (None, RateLimitMode::Learned(_)) => return Acquisition::SendAt(now),
    };
    book(bucket, now, max_wait)
}

/// Folds a response into `key`'s bucket; a learned key gets one when the response first
/// states a limit. The observing counterpart of [`acquire_in`].
pub fn observe_in(
    slot: &mut Option<Bucket>,
    mode: &RateLimitMode,
    observation: &RateLimitObservation,
    now: DateTime<Utc>,
) {
    match slot {
        Some(bucket) => bucket.observe(observation, now),
        None if matches!(mode, RateLimitMode::Seeded(_)) || carries_limits(observation) => {
            slot.insert(Bucket::new(mode.profile(), now))
                .observe(observation, now);
        }
        None => {}
    }
}

/// Books on `bucket` when the slot is within `max_wait`; otherwise leaves it untouched, so a
/// parked request holds no slot while it sleeps.
pub fn book(bucket: &mut Bucket, now: DateTime<Utc>, max_wait: Duration) -> Acquisition {
    let mut trial = bucket.clone();
    let at = trial.acquire_at(now);
    if at <= after(now, max_wait) {
        *bucket = trial;
        Acquisition::SendAt(at)
    } else {
        Acquisition::ParkUntil(at)
    }
}

/// Whether a response says anything about a quota (a host that says nothing is not paced).
fn carries_limits(observation: &RateLimitObservation) -> bool {
    observation.limit.is_some()
        || observation.remaining.is_some()
        || observation.not_before.is_some()
        || observation.rejected
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
    }

    fn exhausted_until(reset: DateTime<Utc>) -> RateLimitObservation {
        RateLimitObservation {
            limit: Some(10),
            remaining: Some(0),
            reset_at: Some(reset),
            not_before: Some(reset),
            ..RateLimitObservation::default()
        }
    }

    #[test]
    fn a_far_slot_is_not_booked() {
        let now = start();
        let mut bucket = Bucket::new(&ProviderProfile::generic(), now);
        bucket.observe(&exhausted_until(now + TimeDelta::seconds(60)), now);
        let before = bucket.clone();
        let Acquisition::ParkUntil(at) = book(&mut bucket, now, Duration::from_secs(2)) else {
            panic!("expected to park");
        };
        assert!(at >= now + TimeDelta::seconds(60), "{at}");
        assert_eq!(bucket, before, "nothing booked");
        assert_eq!(
            book(&mut bucket, now, Duration::from_secs(3600)),
            Acquisition::SendAt(at)
        );
        assert_ne!(bucket, before, "booked");
    }

    #[tokio::test]
    async fn learned_buckets_start_with_the_first_limit_a_host_states() {
        let store = InMemoryBuckets::new();
        let key = BucketKey {
            tenant_id: "t".into(),
            integration: "http".into(),
            scope: "host:example.com".into(),
        };
        let mode = RateLimitMode::Learned(ProviderProfile::generic());
        let now = start();
        let max_wait = Duration::from_secs(1);
        for _ in 0..100 {
            let acquired = store.acquire(&key, &mode, now, max_wait).await;
            assert_eq!(acquired, Ok(Acquisition::SendAt(now)), "unpaced");
        }
        let silent = RateLimitObservation::default();
        store
            .observe(&key, &mode, &silent, now)
            .await
            .expect("observe");
        let acquired = store.acquire(&key, &mode, now, max_wait).await;
        assert_eq!(acquired, Ok(Acquisition::SendAt(now)), "still unpaced");

        let reset = now + TimeDelta::seconds(30);
        store
            .observe(&key, &mode, &exhausted_until(reset), now)
            .await
            .expect("observe");
        let acquired = store.acquire(&key, &mode, now, max_wait).await;
        assert!(
            matches!(acquired, Ok(Acquisition::ParkUntil(at)) if at >= reset),
            "{acquired:?}"
        );
    }
}
