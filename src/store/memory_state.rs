//! The state of a [`MemoryStore`](super::MemoryStore): per subject, its
//! deny entries, not-before mark, ban, sessions and markers of ended
//! sessions, with the rules that keep them (expiry, the marker cap, sweeps).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::{
    capped_millis, SessionEnd, SessionInfo, ENDED_MARKERS_PER_SUBJECT, KEPT_HASH_HEX, MAX_KEEP,
};
use crate::util::unix_millis;

#[derive(Default)]
pub(super) struct State {
    pub(super) subjects: HashMap<String, Subject>,
    pub(super) one_time: HashMap<(String, String), (String, Instant)>,
    /// Single-use ids by (scope, SHA-256 of the id): kept until.
    pub(super) used: HashMap<(String, String), Instant>,
    /// Ended provider sessions by (issuer, sid): kept until.
    pub(super) provider_sessions: HashMap<(String, String), Instant>,
    pub(super) writes: u32,
}

#[derive(Default)]
pub(super) struct Subject {
    pub(super) deny: HashMap<String, Instant>,
    pub(super) not_before: Option<(u64, Option<Instant>)>,
    pub(super) ban: Option<Ban>,
    pub(super) sessions: HashMap<String, Session>,
    pub(super) ended: HashMap<String, (SessionEnd, Instant)>,
}

pub(super) struct Ban {
    pub(super) until: Option<(Instant, u64)>,
}

pub(super) struct Session {
    pub(super) device: String,
    pub(super) created_at: u64,
    pub(super) last_seen_at: u64,
    pub(super) last_touch: Instant,
    pub(super) idle_deadline: Instant,
    pub(super) end: Instant,
    pub(super) idle_timeout: Duration,
    pub(super) generation: u64,
    pub(super) refresh_hash: String,
    /// The kept prefixes of the hashes of the last (at most
    /// [`REFRESH_REUSE_WINDOW`](super::REFRESH_REUSE_WINDOW)) generations before `generation`, oldest
    /// first: the last one is `generation - 1`'s.
    pub(super) earlier: VecDeque<[u8; KEPT_HASH_HEX]>,
    /// How long the marker of this session is kept when it is found lapsed
    /// by a sweep (its login's [`NewSession::markers`]).
    pub(super) markers: Duration,
}

