//! A real OpenID Provider per test: node's `oidc-provider` (npm), run by
//! `tests/oidc/provider.mjs` on 127.0.0.1, killed on drop.
//!
//! The client-credentials grant with a resource indicator gives RFC 9068
//! access tokens (`typ: at+jwt`, `client_id`, `scope`), signed with keys the
//! provider generates at start and publishes at its `jwks_uri`.
//!
//! Needs `node` and the packages of `tests/oidc` (`scripts/test.sh` installs
//! both; otherwise the first provider of a test process runs `npm ci` there).
//! Panics (never skips) when node or npm is missing. Only loopback traffic
//! once the packages are installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;

use super::http::{self, HttpResponse};

/// The client of the client-credentials grant.
pub const CLIENT_ID: &str = "rs-test";
/// Its secret (`client_secret_basic`).
pub const CLIENT_SECRET: &str = "rs-test-secret";
/// The default resource server: the audience of [`OidcProvider::token`].
pub const AUDIENCE: &str = "urn:tower-jwt-auth:test";
/// A second resource server the provider knows, for wrong-audience tokens.
pub const OTHER_AUDIENCE: &str = "urn:tower-jwt-auth:other";

/// How long a provider may take to print `READY` (node start, key generation).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a provider. `Default`: ES256, 300 s tokens, no
/// `Cache-Control` on the JWKS.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// Signing alg of access tokens: `ES256` or `RS256`.
    pub alg: &'static str,
    /// Access token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// `Cache-Control: public, max-age=<this>` on the JWKS response.
    pub jwks_max_age_secs: Option<u64>,
    /// The resource servers (audiences) the provider knows.
    pub audiences: Vec<String>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            alg: "ES256",
            token_ttl_secs: 300,
            jwks_max_age_secs: None,
            audiences: vec![AUDIENCE.to_owned(), OTHER_AUDIENCE.to_owned()],
        }
    }
}

/// The answer of `POST /__rotate`.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Every kid published after the rotation, newest first.
    pub kids: Vec<String>,
    /// The kid new tokens are signed with.
    pub signing_kid: String,
}

/// Requests the provider has answered (`GET /__stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OidcStats {
    /// `GET /jwks`, including the ones answered with a test outage status.
    pub jwks_fetches: u64,
    /// `GET /.well-known/openid-configuration` or `oauth-authorization-server`.
    pub discovery_fetches: u64,
    /// Access tokens issued.
    pub tokens: u64,
    /// `POST /__rotate` calls.
    pub rotations: u64,
}

/// A running `oidc-provider` on 127.0.0.1, issuer `http://127.0.0.1:<port>`.
pub struct OidcProvider {
    options: OidcOptions,
    port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// A provider with the default options on a free port.
    pub fn start() -> Self {
        Self::start_with(OidcOptions::default())
    }

    /// A provider with these options on a free port.
    pub fn start_with(options: OidcOptions) -> Self {
        let mut provider = Self {
            options,
            port: 0,
            child: None,
            stdin: None,
            stderr: Arc::default(),
        };
        provider.spawn();
        provider
    }

