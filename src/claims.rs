//! What a handler gets: the typed claims and the registered claims of a
//! verified token ([RFC 7519 §4.1](https://www.rfc-editor.org/rfc/rfc7519#section-4.1)).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer, Serialize};

use crate::layer::Config;

/// The registered claims of a verified token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `sub`: the subject.
    pub sub: Option<String>,
    /// `jti`: the token id.
    pub jti: Option<String>,
    /// `sid`: the session id (tokens issued by [`Sessions`](crate::Sessions)).
    pub sid: Option<String>,
    /// `iat`: issued at, unix seconds.
    pub iat: Option<u64>,
    /// `exp`: expires at, unix seconds.
    pub exp: Option<u64>,
    /// `nbf`: not before, unix seconds.
    pub nbf: Option<u64>,
    /// `iss`: the issuer.
    pub iss: Option<String>,
    /// `aud`: the audiences (a single string becomes one element).
    pub aud: Vec<String>,
    /// The granted scopes: RFC 9068's space-separated `scope`, or `scp`
    /// (a list or a string, as Entra ID and Okta send it).
    pub scope: Vec<String>,
    /// `client_id` (RFC 9068): the OAuth client the token was issued to.
    pub client_id: Option<String>,
    /// `cnf.jkt` (RFC 9449): the thumbprint of the key the token is bound
    /// to, when it is DPoP-bound. A `cnf` of another confirmation method
    /// (no `jkt`) reads as `Some("")`, a binding no proof matches: such a
    /// token is refused, never taken as a bearer token.
    pub jkt: Option<String>,
}

/// The claims of a verified token as the layer puts them into the request's
/// extensions: the application's typed claims `C` and the registered claims.
///
/// With axum, take it with the [`Claims`] extractor (or this type itself);
/// without axum, read it with `req.extensions().get::<Authenticated<C>>()`.
/// The claims type must be `Clone` for the extractors, and must be the very
/// type of the [`JwtAuth<C>`](crate::JwtAuth) that ran.
#[derive(Clone)]
pub struct Authenticated<C> {
    /// The application's typed claims.
    pub claims: C,
    /// The registered claims (sub, jti, sid, iat, exp, nbf, iss, aud).
    pub registered: RegisteredClaims,
    /// The hex SHA-256 of the token when it has no `jti` (and a store needs
    /// an id); empty otherwise.
    pub(crate) token_id: String,
    /// The header's `alg`.
    pub(crate) alg: Algorithm,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// The configuration of the layer that accepted the token, so that a
    /// role guard renders its rejections the way that layer does.
    pub(crate) layer: Option<Arc<Config>>,
    /// For a token of a remote issuer: the subject as the store knows it
    /// (see [`Authenticated::store_subject`]).
    pub(crate) remote_subject: Option<String>,
}

impl<C: fmt::Debug> fmt::Debug for Authenticated<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("claims", &self.claims)
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

impl<C> Authenticated<C> {
    /// The id revocation uses: `jti`, or the hex SHA-256 of the token.
    pub fn token_id(&self) -> &str {
        self.registered.jti.as_deref().unwrap_or(&self.token_id)
    }

    /// The subject (`sub`), empty when the token has none.
    pub fn subject(&self) -> &str {
        self.registered.sub.as_deref().unwrap_or("")
    }

    /// The subject as the revocation store knows it: `sub` for a token of
    /// the layer's own keys, and `NUL iss NUL sub` for a token of a remote
    /// issuer, so that the same `sub` at two issuers never shares a deny
    /// list, a "log out everywhere" mark or a ban (see
    /// [`JwtAuth::store_subject`](crate::JwtAuth::store_subject)).
    pub fn store_subject(&self) -> &str {
        self.remote_subject
            .as_deref()
            .unwrap_or_else(|| self.subject())
    }

    /// Whether the token comes from a remote issuer (keys from its JWKS).
    pub fn is_remote(&self) -> bool {
        self.remote_subject.is_some()
    }

    /// The session id (`sid`), for session-bound tokens. For a token of a
    /// remote issuer it names the provider's session, never one of ours: the
    /// store does not look it up.
    pub fn session_id(&self) -> Option<&str> {
        self.registered.sid.as_deref()
    }

    /// The algorithm the token was signed with (header `alg`).
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Whether the token grants `scope` (see [`RegisteredClaims::scope`]).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.registered.scope.iter().any(|s| s == scope)
    }

    /// The key id the token named (header `kid`), if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// Put into a request's extensions by a [`JwtAuth`](crate::JwtAuth) that
