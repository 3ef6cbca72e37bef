//! The in-process store: [`MemoryStore`] and its trait methods (its state
//! and the rules that keep it: `memory_state.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::memory_state::{after, kept_hash, Ban, Session, State, Subject};
use super::{
    capped_millis, CheckRequest, CreateOutcome, LimitPolicy, NewSession, RevocationReason,
    RevocationStore, RotateOutcome, Rotation, SessionEnd, SessionInfo, SessionStore, StoreError,
    StoreFuture, Verdict, MEMORY_SINGLE_USE_CAP, REFRESH_REUSE_WINDOW,
};
#[cfg(doc)]
use super::{ENDED_MARKERS_PER_SUBJECT, MAX_KEEP};
use crate::util::{constant_time_eq, sha256_hex, unix_millis};

/// How many writes between two sweeps of expired entries.
const SWEEP_EVERY: u32 = 1024;

/// An in-process [`RevocationStore`] and [`SessionStore`]: one process, no setup.
///
/// Entries expire by themselves: deny entries when the token could no longer be
/// accepted anyway, sessions after their idle timeout or lifetime, bans when
/// they end. Expired entries are swept periodically, so memory stays bounded by
/// what is live; a session that lapsed leaves a marker of why (kept as long
/// as the markers of its login), and a subject keeps at most
/// [`ENDED_MARKERS_PER_SUBJECT`] markers (about 9 KB). Durations are capped
/// at [`MAX_KEEP`] (100 years). Deadlines follow `tokio::time`, so tests can
/// pause the clock.
///
/// Cloning is cheap and clones share state.
///
/// # Example
///
/// ```
/// use tower_jwt_auth::{JwtAuth, Keys, MemoryStore};
///
/// # #[derive(Clone, serde::Deserialize)] struct MyClaims {}
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
///     .store(MemoryStore::new());
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<State>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subjects = self.lock().subjects.len();
        f.debug_struct("MemoryStore")
            .field("subjects", &subjects)
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries held (deny entries, marks, bans, sessions, markers,
    /// one-time tokens), expired or not. For memory sizing and tests.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.one_time.len()
            + state.used.len()
            + state.provider_sessions.len()
            + state
                .subjects
                .values()
                .map(|s| {
                    s.deny.len()
                        + usize::from(s.not_before.is_some())
                        + usize::from(s.ban.is_some())
                        + s.sessions.len()
                        + s.ended.len()
                })
                .sum::<usize>()
    }

    /// Whether the store holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop every expired entry now (this also happens by itself as writes go on).
    pub fn sweep(&self) {
        let mut state = self.lock();
        Self::sweep_locked(&mut state);
    }

    fn sweep_locked(state: &mut State) {
        let now = Instant::now();
        state.subjects.retain(|_, subject| {
            subject.sweep(now);
            !subject.is_empty(now)
        });
        state.one_time.retain(|_, (_, until)| *until > now);
        state.used.retain(|_, until| *until > now);
        state.provider_sessions.retain(|_, until| *until > now);
        state.writes = 0;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters more than losing the process, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a write against one subject, sweeping now and then.
    fn write<T>(&self, subject: &str, f: impl FnOnce(&mut Subject, Instant) -> T) -> T {
        let mut state = self.lock();
        state.writes += 1;
        if state.writes >= SWEEP_EVERY {
            Self::sweep_locked(&mut state);
        }
        let now = Instant::now();
        let entry = state.subjects.entry(subject.to_owned()).or_default();
        f(entry, now)
    }

    fn check_now(&self, req: &CheckRequest<'_>) -> Verdict {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(subject) = state.subjects.get_mut(&*req.subject) else {
            // A session this store does not know is over.
            return match req.session_id {
                Some(_) => Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::Unknown)),
                None => Verdict::Valid,
            };
        };
        if let Some(until) = subject.banned(now) {
            return Verdict::Revoked(RevocationReason::Banned { until });
        }
        if matches!(subject.deny.get(&*req.token_id), Some(until) if *until > now) {
            return Verdict::Revoked(RevocationReason::TokenRevoked);
        }
        if let Some((mark_ms, keep)) = subject.not_before {
            let alive = keep.is_none_or(|until| until > now);
            let issued_before = req.issued_at.is_none_or(|iat| iat <= mark_ms / 1000);
            // A live session created at or after the mark (in ms) had all
            // its tokens issued after it, even within the mark's second:
            // every session that was live when the mark was set was ended.
            let session_after = req
                .session_id
                .as_deref()
                .and_then(|sid| subject.sessions.get(sid))
                .is_some_and(|session| session.created_at >= mark_ms);
            if alive && issued_before && !session_after {
                return Verdict::Revoked(RevocationReason::LoggedOutEverywhere);
            }
        }
        if let Some(sid) = req.session_id.as_deref() {
            // A lapsed session leaves a marker, to keep telling later
            // requests why, as after a kick.
            if let Some(why) = subject.gone(sid, now, req.marker_ttl) {
                return Verdict::Revoked(RevocationReason::SessionEnded(why));
            }
            let session = subject.sessions.get_mut(sid).expect("live: not gone");
            if now.saturating_duration_since(session.last_touch) >= req.touch_interval {
                session.touch(now);
            }
        }
        Verdict::Valid
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

