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

use crate::layer::JwtAuth;

impl<C: serde::de::DeserializeOwned> JwtAuth<C> {
    /// A valid token for `subject` with `claims` (issuer, audience, `jti`,
    /// `iat`, `exp` from the configuration).
    ///
    /// # Panics
    ///
    /// When the layer has no signing key or `claims` is not a JSON object.
    pub fn test_token(&self, subject: &str, claims: &impl Serialize) -> String {
        self.sessions()
            .issue(subject, claims)
            .expect("test_token: this JwtAuth cannot sign (no signing key?)")
            .token
    }

    /// A token that expired an hour ago (beyond any sensible leeway).
    ///
    /// # Panics
    ///
    /// When the layer has no signing key or `claims` is not a JSON object.
    pub fn test_token_expired(&self, subject: &str, claims: &impl Serialize) -> String {
        let mut object = serde_json::to_value(claims).expect("claims must serialize");
        let past = crate::store::unix_millis() / 1000 - 3600 - self.inner.rules.leeway;
        let map = object
            .as_object_mut()
            .expect("claims must be a JSON object");
        map.insert("iat".into(), (past - 60).into());
        map.insert("exp".into(), past.into());
        self.sign_raw(subject, &object)
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

    fn sign_raw(&self, subject: &str, object: &serde_json::Value) -> String {
        let sign = self.inner.keys.sign.as_ref().expect("no signing key");
        let mut object = object.clone();
        let map = object
            .as_object_mut()
            .expect("claims must be a JSON object");
        map.insert("sub".into(), subject.into());
        map.insert("jti".into(), crate::util::random_token(16).into());
        if let Some(iss) = self.inner.rules.issuers.first() {
            map.insert("iss".into(), iss.clone().into());
        }
        if let Some(aud) = self.inner.rules.audiences.first() {
            map.insert("aud".into(), aud.clone().into());
        }
        let mut header = jsonwebtoken::Header::new(sign.algorithm);
        header.kid = sign.kid.clone();
        header.typ = self.inner.rules.typ.clone().or(Some("JWT".into()));
        jsonwebtoken::encode(&header, &object, &sign.key).expect("signing failed")
    }
}
