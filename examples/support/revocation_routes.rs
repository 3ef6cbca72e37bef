//! The quickstart's revocation from outside: `POST /backchannel-logout`
//! (OpenID Connect Back-Channel Logout 1.0, from our own issuer or one of
//! `OIDC_ISSUERS`) and `POST /revoke` (RFC 7009, for the client
//! `REVOKE_CLIENT_ID` / `REVOKE_CLIENT_SECRET`). Public routes: each
//! authenticates its caller itself (a signed logout token, HTTP Basic).

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use tower_jwt_auth::{JwtAuth, MAX_FORM_LEN};

/// The demo client of `/revoke` when `REVOKE_CLIENT_ID` is not set.
const DEMO_CLIENT_ID: &str = "quickstart-client";
/// Its demo secret when `REVOKE_CLIENT_SECRET` is not set.
const DEMO_CLIENT_SECRET: &str = "quickstart-client-secret-change-me";

/// `/backchannel-logout` and `/revoke` for `auth`'s issuers and tokens.
pub(crate) fn routes<C, S>(auth: &JwtAuth<C>) -> Router<S>
where
    C: Send + Sync + 'static,
    S: Clone + Send + Sync + 'static,
{
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (id, secret) = match (var("REVOKE_CLIENT_ID"), var("REVOKE_CLIENT_SECRET")) {
        (Some(id), Some(secret)) => (id, secret),
        (id, _) => {
            let id = id.unwrap_or_else(|| DEMO_CLIENT_ID.to_owned());
            eprintln!(
                "warning: REVOKE_CLIENT_ID / REVOKE_CLIENT_SECRET are not both set; /revoke \
                 accepts the public demo client ({id}:{DEMO_CLIENT_SECRET}, e.g. curl -u). \
                 Never do this in production."
            );
            (id, DEMO_CLIENT_SECRET.to_owned())
        }
    };
    let revocation = auth.token_revocation(id, secret);
    let logout = auth.backchannel_logout();
    Router::new()
        .route(
            "/backchannel-logout",
            post(move |headers: HeaderMap, body: Bytes| {
                let logout = logout.clone();
                async move { logout.handle(&headers, &body).await }
            }),
        )
        .route(
            "/revoke",
            post(move |headers: HeaderMap, body: Bytes| {
                let revocation = revocation.clone();
                async move { revocation.handle(&headers, &body).await }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_LEN))
}
