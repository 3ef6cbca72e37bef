//! The in-process store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{
    unix_millis, CheckRequest, CreateOutcome, LimitPolicy, NewSession, RevocationReason,
    RevocationStore, RotateOutcome, Rotation, SessionEnd, SessionInfo, StoreFuture, Verdict,
};

/// How many writes between two sweeps of expired entries.
const SWEEP_EVERY: u32 = 1024;

/// An in-process [`RevocationStore`]: one process, no setup.
///
/// Entries expire by themselves: deny entries when the token could no longer be
/// accepted anyway, sessions after their idle timeout or lifetime, bans when
/// they end. Expired entries are swept periodically, so memory stays bounded by
/// what is live. Deadlines follow `tokio::time`, so tests can pause the clock.
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

#[derive(Default)]
struct State {
    subjects: HashMap<String, Subject>,
    one_time: HashMap<(String, String), (String, Instant)>,
    writes: u32,
}

#[derive(Default)]
struct Subject {
    deny: HashMap<String, Instant>,
    not_before: Option<(u64, Option<Instant>)>,
    ban: Option<Ban>,
    sessions: HashMap<String, Session>,
    ended: HashMap<String, (SessionEnd, Instant)>,
}

struct Ban {
    until: Option<(Instant, u64)>,
}

struct Session {
    device: String,
    created_at: u64,
    last_seen_at: u64,
    last_touch: Instant,
    idle_deadline: Instant,
    end: Instant,
    idle_timeout: Duration,
    generation: u64,
    refresh_hash: String,
}

impl Session {
    fn expires_at(&self, now: Instant) -> u64 {
        let deadline = self.idle_deadline.min(self.end);
        unix_millis() + deadline.saturating_duration_since(now).as_millis() as u64
    }

    fn info(&self, id: &str, now: Instant) -> SessionInfo {
        SessionInfo {
            session_id: id.to_owned(),
            device: self.device.clone(),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at(now),
        }
    }

    /// Why it is over at `now`, if it is.
    fn lapsed(&self, now: Instant) -> Option<SessionEnd> {
        if now >= self.end {
            Some(SessionEnd::Expired)
        } else if now >= self.idle_deadline {
            Some(SessionEnd::IdleTimeout)
        } else {
            None
        }
    }

    fn touch(&mut self, now: Instant) {
        self.last_touch = now;
        self.last_seen_at = unix_millis();
        self.idle_deadline = (now + self.idle_timeout).min(self.end);
    }
}

impl Subject {
    fn banned(&self, now: Instant) -> Option<Option<u64>> {
        match &self.ban {
            Some(Ban { until: None }) => Some(None),
            Some(Ban {
                until: Some((deadline, unix)),
            }) if *deadline > now => Some(Some(*unix)),
            _ => None,
        }
    }

