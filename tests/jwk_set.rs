//! `Keys::from_jwk_set` with sets as identity providers publish them: one
//! unusual key (encryption, key agreement, curves jsonwebtoken lacks, a
//! lowercase `alg`) is skipped and reported, the others keep working
//! (issue 12, "One unusual key rejects a whole JWK set").
//!
//! The keys are generated at test time with the `openssl` CLI, their JWKs
//! written from openssl's own output, and tokens minted with `jsonwebtoken`
//! directly: neither side goes through the code under test.
//!
//! Lowercase `alg` (`"rs256"`): JOSE algorithm names are case-sensitive
//! (RFC 7517 §4.4), so such a key is skipped, with the correct spelling in
//! the reason, rather than silently normalized.
//!
//! Run with `cargo test --all-features --test jwk_set`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};
use tower_jwt_auth::{Algorithm, ConfigError, ErrorKind, JwtAuth, Keys, SkippedKey};

use common::keygen::{
    b64, ec, ec_jwk, genpkey, okp_jwk, openssl, rsa2048, rsa_jwk, token, with, Generated,
};

// ---------------------------------------------------------------------------
// Fixtures: real keys from openssl (common::keygen)
// ---------------------------------------------------------------------------

/// One key of each kind, generated once for all tests.
struct Fixtures {
    rsa: Generated,
    rsa_public_pem: Vec<u8>,
    p256: Generated,
    p384: Generated,
    ed25519: Generated,
    rsa_jwk: Value,
    p256_jwk: Value,
    p384_jwk: Value,
    ed25519_jwk: Value,
    p521_jwk: Value,
    secp256k1_jwk: Value,
    x25519_jwk: Value,
    ed448_jwk: Value,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = common::new_dir("jwk-set");
        let rsa = rsa2048(&dir, "rsa");
        let p256 = ec(&dir, "p256", "P-256");
        let p384 = ec(&dir, "p384", "P-384");
        let p521 = ec(&dir, "p521", "P-521");
        let secp256k1 = ec(&dir, "secp256k1", "secp256k1");
        let ed25519 = genpkey(&dir, "ed25519", &["-algorithm", "ED25519"]);
        let x25519 = genpkey(&dir, "x25519", &["-algorithm", "X25519"]);
        let ed448 = genpkey(&dir, "ed448", &["-algorithm", "ED448"]);
        let fixtures = Fixtures {
            rsa_jwk: rsa_jwk(&rsa),
            rsa_public_pem: openssl(&["pkey", "-in", rsa.path.to_str().unwrap(), "-pubout"]),
            p256_jwk: ec_jwk(&p256, "P-256", 32),
            p384_jwk: ec_jwk(&p384, "P-384", 48),
            ed25519_jwk: okp_jwk(&ed25519, "Ed25519", 32),
            p521_jwk: ec_jwk(&p521, "P-521", 66),
            secp256k1_jwk: ec_jwk(&secp256k1, "secp256k1", 32),
            x25519_jwk: okp_jwk(&x25519, "X25519", 32),
            ed448_jwk: okp_jwk(&ed448, "Ed448", 57),
            rsa,
            p256,
            p384,
            ed25519,
        };
        let _ = std::fs::remove_dir_all(&dir);
        fixtures
    })
}

fn set(keys: &[Value]) -> String {
    log();
    json!({ "keys": keys }).to_string()
}

/// The warnings of every test: a global subscriber installed before any key
/// is read (a scoped one would race with the other test threads over the
/// callsite's cached interest).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        log
    })
}

// ---------------------------------------------------------------------------
// Tokens, minted by jsonwebtoken itself
// ---------------------------------------------------------------------------

fn auth(keys: Keys) -> JwtAuth<Value> {
    // Building the layer also installs jsonwebtoken's crypto provider, which
    // `jsonwebtoken::encode` needs under `--all-features`.
    JwtAuth::new(keys)
}

fn rsa_signer() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixtures().rsa.pem).unwrap()
}

fn p256_signer() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixtures().p256.pem).unwrap()
}

