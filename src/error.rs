//! Why a request was rejected, and how that becomes a response
//! ([RFC 6750 §3](https://www.rfc-editor.org/rfc/rfc6750#section-3)).
//!
//! | case | status | `WWW-Authenticate` |
//! | --- | --- | --- |
//! | no token, or another scheme | 401 | `Bearer realm="…"` |
//! | malformed bearer header, two tokens, oversized token | 400 | `Bearer error="invalid_request"` |
//! | bad signature, expired, wrong iss/aud, revoked, banned, session ended | 401 | `Bearer error="invalid_token"` |
//! | missing scope or role | 403 | `Bearer error="insufficient_scope"` |
//! | DPoP proof missing or invalid, replayed | 401 | `DPoP error="invalid_dpop_proof", algs="…"` |
//! | bound token as `Bearer`, unbound token as `DPoP` | 401 | `DPoP error="invalid_token", algs="…"` |
//! | store unavailable (fail closed), issuer's keys unavailable | 503 | none; `Retry-After` |
//!
//! The body is `{"error": "...", "error_description": "..."}`, plus `"reason"`
//! (a stable code such as `kicked` or `idle_timeout`) when a token was revoked.

use std::borrow::Cow;
use std::fmt;

use http::{header, HeaderValue, Response, StatusCode};

use crate::store::RevocationReason;

/// What went wrong, for matching in code and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No token in any configured source (or another scheme, e.g. `Basic`).
    MissingToken,
    /// The request carries a token in a form that is not allowed (two
    /// headers, empty bearer, spaces, bad characters).
    InvalidRequest,
    /// The token is larger than the configured limit.
    TokenTooLarge,
    /// Not a well-formed JWS compact token.
    Malformed,
    /// The header's `alg` is not allowed for the selected key (or is unknown, or `none`).
    AlgorithmNotAllowed,
    /// No configured key matches the token's `kid`.
    UnknownKey,
    /// The header lists critical extensions (`crit`) this library does not understand.
    UnsupportedCritical,
    /// The header's `typ` is not the required one.
    WrongType,
    /// The signature does not verify.
    BadSignature,
    /// Past `exp` (plus leeway).
    Expired,
    /// Before `nbf`, or `iat` in the future (beyond the leeway).
    NotYetValid,
    /// `exp - iat` (or `exp - now` without `iat`) is longer than
    /// [`JwtAuth::max_token_lifetime`](crate::JwtAuth::max_token_lifetime).
    LifetimeTooLong,
    /// `iss` missing or not accepted.
    WrongIssuer,
    /// `aud` missing or not accepted.
    WrongAudience,
    /// A required claim is missing.
    MissingClaim,
    /// The claims do not match the application's claims type.
    InvalidClaims,
    /// The application's own validation refused the token.
    Rejected,
    /// The token was revoked.
    Revoked(RevocationReason),
    /// Authenticated, but without the role or scope the route needs.
    InsufficientScope,
    /// The revocation store could not answer (fail closed).
    StoreUnavailable,
    /// The token's issuer's keys cannot be had now (never fetched, or the
    /// fetch fails while the token's `kid` is unknown): the token can be told
    /// neither good nor bad. 503 with `Retry-After`, never a 401.
    KeysUnavailable,
    /// The DPoP proof of a bound token is missing or fails a check of
    /// RFC 9449 §4.3, or was used before: 401 `invalid_dpop_proof`.
    InvalidDpopProof,
    /// A DPoP-bound token (`cnf`) sent without the `DPoP` scheme, or a
    /// token that is not bound sent with it: 401 `invalid_token`.
    DpopBinding,
}