/// `now + d`, with `d` capped at [`MAX_KEEP`] (and, should the clock not
/// reach that far, as far as it reaches): never panics.
pub(super) fn after(now: Instant, d: Duration) -> Instant {
    let mut d = d.min(MAX_KEEP);
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

/// The kept part of a refresh hash (its first [`KEPT_HASH_HEX`] bytes).
pub(super) fn kept_hash(hash: &str) -> [u8; KEPT_HASH_HEX] {
    let mut kept = [0; KEPT_HASH_HEX];
    let bytes = &hash.as_bytes()[..hash.len().min(KEPT_HASH_HEX)];
    kept[..bytes.len()].copy_from_slice(bytes);
    kept
}

impl Session {
    pub(super) fn expires_at(&self, now: Instant) -> u64 {
        let deadline = self.idle_deadline.min(self.end);
        unix_millis().saturating_add(capped_millis(deadline.saturating_duration_since(now)))
    }

    pub(super) fn info(&self, id: &str, now: Instant) -> SessionInfo {
        SessionInfo {
            session_id: id.to_owned(),
            device: self.device.clone(),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at(now),
        }
    }

    /// Why it is over at `now`, if it is.
    pub(super) fn lapsed(&self, now: Instant) -> Option<SessionEnd> {
        if now >= self.end {
            Some(SessionEnd::Expired)
        } else if now >= self.idle_deadline {
            Some(SessionEnd::IdleTimeout)
        } else {
            None
        }
    }

    pub(super) fn touch(&mut self, now: Instant) {
        self.last_touch = now;
        self.last_seen_at = unix_millis();
        self.idle_deadline = after(now, self.idle_timeout).min(self.end);
    }

    /// The kept hash prefix of an earlier `generation`, if it is one of the
    /// last [`REFRESH_REUSE_WINDOW`] before the current one.
    pub(super) fn earlier_hash(&self, generation: u64) -> Option<&[u8; KEPT_HASH_HEX]> {
        // `back` is 1 for the generation just before the current one.
        let back = self.generation.checked_sub(generation).filter(|b| *b > 0)?;
        let back = usize::try_from(back).ok()?;
        self.earlier.get(self.earlier.len().checked_sub(back)?)
    }
}

impl Subject {
    pub(super) fn banned(&self, now: Instant) -> Option<Option<u64>> {
        match &self.ban {
            Some(Ban { until: None }) => Some(None),
            Some(Ban {
                until: Some((deadline, unix)),
            }) if *deadline > now => Some(Some(*unix)),
            _ => None,
        }
    }

    /// Leave the marker of an ended session until `until`, keeping at most
    /// [`ENDED_MARKERS_PER_SUBJECT`]: beyond it, expired markers go, then
    /// the ones that expire first. A token of a session without a marker is
    /// refused all the same ([`SessionEnd::Unknown`]).
    pub(super) fn mark_ended(&mut self, id: &str, why: SessionEnd, until: Instant, now: Instant) {
        if until <= now {
            self.ended.remove(id);
            return;
        }
        if !self.ended.contains_key(id) && self.ended.len() >= ENDED_MARKERS_PER_SUBJECT {
            self.ended.retain(|_, (_, until)| *until > now);
            while self.ended.len() >= ENDED_MARKERS_PER_SUBJECT {
                let first = self
                    .ended
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(id, _)| id.clone());
                match first {
                    Some(first) => self.ended.remove(&first),
                    None => break,
                };
            }
        }
        self.ended.insert(id.to_owned(), (why, until));
    }

    /// Move lapsed sessions to the ended markers, each kept as long as its
    /// login asked for.
    pub(super) fn prune(&mut self, now: Instant) {
        let lapsed: Vec<(String, SessionEnd, Duration)> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| s.lapsed(now).map(|why| (id.clone(), why, s.markers)))
            .collect();
        for (id, why, markers) in lapsed {
            self.sessions.remove(&id);
            self.mark_ended(&id, why, after(now, markers), now);
        }
    }

    pub(super) fn end(
        &mut self,
        id: &str,
        why: SessionEnd,
        now: Instant,
        markers: Duration,
    ) -> bool {
        match self.sessions.remove(id) {
            Some(session) => {
                let why = session.lapsed(now).unwrap_or(why);
                self.mark_ended(id, why, after(now, markers), now);
                true
            }
            None => false,
        }
    }

    pub(super) fn end_all(&mut self, why: SessionEnd, now: Instant, markers: Duration) -> usize {
        self.prune(now);
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in &ids {
            self.end(id, why, now, markers);
        }
        ids.len()
    }

    /// `None` while the session is live; otherwise why it is not. A session
    /// found lapsed is moved to a marker kept for `markers`.
    pub(super) fn gone(&mut self, id: &str, now: Instant, markers: Duration) -> Option<SessionEnd> {
        if let Some(session) = self.sessions.get(id) {
            let why = session.lapsed(now)?;
            self.sessions.remove(id);
            self.mark_ended(id, why, after(now, markers), now);
            return Some(why);
        }
        Some(match self.ended.get(id) {
            Some((why, until)) if *until > now => *why,
            _ => SessionEnd::Unknown,
        })
    }

    pub(super) fn is_empty(&self, now: Instant) -> bool {
        self.deny.is_empty()
            && self.not_before.is_none()
            && self.banned(now).is_none()
            && self.sessions.is_empty()
            && self.ended.is_empty()
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        self.deny.retain(|_, until| *until > now);
        if matches!(self.not_before, Some((_, Some(until))) if until <= now) {
            self.not_before = None;
        }
        if self.banned(now).is_none() {
            self.ban = None;
        }
        self.ended.retain(|_, (_, until)| *until > now);
        // Lapsed sessions leave their markers (a token of theirs must keep
        // telling why, and is refused once the marker is gone too).
        self.prune(now);
    }
}
