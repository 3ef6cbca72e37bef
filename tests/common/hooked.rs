//! A `MemoryStore` behind hooks, for tests that need a store of their own:
//! every method goes to the memory store; `check` goes through
//! [`Hooks::check`], and every token id, session id and secret hash the
//! store is handed is shown to [`Hooks::saw`] first.

use std::fmt;
use std::time::Duration;

use tower_jwt_auth::store::{
    CheckRequest, CreateOutcome, NewSession, RotateOutcome, Rotation, StoreFuture, Verdict,
};
use tower_jwt_auth::{MemoryStore, RevocationStore, SessionEnd, SessionInfo, SessionStore};

/// What a test changes about the store.
pub trait Hooks: fmt::Debug + Send + Sync + 'static {
    /// The verdict for `request` (by default the memory store's).
    fn check(
        &self,
        memory: &MemoryStore,
        request: &CheckRequest<'_>,
    ) -> StoreFuture<'static, Verdict> {
        memory.check(request)
    }

    /// The store is handed `value` as `what` (e.g. `"deny.token_id"`).
    fn saw(&self, _what: &'static str, _value: &str) {}
}

/// A [`MemoryStore`] with [`Hooks`].
#[derive(Debug, Clone, Default)]
pub struct Hooked<H> {
    pub memory: MemoryStore,
    pub hooks: H,
}

impl<H> Hooked<H> {
    pub fn new(hooks: H) -> Self {
        Self {
            memory: MemoryStore::new(),
            hooks,
        }
    }
}

impl<H: Hooks> RevocationStore for Hooked<H> {
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
        self.hooks.saw("check.token_id", &request.token_id);
        self.hooks.check(&self.memory, request)
    }

    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.hooks.saw("deny.token_id", token_id);
        self.memory.deny_token(subject, token_id, ttl)
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        not_before: u64,
        keep_for: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        self.memory
            .revoke_subject(subject, not_before, keep_for, markers)
    }

    fn ban<'a>(
        &'a self,
        subject: &'a str,
        duration: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        self.memory.ban(subject, duration, markers)
    }

    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool> {
        self.memory.unban(subject)
    }

    fn sessions(&self) -> Option<&dyn SessionStore> {
        Some(self)
    }
}

impl<H: Hooks> SessionStore for Hooked<H> {
    fn create_session(&self, session: NewSession) -> StoreFuture<'_, CreateOutcome> {
        self.hooks.saw("create.refresh_hash", &session.refresh_hash);
        self.hooks.saw("create.session_id", &session.session_id);
        self.memory.create_session(session)
    }

    fn end_session<'a>(
        &'a self,
        subject: &'a str,
        session_id: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, bool> {
        self.memory
            .end_session(subject, session_id, reason, markers)
    }

    fn end_all_sessions<'a>(
        &'a self,
        subject: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, usize> {
        self.memory.end_all_sessions(subject, reason, markers)
    }

    fn list_sessions<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionInfo>> {
        self.memory.list_sessions(subject)
    }

    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome> {
        self.hooks
            .saw("rotate.presented_hash", &rotation.presented_hash);
        self.hooks.saw("rotate.new_hash", &rotation.new_hash);
        self.memory.rotate_refresh(rotation)
    }

    fn put_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
        subject: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.hooks.saw("put_one_time.hash", token_hash);
        self.memory.put_one_time(purpose, token_hash, subject, ttl)
    }

    fn take_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
    ) -> StoreFuture<'a, Option<String>> {
        self.hooks.saw("take_one_time.hash", token_hash);
        self.memory.take_one_time(purpose, token_hash)
    }
}