    /// `http://127.0.0.1:<port>` (no trailing slash), the tokens' `iss`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// `<issuer>/jwks` (as its discovery document says).
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer())
    }

    /// The discovery document.
    pub fn discovery(&self) -> serde_json::Value {
        self.get("/.well-known/openid-configuration").json()
    }

    /// The JWK set (public keys) as served at the `jwks_uri`.
    pub fn jwks(&self) -> String {
        self.get("/jwks").body
    }

    /// An access token for [`AUDIENCE`] with these space-separated scopes.
    pub fn token(&self, scope: &str) -> String {
        self.token_for(AUDIENCE, scope)
    }

    /// An access token for this resource server (audience).
    pub fn token_for(&self, audience: &str, scope: &str) -> String {
        let response = self.token_response(audience, scope);
        assert_eq!(
            response.status, 200,
            "the token request failed: {} {}",
            response.status, response.body
        );
        let json = response.json();
        json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {json}"))
            .to_owned()
    }

    /// The raw answer of the token endpoint to a client-credentials request
    /// (`resource` omitted when `audience` is empty, `scope` when `scope` is).
    pub fn token_response(&self, audience: &str, scope: &str) -> HttpResponse {
        let mut form = vec![("grant_type", "client_credentials")];
        if !audience.is_empty() {
            form.push(("resource", audience));
        }
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let addr = self.addr();
        http::raw(
            &addr,
            &format!(
                "POST /token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 Authorization: Basic {basic}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    }

    /// New ES256 and RS256 keys, published first and signing from now on;
    /// the old keys stay published, or are removed when `retire`.
    pub fn rotate(&self, retire: bool) -> Rotation {
        let path = if retire {
            "/__rotate?retire=1"
        } else {
            "/__rotate"
        };
        let json = self.post(path).json();
        Rotation {
            kids: json["kids"]
                .as_array()
                .unwrap_or_else(|| panic!("no kids in {json}"))
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect(),
            signing_kid: json["signing_kid"].as_str().unwrap().to_owned(),
        }
    }

    /// Make the JWKS endpoint answer `status` with a non-JSON body (an
    /// outage); `200` serves the keys again.
    pub fn set_jwks_status(&self, status: u16) {
        self.post(&format!("/__jwks_status?code={status}"));
    }

    /// What the provider has answered so far.
    pub fn stats(&self) -> OidcStats {
        let json = self.get("/__stats").json();
        let n = |k: &str| {
            json[k]
                .as_u64()
                .unwrap_or_else(|| panic!("no {k} in {json}"))
        };
        OidcStats {
            jwks_fetches: n("jwks_fetches"),
            discovery_fetches: n("discovery_fetches"),
            tokens: n("tokens"),
            rotations: n("rotations"),
        }
    }

    /// `payload` as a compact JWS signed by node's `jose` with the
    /// provider's current signing key (`alg` and `kid` set in `header`).
    pub fn sign(&self, header: serde_json::Value, payload: serde_json::Value) -> String {
        self.jose_sign(serde_json::json!({ "header": header, "payload": payload }))
    }

    /// `payload` as a compact JWS signed by node's `jose` with HS256 and
    /// `secret` (`alg` set in `header`).
    pub fn sign_hs256(
        &self,
        secret: &str,
        header: serde_json::Value,
        payload: serde_json::Value,
    ) -> String {
        self.jose_sign(
            serde_json::json!({ "header": header, "payload": payload, "secret": secret }),
        )
    }

    fn jose_sign(&self, request: serde_json::Value) -> String {
        let body = request.to_string();
        let response = http::send(&self.addr(), "POST", "/__sign", None, None, &body);
        assert_eq!(response.status, 200, "jose: {}", response.body);
        response.json()["token"].as_str().unwrap().to_owned()
    }

    /// SIGKILL the provider and reap it: its port refuses connections.
    pub fn stop(&mut self) {
        self.stdin.take();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop (if running) and start again on the same port, with new keys.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.try_spawn() {
                Ok(()) => return,
                Err(err) => assert!(
                    Instant::now() < deadline,
                    "could not restart the OpenID Provider: {err}"
                ),
            }
            // The old socket may linger a moment.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the provider wrote on stderr so far (warnings, server errors).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.expect_ok("GET", path)
    }

    fn post(&self, path: &str) -> HttpResponse {
        self.expect_ok("POST", path)
    }

    fn expect_ok(&self, method: &str, path: &str) -> HttpResponse {
        let response = http::send(&self.addr(), method, path, None, None, "");
        assert_eq!(
            response.status,
            200,
            "{method} {path} on the OpenID Provider: {} {}\nstderr:\n{}",
            response.status,
            response.body,
            self.stderr()
        );
        response
    }

    fn spawn(&mut self) {
        if let Err(err) = self.try_spawn() {
            panic!("{err}");
        }
    }

    /// Start `node provider.mjs <port>` and wait for its `READY` line.
    fn try_spawn(&mut self) -> Result<(), String> {
        let dir = ensure_installed();
        let mut cmd = Command::new(node());
        cmd.arg(dir.join("provider.mjs"))
            .arg(self.port.to_string())
            .current_dir(&dir)
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_AUDIENCE", self.options.audiences.join(","))
            .env("OIDC_ALG", self.options.alg)
            .env("OIDC_TOKEN_TTL", self.options.token_ttl_secs.to_string())
            .env_remove("OIDC_PORT")
            .env_remove("OIDC_SCOPE")
            .env_remove("OIDC_JWKS_MAX_AGE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(max_age) = self.options.jwks_max_age_secs {
            cmd.env("OIDC_JWKS_MAX_AGE", max_age.to_string());
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!("could not run node ({e}); install Node.js 18+ (scripts/test.sh does)")
        })?;

        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let err_pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });

        // Read stdout on a thread (a timeout is possible that way) and keep
        // draining it after READY so that the pipe never fills.
        let (ready, ready_rx) = mpsc::channel();
        let out_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("READY ") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(issuer.trim().to_owned());
                    }
                }
            }
        });

        let stdin = child.stdin.take();
        let issuer = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(issuer) => issuer,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // Let the stderr thread catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "the OpenID Provider did not print READY within {START_TIMEOUT:?} \
                     (exit: {status:?}); stderr:\n{}",
                    stderr.lock().unwrap()
                ));
            }
        };
        let port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("bad READY line: READY {issuer}"));
        assert!(
            self.port == 0 || self.port == port,
            "asked for port {}, got {issuer}",
            self.port
        );
        self.port = port;
        self.child = Some(child);
        self.stdin = stdin;
        self.stderr = stderr;
        Ok(())
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `node`, or `$NODE` when set.
fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// `tests/oidc`, with its packages installed: `npm ci` once per test process
/// when `node_modules` lacks the pinned `oidc-provider`, under a lock
/// directory so that test processes do not race each other.
pub fn ensure_installed() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
            if installed(&dir) {
                return dir;
            }
            let _lock = InstallLock::acquire(&dir.join(".install-lock"));
            if !installed(&dir) {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir)
                    .status()
                    .unwrap_or_else(|e| {
                        panic!(
                            "tests/oidc/node_modules is missing and npm could not run ({e}): \
                             run scripts/test.sh, or install Node.js and npm and run \
                             `cd tests/oidc && npm ci`"
                        )
                    });
                assert!(
                    status.success(),
                    "`npm ci` in tests/oidc failed ({status}): run it by hand to see why"
                );
                assert!(installed(&dir), "`npm ci` did not install oidc-provider");
            }
            dir
        })
        .clone()
}

/// `node_modules/oidc-provider` is there, at the version `package.json` pins.
fn installed(dir: &Path) -> bool {
    let read = |p: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let Some(wanted) = read(dir.join("package.json")) else {
        panic!("tests/oidc/package.json is missing or not JSON");
    };
    let wanted = wanted["dependencies"]["oidc-provider"].clone();
    let have =
        read(dir.join("node_modules/oidc-provider/package.json")).map(|p| p["version"].clone());
    have.is_some_and(|have| have == wanted)
}

/// A directory as a lock between processes (`mkdir` is atomic); one older
/// than 10 minutes is taken as left behind by a killed process.
struct InstallLock(PathBuf);

impl InstallLock {
    fn acquire(path: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Self(path.to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_dir(path);
                        continue;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "waited 10 minutes for {} (another `npm ci`?)",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
