//! DPoP proof parsing and checking (RFC 9449 §4.3): never a panic.
//!
//! The input is `<htu> NUL <proof>` (lossy UTF-8), or a bare proof. The
//! `htu` goes through the URL normalization (which must be idempotent);
//! the proof is checked against a fixed request for it. The first byte of
//! a bare proof, when odd, asks for a proof assembled from the rest as
//! `<header JSON> NUL <payload JSON>` with a junk signature, so that the
//! header, `jwk` and key parsing behind the shape checks is reached. No
//! proof the fuzzer makes can pass: it does not hold a private key whose
//! public half it could also name correctly and sign with.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::__fuzz::dpop_proof;

fuzz_target!(|data: &[u8]| {
    let (url, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"https://h/"[..], data),
    };
    let url = String::from_utf8_lossy(url);
    let proof = match rest.split_first() {
        Some((first, body)) if first % 2 == 1 => {
            let (header, payload) = match body.iter().position(|&b| b == 0) {
                Some(i) => (&body[..i], &body[i + 1..]),
                None => (body, &b"{}"[..]),
            };
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode([7u8; 64])
            )
        }
        _ => String::from_utf8_lossy(rest).into_owned(),
    };
    assert!(!dpop_proof(&proof, &url), "a forged proof passed: {proof:?}");
});
