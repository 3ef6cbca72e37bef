//! A real Redis Cluster for the tests: three masters (and, by default, one
//! replica each) started with `redis-server --cluster-enabled yes` on free
//! ports and joined with `redis-cli --cluster create`.
//!
//! Also the process helpers the Sentinel harness shares: spawning a
//! `redis-server` and a watchdog that kills the servers when the test process
//! dies (a cluster kept in a `static` is never dropped).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::FromRedisValue;

pub use super::{free_port, new_dir};

/// Start `redis-server <args>` and wait until `127.0.0.1:<port>` answers PING.
pub fn spawn_redis(port: u16, args: &[String], log: &Path) -> Result<Child, String> {
    let mut cmd = Command::new("redis-server");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "`redis-server` is not on PATH: these tests need a real Redis \
             (e.g. `apt-get install redis-server`); they are never skipped"
        ),
        Err(err) => panic!("could not run redis-server: {err}"),
    };
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!(
                "redis-server on port {port} exited ({status}): {tail:?}"
            ));
        }
        if try_cmd::<String>(&url, &["PING"]).is_ok_and(|p| p == "PONG") {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("redis-server on port {port} did not answer PING"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start a `redis-server` (`what`, for the panic message) on a free port,
/// trying a few: a probed port can be taken before the server binds it.
/// `setup(port)` gives its arguments and log file, or `None` to skip the port.
pub fn spawn_on_free_port(
    what: &str,
    mut setup: impl FnMut(u16) -> Option<(Vec<String>, PathBuf)>,
) -> (u16, Child) {
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        let Some((args, log)) = setup(port) else {
            continue;
        };
        match spawn_redis(port, &args, &log) {
            Ok(child) => return (port, child),
            Err(err) => last_error = err,
        }
    }
    panic!("could not start {what}: {last_error}");
}

/// Run one command on a fresh connection to `url`.
pub fn try_cmd<T: FromRedisValue>(url: &str, args: &[&str]) -> redis::RedisResult<T> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn)
}

/// Run one command on a fresh connection to `url`; panics on failure.
pub fn cmd<T: FromRedisValue>(url: &str, args: &[&str]) -> T {
    try_cmd(url, args).unwrap_or_else(|e| panic!("{args:?} on {url} failed: {e}"))
}

