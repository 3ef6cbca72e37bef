//! Whose keys verify a token that arrives outside the request path (a
//! logout token, a token to revoke): the layer's own, or a remote issuer's,
//! chosen by the token's `iss` as the layer does, with its keys fetched
//! when its `kid` is not known yet.

#[cfg(feature = "remote-keys")]
use std::sync::Arc;

use crate::error::AuthError;
#[cfg(feature = "remote-keys")]
use crate::keys::Keys;
use crate::verify::Rules;

use super::config::Config;

/// The keys (and rules) a token is verified with.
pub(super) enum Signer {
    /// The layer's own keys and rules.
    Local,
    /// Remote issuer `index`, with its keys.
    #[cfg(feature = "remote-keys")]
    Remote(usize, Arc<Keys>),
}

impl Signer {
    /// Whose keys verify `token`: a remote issuer's when its `iss` names
    /// one (after a fetch of its keys if need be), else the layer's.
    ///
    /// # Errors
    ///
    /// A token that cannot be read ([`ErrorKind::Malformed`](crate::ErrorKind)),
    /// or [`ErrorKind::KeysUnavailable`](crate::ErrorKind) when its
    /// issuer's keys cannot be had.
    pub(super) async fn of(config: &Config, token: &str) -> Result<Self, AuthError> {
        #[cfg(feature = "remote-keys")]
        if let Some((index, keys)) = config.remote_keys_of(token)? {
            use super::issuers::RemoteKeysFor;
            let keys = match keys {
                RemoteKeysFor::Ready(keys) => keys,
                RemoteKeysFor::Fetch(fetch) => {
                    fetch.await.map_err(|e| super::issuers::unavailable(&e))?
                }
            };
            return Ok(Self::Remote(index, keys));
        }
        let _ = (config, token);
        Ok(Self::Local)
    }

    /// The rules of this signer's tokens.
    pub(super) fn rules<'c>(&self, config: &'c Config) -> &'c Rules {
        match self {
            Self::Local => &config.rules,
            #[cfg(feature = "remote-keys")]
            Self::Remote(index, _) => config.remote_rules(*index),
        }
    }

    /// Verify `token` with this signer's keys and `rules`.
    pub(super) fn verify<C: serde::de::DeserializeOwned>(
        &self,
        config: &Config,
        token: &str,
        rules: &Rules,
        need_token_id: bool,
    ) -> Result<crate::claims::Authenticated<C>, AuthError> {
        let keys = match self {
            Self::Local => &config.keys,
            #[cfg(feature = "remote-keys")]
            Self::Remote(_, keys) => keys,
        };
        let auth = crate::verify::verify::<C>(token, keys, rules, need_token_id)?;
        #[cfg(feature = "remote-keys")]
        let auth = match self {
            Self::Local => auth,
            Self::Remote(index, _) => {
                let mut auth = auth;
                auth.remote_subject = Some(config.remote_store_subject(*index, auth.subject()));
                auth
            }
        };
        Ok(auth)
    }

    /// Whether this is a remote issuer.
    pub(super) fn is_remote(&self) -> bool {
        !matches!(self, Self::Local)
    }
}
