//! DPoP on the resource server ([RFC 9449](https://www.rfc-editor.org/rfc/rfc9449)):
//! tokens a thief cannot use without the client's private key.
//!
//! A token whose claims hold `cnf.jkt` is bound to a key. [`JwtAuth`](crate::JwtAuth)
//! accepts it only as `Authorization: DPoP <token>` with exactly one `DPoP`
//! header holding a proof JWT signed by that key, fresh, for this method and
//! URL and this token, and never seen before (its `jti` is remembered by the
//! revocation store, so a replay is refused on every instance that shares
//! it). A bound token sent as `Bearer` is refused; a token without `cnf`
//! works as a bearer token as before. Always on: [`JwtAuth::dpop`](crate::JwtAuth::dpop)
//! only changes the settings ([`Dpop`]).
//!
//! - `jwk`: the proof's public key and its RFC 7638 thumbprint;
//! - `htu`: the URL a proof names, and the request's;
//! - `proof`: the proof's checks, in order.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use crate::store::MemoryStore;

mod htu;
mod jwk;
mod proof;

pub use self::jwk::jwk_thumbprint;
pub(crate) use self::proof::{check, Checked, Expect, MAX_PROOF_LEN};

/// The algorithms accepted in proofs by default (every asymmetric one
/// `jsonwebtoken` verifies).
const DEFAULT_ALGORITHMS: [Algorithm; 9] = crate::keys::ASYMMETRIC_ALGORITHMS;

/// DPoP settings of a [`JwtAuth`](crate::JwtAuth) (see the [module docs](self)).
///
/// Defaults: the URL a proof must name (`htu`) is `http://` and the
/// request's `Host` (set [`public_url`](Self::public_url) behind TLS or a
/// proxy); `iat` at most 60 s away from now either way, plus the layer's
/// leeway; every asymmetric algorithm `jsonwebtoken` verifies (ES256,
/// ES384, EdDSA, RS256/384/512, PS256/384/512), never `none` or HMAC.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_auth::{Algorithm, Dpop, JwtAuth, Keys};
///
/// #[derive(Clone, serde::Deserialize)]
/// struct MyClaims {}
///
/// let dpop = Dpop::new()
///     .public_url("https://api.example.com")?
///     .iat_window(Duration::from_secs(30))
///     .algorithms([Algorithm::ES256, Algorithm::EdDSA])?;
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
///     .dpop(dpop);
/// # Ok::<(), tower_jwt_auth::DpopConfigError>(())
/// ```
#[derive(Clone)]
pub struct Dpop {
    pub(crate) public_url: Option<String>,
    pub(crate) window: Duration,
    pub(crate) algorithms: Vec<Algorithm>,
    /// The algorithms for the `algs` challenge parameter, space-separated.
    pub(crate) algs: Arc<str>,
    /// Where proofs' `jti`s are remembered when the layer has no store: in
    /// this process only.
    pub(crate) local_replay: Arc<MemoryStore>,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("public_url", &self.public_url)
            .field("iat_window", &self.window)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl Default for Dpop {
    fn default() -> Self {
        Self::new()
    }
}

/// A mistake in the [`Dpop`] settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopConfigError {
    /// The public URL is not an `http` or `https` URL without user info,
    /// query or fragment.
    #[error("DPoP public URL {0:?} is not an http(s) URL without query and fragment")]
    PublicUrl(String),
    /// A symmetric algorithm: a proof is signed with a key whose public
    /// half it carries.
    #[error("DPoP proofs cannot use the symmetric algorithm {0:?}")]
    SymmetricAlgorithm(Algorithm),
    /// No algorithm at all.
    #[error("DPoP needs at least one algorithm")]
    NoAlgorithm,
}

impl Dpop {
    /// The defaults (see [`Dpop`]).
    pub fn new() -> Self {
        Self {
            public_url: None,
            window: Duration::from_secs(60),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            algs: algs_of(&DEFAULT_ALGORITHMS),
            local_replay: Arc::new(MemoryStore::new()),
        }
    }

    /// The public base URL of this service, as clients name it in a
    /// proof's `htu` (e.g. `https://api.example.com`, or with a path prefix
    /// the service is mounted under, `https://example.com/api`): the URL a
    /// proof must name is this followed by the request's path. Without it,
    /// `http://` and the request's `Host`.
    ///
    /// # Errors
    ///
    /// [`DpopConfigError::PublicUrl`] for anything but an `http(s)` URL
    /// without user info, query and fragment.
    pub fn public_url(mut self, url: &str) -> Result<Self, DpopConfigError> {
        let bad = || DpopConfigError::PublicUrl(url.chars().take(200).collect());
        if url.contains(['?', '#']) {
            return Err(bad());
        }
        let mut normal = htu::normalize(url).ok_or_else(bad)?;
        while normal.ends_with('/') {
            normal.pop();
        }
        self.public_url = Some(normal);
        Ok(self)
    }

