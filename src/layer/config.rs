//! The configuration every clone of a [`JwtAuth`](crate::JwtAuth) shares,
//! and what the other modules (sessions, the role guard, the test kit) ask
//! of it, through methods only.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use http::Response;

use crate::error::AuthError;
use crate::keys::Keys;
use crate::source::TokenSource;
use crate::store::hints::{hints_of, CheckHints};
use crate::store::{LimitPolicy, RevocationStore};
use crate::verify::{RegisteredClaim, Rules};

use super::breaker::{Breaker, Counters};

/// A response body of any type, told apart again by downcasting when the
/// service knows its own body type.
pub(super) type AnyBody = Box<dyn Any + Send>;
pub(super) type ErrorHandler = Arc<dyn Fn(&AuthError) -> Response<AnyBody> + Send + Sync>;

/// How long a store keeps an entry that must never wear off (a deny entry of
/// a token without `exp`): 100 years, the longest a ban can be.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What the layer does when the revocation store cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailureMode {
    /// Reject with 503 and `Retry-After` (the default).
    #[default]
    Closed,
    /// Accept the (verified) token, log a warning and count it.
    Open,
}

/// Session settings used by [`Sessions`](crate::Sessions) and the check.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    pub(crate) max_sessions: u32,
    pub(crate) limit_policy: LimitPolicy,
    pub(crate) one_per_device: bool,
    pub(crate) idle_timeout: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) touch_interval: Option<Duration>,
    pub(crate) access_ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            max_sessions: 0,
            limit_policy: LimitPolicy::EvictOldest,
            one_per_device: false,
            idle_timeout: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(30 * 24 * 3600),
            touch_interval: None,
            access_ttl: Duration::from_secs(15 * 60),
        }
    }
}

impl SessionSettings {
    /// At most a quarter of the idle timeout, so a session in use never lapses.
    pub(crate) fn touch_interval(&self) -> Duration {
        let quarter = self.idle_timeout / 4;
        self.touch_interval.map_or(quarter, |t| t.min(quarter))
    }
}

/// The configuration shared by every clone (not generic over the claims type).
#[derive(Clone)]
pub(crate) struct Config {
    pub(super) keys: Keys,
    pub(super) rules: Rules,
    pub(super) sources: Vec<TokenSource>,
    pub(super) realm: String,
    pub(super) optional: bool,
    pub(super) store: Option<Arc<dyn RevocationStore>>,
    /// The store's speed hints, found once when it is set
    /// ([`set_store`](Self::set_store)): `None` for a store of the user's.
    pub(super) hints: Option<Arc<dyn CheckHints>>,
    pub(super) deadline: Duration,
    pub(super) failure_mode: FailureMode,
    pub(super) breaker: Arc<Breaker>,
    pub(super) counters: Arc<Counters>,
    pub(super) error_handler: Option<ErrorHandler>,
    pub(super) sessions: SessionSettings,
    pub(super) max_token_lifetime: Duration,
    /// Metric handles (none until `JwtAuth::metrics`).
    pub(crate) metrics: crate::metrics::Metrics,
    /// Where audit events go.
    pub(crate) audit: crate::audit::Audit,
    /// Identity providers whose tokens are accepted beside our own.
    #[cfg(feature = "remote-keys")]
    pub(super) remote: Vec<super::issuers::RemoteIssuer>,
    /// DPoP settings (RFC 9449; bound tokens are always held to them).
    pub(super) dpop: crate::dpop::Dpop,
    /// Verified tokens, renewed by every change ([`renew_token_cache`](Self::renew_token_cache)).
    pub(super) token_cache: super::token_cache::TokenCacheSlot,
}

impl Config {
    /// The defaults of [`JwtAuth::new`](crate::JwtAuth::new).
    pub(super) fn new(keys: Keys) -> Self {
        let mut config = Self {
            keys,
            rules: Rules::default(),
            sources: vec![TokenSource::Bearer],
            realm: "api".to_owned(),
            optional: false,
            store: None,
            hints: None,
            deadline: Duration::from_millis(100),
            failure_mode: FailureMode::Closed,
            breaker: Arc::new(Breaker::new(5, Duration::from_secs(1))),
            counters: Arc::default(),
            error_handler: None,
            sessions: SessionSettings::default(),
            max_token_lifetime: Duration::from_secs(24 * 3600),
            metrics: Default::default(),
            audit: Default::default(),
            #[cfg(feature = "remote-keys")]
            remote: Vec::new(),
            dpop: crate::dpop::Dpop::new(),
            token_cache: Default::default(),
        };
        config.sync_max_lifetime();
        config.renew_token_cache();
        config
    }
}

/// Why [`Config::mint`] failed.
#[derive(Debug)]
pub(crate) enum SignError {
    NoSigningKey,
    Failed(jsonwebtoken::errors::Error),
}

/// A token [`Config::mint`] signed, and its `jti`.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(crate) token: String,
    pub(crate) jti: String,
}

