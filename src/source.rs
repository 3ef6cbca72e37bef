//! Where a token is read from: `Authorization: Bearer` ([RFC 6750 §2.1](https://www.rfc-editor.org/rfc/rfc6750#section-2.1))
//! or `Authorization: DPoP` ([RFC 9449 §7.1](https://www.rfc-editor.org/rfc/rfc9449#section-7.1)),
//! a cookie, or a custom header, tried in the configured order.
//!
//! Sizes are checked before anything is parsed. A source that is present but
//! malformed (two `Authorization` headers, an empty bearer, a token with
//! spaces or characters outside `b64token`) is a 400 `invalid_request`; a
//! source that is absent, or an `Authorization` header with another scheme,
//! passes on to the next source, and no token at all is a plain 401.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName};

use crate::error::{AuthError, ErrorKind};

/// Default limit on the size of a token: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// One place a token may be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`, scheme case-insensitive (the
    /// default); also `Authorization: DPoP <token>` for DPoP-bound tokens
    /// (see [`crate::dpop`]).
    Bearer,
    /// A cookie with this name holding the bare token.
    Cookie(String),
    /// A custom header holding the bare token (no scheme).
    Header(HeaderName),
}

impl TokenSource {
    /// `Authorization: Bearer <token>`.
    pub fn bearer() -> Self {
        Self::Bearer
    }

    /// A cookie named `name`.
    pub fn cookie(name: impl Into<String>) -> Self {
        Self::Cookie(name.into())
    }

    /// A custom header, e.g. `x-access-token`.
    pub fn header(name: HeaderName) -> Self {
        Self::Header(name)
    }
}

fn invalid(description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::InvalidRequest, description)
}

fn too_large() -> AuthError {
    AuthError::new(ErrorKind::TokenTooLarge, "token too large")
}

/// Whether `token` is a non-empty RFC 6750 `b64token`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    // Branch-free passes over 64-byte chunks, which the compiler vectorizes
    // (like `verify::precheck`): this runs on every request, before the
    // token's own checks, and a byte-by-byte `all` costs several times more.
    let mut bad = false;
    for chunk in token[..body_len].chunks(64) {
        let mut chunk_bad = false;
        for &b in chunk {
            chunk_bad |= !is_b64token_byte(b);
        }
        bad |= chunk_bad;
    }
    body_len > 0 && !bad
}

/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, without branches.
#[inline(always)]
fn is_b64token_byte(b: u8) -> bool {
    crate::util::is_alnum(b)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// The scheme of an `Authorization` value this crate reads a token from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// `Bearer` or `DPoP` (case-insensitive) at the start of `value`, followed
/// by a space, a tab or nothing.
fn scheme_of(value: &[u8]) -> Option<(Scheme, usize)> {
    let starts = |name: &[u8]| {
        value.len() >= name.len()
            && value[..name.len()].eq_ignore_ascii_case(name)
            && matches!(value.get(name.len()), None | Some(b' ' | b'\t'))
    };
    if starts(b"bearer") {
        Some((Scheme::Bearer, 6))
    } else if starts(b"dpop") {
        Some((Scheme::Dpop, 4))
    } else {
        None
    }
}

/// The scheme of the request's one `Authorization` header, if it is one
/// of ours.
pub(crate) fn authorization_scheme(headers: &HeaderMap) -> Option<Scheme> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => scheme_of(value.as_bytes()).map(|(scheme, _)| scheme),
        _ => None,
    }
}

