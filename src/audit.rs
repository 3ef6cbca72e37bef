//! Audit events: every session event ([`SessionEvent`]: login, logout, log
//! out everywhere, refresh, refresh-token reuse, kick, ban, unban,
//! replacement by a newer login, refused login, idle timeout) as a typed
//! [`AuditEvent`].
//!
//! By default each event is a `tracing` event (level INFO, WARN for a
//! refresh-token reuse) on the target `tower_jwt_auth::audit`, with the
//! fields `event`, `iss`, `sub`, `sid`, `device` and `reason`. With
//! [`JwtAuth::audit`] the events go to a sink of the application's instead,
//! through a bounded queue read by a thread of their own: the request never
//! waits for the sink, and an event that finds the queue full is dropped and
//! counted ([`JwtAuth::audit_dropped`], and the metric
//! [`AUDIT_DROPPED_TOTAL`](crate::metrics::AUDIT_DROPPED_TOTAL)).
//!
//! An event names a subject, a session and a device, never a token, a
//! refresh token or a secret.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::layer::{Config, JwtAuth};

/// How many events the queue in front of a sink holds.
pub const AUDIT_QUEUE_CAPACITY: usize = 4096;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A login created a session.
    Login,
    /// A session's owner logged out (its token revoked, its session ended).
    Logout,
    /// Every token and session of a subject was revoked.
    LogoutAll,
    /// A refresh token was rotated.
    Refresh,
    /// A spent refresh token was presented again: its session was ended.
    RefreshReuse,
    /// An administrator ended a session (or, without `sid`, every session).
    Kicked,
    /// The subject was banned.
    Banned,
    /// A ban was lifted.
    Unbanned,
    /// A newer login took this session's place (device limit, same device).
    Replaced,
    /// A login was refused: the device limit is reached (reject policy).
    RejectedLogin,
    /// A refresh found its session idle past the idle timeout.
    IdleTimeout,
}

impl SessionEvent {
    /// Every event, in the order of their discriminants.
    pub const ALL: [SessionEvent; 11] = [
        Self::Login,
        Self::Logout,
        Self::LogoutAll,
        Self::Refresh,
        Self::RefreshReuse,
        Self::Kicked,
        Self::Banned,
        Self::Unbanned,
        Self::Replaced,
        Self::RejectedLogin,
        Self::IdleTimeout,
    ];

    /// A stable machine-readable code: `login`, `logout`, `logout_all`,
    /// `refresh`, `refresh_reuse`, `kicked`, `banned`, `unbanned`,
    /// `replaced`, `rejected_login`, `idle_timeout`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Refresh => "refresh",
            Self::RefreshReuse => "refresh_reuse",
            Self::Kicked => "kicked",
            Self::Banned => "banned",
            Self::Unbanned => "unbanned",
            Self::Replaced => "replaced",
            Self::RejectedLogin => "rejected_login",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

impl Serialize for SessionEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// One session event. Serializes (e.g. with `serde_json`) to
/// `{"event","iss","sub","sid","device","reason","time"}`, the absent ones
/// left out; `time` in unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// What happened.
    pub event: SessionEvent,
    /// The issuer of the subject's tokens (the layer's first issuer, or the
    /// remote issuer's).
    #[serde(rename = "iss", skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The subject (`sub`).
    #[serde(rename = "sub")]
    pub subject: String,
    /// The session, when the event is about one.
    #[serde(rename = "sid", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The device of a login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Why, when there is more to say than the event: e.g. `device_limit`
    /// for a replaced session, the ban's end for a ban.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When, in unix milliseconds.
    pub time: u64,
}

impl AuditEvent {
    /// An event about `subject` (a store subject of a remote issuer's user,
    /// `NUL iss NUL sub`, is split into issuer and subject), now.
    pub(crate) fn new(event: SessionEvent, subject: &str) -> Self {
        let (issuer, subject) = match subject.strip_prefix('\0').and_then(|s| s.split_once('\0')) {
            Some((iss, sub)) => (Some(iss.to_owned()), sub.to_owned()),
            None => (None, subject.to_owned()),
        };
        Self {
            event,
            issuer,
            subject,
            session_id: None,
            device: None,
            reason: None,
            time: crate::util::unix_millis(),
        }
    }

    pub(crate) fn session(mut self, sid: &str) -> Self {
        self.session_id = Some(sid.to_owned());
        self
    }

    pub(crate) fn device(mut self, device: &str) -> Self {
        self.device = Some(device.to_owned());
        self
    }

    pub(crate) fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Where audit events go: a closure `Fn(AuditEvent)` is one. It runs on the
/// audit thread, one event after another, never on a request's task.
pub trait AuditSink: Send + Sync + 'static {
    /// Take one event.
    fn record(&self, event: AuditEvent);
}

