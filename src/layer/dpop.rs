//! DPoP in the request path ([RFC 9449 §7](https://www.rfc-editor.org/rfc/rfc9449#section-7)):
//! which tokens need a proof, the proof checked against the request, and
//! its `jti` checked for replay beside the store check (one more round trip
//! in parallel, not after it).
//!
//! Replays are caught through the layer's store
//! ([`first_use`](crate::RevocationStore::first_use), shared by every
//! instance on one Redis); without a store, through a bounded map in this
//! process only ([`Dpop`](crate::Dpop) keeps it). The replay check fails as
//! the store check does: 503 when closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HOST;
use http::{HeaderMap, Method, Request, Response, Uri};
use serde::de::DeserializeOwned;

use crate::claims::Authenticated;
use crate::dpop::{DpopProof, Expect};
use crate::error::{AuthError, ErrorKind};
use crate::source::Scheme;
use crate::store::{RevocationStore, StoreError, Verdict};

use super::config::Config;
use super::future::{store_failed, Check, Checked};
use super::service::{short_circuit, Decision};
use super::JwtAuth;

/// The store scope of proofs' `jti`s.
const SCOPE: &str = "dpop";

/// A proof's `jti` on its way to the replay cache.
pub(super) struct Replay {
    first_use: Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>,
    /// Through the layer's store (the breaker applies), not the local map.
    shared: bool,
}

fn invalid_proof(config: &Config, description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::InvalidDpopProof, description)
        .with_dpop_challenge(config.dpop.algs.clone())
}

fn binding(config: &Config, description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::DpopBinding, description)
        .with_dpop_challenge(config.dpop.algs.clone())
}

/// `err` for a request that used the `DPoP` scheme: challenged with DPoP
/// (RFC 9449 §7.1), except for a 503.
pub(super) fn challenge(config: &Config, headers: &HeaderMap, err: AuthError) -> AuthError {
    let unavailable = matches!(
        err.kind(),
        ErrorKind::StoreUnavailable | ErrorKind::KeysUnavailable
    );
    if unavailable
        || err.is_dpop_challenge()
        || crate::source::authorization_scheme(headers) != Some(Scheme::Dpop)
    {
        return err;
    }
    err.with_dpop_challenge(config.dpop.algs.clone())
}

/// The DPoP rules for a verified token: nothing for a bearer token without
/// `cnf`; for a bound one the `DPoP` scheme and a valid proof, whose `jti`
/// is then to be checked.
pub(super) fn proof<C, B>(
    config: &Config,
    auth: &Authenticated<C>,
    req: &Request<B>,
) -> Result<Option<Replay>, AuthError> {
    let headers = req.headers();
    let dpop_scheme = crate::source::authorization_scheme(headers) == Some(Scheme::Dpop);
    let jkt = match (auth.registered.jkt.as_deref(), dpop_scheme) {
        (None, false) => return Ok(None),
        (None, true) => {
            return Err(binding(
                config,
                "the token is not DPoP-bound: send it as a Bearer token",
            ))
        }
        (Some(_), false) => {
            return Err(binding(
                config,
                "DPoP-bound token: send it with the DPoP scheme and a DPoP proof",
            ))
        }
        (Some(jkt), true) => jkt,
    };
    // The token the layer verified must be the one under the DPoP scheme
    // (another source, a cookie, may come first).
    let token = config.token_in(headers)?.unwrap_or_default();
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .map(|v| crate::source::parse_authorization(v.as_bytes(), config.rules.max_token_len));
    if !matches!(authorization, Some(Ok(Some(t))) if t == token) {
        return Err(binding(
            config,
            "the verified token is not the one sent with the DPoP scheme",
        ));
    }
    let checked = check_request(
        config,
        req.method(),
        req.uri(),
        headers,
        Some(token),
        Some(jkt),
    )?;
    Ok(Some(replay(config, &checked)))
}

/// The one `DPoP` header's proof checked against the request: method, URL,
/// and the access token and binding when given.
fn check_request(
    config: &Config,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    access_token: Option<&str>,
    jkt: Option<&str>,
) -> Result<crate::dpop::Checked, AuthError> {
    let mut values = headers.get_all("dpop").iter();
    let proof = match (values.next(), values.next()) {
        (None, _) => return Err(invalid_proof(config, "no DPoP proof")),
        (Some(_), Some(_)) => {
            return Err(
                AuthError::new(ErrorKind::InvalidRequest, "more than one DPoP header")
                    .with_dpop_challenge(config.dpop.algs.clone()),
            )
        }
        (Some(value), None) => value,
    };
    if proof.len() > crate::dpop::MAX_PROOF_LEN {
        return Err(invalid_proof(config, "DPoP proof too large"));
    }
    let proof = proof
        .to_str()
        .map_err(|_| invalid_proof(config, "DPoP proof is not a JWS compact serialization"))?;
    let authority = match uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => single(headers, &HOST),
    };
    let url = config
        .dpop
        .request_url(uri.scheme_str(), authority, uri.path())
        .ok_or_else(|| {
            invalid_proof(
                config,
                "the request URL cannot be matched with a DPoP proof",
            )
        })?;
    let expect = Expect {
        algorithms: &config.dpop.algorithms,
        method: method.as_str(),
        url: &url,
        access_token,
        jkt,
        now: crate::util::unix_millis() / 1000,
        window: window(config).as_secs(),
    };
    crate::dpop::check(proof, &expect).map_err(|description| invalid_proof(config, description))
}

/// The one value of header `name`, as text.
fn single<'h>(headers: &'h HeaderMap, name: &http::HeaderName) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// How far a proof's `iat` may be from now: the window plus the leeway.
fn window(config: &Config) -> Duration {
    config.dpop.window + config.leeway()
}