/// let it through without a token ([`optional`](crate::JwtAuth::optional)):
/// the extractors answer `None` then, and a role guard 401.
#[derive(Clone)]
pub(crate) struct Anonymous(pub(crate) Arc<Config>);

/// Extractor for the typed claims of the request's verified token.
///
/// `C` must be `Clone` and must be the claims type of the
/// [`JwtAuth<C>`](crate::JwtAuth) that runs on the route: without one, the
/// extractor (and `Option<Claims<C>>` too) rejects with a 500 whose message
/// names both types ([`ClaimsRejection`]). Behind an
/// [`optional`](crate::JwtAuth::optional) layer, `Option<Claims<C>>` is
/// `None` for a request without a token, and `Claims<C>` answers 401.
///
/// # Example
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_jwt_auth::{Claims, JwtAuth, Keys};
///
/// #[derive(Clone, serde::Deserialize)]
/// struct MyClaims { sub: String }
///
/// async fn me(Claims(c): Claims<MyClaims>) -> String { c.sub }
///
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap());
/// let app: Router = Router::new().route("/me", get(me)).layer(auth);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims<C>(pub C);

/// Deserialized registered claims, borrowed from the payload where possible.
/// (`Audience` doubles as "a string or a list of strings" for `scope`/`scp`.)
#[derive(Deserialize)]
pub(crate) struct RawRegistered<'a> {
    #[serde(borrow, default)]
    pub(crate) sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) jti: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) sid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) aud: Option<Audience<'a>>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) iat: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) nbf: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) scope: Option<Audience<'a>>,
    #[serde(borrow, default)]
    pub(crate) scp: Option<Audience<'a>>,
    #[serde(borrow, default)]
    pub(crate) client_id: Option<Cow<'a, str>>,
    /// `events` is there, whatever its value: a security event token
    /// (RFC 8417), never an access token.
    #[serde(default, deserialize_with = "crate::verify::present")]
    pub(crate) events: bool,
    #[serde(borrow, default)]
    pub(crate) cnf: Option<Confirmation<'a>>,
}

/// The `cnf` claim (RFC 7800): only `jkt` (RFC 9449) is read.
#[derive(Deserialize)]
pub(crate) struct Confirmation<'a> {
    #[serde(borrow, default)]
    pub(crate) jkt: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    pub(crate) fn contains_any(&self, wanted: &[String]) -> bool {
        match self {
            Audience::One(a) => wanted.iter().any(|w| w == a),
            Audience::Many(list) => list.iter().any(|a| wanted.iter().any(|w| w == a)),
        }
    }

    /// The whitespace-separated words of every string (for `scope`/`scp`).
    fn words(&self) -> impl Iterator<Item = &str> {
        let list = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(list) => list.as_slice(),
        };
        list.iter().flat_map(|s| s.split_whitespace())
    }

    fn into_vec(self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.into_owned()],
            Audience::Many(list) => list.into_iter().map(Cow::into_owned).collect(),
        }
    }
}

impl RawRegistered<'_> {
    pub(crate) fn into_owned(self) -> RegisteredClaims {
        RegisteredClaims {
            sub: self.sub.map(Cow::into_owned),
            jti: self.jti.map(Cow::into_owned),
            sid: self.sid.map(Cow::into_owned),
            iat: self.iat,
            exp: self.exp,
            nbf: self.nbf,
            iss: self.iss.map(Cow::into_owned),
            aud: self.aud.map(Audience::into_vec).unwrap_or_default(),
            scope: self
                .scope
                .iter()
                .chain(&self.scp)
                .flat_map(Audience::words)
                .map(str::to_owned)
                .collect(),
            client_id: self.client_id.map(Cow::into_owned),
            jkt: self
                .cnf
                .map(|cnf| cnf.jkt.map(Cow::into_owned).unwrap_or_default()),
        }
    }
}

/// A NumericDate: an integer or a fraction of seconds since the epoch;
/// fractions are truncated, negative or non-finite values are refused.
pub(crate) fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(u64),
        Float(f64),
    }
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(Num::Int(n)) => Ok(Some(n)),
        Some(Num::Float(f)) if (0.0..1e15).contains(&f) => Ok(Some(f as u64)),
        Some(Num::Float(_)) => Err(serde::de::Error::custom("invalid NumericDate")),
    }
}