    /// How far a proof's `iat` may be from now, either way (default 60 s);
    /// the layer's [`leeway`](crate::JwtAuth::leeway) is added. A proof's
    /// `jti` is remembered as long as the proof could be accepted.
    #[must_use]
    pub fn iat_window(mut self, window: Duration) -> Self {
        self.window = window.min(Duration::from_secs(24 * 3600));
        self
    }

    /// The algorithms accepted in proofs (and announced in the `algs`
    /// challenge parameter).
    ///
    /// # Errors
    ///
    /// An HMAC algorithm, or none at all.
    pub fn algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, DpopConfigError> {
        let mut list = Vec::new();
        for alg in algorithms {
            if alg.family() == AlgorithmFamily::Hmac {
                return Err(DpopConfigError::SymmetricAlgorithm(alg));
            }
            if !list.contains(&alg) {
                list.push(alg);
            }
        }
        if list.is_empty() {
            return Err(DpopConfigError::NoAlgorithm);
        }
        self.algs = algs_of(&list);
        self.algorithms = list;
        Ok(self)
    }

    /// The URL a proof for this request must name, normalized.
    pub(crate) fn request_url(
        &self,
        scheme: Option<&str>,
        authority: Option<&str>,
        path: &str,
    ) -> Option<String> {
        htu::request_url(self.public_url.as_deref(), scheme, authority, path)
    }
}

/// Fuzzing entry point (not a stable API): `url` through the `htu`
/// normalization (which must be idempotent), then `proof` checked against
/// a fixed request for that URL. Whether the proof passed.
#[doc(hidden)]
pub fn fuzz_proof(proof: &str, url: &str) -> bool {
    crate::keys::ensure_crypto_provider();
    let normal = htu::normalize(url);
    if let Some(normal) = &normal {
        assert_eq!(
            htu::normalize(normal).as_ref(),
            Some(normal),
            "normalize is idempotent"
        );
    }
    let expect = Expect {
        algorithms: &DEFAULT_ALGORITHMS,
        method: "GET",
        url: normal.as_deref().unwrap_or("https://h/"),
        access_token: Some("token"),
        jkt: None,
        now: 1_700_000_000,
        window: 90,
    };
    check(proof, &expect).is_ok()
}

fn algs_of(algorithms: &[Algorithm]) -> Arc<str> {
    algorithms
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
        .into()
}

/// A DPoP proof a request carried, checked: see
/// [`JwtAuth::dpop_proof`](crate::JwtAuth::dpop_proof).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpopProof {
    /// The RFC 7638 SHA-256 thumbprint of its key: what a token bound to
    /// it carries as `cnf.jkt`.
    pub jkt: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_or_no_algorithms_are_refused() {
        assert_eq!(
            Dpop::new()
                .algorithms([Algorithm::ES256, Algorithm::HS256])
                .unwrap_err(),
            DpopConfigError::SymmetricAlgorithm(Algorithm::HS256)
        );
        assert_eq!(
            Dpop::new().algorithms([]).unwrap_err(),
            DpopConfigError::NoAlgorithm
        );
        let dpop = Dpop::new()
            .algorithms([Algorithm::EdDSA, Algorithm::ES256, Algorithm::EdDSA])
            .unwrap();
        assert_eq!(&*dpop.algs, "EdDSA ES256");
        assert_eq!(
            &*Dpop::new().algs,
            "ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512"
        );
    }

    #[test]
    fn the_public_url_is_validated_and_normalized() {
        let dpop = Dpop::new()
            .public_url("HTTPS://Api.Example.com:443/v1/")
            .unwrap();
        assert_eq!(
            dpop.public_url.as_deref(),
            Some("https://api.example.com/v1")
        );
        assert_eq!(
            dpop.request_url(None, Some("evil:1"), "/me").as_deref(),
            Some("https://api.example.com/v1/me")
        );
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://x/?q",
            "https://x/#f",
            "https://u@x",
        ] {
            assert!(Dpop::new().public_url(bad).is_err(), "{bad}");
        }
    }
}
