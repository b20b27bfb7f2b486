//! What every webhook delivery reads before it joins a batch, kept for a moment: its source
//! with the signing secrets decrypted, and the tenant's latest workflow versions that listen to
//! webhooks. Without it each delivery pays two reads through SQLite's one connection and an
//! AES-GCM unwrap before its batch.
//!
//! Changes made through this process (deploys, source creation, rotation, deletion) drop the
//! affected entries at once; changes made by another process are seen after at most [`TTL`].
//! A read racing an invalidation never stores what it read: entries are stored only when no
//! invalidation happened since the read began.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stepwise_integrations::webhooks::SigningSecret;

use crate::store::webhooks::Source;
use crate::store::workflows::VersionRef;

/// How long another process' change may go unseen.
pub(crate) const TTL: Duration = Duration::from_secs(1);

/// Entries one map holds at most; beyond it expired entries go, then everything.
const MAX_ENTRIES: usize = 4096;

/// A source ready to verify deliveries.
pub(crate) struct VerifyingSource {
    pub source: Source,
    /// The current secret, and a rotated-out one while it is still accepted.
    pub secrets: Vec<SigningSecret>,
}

/// A read's ticket: what it reads may be stored only if no invalidation came in between.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

pub(crate) struct IngestCache {
    sources: Expiring<String, VerifyingSource>,
    /// By tenant: latest versions whose workflow has an `on: webhook` trigger.
    listeners: Expiring<String, Vec<VersionRef>>,
}

impl IngestCache {
    pub(crate) fn new() -> Self {
        Self {
            sources: Expiring::new(TTL),
            listeners: Expiring::new(TTL),
        }
    }

    pub(crate) fn source(&self, source_id: &str) -> Result<Arc<VerifyingSource>, Ticket> {
        self.sources.get(source_id)
    }

    pub(crate) fn keep_source(
        &self,
        ticket: Ticket,
        source: VerifyingSource,
    ) -> Arc<VerifyingSource> {
        self.sources
            .insert(ticket, source.source.info.id.clone(), source)
    }

    pub(crate) fn listeners(&self, tenant_id: &str) -> Result<Arc<Vec<VersionRef>>, Ticket> {
        self.listeners.get(tenant_id)
    }

    pub(crate) fn keep_listeners(
        &self,
        ticket: Ticket,
        tenant_id: &str,
        listeners: Vec<VersionRef>,
    ) -> Arc<Vec<VersionRef>> {
        self.listeners
            .insert(ticket, tenant_id.to_owned(), listeners)
    }

    /// A source of the tenant was created, rotated or deleted.
    pub(crate) fn forget_sources(&self, tenant_id: &str) {
        self.sources
            .invalidate(|_, entry| entry.source.tenant_id == tenant_id);
    }

    /// A workflow of the tenant changed.
    pub(crate) fn forget_listeners(&self, tenant_id: &str) {
        self.listeners.invalidate(|key, _| key == tenant_id);
    }
}

struct Entry<V> {
    value: Arc<V>,
    stored: Instant,
}

/// A map whose entries expire `ttl` after they were stored.
struct Expiring<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, Entry<V>>>,
    invalidations: AtomicU64,
}

impl<K: Eq + Hash, V> Expiring<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            invalidations: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fresh entry of `key`, or the ticket to store what the caller reads instead.
    fn get<Q>(&self, key: &Q) -> Result<Arc<V>, Ticket>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        // The ticket is taken before looking, so an invalidation after a miss voids it.
        let ticket = Ticket(self.invalidations.load(Ordering::Acquire));
        match self.lock().get(key) {
            Some(entry) if entry.stored.elapsed() < self.ttl => Ok(entry.value.clone()),
            _ => Err(ticket),
        }
    }

    fn insert(&self, ticket: Ticket, key: K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        let mut entries = self.lock();
        // Checked under the lock: `invalidate` bumps the counter while holding it.
        if self.invalidations.load(Ordering::Acquire) != ticket.0 {
            return value;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.stored.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                value: value.clone(),
                stored: Instant::now(),
            },
        );
        value
    }

    fn invalidate(&self, mut affected: impl FnMut(&K, &V) -> bool) {
        let mut entries = self.lock();
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        entries.retain(|key, entry| !affected(key, &entry.value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_until_it_expires() {
        let map = Expiring::new(Duration::from_millis(50));
        let ticket = map.get("a").unwrap_err();
        map.insert(ticket, "a".to_owned(), 1);
        assert_eq!(*map.get("a").unwrap(), 1);
        std::thread::sleep(Duration::from_millis(60));
        assert!(map.get("a").is_err());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let map = Expiring::new(TTL);
        let ticket = map.get("a").unwrap_err();
        map.invalidate(|_, _: &i32| true);
        assert_eq!(*map.insert(ticket, "a".to_owned(), 1), 1);
        assert!(map.get("a").is_err());
        let ticket = map.get("a").unwrap_err();
        map.insert(ticket, "a".to_owned(), 2);
        assert_eq!(*map.get("a").unwrap(), 2);
    }

    #[test]
    fn invalidation_drops_only_the_affected_entries() {
        let map = Expiring::new(TTL);
        for key in ["a", "b"] {
            let ticket = map.get(key).unwrap_err();
            map.insert(ticket, key.to_owned(), key.len());
        }
        map.invalidate(|key, _| key == "a");
        assert!(map.get("a").is_err());
        assert!(map.get("b").is_ok());
    }

    #[test]
    fn the_map_stays_bounded() {
        let map = Expiring::new(TTL);
        for n in 0..(MAX_ENTRIES + 10) {
            let ticket = map.get(&n).unwrap_err();
            map.insert(ticket, n, n);
        }
        assert!(map.lock().len() <= MAX_ENTRIES);
    }
}
