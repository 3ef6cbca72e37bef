//! Issuing tokens and controlling sessions: login with device limits,
//! refresh rotation with reuse detection, kick-out, bans, one-time tokens.
//!
//! Every operation is atomic in the store (one Lua script on Redis), so
//! concurrent logins never exceed a device limit and two concurrent refreshes
//! of one token cannot both win.
//!
//! Refresh tokens have the form `<base64url(subject)>.<session id>.<generation>.<secret>`;
//! only the SHA-256 of the secret is stored (and, for reuse detection, a
//! 128-bit prefix of it for the last
//! [`REFRESH_REUSE_WINDOW`](crate::store::REFRESH_REUSE_WINDOW) generations).
//! One-time tokens are 256 random bits; only their SHA-256 is stored.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::audit::{AuditEvent, SessionEvent};
use crate::claims::Authenticated;
use crate::layer::{JwtAuth, SignError};
use crate::store::{
    CreateOutcome, NewSession, RevocationStore, RotateOutcome, Rotation, SessionEnd, SessionInfo,
    SessionStore, StoreError,
};
use crate::util::{random_token, sha256_hex, unix_millis};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The subject is banned; `until` in unix seconds, `None` until lifted.
    #[error("subject is banned")]
    Banned {
        /// End of the ban.
        until: Option<u64>,
    },
    /// The device limit is reached and new logins are refused.
    #[error("session limit reached")]
    LimitReached,
    /// The refresh token is malformed or does not match its session.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// An already used refresh token was presented again: the session was ended.
    #[error("refresh token reused: session ended")]
    RefreshReused,
    /// The session has ended.
    #[error("session ended: {}", .0.code())]
    SessionEnded(SessionEnd),
    /// The one-time token is unknown, expired, or already used.
    #[error("invalid or used one-time token")]
    InvalidOneTimeToken,
    /// This `JwtAuth` cannot issue tokens (no signing key), has no store,
    /// or its store keeps no sessions ([`RevocationStore::sessions`]).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// The claims could not be serialized, or signing failed.
    #[error("token issuance failed: {0}")]
    Issue(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A signed access token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("jti", &self.jti)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The result of a login or a refresh: an access token, a refresh token and the session.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The access token (with `sid`).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token (present it to [`Sessions::refresh`]).
    pub refresh_token: String,
    /// The session id.
    pub session_id: String,
    /// Sessions this login ended (device limit or same device).
    pub replaced: Vec<String>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .field("replaced", &self.replaced)
            .finish()
    }
}

/// A rotated refresh token, see [`Sessions::refresh`].
#[derive(Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// The subject of the session.
    pub subject: String,
    /// The session id.
    pub session_id: String,
    /// The new refresh token; the presented one is spent.
    pub refresh_token: String,
}

impl fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refreshed")
            .field("subject", &self.subject)
            .field("session_id", &self.session_id)
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}

/// Session control for one [`JwtAuth`]: from [`JwtAuth::sessions`].
///
/// Tokens are signed with the layer's signing key and carry its first issuer
/// and audience, so what is issued here always verifies there.
///
/// # Example
///
/// ```
/// use tower_jwt_auth::{JwtAuth, Keys, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// #[derive(Clone, serde::Deserialize)]
/// struct MyClaims { roles: Vec<String> }
///
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
///     .audience("api")
///     .store(MemoryStore::new())
///     .max_sessions(3);
/// let sessions = auth.sessions();
///
/// let login = sessions
///     .login("alice", "web", &serde_json::json!({ "roles": ["user"] }))
///     .await
///     .unwrap();
/// assert!(auth.verify(&login.access_token).is_ok());
///
/// let refreshed = sessions.refresh(&login.refresh_token).await.unwrap();
/// // The old refresh token is spent: presenting it again ends the session.
/// assert!(sessions.refresh(&login.refresh_token).await.is_err());
/// assert!(sessions.list("alice").await.unwrap().is_empty());
/// # let _ = refreshed;
/// # }
/// ```
pub struct Sessions<C> {
    auth: JwtAuth<C>,
}

impl<C> Clone for Sessions<C> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
        }
    }
}

impl<C> fmt::Debug for Sessions<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("settings", self.auth.config().sessions())
            .finish()
    }
}

impl<C> JwtAuth<C> {
    /// The session-management handle: login, refresh, logout, kick, ban, list.
    pub fn sessions(&self) -> Sessions<C> {
        Sessions { auth: self.clone() }
    }
}

