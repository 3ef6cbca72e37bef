//! Verification (and signing) keys, selected by `kid`, each with its own
//! algorithm allowlist ([RFC 8725 §3.1](https://www.rfc-editor.org/rfc/rfc8725#section-3.1)).
//!
//! The `alg` of a token's header never widens what a key accepts: a key made
//! for RS256 rejects an HS256 token signed with the RSA public key as its
//! secret (algorithm confusion), and `none` is not an algorithm at all.

use std::fmt;

use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use serde_json::{Map, Value};

/// Longest `kid` that is looked up; longer ones are rejected unread.
pub(crate) const MAX_KID_LEN: usize = 256;

/// A configuration mistake found when the layer is built, never at request time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An HMAC secret shorter than the hash output (RFC 7518 §3.2).
    #[error("HMAC secret for {alg:?} must be at least {min} bytes, got {got}")]
    WeakSecret {
        /// The algorithm.
        alg: Algorithm,
        /// Minimum length in bytes.
        min: usize,
        /// Given length in bytes.
        got: usize,
    },
    /// An algorithm that does not fit the key it is allowed for.
    #[error("algorithm {alg:?} cannot be used with a {family:?} key")]
    AlgorithmMismatch {
        /// The algorithm.
        alg: Algorithm,
        /// The key's family.
        family: AlgorithmFamily,
    },
    /// A key that could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(#[source] jsonwebtoken::errors::Error),
    /// A JWK set that could not be read, or a key in it that cannot be used.
    #[error("invalid JWK set: {0}")]
    InvalidJwkSet(String),
    /// No verification key at all.
    #[error("no verification key configured")]
    NoKeys,
    /// A JWK set none of whose keys can verify tokens: each key, and why.
    #[error("no usable key in the JWK set: {}", SkippedList(.0))]
    NoUsableKey(Vec<SkippedKey>),
    /// A `kid` longer than the lookup limit.
    #[error("key id longer than {MAX_KID_LEN} bytes")]
    KidTooLong,
    /// A Redis key prefix that would break the key layout.
    #[error("invalid store key prefix {0:?}: it must not contain '{{' or '}}'")]
    InvalidPrefix(String),
}

/// How much of a `kid`, `alg` or other member of a hostile JWK set is quoted
/// in a report (characters).
const QUOTE_LEN: usize = 64;

/// A key of a JWK set that was left out because it cannot verify tokens
/// here: see [`Keys::skipped`] and [`ConfigError::NoUsableKey`].
///
/// # Example
///
/// ```
/// use tower_jwt_auth::Keys;
///
/// let keys = Keys::from_jwk_set(r#"{"keys": [
///     {"kty": "oct", "kid": "hmac", "alg": "HS256",
///      "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
///     {"kty": "EC", "kid": "k1", "crv": "secp256k1", "alg": "ES256K", "x": "AQ", "y": "AQ"}
/// ]}"#)?;
/// let skipped = &keys.skipped()[0];
/// assert_eq!((skipped.index, skipped.kid.as_deref(), skipped.alg.as_deref()), (1, Some("k1"), Some("ES256K")));
/// assert_eq!(
///     skipped.to_string(),
///     r#"key 1 (kid "k1", alg "ES256K"): alg "ES256K" is not supported by jsonwebtoken"#
/// );
/// # Ok::<(), tower_jwt_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedKey {
    /// Position of the key in the set's `keys` array, from 0.
    pub index: usize,
    /// The key's `kid`, when it is a string (cut after 64 characters).
    pub kid: Option<String>,
    /// The key's `alg` as written, when it is a string (cut after 64 characters).
    pub alg: Option<String>,
    /// Why the key cannot verify tokens.
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {} (", self.index)?;
        match &self.kid {
            Some(kid) => write!(f, "kid {kid:?}")?,
            None => f.write_str("no kid")?,
        }
        match &self.alg {
            Some(alg) => write!(f, ", alg {alg:?}")?,
            None => f.write_str(", no alg")?,
        }
        write!(f, "): {}", self.reason)
    }
}

/// The skipped keys of [`ConfigError::NoUsableKey`], one after the other.
struct SkippedList<'a>(&'a [SkippedKey]);

impl fmt::Display for SkippedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{key}")?;
        }
        Ok(())
    }
}

