//! Startup findings: what the server says about itself that can weaken
//! revocation, and the servers the store was configured with (the
//! [`Target`]s `Debug` shows and the password check reads).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use redis::{ConnectionAddr, ConnectionInfo, Value};

#[cfg(feature = "redis-cluster")]
use super::pool::Backend;
use super::reply::value_text;
use super::RedisStore;

/// One server named in the configuration, without its password.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) addr: String,
    pub(super) host: Option<String>,
    pub(super) tls: bool,
    pub(super) db: i64,
    pub(super) username: Option<String>,
    pub(super) has_password: bool,
}

impl Target {
    pub(super) fn from_info(info: &ConnectionInfo) -> Self {
        let settings = info.redis_settings();
        let (addr, host, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                (format!("{host}:{port}"), Some(host.clone()), false)
            }
            ConnectionAddr::TcpTls { host, port, .. } => {
                (format!("{host}:{port}"), Some(host.clone()), true)
            }
            ConnectionAddr::Unix(path) => (format!("unix:{}", path.display()), None, false),
            other => (format!("{other:?}"), None, false),
        };
        Self {
            addr,
            host,
            tls,
            db: settings.db(),
            username: settings.username().map(str::to_owned),
            has_password: settings.password().is_some(),
        }
    }

    /// Loopback hosts and unix sockets.
    pub(super) fn is_local(&self) -> bool {
        match &self.host {
            None => true,
            Some(host) => {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                bare.eq_ignore_ascii_case("localhost")
                    || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("db", &self.db)
            .field("username", &self.username)
            .field(
                "password",
                &if self.has_password {
                    "[redacted]"
                } else {
                    "none"
                },
            )
            .finish()
    }
}

/// Something about the Redis server that can silently weaken revocation,
/// found by [`RedisStore::startup_findings`]. `Display` is the human message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartupFinding {
    /// `maxmemory-policy` lets Redis evict keys with a TTL (every deny entry,
    /// session and timed ban has one) or any key: an evicted deny entry
    /// silently un-revokes a token.
    EvictionPolicy {
        /// The policy in force, e.g. `allkeys-lru`, `volatile-ttl`.
        policy: String,
    },
    /// The URL has no password and the host is not a loopback address.
    NoPassword {
        /// The host connected to.
        host: String,
    },
    /// Neither the append-only file nor RDB snapshots are on: a restart
    /// forgets every revocation.
    NoPersistence,
    /// The append-only file is off and the RDB snapshot schedule could not be
    /// read (`CONFIG GET` not permitted): if snapshots are off too, a restart
    /// forgets every revocation; with snapshots only, the latest ones.
    PersistenceUnverified,
    /// A check could not run.
    CheckFailed {
        /// What was tried.
        check: &'static str,
        /// Why it failed.
        error: String,
    },
}

impl StartupFinding {
    /// The human message (same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for StartupFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EvictionPolicy { policy } => write!(
                f,
                "Redis maxmemory-policy is {policy}: under memory pressure Redis may evict deny \
                 entries, bans and sessions, silently un-revoking tokens; use noeviction"
            ),
            Self::NoPassword { host } => write!(
                f,
                "Redis at {host} is reached without a password over a non-loopback address: \
                 anyone on the network can lift bans and revocations"
            ),
            Self::NoPersistence => f.write_str(
                "Redis persistence is off (no AOF, no RDB snapshots): a restart forgets every \
                 revocation, ban and session",
            ),
            Self::PersistenceUnverified => f.write_str(
                "Redis AOF is off and the RDB snapshot schedule could not be read: a restart may \
                 forget revocations and bans; enable appendonly",
            ),
            Self::CheckFailed { check, error } => {
                write!(
                    f,
                    "could not check the Redis configuration ({check}): {error}"
                )
            }
        }
    }
}

/// `field:value` lines of an `INFO` reply (section headers and blanks skipped).
pub(super) fn parse_info(info: &str) -> HashMap<&str, &str> {
    info.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .collect()
}

/// Findings from parsed `INFO` fields, the eviction policy (from `INFO` or
/// `CONFIG GET`) and, when AOF is off, the `save` setting (`None`: unreadable).
pub(super) fn findings_from_info(
    fields: &HashMap<&str, &str>,
    policy: Option<&str>,
    save: Option<Option<String>>,
) -> Vec<StartupFinding> {
    let mut findings = Vec::new();
    if let Some(policy) = policy {
        if policy.starts_with("allkeys-") || policy.starts_with("volatile-") {
            findings.push(StartupFinding::EvictionPolicy {
                policy: policy.to_owned(),
            });
        }
    }
    if fields.get("aof_enabled") == Some(&"0") {
        match save {
            Some(Some(save)) if save.trim().is_empty() => {
                findings.push(StartupFinding::NoPersistence)
            }
            Some(Some(_)) => {}
            _ => findings.push(StartupFinding::PersistenceUnverified),
        }
    }
    findings
}

