//! JWK sets ([RFC 7517](https://www.rfc-editor.org/rfc/rfc7517)) as
//! published in the wild: every key read on its own, so that one key this
//! library cannot use (another `use`, `key_ops` without `verify`, an
//! unsupported curve or `alg`) is skipped and reported instead of failing
//! the whole set.

use std::fmt;

use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};

use super::{check_secret, family_of, ConfigError, Keys, VerifyKey, MAX_KID_LEN, RSA_ALGORITHMS};

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
pub(super) struct SkippedList<'a>(pub(super) &'a [SkippedKey]);

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

/// Every algorithm, by its registered (case-sensitive) name.
pub(super) const ALGORITHMS: [(&str, Algorithm); 12] = [
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
    read_jwk_set(json, allowed, allow_oct, true)
}

/// [`parse_jwk_set`], each skipped key logged as a warning when `warn`.
fn read_jwk_set(
    json: &str,
    allowed: &[Algorithm],
    allow_oct: bool,
    warn: bool,
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
                if warn {
                    tracing::warn!(
                        index,
                        kid = ?skipped.kid,
                        alg = ?skipped.alg,
                        reason = %skipped.reason,
                        "JWK set: key skipped, it cannot verify tokens"
                    );
                }
                keys.skipped.push(skipped);
            }
        }
    }
    if keys.verify.is_empty() {
        return Err(ConfigError::NoUsableKey(keys.skipped));
    }
    Ok(keys)
}

/// The keys of a JWK set fetched from an identity provider (`remote-keys`):
/// symmetric (`oct`) keys only when `allow_oct` (an explicit opt-in). The
/// skipped keys are not logged here: the caller logs them when they change,
/// not at every refresh.
#[cfg(feature = "remote-keys")]
impl Keys {
    pub(crate) fn from_fetched_jwk_set(
        json: &str,
        allowed: &[Algorithm],
        allow_oct: bool,
    ) -> Result<Keys, ConfigError> {
        read_jwk_set(json, allowed, allow_oct, false)
    }
}

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