impl<F: Fn(AuditEvent) + Send + Sync + 'static> AuditSink for F {
    fn record(&self, event: AuditEvent) {
        self(event)
    }
}

/// The delivery of audit events: `tracing` inline, or a sink's queue.
#[derive(Clone, Default)]
pub(crate) struct Audit {
    queue: Option<Arc<Queue>>,
}

struct Queue {
    sender: SyncSender<AuditEvent>,
    dropped: AtomicU64,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("sink", &self.queue.is_some())
            .finish()
    }
}

impl Audit {
    /// A queue of `capacity` events in front of `sink`, read by a thread
    /// that ends when the last clone of the layer is dropped.
    fn to_sink(sink: impl AuditSink, capacity: usize) -> Self {
        let (sender, receiver) = sync_channel::<AuditEvent>(capacity.max(1));
        let spawned = std::thread::Builder::new()
            .name("jwt-auth-audit".into())
            .spawn(move || receiver.into_iter().for_each(|event| sink.record(event)));
        if let Err(err) = spawned {
            tracing::error!(error = %err, "audit thread not started: events go to tracing");
            return Self::default();
        }
        Self {
            queue: Some(Arc::new(Queue {
                sender,
                dropped: AtomicU64::new(0),
            })),
        }
    }
}

impl Config {
    /// Count `event` and deliver it, without waiting.
    pub(crate) fn audit_event(&self, mut event: AuditEvent) {
        self.metrics.session(event.event);
        if event.issuer.is_none() {
            event.issuer = self.first_issuer().map(str::to_owned);
        }
        let Some(queue) = &self.audit.queue else {
            return trace(&event);
        };
        match queue.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                queue.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.audit_dropped();
            }
        }
    }
}

/// The default delivery: one `tracing` event.
fn trace(e: &AuditEvent) {
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: "tower_jwt_auth::audit",
                $level,
                event = e.event.code(),
                iss = e.issuer.as_deref(),
                // As a string value: a subscriber quotes and escapes it.
                sub = e.subject.as_str(),
                sid = e.session_id.as_deref(),
                device = e.device.as_deref(),
                reason = e.reason.as_deref(),
                "session event"
            )
        };
    }
    match e.event {
        SessionEvent::RefreshReuse => emit!(tracing::Level::WARN),
        _ => emit!(tracing::Level::INFO),
    }
}

impl<C> JwtAuth<C> {
    /// Send the audit events to `sink` instead of `tracing`, through a
    /// queue of [`AUDIT_QUEUE_CAPACITY`] events read by a thread of its own:
    /// a session operation never waits for the sink; when the queue is full
    /// the event is dropped and counted ([`audit_dropped`](Self::audit_dropped)).
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use tower_jwt_auth::{AuditEvent, JwtAuth, Keys, MemoryStore, SessionEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let auth = JwtAuth::<serde_json::Value>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
    ///     .store(MemoryStore::new())
    ///     .audit(move |event: AuditEvent| { let _ = tx.lock().unwrap().send(event); });
    ///
    /// let login = auth.sessions().login("alice", "phone", &serde_json::json!({})).await.unwrap();
    /// let event = rx.recv().unwrap();
    /// assert_eq!(event.event, SessionEvent::Login);
    /// assert_eq!(event.subject, "alice");
    /// assert_eq!(event.session_id.as_deref(), Some(login.session_id.as_str()));
    /// # }
    /// ```
    #[must_use]
    pub fn audit(self, sink: impl AuditSink) -> Self {
        let audit = Audit::to_sink(sink, AUDIT_QUEUE_CAPACITY);
        self.configure(|c| c.audit = audit)
    }

    /// Audit events dropped because the sink's queue was full.
    pub fn audit_dropped(&self) -> u64 {
        self.config()
            .audit
            .queue
            .as_ref()
            .map_or(0, |q| q.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditEvent, SessionEvent};

    #[test]
    fn codes_are_distinct_and_discriminants_index_all() {
        for (i, event) in SessionEvent::ALL.into_iter().enumerate() {
            assert_eq!(event as usize, i, "{event:?}");
        }
        let mut codes: Vec<_> = SessionEvent::ALL.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), SessionEvent::ALL.len());
    }

    #[test]
    fn a_remote_store_subject_is_split_into_issuer_and_subject() {
        let e = AuditEvent::new(SessionEvent::LogoutAll, "\0https://id.example\0bob");
        assert_eq!(e.issuer.as_deref(), Some("https://id.example"));
        assert_eq!(e.subject, "bob");
        let e = AuditEvent::new(SessionEvent::Login, "alice").session("s1");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "login");
        assert_eq!(json["sub"], "alice");
        assert_eq!(json["sid"], "s1");
        assert!(json.get("iss").is_none() && json.get("reason").is_none());
    }
}
