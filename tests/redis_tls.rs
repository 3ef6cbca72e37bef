//! `rediss://` against a real TLS `redis-server` (feature `redis-tls`): the
//! store connects over TLS and every check works; a plaintext client cannot
//! talk to the TLS port. The test certificate is self-signed, so the URL uses
//! redis-rs's `#insecure` fragment (test only; production URLs verify the
//! server against the web PKI roots).

#![cfg(feature = "redis-tls")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::layer::{call, issue, OK, REVOKED};
use tower_jwt_auth::{JwtAuth, Keys, RedisStore};

struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_redis() -> TlsRedis {
    let dir = common::new_dir("tls");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed for the TLS test (.ci/run installs it)");
    assert!(status.success(), "openssl failed");
    let port = common::free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
        .args(["--tls-ca-cert-file", "cert.pem", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_over_rediss() {
    let server = start_tls_redis();
    let url = format!("rediss://127.0.0.1:{}/#insecure", server.port);
    let store = RedisStore::builder(&url)
        .near_cache(true)
        .build()
        .await
        .expect("connect over TLS");
    assert!(format!("{store:?}").contains("tls: true"), "{store:?}");
    let auth = JwtAuth::<serde_json::Value>::new(
        Keys::hs256(b"tls-test-secret-0123456789-abcdefghij").unwrap(),
    )
    .store(store);
    let token = issue(&auth, "alice");
    assert_eq!(call(&auth, &token).await, OK);
    auth.revoke(&token).await.unwrap();
    assert_eq!(call(&auth, &token).await, REVOKED);
    let login = auth
        .sessions()
        .login("alice", "web", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(call(&auth, &login.access_token).await, OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_url_cannot_talk_to_the_tls_port() {
    let server = start_tls_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let result = RedisStore::builder(&url)
        .connection_timeout(Duration::from_secs(1))
        .build()
        .await;
    assert!(result.is_err(), "a plaintext client talked to the TLS port");
}
