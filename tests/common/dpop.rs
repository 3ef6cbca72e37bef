//! DPoP proofs minted by an independent JWT library: node's `jose` (the
//! library oidc-provider is built on), driven through `tests/oidc/dpop.mjs`,
//! one long-lived process per `Jose`, killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use serde_json::{json, Value};

/// A key pair made by `jose`: its index there and its RFC 7638 thumbprint
/// (computed by `jose`).
#[derive(Debug, Clone)]
pub struct JoseKey {
    pub index: u64,
    pub jkt: String,
    pub jwk: Value,
}

/// What a proof says; `None` fields take `jose`'s side defaults (a random
/// `jti`, `iat` now, `typ: dpop+jwt`, the key's own public jwk).
#[derive(Debug, Clone, Default)]
pub struct ProofSpec {
    pub htm: String,
    pub htu: String,
    /// The access token whose hash is `ath`.
    pub token: Option<String>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    /// `Some(None)`: no `typ` at all.
    pub typ: Option<Option<String>>,
    /// Put another key's public jwk into the header.
    pub jwk_of: Option<u64>,
    /// Put the private jwk into the header.
    pub private_jwk: bool,
    /// Claims to leave out.
    pub omit: Vec<&'static str>,
}

impl ProofSpec {
    /// A proof for `htm htu` presenting `token`.
    pub fn new(htm: &str, htu: &str, token: Option<&str>) -> Self {
        Self {
            htm: htm.to_owned(),
            htu: htu.to_owned(),
            token: token.map(str::to_owned),
            ..Self::default()
        }
    }
}

/// A running `node dpop.mjs`.
pub struct Jose {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl std::fmt::Debug for Jose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jose").finish_non_exhaustive()
    }
}

impl Jose {
    /// Start the minter (installs `tests/oidc`'s packages first if needed).
    pub fn start() -> Self {
        let dir = super::oidc::ensure_installed();
        let mut child = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()))
            .arg(dir.join("dpop.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node (install Node.js 18+; scripts/test.sh does)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            io: Mutex::new((stdin, stdout)),
        }
    }

    fn call(&self, request: Value) -> Value {
        let mut io = self.io.lock().unwrap();
        writeln!(io.0, "{request}").expect("write to dpop.mjs");
        io.0.flush().unwrap();
        let mut line = String::new();
        io.1.read_line(&mut line).expect("read from dpop.mjs");
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("dpop.mjs answered {line:?}: {e}"));
        assert!(answer.get("error").is_none(), "dpop.mjs failed: {answer}");
        answer
    }

    /// A new key pair for `alg` (`ES256`, `ES384`, `EdDSA`, `RS256`, `PS256`...).
    pub fn key(&self, alg: &str) -> JoseKey {
        let answer = self.call(json!({ "op": "key", "alg": alg }));
        JoseKey {
            index: answer["key"].as_u64().unwrap(),
            jkt: answer["jkt"].as_str().unwrap().to_owned(),
            jwk: answer["jwk"].clone(),
        }
    }

    /// A proof signed with `key`.
    pub fn proof(&self, key: &JoseKey, spec: &ProofSpec) -> String {
        let mut request = json!({
            "op": "proof",
            "key": key.index,
            "htm": spec.htm,
            "htu": spec.htu,
            "private_jwk": spec.private_jwk,
            "omit": spec.omit,
        });
        if let Some(token) = &spec.token {
            request["token"] = token.as_str().into();
        }
        if let Some(iat) = spec.iat {
            request["iat"] = iat.into();
        }
        if let Some(jti) = &spec.jti {
            request["jti"] = jti.as_str().into();
        }
        if let Some(typ) = &spec.typ {
            request["typ"] = typ.clone().map_or(Value::Null, Value::from);
        }
        if let Some(other) = spec.jwk_of {
            request["jwk_of"] = other.into();
        }
        self.call(request)["proof"].as_str().unwrap().to_owned()
    }
}

impl Drop for Jose {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Now, unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
