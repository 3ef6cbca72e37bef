//! The public key of a DPoP proof: its `jwk` header parameter, checked
//! against the proof's `alg`, and its [RFC 7638](https://www.rfc-editor.org/rfc/rfc7638)
//! SHA-256 thumbprint (the `jkt` a bound token names in `cnf`).
//!
//! The key comes from the client: every member is bounded and decoded
//! strictly before any key is built, and a key with private members is
//! refused (RFC 9449 §4.3: "the jwk header parameter does not contain a
//! private key").

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2,
/// §6.4; RFC 8037 §2): a proof carrying any of them is refused.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RSA moduli accepted, in bits (aws-lc verifies 2048 to 8192).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// A proof's public key, ready to verify its signature.
pub(crate) struct ProofKey {
    pub(crate) key: DecodingKey,
    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub(crate) thumbprint: String,
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKey")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The key of a proof's `jwk` header, for a proof signed with `alg`.
pub(crate) fn proof_key(
    jwk: &Map<String, Value>,
    alg: Algorithm,
) -> Result<ProofKey, &'static str> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err("DPoP proof jwk contains a private key");
    }
    let kty = member(jwk, "kty")?;
    // The thumbprint input: the required members only, in lexicographic
    // order, no whitespace (RFC 7638 §3.2). Every value is base64url or a
    // fixed name, so nothing needs escaping.
    let (key, canonical) = match (kty, alg) {
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            let (crv, len) = match alg {
                Algorithm::ES256 => ("P-256", 32),
                _ => ("P-384", 48),
            };
            if member(jwk, "crv")? != crv {
                return Err("DPoP proof jwk curve does not match its alg");
            }
            let x = coordinate(jwk, "x", len)?;
            let y = coordinate(jwk, "y", len)?;
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| BAD_KEY)?;
            let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (key, canonical)
        }
        ("OKP", Algorithm::EdDSA) => {
            if member(jwk, "crv")? != "Ed25519" {
                return Err("DPoP proof jwk curve does not match its alg");
            }
            let x = coordinate(jwk, "x", 32)?;
            let key = DecodingKey::from_ed_components(x).map_err(|_| BAD_KEY)?;
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (key, canonical)
        }
        (
            "RSA",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let n = member(jwk, "n")?;
            let e = member(jwk, "e")?;
            // 8192 bits: 1366 base64url characters; a leading zero byte adds 2.
            if n.len() > 1368 || e.len() > 12 {
                return Err("DPoP proof jwk RSA key too large");
            }
            let modulus = decode(n)?;
            let exponent = decode(e)?;
            let bits = significant_bits(&modulus);
            if !RSA_BITS.contains(&bits) {
                return Err("DPoP proof jwk RSA modulus size not accepted");
            }
            if significant_bits(&exponent) < 2 {
                return Err(BAD_KEY);
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| BAD_KEY)?;
            let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (key, canonical)
        }
        _ => return Err("DPoP proof jwk does not fit its alg"),
    };
    Ok(ProofKey {
        key,
        thumbprint: B64.encode(crate::util::sha256(canonical.as_bytes())),
    })
}

const BAD_KEY: &str = "DPoP proof jwk is not a valid public key";

/// A string member of the JWK.
fn member<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, &'static str> {
    match jwk.get(name) {
        Some(Value::String(s)) => Ok(s),
        _ => Err("DPoP proof jwk lacks a required member"),
    }
}

/// A base64url member that decodes to exactly `len` bytes.
fn coordinate<'a>(
    jwk: &'a Map<String, Value>,
    name: &'static str,
    len: usize,
) -> Result<&'a str, &'static str> {
    let value = member(jwk, name)?;
    // Checked before decoding: a giant member costs nothing.
    if value.len() != (len * 4).div_ceil(3) || decode(value)?.len() != len {
        return Err(BAD_KEY);
    }
    Ok(value)
}

/// Strict base64url without padding (canonical trailing bits), so that one
/// key has one thumbprint.
fn decode(value: &str) -> Result<Vec<u8>, &'static str> {
    B64.decode(value).map_err(|_| BAD_KEY)
}

/// Bits of a big-endian unsigned integer, without leading zeros.
fn significant_bits(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        Some(i) => (bytes.len() - i) * 8 - bytes[i].leading_zeros() as usize,
        None => 0,
    }
}

