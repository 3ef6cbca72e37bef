//! [`SessionStore`]: what a store keeps for [`Sessions`](crate::Sessions)
//! (logins with a device limit, refresh-token rotation, one-time tokens),
//! and the types its methods take and return.

use std::fmt;
use std::time::Duration;

use super::{SessionEnd, StoreFuture};

/// Sessions, refresh tokens and one-time tokens: the part of a store that
/// [`Sessions`](crate::Sessions) needs beyond
/// [`RevocationStore`](super::RevocationStore).
///
/// A store implements it when it keeps sessions, and returns itself from
/// [`RevocationStore::sessions`](super::RevocationStore::sessions). Every
/// session of a subject must end when the subject is logged out everywhere
/// or banned, and the store's [`check`](super::RevocationStore::check)
/// refuses a token whose session is gone: the two traits share one state.
pub trait SessionStore: Send + Sync {
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
    ///   [`REFRESH_REUSE_WINDOW`](super::REFRESH_REUSE_WINDOW) (16), and `presented_hash` equal to the hash
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

/// A session to register with [`SessionStore::create_session`].
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

/// The result of [`SessionStore::create_session`].
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

/// One live session, as listed by [`SessionStore::list_sessions`].
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

/// A refresh-token rotation, for [`SessionStore::rotate_refresh`].
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

/// The result of [`SessionStore::rotate_refresh`].
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
