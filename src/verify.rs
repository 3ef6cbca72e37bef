//! Token verification: JWS compact form, key selection, signature, then
//! the registered claims ([RFC 7519](https://www.rfc-editor.org/rfc/rfc7519),
//! [RFC 8725](https://www.rfc-editor.org/rfc/rfc8725)).
//!
//! Signature first, claims after: nothing in the payload is trusted before the
//! signature holds. The payload is decoded once; the registered claims are
//! read borrowed, the typed claims deserialized from the same bytes.

use std::borrow::Cow;

use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use sha2::{Sha256, Sha384, Sha512};

use crate::claims::{Authenticated, RawRegistered};
use crate::error::{AuthError, ErrorKind};
use crate::keys::{Keys, MAX_KID_LEN};
use crate::util::sha256_hex;

/// A registered claim that can be made required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegisteredClaim {
    /// `sub`
    Sub,
    /// `jti`
    Jti,
    /// `sid`
    Sid,
    /// `iat`
    Iat,
    /// `exp`
    Exp,
    /// `nbf`
    Nbf,
    /// `iss`
    Iss,
    /// `aud`
    Aud,
}

impl RegisteredClaim {
    fn name(self) -> &'static str {
        match self {
            Self::Sub => "sub",
            Self::Jti => "jti",
            Self::Sid => "sid",
            Self::Iat => "iat",
            Self::Exp => "exp",
            Self::Nbf => "nbf",
            Self::Iss => "iss",
            Self::Aud => "aud",
        }
    }
}

/// What a verified token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) leeway: u64,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) required: Vec<RegisteredClaim>,
    pub(crate) typ: Option<String>,
    pub(crate) max_token_len: usize,
    /// Longest accepted lifetime in seconds: `exp - iat`, or `exp - now`
    /// for a token without `iat`.
    pub(crate) max_lifetime: u64,
    /// What the token must be: an access token (the default), or a logout
    /// token (OpenID Connect Back-Channel Logout): neither is ever taken
    /// for the other (RFC 8725 §3.11, §3.12).
    pub(crate) logout: bool,
}

/// The header `typ` of a logout token (Back-Channel Logout 1.0 §2.4).
pub(crate) const LOGOUT_TYP: &str = "logout+jwt";

impl Default for Rules {
    fn default() -> Self {
        Self {
            leeway: 30,
            issuers: Vec::new(),
            audiences: Vec::new(),
            required: vec![RegisteredClaim::Exp],
            typ: None,
            max_token_len: crate::source::DEFAULT_MAX_TOKEN_LEN,
            max_lifetime: 24 * 3600,
            logout: false,
        }
    }
}

#[derive(Deserialize)]
struct JoseHeader<'a> {
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    /// Present at all, whatever its value (`"crit": null` included).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    // jku, x5u, jwk and x5c are ignored on purpose: keys come from the
    // configuration only, never from the token (RFC 8725 §3.10).
}

/// `true` for any value: used for header parameters whose mere presence matters.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

fn malformed(description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::Malformed, description)
}

/// Largest decoded header we look at.
const MAX_HEADER_LEN: usize = 2048;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The three parts of a JWS compact token, checked for shape only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenParts<'a> {
    /// base64url header.
    pub header: &'a str,
    /// base64url payload.
    pub payload: &'a str,
    /// base64url signature.
    pub signature: &'a str,
}

/// Split a token into its parts and check their shape before any decoding:
/// exactly three non-empty base64url parts (no padding), within `max_len`.
///
/// # Errors
///
/// [`ErrorKind::TokenTooLarge`] or [`ErrorKind::Malformed`].
pub fn precheck(token: &str, max_len: usize) -> Result<TokenParts<'_>, AuthError> {
    if token.len() > max_len {
        return Err(AuthError::new(ErrorKind::TokenTooLarge, "token too large"));
    }
    let bytes = token.as_bytes();
    // Branch-free passes over 128-byte chunks (the compiler vectorizes them,
    // with a `u8` dot count per chunk): count the dots and note any byte that
    // is neither a dot nor base64url. This runs on every request; the plain
    // `split` + `all` per part cost about five times as many instructions.
    let mut dots = 0u32;
    let mut bad = false;
    for chunk in bytes.chunks(128) {
        let mut chunk_dots = 0u8;
        let mut chunk_bad = false;
        for &b in chunk {
            let dot = b == b'.';
            chunk_dots += u8::from(dot);
            chunk_bad |= !(dot | is_b64url(b));
        }
        dots += u32::from(chunk_dots);
        bad |= chunk_bad;
    }
    if dots != 2 {
        return Err(malformed("token is not a JWS compact serialization"));
    }
    let first = token.find('.').unwrap_or(0);
    let last = token.rfind('.').unwrap_or(0);
    let (header, payload, signature) =
        (&token[..first], &token[first + 1..last], &token[last + 1..]);
    if bad || header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed("token parts are not base64url"));
    }
    if header.len() > MAX_HEADER_LEN * 4 / 3 + 4 {
        return Err(malformed("token header too large"));
    }
    Ok(TokenParts {
        header,
        payload,
        signature,
    })
}

