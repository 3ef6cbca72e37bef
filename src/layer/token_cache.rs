//! The verified-token cache: a token verified once is not verified again
//! while it stands. A client presents the same access token for its whole
//! lifetime, and an RS256 or ES256 signature costs 8 to 25 times an HS256
//! one (BENCHMARKS.md); a hit costs a keyed hash of the token, a map lookup
//! and a clone of its claims.
//!
//! What keeps a hit exactly as strict as a fresh verification:
//!
//! - **Only the same bytes hit.** Entries are found by a keyed hash of the
//!   whole token (SipHash with random keys, so nobody can aim collisions)
//!   and the whole token is compared.
//! - **Time**: an entry is served only inside the window where the claims
//!   check accepts its `exp`, `nbf`, `iat` and lifetime with the layer's
//!   leeway ([`window`]); a token without `exp` is not cached.
//! - **Keys**: a remote issuer's token hits only while the key set it was
//!   verified with is still that issuer's current, usable snapshot: any
//!   refresh (a key removed at the identity provider included) or staleness
//!   drops it. The layer's own keys change only through the builder, and
//!   every builder call starts a new cache.
//! - **Configuration**: every builder call (`configure`) gives the layer a
//!   new, empty cache.
//! - It replaces verification only: the application's validator runs on
//!   every hit, and the revocation store is asked exactly as before.
//!
//! Only asymmetric tokens (RSA, ECDSA, EdDSA) are cached: an HS256
//! verification costs about what a lookup and a claims clone do.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use crate::claims::{Authenticated, RegisteredClaims};

use super::config::Config;

/// Default capacity when the layer verifies asymmetric tokens: 4096 tokens,
/// at most 4096 × 2 KiB of token text (about 11 MB at most with the
/// entries' claims; a typical 800-byte identity-provider token with its
/// claims takes about 1.5 KB).
pub(super) const DEFAULT_CAPACITY: usize = 4096;

/// Token text a cache keeps per unit of capacity, on average.
const BYTES_PER_ENTRY: usize = 2048;

/// A snapshot of the verified-token cache's counters
/// ([`JwtAuth::token_cache_stats`](crate::JwtAuth::token_cache_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TokenCacheStats {
    /// Requests answered from the cache (no signature check).
    pub hits: u64,
    /// Requests whose token was looked up and not found usable (then verified).
    pub misses: u64,
    /// Tokens in the cache now.
    pub entries: usize,
    /// The most tokens it keeps.
    pub capacity: usize,
}

/// The keys a cached token was verified with.
#[derive(Clone)]
pub(super) enum Origin {
    /// The layer's own keys (fixed for the cache's lifetime).
    Local,
    /// Remote issuer `index`'s key set, this snapshot of it.
    #[cfg(feature = "remote-keys")]
    Remote {
        index: usize,
        keys: std::sync::Weak<crate::keys::Keys>,
    },
}

impl Origin {
    /// Remote issuer `index`'s key set, this snapshot of it.
    #[cfg(feature = "remote-keys")]
    pub(super) fn remote(index: usize, keys: &Arc<crate::keys::Keys>) -> Self {
        Self::Remote {
            index,
            keys: Arc::downgrade(keys),
        }
    }
}

struct Entry {
    token: Box<str>,
    /// Served while `from <= now < until` (unix seconds).
    from: u64,
    until: u64,
    origin: Origin,
    /// An `Authenticated<C>` of the layer's claims type.
    auth: Box<dyn Any + Send + Sync>,
}

/// The map's keys are already keyed hashes: used as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Arc<Entry>, BuildHasherDefault<Identity>>,
    bytes: usize,
}

/// The cache one layer configuration shares among its clones.
pub(crate) struct TokenCache {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The token cache setting and the cache itself, in the layer's [`Config`].
#[derive(Clone, Default)]
pub(crate) struct TokenCacheSlot {
    /// `None`: the default (on for asymmetric keys), `Some(0)`: off.
    capacity: Option<usize>,
    cache: Option<Arc<TokenCache>>,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        // One shard for small caches keeps the bound exact; 16 spread the
        // lock of a large one over the cores.
        let shards = if capacity >= 256 { 16 } else { 1 };
        Self {
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            per_shard: capacity / shards,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The top bits choose the shard, the map uses all of them.
        let index = (hash >> 60) as usize % self.shards.len();
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims of `token` if it is cached, usable at `now` and
    /// `current` says its keys still stand.
    fn get<C: Clone + 'static>(
        &self,
        token: &str,
        now: u64,
        current: impl FnOnce(&Origin) -> bool,
    ) -> Option<Authenticated<C>> {
        let hash = self.hasher.hash_one(token.as_bytes());
        let entry = self.shard(hash).map.get(&hash).cloned();
        // Reached only by a token with the same 64-bit keyed hash, so the
        // plain comparison tells an attacker nothing about cached tokens.
        let found = entry
            .filter(|e| *e.token == *token && e.from <= now && now < e.until && current(&e.origin))
            .and_then(|e| e.auth.downcast_ref::<Authenticated<C>>().cloned());
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    fn insert<C: Clone + Send + Sync + 'static>(
        &self,
        token: &str,
        auth: &Authenticated<C>,
        (from, until): (u64, u64),
        origin: Origin,
        now: u64,
    ) {
        let byte_budget = self.per_shard.saturating_mul(BYTES_PER_ENTRY);
        if token.len() > byte_budget || self.per_shard == 0 {
            return;
        }
        let hash = self.hasher.hash_one(token.as_bytes());
        let entry = Arc::new(Entry {
            token: token.into(),
            from,
            until,
            origin,
            auth: Box::new(auth.clone()),
        });
        let mut shard = self.shard(hash);
        shard.bytes += token.len();
        if let Some(old) = shard.map.insert(hash, entry) {
            shard.bytes -= old.token.len();
        }
        if shard.map.len() > self.per_shard || shard.bytes > byte_budget {
            shard.evict(now, self.per_shard, byte_budget, hash);
        }
    }