/// The RFC 7638 SHA-256 thumbprint of an `EC` (P-256, P-384), `OKP`
/// (Ed25519) or `RSA` public JWK given as JSON, as a bound token's
/// `cnf.jkt` names it: what an authorization server puts into the tokens
/// it binds to a DPoP key.
///
/// # Errors
///
/// Not a JSON object, a private key, an unsupported key type or curve, or
/// a malformed member.
///
/// # Example
///
/// The example key of RFC 7638 §3.1:
///
/// ```
/// let jwk = r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
/// assert_eq!(
///     tower_jwt_auth::dpop::jwk_thumbprint(jwk).unwrap(),
///     "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
/// );
/// ```
pub fn jwk_thumbprint(jwk: &str) -> Result<String, &'static str> {
    crate::keys::ensure_crypto_provider();
    let jwk: Map<String, Value> =
        serde_json::from_str(jwk).map_err(|_| "jwk is not a JSON object")?;
    let alg = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => match jwk.get("crv").and_then(Value::as_str) {
            Some("P-384") => Algorithm::ES384,
            _ => Algorithm::ES256,
        },
        Some("OKP") => Algorithm::EdDSA,
        _ => Algorithm::RS256,
    };
    proof_key(&jwk, alg).map(|key| key.thumbprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    const P256: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn rfc_7638_example_thumbprint() {
        crate::keys::ensure_crypto_provider();
        let jwk = r#"{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
        let key = proof_key(&map(jwk), Algorithm::RS256).unwrap();
        assert_eq!(
            key.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // Member order and extra members do not change it.
        let reordered = jwk.replace(
            r#""kty":"RSA","e":"AQAB","#,
            r#""e":"AQAB","use":"sig","kty":"RSA","#,
        );
        let key = proof_key(&map(&reordered), Algorithm::PS256).unwrap();
        assert_eq!(
            key.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_members_are_refused() {
        crate::keys::ensure_crypto_provider();
        assert!(proof_key(&map(P256), Algorithm::ES256).is_ok());
        for private in PRIVATE_MEMBERS {
            let jwk = P256.replace('}', &format!(r#","{private}":"AQAB"}}"#));
            assert_eq!(
                proof_key(&map(&jwk), Algorithm::ES256).unwrap_err(),
                "DPoP proof jwk contains a private key",
                "{private}"
            );
        }
    }

    #[test]
    fn the_key_must_fit_the_alg() {
        crate::keys::ensure_crypto_provider();
        for alg in [
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ] {
            assert!(proof_key(&map(P256), alg).is_err(), "{alg:?}");
        }
        let wrong_curve = P256.replace("P-256", "P-384");
        assert!(proof_key(&map(&wrong_curve), Algorithm::ES384).is_err());
        let oct = r#"{"kty":"oct","k":"c2VjcmV0"}"#;
        assert!(proof_key(&map(oct), Algorithm::HS256).is_err());
    }

    #[test]
    fn malformed_members_are_refused_without_panic() {
        crate::keys::ensure_crypto_provider();
        let giant = "A".repeat(100_000);
        for jwk in [
            r#"{}"#.to_owned(),
            r#"{"kty":1}"#.to_owned(),
            P256.replace("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", &giant),
            P256.replace(
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE=",
            ),
            P256.replace(
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE!",
            ),
            // Non-canonical trailing bits: the same bytes, another string.
            P256.replace(
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEV",
            ),
            format!(r#"{{"kty":"RSA","e":"AQAB","n":"{giant}"}}"#),
            r#"{"kty":"RSA","e":"AQAB","n":"AQAB"}"#.to_owned(),
            r#"{"kty":"OKP","crv":"Ed25519","x":"AQAB"}"#.to_owned(),
        ] {
            assert!(proof_key(&map(&jwk), Algorithm::ES256).is_err());
            assert!(proof_key(&map(&jwk), Algorithm::RS256).is_err());
            assert!(proof_key(&map(&jwk), Algorithm::EdDSA).is_err());
        }
    }

    #[test]
    fn significant_bits_ignores_leading_zeros() {
        assert_eq!(significant_bits(&[]), 0);
        assert_eq!(significant_bits(&[0, 0]), 0);
        assert_eq!(significant_bits(&[0, 1]), 1);
        assert_eq!(significant_bits(&[0, 0x80, 0]), 16);
        assert_eq!(significant_bits(&[1, 0, 1]), 17);
    }
}