/// `field:value` lines of an `INFO` reply.
pub fn info_fields(info: &str) -> BTreeMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Wait until every replica of the server at `master` has acknowledged all
/// of its writes so far (the replication offsets match).
pub fn wait_replicated(master: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let info: String = cmd(master, &["INFO", "replication"]);
        let fields = info_fields(&info);
        let offset: u64 = fields["master_repl_offset"].parse().unwrap();
        let replicas: usize = fields["connected_slaves"].parse().unwrap();
        let acked = (0..replicas).all(|i| {
            fields
                .get(&format!("slave{i}"))
                .and_then(|line| {
                    line.split(',')
                        .find_map(|f| f.strip_prefix("offset="))
                        .and_then(|o| o.parse::<u64>().ok())
                })
                .is_some_and(|o| o >= offset)
        });
        if replicas > 0 && acked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas of {master} did not catch up: {info}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the given processes (and removes `dir`) when the test process
/// exits, however it exits: a `static` cluster is never dropped.
pub struct Watchdog(Child);

impl Watchdog {
    pub fn start(pids: &[u32], dir: &Path) -> Self {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 0.5; done; kill -9 {} 2>/dev/null; rm -rf '{}'",
            std::process::id(),
            pids.join(" "),
            dir.display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the watchdog");
        Self(child)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One node of a [`RedisCluster`].
struct Node {
    port: u16,
    child: Option<Child>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    pub master_id: Option<String>,
    /// Slot ranges served (masters only).
    pub slots: Vec<(u16, u16)>,
}

/// A Redis Cluster on 127.0.0.1, killed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    _watchdog: Watchdog,
}

impl RedisCluster {
    /// Three masters, three replicas.
    pub fn start() -> Self {
        Self::start_with(1)
    }

    /// Three masters, no replicas (lighter; for tests without failover).
    pub fn start_without_replicas() -> Self {
        Self::start_with(0)
    }

    /// One cluster (three masters, three replicas) for every test of this
    /// process that asks for it; never killed by a test. Tests that share it
    /// keep apart by key prefix.
    pub fn shared() -> &'static Self {
        static SHARED: LazyLock<RedisCluster> = LazyLock::new(RedisCluster::start);
        &SHARED
    }

    fn start_with(replicas: usize) -> Self {
        let started = Instant::now();
        let dir = new_dir("cluster");
        let count = 3 * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(start_node(&dir));
        }
        let pids: Vec<u32> = nodes
            .iter()
            .map(|n| n.child.as_ref().unwrap().id())
            .collect();
        let watchdog = Watchdog::start(&pids, &dir);
        let cluster = Self {
            nodes,
            dir,
            _watchdog: watchdog,
        };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_healthy(Duration::from_secs(30));
        eprintln!(
            "redis cluster of {count} nodes ready in {:?}",
            started.elapsed()
        );
        cluster
    }

    /// `redis://127.0.0.1:<port>` of every node, masters and replicas.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// `redis://127.0.0.1:<port>` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether node `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// The index of the node with this port.
    pub fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Run one command on node `i`.
    pub fn cmd<T: FromRedisValue>(&self, i: usize, args: &[&str]) -> T {
        cmd(&self.url(i), args)
    }

    /// A running node's url.
    fn any_running(&self) -> String {
        let i = (0..self.nodes.len())
            .find(|&i| self.is_running(i))
            .expect("no node running");
        self.url(i)
    }

    /// `CLUSTER NODES` as seen by a running node.
    pub fn view(&self) -> Vec<NodeView> {
        let text: String = cmd(&self.any_running(), &["CLUSTER", "NODES"]);
        text.lines().filter_map(parse_node_line).collect()
    }

    /// The slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        cmd(&self.any_running(), &["CLUSTER", "KEYSLOT", key])
    }

    /// The index of the node serving `key`'s slot now.
    pub fn master_of(&self, key: &str) -> usize {
        let slot = self.slot(key);
        let view = self.view();
        let owner = view
            .iter()
            .find(|n| n.master && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {view:?}"));
        self.index_of(owner.port)
    }

    /// The indexes of the replicas of node `i`.
    pub fn replicas_of(&self, i: usize) -> Vec<usize> {
        let view = self.view();
        let port = self.nodes[i].port;
        let id = &view.iter().find(|n| n.port == port).unwrap().id;
        view.iter()
            .filter(|n| n.master_id.as_ref() == Some(id))
            .map(|n| self.index_of(n.port))
            .collect()
    }

    /// SIGKILL node `i` (no shutdown, no final save).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait until node `i` says it is a master; how long that took.
    pub fn wait_until_master(&self, i: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let role: Vec<redis::Value> = self.cmd(i, &["ROLE"]);
            if matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master") {
                return started.elapsed();
            }
            assert!(started.elapsed() < timeout, "node {i} was not promoted");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until every replica of master `i` has all of its writes.
    pub fn wait_replicated(&self, i: usize) {
        wait_replicated(&self.url(i), Duration::from_secs(5));
    }

    /// Every running node sees `cluster_state:ok`, all nodes connected and
    /// no failure flags, every replica is in sync with its master, and every
    /// node's view already shows each replica as one (gossip can lag behind
    /// the replicas themselves).
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .collect();
        let mut last = String::new();
        loop {
            let replicas = running
                .iter()
                .filter(|&&i| {
                    try_cmd::<String>(&self.url(i), &["INFO", "replication"])
                        .is_ok_and(|r| r.contains("role:slave"))
                })
                .count();
            let ok = running.iter().all(|&i| {
                let Ok(info) = try_cmd::<String>(&self.url(i), &["CLUSTER", "INFO"]) else {
                    return false;
                };
                if !info.contains("cluster_state:ok") {
                    last = format!("node {i}: {info}");
                    return false;
                }
                let Ok(nodes) = try_cmd::<String>(&self.url(i), &["CLUSTER", "NODES"]) else {
                    return false;
                };
                let lines: Vec<&str> = nodes.lines().collect();
                let all_known = lines.len() == self.nodes.len()
                    && lines.iter().all(|l| {
                        l.contains(" connected")
                            && !l.contains("fail")
                            && !l.contains("handshake")
                            && !l.contains("noaddr")
                    });
                let seen_replicas = nodes
                    .lines()
                    .filter_map(parse_node_line)
                    .filter(|n| n.master_id.is_some())
                    .count();
                if !all_known || seen_replicas != replicas {
                    last = format!("node {i} ({replicas} replicas): {nodes}");
                    return false;
                }
                let Ok(repl) = try_cmd::<String>(&self.url(i), &["INFO", "replication"]) else {
                    return false;
                };
                let fields = info_fields(&repl);
                let synced = fields.get("role").map(String::as_str) == Some("master")
                    || fields.get("master_link_status").map(String::as_str) == Some("up");
                if !synced {
                    last = format!("node {i}: {repl}");
                }
                synced
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy: {last}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_node(dir: &Path) -> Node {
    let (port, child) = spawn_on_free_port("a cluster node", |port| {
        let bus = free_port();
        if bus == port {
            return None;
        }
        let log = dir.join(format!("node-{port}.log"));
        let args = [
            "--port",
            &port.to_string(),
            "--cluster-port",
            &bus.to_string(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &format!("nodes-{port}.conf"),
            "--cluster-node-timeout",
            "1000",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(super::replicated_node_args(dir, &log))
        .collect();
        Some((args, log))
    });
    Node {
        port,
        child: Some(child),
    }
}

/// `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
fn parse_node_line(line: &str) -> Option<NodeView> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.len() < 8 {
        return None;
    }
    let addr = parts[1].split('@').next()?;
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let flags = parts[2];
    let slots = parts[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let n = s.parse().ok()?;
                Some((n, n))
            }
        })
        .collect();
    Some(NodeView {
        id: parts[0].to_owned(),
        port,
        master: flags.split(',').any(|f| f == "master"),
        failed: flags.split(',').any(|f| f == "fail" || f == "fail?"),
        master_id: (parts[3] != "-").then(|| parts[3].to_owned()),
        slots,
    })
}
