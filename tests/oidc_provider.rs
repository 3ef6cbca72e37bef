//! The real OpenID Provider harness (`tests/common/oidc.rs`, node's
//! `oidc-provider` run by `tests/oidc/provider.mjs`) works: its RFC 9068
//! access tokens verify with the crate's public API and its published JWK
//! set, tokens for another audience or from another issuer are refused, and
//! its test switches (rotation, JWKS outage, stop and restart) do what they
//! say.
//!
//! Needs Node.js and `tests/oidc/node_modules` (`scripts/test.sh`, or the
//! harness runs `npm ci` once). Run with
//! `cargo test --all-features --test oidc_provider`.

mod common;

use common::oidc::{OidcOptions, OidcProvider, AUDIENCE, CLIENT_ID, OTHER_AUDIENCE};
use serde_json::Value;
use tower_jwt_auth::{Algorithm, ErrorKind, JwtAuth, Keys};

/// The layer a resource server would configure for this provider, with the
/// keys the provider publishes now.
fn auth_for(provider: &OidcProvider) -> JwtAuth<Value> {
    auth_with(provider, &provider.jwks())
}

fn auth_with(provider: &OidcProvider, jwks: &str) -> JwtAuth<Value> {
    let keys = Keys::from_jwk_set(jwks).expect("the provider's JWK set is read");
    assert!(
        keys.skipped().is_empty(),
        "keys skipped: {:?}",
        keys.skipped()
    );
    JwtAuth::<Value>::new(keys)
        .issuer(provider.issuer())
        .audience(AUDIENCE)
        .token_type("at+jwt")
}

fn kids(jwks: &str) -> Vec<String> {
    let set: Value = serde_json::from_str(jwks).unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn refused(auth: &JwtAuth<Value>, token: &str) -> ErrorKind {
    match auth.verify(token) {
        Ok(ok) => panic!("accepted: {:?}", ok.claims),
        Err(err) => err.kind(),
    }
}

/// Everything RFC 9068 asks of an access token, checked on a verified one.
fn check_access_token(provider: &OidcProvider, token: &str, alg: Algorithm, ttl: i64) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("a kid");
    assert!(kids(&provider.jwks()).contains(&kid), "{kid} not published");

    let auth = auth_for(provider);
    let verified = auth.verify(token).expect("the provider's token verifies");
    let claims = verified.claims;
    for claim in [
        "iss",
        "aud",
        "client_id",
        "scope",
        "exp",
        "iat",
        "jti",
        "sub",
    ] {
        assert!(claims.get(claim).is_some(), "no {claim} in {claims}");
    }
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(
        claims["sub"], CLIENT_ID,
        "client credentials: sub is the client"
    );
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - iat, ttl, "lifetime");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 60..=now + 5).contains(&iat), "iat {iat}, now {now}");
}

#[test]
fn es256_access_token_verifies_and_other_audiences_and_issuers_are_refused() {
    let provider = OidcProvider::start();
    let token = provider.token("read write");
    check_access_token(&provider, &token, Algorithm::ES256, 300);
    let claims = auth_for(&provider).verify(&token).unwrap().claims;
    assert_eq!(claims["scope"], "read write");

    // Only the scopes asked for, among the resource server's.
    let read = provider.token("read");
    let claims = auth_for(&provider).verify(&read).unwrap().claims;
    assert_eq!(claims["scope"], "read");

    // A token for another resource server of the same provider.
    let other = provider.token_for(OTHER_AUDIENCE, "read");
    let claims: Value = {
        let payload = other.split('.').nth(1).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(
        claims["aud"], OTHER_AUDIENCE,
        "the provider honours resource"
    );
    assert_eq!(
        refused(&auth_for(&provider), &other),
        ErrorKind::WrongAudience
    );

    // The same token at a resource server that trusts another issuer.
    let elsewhere = JwtAuth::<Value>::new(Keys::from_jwk_set(&provider.jwks()).unwrap())
        .issuer("https://idp.example.com")
        .audience(AUDIENCE)
        .token_type("at+jwt");
    assert_eq!(refused(&elsewhere, &token), ErrorKind::WrongIssuer);

    // A resource server that wants plain JWTs refuses access tokens.
    let plain = JwtAuth::<Value>::new(Keys::from_jwk_set(&provider.jwks()).unwrap())
        .issuer(provider.issuer())
        .audience(AUDIENCE)
        .token_type("JWT");
    assert_eq!(refused(&plain, &token), ErrorKind::WrongType);

    // A changed signature byte.
    let mut forged = token.into_bytes();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        refused(&auth_for(&provider), &forged),
        ErrorKind::BadSignature
    );

    // The provider itself refuses what it does not know.
    let unknown = provider.token_response("urn:tower-jwt-auth:unknown", "read");
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert_eq!(unknown.json()["error"], "invalid_target");
}

