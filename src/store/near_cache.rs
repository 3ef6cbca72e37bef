//! An in-process cache of recent "still valid" verdicts, invalidated by
//! pushed revocation events (see `RedisStore`'s near-cache).
//!
//! Correctness rules:
//!
//! - an entry is used only while the event subscription is known to be alive;
//!   when it drops, the cache is cleared and bypassed until it is back;
//! - every revocation event drops the subject's entries (O(1): the cache is
//!   keyed by subject first);
//! - a verdict is stored only if no event (for its shard) and no subscription
//!   change happened while it was being fetched, so a check that raced a
//!   revocation cannot re-insert a stale "valid";
//! - an entry lives at most `max_age`, never past its session's idle deadline
//!   as the store reported it, and never past the touch interval (so the
//!   session's sliding deadline is written by the next real check);
//! - memory is bounded by `capacity` tokens.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 32;

/// Near-cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearCacheConfig {
    /// Longest time a cached "valid" verdict is used without asking the store.
    pub max_age: Duration,
    /// Most tokens held at once.
    pub capacity: usize,
}

impl Default for NearCacheConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(1),
            capacity: 100_000,
        }
    }
}

/// Counters of a near-cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Checks answered from the cache (no store command).
    pub hits: u64,
    /// Checks that went to the store.
    pub misses: u64,
    /// Subjects dropped by revocation events.
    pub invalidations: u64,
    /// Times the whole cache was cleared (subscription lost or regained, capacity).
    pub clears: u64,
    /// Tokens held now.
    pub entries: u64,
    /// Whether the event subscription is alive (the cache is in use).
    pub subscribed: bool,
}

struct Entry {
    valid_until: Instant,
}

#[derive(Default)]
struct Shard {
    subjects: HashMap<String, HashMap<String, Entry>>,
    tokens: usize,
    /// Bumped on every invalidation in this shard.
    epoch: u64,
}

/// The cache itself; the subscription that feeds it lives in the store.
pub(crate) struct NearCache {
    config: NearCacheConfig,
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    alive: AtomicBool,
    /// Bumped whenever the subscription state changes.
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    clears: AtomicU64,
}

/// What a check must remember to store its verdict afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    shard: usize,
    epoch: u64,
    generation: u64,
}