pub(crate) fn parse_refresh(token: &str) -> Option<(String, &str, u64, &str)> {
    if token.len() > 2048 {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(sub), Some(sid), Some(generation), Some(secret), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let subject = String::from_utf8(B64.decode(sub).ok()?).ok()?;
    // Plain decimal digits only (`parse` would take a `+`), at most those
    // of `u64::MAX`: one spelling per generation.
    if generation.is_empty()
        || generation.len() > 20
        || !generation.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let generation = generation.parse().ok()?;
    if sid.is_empty() || secret.is_empty() {
        return None;
    }
    Some((subject, sid, generation, secret))
}

fn make_refresh(subject: &str, sid: &str, generation: u64, secret: &str) -> String {
    format!("{}.{sid}.{generation}.{secret}", B64.encode(subject))
}

impl<C> Sessions<C> {
    fn store(&self) -> Result<&dyn RevocationStore, SessionError> {
        match self.auth.config().store() {
            Some(store) => Ok(store.as_ref()),
            None => Err(SessionError::NotConfigured("no revocation store")),
        }
    }

    /// The store's sessions: logins, refresh tokens, one-time tokens.
    fn session_store(&self) -> Result<&dyn SessionStore, SessionError> {
        self.store()?
            .sessions()
            .ok_or(SessionError::NotConfigured("the store has no sessions"))
    }

    /// Count and deliver an audit event (never waits).
    fn audit(&self, event: AuditEvent) {
        self.auth.config().audit_event(event);
    }

    fn markers(&self) -> Duration {
        self.auth.config().marker_ttl()
    }

    /// Sign an access token for `subject` with the application's `claims`
    /// (any serializable object; its fields are merged with the registered
    /// claims `sub`, `jti`, `iat`, `exp`, `iss`, `aud`, and `sid` when given).
    ///
    /// # Errors
    ///
    /// [`SessionError::NotConfigured`] without a signing key,
    /// [`SessionError::Issue`] when `claims` is not a JSON object.
    pub fn issue_with_session(
        &self,
        subject: &str,
        session_id: Option<&str>,
        claims: &impl Serialize,
    ) -> Result<IssuedToken, SessionError> {
        let config = self.auth.config();
        let object = match serde_json::to_value(claims) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(serde_json::Value::Null) => serde_json::Map::new(),
            Ok(_) => {
                return Err(SessionError::Issue(
                    "claims must serialize to a JSON object".into(),
                ))
            }
            Err(e) => return Err(SessionError::Issue(e.to_string())),
        };
        let iat = unix_millis() / 1000;
        let ttl = config.sessions().access_ttl.as_secs();
        let minted = config
            .mint(subject, session_id, (iat, iat.saturating_add(ttl)), object)
            .map_err(|e| match e {
                SignError::NoSigningKey => SessionError::NotConfigured("no signing key"),
                SignError::Failed(e) => SessionError::Issue(e.to_string()),
            })?;
        Ok(IssuedToken {
            token: minted.token,
            jti: minted.jti,
            expires_in: ttl,
        })
    }

    /// Sign a token without a session (stateless: revocable by id, subject or ban).
    ///
    /// # Errors
    ///
    /// See [`issue_with_session`](Self::issue_with_session).
    pub fn issue(
        &self,
        subject: &str,
        claims: &impl Serialize,
    ) -> Result<IssuedToken, SessionError> {
        self.issue_with_session(subject, None, claims)
    }

    /// Log `subject` in on `device`: register a session (enforcing the device
    /// limit atomically) and return an access token bound to it and a refresh token.
    ///
    /// # Errors
    ///
    /// [`SessionError::Banned`], [`SessionError::LimitReached`] (with
    /// [`LimitPolicy::RejectNew`](crate::LimitPolicy::RejectNew)), or a store or configuration error.
    pub async fn login(
        &self,
        subject: &str,
        device: &str,
        claims: &impl Serialize,
    ) -> Result<Login, SessionError> {
        let store = self.session_store()?;
        if !self.auth.config().can_sign() {
            return Err(SessionError::NotConfigured("no signing key"));
        }
        let settings = self.auth.config().sessions();
        let session_id = random_token(16);
        let secret = random_token(32);
        let outcome = store
            .create_session(NewSession {
                subject: subject.to_owned(),
                session_id: session_id.clone(),
                device: device.to_owned(),
                refresh_hash: sha256_hex(secret.as_bytes()),
                max_sessions: settings.max_sessions,
                limit_policy: settings.limit_policy,
                replace_same_device: settings.one_per_device,
                idle_timeout: settings.idle_timeout,
                lifetime: settings.lifetime,
                markers: self.markers(),
            })
            .await?;
        let replaced = match outcome {
            CreateOutcome::Created { replaced } => replaced,
            CreateOutcome::Banned { until } => return Err(SessionError::Banned { until }),
            CreateOutcome::LimitReached => {
                let event = AuditEvent::new(SessionEvent::RejectedLogin, subject);
                self.audit(event.device(device).reason("session_limit"));
                return Err(SessionError::LimitReached);
            }
        };
        let access = self.issue_with_session(subject, Some(&session_id), claims)?;
        let event = AuditEvent::new(SessionEvent::Login, subject).session(&session_id);
        self.audit(event.device(device));
        for old in &replaced {
            let event = AuditEvent::new(SessionEvent::Replaced, subject).session(old);
            self.audit(event.reason(format!("new_session:{session_id}")));
        }
        Ok(Login {
            access_token: access.token,
            expires_in: access.expires_in,
            refresh_token: make_refresh(subject, &session_id, 0, &secret),
            session_id,
            replaced,
        })
    }

    /// Rotate a refresh token: the presented one is spent, a new one is
    /// returned, and the session's idle deadline moves forward. Issue the new
    /// access token with [`issue_with_session`](Self::issue_with_session) and
    /// the subject's current claims (or use [`refresh_with`](Self::refresh_with)).
    ///
    /// # Errors
    ///
    /// [`SessionError::RefreshReused`] when an already rotated token is
    /// presented again (the session is ended: theft detection);
    /// [`SessionError::SessionEnded`] for a session that is over;
    /// [`SessionError::InvalidRefreshToken`] for anything else.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Refreshed, SessionError> {
        let store = self.session_store()?;
        let (subject, session_id, generation, secret) =
            parse_refresh(refresh_token).ok_or(SessionError::InvalidRefreshToken)?;
        let new_secret = random_token(32);
        let outcome = store
            .rotate_refresh(Rotation {
                subject: subject.clone(),
                session_id: session_id.to_owned(),
                generation,
                presented_hash: sha256_hex(secret.as_bytes()),
                new_hash: sha256_hex(new_secret.as_bytes()),
                idle_timeout: self.auth.config().sessions().idle_timeout,
                markers: self.markers(),
            })
            .await?;
        let event = |event| AuditEvent::new(event, &subject).session(session_id);
        match &outcome {
            RotateOutcome::Rotated { .. } => self.audit(event(SessionEvent::Refresh)),
            RotateOutcome::Reused => self.audit(event(SessionEvent::RefreshReuse)),
            RotateOutcome::SessionEnded(SessionEnd::IdleTimeout) => {
                self.audit(event(SessionEvent::IdleTimeout))
            }
            _ => {}
        }
        match outcome {
            RotateOutcome::Rotated { generation } => Ok(Refreshed {
                refresh_token: make_refresh(&subject, session_id, generation, &new_secret),
                subject,
                session_id: session_id.to_owned(),
            }),
            RotateOutcome::Reused => {
                tracing::warn!(subject = %subject, session = %session_id, "refresh token reused: session ended");
                Err(SessionError::RefreshReused)
            }
            RotateOutcome::SessionEnded(end) => Err(SessionError::SessionEnded(end)),
            RotateOutcome::Invalid => Err(SessionError::InvalidRefreshToken),
        }
    }

    /// [`refresh`](Self::refresh), then issue the access token with `claims`.
    ///
    /// # Errors
    ///
    /// As [`refresh`](Self::refresh) and [`issue_with_session`](Self::issue_with_session).
    pub async fn refresh_with(
        &self,
        refresh_token: &str,
        claims: &impl Serialize,
    ) -> Result<Login, SessionError> {
        let refreshed = self.refresh(refresh_token).await?;
        let access =
            self.issue_with_session(&refreshed.subject, Some(&refreshed.session_id), claims)?;
        Ok(Login {
            access_token: access.token,
            expires_in: access.expires_in,
            refresh_token: refreshed.refresh_token,
            session_id: refreshed.session_id,
            replaced: Vec::new(),
        })
    }

    /// Log out the caller: revoke this token and end its session (if any).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn logout(&self, auth: &Authenticated<C>) -> Result<(), SessionError> {
        let store = self.store()?;
        // A remote issuer's `sid` names its session, not one of ours.
        if let (Some(sid), Some(sessions), false) =
            (auth.session_id(), store.sessions(), auth.is_remote())
        {
            sessions
                .end_session(
                    auth.store_subject(),
                    sid,
                    SessionEnd::LoggedOut,
                    self.markers(),
                )
                .await?;
        }
        self.auth
            .revoke_token_id(auth.store_subject(), auth.token_id(), auth.registered.exp)
            .await?;
        let mut event = AuditEvent::new(SessionEvent::Logout, auth.store_subject());
        if let (Some(sid), false) = (auth.session_id(), auth.is_remote()) {
            event = event.session(sid);
        }
        self.audit(event);
        Ok(())
    }

    /// Log `subject` out everywhere: every token issued up to now is revoked
    /// and every session ends.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn logout_all(&self, subject: &str) -> Result<(), SessionError> {
        self.store()?;
        self.auth.revoke_subject(subject).await?;
        self.audit(AuditEvent::new(SessionEvent::LogoutAll, subject));
        Ok(())
    }

    /// End one session of `subject` (administrative kick-out). Returns whether it was live.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn kick(&self, subject: &str, session_id: &str) -> Result<bool, SessionError> {
        let live = self
            .session_store()?
            .end_session(subject, session_id, SessionEnd::Kicked, self.markers())
            .await?;
        if live {
            self.audit(AuditEvent::new(SessionEvent::Kicked, subject).session(session_id));
        }
        Ok(live)
    }

    /// End every session of `subject` ("one-click kick-out"). Returns how many.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn kick_all(&self, subject: &str) -> Result<usize, SessionError> {
        let ended = self
            .session_store()?
            .end_all_sessions(subject, SessionEnd::Kicked, self.markers())
            .await?;
        if ended > 0 {
            let event = AuditEvent::new(SessionEvent::Kicked, subject);
            self.audit(event.reason(format!("all_sessions:{ended}")));
        }
        Ok(ended)
    }

    /// The live sessions of `subject`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn list(&self, subject: &str) -> Result<Vec<SessionInfo>, SessionError> {
        Ok(self.session_store()?.list_sessions(subject).await?)
    }

    /// Ban `subject` for `duration` (`None`: until lifted): every token is
    /// rejected, every session ends, logins are refused.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn ban(&self, subject: &str, duration: Option<Duration>) -> Result<(), SessionError> {
        self.store()?.ban(subject, duration, self.markers()).await?;
        let reason = match duration {
            Some(d) => format!("for_seconds:{}", d.as_secs()),
            None => "until_lifted".to_owned(),
        };
        self.audit(AuditEvent::new(SessionEvent::Banned, subject).reason(reason));
        Ok(())
    }

    /// Lift a ban. Returns whether one was in force.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn unban(&self, subject: &str) -> Result<bool, SessionError> {
        let lifted = self.store()?.unban(subject).await?;
        if lifted {
            self.audit(AuditEvent::new(SessionEvent::Unbanned, subject));
        }
        Ok(lifted)
    }

    /// Issue a single-use token for `purpose` (e.g. `"password-reset"`) that
    /// holds `subject` for `ttl`. Only its hash is stored.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn one_time_token(
        &self,
        purpose: &str,
        subject: &str,
        ttl: Duration,
    ) -> Result<String, SessionError> {
        let token = random_token(32);
        self.session_store()?
            .put_one_time(purpose, &sha256_hex(token.as_bytes()), subject, ttl)
            .await?;
        Ok(token)
    }

    /// Consume a single-use token: the first caller gets the subject; a second
    /// consumption, even a concurrent one, fails.
    ///
    /// # Errors
    ///
    /// [`SessionError::InvalidOneTimeToken`] when unknown, expired or used.
    pub async fn consume_one_time_token(
        &self,
        purpose: &str,
        token: &str,
    ) -> Result<String, SessionError> {
        if token.len() > 256 {
            return Err(SessionError::InvalidOneTimeToken);
        }
        self.session_store()?
            .take_one_time(purpose, &sha256_hex(token.as_bytes()))
            .await?
            .ok_or(SessionError::InvalidOneTimeToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_any_subject() {
        for subject in ["alice", "a.b:c{d}", "ünï cødé", ""] {
            let token = make_refresh(subject, "sid1", 7, "secret");
            assert_eq!(
                parse_refresh(&token),
                Some((subject.to_owned(), "sid1", 7, "secret"))
            );
        }
        assert_eq!(parse_refresh("a.b.c"), None);
        assert_eq!(parse_refresh("YQ.sid.x.secret"), None);
        assert_eq!(parse_refresh("YQ.sid.1.secret.extra"), None);
        for generation in [
            "+1",
            "-1",
            " 1",
            "1 ",
            "",
            "18446744073709551616",
            "0x1",
            "1e3",
        ] {
            let token = format!("YQ.sid.{generation}.secret");
            assert_eq!(parse_refresh(&token), None, "{generation:?}");
        }
        assert_eq!(
            parse_refresh("YQ.sid.18446744073709551615.secret"),
            Some(("a".to_owned(), "sid", u64::MAX, "secret"))
        );
    }
}