/// A rejected request: the reason, and what the client is told.
///
/// The default response follows RFC 6750; [`JwtAuth::with_error_handler`](crate::JwtAuth::with_error_handler)
/// renders it another way. The rejection response carries the `AuthError` in
/// its extensions, so outer layers and tests can see why.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: ErrorKind,
    description: Cow<'static, str>,
    retry_after: Option<u64>,
    /// The `algs` of a `DPoP` challenge, when the answer challenges with
    /// DPoP (RFC 9449 §7.1) instead of `Bearer`.
    dpop_algs: Option<std::sync::Arc<str>>,
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for AuthError {}

impl AuthError {
    pub(crate) fn new(kind: ErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            retry_after: None,
            dpop_algs: None,
        }
    }

    /// The same error, challenging with `DPoP` and these `algs`.
    pub(crate) fn with_dpop_challenge(mut self, algs: std::sync::Arc<str>) -> Self {
        self.dpop_algs = Some(algs);
        self
    }

    /// Whether the answer challenges with `DPoP` rather than `Bearer`.
    pub fn is_dpop_challenge(&self) -> bool {
        self.dpop_algs.is_some()
    }

    /// A rejection with `invalid_token` (401) and this description, for custom
    /// validation hooks.
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Rejected, description)
    }

    /// A rejection with `insufficient_scope` (403) and this description.
    pub fn insufficient_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InsufficientScope, description)
    }

    /// 401 without an error code: a route that needs a token got none.
    pub(crate) fn authentication_required() -> Self {
        Self::new(ErrorKind::MissingToken, "authentication required")
    }

    pub(crate) fn revoked(reason: RevocationReason) -> Self {
        let description = match reason {
            RevocationReason::TokenRevoked => Cow::Borrowed("token revoked"),
            RevocationReason::LoggedOutEverywhere => {
                Cow::Borrowed("token revoked: logged_out_everywhere")
            }
            RevocationReason::Banned { until: None } => Cow::Borrowed("token revoked: banned"),
            RevocationReason::Banned { until: Some(t) } => {
                Cow::Owned(format!("token revoked: banned until {t}"))
            }
            RevocationReason::SessionEnded(end) => {
                Cow::Owned(format!("session ended: {}", end.code()))
            }
        };
        Self::new(ErrorKind::Revoked(reason), description)
    }

    #[cfg(feature = "remote-keys")]
    pub(crate) fn keys_unavailable(retry_after: u64) -> Self {
        Self {
            kind: ErrorKind::KeysUnavailable,
            description: Cow::Borrowed("the token issuer's keys are temporarily unavailable"),
            retry_after: Some(retry_after.max(1)),
            dpop_algs: None,
        }
    }

    pub(crate) fn store_unavailable(retry_after: u64) -> Self {
        Self {
            kind: ErrorKind::StoreUnavailable,
            description: Cow::Borrowed("authentication temporarily unavailable"),
            retry_after: Some(retry_after.max(1)),
            dpop_algs: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable description sent to the client.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The machine-readable revocation reason (`kicked`, `idle_timeout`, ...), if revoked.
    pub fn reason(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::Revoked(reason) => Some(reason.code()),
            _ => None,
        }
    }

    /// The HTTP status: 400, 401, 403 or 503.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::TokenTooLarge => StatusCode::BAD_REQUEST,
            ErrorKind::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorKind::StoreUnavailable | ErrorKind::KeysUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 error code, `None` for a missing token and a store failure.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::MissingToken | ErrorKind::StoreUnavailable | ErrorKind::KeysUnavailable => {
                None
            }
            ErrorKind::InvalidRequest | ErrorKind::TokenTooLarge => Some("invalid_request"),
            ErrorKind::InsufficientScope => Some("insufficient_scope"),
            ErrorKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            _ => Some("invalid_token"),
        }
    }

    /// Seconds the client should wait (`Retry-After`), for a store failure.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The `WWW-Authenticate` value for this error in `realm`, if one is sent.
    pub fn www_authenticate(&self, realm: &str) -> Option<HeaderValue> {
        if matches!(
            self.kind,
            ErrorKind::StoreUnavailable | ErrorKind::KeysUnavailable
        ) {
            return None;
        }
        let scheme = if self.dpop_algs.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        let mut value = format!("{scheme} realm=\"{}\"", quoted_safe(realm));
        if let Some(code) = self.error_code() {
            value.push_str(", error=\"");
            value.push_str(code);
            value.push_str("\", error_description=\"");
            value.push_str(&quoted_safe(&self.description));
            value.push('"');
        }
        if let Some(algs) = &self.dpop_algs {
            value.push_str(", algs=\"");
            value.push_str(&quoted_safe(algs));
            value.push('"');
        }
        HeaderValue::from_str(&value).ok()
    }

    /// The JSON body of the default response.
    pub fn json_body(&self) -> String {
        let error = self.error_code().unwrap_or(match self.kind {
            ErrorKind::StoreUnavailable | ErrorKind::KeysUnavailable => "temporarily_unavailable",
            _ => "unauthorized",
        });
        let mut body = serde_json::json!({
            "error": error,
            "error_description": self.description,
        });
        if let Some(reason) = self.reason() {
            body["reason"] = reason.into();
        }
        body.to_string()
    }

    /// The default response: status, `WWW-Authenticate` (or `Retry-After`),
    /// JSON body, and this error in the extensions.
    pub fn to_response(&self, realm: &str) -> Response<String> {
        let mut response = Response::new(self.json_body());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(value) = self.www_authenticate(realm) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.extensions_mut().insert(self.clone());
        response
    }
}

