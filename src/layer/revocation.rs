//! The [RFC 7009](https://www.rfc-editor.org/rfc/rfc7009) token revocation
//! endpoint: an authenticated client posts a token it wants revoked; an
//! access token (ours or a remote issuer's) goes on the deny list, a
//! refresh token ends its session.

use std::fmt;

use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::de::IgnoredAny;

use crate::error::ErrorKind;
use crate::form::{decode, is_form, Form};
use crate::store::{RotateOutcome, Rotation, SessionEnd, StoreError};
use crate::util::{constant_time_eq, random_token, sha256, sha256_hex};

use super::backchannel::json_response;
use super::signer::Signer;
use super::JwtAuth;

/// The revocation endpoint of a [`JwtAuth`] (RFC 7009), for the clients
/// configured on it: get it with [`JwtAuth::token_revocation`]; cheap to
/// clone.
///
/// - Client authentication is HTTP Basic with a configured id and secret,
///   compared in constant time; without it, or wrong: 401
///   `invalid_client` with a `WWW-Authenticate: Basic` challenge.
/// - `token` missing: 400 `invalid_request`.
/// - Otherwise 200, also for a token that is unknown, expired or malformed
///   (nothing tells a caller whether a token was good). An access token of
///   the layer's keys or of a remote issuer goes on the deny list until it
///   expires; a refresh token of [`Sessions`](crate::Sessions) ends its
///   session, so its access tokens are refused too. The
///   `token_type_hint` only chooses what is tried first: a wrong one still
///   finds the token.
/// - When the store (or the token issuer's key set) cannot record the
///   revocation: 503 with `Retry-After`, never a 200 for a revocation that
///   did not happen.
///
/// Every configured client may revoke any token: the clients are trusted
/// parties of this service (tokens carry no binding to one of them).
///
/// # Example
///
/// ```
/// use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
/// use tower_jwt_auth::{JwtAuth, Keys, MemoryStore};
///
/// # #[derive(Clone, serde::Deserialize)] struct MyClaims {}
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
///     .store(MemoryStore::new());
/// let revocation = auth.token_revocation("web-app", "its client secret");
/// let endpoint = revocation.clone();
/// let app: Router = Router::new().route(
///     "/revoke",
///     post(move |headers: HeaderMap, body: Bytes| {
///         let revocation = endpoint.clone();
///         async move { revocation.handle(&headers, &body).await }
///     }),
/// );
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
/// // Without client authentication: 401 with a Basic challenge.
/// let res = revocation.handle(&headers, b"token=anything").await;
/// assert_eq!(res.status(), 401);
/// assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
/// // With it ("web-app:its client secret", form-encoded): 200, whatever the token.
/// headers.insert("authorization", "Basic d2ViLWFwcDppdHMrY2xpZW50K3NlY3JldA==".parse().unwrap());
/// let res = revocation.handle(&headers, b"token=anything").await;
/// assert_eq!(res.status(), 200);
/// # });
/// ```
pub struct TokenRevocation<C> {
    auth: JwtAuth<C>,
    /// SHA-256 of each client's id and secret: compared in constant time,
    /// whatever the lengths presented.
    clients: Vec<([u8; 32], [u8; 32])>,
}

impl<C> Clone for TokenRevocation<C> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            clients: self.clients.clone(),
        }
    }
}

impl<C> fmt::Debug for TokenRevocation<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRevocation")
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl<C> JwtAuth<C> {
    /// The RFC 7009 revocation endpoint of this layer, for one client (add
    /// more with [`TokenRevocation::client`]). Needs a store.
    pub fn token_revocation(
        &self,
        client_id: impl AsRef<str>,
        client_secret: impl AsRef<str>,
    ) -> TokenRevocation<C> {
        TokenRevocation {
            auth: self.clone(),
            clients: Vec::new(),
        }
        .client(client_id, client_secret)
    }
}

/// What a revocation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked {
    /// An access token, now on the deny list.
    AccessToken,
    /// A refresh token: its session ended.
    RefreshToken,
    /// Nothing to revoke: unknown, expired, malformed, already over.
    Nothing,
}

impl<C> TokenRevocation<C> {
    /// Accept this client too.
    #[must_use]
    pub fn client(mut self, client_id: impl AsRef<str>, client_secret: impl AsRef<str>) -> Self {
        self.clients.push((
            sha256(client_id.as_ref().as_bytes()),
            sha256(client_secret.as_ref().as_bytes()),
        ));
        self
    }

