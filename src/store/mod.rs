//! Revocation stores: where the server-side state of tokens, subjects and
//! sessions lives.
//!
//! The [`RevocationStore`] trait is what the layer asks on every request
//! ([`RevocationStore::check`]) and what [`JwtAuth`](crate::JwtAuth)
//! revokes through; the [`SessionStore`] trait, which a store may also
//! implement, is what [`Sessions`](crate::Sessions) keeps logins, refresh
//! tokens and one-time tokens in. Two backends ship with the crate, and
//! implement both:
//!
//! - [`MemoryStore`]: one process, no setup; entries expire by themselves;
//! - `RedisStore` (feature `redis`): many processes sharing one Redis, one
//!   plain command for a token that stands.
//!
//! Every backend must pass the same conformance suite (`tests/conformance.rs`):
//! the semantics documented on each trait method are the contract.
//!
//! # Identifiers
//!
//! Subjects, session ids and token ids are opaque strings. A token id is the
//! token's `jti`, or the hex SHA-256 of the whole token when it has none; the
//! raw token never reaches a store.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub(crate) mod hints;
mod memory;
mod memory_state;
#[cfg(feature = "redis")]
mod near_cache;
#[cfg(feature = "redis")]
mod redis;
mod sessions;

pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::near_cache::{NearCacheConfig, NearCacheStats};
#[cfg(feature = "redis")]
#[doc(hidden)]
pub use self::redis::encode_key_part;
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder, StartupFinding};
pub use self::sessions::{
    CreateOutcome, LimitPolicy, NewSession, RotateOutcome, Rotation, SessionInfo, SessionStore,
};

/// How many earlier refresh-token generations a session remembers, so that
/// [`SessionStore::rotate_refresh`] can prove that an already rotated
/// token presented again was really issued before it ends the session for
/// reuse. Of each, a 128-bit prefix of the secret's SHA-256 is kept
/// (16 × 32 hex characters per session at most: measured, about 530 bytes
/// more per session in [`MemoryStore`] and 740 in Redis, once a session has
/// been refreshed 16 times).
pub const REFRESH_REUSE_WINDOW: u64 = 16;

/// At most this many markers of ended sessions are kept per subject (the
/// ones that expire first are dropped beyond it), so that one account
/// cannot grow a store without bound by logging in again and again.
///
/// A marker only tells *why* a session ended: a token of a session that is
/// neither live nor marked is refused all the same, with
/// [`SessionEnd::Unknown`]. The bound, measured with the crate's
/// 22-character session ids: in Redis, one key per subject (a ZSET of at
/// most 64 members, 2.6 KB by `MEMORY USAGE`); in [`MemoryStore`], a map of
/// at most 64 entries, about 9 KB.
pub const ENDED_MARKERS_PER_SUBJECT: usize = 64;

/// The longest time a store keeps anything (a ban, a mark, a deny entry, a
/// session): 100 years. Longer durations, up to `Duration::MAX`, are
/// capped to it.
pub const MAX_KEEP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How many single-use ids ([`RevocationStore::first_use`]) a
/// [`MemoryStore`] keeps at most (their hashes, about 100 bytes each: some
/// 100 MB at the cap); beyond it, once the expired ones are swept, a new id
/// is refused with an error rather than an old one forgotten.
pub const MEMORY_SINGLE_USE_CAP: usize = 1 << 20;

/// How many hex characters of a refresh secret's SHA-256 are kept for an
/// earlier generation (128 bits).
pub(crate) const KEPT_HASH_HEX: usize = 32;

