//! `Authorization` header parsing: arbitrary bytes, arbitrary size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::__fuzz::parse_authorization;

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0
        && token[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the size limit (small limits reach the
    // "too large" branches), the rest is the header value.
    let Some((&limit, value)) = data.split_first() else {
        return;
    };
    for max_len in [usize::from(limit), 8 * 1024] {
        if let Ok(Some(token)) = parse_authorization(value, max_len) {
            assert!(is_b64token(token.as_bytes()), "not a b64token: {token:?}");
            assert!(token.len() <= max_len, "longer than the limit");
            assert!(
                value.ends_with(token.as_bytes()),
                "not a suffix of the input"
            );
            // `Bearer` (RFC 6750) or `DPoP` (RFC 9449), then a space or tab.
            let scheme = if value.len() > 6 && value[..6].eq_ignore_ascii_case(b"bearer") {
                6
            } else {
                assert!(value.len() > 4 && value[..4].eq_ignore_ascii_case(b"dpop"));
                4
            };
            assert!(
                matches!(value[scheme], b' ' | b'\t'),
                "scheme not followed by a space"
            );
        }
    }
});