/// `[A-Za-z0-9_-]`, without branches.
#[inline(always)]
fn is_b64url(b: u8) -> bool {
    crate::util::is_alnum(b) | (b == b'-') | (b == b'_')
}

/// Whether a header `typ` matches the wanted one (RFC 8725 §3.11):
/// case-insensitive, with or without the `application/` prefix.
fn typ_matches(got: &str, want: &str) -> bool {
    let strip = |s: &str| -> String {
        let lower = s.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    strip(got) == strip(want)
}

/// Check an HS256/384/512 signature (base64url) in constant time.
///
/// Measured: `jsonwebtoken::crypto::verify` builds a new aws-lc HMAC key and
/// a boxed verifier for every token, about half of an HS256 check; this is
/// the same computation (the `hmac` and `sha2` crates, SHA-NI where the CPU
/// has it) without it.
fn verify_hmac(alg: Algorithm, secret: &[u8], message: &[u8], signature: &str) -> bool {
    use hmac::{Hmac, Mac};
    // At most a 64-byte MAC: 86 base64url characters.
    let mut decoded = [0u8; 64];
    if signature.len() > 86 {
        return false;
    }
    let Ok(len) = B64.decode_slice(signature, &mut decoded) else {
        return false;
    };
    let signature = &decoded[..len];
    // `verify_slice` compares in constant time.
    fn check<M: Mac + hmac::digest::KeyInit>(secret: &[u8], message: &[u8], tag: &[u8]) -> bool {
        <M as Mac>::new_from_slice(secret).is_ok_and(|mut mac| {
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        })
    }
    match alg {
        Algorithm::HS256 => check::<Hmac<Sha256>>(secret, message, signature),
        Algorithm::HS384 => check::<Hmac<Sha384>>(secret, message, signature),
        Algorithm::HS512 => check::<Hmac<Sha512>>(secret, message, signature),
        _ => false,
    }
}

/// What [`peek`] reads of a token before any key is chosen.
#[cfg(feature = "remote-keys")]
#[derive(Debug)]
pub(crate) struct Peek {
    pub(crate) kid: Option<String>,
    pub(crate) iss: Option<String>,
}

/// Read a token's header `kid` and payload `iss` without verifying it: only
/// to choose whose keys verify it (several issuers on one layer). Nothing
/// read here is trusted: the chosen issuer's keys and rules still decide.
#[cfg(feature = "remote-keys")]
pub(crate) fn peek(token: &str, max_len: usize) -> Result<Peek, AuthError> {
    #[derive(Deserialize)]
    struct Kid<'a> {
        #[serde(borrow, default)]
        kid: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Iss<'a> {
        #[serde(borrow, default)]
        iss: Option<Cow<'a, str>>,
    }
    let parts = precheck(token, max_len)?;
    let header = B64
        .decode(parts.header)
        .map_err(|_| malformed("token header is not base64url"))?;
    let header: Kid<'_> = serde_json::from_slice(&header)
        .map_err(|_| malformed("token header is not a JSON object with an alg"))?;
    let payload = B64
        .decode(parts.payload)
        .map_err(|_| malformed("token payload is not base64url"))?;
    let payload: Iss<'_> = serde_json::from_slice(&payload)
        .map_err(|_| malformed("token payload is not a JSON object of valid claims"))?;
    Ok(Peek {
        kid: header.kid.map(Cow::into_owned),
        iss: payload.iss.map(Cow::into_owned),
    })
}