/// At most [`QUOTE_LEN`] characters of `s`, for a report.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LEN) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The RSA signature algorithms, all of which an RSA key without `alg` accepts.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Every algorithm, by its registered (case-sensitive) name.
const ALGORITHMS: [(&str, Algorithm); 12] = [
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

fn alg_name(alg: Algorithm) -> &'static str {
    ALGORITHMS
        .iter()
        .find(|(_, a)| *a == alg)
        .map_or("?", |(name, _)| name)
}

/// Why a key of a JWK set is not used.
enum Refusal {
    /// It cannot verify tokens here: leave it out, keep the others.
    Skip(String),
    /// A broken `oct` key (the application's own secret): fail the set.
    Fatal(ConfigError),
}

fn skip<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Skip(reason.into()))
}

/// The algorithm a JWK's `alg` names, or why it cannot be used.
fn parse_alg(name: &str) -> Result<Algorithm, String> {
    if let Some((_, alg)) = ALGORITHMS.iter().find(|(n, _)| *n == name) {
        return Ok(*alg);
    }
    let quoted = quote(name);
    if let Some((n, _)) = ALGORITHMS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "alg {quoted:?} is not a registered algorithm name: names are case-sensitive \
             (RFC 7517 §4.4), did you mean {n:?}?"
        ));
    }
    let encryption = name == "RSA1_5"
        || name == "dir"
        || name.starts_with("RSA-OAEP")
        || name.starts_with("ECDH-ES")
        || name.starts_with("PBES2-")
        || (name.starts_with('A')
            && (name.ends_with("KW") || name.ends_with("GCM") || name.contains("CBC-HS")));
    Err(if encryption {
        format!("alg {quoted:?} is an encryption algorithm, not a signature algorithm")
    } else if matches!(name, "ES512" | "ES256K" | "Ed25519" | "Ed448") {
        format!("alg {quoted:?} is not supported by jsonwebtoken")
    } else if name == "none" {
        "alg \"none\" is not a signature algorithm".to_owned()
    } else {
        format!("unknown alg {quoted:?}")
    })
}

/// A base64url member of a JWK (trailing `=` tolerated).
fn b64_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    match jwk.get(name) {
        Some(Value::String(s)) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("{name:?} is not base64url")),
        Some(_) => Err(format!("{name:?} is not a string")),
        None => Err(format!("no {name:?} member")),
    }
}

/// A string member of a JWK.
fn str_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match jwk.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{name:?} is not a string")),
        None => Err(format!("no {name:?} member")),
    }
}

fn wrong_alg(alg: Algorithm, key: &str) -> String {
    let name = alg_name(alg);
    if family_of(alg) == AlgorithmFamily::Hmac {
        format!("alg {name:?} cannot be used with {key}: an HMAC algorithm needs an oct key")
    } else {
        format!("alg {name:?} cannot be used with {key}")
    }
}

type Parsed = (DecodingKey, AlgorithmFamily, Vec<Algorithm>);

fn rsa_key(jwk: &Map<String, Value>, alg: Option<Algorithm>) -> Result<Parsed, String> {
    let algorithms = match alg {
        None => RSA_ALGORITHMS.to_vec(),
        Some(alg) if RSA_ALGORITHMS.contains(&alg) => vec![alg],
        Some(alg) => return Err(wrong_alg(alg, "an RSA key")),
    };
    let n = b64_member(jwk, "n")?;
    let e = b64_member(jwk, "e")?;
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let e = &e[e.iter().take_while(|b| **b == 0).count()..];
    // Verifiers (aws-lc-rs) refuse moduli outside 2048..=8192 bits, so such a
    // key would fail every token: say so now.
    let bits = n.first().map_or(0, |top| {
        (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    });
    if !(2048..=8192).contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits (2048 to 8192 are supported)"
        ));
    }
    if e.is_empty() || e.len() > 8 || e[e.len() - 1] % 2 == 0 {
        return Err("\"e\" is not a valid RSA exponent".to_owned());
    }
    Ok((
        DecodingKey::from_rsa_raw_components(n, e),
        AlgorithmFamily::Rsa,
        algorithms,
    ))
}