/// Keep only what RFC 6750 allows inside `error_description` and `realm`:
/// printable ASCII without `"` and `\`.
fn quoted_safe(s: &str) -> Cow<'_, str> {
    let ok = |c: char| (' '..='~').contains(&c) && c != '"' && c != '\\';
    if s.chars().all(ok) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().map(|c| if ok(c) { c } else { '?' }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionEnd;

    #[test]
    fn missing_token_gets_a_challenge_without_error_code() {
        let err = AuthError::new(ErrorKind::MissingToken, "no bearer token");
        let res = err.to_response("api");
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
    }

    #[test]
    fn revoked_session_names_its_reason_in_header_and_body() {
        let err = AuthError::revoked(RevocationReason::SessionEnded(SessionEnd::Kicked));
        let res = err.to_response("api");
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"session ended: kicked\""
        );
        let body: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(body["reason"], "kicked");
        assert_eq!(body["error"], "invalid_token");
    }

    #[test]
    fn descriptions_are_sanitized_for_the_header() {
        let err = AuthError::invalid_token("bad \"quote\" \\ and ünicode");
        let value = err.www_authenticate("r\"e").unwrap();
        let value = value.to_str().unwrap();
        assert!(value.starts_with("Bearer realm=\"r?e\""), "{value}");
        assert!(value.contains("bad ?quote? ? and ?nicode"), "{value}");
    }

    #[test]
    fn dpop_errors_challenge_with_dpop_and_name_the_algorithms() {
        let algs: std::sync::Arc<str> = "ES256 EdDSA".into();
        let err = AuthError::new(ErrorKind::InvalidDpopProof, "DPoP proof replayed")
            .with_dpop_challenge(algs.clone());
        let res = err.to_response("api");
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()["www-authenticate"],
            "DPoP realm=\"api\", error=\"invalid_dpop_proof\", error_description=\"DPoP proof replayed\", algs=\"ES256 EdDSA\""
        );
        let body: serde_json::Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof");
        let bound = AuthError::new(ErrorKind::DpopBinding, "use DPoP").with_dpop_challenge(algs);
        assert_eq!(bound.error_code(), Some("invalid_token"));
        assert!(bound.is_dpop_challenge());
        assert!(!AuthError::invalid_token("x").is_dpop_challenge());
    }

    #[test]
    fn store_failure_is_503_with_retry_after_and_no_challenge() {
        let res = AuthError::store_unavailable(2).to_response("api");
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "2");
        assert!(res.headers().get("www-authenticate").is_none());
    }
}