impl NearCache {
    pub(crate) fn new(config: NearCacheConfig) -> Self {
        Self {
            config,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            alive: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            clears: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, subject: &str) -> usize {
        (self.hasher.hash_one(subject) as usize) % SHARDS
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh cached "valid" for this token? Counts a hit or a miss.
    pub(crate) fn lookup(&self, subject: &str, token_id: &str) -> bool {
        if !self.alive.load(Ordering::Acquire) {
            return false;
        }
        let shard = self.shard_of(subject);
        let now = Instant::now();
        let hit = self
            .lock(shard)
            .subjects
            .get(subject)
            .and_then(|tokens| tokens.get(token_id))
            .is_some_and(|e| e.valid_until > now);
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Taken before asking the store; `None` when the cache is not in use.
    pub(crate) fn ticket(&self, subject: &str) -> Option<Ticket> {
        let generation = self.generation.load(Ordering::Acquire);
        if !self.alive.load(Ordering::Acquire) {
            return None;
        }
        let shard = self.shard_of(subject);
        let epoch = self.lock(shard).epoch;
        Some(Ticket {
            shard,
            epoch,
            generation,
        })
    }

    /// Store a "valid" verdict fetched with `ticket`, for at most `ttl` (the
    /// session's remaining idle time, the touch interval) and `max_age`.
    pub(crate) fn insert(
        &self,
        ticket: Ticket,
        subject: &str,
        token_id: &str,
        ttl: Option<Duration>,
    ) {
        let max = ttl.map_or(self.config.max_age, |t| t.min(self.config.max_age));
        if max.is_zero() || self.config.capacity == 0 {
            return;
        }
        let mut shard = self.lock(ticket.shard);
        if shard.epoch != ticket.epoch
            || !self.alive.load(Ordering::Acquire)
            || self.generation.load(Ordering::Acquire) != ticket.generation
        {
            return;
        }
        let per_shard = self.config.capacity.div_ceil(SHARDS);
        if shard.tokens >= per_shard {
            let now = Instant::now();
            let mut left = 0;
            shard.subjects.retain(|_, tokens| {
                tokens.retain(|_, e| e.valid_until > now);
                left += tokens.len();
                !tokens.is_empty()
            });
            shard.tokens = left;
            if shard.tokens >= per_shard {
                shard.subjects.clear();
                shard.tokens = 0;
                self.clears.fetch_add(1, Ordering::Relaxed);
            }
        }
        let entry = Entry {
            valid_until: Instant::now() + max,
        };
        let tokens = shard.subjects.entry(subject.to_owned()).or_default();
        if tokens.insert(token_id.to_owned(), entry).is_none() {
            shard.tokens += 1;
        }
    }

    /// Drop every entry of `subject` (a revocation event, or our own write).
    pub(crate) fn invalidate(&self, subject: &str) {
        let shard = self.shard_of(subject);
        let mut guard = self.lock(shard);
        guard.epoch += 1;
        if let Some(tokens) = guard.subjects.remove(subject) {
            guard.tokens -= tokens.len();
        }
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// Drop everything: events may have been missed.
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for i in 0..SHARDS {
            let mut shard = self.lock(i);
            shard.epoch += 1;
            shard.subjects.clear();
            shard.tokens = 0;
        }
        self.clears.fetch_add(1, Ordering::Relaxed);
    }

    /// The subscription is alive (`true`) or lost (`false`). Either way the
    /// cache starts empty: on loss events may be missed, on return they were.
    pub(crate) fn set_alive(&self, alive: bool) {
        if !alive {
            self.alive.store(false, Ordering::Release);
        }
        self.clear();
        if alive {
            self.alive.store(true, Ordering::Release);
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        let entries = (0..SHARDS).map(|i| self.lock(i).tokens as u64).sum();
        NearCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            clears: self.clears.load(Ordering::Relaxed),
            entries,
            subscribed: self.is_alive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> NearCache {
        let cache = NearCache::new(NearCacheConfig {
            max_age: Duration::from_secs(60),
            capacity: 64,
        });
        cache.set_alive(true);
        cache
    }

    #[test]
    fn a_stored_verdict_is_a_hit_until_its_subject_is_invalidated() {
        let cache = cache();
        assert!(!cache.lookup("alice", "t1"));
        let ticket = cache.ticket("alice").unwrap();
        cache.insert(ticket, "alice", "t1", None);
        assert!(cache.lookup("alice", "t1"));
        cache.invalidate("alice");
        assert!(!cache.lookup("alice", "t1"));
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn a_verdict_that_raced_an_invalidation_is_not_stored() {
        let cache = cache();
        let ticket = cache.ticket("alice").unwrap();
        cache.invalidate("alice"); // the event arrives while the check is in flight
        cache.insert(ticket, "alice", "t1", None);
        assert!(!cache.lookup("alice", "t1"));
    }

    #[test]
    fn nothing_is_used_or_stored_while_the_subscription_is_down() {
        let cache = cache();
        let ticket = cache.ticket("alice").unwrap();
        cache.insert(ticket, "alice", "t1", None);
        cache.set_alive(false);
        assert!(!cache.lookup("alice", "t1"));
        assert!(cache.ticket("alice").is_none());
        cache.insert(ticket, "alice", "t2", None);
        cache.set_alive(true);
        // Cleared on the way down and up: nothing from before survives.
        assert!(!cache.lookup("alice", "t1"));
        assert!(!cache.lookup("alice", "t2"));
    }

    #[test]
    fn entries_expire_at_the_shorter_of_max_age_and_their_ttl() {
        let cache = cache();
        let ticket = cache.ticket("alice").unwrap();
        cache.insert(ticket, "alice", "t1", Some(Duration::from_millis(30)));
        assert!(cache.lookup("alice", "t1"));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!cache.lookup("alice", "t1"));
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let cache = cache();
        for i in 0..10_000 {
            let subject = format!("user{i}");
            let ticket = cache.ticket(&subject).unwrap();
            cache.insert(ticket, &subject, "t", None);
        }
        assert!(
            cache.stats().entries <= 64 + SHARDS as u64,
            "{:?}",
            cache.stats()
        );
    }
}