/// The replay check of a checked proof: its key's thumbprint and `jti`,
/// kept as long as the proof could still be accepted.
fn replay(config: &Config, checked: &crate::dpop::Checked) -> Replay {
    let now_ms = crate::util::unix_millis();
    let until_ms = checked
        .iat
        .saturating_add(window(config).as_secs())
        .saturating_add(1)
        .saturating_mul(1000);
    let ttl = Duration::from_millis(until_ms.saturating_sub(now_ms).max(1000));
    // One client's `jti` never blocks another's.
    let id = format!("{}.{}", checked.jkt, checked.jti);
    let (store, shared): (Arc<dyn RevocationStore>, bool) = match &config.store {
        Some(store) => (store.clone(), true),
        None => (config.dpop.local_replay.clone(), false),
    };
    let deadline = config.deadline;
    let first_use = Box::pin(async move {
        let first_use = store.first_use(SCOPE, &id, ttl);
        if !shared {
            return first_use.await;
        }
        tokio::time::timeout(deadline, first_use)
            .await
            .unwrap_or(Err(StoreError::Timeout(deadline)))
    });
    Replay { first_use, shared }
}

/// `decision` with the replay check of a proof, when there is one.
pub(super) fn with_replay(config: &Config, decision: Decision, replay: Option<Replay>) -> Decision {
    let Some(replay) = replay else {
        return decision;
    };
    let check = match decision {
        Decision::Reject(err) => return Decision::Reject(err),
        // The store is out of reach: its replay cache too (fail open).
        Decision::FailOpen => return Decision::FailOpen,
        Decision::Check(check) => Some(check),
        Decision::Accept if replay.shared && !config.breaker.allow() => {
            return short_circuit(config)
        }
        Decision::Accept => None,
    };
    Decision::Check(Check::Proof {
        joined: Box::pin(join(check, replay.first_use)),
    })
}

/// The store check (if any) and the replay check, polled together.
async fn join(
    check: Option<Check>,
    mut first_use: Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send>>,
) -> Checked {
    let mut check = check.map(Box::pin);
    let (mut verdict, mut fresh) = (None, None);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if verdict.is_none() {
            verdict = match check.as_mut() {
                None => Some(Ok(Verdict::Valid)),
                Some(check) => match check.as_mut().poll(cx) {
                    Poll::Ready((outcome, _)) => Some(outcome),
                    Poll::Pending => None,
                },
            };
        }
        if fresh.is_none() {
            if let Poll::Ready(outcome) = first_use.as_mut().poll(cx) {
                fresh = Some(outcome);
            }
        }
        match (&verdict, &fresh) {
            (Some(_), Some(_)) => Poll::Ready((verdict.take().unwrap(), fresh.take())),
            _ => Poll::Pending,
        }
    })
    .await
}

/// What the replay check means for the request: `None` to go on, or the
/// rejection response.
pub(super) fn judge_replay<B: From<String> + 'static>(
    config: &Config,
    outcome: Result<bool, StoreError>,
    ticket: u64,
) -> Option<Response<B>> {
    match outcome {
        Ok(true) => None,
        Ok(false) => {
            let err = invalid_proof(config, "DPoP proof replayed");
            super::future::log_rejection(config, &err);
            Some(config.render(&err))
        }
        Err(err) => store_failed(config, &err, ticket),
    }
}

impl<C: DeserializeOwned> JwtAuth<C> {
    /// Check the request's DPoP proof as an authorization server's token
    /// endpoint does before it binds a token to the proof's key (RFC 9449
    /// §5): one `DPoP` header, `typ`, `alg`, public `jwk`, signature, `htm`,
    /// `htu` and `iat` (no `ath`: there is no access token yet), and its
    /// `jti` never used before (through the store, as for every proof).
    /// `Ok(None)` when the request carries no `DPoP` header.
    ///
    /// Put the returned [`DpopProof::jkt`] into the token's claims as
    /// `{"cnf": {"jkt": ...}}`: the token is then bound to that key.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] to answer with: 400 or 401 with a `DPoP`
    /// challenge, or 503 when the replay cache cannot answer.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_jwt_auth::{JwtAuth, Keys};
    /// # #[derive(Clone, serde::Deserialize)] struct MyClaims {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let auth = JwtAuth::<MyClaims>::new(Keys::hs256(b"a secret of at least thirty-two bytes!").unwrap());
    /// let req = http::Request::post("/login").header("dpop", "not a proof").body(()).unwrap();
    /// let err = auth.dpop_proof(req.method(), req.uri(), req.headers()).await.unwrap_err();
    /// assert_eq!(err.status(), 401);
    /// let plain = http::Request::post("/login").body(()).unwrap();
    /// assert!(auth.dpop_proof(plain.method(), plain.uri(), plain.headers()).await.unwrap().is_none());
    /// # }
    /// ```
    pub async fn dpop_proof(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<DpopProof>, AuthError> {
        let config = &self.config;
        if !headers.contains_key("dpop") {
            return Ok(None);
        }
        let checked = check_request(config, method, uri, headers, None, None)?;
        let jkt = checked.jkt.clone();
        match replay(config, &checked).first_use.await {
            Ok(true) => Ok(Some(DpopProof { jkt })),
            Ok(false) => Err(invalid_proof(config, "DPoP proof replayed")),
            Err(err) => {
                tracing::warn!(error = %err, "DPoP replay cache failed: rejecting with 503");
                Err(AuthError::store_unavailable(1))
            }
        }
    }
}
