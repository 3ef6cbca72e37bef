//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod dpop;
pub mod hooked;
pub mod http;
pub mod jwks_server;
pub mod keygen;
pub mod layer;
pub mod oidc;
pub mod quickstart;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory under the temp dir, named after `kind`.
pub fn new_dir(kind: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("tower-jwt-auth-{kind}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A free TCP port on 127.0.0.1 (free when probed).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// What every `redis-server` of a cluster or Sentinel setup starts with after
/// its own options: loopback only, nothing on disk but its log, fast
/// diskless replication.
pub fn replicated_node_args(dir: &Path, log: &Path) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        &log.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}
