//! A JWKS and discovery server on 127.0.0.1 whose answers the test controls:
//! the JWK set, its status, `Cache-Control`, a delay or a hang, a garbage
//! body, the discovery documents; it counts the requests of each path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;

/// Path of the JWK set.
pub const JWKS_PATH: &str = "/jwks.json";
/// OpenID Connect Discovery document of the issuer `base()`.
pub const OIDC_PATH: &str = "/.well-known/openid-configuration";
/// RFC 8414 document of the issuer `base()`.
pub const RFC8414_PATH: &str = "/.well-known/oauth-authorization-server";

/// How the JWK set path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the current set.
    Serve,
    /// This status, a short text body (a `Location` for 3xx).
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Never answers.
    Hang,
}

#[derive(Debug)]
struct Config {
    jwks: String,
    mode: Mode,
    cache_control: Option<String>,
    delay: Duration,
    /// Documents served at a discovery path (others: 404).
    discovery: HashMap<String, String>,
}

#[derive(Debug)]
struct Shared {
    config: Mutex<Config>,
    hits: Mutex<HashMap<String, u64>>,
}

/// The running server; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl JwksServer {
    /// On a free port.
    pub async fn start(jwks: impl Into<String>) -> Self {
        Self::start_on(0, jwks).await
    }

    /// On this port of 127.0.0.1 (0: any free one).
    pub async fn start_on(port: u16, jwks: impl Into<String>) -> Self {
        let shared = Arc::new(Shared {
            config: Mutex::new(Config {
                jwks: jwks.into(),
                mode: Mode::Serve,
                cache_control: None,
                delay: Duration::ZERO,
                discovery: HashMap::new(),
            }),
            hits: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the JWKS server");
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:port` (an issuer URL).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of the JWK set.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.base())
    }

    pub fn set_jwks(&self, jwks: impl Into<String>) {
        self.shared.config.lock().unwrap().jwks = jwks.into();
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.config.lock().unwrap().mode = mode;
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.shared.config.lock().unwrap().cache_control = value.map(str::to_owned);
    }

    /// A delay before each JWK set answer.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.config.lock().unwrap().delay = delay;
    }

    /// Serve this JSON document at `path`.
    pub fn set_discovery(&self, path: &str, doc: serde_json::Value) {
        self.shared
            .config
            .lock()
            .unwrap()
            .discovery
            .insert(path.to_owned(), doc.to_string());
    }

    /// Requests seen for `path`.
    pub fn hits(&self, path: &str) -> u64 {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests seen for the JWK set.
    pub fn fetches(&self) -> u64 {
        self.hits(JWKS_PATH)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    *shared.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let (mode, jwks, cache_control, delay, doc) = {
        let c = shared.config.lock().unwrap();
        (
            c.mode.clone(),
            c.jwks.clone(),
            c.cache_control.clone(),
            c.delay,
            c.discovery.get(&path).cloned(),
        )
    };
    if path != JWKS_PATH {
        return match doc {
            Some(doc) => json_response(doc, None),
            None => text(StatusCode::NOT_FOUND, "not found"),
        };
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match mode {
        Mode::Serve => json_response(jwks, cache_control),
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            let mut response = text(status, "JWKS unavailable");
            if status.is_redirection() {
                response
                    .headers_mut()
                    .insert(header::LOCATION, "/elsewhere.json".parse().unwrap());
            }
            response
        }
        Mode::Garbage => text(
            StatusCode::OK,
            "<html><body>Sign in to the Wi-Fi</body></html>",
        ),
        Mode::Hang => std::future::pending().await,
    }
}

fn json_response(body: String, cache_control: Option<String>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = cache_control {
        builder = builder.header(header::CACHE_CONTROL, value);
    }
    builder.body(Body::from(body)).unwrap()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html")
        .body(Body::from(body))
        .unwrap()
}
