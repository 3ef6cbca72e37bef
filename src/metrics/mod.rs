//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`), switched on with [`JwtAuth::metrics`](crate::JwtAuth::metrics):
//! the application installs a recorder (Prometheus, OpenTelemetry, ...)
//! first, and the layer registers every series it will ever touch once, so
//! the request path does no registry lookup and no allocation.
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | [`REQUESTS_TOTAL`] | counter | `outcome` (`accepted`, `rejected`, `unavailable`, `failed_open`), `reason` |
//! | [`STORE_CHECK_DURATION_SECONDS`] | histogram | |
//! | [`CIRCUIT_BREAKER_OPEN`] | gauge (0 or 1) | |
//! | [`NEAR_CACHE_REQUESTS_TOTAL`] | counter | `result` (`hit`, `miss`) |
//! | [`SESSION_EVENTS_TOTAL`] | counter | `event` ([`SessionEvent::code`]) |
//! | [`AUDIT_DROPPED_TOTAL`] | counter | |
//! | [`JWKS_FETCHES_TOTAL`] | counter | `issuer` (the configured JWKS or issuer URL), `result` (`ok`, `error`) |
//! | [`JWKS_KEYS`] | gauge | `issuer` |
//! | [`JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS`] | gauge | `issuer` |
//!
//! The JWKS series (feature `remote-keys`) are recorded at each fetch, with
//! the recorder installed then, whether or not a layer has `.metrics()`:
//! their `issuer` is the URL a [`RemoteKeys`](crate::RemoteKeys) was built with.
//!
//! Every label value comes from a fixed set ([`REASONS`] and the codes of
//! [`SessionEvent`]), never from a request. An accepted request's `reason`
//! is `verified` (or `anonymous`, with [`optional`](crate::JwtAuth::optional)
//! and no token); a 503's is `store_unavailable` or `keys_unavailable`; a
//! rejection's is the snake-case name of its [`ErrorKind`] or, for a revoked
//! token, its [`RevocationReason::code`](crate::store::RevocationReason::code).

#[cfg(feature = "metrics")]
use std::sync::Arc;
use std::time::Instant;

use crate::audit::SessionEvent;
use crate::error::{AuthError, ErrorKind};
use crate::store::hints::CheckHints;
use crate::store::{RevocationReason, SessionEnd};

/// Requests the layer decided about, by `outcome` and `reason`.
pub const REQUESTS_TOTAL: &str = "jwt_auth_requests_total";
/// How long a revocation-store check took, in seconds (every check that ran,
/// whatever its answer; near-cache hits and short-circuits are not checks).
pub const STORE_CHECK_DURATION_SECONDS: &str = "jwt_auth_store_check_duration_seconds";
/// 1 while the circuit breaker in front of the store is open, else 0.
pub const CIRCUIT_BREAKER_OPEN: &str = "jwt_auth_circuit_breaker_open";
/// Near-cache lookups (only with a near-cache), by `result`.
pub const NEAR_CACHE_REQUESTS_TOTAL: &str = "jwt_auth_near_cache_requests_total";
/// Session events (the audit events), by `event`.
pub const SESSION_EVENTS_TOTAL: &str = "jwt_auth_session_events_total";
/// Audit events dropped because the sink's queue was full.
pub const AUDIT_DROPPED_TOTAL: &str = "jwt_auth_audit_dropped_total";

/// JWKS fetches (discovery included) of a remote key set, by `issuer` and `result`.
pub const JWKS_FETCHES_TOTAL: &str = "jwt_auth_jwks_fetches_total";
/// Usable keys in the last key set fetched, by `issuer`.
pub const JWKS_KEYS: &str = "jwt_auth_jwks_keys";
/// When the last fetch succeeded (unix seconds), by `issuer`.
pub const JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "jwt_auth_jwks_last_success_timestamp_seconds";

/// Every `reason` of [`REQUESTS_TOTAL`] with `outcome="rejected"`.
pub const REASONS: &[&str] = &[
    "missing_token",
    "invalid_request",
    "token_too_large",
    "malformed",
    "algorithm_not_allowed",
    "unknown_key",
    "unsupported_critical",
    "wrong_type",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "lifetime_too_long",
    "wrong_issuer",
    "wrong_audience",
    "missing_claim",
    "invalid_claims",
    "rejected",
    "insufficient_scope",
    "invalid_dpop_proof",
    "dpop_binding",
    "token_revoked",
    "logged_out_everywhere",
    "banned",
    "logged_out",
    "kicked",
    "replaced",
    "idle_timeout",
    "session_expired",
    "refresh_reuse",
    "session_ended",
];

