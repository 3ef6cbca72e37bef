//! Finding an issuer's `jwks_uri`: OpenID Connect Discovery, then RFC 8414
//! (OAuth 2.0 Authorization Server Metadata), the document's `issuer`
//! checked against the configured one.

use http::Uri;
use serde_json::Value;

use super::fetch::{get_json, FetchError, HttpFetch};
use super::url::{check_url, discovery_urls, UrlRefusal};

/// The `jwks_uri` of `issuer` (its configured string, compared exactly with
/// the document's `issuer`, and its parsed form).
///
/// The OIDC document is tried first; the RFC 8414 one only when the first
/// answered with a status other than 200 (a provider that only speaks
/// RFC 8414 answers 404). A transport failure, a document that is not
/// JSON, an issuer mismatch or a missing or insecure `jwks_uri` ends the
/// discovery with that error.
pub(crate) async fn discover(
    client: &dyn HttpFetch,
    issuer: &str,
    issuer_uri: &Uri,
    limit: usize,
    allow_http: bool,
) -> Result<Uri, FetchError> {
    let [oidc, rfc8414] = discovery_urls(issuer_uri);
    let body = match get_json(client, &oidc, limit).await {
        Ok((body, _)) => body,
        Err(FetchError::Status(status)) => match get_json(client, &rfc8414, limit).await {
            Ok((body, _)) => body,
            Err(FetchError::Status(second)) => {
                return Err(FetchError::Discovery(format!(
                    "no discovery document: {oidc} answered {status}, {rfc8414} answered {second}"
                )))
            }
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    jwks_uri_of(&body, issuer, allow_http)
}

/// The `jwks_uri` of a discovery document whose `issuer` must be `issuer`.
fn jwks_uri_of(body: &[u8], issuer: &str, allow_http: bool) -> Result<Uri, FetchError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| FetchError::NotJson(e.to_string()))?;
    match doc.get("issuer").and_then(Value::as_str) {
        Some(found) if found == issuer => {}
        Some(found) => {
            return Err(FetchError::Discovery(format!(
                "the document names issuer {:?}, not the configured {issuer:?}",
                found.chars().take(256).collect::<String>()
            )))
        }
        None => {
            return Err(FetchError::Discovery(
                "no \"issuer\" in the document".into(),
            ))
        }
    }
    let Some(jwks_uri) = doc.get("jwks_uri").and_then(Value::as_str) else {
        return Err(FetchError::Discovery(
            "no \"jwks_uri\" in the document".into(),
        ));
    };
    let uri: Uri = jwks_uri
        .parse()
        .map_err(|e| FetchError::Discovery(format!("\"jwks_uri\" is not a URL: {e}")))?;
    match check_url(&uri, allow_http) {
        Ok(()) => Ok(uri),
        Err(UrlRefusal::Insecure) => Err(FetchError::Discovery(format!(
            "\"jwks_uri\" {uri} is plain http to a host that is not loopback"
        ))),
        Err(UrlRefusal::Invalid(why)) => {
            Err(FetchError::Discovery(format!("\"jwks_uri\" {uri}: {why}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{jwks_uri_of, FetchError};

    #[test]
    fn issuer_must_match_and_jwks_uri_be_secure() {
        let issuer = "https://id.example.com";
        let doc = |iss: &str, jwks: &str| {
            serde_json::json!({ "issuer": iss, "jwks_uri": jwks }).to_string()
        };
        let ok = jwks_uri_of(
            doc(issuer, "https://keys.example.com/jwks").as_bytes(),
            issuer,
            false,
        )
        .unwrap();
        assert_eq!(ok, "https://keys.example.com/jwks");
        for (body, phrase) in [
            (
                doc("https://id.example.com/", "https://k/jwks"),
                "not the configured",
            ),
            (
                doc("https://evil.example.com", "https://k/jwks"),
                "not the configured",
            ),
            (doc(issuer, "http://keys.example.com/jwks"), "plain http"),
            (doc(issuer, "/jwks"), "not an absolute URL"),
            (
                r#"{"issuer": "https://id.example.com"}"#.to_owned(),
                "no \"jwks_uri\"",
            ),
            (
                r#"{"jwks_uri": "https://k/jwks"}"#.to_owned(),
                "no \"issuer\"",
            ),
        ] {
            match jwks_uri_of(body.as_bytes(), issuer, false) {
                Err(FetchError::Discovery(why)) => assert!(why.contains(phrase), "{why}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(jwks_uri_of(
            doc(issuer, "http://keys.example.com/jwks").as_bytes(),
            issuer,
            true
        )
        .is_ok());
    }
}