    /// Move lapsed sessions to the ended markers; keep markers for `markers`.
    fn prune(&mut self, now: Instant, markers: Duration) {
        let lapsed: Vec<(String, SessionEnd)> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| s.lapsed(now).map(|why| (id.clone(), why)))
            .collect();
        for (id, why) in lapsed {
            self.sessions.remove(&id);
            self.ended.insert(id, (why, now + markers));
        }
    }

    fn end(&mut self, id: &str, why: SessionEnd, now: Instant, markers: Duration) -> bool {
        match self.sessions.remove(id) {
            Some(session) => {
                let why = session.lapsed(now).unwrap_or(why);
                self.ended.insert(id.to_owned(), (why, now + markers));
                true
            }
            None => false,
        }
    }

    fn end_all(&mut self, why: SessionEnd, now: Instant, markers: Duration) -> usize {
        self.prune(now, markers);
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in &ids {
            self.end(id, why, now, markers);
        }
        ids.len()
    }

    /// The reason a session that is not live ended.
    fn ended_reason(&mut self, id: &str, now: Instant) -> Option<SessionEnd> {
        if let Some(session) = self.sessions.get(id) {
            let why = session.lapsed(now)?;
            self.sessions.remove(id);
            return Some(why);
        }
        Some(match self.ended.get(id) {
            Some((why, until)) if *until > now => *why,
            _ => SessionEnd::Unknown,
        })
    }

    fn is_empty(&self, now: Instant) -> bool {
        self.deny.is_empty()
            && self.not_before.is_none()
            && self.banned(now).is_none()
            && self.sessions.is_empty()
            && self.ended.is_empty()
    }

    fn sweep(&mut self, now: Instant) {
        self.deny.retain(|_, until| *until > now);
        if matches!(self.not_before, Some((_, Some(until))) if until <= now) {
            self.not_before = None;
        }
        if self.banned(now).is_none() {
            self.ban = None;
        }
        self.sessions.retain(|_, s| s.lapsed(now).is_none());
        self.ended.retain(|_, (_, until)| *until > now);
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
            return Verdict::Valid;
        };
        if let Some(until) = subject.banned(now) {
            return Verdict::Revoked(RevocationReason::Banned { until });
        }
        if matches!(subject.deny.get(&*req.token_id), Some(until) if *until > now) {
            return Verdict::Revoked(RevocationReason::TokenRevoked);
        }
        if let Some((mark, keep)) = subject.not_before {
            let alive = keep.is_none_or(|until| until > now);
            if alive && req.issued_at.is_none_or(|iat| iat <= mark) {
                return Verdict::Revoked(RevocationReason::LoggedOutEverywhere);
            }
        }
        if let Some(sid) = req.session_id.as_deref() {
            let live = subject
                .sessions
                .get(sid)
                .is_some_and(|s| s.lapsed(now).is_none());
            if !live {
                let lapsed = subject.sessions.contains_key(sid);
                let why = subject
                    .ended_reason(sid, now)
                    .unwrap_or(SessionEnd::Unknown);
                if lapsed {
                    // Keep telling later requests why, as after a kick.
                    subject
                        .ended
                        .insert(sid.to_owned(), (why, now + req.marker_ttl));
                }
                return Verdict::Revoked(RevocationReason::SessionEnded(why));
            }
            let session = subject.sessions.get_mut(sid).expect("checked live above");
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

fn unix_secs_after(d: Duration) -> u64 {
    (unix_millis() + d.as_millis() as u64) / 1000
}

impl RevocationStore for MemoryStore {
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
        ready(self.check_now(request))
    }

    /// The verdict is there at once.
    fn bounds_check_time(&self) -> bool {
        true
    }

    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.write(subject, |s, now| {
            let until = now + ttl;
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
            let keep = keep_for.map(|d| now + d);
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
                until: duration.map(|d| (now + d, unix_secs_after(d))),
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

    fn create_session(&self, new: NewSession) -> StoreFuture<'_, CreateOutcome> {
        let outcome = self.write(&new.subject, |s, now| {
            if let Some(until) = s.banned(now) {
                return CreateOutcome::Banned { until };
            }
            s.prune(now, new.markers);
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
            let newest = s.sessions.values().map(|x| x.created_at + 1).max();
            let created_at = unix_millis().max(newest.unwrap_or(0));
            let end = now + new.lifetime;
            s.sessions.insert(
                new.session_id.clone(),
                Session {
                    device: new.device.clone(),
                    created_at,
                    last_seen_at: created_at,
                    last_touch: now,
                    idle_deadline: (now + new.idle_timeout).min(end),
                    end,
                    idle_timeout: new.idle_timeout,
                    generation: 0,
                    refresh_hash: new.refresh_hash.clone(),
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
            let live = s
                .sessions
                .get(&rotation.session_id)
                .is_some_and(|sess| sess.lapsed(now).is_none());
            if !live {
                let why = s
                    .ended_reason(&rotation.session_id, now)
                    .unwrap_or(SessionEnd::Unknown);
                return RotateOutcome::SessionEnded(why);
            }
            let session = s
                .sessions
                .get_mut(&rotation.session_id)
                .expect("checked live above");
            if rotation.generation < session.generation {
                s.end(
                    &rotation.session_id,
                    SessionEnd::RefreshReuse,
                    now,
                    rotation.markers,
                );
                return RotateOutcome::Reused;
            }
            let matches = rotation.generation == session.generation
                && crate::util::constant_time_eq(
                    rotation.presented_hash.as_bytes(),
                    session.refresh_hash.as_bytes(),
                );
            if !matches {
                return RotateOutcome::Invalid;
            }
            session.generation += 1;
            session.refresh_hash = rotation.new_hash.clone();
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
        let until = Instant::now() + ttl;
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
}
