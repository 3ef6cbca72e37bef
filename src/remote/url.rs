//! The URLs a remote key set is fetched from: HTTPS only, except loopback
//! hosts or an explicit opt-in, and the two discovery document forms.

use std::net::{Ipv4Addr, Ipv6Addr};

use http::uri::{PathAndQuery, Scheme};
use http::Uri;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlRefusal {
    /// Not an absolute `http(s)://host/...` URL without credentials.
    Invalid(String),
    /// `http://` to a host that is not loopback, without `allow_http(true)`.
    Insecure,
}

/// Whether `host` (as written in a URI, IPv6 in brackets) is a loopback
/// address: 127.0.0.0/8, ::1 or `localhost`.
pub(crate) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `url` parsed and checked: `https`, or `http` to loopback or with `allow_http`.
pub(crate) fn parse_url(url: &str, allow_http: bool) -> Result<Uri, UrlRefusal> {
    let uri: Uri = url
        .parse()
        .map_err(|e| UrlRefusal::Invalid(format!("not a URL: {e}")))?;
    check_url(&uri, allow_http)?;
    Ok(uri)
}

/// The checks of [`parse_url`] on a parsed URI (also for a discovered `jwks_uri`).
pub(crate) fn check_url(uri: &Uri, allow_http: bool) -> Result<(), UrlRefusal> {
    let Some(authority) = uri.authority() else {
        return Err(UrlRefusal::Invalid(
            "not an absolute URL (scheme and host needed)".into(),
        ));
    };
    if authority.as_str().contains('@') {
        return Err(UrlRefusal::Invalid(
            "credentials in the URL are not supported".into(),
        ));
    }
    if authority.host().is_empty() {
        return Err(UrlRefusal::Invalid("no host".into()));
    }
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTPS => Ok(()),
        Some(s) if *s == Scheme::HTTP => {
            if allow_http || is_loopback(authority.host()) {
                Ok(())
            } else {
                Err(UrlRefusal::Insecure)
            }
        }
        Some(other) => Err(UrlRefusal::Invalid(format!(
            "scheme {other:?} (https expected)"
        ))),
        None => Err(UrlRefusal::Invalid("no scheme".into())),
    }
}

/// The discovery documents of an issuer, in the order they are tried:
/// OpenID Connect Discovery (`<issuer>/.well-known/openid-configuration`,
/// appended after the issuer's path without its trailing `/`), then RFC 8414
/// (`/.well-known/oauth-authorization-server` inserted before the path).
pub(crate) fn discovery_urls(issuer: &Uri) -> [Uri; 2] {
    let path = issuer.path().trim_end_matches('/');
    let with_path = |new_path: String| {
        let mut parts = issuer.clone().into_parts();
        parts.path_and_query =
            Some(PathAndQuery::try_from(new_path).expect("a path built from a valid URI's path"));
        Uri::from_parts(parts).expect("a URI with a valid path")
    };
    [
        with_path(format!("{path}/.well-known/openid-configuration")),
        with_path(format!("/.well-known/oauth-authorization-server{path}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::{check_url, discovery_urls, is_loopback, parse_url, UrlRefusal};

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LocalHost", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "128.0.0.1",
            "[::2]",
            "localhost.example.com",
            "::1",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn https_only_except_loopback_or_opt_in() {
        assert!(parse_url("https://id.example.com/jwks", false).is_ok());
        assert!(parse_url("http://127.0.0.1:8080/jwks", false).is_ok());
        assert!(parse_url("http://[::1]:8080/jwks", false).is_ok());
        assert!(parse_url("http://localhost/jwks", false).is_ok());
        assert_eq!(
            parse_url("http://id.example.com/jwks", false),
            Err(UrlRefusal::Insecure)
        );
        assert!(parse_url("http://id.example.com/jwks", true).is_ok());
        for bad in [
            "ftp://id.example.com/jwks",
            "/jwks",
            "id.example.com/jwks",
            "https://user:pw@id.example.com/jwks",
            "not a url",
        ] {
            assert!(
                matches!(parse_url(bad, true), Err(UrlRefusal::Invalid(_))),
                "{bad}"
            );
        }
        let uri = "http://10.1.1.1/".parse().unwrap();
        assert_eq!(check_url(&uri, false), Err(UrlRefusal::Insecure));
    }

    #[test]
    fn discovery_url_forms() {
        let [oidc, rfc8414] = discovery_urls(&"https://id.example.com".parse().unwrap());
        assert_eq!(
            oidc,
            "https://id.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc8414,
            "https://id.example.com/.well-known/oauth-authorization-server"
        );
        let [oidc, rfc8414] =
            discovery_urls(&"https://id.example.com:8443/realms/acme/".parse().unwrap());
        assert_eq!(
            oidc,
            "https://id.example.com:8443/realms/acme/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc8414,
            "https://id.example.com:8443/.well-known/oauth-authorization-server/realms/acme"
        );
    }
}