fn ec_key(jwk: &Map<String, Value>, alg: Option<Algorithm>) -> Result<Parsed, String> {
    let crv = str_member(jwk, "crv")?;
    let (want, len) = match crv {
        "P-256" => (Algorithm::ES256, 32),
        "P-384" => (Algorithm::ES384, 48),
        "P-521" => return Err("curve P-521 (ES512) is not supported by jsonwebtoken".into()),
        "secp256k1" => {
            return Err("curve secp256k1 (ES256K) is not supported by jsonwebtoken".into())
        }
        other => return Err(format!("unknown EC curve {:?}", quote(other))),
    };
    match alg {
        Some(alg) if alg == want => {}
        Some(alg) if family_of(alg) == AlgorithmFamily::Ec => {
            return Err(format!(
                "alg {:?} does not match curve {crv}, which signs {:?} only",
                alg_name(alg),
                alg_name(want)
            ))
        }
        Some(alg) => return Err(wrong_alg(alg, "an EC key")),
        None => {}
    }
    let x = b64_member(jwk, "x")?;
    let y = b64_member(jwk, "y")?;
    if x.len() != len || y.len() != len {
        return Err(format!(
            "\"x\" and \"y\" of a {crv} key must be {len} bytes each"
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((
        DecodingKey::from_ec_der(&point),
        AlgorithmFamily::Ec,
        vec![want],
    ))
}

fn okp_key(jwk: &Map<String, Value>, alg: Option<Algorithm>) -> Result<Parsed, String> {
    let crv = str_member(jwk, "crv")?;
    match crv {
        "Ed25519" => {}
        "Ed448" => return Err("curve Ed448 is not supported by jsonwebtoken".into()),
        "X25519" | "X448" => {
            return Err(format!(
                "curve {crv} is for key agreement (ECDH), not signatures"
            ))
        }
        other => return Err(format!("unknown OKP curve {:?}", quote(other))),
    }
    match alg {
        None | Some(Algorithm::EdDSA) => {}
        Some(alg) => return Err(wrong_alg(alg, "an Ed25519 key")),
    }
    let x = b64_member(jwk, "x")?;
    if x.len() != 32 {
        return Err("\"x\" of an Ed25519 key must be 32 bytes".into());
    }
    Ok((
        DecodingKey::from_ed_der(&x),
        AlgorithmFamily::Ed,
        vec![Algorithm::EdDSA],
    ))
}

/// An `oct` key: the application's own secret, so what is wrong with it
/// fails the set (as it always has) instead of being skipped.
fn oct_key(
    jwk: &Map<String, Value>,
    kid: Option<&str>,
    alg: Option<Algorithm>,
) -> Result<Parsed, Refusal> {
    let broken = |what: String| {
        Refusal::Fatal(ConfigError::InvalidJwkSet(format!(
            "oct key (kid {:?}, alg {:?}): {what}",
            kid.map(quote),
            alg.map(alg_name)
        )))
    };
    let alg = match alg {
        Some(alg) if family_of(alg) == AlgorithmFamily::Hmac => alg,
        Some(alg) => {
            return Err(broken(format!(
                "alg {:?} cannot be used with a shared secret",
                alg_name(alg)
            )))
        }
        None => return Err(broken("an oct key must name its \"alg\"".into())),
    };
    let secret = b64_member(jwk, "k").map_err(broken)?;
    check_secret(alg, &secret).map_err(Refusal::Fatal)?;
    let key = DecodingKey::from_secret(&secret)
        .map_err(|e| Refusal::Fatal(ConfigError::InvalidKey(e)))?;
    Ok((key, AlgorithmFamily::Hmac, vec![alg]))
}

/// One key of a JWK set, or why it is not used.
fn parse_jwk(
    jwk: &Map<String, Value>,
    allowed: &[Algorithm],
    allow_oct: bool,
) -> Result<VerifyKey, Refusal> {
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() > MAX_KID_LEN => {
            return skip(format!("kid longer than {MAX_KID_LEN} bytes"))
        }
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return skip("\"kid\" is not a string"),
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) if u == "enc" => {
            return skip("\"use\": \"enc\" (an encryption key)")
        }
        Some(Value::String(u)) => return skip(format!("\"use\": {:?} is not \"sig\"", quote(u))),
        Some(_) => return skip("\"use\" is not a string"),
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) => {
            if ops.iter().any(|op| !op.is_string()) {
                return skip("\"key_ops\" is not an array of strings");
            }
            if !ops.iter().any(|op| op == "verify") {
                let ops: Vec<_> = ops
                    .iter()
                    .filter_map(Value::as_str)
                    .take(8)
                    .map(quote)
                    .collect();
                return skip(format!("\"key_ops\" {ops:?} does not include \"verify\""));
            }
        }
        Some(_) => return skip("\"key_ops\" is not an array"),
    }
    let kty = match jwk.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return skip("\"kty\" is not a string"),
        None => return skip("no \"kty\" member"),
    };
    let oct = kty == "oct" && allow_oct;
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => match parse_alg(name) {
            Ok(alg) => Some(alg),
            Err(reason) if oct => {
                return Err(Refusal::Fatal(ConfigError::InvalidJwkSet(format!(
                    "oct key (kid {:?}): {reason}",
                    kid.as_deref().map(quote)
                ))))
            }
            Err(reason) => return skip(reason),
        },
        Some(_) => return skip("\"alg\" is not a string"),
    };
    let (key, family, algorithms) = match kty {
        "RSA" => rsa_key(jwk, alg).map_err(Refusal::Skip)?,
        "EC" => ec_key(jwk, alg).map_err(Refusal::Skip)?,
        "OKP" => okp_key(jwk, alg).map_err(Refusal::Skip)?,
        "oct" if allow_oct => oct_key(jwk, kid.as_deref(), alg)?,
        "oct" => return skip("a symmetric (oct) key is not accepted from this source"),
        other => return skip(format!("unknown kty {:?}", quote(other))),
    };
    let usable: Vec<_> = algorithms
        .iter()
        .copied()
        .filter(|alg| allowed.contains(alg))
        .collect();
    if usable.is_empty() {
        let names: Vec<_> = algorithms.into_iter().map(alg_name).collect();
        return skip(format!(
            "none of its algorithms {names:?} is among the allowed ones"
        ));
    }
    Ok(VerifyKey {
        kid,
        key,
        family,
        algorithms: usable,
    })
}

