//! The circuit breaker in front of the revocation store, and the store
//! counters behind [`JwtAuth::stats`](crate::JwtAuth::stats).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters of store outcomes, shared by every clone of one [`JwtAuth`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    store_failures: AtomicU64,
    failed_open: AtomicU64,
    short_circuited: AtomicU64,
}

impl Counters {
    pub(super) fn store_failed(&self) {
        self.store_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed_open(&self) {
        self.failed_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn short_circuited(&self) {
        self.short_circuited.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> Stats {
        Stats {
            store_failures: self.store_failures.load(Ordering::Relaxed),
            failed_open: self.failed_open.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of the layer's store counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Store checks that failed (error or deadline).
    pub store_failures: u64,
    /// Requests accepted without a store verdict (fail-open mode).
    pub failed_open: u64,
    /// Requests answered by the open circuit breaker without asking the store.
    pub short_circuited: u64,
}

/// A circuit breaker: after `threshold` consecutive failures the store is not
/// asked for `cooldown`; then one probe goes through, and a success closes it.
///
/// Requests that were already in flight when a failure was counted belong to
/// the same outage (one stall fails them all at once, e.g. 25 concurrent
/// checks missing the deadline together): they count once, so a single
/// hiccup does not open the breaker, while a dead store (every new request
/// fails) opens it after `threshold` waves.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// In µs since `epoch`: while open, when the next probe may go.
    open_until_us: AtomicU64,
    /// How many failures were ever counted: a check that sees it change
    /// while in flight belongs to an outage counted already.
    counted: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until_us: AtomicU64::new(0),
            counted: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// What [`failure`](Self::failure) is given of a check: taken when it
    /// starts (an atomic load, no clock read on the way of every request).
    pub(super) fn ticket(&self) -> u64 {
        self.counted.load(Ordering::Acquire)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The end of a cooldown that starts now.
    fn cooldown_end_us(&self) -> u64 {
        let cooldown = u64::try_from(self.cooldown.as_micros()).unwrap_or(u64::MAX);
        self.now_us().saturating_add(cooldown)
    }

    /// Whether a request may ask the store now.
    pub(super) fn allow(&self) -> bool {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return true;
        }
        let until = self.open_until_us.load(Ordering::Acquire);
        // Past the cooldown, exactly one caller wins the probe.
        self.now_us() >= until
            && self
                .open_until_us
                .compare_exchange(
                    until,
                    self.cooldown_end_us(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// A check succeeded; `true` when failures had been counted (the
    /// breaker closes, if it was open).
    pub(super) fn success(&self) -> bool {
        let failed = self.failures.load(Ordering::Relaxed) != 0;
        if failed {
            self.failures.store(0, Ordering::Release);
        }
        failed
    }

    /// A check failed; `true` when this failure (re)opened the breaker.
    pub(super) fn failure(&self, ticket: u64) -> bool {
        if self
            .counted
            .compare_exchange(ticket, ticket + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // In flight when a failure was counted (or counted concurrently):
            // the same outage.
            return false;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let open = failures >= self.threshold;
        if open {
            self.open_until_us
                .store(self.cooldown_end_us(), Ordering::Release);
        }
        open
    }

    pub(super) fn retry_after_secs(&self) -> u64 {
        self.cooldown.as_secs().max(1)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_lets_one_probe_through() {
        let breaker = Breaker::new(2, Duration::from_millis(0));
        assert!(breaker.allow());
        breaker.failure(breaker.ticket());
        assert!(breaker.allow());
        breaker.failure(breaker.ticket());
        // Cooldown 0: the next caller is the probe.
        assert!(breaker.allow());
        breaker.success();
        assert!(breaker.allow());

        let breaker = Breaker::new(1, Duration::from_secs(60));
        breaker.failure(breaker.ticket());
        assert!(!breaker.allow());
        assert!(!breaker.allow());
    }

    #[test]
    fn requests_in_flight_together_count_as_one_failure() {
        let breaker = Breaker::new(3, Duration::from_secs(60));
        // 25 checks start, then a stall fails them all.
        let started = breaker.ticket();
        for _ in 0..25 {
            breaker.failure(started);
        }
        assert!(breaker.allow(), "one stall opened the breaker");
        // A dead store: every new request fails too, wave after wave.
        for _ in 0..3 {
            breaker.failure(breaker.ticket());
        }
        assert!(!breaker.allow(), "a dead store did not open the breaker");
    }
}