#[track_caller]
fn assert_verifies(auth: &JwtAuth<Value>, token: &str) {
    let ok = auth
        .verify(token)
        .unwrap_or_else(|e| panic!("refused: {e:?}"));
    assert_eq!(ok.claims["sub"], "alice");
}

#[track_caller]
fn assert_refused(auth: &JwtAuth<Value>, token: &str, kind: ErrorKind) {
    match auth.verify(token) {
        Ok(_) => panic!("accepted a token that must be refused ({kind:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{e:?}"),
    }
}

#[track_caller]
fn skipped_kid<'a>(keys: &'a Keys, kid: &str) -> &'a SkippedKey {
    keys.skipped()
        .iter()
        .find(|s| s.kid.as_deref() == Some(kid))
        .unwrap_or_else(|| panic!("{kid} not reported as skipped: {:?}", keys.skipped()))
}

/// Each unusual key of the issue, with its kid and a phrase its reason must hold.
fn odd_keys() -> Vec<(Value, &'static str, &'static str)> {
    let f = fixtures();
    vec![
        (
            with(
                &f.rsa_jwk,
                json!({ "kid": "oaep", "alg": "RSA-OAEP", "key_ops": ["encrypt", "wrapKey"] }),
            ),
            "oaep",
            "does not include \"verify\"",
        ),
        (
            with(
                &f.rsa_jwk,
                json!({ "kid": "oaep-no-ops", "alg": "RSA-OAEP-256" }),
            ),
            "oaep-no-ops",
            "encryption algorithm",
        ),
        (
            with(&f.x25519_jwk, json!({ "kid": "x25519" })),
            "x25519",
            "key agreement",
        ),
        (
            with(&f.p521_jwk, json!({ "kid": "p521", "alg": "ES512" })),
            "p521",
            "\"ES512\" is not supported",
        ),
        (
            with(&f.p521_jwk, json!({ "kid": "p521-no-alg" })),
            "p521-no-alg",
            "P-521",
        ),
        (
            with(&f.ed448_jwk, json!({ "kid": "ed448" })),
            "ed448",
            "Ed448",
        ),
        (
            with(&f.secp256k1_jwk, json!({ "kid": "k1", "alg": "ES256K" })),
            "k1",
            "\"ES256K\" is not supported",
        ),
        (
            with(&f.secp256k1_jwk, json!({ "kid": "k1-no-alg" })),
            "k1-no-alg",
            "secp256k1",
        ),
        (
            with(&f.rsa_jwk, json!({ "kid": "lower", "alg": "rs256" })),
            "lower",
            "did you mean \"RS256\"",
        ),
    ]
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Mutation: make any skip fatal (the old `?`) → `from_jwk_set` fails; drop
/// the `key_ops` check → the OAEP key is accepted as RS* and not reported.
#[test]
fn one_unusual_key_no_longer_rejects_the_set() {
    let f = fixtures();
    let odd = odd_keys();
    let mut keys: Vec<Value> = odd.iter().map(|(jwk, _, _)| jwk.clone()).collect();
    keys.push(with(
        &f.p256_jwk,
        json!({ "kid": "good", "use": "sig", "alg": "ES256" }),
    ));
    let keys = Keys::from_jwk_set(&set(&keys)).expect("the good key keeps the set usable");

    let reported: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| s.kid.as_deref().unwrap())
        .collect();
    let expected: Vec<_> = odd.iter().map(|(_, kid, _)| *kid).collect();
    assert_eq!(reported, expected);
    for (i, (jwk, kid, phrase)) in odd.iter().enumerate() {
        let skipped = skipped_kid(&keys, kid);
        assert_eq!(skipped.index, i);
        assert_eq!(skipped.alg.as_deref(), jwk["alg"].as_str(), "{kid}");
        assert!(skipped.reason.contains(phrase), "{kid}: {}", skipped.reason);
        assert!(
            skipped.to_string().contains(&format!("kid {kid:?}")),
            "{skipped}"
        );
    }

    let auth = auth(keys);
    assert_verifies(
        &auth,
        &token(Algorithm::ES256, &p256_signer(), Some("good")),
    );
    assert_verifies(&auth, &token(Algorithm::ES256, &p256_signer(), None));
    // The RSA key under the skipped "lower" and "oaep" kids verifies nothing.
    for kid in ["lower", "oaep", "oaep-no-ops"] {
        let token = token(Algorithm::RS256, &rsa_signer(), Some(kid));
        assert_refused(&auth, &token, ErrorKind::UnknownKey);
    }
}

