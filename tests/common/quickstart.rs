//! Run the real quickstart example binary as a child process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A quickstart process on a free port, killed on drop.
pub struct Quickstart {
    child: Child,
    pub addr: String,
}

/// The example binary that `cargo test` builds next to the test binaries.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/examples/quickstart
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join("quickstart");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test` (which builds the examples)",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Quickstart {
    /// Start with these environment variables (on top of a clean set of ours).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(binary());
        for var in [
            "REDIS_URL",
            "STATELESS",
            "JWT_SECRET",
            "ACCESS_TTL_SECS",
            "MAX_DEVICES",
            "IDLE_TIMEOUT_SECS",
            "NEAR_CACHE",
            "REDIS_CLUSTER_NODES",
            "REDIS_SENTINELS",
            "REDIS_MASTER_NAME",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("QUICKSTART_ADDR", &addr)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn quickstart");
        let qs = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&qs.addr).is_err() {
            assert!(Instant::now() < deadline, "quickstart did not start on {}", qs.addr);
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