/// Parse one `Authorization` value (`Bearer` or `DPoP`). `Ok(None)` for
/// another scheme.
pub fn parse_authorization(value: &[u8], max_len: usize) -> Result<Option<&str>, AuthError> {
    let Some((_, scheme_len)) = scheme_of(value) else {
        return Ok(None);
    };
    // Scheme, at least one space, the token: anything longer is too large
    // before it is looked at.
    if value.len() > max_len.saturating_add(scheme_len + 16) {
        return Err(too_large());
    }
    // hyper trims trailing whitespace: "Bearer " arrives as "Bearer".
    let token = trim_start_spaces(&value[scheme_len..]);
    if token.is_empty() {
        return Err(invalid("empty bearer token"));
    }
    // One scan of the token; the whitespace scan only when it fails (the
    // errors keep their order: whitespace, size, any other character).
    let syntax_ok = is_b64token(token);
    if !syntax_ok && (token.contains(&b' ') || token.contains(&b'\t')) {
        return Err(invalid("bearer token contains whitespace"));
    }
    if token.len() > max_len {
        return Err(too_large());
    }
    if !syntax_ok {
        return Err(invalid("bearer token contains invalid characters"));
    }
    // b64token is ASCII, so this cannot fail.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| invalid("bearer token contains invalid characters"))
}

fn trim_start_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn bare_token(value: &[u8], max_len: usize) -> Result<&str, AuthError> {
    if value.len() > max_len {
        return Err(too_large());
    }
    if value.is_empty() {
        return Err(invalid("empty token"));
    }
    if !is_b64token(value) {
        return Err(invalid("token contains invalid characters"));
    }
    std::str::from_utf8(value).map_err(|_| invalid("token contains invalid characters"))
}

/// Find `name` among the `Cookie` headers. Two cookies of that name are ambiguous.
fn find_cookie<'h>(
    headers: &'h HeaderMap,
    name: &str,
    max_len: usize,
) -> Result<Option<&'h str>, AuthError> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        // The scan is linear and the server bounds header sizes; only our
        // cookie's value is held to the token limit (in `bare_token`).
        let bytes = header.as_bytes();
        for pair in bytes.split(|&b| b == b';') {
            let pair = trim_start_spaces(pair);
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if &pair[..eq] != name.as_bytes() {
                continue;
            }
            let mut value = &pair[eq + 1..];
            while let [rest @ .., b' ' | b'\t'] = value {
                value = rest;
            }
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            if found.is_some() {
                return Err(invalid("token cookie sent twice"));
            }
            found = Some(bare_token(value, max_len)?);
        }
    }
    Ok(found)
}