/// A boxed future returned by [`RevocationStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What every store must do to answer a request: the verdict for a token,
/// and the writes that revoke (a token, a subject, a ban).
///
/// Implementations are cheap to clone handles (an `Arc` inside) and are used
/// through `Arc<dyn RevocationStore>`. All durations are relative to the
/// store's own clock (Redis's `TIME` for Redis), so that clock skew between
/// application servers does not matter; `iat` comparisons use unix seconds.
///
/// # Writing a store
///
/// The minimum is this trait's five methods: [`check`](Self::check) and the
/// four writes. A store for Postgres or DynamoDB needs three records per
/// subject (deny entries by token id with an expiry, a not-before mark in
/// unix seconds, a ban with an optional end), and `check` reads them in the
/// order documented there. Sessions are optional: a store that also keeps
/// them implements [`SessionStore`] and returns itself from
/// [`sessions`](Self::sessions); [`Sessions`](crate::Sessions) (logins,
/// refresh tokens, one-time tokens) then works on it, and answers
/// [`SessionError::NotConfigured`](crate::SessionError::NotConfigured)
/// otherwise. Run the conformance suite (`tests/conformance.rs`) against it:
/// the semantics documented on each method are the contract.
///
/// # Example
///
/// A store that only denies tokens (no subjects, bans or sessions), to show
/// the shape:
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use tower_jwt_auth::store::{CheckRequest, StoreFuture, Verdict};
/// use tower_jwt_auth::{RevocationReason, RevocationStore};
///
/// #[derive(Debug, Default)]
/// struct DenyOnly(Mutex<HashSet<String>>);
///
/// impl RevocationStore for DenyOnly {
///     fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
///         let denied = self.0.lock().unwrap().contains(&*request.token_id);
///         let verdict = match denied {
///             true => Verdict::Revoked(RevocationReason::TokenRevoked),
///             false => Verdict::Valid,
///         };
///         Box::pin(async move { Ok(verdict) })
///     }
///     fn deny_token<'a>(&'a self, _: &'a str, id: &'a str, _: Duration) -> StoreFuture<'a, ()> {
///         self.0.lock().unwrap().insert(id.to_owned());
///         Box::pin(async { Ok(()) })
///     }
///     fn revoke_subject<'a>(&'a self, _: &'a str, _: u64, _: Option<Duration>, _: Duration) -> StoreFuture<'a, ()> {
///         unimplemented!("a real store keeps a not-before mark")
///     }
///     fn ban<'a>(&'a self, _: &'a str, _: Option<Duration>, _: Duration) -> StoreFuture<'a, ()> {
///         unimplemented!("a real store keeps bans")
///     }
///     fn unban<'a>(&'a self, _: &'a str) -> StoreFuture<'a, bool> {
///         unimplemented!("a real store keeps bans")
///     }
/// }
/// ```
pub trait RevocationStore: Any + fmt::Debug + Send + Sync {
    /// The verdict for one verified token: all checks, in as few round trips
    /// as the backend can (`RedisStore`: one for a token that stands).
    ///
    /// In this order, the first that holds wins:
    /// 1. the subject is banned → [`Verdict::Revoked`] with [`RevocationReason::Banned`];
    /// 2. the token id is on the deny list → [`RevocationReason::TokenRevoked`];
    /// 3. `iat` is at or before the subject's not-before mark (or the token has
    ///    no `iat` while a mark exists) → [`RevocationReason::LoggedOutEverywhere`];
    /// 4. only for a store with [sessions](Self::sessions): the token has a
    ///    `sid` and that session is gone →
    ///    [`RevocationReason::SessionEnded`] with the reason left by whoever ended it
    ///    ([`SessionEnd::IdleTimeout`] when it lapsed, [`SessionEnd::Expired`] past its
    ///    absolute lifetime, [`SessionEnd::Unknown`] when no marker is left). A
    ///    session the store does not know (never created here, or its marker
    ///    expired or was dropped beyond [`ENDED_MARKERS_PER_SUBJECT`]) is gone:
    ///    a token with a `sid` is never valid without its live session.
    ///
    /// When the token passes with a live session, the session's last-seen time
    /// and idle deadline move forward if at least [`CheckRequest::touch_interval`]
    /// has passed since the last write (never beyond the session's absolute end).
    ///
    /// The request borrows from the token, and the returned future must
    /// borrow neither it nor `self`: take what the future needs before it
    /// starts (clone the inner handle; [`CheckRequest::into_owned`] copies
    /// the strings). The layer bounds the future by its
    /// [`store_deadline`](crate::JwtAuth::store_deadline).
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict>;

    /// Put one token id on the deny list for `ttl` (its remaining life plus
    /// leeway). A later, shorter entry never shortens an existing one.
    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;

    /// "Log out everywhere": `not_before` is the mark in unix milliseconds.
    /// Every token of `subject` whose `iat` second is at or before the mark's
    /// second is revoked (a token without `iat` too), except a session's
    /// token whose session was created after the mark: it was issued after
    /// it, even within the same second. And (in a store with sessions) every live
    /// session of the subject ends with [`SessionEnd::LoggedOutEverywhere`],
    /// its marker kept for `markers`. The mark is kept for `keep_for`
    /// (`None`: for ever); a later call never lowers an existing mark.
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        not_before: u64,
        keep_for: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Ban `subject` for `duration` (`None`: until lifted). In a store with
    /// sessions, all live sessions end with [`SessionEnd::Banned`] (markers
    /// kept for `markers`) and new logins are refused while it holds.
    fn ban<'a>(
        &'a self,
        subject: &'a str,
        duration: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Lift a ban. Returns whether one was in force.
    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool>;

