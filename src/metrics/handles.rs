//! The series of [`Metrics`](super::Metrics), registered once.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::{
    reason, ErrorKind, SessionEvent, AUDIT_DROPPED_TOTAL, CIRCUIT_BREAKER_OPEN,
    NEAR_CACHE_REQUESTS_TOTAL, REASONS, REQUESTS_TOTAL, SESSION_EVENTS_TOTAL,
    STORE_CHECK_DURATION_SECONDS,
};

/// Every series, registered once.
pub(super) struct Handles {
    pub(super) accepted: Counter,
    pub(super) anonymous: Counter,
    pub(super) failed_open: Counter,
    rejected: Vec<(&'static str, Counter)>,
    store_unavailable: Counter,
    keys_unavailable: Counter,
    pub(super) store_check: Histogram,
    pub(super) breaker_open: Gauge,
    pub(super) near_hit: Counter,
    pub(super) near_miss: Counter,
    pub(super) sessions: Vec<Counter>,
    pub(super) audit_dropped: Counter,
}

fn requests(outcome: &'static str, reason: &'static str) -> Counter {
    counter!(REQUESTS_TOTAL, "outcome" => outcome, "reason" => reason)
}

impl Handles {
    pub(super) fn register() -> Self {
        let breaker_open = gauge!(CIRCUIT_BREAKER_OPEN);
        breaker_open.set(0.0);
        Self {
            accepted: requests("accepted", "verified"),
            anonymous: requests("accepted", "anonymous"),
            failed_open: requests("failed_open", "store_unavailable"),
            rejected: REASONS
                .iter()
                .map(|r| (*r, requests("rejected", r)))
                .collect(),
            store_unavailable: requests("unavailable", "store_unavailable"),
            keys_unavailable: requests("unavailable", "keys_unavailable"),
            store_check: histogram!(STORE_CHECK_DURATION_SECONDS),
            breaker_open,
            near_hit: counter!(NEAR_CACHE_REQUESTS_TOTAL, "result" => "hit"),
            near_miss: counter!(NEAR_CACHE_REQUESTS_TOTAL, "result" => "miss"),
            sessions: SessionEvent::ALL
                .iter()
                .map(|e| counter!(SESSION_EVENTS_TOTAL, "event" => e.code()))
                .collect(),
            audit_dropped: counter!(AUDIT_DROPPED_TOTAL),
        }
    }

    pub(super) fn refused(&self, kind: ErrorKind) {
        let counter = match kind {
            ErrorKind::StoreUnavailable => &self.store_unavailable,
            ErrorKind::KeysUnavailable => &self.keys_unavailable,
            kind => {
                let label = reason(kind);
                match self.rejected.iter().find(|(r, _)| *r == label) {
                    Some((_, counter)) => counter,
                    None => return debug_assert!(false, "no series for {label}"),
                }
            }
        };
        counter.increment(1);
    }
}