/// The `reason` label of a rejection (one of [`REASONS`], or
/// `store_unavailable` / `keys_unavailable`).
pub(crate) fn reason(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MissingToken => "missing_token",
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::TokenTooLarge => "token_too_large",
        ErrorKind::Malformed => "malformed",
        ErrorKind::AlgorithmNotAllowed => "algorithm_not_allowed",
        ErrorKind::UnknownKey => "unknown_key",
        ErrorKind::UnsupportedCritical => "unsupported_critical",
        ErrorKind::WrongType => "wrong_type",
        ErrorKind::BadSignature => "bad_signature",
        ErrorKind::Expired => "expired",
        ErrorKind::NotYetValid => "not_yet_valid",
        ErrorKind::LifetimeTooLong => "lifetime_too_long",
        ErrorKind::WrongIssuer => "wrong_issuer",
        ErrorKind::WrongAudience => "wrong_audience",
        ErrorKind::MissingClaim => "missing_claim",
        ErrorKind::InvalidClaims => "invalid_claims",
        ErrorKind::Rejected => "rejected",
        ErrorKind::InsufficientScope => "insufficient_scope",
        ErrorKind::InvalidDpopProof => "invalid_dpop_proof",
        ErrorKind::DpopBinding => "dpop_binding",
        ErrorKind::Revoked(RevocationReason::SessionEnded(end)) => match end {
            // One label per distinct meaning: a session ended by log out
            // everywhere or a ban is counted with the token refused for it.
            SessionEnd::LoggedOutEverywhere => "logged_out_everywhere",
            SessionEnd::Banned => "banned",
            end => end.code(),
        },
        ErrorKind::Revoked(reason) => reason.code(),
        ErrorKind::StoreUnavailable => "store_unavailable",
        ErrorKind::KeysUnavailable => "keys_unavailable",
    }
}

/// The layer's metric handles (none until [`JwtAuth::metrics`](crate::JwtAuth::metrics)),
/// and whether the decisions go on the current span too
/// ([`JwtAuth::span_fields`](crate::JwtAuth::span_fields)).
#[derive(Clone, Default)]
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    handles: Option<Arc<handles::Handles>>,
    pub(crate) span_fields: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Metrics {
    /// Handles registered now with the installed recorder.
    #[cfg(feature = "metrics")]
    fn register(&mut self) {
        self.handles = Some(Arc::new(handles::Handles::register()));
    }

    pub(crate) fn enabled(&self) -> bool {
        #[cfg(feature = "metrics")]
        return self.handles.is_some();
        #[cfg(not(feature = "metrics"))]
        false
    }

    /// A request let through with a verified token (`anonymous`: without one).
    #[inline]
    pub(crate) fn accepted(&self, anonymous: bool) {
        if self.span_fields {
            crate::trace::decision(
                "accepted",
                ["verified", "anonymous"][usize::from(anonymous)],
            );
        }
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            match anonymous {
                false => h.accepted.increment(1),
                true => h.anonymous.increment(1),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = anonymous;
    }

    /// A request let through unchecked because the store failed (fail open).
    pub(crate) fn failed_open(&self) {
        if self.span_fields {
            crate::trace::decision("failed_open", "store_unavailable");
        }
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.failed_open.increment(1);
        }
    }

    /// A request refused with `err`: `unavailable` for a 503, else `rejected`.
    pub(crate) fn refused(&self, err: &AuthError) {
        if self.span_fields {
            let outcome = match err.kind() {
                ErrorKind::StoreUnavailable | ErrorKind::KeysUnavailable => "unavailable",
                _ => "rejected",
            };
            crate::trace::decision(outcome, reason(err.kind()));
        }
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.refused(err.kind());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = err;
    }

    /// A verified token's subject (on the span, when asked for).
    #[inline]
    pub(crate) fn verified(&self, subject: &str) {
        if self.span_fields {
            crate::trace::subject(subject);
        }
    }

    /// When a store check starts: a clock read only with metrics on.
    #[inline]
    pub(crate) fn check_started(&self) -> Option<Instant> {
        self.enabled().then(Instant::now)
    }

    /// A store check that started at `started` has its answer.
    #[inline]
    pub(crate) fn check_done(&self, started: Option<Instant>) {
        #[cfg(feature = "metrics")]
        if let (Some(h), Some(started)) = (&self.handles, started) {
            h.store_check.record(started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = started;
    }

    /// The circuit breaker opened (`true`) or closed.
    pub(crate) fn breaker(&self, open: bool) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.breaker_open.set(f64::from(u8::from(open)));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = open;
    }

    /// A near-cache hit: no store check (the request is counted as
    /// accepted where it goes on to the inner service).
    #[inline]
    pub(crate) fn near_cache_hit(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.near_hit.increment(1);
        }
    }

    /// No cached verdict: a miss, when the store has a near-cache.
    #[inline]
    pub(crate) fn near_cache_miss(&self, hints: Option<&dyn CheckHints>) {
        #[cfg(feature = "metrics")]
        if let (Some(h), Some(hints)) = (&self.handles, hints) {
            if hints.has_near_cache() {
                h.near_miss.increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = hints;
    }

    /// A session event.
    pub(crate) fn session(&self, event: SessionEvent) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.sessions[event as usize].increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = event;
    }

    /// An audit event dropped (the sink's queue was full).
    pub(crate) fn audit_dropped(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.audit_dropped.increment(1);
        }
    }
}

