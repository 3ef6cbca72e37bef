//! Revocation stores: where the server-side state of tokens, subjects and
//! sessions lives.
//!
//! The [`RevocationStore`] trait is what the layer asks on every request
//! ([`RevocationStore::check`]) and what [`JwtAuth`](crate::JwtAuth) and
//! [`Sessions`](crate::Sessions) write through. Two backends ship with the crate:
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

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod memory;
#[cfg(feature = "redis")]
mod near_cache;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[doc(hidden)]
pub use self::redis::encode_key_part;
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder, StartupFinding};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use near_cache::{NearCacheConfig, NearCacheStats};

/// How many earlier refresh-token generations a session remembers, so that
/// [`RevocationStore::rotate_refresh`] can prove that an already rotated
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

/// How many hex characters of a refresh secret's SHA-256 are kept for an
/// earlier generation (128 bits).
pub(crate) const KEPT_HASH_HEX: usize = 32;

/// A boxed future returned by [`RevocationStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The backend behind revocation, bans and sessions.
///
/// Implementations are cheap to clone handles (an `Arc` inside) and are used
/// through `Arc<dyn RevocationStore>`. All durations are relative to the
/// store's own clock (Redis's `TIME` for Redis), so that clock skew between
/// application servers does not matter; `iat` comparisons use unix seconds.
pub trait RevocationStore: fmt::Debug + Send + Sync + 'static {
    /// The verdict for one verified token: all checks, in as few round trips
    /// as the backend can (`RedisStore`: one for a token that stands).
    ///
    /// In this order, the first that holds wins:
    /// 1. the subject is banned → [`Verdict::Revoked`] with [`RevocationReason::Banned`];
    /// 2. the token id is on the deny list → [`RevocationReason::TokenRevoked`];
    /// 3. `iat` is at or before the subject's not-before mark (or the token has
    ///    no `iat` while a mark exists) → [`RevocationReason::LoggedOutEverywhere`];
    /// 4. the token has a `sid` and that session is gone →
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
    /// the strings).
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict>;

    /// Whether the future of [`check`](Self::check) keeps to
    /// [`CheckRequest::deadline`] by itself: it then ends by that time, with
    /// [`StoreError::Timeout`] when the store has not answered, and the layer
    /// arms no timer of its own. The default is `false`: the layer bounds
    /// every check with a timer.
    fn bounds_check_time(&self) -> bool {
        false
    }

    /// Whether a fresh "valid" verdict for this token is cached locally
    /// (a near-cache), so the layer may skip [`check`](Self::check) entirely.
    /// Must not do I/O. The default is `false` (no cache).
    fn check_cached(&self, subject: &str, token_id: &str) -> bool {
        let _ = (subject, token_id);
        false
    }

    /// Put one token id on the deny list for `ttl` (its remaining life plus leeway).
    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;

    /// "Log out everywhere": every token of `subject` with `iat <= not_before`
    /// (unix seconds) is revoked, and every live session of the subject ends
    /// with [`SessionEnd::LoggedOutEverywhere`]. The mark is kept for `keep_for`
    /// (`None`: for ever); a later call never lowers an existing mark.
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        not_before: u64,
        keep_for: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Ban `subject` for `duration` (`None`: until lifted). All live sessions
    /// end with [`SessionEnd::Banned`]; new logins are refused while it holds.
    fn ban<'a>(
        &'a self,
        subject: &'a str,
        duration: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Lift a ban. Returns whether one was in force.
    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool>;

    /// Register a new session atomically, enforcing the device limit.
    ///
    /// In this order: a ban refuses the login ([`CreateOutcome::Banned`]);
    /// sessions that are gone (idle, expired) are pruned from the subject's
    /// index; with [`NewSession::replace_same_device`] a live session of the
    /// same device ends with [`SessionEnd::Replaced`]; then, if the subject still
    /// has `max_sessions` live sessions, either the oldest ones end with
    /// [`SessionEnd::Replaced`] ([`LimitPolicy::EvictOldest`]) or the login is
    /// refused ([`CreateOutcome::LimitReached`], nothing changes).
    fn create_session(&self, session: NewSession) -> StoreFuture<'_, CreateOutcome>;

    /// End one session with `reason`, leaving a marker for `markers`.
    /// Returns whether it was live.
    fn end_session<'a>(
        &'a self,
        subject: &'a str,
        session_id: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, bool>;

    /// End every live session of `subject` with `reason`. Returns how many.
    fn end_all_sessions<'a>(
        &'a self,
        subject: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, usize>;

    /// The live sessions of `subject`, oldest first, without scanning the keyspace.
    fn list_sessions<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionInfo>>;

    /// Rotate a session's refresh token atomically.
    ///
    /// - session gone → [`RotateOutcome::SessionEnded`] (with its marker's reason);
    /// - `generation` equal to the session's current one and `presented_hash`
    ///   equal to its stored hash → the hash becomes `new_hash`, the generation
    ///   goes up by one, the session's last-seen time and idle deadline move
    ///   forward → [`RotateOutcome::Rotated`] with the new generation;
    /// - `generation` lower than the current one by at most
    ///   [`REFRESH_REUSE_WINDOW`] (16), and `presented_hash` equal to the hash
    ///   that generation was issued with (an already rotated token presented
    ///   again: theft) → the session ends with [`SessionEnd::RefreshReuse`] →
    ///   [`RotateOutcome::Reused`];
    /// - anything else → [`RotateOutcome::Invalid`], nothing changes: a
    ///   secret that was never issued (knowing the subject and the session
    ///   id, which any access token shows, is not enough to end a session),
    ///   a generation older than the window (its secret can no longer be
    ///   proven), a generation above the current one (up to `u64::MAX`).
    ///
    /// Exactly one of two concurrent rotations of the same token wins (the
    /// other one presents an earlier generation with its real secret:
    /// [`RotateOutcome::Reused`]).
    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome>;

    /// Store a one-time token (by its hash) for `purpose`, holding `subject`.
    fn put_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
        subject: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Consume a one-time token: the first caller gets the subject, every
    /// later (or concurrent) caller gets `None`.
    fn take_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
    ) -> StoreFuture<'a, Option<String>>;
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
    /// [`store_deadline`](crate::JwtAuth::store_deadline)). Only a store
    /// that [bounds its own checks](RevocationStore::bounds_check_time)
    /// needs to read it.
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