    /// The store's sessions, when it keeps them (the default: it does not).
    fn sessions(&self) -> Option<&dyn SessionStore> {
        None
    }

    /// Remember the single-use `id` (a DPoP proof's or a logout token's
    /// `jti`) under `scope` for `ttl`: `true` the first time it is seen,
    /// `false` for a replay, on every instance that shares the store.
    ///
    /// `id` comes from the client: a store keeps a fixed-size hash of it,
    /// never the id itself, and must stay bounded under a flood of fresh
    /// ids (refusing with an error rather than forgetting one early: a
    /// forgotten id is a replay let through). The default answers
    /// [`StoreError::Unsupported`], so a feature that needs it fails closed.
    fn first_use<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let _ = (scope, id, ttl);
        Box::pin(async { Err(StoreError::Unsupported("single-use ids (first_use)")) })
    }

    /// End the identity provider's session `session_id` at `issuer` (an
    /// OpenID Connect back-channel logout with a `sid`): from now on, for
    /// `keep_for`, every token that [`check_with_provider_session`]
    /// is asked about with this issuer and session id is refused with
    /// [`SessionEnd::LoggedOut`], on every instance that shares the store.
    /// `keep_for` is the longest a token can live (plus the leeway), so no
    /// token of the session outlives the mark. A later call never shortens
    /// an existing one.
    ///
    /// The default answers [`StoreError::Unsupported`], so a logout that a
    /// store cannot keep is never answered as done. A store that implements
    /// it must implement [`check_with_provider_session`] too.
    ///
    /// [`check_with_provider_session`]: Self::check_with_provider_session
    fn end_provider_session<'a>(
        &'a self,
        issuer: &'a str,
        session_id: &'a str,
        keep_for: Duration,
    ) -> StoreFuture<'a, ()> {
        let _ = (issuer, session_id, keep_for);
        Box::pin(async {
            Err(StoreError::Unsupported(
                "provider sessions (back-channel logout)",
            ))
        })
    }

    /// [`check`](Self::check) for a token of a remote issuer that carries
    /// a `sid` (the provider's session): after the checks of `check`, a
    /// token whose provider session was ended
    /// ([`end_provider_session`](Self::end_provider_session)) is refused
    /// with [`RevocationReason::SessionEnded`]`(`[`SessionEnd::LoggedOut`]`)`.
    ///
    /// The default is [`check`](Self::check): right for a store whose
    /// [`end_provider_session`](Self::end_provider_session) is unsupported
    /// (no provider session can have ended there).
    fn check_with_provider_session(
        &self,
        request: &CheckRequest<'_>,
        issuer: &str,
        session_id: &str,
    ) -> StoreFuture<'static, Verdict> {
        let _ = (issuer, session_id);
        self.check(request)
    }
}

/// What [`RevocationStore::check`] is asked about one verified token.
///
/// The layer lends the strings from the token's claims (no copy per request);
/// build one with owned strings (`String::into`) where nothing can be lent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest<'a> {
    /// The token's subject (`sub`); empty when the token has none.
    pub subject: Cow<'a, str>,
    /// The token id: `jti`, or the hex SHA-256 of the token.
    pub token_id: Cow<'a, str>,
    /// The token's `iat`, unix seconds.
    pub issued_at: Option<u64>,
    /// The token's session id (`sid`).
    pub session_id: Option<Cow<'a, str>>,
    /// Minimum time between two writes of a session's last-seen time.
    pub touch_interval: Duration,
    /// The session idle timeout the deadline slides by.
    pub idle_timeout: Duration,
    /// How long the marker of a session found lapsed is kept, so that later
    /// requests are still told `idle_timeout` / `session_expired`.
    pub marker_ttl: Duration,
    /// How long the layer waits for the verdict, from the call of
    /// [`RevocationStore::check`] on (its
    /// [`store_deadline`](crate::JwtAuth::store_deadline)). The layer
    /// enforces it; a store may read it to end its own work by then.
    pub deadline: Duration,
}

