//! Verification (and signing) keys, selected by `kid`, each with its own
//! algorithm allowlist ([RFC 8725 §3.1](https://www.rfc-editor.org/rfc/rfc8725#section-3.1)).
//!
//! The `alg` of a token's header never widens what a key accepts: a key made
//! for RS256 rejects an HS256 token signed with the RSA public key as its
//! secret (algorithm confusion), and `none` is not an algorithm at all.

use std::fmt;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

/// Longest `kid` that is looked up; longer ones are rejected unread.
pub(crate) const MAX_KID_LEN: usize = 256;

/// The RSA signature algorithms (PKCS#1 v1.5 and PSS), all of which an RSA
/// key without `alg` accepts.
pub(crate) const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Every asymmetric signature algorithm jsonwebtoken supports: the RSA ones,
/// ECDSA (ES256, ES384) and EdDSA. What a remote key accepts by default,
/// and what a DPoP proof may be signed with by default.
pub(crate) const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = {
    // The compact ones first: the order a DPoP challenge lists them in.
    let [rs256, rs384, rs512, ps256, ps384, ps512] = RSA_ALGORITHMS;
    [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        rs256,
        rs384,
        rs512,
        ps256,
        ps384,
        ps512,
    ]
};

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
}

mod jwk;

pub use self::jwk::SkippedKey;
use self::jwk::{parse_jwk_set, SkippedList, ALGORITHMS};

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

pub(super) fn family_of(alg: Algorithm) -> AlgorithmFamily {
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

pub(super) fn check_secret(alg: Algorithm, secret: &[u8]) -> Result<(), ConfigError> {
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
