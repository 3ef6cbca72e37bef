//! DPoP proof parsing and checking (RFC 9449 §4.3): never a panic.
//!
//! The first byte picks a mode:
//! - even: the rest is `<htu> NUL <proof>` (lossy UTF-8), or a bare proof
//!   checked for `https://h/`. The `htu` goes through the URL
//!   normalization (which must be idempotent); the proof is checked against
//!   a fixed request for it.
//! - odd: the rest is `<header JSON> NUL <payload JSON>`, assembled into a
//!   proof with a junk signature, so that the header, `jwk` and key parsing
//!   behind the shape checks is reached.
//!
//! The seeds hold valid proofs by `jose` (ES256, EdDSA, RS256) for the
//! fixed request, so the claim checks behind the signature are reached too.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::__fuzz::dpop_proof;

/// `data` split at its first NUL (`None` without one).
fn split_nul(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = data.iter().position(|&b| b == 0)?;
    Some((&data[..i], &data[i + 1..]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let (url, proof) = split_nul(rest).unwrap_or((b"https://h/", rest));
        let _ = dpop_proof(&String::from_utf8_lossy(proof), &String::from_utf8_lossy(url));
    } else {
        let (header, payload) = split_nul(rest).unwrap_or((rest, b"{}"));
        let proof = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode([7u8; 64])
        );
        let _ = dpop_proof(&proof, "https://h/");
    }
});
