//! A DPoP proof JWT ([RFC 9449 §4.2](https://www.rfc-editor.org/rfc/rfc9449#section-4.2)),
//! checked as §4.3 says: one compact JWS; `typ` `dpop+jwt`; an `alg` of the
//! allowlist (asymmetric only); a public `jwk` whose thumbprint is the
//! bound token's `cnf.jkt` and which verifies the signature; `htm`, `htu`,
//! `iat` within the window, `ath` the hash of the access token, and a `jti`.
//! Whether the `jti` was seen before is the store's to say, afterwards.
//!
//! The cheap checks come first; the signature is verified only once the
//! key is known to be the bound one.

use std::borrow::Cow;

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwk::proof_key;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest proof accepted (the whole `DPoP` header), in bytes: an RSA
/// 8192-bit key and signature fit.
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest base64url header (2 KiB decoded, as for access tokens: an RSA
/// 8192-bit `jwk` fits) and payload (4 KiB decoded).
const MAX_HEADER_B64: usize = 2048 * 4 / 3 + 4;
const MAX_PAYLOAD_B64: usize = 4096 * 4 / 3 + 4;

/// Longest `jti`, in bytes.
const MAX_JTI_LEN: usize = 256;

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect<'a> {
    /// The allowed algorithms.
    pub(crate) algorithms: &'a [Algorithm],
    /// The request's method.
    pub(crate) method: &'a str,
    /// The request's URL, normalized ([`super::htu::normalize`]).
    pub(crate) url: &'a str,
    /// The access token presented with it (`ath`), if any.
    pub(crate) access_token: Option<&'a str>,
    /// The thumbprint the token is bound to (`cnf.jkt`), if any.
    pub(crate) jkt: Option<&'a str>,
    /// Now, unix seconds.
    pub(crate) now: u64,
    /// How far `iat` may be from `now`, either way, in seconds (the window
    /// plus the leeway).
    pub(crate) window: u64,
}

/// A proof that passed every check but the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The RFC 7638 thumbprint of its key.
    pub(crate) jkt: String,
    /// Its `jti`.
    pub(crate) jti: String,
    /// Its `iat`, unix seconds.
    pub(crate) iat: u64,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default)]
    jwk: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "crate::verify::present")]
    crit: bool,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    htm: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    htu: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "crate::claims::numeric_date")]
    iat: Option<u64>,
    #[serde(borrow, default)]
    ath: Option<Cow<'a, str>>,
}

/// Whether `typ` names `dpop+jwt` (media types are case-insensitive; the
/// `application/` prefix may be there).
fn is_dpop_typ(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("dpop+jwt")
}

/// The base64url SHA-256 of an access token: a proof's `ath`.
pub(crate) fn token_hash(token: &str) -> String {
    B64.encode(crate::util::sha256(token.as_bytes()))
}

/// Check `proof` against `expect`. The error is the description sent to
/// the client.
pub(crate) fn check(proof: &str, expect: &Expect<'_>) -> Result<Checked, &'static str> {
    let mut lengths = proof.split('.').map(str::len);
    let (header_len, payload_len) = (lengths.next().unwrap_or(0), lengths.next().unwrap_or(0));
    if proof.len() > MAX_PROOF_LEN || header_len > MAX_HEADER_B64 || payload_len > MAX_PAYLOAD_B64 {
        return Err("DPoP proof too large");
    }
    let parts = crate::verify::precheck(proof, MAX_PROOF_LEN)
        .map_err(|_| "DPoP proof is not a JWS compact serialization")?;
    let header = B64
        .decode(parts.header)
        .map_err(|_| "DPoP proof header is not base64url")?;
    let header: Header<'_> = serde_json::from_slice(&header)
        .map_err(|_| "DPoP proof header is not a valid JSON object")?;
    if header.crit {
        return Err("DPoP proof has critical header parameters");
    }
    if !header.typ.as_deref().is_some_and(is_dpop_typ) {
        return Err("DPoP proof typ is not dpop+jwt");
    }
    let alg: Algorithm = header
        .alg
        .parse()
        .ok()
        .filter(|alg| expect.algorithms.contains(alg))
        .ok_or("DPoP proof algorithm not allowed")?;
    let jwk = header.jwk.as_ref().ok_or("DPoP proof has no jwk")?;
    let key = proof_key(jwk, alg)?;
    if expect.jkt.is_some_and(|jkt| jkt != key.thumbprint) {
        return Err("DPoP proof key does not match the token's binding");
    }
    let message = &proof.as_bytes()[..parts.header.len() + 1 + parts.payload.len()];
    if !jsonwebtoken::crypto::verify(parts.signature, message, &key.key, alg).unwrap_or(false) {
        return Err("DPoP proof signature invalid");
    }

    let payload = B64
        .decode(parts.payload)
        .map_err(|_| "DPoP proof payload is not base64url")?;
    let claims: Payload<'_> = serde_json::from_slice(&payload)
        .map_err(|_| "DPoP proof payload is not a valid JSON object")?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or("DPoP proof has no jti")?;
    if jti.len() > MAX_JTI_LEN {
        return Err("DPoP proof jti too long");
    }
    if claims.htm.as_deref() != Some(expect.method) {
        return Err("DPoP proof htm does not match the request method");
    }
    let htu = claims.htu.as_deref().and_then(super::htu::normalize);
    if htu.as_deref() != Some(expect.url) {
        return Err("DPoP proof htu does not match the request URL");
    }
    let iat = claims.iat.ok_or("DPoP proof has no iat")?;
    if iat > expect.now.saturating_add(expect.window)
        || iat < expect.now.saturating_sub(expect.window)
    {
        return Err("DPoP proof iat is outside the accepted window");
    }
    if let Some(token) = expect.access_token {
        match claims.ath.as_deref() {
            Some(ath) if ath == token_hash(token) => {}
            Some(_) => return Err("DPoP proof ath does not match the access token"),
            None => return Err("DPoP proof has no ath"),
        }
    }
    Ok(Checked {
        jkt: key.thumbprint,
        jti: jti.into_owned(),
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_typ_is_case_insensitive_with_optional_prefix() {
        assert!(is_dpop_typ("dpop+jwt"));
        assert!(is_dpop_typ("DPoP+JWT"));
        assert!(is_dpop_typ("application/dpop+jwt"));
        assert!(!is_dpop_typ("JWT"));
        assert!(!is_dpop_typ("at+jwt"));
        assert!(!is_dpop_typ("application/"));
        assert!(!is_dpop_typ("applicationX/dpop+jwt"));
        assert!(!is_dpop_typ("é"));
    }

    #[test]
    fn the_token_hash_is_rfc_9449s_example() {
        // RFC 9449 §7.1: the access token of Figure 12 and its ath.
        let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
        assert_eq!(
            token_hash(token),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