impl Config {
    /// The rejection response for `err`: the error handler's, when its body
    /// is the service's body type (or a `String`), else the default one.
    pub(crate) fn render<B: From<String> + 'static>(&self, err: &AuthError) -> Response<B> {
        let mut response = match &self.error_handler {
            Some(handler) => {
                let (parts, body) = handler(err).into_parts();
                match body.downcast::<B>() {
                    Ok(body) => Response::from_parts(parts, *body),
                    Err(body) => match body.downcast::<String>() {
                        Ok(body) => Response::from_parts(parts, B::from(*body)),
                        Err(_) => {
                            tracing::error!(
                                body = std::any::type_name::<B>(),
                                "JwtAuth error handler: its response body is neither the \
                                 service's body type nor a String; the default response is sent"
                            );
                            err.to_response(&self.realm).map(B::from)
                        }
                    },
                }
            }
            None => err.to_response(&self.realm).map(B::from),
        };
        response.extensions_mut().insert(err.clone());
        response
    }

    /// Sign a token for `subject`: the application's `claims` merged with
    /// the registered claims (`sub`, a fresh `jti`, `iat`, `exp`, `sid` when
    /// given, `iss` and `aud` from the configuration), with the configured
    /// signing key, `kid` and `typ`. The one place tokens are signed
    /// ([`Sessions`](crate::Sessions) and the test kit).
    pub(crate) fn mint(
        &self,
        subject: &str,
        session_id: Option<&str>,
        (iat, exp): (u64, u64),
        mut claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Minted, SignError> {
        let sign = self.keys.sign.as_ref().ok_or(SignError::NoSigningKey)?;
        let jti = crate::util::random_token(16);
        claims.insert("sub".into(), subject.into());
        claims.insert("jti".into(), jti.as_str().into());
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        if let Some(sid) = session_id {
            claims.insert("sid".into(), sid.into());
        }
        if let Some(iss) = self.rules.issuers.first() {
            claims.insert("iss".into(), iss.as_str().into());
        }
        if let Some(aud) = self.rules.audiences.first() {
            claims.insert("aud".into(), aud.as_str().into());
        }
        let mut header = jsonwebtoken::Header::new(sign.algorithm);
        header.kid = sign.kid.clone();
        header.typ = Some(self.rules.typ.clone().unwrap_or_else(|| "JWT".to_owned()));
        let token = jsonwebtoken::encode(&header, &claims, &sign.key).map_err(SignError::Failed)?;
        Ok(Minted { token, jti })
    }

    /// The request's token, from the configured sources (size-checked).
    pub(super) fn token_in<'h>(
        &self,
        headers: &'h http::HeaderMap,
    ) -> Result<Option<&'h str>, AuthError> {
        crate::source::extract(headers, &self.sources, self.rules.max_token_len)
    }

    /// The issuer of the tokens this layer signs, if one is set.
    pub(crate) fn first_issuer(&self) -> Option<&str> {
        self.rules.issuers.first().map(String::as_str)
    }

    /// A request let through unchecked (fail open): counted for `stats()`
    /// and the metrics alike.
    pub(super) fn count_failed_open(&self) {
        self.counters.failed_open();
        self.metrics.failed_open();
    }

    /// Whether tokens can be signed.
    pub(crate) fn can_sign(&self) -> bool {
        self.keys.can_sign()
    }

    /// Check tokens against `store`, and find its speed hints.
    pub(super) fn set_store(&mut self, store: Arc<dyn RevocationStore>) {
        self.hints = hints_of(store.as_ref());
        self.store = Some(store);
    }

    /// The store, if one is configured.
    pub(crate) fn store(&self) -> Option<&Arc<dyn RevocationStore>> {
        self.store.as_ref()
    }

    /// The session settings.
    pub(crate) fn sessions(&self) -> &SessionSettings {
        &self.sessions
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat`.
    pub(crate) fn leeway(&self) -> Duration {
        Duration::from_secs(self.rules.leeway)
    }

    /// The longest lifetime any accepted token can have.
    pub(crate) fn max_lifetime(&self) -> Duration {
        self.max_token_lifetime.max(self.sessions.access_ttl)
    }

    /// Keep the verifier's lifetime bound in step with the two settings it
    /// derives from.
    pub(super) fn sync_max_lifetime(&mut self) {
        self.rules.max_lifetime = self.max_lifetime().as_secs();
    }

    /// How long a deny entry for a token with this `exp` must live: until
    /// `exp` plus the leeway (`None`: already past, nothing to keep). Never
    /// longer than any token the verifier accepts can live, and, for a token
    /// without `exp` (accepted only when `exp` is not required), for as long as
    /// a store keeps anything ([`FOREVER`]).
    pub(crate) fn deny_ttl(&self, exp: Option<u64>, now_ms: u64) -> Option<Duration> {
        let Some(exp) = exp else {
            return Some(FOREVER);
        };
        let until_ms = exp.saturating_add(self.rules.leeway).saturating_mul(1000);
        let left = until_ms.checked_sub(now_ms).filter(|&ms| ms > 0)?;
        // An accepted token has exp <= iat + max_lifetime and iat <= now + leeway.
        let longest = self.max_lifetime() + self.leeway() * 2;
        Some(Duration::from_millis(left).min(longest))
    }

    /// How long session-end markers are kept: as long as an access token of the
    /// ended session can still be presented.
    pub(crate) fn marker_ttl(&self) -> Duration {
        self.sessions.access_ttl + self.leeway()
    }

    /// How long a not-before mark must be kept (`None`: for ever, when tokens
    /// without `exp` are accepted).
    pub(crate) fn not_before_ttl(&self) -> Option<Duration> {
        self.rules
            .required
            .contains(&RegisteredClaim::Exp)
            .then(|| self.max_lifetime() + self.leeway())
    }
}