    /// Whether a request's `Authorization: Basic` header names one of our
    /// clients with its secret (RFC 6749 §2.3.1: both form-encoded).
    pub fn authenticate(&self, headers: &HeaderMap) -> bool {
        use base64::Engine;
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(encoded) = value.to_str().ok().and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        }) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (Ok(id), Ok(secret)) = (decode(&decoded[..colon]), decode(&decoded[colon + 1..]))
        else {
            return false;
        };
        let (id, secret) = (sha256(id.as_bytes()), sha256(secret.as_bytes()));
        // Every client is compared, the first match does not end the loop.
        self.clients.iter().fold(false, |found, (i, s)| {
            found | (constant_time_eq(i, &id) & constant_time_eq(s, &secret))
        })
    }

    /// Revoke `token` (after the client was authenticated), an access or a
    /// refresh token, whatever `hint` says.
    ///
    /// # Errors
    ///
    /// When the store (or none is set), or the key set of the token's
    /// issuer, cannot answer: the revocation did not happen.
    pub async fn revoke(&self, token: &str, hint: Option<&str>) -> Result<Revoked, StoreError> {
        let refresh_first = hint == Some("refresh_token");
        if refresh_first && self.revoke_refresh(token).await? {
            return Ok(Revoked::RefreshToken);
        }
        if self.revoke_access(token).await? {
            return Ok(Revoked::AccessToken);
        }
        if !refresh_first && self.revoke_refresh(token).await? {
            return Ok(Revoked::RefreshToken);
        }
        Ok(Revoked::Nothing)
    }

    /// An access token that verifies goes on the deny list.
    async fn revoke_access(&self, token: &str) -> Result<bool, StoreError> {
        let config = &self.auth.config;
        let verified = match Signer::of(config, token).await {
            Ok(signer) => {
                let rules = signer.rules(config);
                signer.verify::<IgnoredAny>(config, token, rules, true)
            }
            Err(e) => Err(e),
        };
        let auth = match verified {
            Ok(auth) => auth,
            Err(e) if e.kind() == ErrorKind::KeysUnavailable => {
                return Err(StoreError::unavailable(e))
            }
            // Not a token of ours, expired, forged: nothing to revoke.
            Err(_) => return Ok(false),
        };
        self.auth
            .revoke_token_id(auth.store_subject(), auth.token_id(), auth.registered.exp)
            .await?;
        Ok(true)
    }

    /// A refresh token of a live session ends it. The store proves the
    /// token first (a rotation): a forged one ends nothing.
    async fn revoke_refresh(&self, token: &str) -> Result<bool, StoreError> {
        let Some((subject, session_id, generation, secret)) = crate::session::parse_refresh(token)
        else {
            return Ok(false);
        };
        let store = self.auth.require_store()?;
        let Some(sessions) = store.sessions() else {
            return Ok(false);
        };
        let config = &self.auth.config;
        let outcome = sessions
            .rotate_refresh(Rotation {
                subject: subject.clone(),
                session_id: session_id.to_owned(),
                generation,
                presented_hash: sha256_hex(secret.as_bytes()),
                // Nobody learns it: the session has no usable refresh token
                // from here on, even if ending it below fails.
                new_hash: sha256_hex(random_token(32).as_bytes()),
                idle_timeout: config.sessions().idle_timeout,
                markers: config.marker_ttl(),
            })
            .await?;
        match outcome {
            RotateOutcome::Rotated { .. } => {
                sessions
                    .end_session(
                        &subject,
                        session_id,
                        SessionEnd::LoggedOut,
                        config.marker_ttl(),
                    )
                    .await?;
                Ok(true)
            }
            // An earlier generation: the store ended the session for reuse.
            RotateOutcome::Reused => Ok(true),
            _ => Ok(false),
        }
    }

    /// The whole endpoint: client authentication, then a `POST` of a form
    /// with `token` and an optional `token_type_hint` (at most
    /// [`MAX_FORM_LEN`](crate::MAX_FORM_LEN) bytes). See
    /// [`TokenRevocation`] for the answers.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response<String> {
        if !self.authenticate(headers) {
            let mut res = error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"revocation\", charset=\"UTF-8\""),
            );
            return res;
        }
        if !is_form(headers) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "expected application/x-www-form-urlencoded",
            );
        }
        let form = match Form::parse(body) {
            Ok(form) => form,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.0),
        };
        let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
            return error(StatusCode::BAD_REQUEST, "invalid_request", "no token");
        };
        match self.revoke(token, form.get("token_type_hint")).await {
            Ok(revoked) => {
                tracing::debug!(?revoked, "token revocation");
                let mut res = Response::new(String::new());
                res.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                );
                res
            }
            Err(e) => {
                tracing::warn!(error = %e, "token revocation not recorded: answering 503");
                let mut res = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the revocation cannot be recorded now",
                );
                res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(1));
                res
            }
        }
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Response<String> {
    let body = serde_json::json!({ "error": code, "error_description": description });
    json_response(status, body.to_string())
}