/// The keys of a JWK set: each key that can verify (and whose algorithms are
/// `allowed`), the others skipped with a warning. `allow_oct`: whether
/// symmetric keys are taken (only from the application's own configuration).
pub(crate) fn parse_jwk_set(
    json: &str,
    allowed: &[Algorithm],
    allow_oct: bool,
) -> Result<Keys, ConfigError> {
    let set: Value = serde_json::from_str(json)
        .map_err(|e| ConfigError::InvalidJwkSet(format!("not JSON: {e}")))?;
    let Some(list) = set.get("keys").and_then(Value::as_array) else {
        return Err(ConfigError::InvalidJwkSet(
            "not a JWK set: no \"keys\" array".into(),
        ));
    };
    if list.is_empty() {
        return Err(ConfigError::NoKeys);
    }
    let mut keys = Keys::default();
    for (index, jwk) in list.iter().enumerate() {
        let parsed = match jwk.as_object() {
            Some(jwk) => parse_jwk(jwk, allowed, allow_oct),
            None => skip("not a JSON object"),
        };
        match parsed {
            Ok(key) => keys.verify.push(key),
            Err(Refusal::Fatal(e)) => return Err(e),
            Err(Refusal::Skip(reason)) => {
                let member = |name: &str| jwk.get(name).and_then(Value::as_str).map(quote);
                let skipped = SkippedKey {
                    index,
                    kid: member("kid"),
                    alg: member("alg"),
                    reason,
                };
                tracing::warn!(
                    index,
                    kid = ?skipped.kid,
                    alg = ?skipped.alg,
                    reason = %skipped.reason,
                    "JWK set: key skipped, it cannot verify tokens"
                );
                keys.skipped.push(skipped);
            }
        }
    }
    if keys.verify.is_empty() {
        return Err(ConfigError::NoUsableKey(keys.skipped));
    }
    Ok(keys)
}

/// One verification key.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    pub(crate) family: AlgorithmFamily,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// The key tokens are signed with by [`Sessions`](crate::Sessions).
#[derive(Clone)]
pub(crate) struct SignKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: EncodingKey,
    pub(crate) algorithm: Algorithm,
}

