//! `application/x-www-form-urlencoded` request bodies, as the back-channel
//! logout and the revocation endpoint receive them: bounded in size, each
//! parameter at most once (RFC 6749 §3.2), UTF-8 after decoding.

use std::borrow::Cow;

use http::header::CONTENT_TYPE;
use http::HeaderMap;

/// The largest form body the endpoints read (64 KiB): a logout token or a
/// token to revoke is a few kilobytes. Limit the body to it before reading
/// it (e.g. `axum::extract::DefaultBodyLimit::max(MAX_FORM_LEN)`); a longer
/// one is refused with 400 anyway.
pub const MAX_FORM_LEN: usize = 64 * 1024;

/// Why a form body was refused; the text is safe to send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FormError(pub(crate) &'static str);

/// The decoded parameters of a form body, in order.
#[derive(Debug)]
pub(crate) struct Form<'a> {
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Form<'a> {
    /// Parse `body` (at most [`MAX_FORM_LEN`] bytes, no parameter twice).
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, FormError> {
        if body.len() > MAX_FORM_LEN {
            return Err(FormError("request body too large"));
        }
        let mut params: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let name = decode(name)?;
            if params.iter().any(|(n, _)| *n == name) {
                return Err(FormError("a parameter is repeated"));
            }
            // A flood of tiny parameters costs a quadratic search above:
            // no endpoint needs more than a few.
            if params.len() >= 32 {
                return Err(FormError("too many parameters"));
            }
            params.push((name, decode(value)?));
        }
        Ok(Self { params })
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Whether the request says its body is a form (parameters such as a
/// `charset` aside).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Percent-decode one name or value (`+` is a space); the result must be
/// UTF-8.
pub(crate) fn decode(raw: &[u8]) -> Result<Cow<'_, str>, FormError> {
    const BAD: FormError = FormError("malformed form encoding");
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return std::str::from_utf8(raw).map(Cow::Borrowed).map_err(|_| BAD);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| char::from(b).to_digit(16);
                let hi = raw.get(i + 1).copied().and_then(hex).ok_or(BAD)?;
                let lo = raw.get(i + 2).copied().and_then(hex).ok_or(BAD)?;
                out.push(u8::try_from(hi * 16 + lo).map_err(|_| BAD)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_once_each() {
        let form = Form::parse(b"token=a%2Eb+c&token_type_hint=refresh_token&&x").unwrap();
        assert_eq!(form.get("token"), Some("a.b c"));
        assert_eq!(form.get("token_type_hint"), Some("refresh_token"));
        assert_eq!(form.get("x"), Some(""));
        assert_eq!(form.get("y"), None);
    }

    #[test]
    fn hostile_bodies_are_refused() {
        for bad in [
            &b"token=a&token=b"[..],
            b"token=%",
            b"token=%4",
            b"token=%zz",
            b"token=%ff",
            b"t\xffoken=a",
        ] {
            assert!(Form::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Form::parse(&vec![b'a'; MAX_FORM_LEN + 1]).is_err());
        let many: Vec<u8> = (0..40)
            .flat_map(|i| format!("p{i}=1&").into_bytes())
            .collect();
        assert!(Form::parse(&many).is_err());
    }

    #[test]
    fn the_content_type_must_be_a_form() {
        let mut headers = HeaderMap::new();
        assert!(!is_form(&headers));
        headers.insert(
            CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        assert!(is_form(&headers));
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_form(&headers));
    }
}
