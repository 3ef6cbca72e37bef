//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0
//! §2.6) and the form bodies they come in: never a panic, and never a
//! token taken both for a logout token and for an access token.
//!
//! The first byte picks a mode:
//! - even: the rest is a form body. Its `logout_token`, if the body is
//!   accepted, must be refused: the fuzzer does not know the secret.
//! - odd: the rest is `<header JSON> NUL <payload JSON>`, signed here with
//!   the layer's HS256 secret (`NOW` in the payload becomes the current
//!   unix time, so that `iat` can be recent). A token accepted as a logout
//!   token must satisfy every rule of §2.6 (checked again here on the
//!   JSON), and must be refused as an access token.
#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_jwt_auth::__fuzz::form_value;
use tower_jwt_auth::{BackchannelLogout, JwtAuth, Keys, BACKCHANNEL_LOGOUT_EVENT};

const SECRET: &[u8] = b"fuzzing secret, at least thirty-two bytes long";

static AUTH: LazyLock<JwtAuth<Value>> = LazyLock::new(|| {
    JwtAuth::new(Keys::hs256(SECRET).unwrap())
        .issuer("fuzz-iss")
        .audience("fuzz-aud")
});
static LOGOUT: LazyLock<BackchannelLogout<Value>> = LazyLock::new(|| AUTH.backchannel_logout());
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(SECRET).unwrap());

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn non_empty(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(Some(token)) = form_value(rest, "logout_token") {
            assert!(LOGOUT.verify_local(&token).is_err(), "forged: {token:?}");
        }
        return;
    }
    let (header, payload) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let payload = String::from_utf8_lossy(payload).replace("NOW", &now().to_string());
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload.as_bytes())
    );
    let logout = &*LOGOUT; // installs the crypto provider `sign` needs
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &KEY, Algorithm::HS256).unwrap();
    let token = format!("{message}.{signature}");
    let as_logout = logout.verify_local(&token);
    let as_access = AUTH.verify(&token);
    assert!(
        as_logout.is_err() || as_access.is_err(),
        "taken for both a logout and an access token: {token}"
    );
    let Ok(accepted) = as_logout else {
        return;
    };
    let Ok(claims) = serde_json::from_str::<Value>(&payload) else {
        // serde_json skips unread members laxly (see token_precheck.rs).
        return;
    };
    let header: Value = serde_json::from_slice(header).unwrap_or(Value::Null);
    let typ = header["typ"].as_str().map(str::to_ascii_lowercase);
    assert!(
        typ.is_none() || matches!(typ.as_deref(), Some("logout+jwt" | "application/logout+jwt")),
        "typ {typ:?}"
    );
    assert_eq!(claims["iss"], "fuzz-iss");
    let aud = &claims["aud"];
    assert!(aud == "fuzz-aud" || aud.as_array().is_some_and(|a| a.iter().any(|v| v == "fuzz-aud")));
    assert!(claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(non_empty(&claims["sub"]) || non_empty(&claims["sid"]), "{claims}");
    assert!(non_empty(&claims["jti"]), "{claims}");
    let iat = claims["iat"].as_f64().expect("iat") as u64;
    assert!(iat + 300 + 30 >= now() && iat <= now() + 30, "iat {iat}");
    assert_eq!(accepted.issued_at, iat);
});
