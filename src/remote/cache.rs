//! The key cache of one remote key set: a snapshot read without lock or
//! await, one fetch at a time shared by every caller (single-flight), and a
//! background task that refreshes the set before it goes stale and retries
//! with backoff after a failure.
//!
//! Locking: `state` (a std mutex) is taken only on the slow path (unknown
//! kid, no usable keys), by the fetch task when it starts and ends, and by
//! the refresher; it is never held across an await. The snapshot is an
//! `ArcSwapOption`, replaced whole by a successful fetch. How one fetch goes
//! (discovery, JWK set, freshness) is in `source.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::Uri;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use super::fetch::FetchError;
use super::source::{fetch_keys, Config, Fetched};
use super::{KeysUnavailable, Lookup, Refetch, RemoteStats};
use crate::keys::{Keys, MAX_KID_LEN};

/// A fetched key set and how long it may be used.
pub(super) struct Snapshot {
    pub(super) keys: Arc<Keys>,
    fetched_at: Instant,
    /// Until then the set is fresh.
    fresh_until: Instant,
    /// Until then the set is used while fetches fail (stale-if-error).
    usable_until: Instant,
}

/// What the fetch task and the slow path share.
#[derive(Default)]
struct State {
    /// A fetch is under way: callers wait for its outcome.
    running: bool,
    last_success: Option<Instant>,
    last_success_wall: Option<SystemTime>,
    last_failure: Option<Instant>,
    /// Failures since the last success.
    failures: u32,
    last_error: Option<Arc<FetchError>>,
}

impl State {
    fn last_attempt_failed(&self) -> bool {
        self.failures > 0
    }
}

/// The outcome of the last fetch, published to its waiters.
#[derive(Clone)]
struct Attempt {
    result: Result<Arc<Keys>, KeysUnavailable>,
}

pub(crate) struct Cache {
    config: Config,
    /// The `jwks_uri` found by discovery (forgotten when a fetch from it fails).
    discovered: Mutex<Option<Uri>>,
    snapshot: ArcSwapOption<Snapshot>,
    state: Mutex<State>,
    /// Each finished fetch, for its waiters; dropped with the cache, which
    /// ends the refresher.
    done: watch::Sender<Attempt>,
    refresher_started: AtomicBool,
    attempted: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// `t + d`, or about 30 years after `t` when that overflows.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(t)
}