/// Each unusual key alone used to fail the set with a message naming neither
/// kid nor alg; now it is `NoUsableKey`, naming both.
///
/// Mutation: return `NoKeys` (or an empty list) when everything was skipped
/// → fails.
#[test]
fn a_set_without_usable_key_is_an_error_naming_each_kid() {
    for (jwk, kid, phrase) in odd_keys() {
        let err = Keys::from_jwk_set(&set(std::slice::from_ref(&jwk))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("kid {kid:?}")), "{message}");
        if let Some(alg) = jwk["alg"].as_str() {
            assert!(message.contains(&format!("alg {alg:?}")), "{message}");
        }
        assert!(message.contains(phrase), "{message}");
        match err {
            ConfigError::NoUsableKey(skipped) => assert_eq!(skipped.len(), 1),
            other => panic!("expected NoUsableKey, got {other:?}"),
        }
    }
    let all: Vec<Value> = odd_keys().into_iter().map(|(jwk, _, _)| jwk).collect();
    let err = Keys::from_jwk_set(&set(&all)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("no usable key in the JWK set: "),
        "{message}"
    );
    for (_, kid, _) in odd_keys() {
        assert!(
            message.contains(&format!("kid {kid:?}")),
            "{kid}: {message}"
        );
    }
    match err {
        ConfigError::NoUsableKey(skipped) => assert_eq!(skipped.len(), all.len()),
        other => panic!("expected NoUsableKey, got {other:?}"),
    }
}

/// Mutation: drop the `tracing::warn!` → no line names the key.
#[test]
fn each_skipped_key_is_logged_as_a_warning() {
    let f = fixtures();
    let jwks = set(&[
        with(&f.p521_jwk, json!({ "kid": "log-p521", "alg": "ES512" })),
        with(&f.x25519_jwk, json!({ "kid": "log-x25519" })),
        with(&f.p256_jwk, json!({ "kid": "log-good" })),
    ]);
    Keys::from_jwk_set(&jwks).unwrap();
    let text = log().text();
    let lines: Vec<_> = text.lines().filter(|l| l.contains("\"log-")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        assert!(
            line.contains("WARN") && line.contains("key skipped"),
            "{line}"
        );
    }
    assert!(
        lines[0].contains("\"log-p521\"") && lines[0].contains("\"ES512\" is not supported"),
        "{text}"
    );
    assert!(
        lines[1].contains("\"log-x25519\"") && lines[1].contains("key agreement"),
        "{text}"
    );
}

/// Mutation: infer the algorithm from `alg` alone (ignoring `crv`) → the
/// P-256 key labelled ES384 is accepted.
#[test]
fn ec_curve_and_alg_must_agree() {
    let f = fixtures();
    let keys = Keys::from_jwk_set(&set(&[
        with(
            &f.p256_jwk,
            json!({ "kid": "p256-as-es384", "alg": "ES384" }),
        ),
        with(
            &f.p384_jwk,
            json!({ "kid": "p384-as-es256", "alg": "ES256" }),
        ),
        with(&f.p384_jwk, json!({ "kid": "p384", "alg": "ES384" })),
    ]))
    .unwrap();
    let skipped = skipped_kid(&keys, "p256-as-es384");
    assert!(
        skipped.reason.contains("does not match curve P-256"),
        "{}",
        skipped.reason
    );
    let skipped = skipped_kid(&keys, "p384-as-es256");
    assert!(
        skipped.reason.contains("does not match curve P-384"),
        "{}",
        skipped.reason
    );
    assert_eq!(keys.skipped().len(), 2);

    let auth = auth(keys);
    let p384 = EncodingKey::from_ec_pem(&f.p384.pem).unwrap();
    assert_verifies(&auth, &token(Algorithm::ES384, &p384, Some("p384")));
    assert_refused(
        &auth,
        &token(Algorithm::ES256, &p256_signer(), Some("p256-as-es384")),
        ErrorKind::UnknownKey,
    );

    // Alone, the mislabelled key is an error naming its kid and alg.
    let err = Keys::from_jwk_set(&set(&[with(
        &f.p256_jwk,
        json!({ "kid": "p256-as-es384", "alg": "ES384" }),
    )]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"p256-as-es384\"") && err.contains("\"ES384\""),
        "{err}"
    );
}

