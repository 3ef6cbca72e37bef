//! Startup findings: what the server says about itself that can weaken revocation.

use super::*;

// ---------------------------------------------------------------------------
// Connection target (for Debug and the startup checks)
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Startup findings
// ---------------------------------------------------------------------------

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