impl RedisStore {
    /// Checks of the server's configuration that matter for revocation:
    /// an eviction policy that may drop our keys, no password on a
    /// non-loopback address, no persistence. Uses `INFO` (allowed on managed
    /// Redis); `CONFIG GET` only where `INFO` has no answer, and only if allowed.
    /// On a cluster every master is checked (a finding shared by several
    /// masters is reported once); with Sentinel, the current master.
    pub async fn startup_findings(&self) -> Vec<StartupFinding> {
        let mut findings = Vec::new();
        for target in &self.inner.targets {
            if !target.has_password && !target.is_local() {
                let finding = StartupFinding::NoPassword {
                    host: target.host.clone().unwrap_or_default(),
                };
                if !findings.contains(&finding) {
                    findings.push(finding);
                }
            }
        }
        let info = match self.query(&redis::cmd("INFO")).await {
            Ok(info) => info,
            Err(err) => {
                findings.push(StartupFinding::CheckFailed {
                    check: "INFO",
                    error: err.to_string(),
                });
                return findings;
            }
        };
        // A cluster answers with one reply per master, keyed by address.
        let per_node: Vec<(Option<String>, Value)> = match info {
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|(addr, info)| (value_text(addr), info))
                .collect(),
            other => vec![(None, other)],
        };
        for (node, info) in per_node {
            for finding in self.node_findings(node.as_deref(), info).await {
                if !findings.contains(&finding) {
                    findings.push(finding);
                }
            }
        }
        findings
    }

    /// Findings from one server's `INFO` reply; `node` is its `host:port` on
    /// a cluster (where `CONFIG GET` must be routed to it).
    async fn node_findings(&self, node: Option<&str>, info: Value) -> Vec<StartupFinding> {
        let Some(info) = value_text(info) else {
            return vec![StartupFinding::CheckFailed {
                check: "INFO",
                error: "unexpected reply".to_owned(),
            }];
        };
        let fields = parse_info(&info);
        let policy = match fields.get("maxmemory_policy") {
            Some(policy) => Some((*policy).to_owned()),
            None => self.config_get(node, "maxmemory-policy").await,
        };
        let save = if fields.get("aof_enabled") == Some(&"0") {
            Some(self.config_get(node, "save").await)
        } else {
            None
        };
        findings_from_info(&fields, policy.as_deref(), save)
    }

    /// [`startup_findings`](Self::startup_findings), each also logged with
    /// `tracing::warn!`. [`RedisStoreBuilder::build`](super::RedisStoreBuilder::build) runs it by default.
    pub async fn log_startup_findings(&self) -> Vec<StartupFinding> {
        let findings = self.startup_findings().await;
        for finding in &findings {
            tracing::warn!(target: "tower_jwt_auth::redis", "{finding}");
        }
        findings
    }

    /// `CONFIG GET name` (on the cluster node `node`, if given), or `None`
    /// when not allowed or not answered.
    async fn config_get(&self, node: Option<&str>, name: &str) -> Option<String> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(name);
        let reply = match (node, &self.inner.backend) {
            #[cfg(feature = "redis-cluster")]
            (Some(node), Backend::Cluster(conn)) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let (host, port) = node.rsplit_once(':')?;
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port: port.parse().ok()?,
                });
                conn.clone().route_command(cmd, routing).await.ok()?
            }
            _ => {
                let _ = node;
                self.query(&cmd).await.ok()?
            }
        };
        match reply {
            Value::Array(items) if items.len() == 2 => value_text(items.into_iter().nth(1)?),
            Value::Map(pairs) => pairs.into_iter().next().and_then(|(_, v)| value_text(v)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::IntoConnectionInfo;

    use super::{findings_from_info, parse_info, StartupFinding, Target};

    const INFO: &str = "# Memory\r\nused_memory:1000\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n\r\n# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_saves:0\r\n";

    #[test]
    fn info_fields_are_parsed() {
        let fields = parse_info(INFO);
        assert_eq!(fields.get("maxmemory_policy"), Some(&"allkeys-lru"));
        assert_eq!(fields.get("aof_enabled"), Some(&"0"));
        assert_eq!(fields.get("loading"), Some(&"0"));
        assert!(!fields.contains_key("# Memory"));
    }

    #[test]
    fn eviction_policies_that_can_drop_our_keys_are_reported() {
        let fields = parse_info("aof_enabled:1\r\n");
        for policy in [
            "allkeys-lru",
            "allkeys-random",
            "volatile-ttl",
            "volatile-lfu",
        ] {
            assert_eq!(
                findings_from_info(&fields, Some(policy), None),
                vec![StartupFinding::EvictionPolicy {
                    policy: policy.into()
                }]
            );
        }
        assert!(findings_from_info(&fields, Some("noeviction"), None).is_empty());
        assert!(findings_from_info(&fields, None, None).is_empty());
    }

    #[test]
    fn persistence_off_is_reported_and_unknown_snapshots_are_flagged() {
        let off = parse_info(INFO);
        assert_eq!(
            findings_from_info(&off, Some("noeviction"), Some(Some(String::new()))),
            vec![StartupFinding::NoPersistence]
        );
        assert_eq!(
            findings_from_info(&off, Some("noeviction"), Some(None)),
            vec![StartupFinding::PersistenceUnverified]
        );
        assert!(
            findings_from_info(&off, Some("noeviction"), Some(Some("3600 1".into()))).is_empty()
        );
        let aof = parse_info("aof_enabled:1\n");
        assert!(findings_from_info(&aof, Some("noeviction"), None).is_empty());
    }

    #[test]
    fn loopback_hosts_need_no_password() {
        let target = |url: &str| Target::from_info(&url.into_connection_info().unwrap());
        assert!(target("redis://127.0.0.1:6379").is_local());
        assert!(target("redis://localhost").is_local());
        assert!(target("redis://[::1]:6379").is_local());
        assert!(!target("redis://10.1.2.3").is_local());
        assert!(!target("redis://cache.internal").is_local());
        assert!(target("redis://:pw@10.1.2.3").has_password);
    }
}