/// The set of keys a [`JwtAuth`](crate::JwtAuth) verifies with, and optionally
/// the one it signs with.
///
/// Each key has its own algorithm allowlist. With several keys, a token's
/// `kid` selects one; a token without `kid` is tried against the keys that
/// allow its `alg`.
///
/// # Example
///
/// ```
/// use tower_jwt_auth::{Keys, Algorithm};
///
/// // One HMAC key that signs and verifies HS256.
/// let keys = Keys::hs256(b"a secret of at least thirty-two bytes!")?;
///
/// // Too short a secret is a configuration error, not a weak deployment.
/// assert!(Keys::hs256(b"short").is_err());
///
/// // Rotation: a new key by kid, the old one kept for verification.
/// let keys = Keys::hmac(Algorithm::HS256, b"the new secret, thirty-two bytes+")?
///     .kid("2026-11")?
///     .and(Keys::hmac(Algorithm::HS256, b"the old secret, thirty-two bytes+")?.kid("2026-10")?);
/// # Ok::<(), tower_jwt_auth::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct Keys {
    pub(crate) verify: Vec<VerifyKey>,
    pub(crate) sign: Option<SignKey>,
    pub(crate) skipped: Vec<SkippedKey>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Key<'a>(&'a VerifyKey);
        impl fmt::Debug for Key<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Key")
                    .field("kid", &self.0.kid)
                    .field("algorithms", &self.0.algorithms)
                    .field("material", &"[redacted]")
                    .finish()
            }
        }
        f.debug_struct("Keys")
            .field("verify", &self.verify.iter().map(Key).collect::<Vec<_>>())
            .field(
                "sign",
                &self
                    .sign
                    .as_ref()
                    .map(|s| (s.algorithm, s.kid.as_deref(), "[redacted]")),
            )
            .field("skipped", &self.skipped)
            .finish()
    }
}

fn family_of(alg: Algorithm) -> AlgorithmFamily {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
        _ => AlgorithmFamily::Rsa,
    }
}

fn hmac_min_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn check_secret(alg: Algorithm, secret: &[u8]) -> Result<(), ConfigError> {
    if family_of(alg) != AlgorithmFamily::Hmac {
        return Err(ConfigError::AlgorithmMismatch {
            alg,
            family: AlgorithmFamily::Hmac,
        });
    }
    let min = hmac_min_len(alg);
    if secret.len() < min {
        return Err(ConfigError::WeakSecret {
            alg,
            min,
            got: secret.len(),
        });
    }
    Ok(())
}

impl Keys {
    fn single(key: DecodingKey, alg: Algorithm) -> Self {
        Self {
            verify: vec![VerifyKey {
                kid: None,
                key,
                family: family_of(alg),
                algorithms: vec![alg],
            }],
            sign: None,
            skipped: Vec::new(),
        }
    }

