//! Token pre-checks and the whole verification path: never a panic.
//!
//! The first byte picks a mode:
//! - even: the rest is a token (lossy UTF-8). `precheck` must keep its
//!   invariants and `JwtAuth::verify` must refuse it: the fuzzer does not
//!   know the secret, so any success would be a forgery.
//! - odd: the rest is `<header JSON> NUL <payload JSON>`; the target signs
//!   it with the layer's own HS256 secret, so the header and claims parsing
//!   behind the signature check is reached too. A token that verifies must
//!   say `alg: HS256`, carry no `crit` and have a numeric `exp`.
#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tower_jwt_auth::__fuzz::precheck;
use tower_jwt_auth::{JwtAuth, Keys};

const SECRET: &[u8] = b"fuzzing secret, at least thirty-two bytes long";

static AUTH: LazyLock<JwtAuth<Value>> =
    LazyLock::new(|| JwtAuth::new(Keys::hs256(SECRET).unwrap()));
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(SECRET).unwrap());

fn check_precheck(token: &str) {
    for max_len in [16, 8 * 1024] {
        if let Ok(parts) = precheck(token, max_len) {
            assert!(token.len() <= max_len);
            assert_eq!(
                format!("{}.{}.{}", parts.header, parts.payload, parts.signature),
                token
            );
            for part in [parts.header, parts.payload, parts.signature] {
                assert!(!part.is_empty());
                assert!(part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        check_precheck(&token);
        assert!(
            AUTH.verify(&token).is_err(),
            "accepted a forged token: {token:?}"
        );
        return;
    }
    let (header, payload) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    // `AUTH` first: building it installs the crypto provider `sign` needs.
    let auth = &*AUTH;
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &KEY, Algorithm::HS256).unwrap();
    let token = format!("{message}.{signature}");
    check_precheck(&token);
    if auth.verify(&token).is_ok() {
        let header = parse::<LaxHeader>(header);
        assert_eq!(header.alg, "HS256", "accepted header {header:?}");
        // Known laxity (reported): `"crit": null` is taken for "no crit".
        assert!(
            header.crit.as_ref().is_none_or(Value::is_null),
            "accepted crit: {header:?}"
        );
        let payload = parse::<LaxPayload>(payload);
        assert!(payload.exp.is_number(), "accepted without exp: {payload:?}");
    }
});

#[derive(Debug, Deserialize)]
struct LaxHeader {
    alg: String,
    crit: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct LaxPayload {
    #[serde(default)]
    exp: Value,
}

/// The members of an accepted header or payload the oracle looks at.
///
/// First as a plain JSON object (lossy: serde_json does not check UTF-8 or
/// `\u` escapes inside the strings of members it skips, so an accepted token
/// may hold such bytes in members nobody reads: a known, reported laxity);
/// failing that, only the members we need, skipping the rest as the crate does.
fn parse<T: DeserializeOwned>(json: &[u8]) -> T {
    let lossy = String::from_utf8_lossy(json);
    match serde_json::from_str::<Value>(&lossy) {
        Ok(value) => serde_json::from_value(value).expect("accepted JSON has the members"),
        Err(_) => serde_json::from_slice(json).expect("accepted JSON parses when skipping members"),
    }
}