/// How a login beyond the device limit is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LimitPolicy {
    /// End the oldest sessions to make room (default).
    #[default]
    EvictOldest,
    /// Refuse the new login.
    RejectNew,
}

/// A session to register with [`RevocationStore::create_session`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The subject that logs in.
    pub subject: String,
    /// The new session id.
    pub session_id: String,
    /// The device (type) label, e.g. `web`, `mobile`.
    pub device: String,
    /// SHA-256 (hex) of the first refresh token's secret.
    pub refresh_hash: String,
    /// At most this many live sessions per subject (0: no limit).
    pub max_sessions: u32,
    /// What to do at the limit.
    pub limit_policy: LimitPolicy,
    /// End a live session with the same `device` first.
    pub replace_same_device: bool,
    /// Idle timeout: the session ends after this long without use.
    pub idle_timeout: Duration,
    /// Absolute lifetime: the session ends this long after login, however used.
    pub lifetime: Duration,
    /// How long the markers of sessions ended by this login are kept, and
    /// this session's own marker when a store finds it lapsed by itself
    /// (e.g. `MemoryStore`'s sweep).
    pub markers: Duration,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("subject", &self.subject)
            .field("session_id", &self.session_id)
            .field("device", &self.device)
            .field("refresh_hash", &"[redacted]")
            .field("max_sessions", &self.max_sessions)
            .field("limit_policy", &self.limit_policy)
            .field("replace_same_device", &self.replace_same_device)
            .field("idle_timeout", &self.idle_timeout)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The result of [`RevocationStore::create_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// Registered; these session ids were ended to make room.
    Created {
        /// Sessions ended by this login (device limit or same device).
        replaced: Vec<String>,
    },
    /// The subject is banned.
    Banned {
        /// End of the ban, unix seconds; `None` until lifted.
        until: Option<u64>,
    },
    /// The device limit is reached and the policy is [`LimitPolicy::RejectNew`].
    LimitReached,
}

/// One live session, as listed by [`RevocationStore::list_sessions`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// The session id (`sid` claim of its tokens).
    pub session_id: String,
    /// The device label given at login.
    pub device: String,
    /// Login time, unix milliseconds.
    pub created_at: u64,
    /// Last accepted use, unix milliseconds (written at most once per touch interval).
    pub last_seen_at: u64,
    /// When it ends if unused, unix milliseconds (idle deadline capped by its lifetime).
    pub expires_at: u64,
}

/// A refresh-token rotation, for [`RevocationStore::rotate_refresh`].
#[derive(Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The subject.
    pub subject: String,
    /// The session id.
    pub session_id: String,
    /// The generation carried by the presented token.
    pub generation: u64,
    /// SHA-256 (hex) of the presented secret.
    pub presented_hash: String,
    /// SHA-256 (hex) of the next secret.
    pub new_hash: String,
    /// The idle timeout the deadline slides by.
    pub idle_timeout: Duration,
    /// How long a marker of a session ended by reuse is kept.
    pub markers: Duration,
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("subject", &self.subject)
            .field("session_id", &self.session_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The result of [`RevocationStore::rotate_refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// Rotated; the new token carries this generation.
    Rotated {
        /// The new generation.
        generation: u64,
    },
    /// An old refresh token was presented again; the session was ended.
    Reused,
    /// The session is gone.
    SessionEnded(SessionEnd),
    /// The token does not match the session.
    Invalid,
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
    /// The circuit breaker is open after repeated failures.
    #[error("revocation store circuit breaker is open")]
    CircuitOpen,
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

/// Current unix time in milliseconds.
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_end_codes_round_trip() {
        for end in SessionEnd::ALL {
            assert_eq!(SessionEnd::from_code(end.code()), end);
        }
        assert_eq!(SessionEnd::from_code("nonsense"), SessionEnd::Unknown);
    }
}