/// Mutation: infer RS256 alone for an RSA key without `alg` → RS384/PS256
/// refused; let an RSA key accept HS256 → the forged token passes.
#[test]
fn rsa_key_without_alg_accepts_the_rs_and_ps_families() {
    let f = fixtures();
    let jwks = set(&[with(&f.rsa_jwk, json!({ "kid": "rsa" }))]);
    let all = auth(Keys::from_jwk_set(&jwks).unwrap());
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        assert_verifies(&all, &token(alg, &rsa_signer(), Some("rsa")));
        assert_verifies(&all, &token(alg, &rsa_signer(), None));
    }
    // Algorithm confusion: HS256 "signed" with the public key as the secret.
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(f.rsa_jwk["n"].as_str().unwrap())
        .unwrap();
    for secret in [&n[..], &f.rsa_public_pem[..], jwks.as_bytes()] {
        let forged = token(
            Algorithm::HS256,
            &EncodingKey::from_secret(secret).unwrap(),
            Some("rsa"),
        );
        assert_refused(&all, &forged, ErrorKind::AlgorithmNotAllowed);
    }
    assert_refused(
        &all,
        &token(Algorithm::ES256, &p256_signer(), Some("rsa")),
        ErrorKind::AlgorithmNotAllowed,
    );

    // What the configuration allows bounds what the key accepts.
    let narrow =
        auth(Keys::from_jwk_set_allowing(&jwks, &[Algorithm::RS256, Algorithm::PS256]).unwrap());
    assert_verifies(
        &narrow,
        &token(Algorithm::RS256, &rsa_signer(), Some("rsa")),
    );
    assert_verifies(
        &narrow,
        &token(Algorithm::PS256, &rsa_signer(), Some("rsa")),
    );
    for alg in [Algorithm::RS384, Algorithm::PS512] {
        assert_refused(
            &narrow,
            &token(alg, &rsa_signer(), Some("rsa")),
            ErrorKind::AlgorithmNotAllowed,
        );
    }
    let err = Keys::from_jwk_set_allowing(&jwks, &[Algorithm::ES256]).unwrap_err();
    assert!(matches!(err, ConfigError::NoUsableKey(_)), "{err:?}");
    assert!(err.to_string().contains("\"rsa\""), "{err}");

    // An explicit `alg` is the key's only algorithm.
    let rs384 = auth(
        Keys::from_jwk_set(&set(&[with(
            &f.rsa_jwk,
            json!({ "kid": "rsa", "alg": "RS384" }),
        )]))
        .unwrap(),
    );
    assert_verifies(&rs384, &token(Algorithm::RS384, &rsa_signer(), Some("rsa")));
    assert_refused(
        &rs384,
        &token(Algorithm::RS256, &rsa_signer(), Some("rsa")),
        ErrorKind::AlgorithmNotAllowed,
    );
}