impl Cache {
    pub(super) fn new(config: Config) -> Arc<Self> {
        let (done, _) = watch::channel(Attempt {
            result: Err(KeysUnavailable::new(Duration::ZERO, None)),
        });
        Arc::new(Self {
            config,
            discovered: Mutex::new(None),
            snapshot: ArcSwapOption::empty(),
            state: Mutex::new(State::default()),
            done,
            refresher_started: AtomicBool::new(false),
            attempted: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys for a token with this `kid`: see [`Lookup`]. Without lock
    /// or allocation when the snapshot is usable and knows the kid.
    pub(super) fn lookup(self: &Arc<Self>, kid: Option<&str>) -> Lookup {
        if !self.refresher_started.load(Ordering::Relaxed) {
            self.start_refresher();
        }
        let now = Instant::now();
        if let Some(snap) = self.snapshot.load().as_ref() {
            if now < snap.usable_until && kid.is_none_or(|kid| snap.keys.knows_kid(kid)) {
                return Lookup::Ready(Arc::clone(&snap.keys));
            }
        }
        self.lookup_slow(kid, now)
    }

    /// Unknown kid, or no usable keys: join the running fetch, start one if
    /// allowed, or answer from what there is.
    fn lookup_slow(self: &Arc<Self>, kid: Option<&str>, now: Instant) -> Lookup {
        let mut state = self.state();
        // A kid longer than any that is looked up never triggers a fetch.
        let hopeless = kid.is_some_and(|kid| kid.len() > MAX_KID_LEN);
        if state.running && !hopeless {
            return Lookup::Refetch(self.wait(self.done.subscribe()));
        }
        let next = self.next_on_demand(&state, now);
        if now >= next && !hopeless {
            if let Some(rx) = self.start_fetch(&mut state) {
                return Lookup::Refetch(self.wait(rx));
            }
        }
        let usable = self
            .snapshot
            .load_full()
            .filter(|snap| now < snap.usable_until);
        match usable {
            // The set is current: the kid is simply unknown.
            Some(snap) if !state.last_attempt_failed() => Lookup::Ready(Arc::clone(&snap.keys)),
            _ => Lookup::Unavailable(KeysUnavailable::new(
                next.saturating_duration_since(now),
                state.last_error.clone(),
            )),
        }
    }

    /// When a caller may start a fetch: `cooldown` after a success, `retry_min`
    /// after a failure.
    fn next_on_demand(&self, state: &State, now: Instant) -> Instant {
        if state.last_attempt_failed() {
            state
                .last_failure
                .map_or(now, |t| later(t, self.config.retry_min))
        } else {
            state
                .last_success
                .map_or(now, |t| later(t, self.config.cooldown))
        }
    }

    /// A future for the outcome of the running fetch.
    fn wait(&self, mut rx: watch::Receiver<Attempt>) -> Refetch {
        let retry = self.config.retry_min;
        Refetch::new(async move {
            match rx.changed().await {
                Ok(()) => rx.borrow_and_update().result.clone(),
                Err(_) => Err(KeysUnavailable::new(retry, None)),
            }
        })
    }

    /// Start a fetch (the state says none runs), subscribed to its outcome;
    /// `None` outside a tokio runtime.
    fn start_fetch(self: &Arc<Self>, state: &mut State) -> Option<watch::Receiver<Attempt>> {
        let handle = Handle::try_current().ok()?;
        state.running = true;
        // Subscribed under the lock: the outcome is published under it too,
        // so it cannot be missed.
        let rx = self.done.subscribe();
        let guard = AttemptGuard {
            cache: Arc::clone(self),
            finished: false,
        };
        handle.spawn(guard.run());
        Some(rx)
    }

    /// Record the outcome of a fetch: a new snapshot, or the failure (loudly).
    fn finish(&self, result: Result<Fetched, FetchError>) {
        let now = Instant::now();
        let mut state = self.state();
        let label = &self.config.label;
        let result = match result {
            Ok(fetched) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                let keys = Arc::new(fetched.keys);
                let fresh_until = later(now, fetched.max_age);
                let previous = self.snapshot.load();
                let skipped_before = previous.as_ref().map(|snap| snap.keys.skipped());
                if skipped_before != Some(keys.skipped()) {
                    // Logged when the set's unusable keys change, not at
                    // every refresh.
                    for skipped in keys.skipped() {
                        tracing::warn!(
                            source = %label,
                            index = skipped.index,
                            kid = ?skipped.kid,
                            alg = ?skipped.alg,
                            reason = %skipped.reason,
                            "JWKS: key skipped, it cannot verify tokens"
                        );
                    }
                }
                drop(previous);
                self.snapshot.store(Some(Arc::new(Snapshot {
                    keys: Arc::clone(&keys),
                    fetched_at: now,
                    fresh_until,
                    usable_until: later(fresh_until, self.config.stale_if_error),
                })));
                if state.failures > 0 {
                    tracing::warn!(
                        source = %label,
                        failures = state.failures,
                        keys = keys.verify.len(),
                        "JWKS fetched again after failures"
                    );
                } else {
                    tracing::debug!(
                        source = %label,
                        keys = keys.verify.len(),
                        max_age = ?fetched.max_age,
                        "JWKS fetched"
                    );
                }
                crate::metrics::jwks_fetched(label, Some(keys.verify.len()));
                state.last_success = Some(now);
                state.last_success_wall = Some(SystemTime::now());
                state.failures = 0;
                state.last_error = None;
                Ok(keys)
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                crate::metrics::jwks_fetched(label, None);
                state.failures = state.failures.saturating_add(1);
                state.last_failure = Some(now);
                let snapshot = self.snapshot.load();
                match snapshot.as_ref() {
                    Some(snap) if now < snap.fresh_until => tracing::warn!(
                        source = %label,
                        %error,
                        fresh_for = ?snap.fresh_until - now,
                        "JWKS fetch failed: keeping the last good keys"
                    ),
                    Some(snap) if now < snap.usable_until => tracing::error!(
                        source = %label,
                        %error,
                        fetched_ago = ?now - snap.fetched_at,
                        usable_for = ?snap.usable_until - now,
                        "JWKS fetch failed and the keys are stale: serving the last good \
                         keys (stale-if-error); tokens with a new kid get 503"
                    ),
                    _ => tracing::error!(
                        source = %label,
                        %error,
                        "JWKS fetch failed and no usable keys: this issuer's tokens get 503"
                    ),
                }
                let error = Arc::new(error);
                state.last_error = Some(Arc::clone(&error));
                Err(KeysUnavailable::new(self.config.retry_min, Some(error)))
            }
        };
        state.running = false;
        // Published under the lock (see `start_fetch`); kept when nobody waits.
        self.done.send_replace(Attempt { result });
    }

    /// When the refresher should fetch next: soon after a failure (backoff),
    /// before the snapshot goes stale, or now when there is none.
    fn next_refresh(&self, state: &State, now: Instant) -> Instant {
        if state.last_attempt_failed() {
            let exp = state.failures.saturating_sub(1).min(20);
            let backoff = self
                .config
                .retry_min
                .saturating_mul(1 << exp)
                .min(self.config.retry_max);
            return state.last_failure.map_or(now, |t| later(t, backoff));
        }
        match self.snapshot.load().as_ref() {
            Some(snap) => {
                let life = snap.fresh_until - snap.fetched_at;
                let ahead = (life * 9 / 10).max(Duration::from_millis(500));
                later(snap.fetched_at, ahead)
            }
            None => now,
        }
    }

    /// Start the background refresher, once, if there is a runtime.
    pub(super) fn start_refresher(self: &Arc<Self>) {
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        if self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(refresher(Arc::downgrade(self), self.done.subscribe()));
    }

    /// The snapshot if it may be used now (fresh, or stale within the bound).
    pub(super) fn keys_now(&self) -> Option<Arc<Keys>> {
        let now = Instant::now();
        self.snapshot
            .load()
            .as_ref()
            .filter(|snap| now < snap.usable_until)
            .map(|snap| Arc::clone(&snap.keys))
    }

    /// Whether `keys` is the usable snapshot now. A `Weak` keeps its
    /// allocation, so no later snapshot can share its address.
    pub(super) fn is_current(&self, keys: &Weak<Keys>) -> bool {
        let now = Instant::now();
        self.snapshot.load().as_ref().is_some_and(|snap| {
            now < snap.usable_until && std::ptr::eq(Arc::as_ptr(&snap.keys), keys.as_ptr())
        })
    }

    pub(super) fn stats(&self) -> RemoteStats {
        let now = Instant::now();
        let snapshot = self.snapshot.load_full();
        let state = self.state();
        RemoteStats {
            fetches_attempted: self.attempted.load(Ordering::Relaxed),
            fetches_succeeded: self.succeeded.load(Ordering::Relaxed),
            fetches_failed: self.failed.load(Ordering::Relaxed),
            last_success: state.last_success_wall,
            last_error: state.last_error.as_ref().map(ToString::to_string),
            keys: snapshot.as_ref().map_or(0, |s| s.keys.verify.len()),
            fresh: snapshot.as_ref().is_some_and(|s| now < s.fresh_until),
            usable: snapshot.as_ref().is_some_and(|s| now < s.usable_until),
        }
    }
}

/// Runs one fetch and records its outcome, even if the fetch panics.
struct AttemptGuard {
    cache: Arc<Cache>,
    finished: bool,
}

impl AttemptGuard {
    async fn run(mut self) {
        self.cache.attempted.fetch_add(1, Ordering::Relaxed);
        let result = fetch_keys(&self.cache.config, &self.cache.discovered).await;
        self.finished = true;
        self.cache.finish(result);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.cache
                .finish(Err(FetchError::transport("the fetch task ended early")));
        }
    }
}

/// Refreshes the set before it goes stale and retries after failures; ends
/// when the cache is dropped (it holds only a `Weak`, and the cache's
/// `done` sender closes `rx`).
async fn refresher(cache: Weak<Cache>, mut rx: watch::Receiver<Attempt>) {
    loop {
        rx.borrow_and_update();
        let sleep = {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            let mut state = cache.state();
            let now = Instant::now();
            if state.running {
                None
            } else {
                let at = cache.next_refresh(&state, now);
                if at <= now {
                    if cache.start_fetch(&mut state).is_none() {
                        return;
                    }
                    None
                } else {
                    Some(at - now)
                }
            }
        };
        let woke = match sleep {
            // Wake early when a fetch ends: the next refresh may be sooner.
            Some(sleep) => match tokio::time::timeout(sleep, rx.changed()).await {
                Ok(changed) => changed,
                Err(_) => Ok(()),
            },
            None => rx.changed().await,
        };
        if woke.is_err() {
            return;
        }
    }
}