/// The claims types of every [`JwtAuth`](crate::JwtAuth) built in this
/// process, to name them when an extractor asks for another one.
static CLAIMS_TYPES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn register_claims_type<C>() {
    let name = std::any::type_name::<C>();
    let mut types = CLAIMS_TYPES.lock().unwrap_or_else(|e| e.into_inner());
    if !types.contains(&name) {
        types.push(name);
    }
}

/// Why no claims of the wanted type are in a request, logged once per type.
#[cfg(feature = "axum")]
pub(crate) fn missing_claims_message<C>() -> String {
    static LOGGED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let wanted = std::any::type_name::<C>();
    let layers = CLAIMS_TYPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|t| format!("JwtAuth<{t}>"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!(
        "no verified claims of type `{wanted}` in this request. Is `JwtAuth<{wanted}>` applied \
         to this route? Claims<C> and Authenticated<C> must name the claims type of the \
         JwtAuth that runs (built in this process: {})",
        if layers.is_empty() { "none" } else { &layers }
    );
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if !logged.contains(&wanted) {
        logged.push(wanted);
        tracing::error!("{message}");
    }
    message
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use http::StatusCode;

    use std::sync::Arc;

    use super::{missing_claims_message, Anonymous, Authenticated, Claims};
    use crate::error::AuthError;
    use crate::layer::Config;

    /// Rejection of [`Claims`] and [`Authenticated`] (and of their `Option`).
    ///
    /// - No [`JwtAuth`](crate::JwtAuth) of the same claims type ran: a
    ///   configuration error, answered with 500. The message names the wanted
    ///   type and the claims types of the layers built in this process, and
    ///   is logged once per type.
    /// - An [`optional`](crate::JwtAuth::optional) layer let the request
    ///   through without a token, and the handler requires claims: 401, as
    ///   that layer renders it.
    pub struct ClaimsRejection {
        kind: Kind,
    }

    enum Kind {
        Misconfigured(String),
        Anonymous(Arc<Config>),
    }

    impl ClaimsRejection {
        fn misconfigured<C>() -> Self {
            Self {
                kind: Kind::Misconfigured(missing_claims_message::<C>()),
            }
        }

        /// Whether this is the configuration error (500) rather than a
        /// request without a token (401).
        pub fn is_misconfigured(&self) -> bool {
            matches!(self.kind, Kind::Misconfigured(_))
        }
    }

    impl std::fmt::Debug for ClaimsRejection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("ClaimsRejection")
                .field(&self.to_string())
                .finish()
        }
    }

    impl std::fmt::Display for ClaimsRejection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match &self.kind {
                Kind::Misconfigured(message) => f.write_str(message),
                Kind::Anonymous(_) => f.write_str("authentication required"),
            }
        }
    }

    impl std::error::Error for ClaimsRejection {}

    impl IntoResponse for ClaimsRejection {
        fn into_response(self) -> Response {
            match self.kind {
                Kind::Misconfigured(message) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
                }
                Kind::Anonymous(layer) => layer.render(&AuthError::authentication_required()),
            }
        }
    }

    /// The request's claims of type `C`: `Ok(Some)`, or what to answer
    /// when a handler requires them and they are not there.
    fn find<C: Clone + Send + Sync + 'static>(
        parts: &Parts,
    ) -> Result<Result<&Authenticated<C>, ClaimsRejection>, ClaimsRejection> {
        match parts.extensions.get::<Authenticated<C>>() {
            Some(auth) => Ok(Ok(auth)),
            None => match parts.extensions.get::<Anonymous>() {
                Some(Anonymous(layer)) => Ok(Err(ClaimsRejection {
                    kind: Kind::Anonymous(layer.clone()),
                })),
                None => Err(ClaimsRejection::misconfigured::<C>()),
            },
        }
    }

    impl<S, C> FromRequestParts<S> for Claims<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = ClaimsRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            find::<C>(parts)?.map(|a| Claims(a.claims.clone()))
        }
    }

    impl<S, C> OptionalFromRequestParts<S> for Claims<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = ClaimsRejection;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(find::<C>(parts)?.ok().map(|a| Claims(a.claims.clone())))
        }
    }

    impl<S, C> FromRequestParts<S> for Authenticated<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = ClaimsRejection;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            find::<C>(parts)?.cloned()
        }
    }

    impl<S, C> OptionalFromRequestParts<S> for Authenticated<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = ClaimsRejection;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(find::<C>(parts)?.ok().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::ClaimsRejection;
