//! The receiver of [OpenID Connect Back-Channel Logout
//! 1.0](https://openid.net/specs/openid-connect-backchannel-1_0.html): an
//! identity provider posts a signed logout token when a user's session
//! there ends, and every token of that session (or of that user) is
//! refused from then on, on every instance that shares the store.

use std::fmt;
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Deserialize;

use crate::error::{AuthError, ErrorKind};
use crate::form::{is_form, Form};
use crate::store::{SessionEnd, StoreError};
use crate::verify::RegisteredClaim;

use super::signer::Signer;
use super::JwtAuth;

/// The member of a logout token's `events` claim that makes it one.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token (`iat`) may be by default: 5 minutes.
pub const DEFAULT_LOGOUT_MAX_AGE: Duration = Duration::from_secs(300);

/// The receiver of back-channel logouts of a [`JwtAuth`]'s issuers: the
/// layer's own keys (its [`issuer`](JwtAuth::issuer)) and its
/// [remote issuers](JwtAuth::remote_issuer). Get it with
/// [`JwtAuth::backchannel_logout`]; cheap to clone.
///
/// A logout token is accepted as the specification's §2.6 says: signed by
/// the keys of its issuer (`iss`, one the layer knows); `aud` contains
/// [our audience](Self::audience); `iat` present and at most
/// [`max_age`](Self::max_age) old; `exp` honoured when present; typed
/// `logout+jwt` when typed at all; an `events` object with the member
/// [`BACKCHANNEL_LOGOUT_EVENT`]; `sub`, `sid` or both; no `nonce`; a `jti`
/// never seen before on any instance (the store's
/// [`first_use`](crate::RevocationStore::first_use)).
///
/// Its effect, for a remote issuer: with a `sid`, that provider session
/// ends (every token of the issuer carrying that `sid` is refused, whatever
/// its subject); with only a `sub`, that issuer's subject is logged out
/// everywhere (its tokens issued up to now), never the same name at
/// another issuer. For the layer's own issuer, `sid` names one of our
/// [sessions](crate::Sessions) (it needs the `sub` too) and `sub` alone
/// logs out our subject.
///
/// # Example
///
/// ```
/// use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
/// use tower_jwt_auth::{JwtAuth, Keys, MemoryStore};
///
/// # #[derive(Clone, serde::Deserialize)] struct MyClaims {}
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
///     .issuer("https://id.example.com")
///     .audience("orders-api")
///     .store(MemoryStore::new());
/// let logout = auth.backchannel_logout();
/// let endpoint = logout.clone();
/// let app: Router = Router::new().route(
///     "/backchannel-logout",
///     post(move |headers: HeaderMap, body: Bytes| {
///         let logout = endpoint.clone();
///         async move { logout.handle(&headers, &body).await }
///     }),
/// );
///
/// // What the route answers to a token that is not a logout token.
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
/// let res = logout.handle(&headers, b"logout_token=e30.e30.e30").await;
/// assert_eq!(res.status(), 400);
/// assert!(res.body().contains("invalid_request"));
/// # });
/// ```
pub struct BackchannelLogout<C> {
    auth: JwtAuth<C>,
    max_age: Duration,
    audiences: Vec<String>,
}

impl<C> Clone for BackchannelLogout<C> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            max_age: self.max_age,
            audiences: self.audiences.clone(),
        }
    }
}

impl<C> fmt::Debug for BackchannelLogout<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogout")
            .field("max_age", &self.max_age)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl<C> JwtAuth<C> {
    /// The receiver of back-channel logouts for this layer's issuers (see
    /// [`BackchannelLogout`]). Needs a store.
    pub fn backchannel_logout(&self) -> BackchannelLogout<C> {
        BackchannelLogout {
            auth: self.clone(),
            max_age: DEFAULT_LOGOUT_MAX_AGE,
            audiences: Vec::new(),
        }
    }
}

/// A verified logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutToken {
    /// `iss`.
    pub issuer: String,
    /// `sub`, if given.
    pub subject: Option<String>,
    /// `sid`, if given.
    pub session_id: Option<String>,
    /// `jti`.
    pub jti: String,
    /// `iat`, unix seconds.
    pub issued_at: u64,
    /// Whether a remote issuer signed it (else the layer's own keys).
    pub remote: bool,
}

/// What a back-channel logout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogoutEffect {
    /// A remote issuer's session (`sid`): its tokens are refused.
    ProviderSessionEnded,
    /// One of our own sessions (`sub` and `sid` of the layer's issuer).
    SessionEnded,
    /// Every token of the subject (`sub` alone) issued up to now.
    SubjectLoggedOut,
}