/// Unix seconds `d` from now, `d` capped at [`MAX_KEEP`].
fn unix_secs_after(d: Duration) -> u64 {
    unix_millis().saturating_add(capped_millis(d)) / 1000
}

impl RevocationStore for MemoryStore {
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
        ready(self.check_now(request))
    }

    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.write(subject, |s, now| {
            let until = after(now, ttl);
            let entry = s.deny.entry(token_id.to_owned()).or_insert(until);
            *entry = (*entry).max(until);
        });
        ready(())
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        not_before: u64,
        keep_for: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        self.write(subject, |s, now| {
            let keep = keep_for.map(|d| after(now, d));
            s.not_before = Some(match s.not_before {
                Some((mark, old_keep)) => {
                    let keep = match (old_keep, keep) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                    (mark.max(not_before), keep)
                }
                None => (not_before, keep),
            });
            s.end_all(SessionEnd::LoggedOutEverywhere, now, markers);
        });
        ready(())
    }

    fn ban<'a>(
        &'a self,
        subject: &'a str,
        duration: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        self.write(subject, |s, now| {
            s.ban = Some(Ban {
                until: duration.map(|d| (after(now, d), unix_secs_after(d))),
            });
            s.end_all(SessionEnd::Banned, now, markers);
        });
        ready(())
    }

    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool> {
        let was = self.write(subject, |s, now| {
            let was = s.banned(now).is_some();
            s.ban = None;
            was
        });
        ready(was)
    }

    fn sessions(&self) -> Option<&dyn SessionStore> {
        Some(self)
    }

    fn first_use<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let key = (scope.to_owned(), sha256_hex(id.as_bytes()));
        let mut state = self.lock();
        state.writes += 1;
        if state.writes >= SWEEP_EVERY {
            Self::sweep_locked(&mut state);
        }
        let now = Instant::now();
        if state.used.get(&key).is_some_and(|until| *until > now) {
            return ready(false);
        }
        // Full of live ids: refuse (the caller answers 503) rather than
        // forget one; the periodic sweep above frees the expired ones.
        if state.used.len() >= MEMORY_SINGLE_USE_CAP && !state.used.contains_key(&key) {
            return Box::pin(async {
                Err(StoreError::Unavailable(
                    "single-use id cache is full".into(),
                ))
            });
        }
        state.used.insert(key, after(now, ttl));
        ready(true)
    }

    fn end_provider_session<'a>(
        &'a self,
        issuer: &'a str,
        session_id: &'a str,
        keep_for: Duration,
    ) -> StoreFuture<'a, ()> {
        let mut state = self.lock();
        state.writes += 1;
        if state.writes >= SWEEP_EVERY {
            Self::sweep_locked(&mut state);
        }
        let until = after(Instant::now(), keep_for);
        let entry = state
            .provider_sessions
            .entry((issuer.to_owned(), session_id.to_owned()))
            .or_insert(until);
        *entry = (*entry).max(until);
        ready(())
    }

    fn check_with_provider_session(
        &self,
        request: &CheckRequest<'_>,
        issuer: &str,
        session_id: &str,
    ) -> StoreFuture<'static, Verdict> {
        let verdict = self.check_now(request);
        if verdict != Verdict::Valid {
            return ready(verdict);
        }
        let now = Instant::now();
        // A lookup by borrowed parts would need a key type of its own: the
        // copy only happens for remote tokens that carry a `sid`.
        let key = (issuer.to_owned(), session_id.to_owned());
        let ended = self
            .lock()
            .provider_sessions
            .get(&key)
            .is_some_and(|until| *until > now);
        ready(match ended {
            true => Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::LoggedOut)),
            false => Verdict::Valid,
        })
    }
}

