//! Real keys from the `openssl` CLI, their public JWKs written from
//! openssl's own output, and tokens minted with `jsonwebtoken` directly (none
//! of it through the code under test).

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower_jwt_auth::{JwtAuth, Keys};

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A private key made by `openssl genpkey`: its file and PEM.
pub struct Generated {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

pub fn genpkey(dir: &Path, name: &str, args: &[&str]) -> Generated {
    let path = dir.join(format!("{name}.pem"));
    let mut all = vec!["genpkey"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-out", path.to_str().unwrap()]);
    openssl(&all);
    let pem = std::fs::read(&path).unwrap();
    Generated { path, pem }
}

/// A 2048-bit RSA key (`openssl genpkey -algorithm RSA`; public exponent
/// 65537, genpkey's default).
pub fn rsa2048(dir: &Path, name: &str) -> Generated {
    genpkey(
        dir,
        name,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    )
}

/// An EC key on `curve` as openssl names it (`P-256`, `P-384`, `P-521`,
/// `secp256k1`, ...).
pub fn ec(dir: &Path, name: &str, curve: &str) -> Generated {
    genpkey(
        dir,
        name,
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
        ],
    )
}

/// A P-256 key (`openssl genpkey -algorithm EC`).
pub fn p256(dir: &Path, name: &str) -> Generated {
    ec(dir, name, "P-256")
}

/// The last `len` bytes of the public key's DER: the EC point or OKP `x`.
pub fn raw_public(key: &Generated, len: usize) -> Vec<u8> {
    let der = openssl(&[
        "pkey",
        "-in",
        key.path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    der[der.len() - len..].to_vec()
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn rsa_jwk(key: &Generated) -> Value {
    let out = openssl(&[
        "rsa",
        "-in",
        key.path.to_str().unwrap(),
        "-noout",
        "-modulus",
    ]);
    let out = String::from_utf8(out).unwrap();
    let modulus = out.trim().strip_prefix("Modulus=").unwrap();
    // genpkey's default public exponent is 65537.
    json!({ "kty": "RSA", "n": b64(&hex(modulus)), "e": "AQAB" })
}

pub fn ec_jwk(key: &Generated, crv: &str, coord: usize) -> Value {
    let point = raw_public(key, 1 + 2 * coord);
    assert_eq!(point[0], 4, "uncompressed point");
    json!({ "kty": "EC", "crv": crv, "x": b64(&point[1..1 + coord]), "y": b64(&point[1 + coord..]) })
}

pub fn okp_jwk(key: &Generated, crv: &str, len: usize) -> Value {
    json!({ "kty": "OKP", "crv": crv, "x": b64(&raw_public(key, len)) })
}

/// `jwk` with these members added (or replaced; `null` removes).
pub fn with(jwk: &Value, members: Value) -> Value {
    let mut jwk = jwk.clone();
    for (name, value) in members.as_object().unwrap() {
        if value.is_null() {
            jwk.as_object_mut().unwrap().remove(name);
        } else {
            jwk[name] = value.clone();
        }
    }
    jwk
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `alice`, valid for five minutes, signed by `jsonwebtoken`.
pub fn token(alg: Algorithm, key: &EncodingKey, kid: Option<&str>) -> String {
    // Building a layer installs jsonwebtoken's crypto provider, which
    // `jsonwebtoken::encode` needs under `--all-features`.
    let _ = JwtAuth::<Value>::new(Keys::hs256([0u8; 32]).unwrap());
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let t = now();
    let claims = json!({ "sub": "alice", "iat": t, "exp": t + 300 });
    jsonwebtoken::encode(&header, &claims, key).expect("jsonwebtoken::encode")
}
