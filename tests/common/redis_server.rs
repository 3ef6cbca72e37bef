//! A real `redis-server` per test: a free port, a fresh directory, killed on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{FromRedisValue, IntoConnectionInfo};

use super::new_dir;
use super::redis_cluster::{spawn_on_free_port, spawn_redis};

/// A `redis-server` child process bound to 127.0.0.1 on a free port.
///
/// Panics (never skips) when `redis-server` is not installed.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    aof: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A server without persistence (`--save "" --appendonly no`).
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server with the append-only file on (`appendfsync always`), so data
    /// survives [`kill`](Self::kill) + [`restart`](Self::restart).
    pub fn start_with_aof() -> Self {
        Self::start_with(true)
    }

    fn start_with(aof: bool) -> Self {
        let dir = new_dir("redis");
        let (port, child) = spawn_on_free_port("redis-server", |port| Some(args(port, &dir, aof)));
        Self {
            port,
            dir,
            aof,
            child: Some(child),
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (AOF/RDB files, `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL the server (no shutdown, no final save) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill (if running) and start again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (args, log) = args(self.port, &self.dir, self.aof);
            match spawn_redis(self.port, &args, &log) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(err) if Instant::now() > deadline => {
                    panic!("could not restart redis-server: {err}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `CLIENT PAUSE <ms> ALL`: every client's commands wait that long.
    pub fn pause(&self, ms: u64) {
        let _: () = self.cmd(&["CLIENT", "PAUSE", &ms.to_string(), "ALL"]);
    }

    /// `INFO commandstats` as command name (`evalsha`, `script|load`, ...) -> calls.
    pub fn commandstats(&self) -> BTreeMap<String, u64> {
        let info: String = self.cmd(&["INFO", "commandstats"]);
        parse_commandstats(&info)
    }

    /// Start `MONITOR` on a raw connection: every command the server runs from
    /// now on, with commands run inside scripts told apart (`INFO
    /// commandstats` counts those too).
    pub fn monitor(&self) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect for MONITOR");
        stream.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR reply");
        assert_eq!(ok.trim_end(), "+OK", "MONITOR refused");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Monitor { stream, lines }
    }

    /// A fresh synchronous connection that sends nothing on connect
    /// (no `CLIENT SETINFO`), so it does not disturb `commandstats`.
    pub fn connection(&self) -> redis::Connection {
        let info = self.url().into_connection_info().expect("valid url");
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(settings);
        redis::Client::open(info)
            .expect("client")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to redis-server")
    }

    /// Run one command on a fresh connection.
    pub fn cmd<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.connection())
            .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `MONITOR` (see [`RedisServer::monitor`]); stops on drop.
pub struct Monitor {
    stream: TcpStream,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    /// Names (lower case) of the commands clients sent so far, in order;
    /// commands run by scripts (`[0 lua]`) are left out.
    pub fn client_commands(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                // +1700000000.123456 [0 127.0.0.1:5555] "evalsha" "..." ...
                let (source, rest) = line.split_once("] ")?;
                if source.ends_with(" lua") {
                    return None;
                }
                let name = rest.strip_prefix('"')?.split('"').next()?;
                Some(name.to_ascii_lowercase())
            })
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// `cmdstat_<name>:calls=N,...` lines -> name -> N.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The arguments of the `redis-server` on `port`, and its log file.
fn args(port: u16, dir: &Path, aof: bool) -> (Vec<String>, PathBuf) {
    let log = dir.join("redis.log");
    let args = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        if aof { "yes" } else { "no" },
        "--appendfsync",
        "always",
        "--dir",
        &dir.display().to_string(),
        "--logfile",
        &log.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    (args, log)
}
