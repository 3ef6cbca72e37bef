//! A real Sentinel group for the tests: one master, one replica
//! (`--replicaof`) and three sentinels (`down-after-milliseconds 1000`,
//! quorum 2) on free ports, killed on drop.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::redis_cluster::{
    cmd, info_fields, new_dir, spawn_on_free_port, try_cmd, wait_replicated, Watchdog,
};

/// The name the sentinels monitor.
pub const MASTER_NAME: &str = "mymaster";

struct Proc {
    port: u16,
    child: Option<Child>,
}

/// A master, a replica and three sentinels.
pub struct SentinelGroup {
    /// `servers[0]` is the first master, `servers[1]` its replica.
    servers: Vec<Proc>,
    sentinels: Vec<Proc>,
    dir: PathBuf,
    _watchdog: Watchdog,
}

impl SentinelGroup {
    /// Start everything and wait until the sentinels know the replica and
    /// each other, so that a failover can be authorized.
    pub fn start() -> Self {
        let started = Instant::now();
        let dir = new_dir("sentinel");
        let master = start_server(&dir, None);
        let replica = start_server(&dir, Some(master.port));
        let sentinels: Vec<Proc> = (0..3).map(|_| start_sentinel(&dir, master.port)).collect();
        let pids: Vec<u32> = [&master, &replica]
            .into_iter()
            .chain(&sentinels)
            .map(|p| p.child.as_ref().unwrap().id())
            .collect();
        let group = Self {
            servers: vec![master, replica],
            sentinels,
            _watchdog: Watchdog::start(&pids, &dir),
            dir,
        };
        group.wait_ready(Duration::from_secs(30));
        eprintln!("sentinel group ready in {:?}", started.elapsed());
        group
    }

    /// `127.0.0.1:<port>` of each sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// `redis://127.0.0.1:<port>` of server `i` (0: first master, 1: replica).
    pub fn server_url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.servers[i].port)
    }

    /// The port of the master as the first answering sentinel names it.
    pub fn master_port(&self) -> u16 {
        for s in &self.sentinels {
            if s.child.is_none() {
                continue;
            }
            let url = format!("redis://127.0.0.1:{}", s.port);
            if let Ok(Some((_, port))) = try_cmd::<Option<(String, u16)>>(
                &url,
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
            ) {
                return port;
            }
        }
        panic!("no sentinel names a master");
    }

    /// Run one command on the first sentinel.
    pub fn sentinel_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        cmd(
            &format!("redis://127.0.0.1:{}", self.sentinels[0].port),
            args,
        )
    }

    /// The index of the server on `port`.
    pub fn index_of(&self, port: u16) -> usize {
        self.servers.iter().position(|s| s.port == port).unwrap()
    }

    /// Run one command on server `i`.
    pub fn cmd<T: redis::FromRedisValue>(&self, i: usize, args: &[&str]) -> T {
        cmd(&self.server_url(i), args)
    }

    /// SIGKILL server `i`.
    pub fn kill_server(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait until every replica of server `i` has its writes.
    pub fn wait_replicated(&self, i: usize) {
        wait_replicated(&self.server_url(i), Duration::from_secs(5));
    }

    /// Wait until the sentinels name another master than `old_port` and that
    /// server says it is a master; its index and how long that took.
    pub fn wait_failover(&self, old_port: u16, timeout: Duration) -> (usize, Duration) {
        let started = Instant::now();
        loop {
            let port = self.master_port();
            if port != old_port {
                let i = self.index_of(port);
                let role: Vec<redis::Value> = self.cmd(i, &["ROLE"]);
                if matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master") {
                    return (i, started.elapsed());
                }
            }
            assert!(
                started.elapsed() < timeout,
                "no failover within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let replica_up = try_cmd::<String>(&self.server_url(1), &["INFO", "replication"])
                .map(|info| {
                    info_fields(&info)
                        .get("master_link_status")
                        .map(String::as_str)
                        == Some("up")
                })
                .unwrap_or(false);
            let sentinels_ready = self.sentinels.iter().all(|s| {
                let url = format!("redis://127.0.0.1:{}", s.port);
                let Ok(fields) = try_cmd::<Vec<String>>(&url, &["SENTINEL", "MASTER", MASTER_NAME])
                else {
                    return false;
                };
                let get = |name: &str| {
                    fields
                        .chunks(2)
                        .find(|kv| kv[0] == name)
                        .map(|kv| kv[1].clone())
                        .unwrap_or_default()
                };
                last = format!(
                    "slaves {} other sentinels {}",
                    get("num-slaves"),
                    get("num-other-sentinels")
                );
                get("num-slaves") == "1" && get("num-other-sentinels") == "2"
            });
            if replica_up && sentinels_ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel group did not get ready (replica up: {replica_up}; {last})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for p in self.servers.iter_mut().chain(self.sentinels.iter_mut()) {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_server(dir: &Path, replica_of: Option<u16>) -> Proc {
    let (port, child) = spawn_on_free_port("redis-server", |port| {
        let log = dir.join(format!("server-{port}.log"));
        let mut args = vec!["--port".to_owned(), port.to_string()];
        args.extend(super::replicated_node_args(dir, &log));
        if let Some(master) = replica_of {
            args.extend([
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                master.to_string(),
            ]);
        }
        Some((args, log))
    });
    Proc {
        port,
        child: Some(child),
    }
}

fn start_sentinel(dir: &Path, master: u16) -> Proc {
    let (port, child) = spawn_on_free_port("a sentinel", |port| {
        let conf = dir.join(format!("sentinel-{port}.conf"));
        let log = dir.join(format!("sentinel-{port}.log"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\n\
                 bind 127.0.0.1\n\
                 dir {dir}\n\
                 logfile {log}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 3000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display(),
                log = log.display(),
            ),
        )
        .expect("write sentinel.conf");
        Some((
            vec![conf.display().to_string(), "--sentinel".to_owned()],
            log,
        ))
    });
    Proc {
        port,
        child: Some(child),
    }
}
