//! Helpers for your own tests (feature `test-util`): mint tokens that a
//! configured [`JwtAuth`] accepts, or rejects for a known reason, in one line.
//!
//! ```
//! use tower_jwt_auth::{JwtAuth, Keys, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! #[derive(Clone, serde::Deserialize)]
//! struct MyClaims { roles: Vec<String> }
//!
//! let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap())
//!     .store(MemoryStore::new());
//! let claims = serde_json::json!({ "roles": ["user"] });
//!
//! let good = auth.test_token("alice", &claims);
//! let expired = auth.test_token_expired("alice", &claims);
//! let revoked = auth.test_token_revoked("alice", &claims).await;
//! assert!(auth.verify(&good).is_ok());
//! assert!(auth.verify(&expired).is_err());
//! # let _ = revoked;
//! # }
//! ```

use serde::Serialize;

use crate::keys::Keys;
use crate::layer::JwtAuth;

/// The `kid` of the key [`JwtAuth::with_test_signer`] adds.
pub const TEST_KID: &str = "tower-jwt-auth-test";

impl<C> JwtAuth<C> {
    /// For tests: when the configured keys cannot sign (a production-style
    /// JWK set of public keys, say), add a random HS256 key with `kid`
    /// [`TEST_KID`] that signs and verifies, so that
    /// [`test_token`](Self::test_token) and friends work without touching the
    /// production keys. With a signing key already configured, nothing
    /// changes.
    ///
    /// Never call this outside tests: the layer then accepts the test key's
    /// tokens too.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_jwt_auth::{JwtAuth, Keys};
    ///
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims {}
    ///
    /// let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"prod","use":"sig","alg":"ES256",
    ///     "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    /// let auth = JwtAuth::<MyClaims>::new(Keys::from_jwk_set(jwks).unwrap()).with_test_signer();
    /// let token = auth.test_token("alice", &serde_json::json!({}));
    /// assert!(auth.verify(&token).is_ok());
    /// ```
    ///
    /// # Panics
    ///
    /// Never in practice: the random secret is always a valid HS256 key.
    #[must_use]
    pub fn with_test_signer(self) -> Self {
        if self.keys().can_sign() {
            return self;
        }
        let secret = crate::util::random_token(48);
        let test_key = Keys::hs256(secret.as_bytes())
            .and_then(|k| k.kid(TEST_KID))
            .expect("a 64-character secret is a valid HS256 key");
        let keys = self.keys().clone().and(test_key);
        self.with_keys(keys)
    }
}

impl<C: serde::de::DeserializeOwned> JwtAuth<C> {
    /// A valid token for `subject` with `claims` (issuer, audience, `jti`,
    /// `iat`, `exp` from the configuration).
    ///
    /// # Panics
    ///
    /// When the layer has no signing key (see
    /// [`with_test_signer`](Self::with_test_signer)) or `claims` is not a
    /// JSON object.
    pub fn test_token(&self, subject: &str, claims: &impl Serialize) -> String {
        self.sessions()
            .issue(subject, claims)
            .expect("test_token: this JwtAuth cannot sign: call .with_test_signer() in tests")
            .token
    }

    /// A token that expired an hour ago (beyond any sensible leeway).
    ///
    /// # Panics
    ///
    /// As [`test_token`](Self::test_token).
    pub fn test_token_expired(&self, subject: &str, claims: &impl Serialize) -> String {
        let claims = match serde_json::to_value(claims).expect("claims must serialize") {
            serde_json::Value::Object(map) => map,
            _ => panic!("claims must be a JSON object"),
        };
        let config = self.config();
        let past = (crate::util::unix_millis() / 1000)
            .saturating_sub(3600)
            .saturating_sub(config.leeway().as_secs());
        config
            .mint(subject, None, (past.saturating_sub(60), past), claims)
            .expect("test token: this JwtAuth cannot sign: call .with_test_signer() in tests")
            .token
    }

    /// A valid token for `subject` that has been revoked in the store.
    ///
    /// # Panics
    ///
    /// Without a signing key or a store.
    pub async fn test_token_revoked(&self, subject: &str, claims: &impl Serialize) -> String {
        let token = self.test_token(subject, claims);
        self.revoke(&token)
            .await
            .expect("test_token_revoked: revocation failed (no store?)");
        token
    }
}
