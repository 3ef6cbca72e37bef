//! Prints one ES256 access token for the load test's remote-issuer rows
//! (`scripts/loadtest.sh`): signed with a PEM private key, for `alice`, with
//! the quickstart's claims (`roles`, `jti`), valid for an hour.
//!
//! ```text
//! MINT_KEY=tests/keys/ec_p256_private.pem MINT_KID=ec-1 \
//!     MINT_ISSUER=http://127.0.0.1:8080 cargo run --example mint_token
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `MINT_KEY` | `tests/keys/ec_p256_private.pem` | P-256 private key (PEM) |
//! | `MINT_KID` | `ec-1` | header `kid` |
//! | `MINT_ISSUER` | (required) | `iss` |
//! | `MINT_AUDIENCE` | `quickstart` | `aud` |

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // With both jsonwebtoken backends compiled in, none is the default.
    #[cfg(feature = "aws_lc_rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();

    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let issuer = std::env::var("MINT_ISSUER").map_err(|_| "MINT_ISSUER is required")?;
    let pem = std::fs::read(var("MINT_KEY", "tests/keys/ec_p256_private.pem"))?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(var("MINT_KID", "ec-1"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "sub": "alice",
        "roles": ["user"],
        "iss": issuer,
        "aud": var("MINT_AUDIENCE", "quickstart"),
        "iat": now,
        "exp": now + 3600,
        "jti": "loadtest-es256-0001",
    });
    println!(
        "{}",
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(&pem)?)?
    );
    Ok(())
}