/// Lowercase `alg` is skipped with the correct spelling (names are
/// case-sensitive); for an `oct` key, the application's own secret, it is an
/// error.
///
/// Mutation: parse `alg` case-insensitively → "lower" is accepted.
#[test]
fn lowercase_alg_is_skipped_with_the_correct_spelling() {
    let f = fixtures();
    let keys = Keys::from_jwk_set(&set(&[
        with(&f.rsa_jwk, json!({ "kid": "rs", "alg": "rs256" })),
        with(&f.p256_jwk, json!({ "kid": "es", "alg": "es256" })),
        with(&f.ed25519_jwk, json!({ "kid": "ed", "alg": "EDDSA" })),
        with(&f.ed25519_jwk, json!({ "kid": "ed-ok", "alg": "EdDSA" })),
    ]))
    .unwrap();
    for (kid, right) in [("rs", "RS256"), ("es", "ES256"), ("ed", "EdDSA")] {
        let reason = &skipped_kid(&keys, kid).reason;
        assert!(
            reason.contains("case-sensitive") && reason.contains(&format!("{right:?}")),
            "{reason}"
        );
    }
    let auth = auth(keys);
    let ed = EncodingKey::from_ed_pem(&f.ed25519.pem).unwrap();
    assert_verifies(&auth, &token(Algorithm::EdDSA, &ed, Some("ed-ok")));
    assert_refused(
        &auth,
        &token(Algorithm::EdDSA, &ed, Some("ed")),
        ErrorKind::UnknownKey,
    );
    assert_refused(
        &auth,
        &token(Algorithm::RS256, &rsa_signer(), Some("rs")),
        ErrorKind::UnknownKey,
    );

    let oct = set(&[json!({ "kty": "oct", "kid": "mine", "alg": "hs256", "k": b64(&[7; 32]) })]);
    let err = Keys::from_jwk_set(&oct).unwrap_err();
    assert!(matches!(err, ConfigError::InvalidJwkSet(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("\"mine\"") && err.contains("\"HS256\""),
        "{err}"
    );
}

/// Mutation: drop the family check in `oct_key` or `wrong_alg` → an `oct`
/// key verifies RS256, or an RSA/EC/OKP key verifies HS256.
#[test]
fn oct_and_asymmetric_keys_never_mix() {
    let f = fixtures();
    let secret = [7u8; 32];
    let hmac = json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64(&secret) });
    let keys = Keys::from_jwk_set(&set(&[
        hmac.clone(),
        with(&f.rsa_jwk, json!({ "kid": "rsa-hs", "alg": "HS256" })),
        with(&f.p256_jwk, json!({ "kid": "ec-hs", "alg": "HS256" })),
        with(&f.ed25519_jwk, json!({ "kid": "ed-hs", "alg": "HS512" })),
        with(&f.rsa_jwk, json!({ "kid": "rsa-es", "alg": "ES256" })),
        with(&f.p256_jwk, json!({ "kid": "ec-rs", "alg": "RS256" })),
    ]))
    .unwrap();
    for kid in ["rsa-hs", "ec-hs", "ed-hs"] {
        let reason = &skipped_kid(&keys, kid).reason;
        assert!(
            reason.contains("an HMAC algorithm needs an oct key"),
            "{kid}: {reason}"
        );
    }
    for kid in ["rsa-es", "ec-rs"] {
        assert!(skipped_kid(&keys, kid)
            .reason
            .contains("cannot be used with"));
    }
    assert_eq!(keys.skipped().len(), 5);
    let auth = auth(keys);
    let hs = EncodingKey::from_secret(&secret).unwrap();
    assert_verifies(&auth, &token(Algorithm::HS256, &hs, Some("hmac")));
    assert_refused(
        &auth,
        &token(Algorithm::HS256, &hs, Some("rsa-hs")),
        ErrorKind::UnknownKey,
    );
    // The HMAC key verifies no asymmetric algorithm.
    assert_refused(
        &auth,
        &token(Algorithm::RS256, &rsa_signer(), Some("hmac")),
        ErrorKind::AlgorithmNotAllowed,
    );

    // An oct key labelled with an asymmetric alg: the application's own
    // secret is misconfigured, so the set fails, naming kid and alg.
    for alg in ["RS256", "ES256", "EdDSA", "PS512"] {
        let jwks = set(&[
            with(&hmac, json!({ "alg": alg })),
            with(&f.p256_jwk, json!({ "kid": "good" })),
        ]);
        let err = Keys::from_jwk_set(&jwks).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("\"hmac\"") && message.contains(&format!("{alg:?}")),
            "{message}"
        );
    }
    // An oct key without alg is an error too (as before); a weak one as well.
    let err = Keys::from_jwk_set(&set(&[with(&hmac, json!({ "alg": null }))])).unwrap_err();
    assert!(
        err.to_string().contains("\"hmac\"") && err.to_string().contains("must name its \"alg\""),
        "{err}"
    );
    let err = Keys::from_jwk_set(&set(&[with(&hmac, json!({ "k": b64(&[7; 31]) }))])).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::WeakSecret {
                min: 32,
                got: 31,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Mutation: ignore `use` or `key_ops` → the encryption-only keys verify.
#[test]
fn use_and_key_ops_are_both_consulted() {
    let f = fixtures();
    let cases = [
        (json!({ "use": "sig" }), true),
        (json!({ "key_ops": ["verify"] }), true),
        (json!({ "key_ops": ["sign", "verify"] }), true),
        (json!({ "use": "sig", "key_ops": ["verify"] }), true),
        (json!({ "use": "enc" }), false),
        (json!({ "use": "SIG" }), false),
        (json!({ "use": 1 }), false),
        (json!({ "key_ops": ["sign"] }), false),
        (json!({ "key_ops": ["encrypt", "wrapKey"] }), false),
        (json!({ "key_ops": [] }), false),
        (json!({ "key_ops": "verify" }), false),
        (json!({ "key_ops": ["verify", 1] }), false),
        (json!({ "use": "sig", "key_ops": ["encrypt"] }), false),
        (json!({ "use": "enc", "key_ops": ["verify"] }), false),
    ];
    for (members, usable) in cases {
        let jwk = with(&with(&f.p256_jwk, json!({ "kid": "k" })), members.clone());
        let keys =
            Keys::from_jwk_set(&set(&[jwk, with(&f.p384_jwk, json!({ "kid": "other" }))])).unwrap();
        assert_eq!(
            keys.skipped().is_empty(),
            usable,
            "{members}: {:?}",
            keys.skipped()
        );
        let result = auth(keys).verify(&token(Algorithm::ES256, &p256_signer(), Some("k")));
        assert_eq!(result.is_ok(), usable, "{members}: {result:?}");
    }
}

/// Mutation: deserialize into `jsonwebtoken::jwk::JwkSet` again → an unknown
/// `kty` or member fails the whole set.
#[test]
fn x5c_x5t_unknown_members_and_kty_are_harmless() {
    let f = fixtures();
    let keys = Keys::from_jwk_set(&set(&[
        with(
            &f.p256_jwk,
            json!({
                "kid": "ec",
                "x5c": ["not a certificate", 3],
                "x5t": "!!",
                "x5t#S256": {},
                "x5u": "https://attacker.example/cert",
                "ext": true,
                "something": [null]
            }),
        ),
        with(&f.ed25519_jwk, json!({ "kid": "ed" })),
        json!({ "kty": "PQC-ML-DSA", "kid": "future", "pub": "AAAA" }),
        json!({ "kid": "no-kty", "n": "AQAB" }),
    ]))
    .unwrap();
    assert!(skipped_kid(&keys, "future").reason.contains("unknown kty"));
    assert!(skipped_kid(&keys, "no-kty").reason.contains("kty"));
    assert_eq!(keys.skipped().len(), 2);
    let auth = auth(keys);
    assert_verifies(&auth, &token(Algorithm::ES256, &p256_signer(), Some("ec")));
    let ed = EncodingKey::from_ed_pem(&f.ed25519.pem).unwrap();
    assert_verifies(&auth, &token(Algorithm::EdDSA, &ed, Some("ed")));
}

/// Hostile or broken sets: an error or a skip, never a panic, and reports
/// stay short.
///
/// Mutation: drop the length checks in `ec_key`/`okp_key`/`rsa_key` → the
/// malformed keys are accepted (and fail every token at request time).
#[test]
fn hostile_sets_are_refused_without_panicking() {
    let f = fixtures();
    for json in [
        "",
        "null",
        "[]",
        "{}",
        "{\"keys\": 5}",
        "{\"keys\": {}}",
        "{\"keys\": [",
        &"[".repeat(10_000),
    ] {
        let err = Keys::from_jwk_set(json).unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidJwkSet(_)),
            "{json:.20}: {err:?}"
        );
    }
    assert!(matches!(
        Keys::from_jwk_set("{\"keys\": []}").unwrap_err(),
        ConfigError::NoKeys
    ));

    let long = "k".repeat(100_000);
    let bad = [
        json!(1),
        json!("x"),
        json!(null),
        json!([]),
        json!({}),
        with(&f.p256_jwk, json!({ "kid": long })),
        with(&f.p256_jwk, json!({ "kid": 7 })),
        with(&f.p256_jwk, json!({ "alg": long })),
        with(&f.p256_jwk, json!({ "alg": ["ES256"] })),
        with(&f.p256_jwk, json!({ "x": "not base64!" })),
        with(&f.p256_jwk, json!({ "x": b64(&[1; 31]) })),
        with(&f.p256_jwk, json!({ "y": null })),
        with(&f.p256_jwk, json!({ "crv": long })),
        with(&f.p256_jwk, json!({ "crv": 256 })),
        with(&f.ed25519_jwk, json!({ "x": b64(&[1; 33]) })),
        with(&f.rsa_jwk, json!({ "n": b64(&[0xff; 128]) })),
        with(&f.rsa_jwk, json!({ "n": b64(&[0xff; 1025]) })),
        with(&f.rsa_jwk, json!({ "n": "" })),
        with(&f.rsa_jwk, json!({ "e": "" })),
        with(&f.rsa_jwk, json!({ "e": b64(&[2]) })),
        with(&f.rsa_jwk, json!({ "e": b64(&[1; 64]) })),
        with(&f.rsa_jwk, json!({ "kty": "rsa" })),
        with(&f.rsa_jwk, json!({ "alg": "none" })),
        with(&f.rsa_jwk, json!({ "use": long })),
    ];
    let err = Keys::from_jwk_set(&set(&bad)).unwrap_err();
    let ConfigError::NoUsableKey(skipped) = &err else {
        panic!("expected NoUsableKey, got {err:?}");
    };
    assert_eq!(skipped.len(), bad.len(), "{skipped:#?}");
    let message = err.to_string();
    assert!(
        message.len() < 8 * 1024,
        "the report quotes hostile members at length"
    );
    assert!(skipped[5].reason.contains("kid longer than 256 bytes"));
    let cut = skipped[7].alg.as_deref().unwrap();
    assert!(cut.chars().count() <= 65 && cut.ends_with('…'), "{cut}");
    assert!(
        skipped[15].reason.contains("1024 bits"),
        "{}",
        skipped[15].reason
    );
    assert!(
        skipped[16].reason.contains("8200 bits"),
        "{}",
        skipped[16].reason
    );

    // The good key next to all of them still works.
    let mut with_good = bad.to_vec();
    with_good.push(with(&f.p256_jwk, json!({ "kid": "good" })));
    let keys = Keys::from_jwk_set(&set(&with_good)).unwrap();
    assert_eq!(keys.skipped().len(), bad.len());
    assert_verifies(
        &auth(keys),
        &token(Algorithm::ES256, &p256_signer(), Some("good")),
    );
}

/// Mutation: drop `skipped` from `Keys::and` → the combined keys forget it.
#[test]
fn skipped_keys_survive_and_and_debug() {
    let f = fixtures();
    let keys = Keys::from_jwk_set(&set(&[
        with(&f.x25519_jwk, json!({ "kid": "dh" })),
        with(&f.p256_jwk, json!({ "kid": "good" })),
    ]))
    .unwrap();
    let combined = Keys::hs256([1u8; 32]).unwrap().and(keys);
    assert_eq!(combined.skipped().len(), 1);
    assert_eq!(combined.skipped()[0].kid.as_deref(), Some("dh"));
    let debug = format!("{combined:?}");
    assert!(
        debug.contains("skipped") && debug.contains("\"dh\""),
        "{debug}"
    );
    assert!(
        !debug.contains(f.p256_jwk["x"].as_str().unwrap()),
        "{debug}"
    );
}