/// Verify `token` and deserialize its claims.
pub(crate) fn verify<C: DeserializeOwned>(
    token: &str,
    keys: &Keys,
    rules: &Rules,
    need_token_id: bool,
) -> Result<Authenticated<C>, AuthError> {
    let parts = precheck(token, rules.max_token_len)?;

    let header_bytes = B64
        .decode(parts.header)
        .map_err(|_| malformed("token header is not base64url"))?;
    let header: JoseHeader<'_> = serde_json::from_slice(&header_bytes)
        .map_err(|_| malformed("token header is not a JSON object with an alg"))?;
    if header.crit {
        return Err(AuthError::new(
            ErrorKind::UnsupportedCritical,
            "token header has critical extensions",
        ));
    }
    let alg: Algorithm = header.alg.parse().map_err(|_| {
        AuthError::new(
            ErrorKind::AlgorithmNotAllowed,
            "token algorithm not allowed",
        )
    })?;
    // A logout token is typed `logout+jwt` when typed at all; a security
    // event token (RFC 8417: a logout token is one) is never an access token.
    let event_typ = |t: &str| typ_matches(t, LOGOUT_TYP) || typ_matches(t, "secevent+jwt");
    match (rules.logout, header.typ.as_deref()) {
        (true, Some(t)) if !typ_matches(t, LOGOUT_TYP) => {
            return Err(AuthError::new(
                ErrorKind::WrongType,
                "token type not accepted: not a logout token",
            ))
        }
        (false, Some(t)) if event_typ(t) => {
            return Err(AuthError::new(
                ErrorKind::WrongType,
                "token type not accepted: an event token is not an access token",
            ))
        }
        _ => {}
    }
    if let Some(want) = &rules.typ {
        match &header.typ {
            Some(got) if typ_matches(got, want) => {}
            _ => {
                return Err(AuthError::new(
                    ErrorKind::WrongType,
                    "token type not accepted",
                ))
            }
        }
    }
    let kid = header.kid.as_deref();
    if kid.is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err(AuthError::new(ErrorKind::UnknownKey, "unknown key id"));
    }

    let message_len = parts.header.len() + 1 + parts.payload.len();
    let message = &token.as_bytes()[..message_len];
    let mut tried = false;
    let mut verified = false;
    for key in keys.candidates(kid, alg) {
        tried = true;
        // A verifier error (e.g. a signature of the wrong size) is a bad signature.
        let ok = match key.family {
            AlgorithmFamily::Hmac => key
                .key
                .try_get_as_bytes()
                .is_ok_and(|secret| verify_hmac(alg, secret, message, parts.signature)),
            _ => jsonwebtoken::crypto::verify(parts.signature, message, &key.key, alg)
                .unwrap_or(false),
        };
        if ok {
            verified = true;
            break;
        }
    }
    if !tried {
        return Err(match kid {
            Some(k) if !keys.knows_kid(k) => {
                AuthError::new(ErrorKind::UnknownKey, "unknown key id")
            }
            _ => AuthError::new(
                ErrorKind::AlgorithmNotAllowed,
                "token algorithm not allowed",
            ),
        });
    }
    if !verified {
        return Err(AuthError::new(ErrorKind::BadSignature, "invalid signature"));
    }

    let payload = B64
        .decode(parts.payload)
        .map_err(|_| malformed("token payload is not base64url"))?;
    let registered: RawRegistered<'_> = serde_json::from_slice(&payload)
        .map_err(|_| malformed("token payload is not a JSON object of valid claims"))?;
    check_claims(&registered, rules, crate::util::unix_millis() / 1000)?;
    if registered.events && !rules.logout {
        // `events` makes a security event token (RFC 8417 §2.2), such as an
        // untyped logout token: never an access token.
        return Err(AuthError::new(
            ErrorKind::WrongType,
            "token type not accepted: an event token is not an access token",
        ));
    }
    let claims: C = serde_json::from_slice(&payload).map_err(|e| {
        tracing::debug!(error = %e, "token claims do not match the claims type");
        AuthError::new(ErrorKind::InvalidClaims, "token claims invalid")
    })?;
    let registered = registered.into_owned();
    // With a `jti`, the token id is the jti itself (not copied: see
    // `Authenticated::token_id`).
    let token_id = match &registered.jti {
        None if need_token_id => sha256_hex(token.as_bytes()),
        _ => String::new(),
    };
    Ok(Authenticated {
        claims,
        registered,
        token_id,
        alg,
        kid: kid.map(str::to_owned),
        layer: None,
        remote_subject: None,
    })
}

