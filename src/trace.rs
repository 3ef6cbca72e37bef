//! The layer's fields on the caller's span ([`JwtAuth::span_fields`]): the
//! decision about a request, recorded on the span that is current while the
//! layer runs, e.g. the one tower-http's `TraceLayer` makes per request.
//!
//! The span must declare the fields (a span records only the fields it was
//! created with), empty:
//!
//! ```
//! use tower_jwt_auth::trace::{OUTCOME, REASON, SUBJECT};
//!
//! let span = tracing::info_span!(
//!     "request",
//!     method = "GET",
//!     { OUTCOME } = tracing::field::Empty,
//!     { REASON } = tracing::field::Empty,
//!     { SUBJECT } = tracing::field::Empty,
//! );
//! # let _ = span;
//! ```
//!
//! `auth.outcome` is `accepted`, `rejected`, `unavailable` or `failed_open`
//! and `auth.reason` the `reason` label of
//! [`REQUESTS_TOTAL`](crate::metrics::REQUESTS_TOTAL), as in the metrics;
//! `enduser.id` (OpenTelemetry's name) the verified token's `sub`, recorded
//! once the signature and claims are verified (a rejected token's subject is
//! not recorded: it is not known to be true).

use crate::JwtAuth;

/// The field for the decision: `accepted`, `rejected`, `unavailable`, `failed_open`.
pub const OUTCOME: &str = "auth.outcome";
/// The field for why: the `reason` label of the metrics.
pub const REASON: &str = "auth.reason";
/// The field for the verified token's subject.
pub const SUBJECT: &str = "enduser.id";

/// Record the decision on the current span.
pub(crate) fn decision(outcome: &'static str, reason: &'static str) {
    let span = tracing::Span::current();
    span.record(OUTCOME, outcome);
    span.record(REASON, reason);
}

/// Record the verified subject on the current span.
pub(crate) fn subject(sub: &str) {
    tracing::Span::current().record(SUBJECT, sub);
}

impl<C> JwtAuth<C> {
    /// Record the layer's decision as fields of the current span (the
    /// caller's, e.g. tower-http's `TraceLayer`): [`OUTCOME`](crate::trace::OUTCOME),
    /// [`REASON`](crate::trace::REASON) and [`SUBJECT`](crate::trace::SUBJECT);
    /// see [`crate::trace`]. Off by default (it costs a look-up of the
    /// current span per request).
    #[must_use]
    pub fn span_fields(self, on: bool) -> Self {
        self.configure(|c| c.metrics.span_fields = on)
    }
}