/// Why a back-channel logout was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutError {
    /// The request is not a form with one `logout_token`.
    #[error("bad logout request: {0}")]
    BadRequest(&'static str),
    /// The logout token is not valid (see [`AuthError::kind`]).
    #[error("invalid logout token: {0}")]
    Invalid(#[source] AuthError),
    /// Its `jti` was seen before.
    #[error("logout token replayed")]
    Replayed,
    /// Its issuer's keys cannot be had now.
    #[error("logout token issuer's keys unavailable")]
    KeysUnavailable(#[source] AuthError),
    /// The store failed (or none is set): nothing was logged out.
    #[error("logout not recorded: {0}")]
    Store(#[from] StoreError),
}

impl LogoutError {
    /// 400 for a request to refuse, 503 when the logout could not be
    /// recorded now.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::KeysUnavailable(_) | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response the specification asks for (§2.8): 400 with a JSON
    /// `error` (`invalid_request`) and `error_description`, or 503 with
    /// `Retry-After` (`temporarily_unavailable`), never cached.
    pub fn to_response(&self) -> Response<String> {
        let (code, description) = match self {
            Self::BadRequest(why) => ("invalid_request", (*why).to_owned()),
            Self::Invalid(e) => ("invalid_request", e.description().to_owned()),
            Self::Replayed => ("invalid_request", "logout token replayed".to_owned()),
            Self::KeysUnavailable(_) | Self::Store(_) => (
                "temporarily_unavailable",
                "the logout cannot be recorded now".to_owned(),
            ),
        };
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut res = json_response(self.status(), body.to_string());
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            let after = match self {
                Self::KeysUnavailable(e) => e.retry_after().unwrap_or(1),
                _ => 1,
            };
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(after));
        }
        res
    }
}

/// A response with a JSON body, never cached.
pub(super) fn json_response(status: StatusCode, body: String) -> Response<String> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The claims of a logout token besides the registered ones.
#[derive(Deserialize)]
struct LogoutClaims {
    #[serde(default)]
    events: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "crate::verify::present")]
    nonce: bool,
}

fn invalid(description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::InvalidClaims, description)
}

impl<C> BackchannelLogout<C> {
    /// Accept logout tokens issued at most this long ago (`iat`, plus the
    /// layer's leeway); default [`DEFAULT_LOGOUT_MAX_AGE`]. Their `jti`s are
    /// remembered as long.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Accept logout tokens whose `aud` contains this (our client id at the
    /// identity provider); call again to accept several. Without one, the
    /// audiences of the token's issuer apply (a remote issuer's own, else
    /// the layer's); with none at all, every logout token is refused.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Verify a logout token of the layer's own keys (§2.6), without the
    /// replay check and without any effect: for tests, and the fuzzer.
    ///
    /// # Errors
    ///
    /// Why it is not a valid logout token.
    pub fn verify_local(&self, token: &str) -> Result<LogoutToken, AuthError> {
        self.validate(token, &Signer::Local)
    }

