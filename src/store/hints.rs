//! What the layer may know of the crate's own stores to spend less per
//! request: not part of the public [`RevocationStore`] trait, found once
//! when the store is configured ([`hints_of`]).

use std::any::Any;
use std::sync::Arc;

use super::{MemoryStore, RevocationStore};

/// Speed hints of a store, asked by the layer on every request; neither
/// may do I/O.
pub(crate) trait CheckHints: Send + Sync {
    /// Whether the future of [`check`](RevocationStore::check) keeps to
    /// [`CheckRequest::deadline`](super::CheckRequest::deadline) by itself:
    /// it then ends by that time, with
    /// [`StoreError::Timeout`](super::StoreError::Timeout) when the store has
    /// not answered, and the layer arms no timer of its own (one timer per
    /// request instead of two: BENCHMARKS.md, fourth round, item 11).
    fn bounds_check_time(&self) -> bool;

    /// Whether a fresh "valid" verdict for this token is cached locally
    /// (a near-cache), so the layer may skip [`check`](RevocationStore::check)
    /// entirely.
    fn check_cached(&self, subject: &str, token_id: &str) -> bool;

    /// Whether the store keeps a near-cache at all (for its hit/miss metric).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn has_near_cache(&self) -> bool {
        false
    }
}

impl CheckHints for MemoryStore {
    /// The verdict is there at once.
    fn bounds_check_time(&self) -> bool {
        true
    }

    fn check_cached(&self, _subject: &str, _token_id: &str) -> bool {
        false
    }
}

/// The hints of `store` when it is one of the crate's own stores; `None`
/// for any other (the layer then bounds every check with a timer and has
/// no cache to ask).
pub(crate) fn hints_of(store: &dyn RevocationStore) -> Option<Arc<dyn CheckHints>> {
    let store: &dyn Any = store;
    if let Some(memory) = store.downcast_ref::<MemoryStore>() {
        return Some(Arc::new(memory.clone()));
    }
    #[cfg(feature = "redis")]
    if let Some(redis) = store.downcast_ref::<super::RedisStore>() {
        return Some(Arc::new(redis.clone()));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::hints_of;
    use crate::store::{CheckRequest, MemoryStore, RevocationStore, StoreFuture, Verdict};

    #[derive(Debug)]
    struct Users;

    impl RevocationStore for Users {
        fn check(&self, _: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
            Box::pin(async { Ok(Verdict::Valid) })
        }
        fn deny_token<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn revoke_subject<'a>(
            &'a self,
            _: &'a str,
            _: u64,
            _: Option<Duration>,
            _: Duration,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn ban<'a>(&'a self, _: &'a str, _: Option<Duration>, _: Duration) -> StoreFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn unban<'a>(&'a self, _: &'a str) -> StoreFuture<'a, bool> {
            Box::pin(async { Ok(false) })
        }
    }

    #[tokio::test]
    async fn the_crates_stores_bound_their_own_checks() {
        let memory = hints_of(&MemoryStore::new()).expect("MemoryStore has hints");
        assert!(memory.bounds_check_time());
        assert!(!memory.check_cached("alice", "t1"));
        #[cfg(feature = "redis")]
        {
            // Built without connecting: nothing listens there.
            let manager = bb8_redis::RedisConnectionManager::new("redis://127.0.0.1:1").unwrap();
            let pool = bb8::Pool::builder().build_unchecked(manager);
            let redis =
                hints_of(&crate::store::RedisStore::from_pool(pool)).expect("RedisStore has hints");
            assert!(redis.bounds_check_time());
            assert!(!redis.check_cached("alice", "t1"));
        }
        assert!(hints_of(&Users).is_none(), "a store of the user's has none");
    }
}