    fn stats(&self) -> TokenCacheStats {
        TokenCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self
                .shards
                .iter()
                .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
                .sum(),
            capacity: self.capacity,
        }
    }
}

impl Shard {
    /// Back within bounds: the expired entries first, then arbitrary ones
    /// (the map's order follows the keyed hash) down to 7/8 of the bounds,
    /// so that a full shard is not swept at every insert. `keep` (the entry
    /// just added) stays.
    fn evict(&mut self, now: u64, entries: usize, bytes: usize, keep: u64) {
        self.map.retain(|_, e| now < e.until);
        self.bytes = self.map.values().map(|e| e.token.len()).sum();
        if self.map.len() <= entries && self.bytes <= bytes {
            return;
        }
        let (entries, bytes) = (entries - entries / 8, bytes - bytes / 8);
        let mut doomed = Vec::new();
        let (mut len, mut total) = (self.map.len(), self.bytes);
        for (hash, e) in &self.map {
            if len <= entries && total <= bytes {
                break;
            }
            if *hash == keep {
                continue;
            }
            doomed.push(*hash);
            len -= 1;
            total -= e.token.len();
        }
        for hash in doomed {
            self.map.remove(&hash);
        }
        self.bytes = total;
    }
}

/// The seconds `now` at which the claims check accepts these registered
/// claims again, given it accepted them once: `[from, until)`. `None` for a
/// token without `exp` (not cached). Mirrors `verify::check_claims`:
/// `exp` holds while `now < exp + leeway`; `nbf` and a future `iat` once
/// `now + leeway` reaches them; without `iat` the lifetime `exp - now` is
/// at most `max_lifetime` from `exp - max_lifetime` on. Everything else it
/// checks does not depend on the time.
pub(super) fn window(reg: &RegisteredClaims, leeway: u64, max_lifetime: u64) -> Option<(u64, u64)> {
    let exp = reg.exp?;
    let until = exp.saturating_add(leeway);
    let mut from = reg.nbf.map_or(0, |nbf| nbf.saturating_sub(leeway));
    from = from.max(match reg.iat {
        Some(iat) => iat.saturating_sub(leeway),
        None => exp.saturating_sub(max_lifetime),
    });
    Some((from, until))
}

/// Whether tokens of this algorithm are worth caching (not HMAC).
fn cacheable(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl TokenCacheSlot {
    /// Set the capacity (0: off).
    pub(super) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = Some(capacity);
    }
}

impl Config {
    /// A new, empty cache for this configuration (after any change to it):
    /// on by default when the layer has asymmetric keys or remote issuers.
    pub(super) fn renew_token_cache(&mut self) {
        #[cfg(feature = "remote-keys")]
        let remote = !self.remote.is_empty();
        #[cfg(not(feature = "remote-keys"))]
        let remote = false;
        let asymmetric = remote
            || self
                .keys
                .verify
                .iter()
                .any(|k| k.family != AlgorithmFamily::Hmac);
        let capacity =
            self.token_cache
                .capacity
                .unwrap_or(if asymmetric { DEFAULT_CAPACITY } else { 0 });
        self.token_cache.cache = (capacity > 0).then(|| Arc::new(TokenCache::new(capacity)));
    }

