//! The quickstart's DPoP parts (RFC 9449): the public URL proofs name, and
//! `/login` and `/refresh` binding the access token to the key of the
//! request's `DPoP` proof, as an authorization server would.
//!
//! DPoP itself is always on in the layer: every protected route refuses a
//! bound token without its proof, and takes a token without `cnf` as a
//! bearer token.

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tower_jwt_auth::{Dpop, JwtAuth};

/// `auth` with the DPoP settings of the environment: `PUBLIC_URL`, the
/// base URL clients name in a proof's `htu` (default: `http://` and the
/// request's `Host`).
pub(crate) fn configure<C>(auth: JwtAuth<C>) -> Result<JwtAuth<C>, Box<dyn std::error::Error>> {
    match std::env::var("PUBLIC_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let dpop = Dpop::new().public_url(url.trim())?;
            println!("DPoP proofs must name {} (PUBLIC_URL)", url.trim());
            Ok(auth.dpop(dpop))
        }
        _ => Ok(auth),
    }
}

/// The claims of a token request, bound to the key of its `DPoP` proof
/// when it carries one (`cnf.jkt`), and the token type to announce:
/// `DPoP` for a bound token, `Bearer` otherwise. A proof that fails is a
/// 400 `invalid_dpop_proof` (RFC 9449 §5), or 503 when the replay cache
/// cannot answer.
pub(crate) async fn bind<C: serde::de::DeserializeOwned>(
    auth: &JwtAuth<C>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    mut claims: Value,
) -> Result<(Value, &'static str), Response> {
    match auth.dpop_proof(method, uri, headers).await {
        Ok(None) => Ok((claims, "Bearer")),
        Ok(Some(proof)) => {
            claims["cnf"] = json!({ "jkt": proof.jkt });
            Ok((claims, "DPoP"))
        }
        Err(err) if err.status() == StatusCode::SERVICE_UNAVAILABLE => {
            let mut res = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "temporarily_unavailable", "error_description": "try again shortly" })),
            )
                .into_response();
            res.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            Err(res)
        }
        Err(err) => Err((
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_dpop_proof", "error_description": err.description() })),
        )
            .into_response()),
    }
}
