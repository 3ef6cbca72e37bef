//! Several issuers on one layer (feature `remote-keys`): identity providers
//! whose keys come from their JWKS, each with its own audience and token
//! type, chosen by the token's `iss` before any key is looked up.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::claims::Authenticated;
use crate::error::AuthError;
use crate::keys::Keys;
use crate::remote::{KeysUnavailable, Lookup, RemoteConfigError, RemoteKeys};
use crate::verify::Rules;

use super::config::Config;
use super::Validator;

/// An identity provider whose tokens a [`JwtAuth`](crate::JwtAuth) accepts:
/// its issuer (`iss`), its keys (a remote JWK set, see [`RemoteKeys`]) and
/// its own audience and token type. Everything else (leeway, lifetime,
/// required claims) follows the layer.
///
/// Its subjects are its own: a token's subject is kept in the store as
/// `NUL iss NUL sub` ([`Authenticated::store_subject`]), so revoking `alice`
/// at one issuer never touches `alice` at another, nor the layer's own
/// `alice`. Its `sid` names the provider's session: the store never looks it
/// up.
///
/// # Example
///
/// ```no_run
/// use tower_jwt_auth::{JwtAuth, Keys, RemoteIssuer};
///
/// #[derive(Clone, serde::Deserialize)]
/// struct MyClaims {}
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"our own secret of at least 32 bytes!")?)
///     .remote_issuer(RemoteIssuer::discover("https://id.example.com/realms/main")?.audience("orders-api"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteIssuer {
    issuer: String,
    keys: RemoteKeys,
    audiences: Vec<String>,
    token_type: Option<String>,
    /// The layer's rules with this issuer's own: set by the layer.
    rules: Rules,
}

impl fmt::Debug for RemoteIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteIssuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

impl RemoteIssuer {
    /// Tokens whose `iss` is `issuer`, verified with `keys`.
    pub fn new(issuer: impl Into<String>, keys: RemoteKeys) -> Self {
        Self {
            issuer: issuer.into(),
            keys,
            audiences: Vec::new(),
            token_type: None,
            rules: Rules::default(),
        }
    }

    /// Tokens of `issuer`, with its keys found by OIDC discovery
    /// ([`RemoteKeys::discover`] with its defaults).
    ///
    /// # Errors
    ///
    /// [`RemoteConfigError`] for an issuer URL that cannot be used (not
    /// HTTPS and not a loopback address, say).
    pub fn discover(issuer: impl Into<String>) -> Result<Self, RemoteConfigError> {
        let issuer = issuer.into();
        let keys = RemoteKeys::discover(issuer.clone()).build()?;
        Ok(Self::new(issuer, keys))
    }

    /// Accept this audience (`aud`) for this issuer's tokens; call again to
    /// accept several. Without one, the layer's audiences apply.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Require this header `typ` (e.g. `at+jwt`, RFC 9068) for this
    /// issuer's tokens. Without one, the layer's applies.
    #[must_use]
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.token_type = Some(typ.into());
        self
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Its keys (their [`stats`](RemoteKeys::stats), a warm-up with
    /// [`prefetch`](RemoteKeys::prefetch)).
    pub fn keys(&self) -> &RemoteKeys {
        &self.keys
    }

    /// Take the layer's rules, with this issuer's own issuer, audience and type.
    pub(super) fn derive_rules(&mut self, base: &Rules) {
        let mut rules = base.clone();
        rules.issuers = vec![self.issuer.clone()];
        if !self.audiences.is_empty() {
            rules.audiences.clone_from(&self.audiences);
        }
        if self.token_type.is_some() {
            rules.typ.clone_from(&self.token_type);
        }
        self.rules = rules;
    }

    /// The store's subject for `sub` at this issuer.
    pub(super) fn store_subject(&self, sub: &str) -> String {
        format!("\0{}\0{sub}", self.issuer)
    }
}

/// The keys for a remote issuer's token, or the fetch that may bring them.
pub(super) enum RemoteKeysFor {
    Ready(Arc<Keys>),
    Fetch(crate::remote::Refetch),
}

impl Config {
    /// The remote issuer of a token with this `iss`, by its index.
    pub(super) fn remote_issuer(&self, iss: Option<&str>) -> Option<usize> {
        let iss = iss?;
        self.remote.iter().position(|r| r.issuer == iss)
    }

    /// The rules of remote issuer `index` (the layer's, with its own).
    pub(super) fn remote_rules(&self, index: usize) -> &Rules {
        &self.remote[index].rules
    }

    /// The store's subject for `sub` at remote issuer `index`.
    pub(super) fn remote_store_subject(&self, index: usize, sub: &str) -> String {
        self.remote[index].store_subject(sub)
    }

    /// Keep every remote issuer's rules in step with the layer's.
    pub(super) fn sync_issuers(&mut self) {
        let base = self.rules.clone();
        for issuer in &mut self.remote {
            issuer.derive_rules(&base);
        }
    }

    /// The remote issuer whose token `token` is (by a peek at its `iss`),
    /// with its keys for the token's `kid`; `None` for a token of the
    /// layer's own keys.
    pub(super) fn remote_keys_of(
        &self,
        token: &str,
    ) -> Result<Option<(usize, RemoteKeysFor)>, AuthError> {
        if self.remote.is_empty() {
            return Ok(None);
        }
        let peek = crate::verify::peek(token, self.rules.max_token_len)?;
        match self.remote_issuer(peek.iss.as_deref()) {
            Some(index) => Ok(Some((index, self.remote_keys(index, peek.kid.as_deref())?))),
            None => Ok(None),
        }
    }

    /// The keys of remote issuer `index` for a token with this `kid`.
    pub(super) fn remote_keys(
        &self,
        index: usize,
        kid: Option<&str>,
    ) -> Result<RemoteKeysFor, AuthError> {
        match self.remote[index].keys.lookup(kid) {
            Lookup::Ready(keys) => Ok(RemoteKeysFor::Ready(keys)),
            Lookup::Refetch(fetch) => Ok(RemoteKeysFor::Fetch(fetch)),
            Lookup::Unavailable(e) => Err(unavailable(&e)),
        }
    }

    /// Verify `token` of remote issuer `index` with `keys`.
    pub(super) fn verify_remote<C: DeserializeOwned>(
        &self,
        index: usize,
        keys: &Keys,
        token: &str,
        validator: Option<&Validator<C>>,
    ) -> Result<Authenticated<C>, AuthError> {
        let issuer = &self.remote[index];
        let mut auth =
            crate::verify::verify::<C>(token, keys, &issuer.rules, self.store.is_some())?;
        auth.remote_subject = Some(issuer.store_subject(auth.subject()));
        super::service::validated(auth, validator)
    }
}

/// The 503 for keys that cannot be had, logged loudly.
pub(super) fn unavailable(e: &KeysUnavailable) -> AuthError {
    tracing::warn!(error = %e, "token issuer's keys unavailable: answering 503");
    AuthError::keys_unavailable(e.retry_after_secs())
}
