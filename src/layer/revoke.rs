//! Revocation through the layer: one token ([`JwtAuth::revoke`]), the
//! token of a request ([`JwtAuth::revoke_authenticated`]) and every token of a
//! subject ([`JwtAuth::revoke_subject`]). Each write has this one home;
//! [`Sessions`](crate::Sessions) calls it too.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::claims::Authenticated;
use crate::error::AuthError;
use crate::store::{RevocationStore, StoreError};

use super::JwtAuth;

impl<C> JwtAuth<C> {
    /// Log out the token these claims came from (e.g. in a logout handler).
    ///
    /// # Errors
    ///
    /// When the store fails or none is set.
    pub async fn revoke_authenticated(&self, auth: &Authenticated<C>) -> Result<(), StoreError> {
        self.revoke_token_id(auth.store_subject(), auth.token_id(), auth.registered.exp)
            .await
    }

    pub(crate) async fn revoke_token_id(
        &self,
        subject: &str,
        token_id: &str,
        exp: Option<u64>,
    ) -> Result<(), StoreError> {
        let store = self.require_store()?;
        let Some(ttl) = self.config.deny_ttl(exp, crate::util::unix_millis()) else {
            // Past exp + leeway the token is refused anyway: nothing to write.
            return Ok(());
        };
        store.deny_token(subject, token_id, ttl).await
    }

    /// Log out everywhere: every token of `subject` issued up to now (same
    /// second included) is rejected, and all its sessions end. A login
    /// right after it, even within the same second, is not affected: its
    /// session is younger than the mark (kept in milliseconds). A token
    /// without a session issued within the mark's second is refused (an
    /// `iat` has whole seconds): for tokens of a remote issuer, and for
    /// [`Sessions::issue`](crate::Sessions::issue), that second is the limit.
    ///
    /// # Errors
    ///
    /// When the store fails or none is set.
    pub async fn revoke_subject(&self, subject: &str) -> Result<(), StoreError> {
        let store = self.require_store()?;
        let now = crate::util::unix_millis();
        store
            .revoke_subject(
                subject,
                now,
                self.config.not_before_ttl(),
                self.config.marker_ttl(),
            )
            .await
    }

    pub(crate) fn require_store(&self) -> Result<&Arc<dyn RevocationStore>, StoreError> {
        self.config.store.as_ref().ok_or_else(|| {
            StoreError::Protocol("no revocation store configured on this JwtAuth".into())
        })
    }
}

impl<C: DeserializeOwned> JwtAuth<C> {
    /// Log out one token: it is rejected from now on, until it would have
    /// expired anyway. The token must verify; its id (`jti`, else SHA-256) is
    /// stored, never the token.
    ///
    /// # Errors
    ///
    /// [`RevokeError::Invalid`] for a token that does not verify (nothing to
    /// revoke), [`RevokeError::Store`] when the store fails or none is set.
    pub async fn revoke(&self, token: &str) -> Result<(), RevokeError> {
        let auth = crate::verify::verify::<serde::de::IgnoredAny>(
            token,
            &self.config.keys,
            &self.config.rules,
            true,
        )
        .map_err(RevokeError::Invalid)?;
        self.revoke_token_id(auth.store_subject(), auth.token_id(), auth.registered.exp)
            .await
            .map_err(RevokeError::Store)
    }
}

/// Why [`JwtAuth::revoke`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The token does not verify, so there is nothing to revoke.
    #[error("token not revocable: {0}")]
    Invalid(#[source] AuthError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