    /// An HS256 secret that verifies and signs.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakSecret`] when the secret is shorter than 32 bytes.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Self::hmac(Algorithm::HS256, secret)
    }

    /// An HMAC secret (HS256/384/512) that verifies and signs.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakSecret`] when the secret is shorter than the hash
    /// output (32, 48, 64 bytes); [`ConfigError::AlgorithmMismatch`] for a
    /// non-HMAC algorithm.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        check_secret(alg, secret)?;
        let mut keys = Self::single(
            DecodingKey::from_secret(secret).map_err(ConfigError::InvalidKey)?,
            alg,
        );
        keys.sign = Some(SignKey {
            kid: None,
            key: EncodingKey::from_secret(secret).map_err(ConfigError::InvalidKey)?,
            algorithm: alg,
        });
        Ok(keys)
    }

    /// A public key in PEM (RSA, EC or Ed25519, chosen by `alg`), verify only.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] when the PEM does not hold such a key;
    /// [`ConfigError::AlgorithmMismatch`] for an HMAC algorithm.
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        let key = match family_of(alg) {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            family => return Err(ConfigError::AlgorithmMismatch { alg, family }),
        }
        .map_err(ConfigError::InvalidKey)?;
        Ok(Self::single(key, alg))
    }

    /// A public key in DER (RSA PKCS#1, EC point, Ed25519 raw), verify only.
    ///
    /// # Errors
    ///
    /// [`ConfigError::AlgorithmMismatch`] for an HMAC algorithm.
    pub fn from_der(alg: Algorithm, der: &[u8]) -> Result<Self, ConfigError> {
        let key = match family_of(alg) {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_der(der),
            AlgorithmFamily::Ec => DecodingKey::from_ec_der(der),
            AlgorithmFamily::Ed => DecodingKey::from_ed_der(der),
            family => return Err(ConfigError::AlgorithmMismatch { alg, family }),
        };
        Ok(Self::single(key, alg))
    }

    /// Every key of a JWK set (JSON) that can verify tokens, selected by `kid`.
    ///
    /// Each key accepts the algorithms its `alg` member names, which must fit
    /// the key: RS*/PS* for `RSA`, ES256 for a P-256 and ES384 for a P-384 `EC`
    /// key, EdDSA for an Ed25519 `OKP` key, HS* for an `oct` key. Without
    /// `alg`, an RSA key accepts RS256/384/512 and PS256/384/512, an EC or OKP
    /// key the one algorithm of its curve; an `oct` key must name its `alg`.
    /// `x5c`, `x5t` and other members are ignored. See
    /// [`from_jwk_set_allowing`](Self::from_jwk_set_allowing) to narrow the
    /// algorithms.
    ///
    /// A key that cannot verify here is skipped, logged with a warning and
    /// listed by [`skipped`](Self::skipped), and the others are kept:
    /// `"use"` other than `"sig"`, `key_ops` without `"verify"`, an unknown
    /// `kty`, a curve jsonwebtoken does not support (P-521, secp256k1, Ed448)
    /// or that is not for signatures (X25519, X448), an `alg` that does not fit
    /// the key (a P-256 key labelled ES384, an RSA key labelled HS256), an
    /// encryption or unknown `alg`, an RSA modulus outside 2048–8192 bits,
    /// malformed members. `alg` names are case-sensitive (RFC 7517 §4.4): a
    /// key with `"alg": "rs256"` is skipped, with the correct spelling in the
    /// reason.
    ///
    /// An `oct` key is the application's own secret, so a broken one is an
    /// error rather than a skip: a secret shorter than the hash output, a
    /// missing or non-HMAC `alg`, `k` not base64url.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_jwt_auth::{ConfigError, Keys};
    ///
    /// let jwks = r#"{"keys": [
    ///     {"kty": "oct", "kid": "hmac", "alg": "HS256",
    ///      "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
    ///     {"kty": "EC", "kid": "p521", "crv": "P-521", "alg": "ES512",
    ///      "x": "AQ", "y": "AQ"}
    /// ]}"#;
    /// let keys = Keys::from_jwk_set(jwks)?;
    /// assert_eq!(keys.skipped()[0].kid.as_deref(), Some("p521"));
    ///
    /// // Nothing usable left: the error lists each key and why.
    /// let err = Keys::from_jwk_set(r#"{"keys": [
    ///     {"kty": "EC", "kid": "p521", "crv": "P-521", "alg": "ES512", "x": "AQ", "y": "AQ"}
    /// ]}"#).unwrap_err();
    /// assert!(matches!(err, ConfigError::NoUsableKey(_)));
    /// assert!(err.to_string().contains("\"p521\""));
    /// # Ok::<(), ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidJwkSet`] when the JSON is not an object with a
    /// `keys` array, or an `oct` key is broken (naming its `kid` and `alg`);
    /// [`ConfigError::WeakSecret`] or [`ConfigError::AlgorithmMismatch`] for an
    /// `oct` key; [`ConfigError::NoKeys`] for an empty set;
    /// [`ConfigError::NoUsableKey`] when every key was skipped.
    pub fn from_jwk_set(json: &str) -> Result<Self, ConfigError> {
        parse_jwk_set(json, &ALGORITHMS.map(|(_, alg)| alg), true)
    }

    /// Like [`from_jwk_set`](Self::from_jwk_set), but each key accepts only
    /// the algorithms of `allowed` that fit it. A key none of whose algorithms
    /// is allowed is skipped like any other unusable key.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_jwt_auth::{Algorithm, Keys};
    ///
    /// // An RSA key without `alg` would accept RS256..PS512: only RS256 and PS256 here.
    /// let jwks = r#"{"keys": [{"kty": "RSA", "kid": "r",
    ///     "n": "m_MGA0smHohj1aluvQUhypZF2mI9Pbg9Kfe4c3GVd827kJ_LAn2K3Xv8EU5tHyy6WEJTWuTjpq36-t4yaUSTB-90iwoPGh4aWHIEr5gI6g9fdVGWIg8x3knwJVRZGAQR-KAAoir41pNCJXOZGbRUJ4O3G7FGU-nmR10a62gvLkZB4cUDAjQ2mILVF9eM9kHjxFU1CvukXXxak9qbKgbRdPKVNtJkRsxkooMh5QWZb2JOiLxuW43JPKopSChBhh3GxiIL-dzf7zRNCafYxngIVG-X8KVSGfCGt3NDjVE5wgMOKccrCoCi_OyvYF6bJlNoZJ4gA5AlZ_B4cq0Ylcqx4w",
    ///     "e": "AQAB"}]}"#;
    /// let keys = Keys::from_jwk_set_allowing(jwks, &[Algorithm::RS256, Algorithm::PS256])?;
    /// assert!(keys.skipped().is_empty());
    ///
    /// // Nothing of the set fits: an error.
    /// assert!(Keys::from_jwk_set_allowing(jwks, &[Algorithm::ES256]).is_err());
    /// # Ok::<(), tower_jwt_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`from_jwk_set`](Self::from_jwk_set).
    pub fn from_jwk_set_allowing(json: &str, allowed: &[Algorithm]) -> Result<Self, ConfigError> {
        parse_jwk_set(json, allowed, true)
    }

    /// Set the `kid` of the keys built last (verification and signing).
    ///
    /// # Errors
    ///
    /// [`ConfigError::KidTooLong`] beyond 256 bytes.
    pub fn kid(mut self, kid: impl Into<String>) -> Result<Self, ConfigError> {
        let kid = kid.into();
        if kid.len() > MAX_KID_LEN {
            return Err(ConfigError::KidTooLong);
        }
        if let Some(last) = self.verify.last_mut() {
            last.kid = Some(kid.clone());
        }
        if let Some(sign) = &mut self.sign {
            sign.kid = Some(kid);
        }
        Ok(self)
    }

    /// Also accept `alg` for the key built last (same family only).
    ///
    /// # Errors
    ///
    /// [`ConfigError::AlgorithmMismatch`] when `alg` is of another family.
    pub fn allow(mut self, alg: Algorithm) -> Result<Self, ConfigError> {
        if let Some(last) = self.verify.last_mut() {
            if last.family != family_of(alg) {
                return Err(ConfigError::AlgorithmMismatch {
                    alg,
                    family: last.family,
                });
            }
            if !last.algorithms.contains(&alg) {
                last.algorithms.push(alg);
            }
        }
        Ok(self)
    }

    /// Add the keys of `other` (verification keys after ours; its signing key
    /// only if we have none).
    #[must_use]
    pub fn and(mut self, other: Keys) -> Self {
        self.verify.extend(other.verify);
        self.skipped.extend(other.skipped);
        if self.sign.is_none() {
            self.sign = other.sign;
        }
        self
    }

    /// Sign issued tokens with this private key (PEM) and algorithm, e.g. RS256
    /// with the private half of a verification key.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] for a PEM that does not hold such a key.
    pub fn signing_pem(
        mut self,
        alg: Algorithm,
        private_pem: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let key = match family_of(alg) {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(private_pem),
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(private_pem),
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(private_pem),
            family => return Err(ConfigError::AlgorithmMismatch { alg, family }),
        }
        .map_err(ConfigError::InvalidKey)?;
        self.sign = Some(SignKey {
            kid: kid.map(str::to_owned),
            key,
            algorithm: alg,
        });
        Ok(self)
    }

    /// The keys of JWK sets that were left out because they cannot verify
    /// tokens here, each with its `kid`, `alg` and the reason (each was also
    /// logged as a warning when the set was read).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_jwt_auth::Keys;
    ///
    /// let keys = Keys::from_jwk_set(r#"{"keys": [
    ///     {"kty": "oct", "kid": "hmac", "alg": "HS256",
    ///      "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
    ///     {"kty": "OKP", "kid": "dh", "crv": "X25519",
    ///      "x": "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08"}
    /// ]}"#)?;
    /// assert_eq!(keys.skipped().len(), 1);
    /// assert_eq!(keys.skipped()[0].kid.as_deref(), Some("dh"));
    /// assert!(keys.skipped()[0].reason.contains("X25519"));
    /// # Ok::<(), tower_jwt_auth::ConfigError>(())
    /// ```
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Whether a signing key is configured (needed to issue tokens).
    pub fn can_sign(&self) -> bool {
        self.sign.is_some()
    }

    /// The keys a token with this header may be checked against, in order.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        let single = self.verify.len() == 1;
        self.verify.iter().filter(move |k| {
            let by_kid = match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // A lone key without kid accepts tokens with any kid.
                (Some(_), None) => single,
                (None, _) => true,
            };
            by_kid && k.algorithms.contains(&alg)
        })
    }

    /// Whether some key carries this kid (to tell "unknown key" from "alg not allowed").
    pub(crate) fn knows_kid(&self, kid: &str) -> bool {
        self.verify.len() == 1 && self.verify[0].kid.is_none()
            || self.verify.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Make sure `jsonwebtoken` has a crypto provider (it panics at use otherwise,
/// e.g. when both backend features are on).
pub(crate) fn ensure_crypto_provider() {
    use jsonwebtoken::crypto::CryptoProvider;
    if CryptoProvider::try_get_default().is_some() {
        return;
    }
    #[cfg(feature = "aws_lc_rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!("tower-jwt-auth needs a crypto backend: enable the `aws_lc_rs` (default) or `rust_crypto` feature");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quote_cuts_on_a_char_boundary() {
        assert_eq!(quote("kid"), "kid");
        let exact = "é".repeat(QUOTE_LEN);
        assert_eq!(quote(&exact), exact);
        let long = "é".repeat(QUOTE_LEN + 1);
        assert_eq!(quote(&long), format!("{exact}…"));
    }

    #[test]
    fn alg_names_are_case_sensitive_with_a_hint() {
        for (name, alg) in ALGORITHMS {
            assert_eq!(parse_alg(name), Ok(alg));
            assert_eq!(alg_name(alg), name);
            let lower = parse_alg(&name.to_ascii_lowercase()).unwrap_err();
            assert!(lower.contains(&format!("did you mean {name:?}")), "{lower}");
        }
        for enc in [
            "RSA-OAEP",
            "RSA-OAEP-256",
            "RSA1_5",
            "A128KW",
            "dir",
            "ECDH-ES+A256KW",
            "A256GCM",
        ] {
            assert!(parse_alg(enc).unwrap_err().contains("encryption"), "{enc}");
        }
        for unsupported in ["ES512", "ES256K", "Ed448", "Ed25519"] {
            assert!(
                parse_alg(unsupported)
                    .unwrap_err()
                    .contains("not supported"),
                "{unsupported}"
            );
        }
        assert!(parse_alg("none").unwrap_err().contains("not a signature"));
        assert!(parse_alg("").unwrap_err().starts_with("unknown alg"));
    }

    #[test]
    fn skipped_key_display_names_kid_and_alg() {
        let key = SkippedKey {
            index: 3,
            kid: None,
            alg: None,
            reason: "why".into(),
        };
        assert_eq!(key.to_string(), "key 3 (no kid, no alg): why");
        let err = ConfigError::NoUsableKey(vec![
            key,
            SkippedKey {
                index: 4,
                kid: Some("k".into()),
                alg: Some("ES512".into()),
                reason: "because".into(),
            },
        ]);
        assert_eq!(
            err.to_string(),
            "no usable key in the JWK set: key 3 (no kid, no alg): why; \
             key 4 (kid \"k\", alg \"ES512\"): because"
        );
    }

    fn member() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[A-Za-z0-9_=-]{0,12}".prop_map(Value::from),
            prop::sample::select(vec![
                "RSA", "EC", "OKP", "oct", "P-256", "P-384", "P-521", "Ed25519", "X25519", "sig",
                "enc", "verify", "RS256", "ES384", "EdDSA", "HS256", "rs256", "AQAB",
            ])
            .prop_map(Value::from),
            prop::collection::vec("[a-z]{0,6}", 0..3).prop_map(Value::from),
        ]
    }

    proptest! {
        /// Whatever the members, a JWK set is read without panicking, and
        /// every key either verifies or is reported.
        #[test]
        fn any_jwk_set_is_read_without_panicking(
            keys in prop::collection::vec(
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "kty", "kid", "alg", "use", "key_ops", "crv", "x", "y", "n", "e", "k", "x5c",
                    ]),
                    member(),
                    0..8,
                ),
                0..4,
            )
        ) {
            let keys: Vec<Value> = keys
                .into_iter()
                .map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
                .collect();
            let n = keys.len();
            let json = serde_json::json!({ "keys": keys }).to_string();
            match Keys::from_jwk_set(&json) {
                Ok(keys) => prop_assert_eq!(keys.verify.len() + keys.skipped.len(), n),
                Err(ConfigError::NoUsableKey(skipped)) => prop_assert_eq!(skipped.len(), n),
                Err(_) => {}
            }
        }
    }
}