impl CheckRequest<'_> {
    /// The same request owning its strings, for a future that outlives the
    /// borrow.
    pub fn into_owned(self) -> CheckRequest<'static> {
        CheckRequest {
            subject: Cow::Owned(self.subject.into_owned()),
            token_id: Cow::Owned(self.token_id.into_owned()),
            issued_at: self.issued_at,
            session_id: self.session_id.map(|sid| Cow::Owned(sid.into_owned())),
            touch_interval: self.touch_interval,
            idle_timeout: self.idle_timeout,
            marker_ttl: self.marker_ttl,
            deadline: self.deadline,
        }
    }
}

/// The answer of [`RevocationStore::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token still stands.
    Valid,
    /// The token is revoked, for this reason.
    Revoked(RevocationReason),
}

/// Why a verified token was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// This one token was logged out.
    TokenRevoked,
    /// Every token of the subject issued up to a moment was revoked
    /// (log out everywhere, password change).
    LoggedOutEverywhere,
    /// The subject is banned; `until` is the ban's end in unix seconds, `None`
    /// until lifted.
    Banned {
        /// End of the ban, unix seconds.
        until: Option<u64>,
    },
    /// The token's session no longer exists.
    SessionEnded(SessionEnd),
}

impl RevocationReason {
    /// A stable machine-readable code: `token_revoked`, `logged_out_everywhere`,
    /// `banned`, or the [`SessionEnd::code`] of an ended session.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TokenRevoked => "token_revoked",
            Self::LoggedOutEverywhere => "logged_out_everywhere",
            Self::Banned { .. } => "banned",
            Self::SessionEnded(end) => end.code(),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEnd {
    /// Its owner logged out.
    LoggedOut,
    /// Every session of the subject was ended (log out everywhere).
    LoggedOutEverywhere,
    /// An administrator ended it.
    Kicked,
    /// A newer login took its place (device limit or same device type).
    Replaced,
    /// It was idle longer than the idle timeout.
    IdleTimeout,
    /// It passed its absolute lifetime.
    Expired,
    /// The subject was banned.
    Banned,
    /// An already used refresh token was presented again (theft detection).
    RefreshReuse,
    /// It is gone and no reason is known any more.
    Unknown,
}

impl SessionEnd {
    /// All reasons, in the order of their numeric codes.
    pub const ALL: [SessionEnd; 9] = [
        Self::LoggedOut,
        Self::LoggedOutEverywhere,
        Self::Kicked,
        Self::Replaced,
        Self::IdleTimeout,
        Self::Expired,
        Self::Banned,
        Self::RefreshReuse,
        Self::Unknown,
    ];

    /// A stable machine-readable code (`logged_out`, `kicked`, `replaced`,
    /// `idle_timeout`, `session_expired`, `banned`, `refresh_reuse`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::LoggedOutEverywhere => "logged_out_everywhere",
            Self::Kicked => "kicked",
            Self::Replaced => "replaced",
            Self::IdleTimeout => "idle_timeout",
            Self::Expired => "session_expired",
            Self::Banned => "banned",
            Self::RefreshReuse => "refresh_reuse",
            Self::Unknown => "session_ended",
        }
    }

    /// The reason for a [`code`](Self::code); unknown codes give [`SessionEnd::Unknown`].
    pub fn from_code(code: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|end| end.code() == code)
            .unwrap_or(Self::Unknown)
    }
}

/// An error of a store backend: connection, timeout, protocol.
///
/// Its `Display` is for logs; response bodies never show it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or failed to answer.
    #[error("revocation store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend answered something this crate does not understand.
    #[error("unexpected reply from the revocation store: {0}")]
    Protocol(String),
    /// The per-check deadline passed.
    #[error("revocation store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store does not offer this operation.
    #[error("the revocation store does not support {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wrap any backend error as [`StoreError::Unavailable`].
    pub fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(err))
    }
}

/// `d` capped at [`MAX_KEEP`], in whole milliseconds (rounded up).
pub(crate) fn capped_millis(d: Duration) -> u64 {
    let ms = d.min(MAX_KEEP).as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::SessionEnd;

    #[test]
    fn session_end_codes_round_trip() {
        for end in SessionEnd::ALL {
            assert_eq!(SessionEnd::from_code(end.code()), end);
        }
        assert_eq!(SessionEnd::from_code("nonsense"), SessionEnd::Unknown);
    }
}