    fn validate(&self, token: &str, signer: &Signer) -> Result<LogoutToken, AuthError> {
        let config = &self.auth.config;
        let mut rules = signer.rules(config).clone();
        rules.logout = true;
        rules.typ = None;
        if !self.audiences.is_empty() {
            rules.audiences.clone_from(&self.audiences);
        }
        if rules.issuers.is_empty() || rules.audiences.is_empty() {
            // Without both, "iss known" and "aud contains ours" cannot hold.
            return Err(AuthError::new(
                ErrorKind::WrongIssuer,
                "no issuer and audience configured for logout tokens",
            ));
        }
        use RegisteredClaim::{Aud, Exp, Iat, Iss, Jti};
        // `exp` is honoured when present (Back-Channel Logout 1.0 drafts
        // had none, and OPs still omit it): `iat` bounds the token's age.
        rules.required.retain(|claim| *claim != Exp);
        for claim in [Iss, Aud, Iat, Jti] {
            if !rules.required.contains(&claim) {
                rules.required.push(claim);
            }
        }
        let auth = signer.verify::<LogoutClaims>(config, token, &rules, false)?;
        let reg = &auth.registered;
        let event = auth
            .claims
            .events
            .as_ref()
            .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT));
        if !event.is_some_and(serde_json::Value::is_object) {
            return Err(invalid("logout token has no back-channel logout event"));
        }
        if auth.claims.nonce {
            return Err(invalid("a logout token carries no nonce"));
        }
        let non_empty =
            |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
        let (subject, session_id) = (non_empty(&reg.sub), non_empty(&reg.sid));
        if subject.is_none() && session_id.is_none() {
            return Err(invalid("logout token has neither sub nor sid"));
        }
        let jti = non_empty(&reg.jti).ok_or_else(|| invalid("logout token has an empty jti"))?;
        let issued_at = reg.iat.unwrap_or(0);
        let now = crate::util::unix_millis() / 1000;
        let oldest = self.max_age.as_secs().saturating_add(rules.leeway);
        if now.saturating_sub(issued_at) > oldest {
            return Err(AuthError::new(ErrorKind::Expired, "logout token too old"));
        }
        if !signer.is_remote() && session_id.is_some() && subject.is_none() {
            // Our own sessions are kept under their subject.
            return Err(invalid(
                "a logout token of our own issuer with a sid needs its sub",
            ));
        }
        Ok(LogoutToken {
            issuer: reg.iss.clone().unwrap_or_default(),
            subject,
            session_id,
            jti,
            issued_at,
            remote: signer.is_remote(),
        })
    }

    /// Verify a logout token, refuse a replay, and log out what it names
    /// (see [`BackchannelLogout`]).
    ///
    /// # Errors
    ///
    /// [`LogoutError`]: an invalid or replayed token, or a store or key
    /// set that cannot answer (nothing was logged out; a retry of the same
    /// token is refused as a replay once its `jti` was recorded, so the
    /// effect is attempted right after, on the store that just answered).
    pub async fn logout(&self, token: &str) -> Result<(LogoutToken, LogoutEffect), LogoutError> {
        let config = &self.auth.config;
        let store = self.auth.require_store()?;
        let signer = Signer::of(config, token)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::KeysUnavailable => LogoutError::KeysUnavailable(e),
                _ => LogoutError::Invalid(e),
            })?;
        let logout = self
            .validate(token, &signer)
            .map_err(LogoutError::Invalid)?;
        // Every token accepted now is refused for as long as it could be
        // accepted again: iat within the leeway either side of the window.
        let remember = self.max_age + 2 * config.leeway();
        let id = format!("{}\0{}", logout.issuer, logout.jti);
        if !store.first_use("logout", &id, remember).await? {
            tracing::warn!(issuer = %logout.issuer, "back-channel logout token replayed");
            return Err(LogoutError::Replayed);
        }
        let effect = match (&signer, &logout.subject, &logout.session_id) {
            (Signer::Local, Some(sub), Some(sid)) => {
                let sessions = store
                    .sessions()
                    .ok_or(StoreError::Unsupported("sessions"))?;
                sessions
                    .end_session(sub, sid, SessionEnd::LoggedOut, config.marker_ttl())
                    .await?;
                LogoutEffect::SessionEnded
            }
            (_, _, Some(sid)) => {
                let keep = config.max_lifetime() + config.leeway();
                store
                    .end_provider_session(&logout.issuer, sid, keep)
                    .await?;
                LogoutEffect::ProviderSessionEnded
            }
            (_, Some(sub), None) => {
                let subject = match &signer {
                    Signer::Local => sub.clone(),
                    #[cfg(feature = "remote-keys")]
                    Signer::Remote(index, _) => config.remote_store_subject(*index, sub),
                };
                self.auth.revoke_subject(&subject).await?;
                LogoutEffect::SubjectLoggedOut
            }
            (_, None, None) => {
                return Err(LogoutError::Invalid(invalid(
                    "logout token has neither sub nor sid",
                )))
            }
        };
        tracing::info!(issuer = %logout.issuer, effect = ?effect, "back-channel logout");
        Ok((logout, effect))
    }

    /// The whole endpoint: a `POST` of a form with one `logout_token`
    /// (at most [`MAX_FORM_LEN`](crate::MAX_FORM_LEN) bytes). Answers 200
    /// with `Cache-Control: no-store` when the logout is done, else
    /// [`LogoutError::to_response`].
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response<String> {
        let result = async {
            if !is_form(headers) {
                return Err(LogoutError::BadRequest(
                    "expected application/x-www-form-urlencoded",
                ));
            }
            let form = Form::parse(body).map_err(|e| LogoutError::BadRequest(e.0))?;
            let token = form
                .get("logout_token")
                .ok_or(LogoutError::BadRequest("no logout_token"))?;
            self.logout(token).await
        };
        match result.await {
            Ok(_) => {
                let mut res = Response::new(String::new());
                res.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            Err(e) => {
                tracing::debug!(error = %e, "back-channel logout refused");
                e.to_response()
            }
        }
    }
}
