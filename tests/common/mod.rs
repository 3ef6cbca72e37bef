//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod http;
pub mod layer;
pub mod quickstart;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;

use std::net::TcpListener;
use std::path::PathBuf;
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