    /// The counters of the cache, if it is on.
    pub(super) fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.token_cache.cache.as_ref().map(|c| c.stats())
    }

    /// The verified claims of `token`, if the cache has them and they stand.
    pub(super) fn cached<C: Clone + 'static>(&self, token: &str) -> Option<Authenticated<C>> {
        let cache = self.token_cache.cache.as_ref()?;
        let now = crate::util::unix_millis() / 1000;
        cache.get(token, now, |origin| match origin {
            Origin::Local => true,
            #[cfg(feature = "remote-keys")]
            Origin::Remote { index, keys } => self
                .remote
                .get(*index)
                .is_some_and(|issuer| issuer.keys().is_current(keys)),
        })
    }

    /// Keep `auth`, just verified from `token` with the keys of `origin`.
    pub(super) fn remember<C: Clone + Send + Sync + 'static>(
        &self,
        token: &str,
        auth: &Authenticated<C>,
        origin: Origin,
    ) {
        let Some(cache) = &self.token_cache.cache else {
            return;
        };
        if !cacheable(auth.alg) {
            return;
        }
        let Some(window) = window(&auth.registered, self.rules.leeway, self.rules.max_lifetime)
        else {
            return;
        };
        let now = crate::util::unix_millis() / 1000;
        cache.insert(token, auth, window, origin, now);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::claims::RawRegistered;
    use crate::verify::{check_claims, Rules};

    fn auth(exp: u64) -> Authenticated<u32> {
        Authenticated {
            claims: 7,
            registered: RegisteredClaims {
                exp: Some(exp),
                ..RegisteredClaims::default()
            },
            token_id: String::new(),
            alg: Algorithm::ES256,
            kid: None,
            layer: None,
            remote_subject: None,
        }
    }

    #[test]
    fn only_the_same_token_hits_within_its_window() {
        let cache = TokenCache::new(8);
        cache.insert("aaa.bbb.ccc", &auth(100), (10, 100), Origin::Local, 50);
        let yes = |_: &Origin| true;
        assert_eq!(cache.get::<u32>("aaa.bbb.ccc", 50, yes).unwrap().claims, 7);
        assert!(cache.get::<u32>("aaa.bbb.cc", 50, yes).is_none());
        assert!(cache.get::<u32>("aaa.bbb.cccd", 50, yes).is_none());
        assert!(cache.get::<u32>("aaa.bbb.ccc", 9, yes).is_none());
        assert!(cache.get::<u32>("aaa.bbb.ccc", 10, yes).is_some());
        assert!(cache.get::<u32>("aaa.bbb.ccc", 99, yes).is_some());
        assert!(cache.get::<u32>("aaa.bbb.ccc", 100, yes).is_none());
        assert!(cache.get::<u32>("aaa.bbb.ccc", 50, |_| false).is_none());
        // Another claims type never comes out of it.
        assert!(cache.get::<u64>("aaa.bbb.ccc", 50, yes).is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (3, 6, 1));
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let cache = TokenCache::new(300);
        for i in 0..5000u64 {
            cache.insert(&format!("t{i}"), &auth(100), (0, 100), Origin::Local, 1);
        }
        let entries = cache.stats().entries;
        assert!(entries <= 300 && entries > 200, "{entries}");
        // Expired entries go first.
        let small = TokenCache::new(4);
        for i in 0..4u64 {
            small.insert(&format!("old{i}"), &auth(10), (0, 10), Origin::Local, 1);
        }
        small.insert("new", &auth(100), (0, 100), Origin::Local, 20);
        assert_eq!(small.stats().entries, 1);
        // Token text is bounded too: 4 × 2 KiB here.
        let big = "x".repeat(3000);
        for i in 0..4 {
            small.insert(
                &format!("{big}{i}"),
                &auth(100),
                (0, 100),
                Origin::Local,
                20,
            );
        }
        let kept = small.shards[0].lock().unwrap();
        assert!(kept.bytes <= 4 * BYTES_PER_ENTRY, "{}", kept.bytes);
        assert_eq!(
            kept.bytes,
            kept.map.values().map(|e| e.token.len()).sum::<usize>()
        );
    }

    fn registered(json: &str) -> RegisteredClaims {
        serde_json::from_str::<RawRegistered<'_>>(json)
            .unwrap()
            .into_owned()
    }

    proptest! {
        /// Whenever the claims check accepted a token once, the window
        /// holds exactly the times at which it accepts it again.
        #[test]
        fn the_window_agrees_with_the_claims_check(
            iat in proptest::option::of(0u64..400),
            nbf in proptest::option::of(0u64..400),
            exp in proptest::option::of(0u64..400),
            leeway in 0u64..60,
            max_lifetime in 0u64..300,
            first in 0u64..500,
            later in 0u64..500,
        ) {
            let mut json = serde_json::Map::new();
            for (name, value) in [("iat", iat), ("nbf", nbf), ("exp", exp)] {
                if let Some(v) = value {
                    json.insert(name.into(), v.into());
                }
            }
            let json = serde_json::Value::Object(json).to_string();
            let raw: RawRegistered<'_> = serde_json::from_str(&json).unwrap();
            let rules = Rules { leeway, max_lifetime, required: Vec::new(), ..Rules::default() };
            prop_assume!(check_claims(&raw, &rules, first).is_ok());
            match window(&registered(&json), leeway, max_lifetime) {
                None => prop_assert!(exp.is_none()),
                Some((from, until)) => {
                    prop_assert!(from <= first && first < until);
                    let again = check_claims(&raw, &rules, later).is_ok();
                    prop_assert_eq!(again, from <= later && later < until);
                }
            }
        }
    }
}