/// A fetch of `issuer`'s key set ended: with this many usable keys, or failed.
#[cfg(feature = "remote-keys")]
pub(crate) fn jwks_fetched(issuer: &str, keys: Option<usize>) {
    #[cfg(feature = "metrics")]
    {
        use metrics::{counter, gauge};
        let issuer = issuer.to_owned();
        let result = if keys.is_some() { "ok" } else { "error" };
        counter!(JWKS_FETCHES_TOTAL, "issuer" => issuer.clone(), "result" => result).increment(1);
        if let Some(keys) = keys {
            let now = crate::util::unix_millis() as f64 / 1000.0;
            gauge!(JWKS_KEYS, "issuer" => issuer.clone()).set(keys as f64);
            gauge!(JWKS_LAST_SUCCESS_TIMESTAMP_SECONDS, "issuer" => issuer).set(now);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, keys);
}

#[cfg(feature = "metrics")]
impl<C> crate::JwtAuth<C> {
    /// Record metrics through the `metrics` facade (feature `metrics`):
    /// every series of [`crate::metrics`] is registered now, with the
    /// recorder installed at this moment, so install it first
    /// (e.g. `metrics_exporter_prometheus::PrometheusBuilder::install_recorder`).
    /// Without this call the layer records nothing.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_jwt_auth::{JwtAuth, Keys};
    ///
    /// // An application installs its recorder before this line.
    /// let auth = JwtAuth::<serde_json::Value>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
    ///     .metrics();
    /// # let _ = auth;
    /// ```
    #[must_use]
    pub fn metrics(self) -> Self {
        self.configure(|c| c.metrics.register())
    }
}

#[cfg(feature = "metrics")]
mod handles;

#[cfg(test)]
mod tests {
    use super::{reason, REASONS};
    use crate::error::ErrorKind;
    use crate::store::{RevocationReason, SessionEnd};

    #[test]
    fn every_rejection_has_a_series_of_its_own_label() {
        let mut kinds = vec![
            ErrorKind::MissingToken,
            ErrorKind::Expired,
            ErrorKind::InvalidDpopProof,
            ErrorKind::DpopBinding,
            ErrorKind::BadSignature,
            ErrorKind::Revoked(RevocationReason::TokenRevoked),
            ErrorKind::Revoked(RevocationReason::LoggedOutEverywhere),
            ErrorKind::Revoked(RevocationReason::Banned { until: Some(9) }),
        ];
        kinds.extend(
            SessionEnd::ALL
                .into_iter()
                .map(|end| ErrorKind::Revoked(RevocationReason::SessionEnded(end))),
        );
        for kind in kinds {
            assert!(REASONS.contains(&reason(kind)), "{kind:?}");
        }
        assert_eq!(
            reason(ErrorKind::Revoked(RevocationReason::SessionEnded(
                SessionEnd::IdleTimeout
            ))),
            "idle_timeout"
        );
        let mut sorted = REASONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), REASONS.len(), "a label is listed twice");
    }
}