pub(crate) fn check_claims(
    reg: &RawRegistered<'_>,
    rules: &Rules,
    now: u64,
) -> Result<(), AuthError> {
    for claim in &rules.required {
        let present = match claim {
            RegisteredClaim::Sub => reg.sub.is_some(),
            RegisteredClaim::Jti => reg.jti.is_some(),
            RegisteredClaim::Sid => reg.sid.is_some(),
            RegisteredClaim::Iat => reg.iat.is_some(),
            RegisteredClaim::Exp => reg.exp.is_some(),
            RegisteredClaim::Nbf => reg.nbf.is_some(),
            RegisteredClaim::Iss => reg.iss.is_some(),
            RegisteredClaim::Aud => reg.aud.is_some(),
        };
        if !present {
            return Err(AuthError::new(
                ErrorKind::MissingClaim,
                format!("token has no {} claim", claim.name()),
            ));
        }
    }
    // Every sum below saturates: claim values are hostile (u64::MAX, 2^53, ...).
    if let Some(exp) = reg.exp {
        if now >= exp.saturating_add(rules.leeway) {
            return Err(AuthError::new(ErrorKind::Expired, "token expired"));
        }
    }
    if let Some(nbf) = reg.nbf {
        if now.saturating_add(rules.leeway) < nbf {
            return Err(AuthError::new(
                ErrorKind::NotYetValid,
                "token not yet valid",
            ));
        }
    }
    if let Some(iat) = reg.iat {
        // A token from the future would escape every "log out everywhere"
        // mark set before it (its iat sorts after the mark).
        if iat > now.saturating_add(rules.leeway) {
            return Err(AuthError::new(
                ErrorKind::NotYetValid,
                "token issued in the future",
            ));
        }
    }
    if let Some(exp) = reg.exp {
        // Revocation marks live `max_lifetime` (plus leeway): a longer-lived
        // token would outlive them and be accepted again.
        let lifetime = exp.saturating_sub(reg.iat.unwrap_or(now));
        if lifetime > rules.max_lifetime {
            return Err(AuthError::new(
                ErrorKind::LifetimeTooLong,
                "token lifetime too long",
            ));
        }
    }
    // NUL separates the issuer from the subject in the store's subject of a
    // remote issuer's token: no subject may contain it.
    if reg.sub.as_deref().is_some_and(|sub| sub.contains('\0')) {
        return Err(AuthError::new(
            ErrorKind::InvalidClaims,
            "token subject invalid",
        ));
    }
    // Configuring an issuer or audience makes the claim required: a token that
    // omits it must not pass (unlike jsonwebtoken's Validation, upstream #493).
    if !rules.issuers.is_empty() {
        match &reg.iss {
            Some(iss) if rules.issuers.iter().any(|i| i == iss) => {}
            _ => {
                return Err(AuthError::new(
                    ErrorKind::WrongIssuer,
                    "token issuer not accepted",
                ))
            }
        }
    }
    if !rules.audiences.is_empty() {
        match &reg.aud {
            Some(aud) if aud.contains_any(&rules.audiences) => {}
            _ => {
                return Err(AuthError::new(
                    ErrorKind::WrongAudience,
                    "token audience not accepted",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_token_id_is_the_jti_or_else_the_tokens_sha256() {
        let secret = b"token-id-test-secret-0123456789-abcdef";
        let keys = Keys::hs256(secret).unwrap();
        crate::keys::ensure_crypto_provider();
        let sign = |claims: serde_json::Value| {
            let key = jsonwebtoken::EncodingKey::from_secret(secret).unwrap();
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
        };
        let exp = crate::util::unix_millis() / 1000 + 600;
        let with_jti = sign(serde_json::json!({ "sub": "a", "exp": exp, "jti": "j-1" }));
        let rules = Rules::default();
        let auth = verify::<serde_json::Value>(&with_jti, &keys, &rules, true).unwrap();
        assert_eq!(auth.token_id(), "j-1");
        let without = sign(serde_json::json!({ "sub": "a", "exp": exp }));
        let auth = verify::<serde_json::Value>(&without, &keys, &rules, true).unwrap();
        assert_eq!(auth.token_id(), sha256_hex(without.as_bytes()));
        assert_eq!(auth.token_id().len(), 64);
        let auth = verify::<serde_json::Value>(&without, &keys, &rules, false).unwrap();
        assert_eq!(auth.token_id(), "", "no store: no id computed");
    }

    #[test]
    fn precheck_wants_three_base64url_parts() {
        assert!(precheck("a.b.c", 100).is_ok());
        for bad in [
            "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b=.c", "a.b+.c", "a b.c.d", "",
        ] {
            assert_eq!(
                precheck(bad, 100).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(
            precheck("a.b.c", 4).unwrap_err().kind(),
            ErrorKind::TokenTooLarge
        );
    }

    #[test]
    fn typ_comparison_follows_rfc_8725() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("application/AT+JWT", "at+jwt"));
        assert!(!typ_matches("JWT", "at+jwt"));
    }

    /// The straightforward form `precheck` must agree with.
    fn precheck_reference(token: &str, max_len: usize) -> Result<TokenParts<'_>, AuthError> {
        if token.len() > max_len {
            return Err(AuthError::new(ErrorKind::TokenTooLarge, "token too large"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("token is not a JWS compact serialization"));
        };
        let b64url = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !b64url(header) || !b64url(payload) || !b64url(signature) {
            return Err(malformed("token parts are not base64url"));
        }
        if header.len() > MAX_HEADER_LEN * 4 / 3 + 4 {
            return Err(malformed("token header too large"));
        }
        Ok(TokenParts {
            header,
            payload,
            signature,
        })
    }

    #[test]
    fn precheck_bounds_the_header_like_the_reference() {
        let limit = MAX_HEADER_LEN * 4 / 3 + 4;
        for len in [limit - 1, limit, limit + 1] {
            let token = format!("{}.b.c", "a".repeat(len));
            let got = precheck(&token, 8192).map_err(|e| e.description().to_owned());
            let want = precheck_reference(&token, 8192).map_err(|e| e.description().to_owned());
            assert_eq!(got, want, "{len}");
        }
    }

    #[test]
    fn hmac_agrees_with_jsonwebtoken() {
        crate::keys::ensure_crypto_provider();
        let long = vec![0xa5u8; 200]; // longer than both block sizes: hashed first
        let secrets: [&[u8]; 4] = [
            b"a secret of at least thirty-two bytes!",
            &[0u8; 64],
            &[7u8; 128],
            &long,
        ];
        let messages: [&[u8]; 3] = [b"", b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0", &[0xffu8; 300]];
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for secret in secrets {
                let key = jsonwebtoken::EncodingKey::from_secret(secret).unwrap();
                for message in messages {
                    let signature = jsonwebtoken::crypto::sign(message, &key, alg).unwrap();
                    assert!(verify_hmac(alg, secret, message, &signature), "{alg:?}");
                    // Another message, another key, a flipped bit, a cut or
                    // padded signature, another algorithm: all refused.
                    assert!(!verify_hmac(alg, secret, b"other", &signature));
                    assert!(!verify_hmac(
                        alg,
                        b"another secret of thirty-two bytes!",
                        message,
                        &signature
                    ));
                    let mut bytes = B64.decode(&signature).unwrap();
                    bytes[0] ^= 1;
                    assert!(!verify_hmac(alg, secret, message, &B64.encode(&bytes)));
                    assert!(!verify_hmac(
                        alg,
                        secret,
                        message,
                        &signature[..signature.len() - 2]
                    ));
                    assert!(!verify_hmac(
                        alg,
                        secret,
                        message,
                        &format!("{signature}AA")
                    ));
                    assert!(!verify_hmac(alg, secret, message, &format!("{signature}=")));
                    let other = if alg == Algorithm::HS256 {
                        Algorithm::HS512
                    } else {
                        Algorithm::HS256
                    };
                    assert!(!verify_hmac(other, secret, message, &signature));
                    assert!(!verify_hmac(Algorithm::RS256, secret, message, &signature));
                }
            }
        }
        assert!(!verify_hmac(Algorithm::HS256, b"k", b"m", &"A".repeat(87)));
    }

    #[test]
    fn is_b64url_matches_the_alphabet() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(is_b64url(b), want, "{b:#04x}");
        }
    }

    proptest! {
        #[test]
        fn precheck_agrees_with_the_reference(
            token in prop_oneof![
                "[A-Za-z0-9._=+/ \\-]{0,80}",
                "[A-Za-z0-9_-]{0,12}\\.[A-Za-z0-9_-]{0,12}\\.[A-Za-z0-9_-]{0,12}",
                any::<String>(),
            ],
            max_len in 0usize..100,
        ) {
            let got = precheck(&token, max_len).map_err(|e| (e.kind(), e.description().to_owned()));
            let want = precheck_reference(&token, max_len).map_err(|e| (e.kind(), e.description().to_owned()));
            prop_assert_eq!(got, want);
        }

        #[test]
        fn precheck_never_panics_and_accepts_only_three_parts(token in "[A-Za-z0-9._=+/ -]{0,80}") {
            if let Ok(parts) = precheck(&token, 64) {
                prop_assert_eq!(token.matches('.').count(), 2);
                prop_assert!(!parts.header.is_empty() && !parts.payload.is_empty() && !parts.signature.is_empty());
            }
        }
    }
}
