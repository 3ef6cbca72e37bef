//! What a handler gets: the typed claims and the registered claims of a
//! verified token ([RFC 7519 §4.1](https://www.rfc-editor.org/rfc/rfc7519#section-4.1)).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

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
}

/// The claims of a verified token as the layer puts them into the request's
/// extensions: the application's typed claims `C` and the registered claims.
///
/// With axum, take it with the [`Claims`] extractor (or this type itself);
/// without axum, read it with `req.extensions().get::<Authenticated<C>>()`.
#[derive(Clone)]
pub struct Authenticated<C> {
    /// The application's typed claims.
    pub claims: C,
    /// The registered claims (sub, jti, sid, iat, exp, nbf, iss, aud).
    pub registered: RegisteredClaims,
    /// The hex SHA-256 of the token when it has no `jti` (and a store needs
    /// an id); empty otherwise.
    pub(crate) token_id: String,
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

    /// The session id (`sid`), for session-bound tokens.
    pub fn session_id(&self) -> Option<&str> {
        self.registered.sid.as_deref()
    }
}

/// Extractor for the typed claims of the request's verified token.
///
/// Rejects with 500 and "Is `JwtAuth` applied to this route?" when the layer
/// did not run. `Option<Claims<C>>` is `None` instead (for routes behind
/// [`JwtAuth::optional`](crate::JwtAuth::optional)).
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
        }
    }
}

/// A NumericDate: an integer or a fraction of seconds since the epoch;
/// fractions are truncated, negative or non-finite values are refused.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
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

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use http::StatusCode;

    use super::{Authenticated, Claims};

    /// Rejection of [`Claims`] and [`Authenticated`] when the layer did not run.
    #[derive(Debug, Clone, Copy, Default)]
    #[non_exhaustive]
    pub struct MissingAuthLayer;

    impl std::fmt::Display for MissingAuthLayer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "missing authenticated claims for this claims type. Is `JwtAuth` applied to this route?",
            )
        }
    }

    impl std::error::Error for MissingAuthLayer {}

    impl IntoResponse for MissingAuthLayer {
        fn into_response(self) -> Response {
            tracing::error!("{self}");
            (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
        }
    }

    impl<S, C> FromRequestParts<S> for Claims<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = MissingAuthLayer;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Authenticated<C>>()
                .map(|a| Claims(a.claims.clone()))
                .ok_or(MissingAuthLayer)
        }
    }

    impl<S, C> OptionalFromRequestParts<S> for Claims<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts
                .extensions
                .get::<Authenticated<C>>()
                .map(|a| Claims(a.claims.clone())))
        }
    }

    impl<S, C> FromRequestParts<S> for Authenticated<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = MissingAuthLayer;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<Authenticated<C>>()
                .cloned()
                .ok_or(MissingAuthLayer)
        }
    }

    impl<S, C> OptionalFromRequestParts<S> for Authenticated<C>
    where
        S: Send + Sync,
        C: Clone + Send + Sync + 'static,
    {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Authenticated<C>>().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use extract::MissingAuthLayer;