#[test]
fn rs256_access_token_verifies_with_configured_lifetime() {
    let provider = OidcProvider::start_with(OidcOptions {
        alg: "RS256",
        token_ttl_secs: 60,
        ..OidcOptions::default()
    });
    let token = provider.token("write");
    check_access_token(&provider, &token, Algorithm::RS256, 60);
    let claims = auth_for(&provider).verify(&token).unwrap().claims;
    assert_eq!(claims["scope"], "write");
}

#[test]
fn discovery_rotation_and_outage_switches() {
    let mut provider = OidcProvider::start_with(OidcOptions {
        jwks_max_age_secs: Some(7),
        ..OidcOptions::default()
    });

    // Discovery, in both well-known forms.
    let discovery = provider.discovery();
    assert_eq!(discovery["issuer"], provider.issuer());
    assert_eq!(discovery["jwks_uri"], provider.jwks_uri());
    let rfc8414 = common::http::request(
        &provider.addr(),
        "GET",
        "/.well-known/oauth-authorization-server",
        None,
        None,
    );
    assert_eq!(rfc8414.status, 200);
    assert_eq!(rfc8414.json()["jwks_uri"], provider.jwks_uri());
    let jwks = common::http::request(&provider.addr(), "GET", "/jwks", None, None);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=7"));

    // One ES256 and one RS256 key at start.
    let before = provider.jwks();
    assert_eq!(kids(&before).len(), 2);
    let old_token = provider.token("read");

    // Rotation: a new signing kid, unknown to the old set; old keys kept.
    let rotation = provider.rotate(false);
    assert_eq!(rotation.kids.len(), 4);
    assert!(!kids(&before).contains(&rotation.signing_kid));
    let new_token = provider.token("read");
    let kid = jsonwebtoken::decode_header(&new_token).unwrap().kid;
    assert_eq!(kid.as_deref(), Some(rotation.signing_kid.as_str()));
    assert_eq!(
        refused(&auth_with(&provider, &before), &new_token),
        ErrorKind::UnknownKey
    );
    let after = provider.jwks();
    assert_eq!(kids(&after), rotation.kids);
    auth_with(&provider, &after).verify(&new_token).unwrap();
    auth_with(&provider, &after).verify(&old_token).unwrap();

    // Rotation with retirement: earlier keys leave the set.
    let rotation = provider.rotate(true);
    assert_eq!(rotation.kids.len(), 2);
    let retired = provider.jwks();
    assert_eq!(kids(&retired), rotation.kids);
    for token in [&old_token, &new_token] {
        assert_eq!(
            refused(&auth_with(&provider, &retired), token),
            ErrorKind::UnknownKey
        );
    }

    // A JWKS outage, then recovery.
    provider.set_jwks_status(503);
    let down = common::http::request(&provider.addr(), "GET", "/jwks", None, None);
    assert_eq!(down.status, 503);
    assert!(serde_json::from_str::<Value>(&down.body).is_err());
    provider.set_jwks_status(200);
    assert_eq!(kids(&provider.jwks()), rotation.kids);

    let stats = provider.stats();
    assert_eq!(stats.rotations, 2);
    assert_eq!(stats.tokens, 2);
    assert_eq!(stats.discovery_fetches, 2);
    // jwks(): before, after, retired, the check after recovery; request():
    // the Cache-Control probe and the outage.
    assert_eq!(stats.jwks_fetches, 6);

    // Stop: connections are refused; restart: same issuer, new keys.
    let port = provider.port();
    provider.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    provider.restart();
    assert_eq!(provider.port(), port);
    let restarted = provider.jwks();
    assert!(kids(&restarted).iter().all(|k| !rotation.kids.contains(k)));
    let token = provider.token("read");
    auth_with(&provider, &restarted).verify(&token).unwrap();
}
