//! Run the real quickstart example binary as a child process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::free_port;

/// A quickstart process on a free port, killed on drop.
pub struct Quickstart {
    child: Child,
    pub addr: String,
}

/// The example binary, built with this test's features and profile (a plain
/// `cargo test` builds it already, but `cargo test --test X` does not, and a
/// build with other features may have replaced it).
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/<test> -> target/<profile>/examples/quickstart
            let dir = exe.parent().unwrap().parent().unwrap();
            let release = dir.file_name().is_some_and(|n| n == "release");
            let mut features = vec!["aws_lc_rs"];
            if cfg!(feature = "redis") {
                features.push("redis");
            }
            if cfg!(feature = "axum") {
                features.push("axum");
            }
            if cfg!(feature = "redis-tls") {
                features.push("redis-tls");
            }
            if cfg!(feature = "redis-cluster") {
                features.push("redis-cluster");
            }
            if cfg!(feature = "redis-sentinel") {
                features.push("redis-sentinel");
            }
            if cfg!(feature = "remote-keys") {
                features.push("remote-keys");
            }
            if cfg!(feature = "metrics") {
                features.push("metrics");
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "--quiet",
                "--example",
                "quickstart",
                "--no-default-features",
            ])
            .arg("--features")
            .arg(features.join(","))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build --example quickstart");
            assert!(status.success(), "building the quickstart failed");
            let bin = dir.join("examples").join("quickstart");
            assert!(bin.exists(), "{} is missing", bin.display());
            bin
        })
        .clone()
}

impl Quickstart {
    /// Start with these environment variables (on top of a clean set of ours).
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with_stdout(env, Stdio::null())
    }

    /// [`start`](Self::start), its stdout piped: the pipe's reading end.
    pub fn start_piped(env: &[(&str, &str)]) -> (Self, std::process::ChildStdout) {
        let mut qs = Self::start_with_stdout(env, Stdio::piped());
        let stdout = qs.child.stdout.take().expect("piped stdout");
        (qs, stdout)
    }

    fn start_with_stdout(env: &[(&str, &str)], stdout: Stdio) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(binary());
        for var in [
            "REDIS_URL",
            "STATELESS",
            "PUBLIC_URL",
            "JWT_SECRET",
            "ACCESS_TTL_SECS",
            "MAX_DEVICES",
            "IDLE_TIMEOUT_SECS",
            "NEAR_CACHE",
            "REDIS_CLUSTER_NODES",
            "REDIS_SENTINELS",
            "REDIS_MASTER_NAME",
            "LOGIN_RATE_PER_SEC",
            "LOGIN_BURST",
            "HEADER_READ_TIMEOUT_SECS",
            "MAX_CONNECTIONS",
            "OIDC_ISSUERS",
            "OIDC_AUDIENCE",
            "JWKS_COOLDOWN_SECS",
            "JWKS_MAX_AGE_SECS",
            "JWKS_TIMEOUT_MS",
            "REVOKE_CLIENT_ID",
            "REVOKE_CLIENT_SECRET",
            "METRICS",
            "AUDIT_LOG",
        ] {
            cmd.env_remove(var);
        }
        // The login rate limit stays on (every login passes through it) but
        // far above what a test sends, unless the test sets its own.
        cmd.env("QUICKSTART_ADDR", &addr)
            .env("LOGIN_RATE_PER_SEC", "100000")
            .env("LOGIN_BURST", "100000")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn quickstart");
        let qs = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&qs.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "quickstart did not start on {}",
                qs.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        qs
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