/// Read the token from the first source that has one.
///
/// `Ok(None)`: no source holds a token (401 without error code).
pub(crate) fn extract<'h>(
    headers: &'h HeaderMap,
    sources: &[TokenSource],
    max_len: usize,
) -> Result<Option<&'h str>, AuthError> {
    for source in sources {
        let found = match source {
            TokenSource::Bearer => {
                let mut values = headers.get_all(AUTHORIZATION).iter();
                match (values.next(), values.next()) {
                    (None, _) => None,
                    (Some(_), Some(_)) => {
                        return Err(invalid("more than one Authorization header"))
                    }
                    (Some(value), None) => parse_authorization(value.as_bytes(), max_len)?,
                }
            }
            TokenSource::Cookie(name) => find_cookie(headers, name, max_len)?,
            TokenSource::Header(name) => {
                let mut values = headers.get_all(name).iter();
                match (values.next(), values.next()) {
                    (None, _) => None,
                    (Some(_), Some(_)) => return Err(invalid("token header sent twice")),
                    (Some(value), None) => Some(bare_token(value.as_bytes(), max_len)?),
                }
            }
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn the_branch_free_b64token_byte_test_is_the_rfc_6750_set() {
        for b in 0..=u8::MAX {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_byte(b), rfc, "byte {b:#04x}");
        }
    }

    fn auth(value: &[u8]) -> Result<Option<&str>, ErrorKind> {
        parse_authorization(value, 64).map_err(|e| e.kind())
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(auth(b"Bearer abc.def.ghi"), Ok(Some("abc.def.ghi")));
        assert_eq!(auth(b"bEaReR abc"), Ok(Some("abc")));
        assert_eq!(auth(b"Bearer   abc"), Ok(Some("abc")));
    }

    #[test]
    fn other_schemes_are_not_ours() {
        assert_eq!(auth(b"Basic YWxhZGRpbjpvcGVuc2VzYW1l"), Ok(None));
        assert_eq!(auth(b"BearerX abc"), Ok(None));
        assert_eq!(auth(b"DPoPX abc"), Ok(None));
        assert_eq!(auth(b""), Ok(None));
    }

    #[test]
    fn the_dpop_scheme_carries_a_token_too() {
        assert_eq!(auth(b"DPoP abc.def.ghi"), Ok(Some("abc.def.ghi")));
        assert_eq!(auth(b"dpop\tabc"), Ok(Some("abc")));
        assert_eq!(auth(b"DPoP"), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth(b"DPoP a b"), Err(ErrorKind::InvalidRequest));
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("DPoP abc"));
        assert_eq!(authorization_scheme(&headers), Some(Scheme::Dpop));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(authorization_scheme(&headers), Some(Scheme::Bearer));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(authorization_scheme(&headers), None);
    }

    #[test]
    fn empty_or_spaced_or_odd_tokens_are_invalid_requests() {
        assert_eq!(auth(b"Bearer"), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth(b"Bearer    "), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth(b"Bearer a b"), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth(b"Bearer a,b"), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth(b"Bearer ==="), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth(b"Bearer a=b"), Err(ErrorKind::InvalidRequest));
        assert_eq!(auth("Bearer é".as_bytes()), Err(ErrorKind::InvalidRequest));
    }

    #[test]
    fn oversized_tokens_are_rejected_before_parsing() {
        let mut long = b"Bearer ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 65));
        assert_eq!(auth(&long), Err(ErrorKind::TokenTooLarge));
        long.extend(std::iter::repeat_n(b'a', 1000));
        assert_eq!(auth(&long), Err(ErrorKind::TokenTooLarge));
    }

    #[test]
    fn an_unbounded_limit_does_not_overflow() {
        assert_eq!(
            parse_authorization(b"Bearer abc", usize::MAX).unwrap(),
            Some("abc")
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; session=xyz; b=2"));
        headers.append(COOKIE, HeaderValue::from_static("other=3"));
        let sources = [TokenSource::cookie("session")];
        assert_eq!(extract(&headers, &sources, 64).unwrap(), Some("xyz"));
        let sources = [TokenSource::cookie("sess")];
        assert_eq!(extract(&headers, &sources, 64).unwrap(), None);
        headers.append(COOKIE, HeaderValue::from_static("session=again"));
        let sources = [TokenSource::cookie("session")];
        assert_eq!(
            extract(&headers, &sources, 64).unwrap_err().kind(),
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn sources_are_tried_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        headers.insert("x-token", HeaderValue::from_static("fromheader"));
        let sources = [
            TokenSource::bearer(),
            TokenSource::header(HeaderName::from_static("x-token")),
        ];
        assert_eq!(extract(&headers, &sources, 64).unwrap(), Some("fromheader"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer frombearer"));
        assert_eq!(extract(&headers, &sources, 64).unwrap(), Some("frombearer"));
    }

    #[test]
    fn two_authorization_headers_are_an_invalid_request() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        let err = extract(&headers, &[TokenSource::Bearer], 64).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }

    proptest! {
        #[test]
        fn no_authorization_value_panics(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_authorization(&value, 64);
        }

        #[test]
        fn only_well_formed_bearer_headers_yield_a_token(value in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(Some(token)) = parse_authorization(&value, 64) {
                let scheme_len = if value.len() >= 7 && value[..6].eq_ignore_ascii_case(b"bearer") { 6 } else { 4 };
                prop_assert!(value.len() > scheme_len);
                prop_assert!(value[..scheme_len].eq_ignore_ascii_case(b"bearer") || value[..scheme_len].eq_ignore_ascii_case(b"dpop"));
                prop_assert!(matches!(value[scheme_len], b' ' | b'\t'));
                prop_assert!(is_b64token(token.as_bytes()));
                prop_assert!(token.len() <= 64);
                prop_assert!(value.ends_with(token.as_bytes()));
            }
        }

        #[test]
        fn every_b64token_round_trips(token in "[A-Za-z0-9._~+/-]{1,60}={0,2}") {
            let header = format!("Bearer {token}");
            prop_assert_eq!(parse_authorization(header.as_bytes(), 64).unwrap(), Some(token.as_str()));
        }
    }
}