impl SessionStore for MemoryStore {
    fn create_session(&self, new: NewSession) -> StoreFuture<'_, CreateOutcome> {
        let outcome = self.write(&new.subject, |s, now| {
            if let Some(until) = s.banned(now) {
                return CreateOutcome::Banned { until };
            }
            s.prune(now);
            let mut replaced = Vec::new();
            if new.replace_same_device {
                let same: Vec<String> = s
                    .sessions
                    .iter()
                    .filter(|(_, sess)| sess.device == new.device)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in same {
                    s.end(&id, SessionEnd::Replaced, now, new.markers);
                    replaced.push(id);
                }
            }
            let max = new.max_sessions as usize;
            if max > 0 && s.sessions.len() >= max {
                if new.limit_policy == LimitPolicy::RejectNew {
                    return CreateOutcome::LimitReached;
                }
                let mut by_age: Vec<(u64, String)> = s
                    .sessions
                    .iter()
                    .map(|(id, sess)| (sess.created_at, id.clone()))
                    .collect();
                by_age.sort();
                let excess = s.sessions.len() + 1 - max;
                for (_, id) in by_age.into_iter().take(excess) {
                    s.end(&id, SessionEnd::Replaced, now, new.markers);
                    replaced.push(id);
                }
            }
            // Strictly after every live session, so logins within one
            // millisecond still evict in login order.
            let newest = s
                .sessions
                .values()
                .map(|x| x.created_at.saturating_add(1))
                .max();
            let created_at = unix_millis().max(newest.unwrap_or(0));
            let end = after(now, new.lifetime);
            s.sessions.insert(
                new.session_id.clone(),
                Session {
                    device: new.device.clone(),
                    created_at,
                    last_seen_at: created_at,
                    last_touch: now,
                    idle_deadline: after(now, new.idle_timeout).min(end),
                    end,
                    idle_timeout: new.idle_timeout,
                    generation: 0,
                    refresh_hash: new.refresh_hash.clone(),
                    earlier: VecDeque::new(),
                    markers: new.markers,
                },
            );
            s.ended.remove(&new.session_id);
            CreateOutcome::Created { replaced }
        });
        ready(outcome)
    }

    fn end_session<'a>(
        &'a self,
        subject: &'a str,
        session_id: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, bool> {
        let was = self.write(subject, |s, now| {
            let live = s
                .sessions
                .get(session_id)
                .is_some_and(|sess| sess.lapsed(now).is_none());
            s.end(session_id, reason, now, markers);
            live
        });
        ready(was)
    }

    fn end_all_sessions<'a>(
        &'a self,
        subject: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, usize> {
        ready(self.write(subject, |s, now| s.end_all(reason, now, markers)))
    }

    fn list_sessions<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionInfo>> {
        let now = Instant::now();
        let state = self.lock();
        let mut list: Vec<SessionInfo> = state
            .subjects
            .get(subject)
            .map(|s| {
                s.sessions
                    .iter()
                    .filter(|(_, sess)| sess.lapsed(now).is_none())
                    .map(|(id, sess)| sess.info(id, now))
                    .collect()
            })
            .unwrap_or_default();
        list.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
        ready(list)
    }

    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome> {
        let outcome = self.write(&rotation.subject, |s, now| {
            if let Some(why) = s.gone(&rotation.session_id, now, rotation.markers) {
                return RotateOutcome::SessionEnded(why);
            }
            let session = s
                .sessions
                .get_mut(&rotation.session_id)
                .expect("live: not gone");
            let current = rotation.generation == session.generation
                && constant_time_eq(
                    rotation.presented_hash.as_bytes(),
                    session.refresh_hash.as_bytes(),
                );
            if !current {
                // An earlier token ends the session only when it is proven
                // to have been issued: its hash is the one kept for it.
                let presented = kept_hash(&rotation.presented_hash);
                let reused = session
                    .earlier_hash(rotation.generation)
                    .is_some_and(|kept| constant_time_eq(&presented, kept));
                if !reused {
                    return RotateOutcome::Invalid;
                }
                s.end(
                    &rotation.session_id,
                    SessionEnd::RefreshReuse,
                    now,
                    rotation.markers,
                );
                return RotateOutcome::Reused;
            }
            let Some(next) = session.generation.checked_add(1) else {
                return RotateOutcome::Invalid;
            };
            let spent = std::mem::replace(&mut session.refresh_hash, rotation.new_hash.clone());
            // Room is made first, so the queue never grows past the window.
            while session.earlier.len() as u64 >= REFRESH_REUSE_WINDOW {
                session.earlier.pop_front();
            }
            session.earlier.push_back(kept_hash(&spent));
            session.generation = next;
            session.idle_timeout = rotation.idle_timeout;
            session.touch(now);
            RotateOutcome::Rotated {
                generation: session.generation,
            }
        });
        ready(outcome)
    }

    fn put_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
        subject: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        let mut state = self.lock();
        let until = after(Instant::now(), ttl);
        state.one_time.insert(
            (purpose.to_owned(), token_hash.to_owned()),
            (subject.to_owned(), until),
        );
        ready(())
    }

    fn take_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
    ) -> StoreFuture<'a, Option<String>> {
        let mut state = self.lock();
        let now = Instant::now();
        let taken = state
            .one_time
            .remove(&(purpose.to_owned(), token_hash.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(subject, _)| subject);
        ready(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ENDED_MARKERS_PER_SUBJECT, MAX_KEEP};

    fn check<'a>(subject: &'a str, id: &'a str) -> CheckRequest<'a> {
        CheckRequest {
            subject: subject.into(),
            token_id: id.into(),
            issued_at: Some(unix_millis() / 1000),
            session_id: None,
            touch_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(4),
            marker_ttl: Duration::from_secs(60),
            deadline: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept_so_memory_stays_bounded() {
        let store = MemoryStore::new();
        for i in 0..100 {
            store
                .deny_token("alice", &format!("t{i}"), Duration::from_secs(10))
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 100);
        assert_eq!(
            store.check(&check("alice", "t5")).await.unwrap(),
            Verdict::Revoked(RevocationReason::TokenRevoked)
        );
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            store.check(&check("alice", "t5")).await.unwrap(),
            Verdict::Valid
        );
        store.sweep();
        assert!(store.is_empty(), "{} entries left", store.len());
    }

    #[tokio::test(start_paused = true)]
    async fn sweeping_happens_by_itself_as_writes_go_on() {
        let store = MemoryStore::new();
        for i in 0..SWEEP_EVERY {
            store
                .deny_token(&format!("s{i}"), "t", Duration::from_secs(1))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..SWEEP_EVERY {
            store
                .deny_token("last", &format!("t{i}"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        // The first batch expired and was swept without an explicit sweep().
        let len = store.len();
        assert!(len <= SWEEP_EVERY as usize, "{len} entries left");
    }

    fn new_session(subject: &str, sid: &str) -> NewSession {
        NewSession {
            subject: subject.into(),
            session_id: sid.into(),
            device: "web".into(),
            refresh_hash: "h0".into(),
            max_sessions: 0,
            limit_policy: LimitPolicy::EvictOldest,
            replace_same_device: false,
            idle_timeout: Duration::from_secs(3),
            lifetime: Duration::from_secs(3600),
            markers: Duration::from_secs(60),
        }
    }

    fn session_check<'a>(subject: &'a str, sid: &'a str) -> CheckRequest<'a> {
        CheckRequest {
            session_id: Some(sid.into()),
            ..check(subject, "t")
        }
    }

    /// Issue 12, bug 5: a sweep turns a lapsed session into its marker, and
    /// once the marker is gone too the token is still refused.
    #[tokio::test(start_paused = true)]
    async fn a_sweep_leaves_the_marker_of_a_lapsed_session() {
        let store = MemoryStore::new();
        store
            .create_session(new_session("alice", "s1"))
            .await
            .unwrap();
        assert_eq!(
            store.check(&session_check("alice", "s1")).await.unwrap(),
            Verdict::Valid
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        store.sweep();
        assert_eq!(store.len(), 1, "the marker");
        let idle = Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::IdleTimeout));
        assert_eq!(
            store.check(&session_check("alice", "s1")).await.unwrap(),
            idle
        );
        // The marker lapses after the login's marker time: the subject goes,
        // the token stays refused.
        tokio::time::advance(Duration::from_secs(61)).await;
        store.sweep();
        assert!(store.is_empty(), "{} entries", store.len());
        assert_eq!(
            store.check(&session_check("alice", "s1")).await.unwrap(),
            Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::Unknown))
        );
    }

    /// Issue 12, bug 9: markers are capped per subject; the ones that expire
    /// first go.
    #[tokio::test(start_paused = true)]
    async fn markers_are_capped_per_subject() {
        let store = MemoryStore::new();
        for i in 0..ENDED_MARKERS_PER_SUBJECT + 10 {
            let sid = format!("s{i}");
            store
                .create_session(new_session("alice", &sid))
                .await
                .unwrap();
            let markers = Duration::from_secs(100 + i as u64);
            store
                .end_session("alice", &sid, SessionEnd::Kicked, markers)
                .await
                .unwrap();
        }
        assert_eq!(store.len(), ENDED_MARKERS_PER_SUBJECT);
        let kicked = Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::Kicked));
        let unknown = Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::Unknown));
        assert_eq!(
            store.check(&session_check("alice", "s0")).await.unwrap(),
            unknown
        );
        assert_eq!(
            store.check(&session_check("alice", "s10")).await.unwrap(),
            kicked
        );
    }

    /// Issue 12, bug 6: deadlines beyond what `Instant` holds are capped,
    /// never a panic.
    #[tokio::test]
    async fn durations_up_to_max_are_capped() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(99 * 365 * 24 * 3600));
        assert_eq!(after(now, Duration::MAX), after(now, MAX_KEEP));
        let secs = unix_secs_after(Duration::MAX);
        assert!(secs > unix_millis() / 1000 + 99 * 365 * 24 * 3600, "{secs}");
        assert!(unix_secs_after(Duration::from_secs(u64::MAX)).abs_diff(secs) <= 1);
    }
}
