//! The Redis store: many processes share one Redis; every check is one round trip.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    ProtocolVersion, PushInfo, PushKind, RedisError, Script, ScriptInvocation, ServerErrorKind,
    Value,
};

use super::near_cache::{NearCache, NearCacheConfig, NearCacheStats};
use super::{
    CheckRequest, CreateOutcome, LimitPolicy, NewSession, RevocationReason, RevocationStore,
    RotateOutcome, Rotation, SessionEnd, SessionInfo, StoreError, StoreFuture, Verdict,
};

const DEFAULT_PREFIX: &str = "jwt";
const DEFAULT_POOL_SIZE: u32 = 4;
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Durations are clamped to about a hundred years of milliseconds, so every
/// number a script sees stays an exact integer far below 2^53.
const MAX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------
// Key encoding
// ---------------------------------------------------------------------------

/// Encode one part of a Redis key (a subject, a token id, a session id, a
/// purpose) injectively: every byte outside `[A-Za-z0-9._~@-]` becomes `%XX`
/// (upper-case hex), and the empty string becomes a lone `%` (which no other
/// input produces, and which keeps a hash tag from ever being empty).
///
/// The result never contains `:`, `{`, `}` or whitespace, so parts can be
/// joined with `:` and placed inside a `{...}` hash tag without ambiguity.
#[doc(hidden)]
pub fn encode_key_part(part: &str) -> String {
    if part.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(part.len());
    for &byte in part.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'~' | b'@' | b'-') {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// The inverse of [`encode_key_part`]; `None` for anything it cannot produce.
fn decode_key_part(encoded: &str) -> Option<String> {
    if encoded == "%" {
        return Some(String::new());
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a subject key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind<'a> {
    Deny(&'a str),
    NotBefore,
    Ban,
    Sessions,
    Session(&'a str),
    Ended(&'a str),
}

/// `<prefix>:{<enc subject>}:`: the start of every key of one subject; the
/// hash tag puts them all in one cluster slot.
fn subject_base(prefix: &str, subject: &str) -> String {
    format!("{prefix}:{{{}}}:", encode_key_part(subject))
}

fn subject_key(prefix: &str, subject: &str, kind: KeyKind<'_>) -> String {
    let mut key = subject_base(prefix, subject);
    match kind {
        KeyKind::Deny(id) => {
            key.push_str("deny:");
            key.push_str(&encode_key_part(id));
        }
        KeyKind::NotBefore => key.push_str("nbf"),
        KeyKind::Ban => key.push_str("ban"),
        KeyKind::Sessions => key.push_str("sessions"),
        KeyKind::Session(id) => {
            key.push_str("session:");
            key.push_str(&encode_key_part(id));
        }
        KeyKind::Ended(id) => {
            key.push_str("ended:");
            key.push_str(&encode_key_part(id));
        }
    }
    key
}

/// `<prefix>:once:<enc purpose>:<enc hash>`: no hash tag, never starts like a
/// subject key (`<prefix>:{`).
fn one_time_key(prefix: &str, purpose: &str, token_hash: &str) -> String {
    format!(
        "{prefix}:once:{}:{}",
        encode_key_part(purpose),
        encode_key_part(token_hash)
    )
}

fn millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).min(MAX_MS)
}

// ---------------------------------------------------------------------------
// Lua scripts
// ---------------------------------------------------------------------------

/// Shared helpers, prepended to every script.
///
/// Session hash fields: `device`, `created`, `last` (ms), `abs` (absolute end
/// ms), `idle` (ms), `gen`, `rt`. The subject's `sessions` ZSET maps the
/// encoded session id to its absolute end (ms), so a session whose hash has
/// expired can still tell `idle_timeout` from `session_expired`.
const PRELUDE: &str = r#"
local function num(n) return string.format('%.0f', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function lapsed(h, now)
  local abs = tonumber(h[2])
  if now >= abs then return 'session_expired' end
  if now >= tonumber(h[1]) + tonumber(h[3]) then return 'idle_timeout' end
  return nil
end
local function gone_reason(zkey, member, now)
  local score = redis.call('ZSCORE', zkey, member)
  if not score then return nil end
  if now >= tonumber(score) then return 'session_expired' end
  return 'idle_timeout'
end
local function end_one(base, zkey, member, why, markers, now)
  local skey = base .. 'session:' .. member
  local h = redis.call('HMGET', skey, 'last', 'abs', 'idle')
  local reason = nil
  local live = false
  if h[1] then
    reason = lapsed(h, now)
    if not reason then
      reason = why
      live = true
    end
    redis.call('DEL', skey)
  else
    reason = gone_reason(zkey, member, now)
    if not reason then return false, false end
  end
  redis.call('ZREM', zkey, member)
  if markers > 0 then
    redis.call('SET', base .. 'ended:' .. member, reason, 'PX', num(markers))
  end
  return live, true
end
local function end_all(base, zkey, why, markers, now)
  local n = 0
  local touched = false
  for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    local live, t = end_one(base, zkey, m, why, markers, now)
    if live then n = n + 1 end
    if t then touched = true end
  end
  return n, touched
end
local function publish(channel, kind, subject)
  redis.call('PUBLISH', channel, kind .. '\n' .. subject)
end
"#;

/// KEYS: ban, deny, nbf, [sessions, session, ended]; ARGV: iat ('' if none),
/// touch interval ms, encoded session id, marker ttl ms (a lapsed session
/// leaves a marker, like an ended one).
///
/// Reply: `{0}` valid, `{1, until_secs | -1}` banned, `{2}` token denied,
/// `{3}` logged out everywhere, `{4, "<SessionEnd code>"}` session ended.
const CHECK: &str = r#"
local b = redis.call('GET', KEYS[1])
if b then return {1, tonumber(b) or -1} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {2} end
local mark = redis.call('GET', KEYS[3])
if mark and (ARGV[1] == '' or tonumber(ARGV[1]) <= tonumber(mark)) then return {3} end
if #KEYS < 6 then return {0} end
local now = now_ms()
local h = redis.call('HMGET', KEYS[5], 'last', 'abs', 'idle')
if h[1] then
  local why = lapsed(h, now)
  if not why then
    if now - tonumber(h[1]) >= tonumber(ARGV[2]) then
      redis.call('HSET', KEYS[5], 'last', num(now))
      local ttl = math.max(1, math.min(tonumber(h[3]), tonumber(h[2]) - now))
      redis.call('PEXPIRE', KEYS[5], num(ttl))
    end
    return {0, redis.call('PTTL', KEYS[5])}
  end
  redis.call('DEL', KEYS[5])
  redis.call('ZREM', KEYS[4], ARGV[3])
  redis.call('SET', KEYS[6], why, 'PX', ARGV[4])
  return {4, why}
end
local why = gone_reason(KEYS[4], ARGV[3], now)
if why then
  redis.call('ZREM', KEYS[4], ARGV[3])
  redis.call('SET', KEYS[6], why, 'PX', ARGV[4])
  return {4, why}
end
return {4, redis.call('GET', KEYS[6]) or 'session_ended'}
"#;

/// KEYS: deny; ARGV: ttl ms, channel, subject. Never shortens a longer entry.
const DENY: &str = r#"
local ttl = tonumber(ARGV[1])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
publish(ARGV[2], 'deny', ARGV[3])
return 1
"#;

/// KEYS: nbf, sessions; ARGV: base, not_before secs, keep ms ('' = for ever),
/// markers ms, channel, subject. Reply: number of sessions ended.
const REVOKE: &str = r#"
local old = redis.call('GET', KEYS[1])
local mark = ARGV[2]
local px = nil
if old then
  if tonumber(old) > tonumber(ARGV[2]) then mark = old end
  local ttl = redis.call('PTTL', KEYS[1])
  if ARGV[3] ~= '' and ttl >= 0 then px = math.max(ttl, tonumber(ARGV[3])) end
elseif ARGV[3] ~= '' then
  px = tonumber(ARGV[3])
end
if px == nil then
  redis.call('SET', KEYS[1], mark)
elseif px > 0 then
  redis.call('SET', KEYS[1], mark, 'PX', num(px))
end
local n = end_all(ARGV[1], KEYS[2], 'logged_out_everywhere', tonumber(ARGV[4]), now_ms())
publish(ARGV[5], 'revoke', ARGV[6])
return n
"#;

/// KEYS: ban, sessions; ARGV: base, duration ms ('' = until lifted), markers
/// ms, channel, subject. The ban's value is its end in unix seconds (-1: none).
const BAN: &str = r#"
local now = now_ms()
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], '-1')
else
  local d = tonumber(ARGV[2])
  if d > 0 then
    redis.call('SET', KEYS[1], num(math.floor((now + d) / 1000)), 'PX', num(d))
  else
    redis.call('DEL', KEYS[1])
  end
end
local n = end_all(ARGV[1], KEYS[2], 'banned', tonumber(ARGV[3]), now)
publish(ARGV[4], 'ban', ARGV[5])
return n
"#;

/// KEYS: ban; ARGV: channel, subject. Reply: 1 if a ban was in force.
const UNBAN: &str = r#"
local n = redis.call('DEL', KEYS[1])
if n > 0 then publish(ARGV[1], 'unban', ARGV[2]) end
return n
"#;

/// KEYS: ban, sessions, new session, new session's ended marker; ARGV: base,
/// member, device, refresh hash, max sessions, 'evict' | 'reject', replace
/// same device '1' | '0', idle ms, lifetime ms, markers ms, channel, subject.
///
/// Reply: `{1, ended members...}` created, `{2, until_secs | -1}` banned,
/// `{3}` limit reached.
const CREATE: &str = r#"
local b = redis.call('GET', KEYS[1])
if b then return {2, tonumber(b) or -1} end
local now = now_ms()
local base, zkey = ARGV[1], KEYS[2]
local markers = tonumber(ARGV[10])
local live = {}
for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
  local h = redis.call('HMGET', base .. 'session:' .. m, 'last', 'abs', 'idle', 'created', 'device')
  if h[1] and not lapsed(h, now) then
    table.insert(live, {m, tonumber(h[4]), h[5]})
  else
    end_one(base, zkey, m, 'session_ended', markers, now)
  end
end
local replaced = {}
if ARGV[7] == '1' then
  local keep = {}
  for _, s in ipairs(live) do
    if s[3] == ARGV[3] then
      end_one(base, zkey, s[1], 'replaced', markers, now)
      table.insert(replaced, s[1])
    else
      table.insert(keep, s)
    end
  end
  live = keep
end
local max = tonumber(ARGV[5])
if max > 0 and #live >= max then
  if ARGV[6] == 'reject' then
    if #replaced > 0 then publish(ARGV[11], 'session', ARGV[12]) end
    return {3}
  end
  table.sort(live, function(x, y)
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[1] < y[1]
  end)
  for i = 1, #live + 1 - max do
    end_one(base, zkey, live[i][1], 'replaced', markers, now)
    table.insert(replaced, live[i][1])
  end
end
local idle = tonumber(ARGV[8])
local lifetime = tonumber(ARGV[9])
local abs = now + lifetime
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'device', ARGV[3], 'created', num(now), 'last', num(now),
  'abs', num(abs), 'idle', num(idle), 'gen', '0', 'rt', ARGV[4])
redis.call('PEXPIRE', KEYS[3], num(math.max(1, math.min(idle, lifetime))))
redis.call('ZADD', zkey, num(abs), ARGV[2])
redis.call('DEL', KEYS[4])
local keep_index = lifetime + markers
local zttl = redis.call('PTTL', zkey)
if zttl >= 0 and zttl < keep_index then redis.call('PEXPIRE', zkey, num(keep_index)) end
if #replaced > 0 then publish(ARGV[11], 'session', ARGV[12]) end
local reply = {1}
for _, m in ipairs(replaced) do table.insert(reply, m) end
return reply
"#;

/// KEYS: sessions; ARGV: base, member, reason code, markers ms, channel,
/// subject. Reply: 1 if the session was live.
const END_ONE: &str = r#"
local live, touched = end_one(ARGV[1], KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), now_ms())
if touched then publish(ARGV[5], 'session', ARGV[6]) end
if live then return 1 end
return 0
"#;

/// KEYS: sessions; ARGV: base, reason code, markers ms, channel, subject.
/// Reply: how many live sessions ended.
const END_ALL: &str = r#"
local n, touched = end_all(ARGV[1], KEYS[1], ARGV[2], tonumber(ARGV[3]), now_ms())
if touched then publish(ARGV[4], 'session', ARGV[5]) end
return n
"#;

/// KEYS: sessions; ARGV: base. Reply: flat list of live sessions, five
/// entries each: member, device, created ms, last ms, expires ms.
const LIST: &str = r#"
local now = now_ms()
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HMGET', ARGV[1] .. 'session:' .. m, 'last', 'abs', 'idle', 'created', 'device')
  if h[1] and not lapsed(h, now) then
    local expires = math.min(tonumber(h[1]) + tonumber(h[3]), tonumber(h[2]))
    table.insert(out, m)
    table.insert(out, h[5])
    table.insert(out, h[4])
    table.insert(out, h[1])
    table.insert(out, num(expires))
  end
end
return out
"#;

/// KEYS: sessions, session, ended; ARGV: base, member, generation, presented
/// hash, new hash, idle ms, markers ms, channel, subject.
///
/// Reply: `{1, generation}` rotated, `{2, "<SessionEnd code>"}` session gone,
/// `{3}` reused (session ended), `{4}` invalid.
const ROTATE: &str = r#"
local now = now_ms()
local h = redis.call('HMGET', KEYS[2], 'last', 'abs', 'idle', 'gen', 'rt')
if h[1] then
  local why = lapsed(h, now)
  if why then
    redis.call('DEL', KEYS[2])
    redis.call('ZREM', KEYS[1], ARGV[2])
    return {2, why}
  end
else
  local why = gone_reason(KEYS[1], ARGV[2], now)
  if why then
    redis.call('ZREM', KEYS[1], ARGV[2])
    return {2, why}
  end
  return {2, redis.call('GET', KEYS[3]) or 'session_ended'}
end
local gen = tonumber(h[4])
local presented = tonumber(ARGV[3])
if presented < gen then
  end_one(ARGV[1], KEYS[1], ARGV[2], 'refresh_reuse', tonumber(ARGV[7]), now)
  publish(ARGV[8], 'session', ARGV[9])
  return {3}
end
if presented == gen and ARGV[4] == h[5] then
  local idle = tonumber(ARGV[6])
  redis.call('HSET', KEYS[2], 'gen', num(gen + 1), 'rt', ARGV[5], 'idle', num(idle), 'last', num(now))
  redis.call('PEXPIRE', KEYS[2], num(math.max(1, math.min(idle, tonumber(h[2]) - now))))
  return {1, gen + 1}
end
return {4}
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CHECK));
static DENY_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(DENY));
static REVOKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(REVOKE));
static BAN_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(BAN));
static UNBAN_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(UNBAN));
static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CREATE));
static END_ONE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(END_ONE));
static END_ALL_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(END_ALL));
static LIST_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(LIST));
static ROTATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(ROTATE));

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// A pooled multiplexed connection with a flag that goes up when the
/// connection is known to be dead (the driver reported a disconnect, or a
/// command failed with a connection-level error).
struct PoolConn {
    conn: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

/// bb8 manager that, unlike bb8-redis's, reports broken connections, so the
/// pool replaces them by itself (after a Redis restart, a failover, a reset).
struct Manager {
    resp3: Client,
    resp2: Client,
    resp2_only: AtomicBool,
    config: AsyncConnectionConfig,
}

impl Manager {
    fn new(info: ConnectionInfo, config: AsyncConnectionConfig) -> Result<Self, RedisError> {
        let settings = info.redis_settings().clone();
        let resp3 = Client::open(
            info.clone()
                .set_redis_settings(settings.clone().set_protocol(ProtocolVersion::RESP3)),
        )?;
        let resp2 =
            Client::open(info.set_redis_settings(settings.set_protocol(ProtocolVersion::RESP2)))?;
        Ok(Self {
            resp3,
            resp2,
            resp2_only: AtomicBool::new(false),
            config,
        })
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = PoolConn;
    type Error = RedisError;

    async fn connect(&self) -> Result<PoolConn, RedisError> {
        let broken = Arc::new(AtomicBool::new(false));
        if !self.resp2_only.load(Ordering::Relaxed) {
            let flag = Arc::clone(&broken);
            // With RESP3 the connection's driver reports its own death at once,
            // before any command fails on it.
            let config = self.config.clone().set_push_sender(move |info: PushInfo| {
                if info.kind == PushKind::Disconnection {
                    flag.store(true, Ordering::Relaxed);
                }
                Ok::<(), std::convert::Infallible>(())
            });
            match self
                .resp3
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(conn) => return Ok(PoolConn { conn, broken }),
                Err(err) if err.kind() == ErrorKind::RESP3NotSupported => {
                    self.resp2_only.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        let conn = self
            .resp2
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(PoolConn { conn, broken })
    }

    async fn is_valid(&self, conn: &mut PoolConn) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query_async::<()>(&mut conn.conn)
            .await
            .inspect_err(|err| {
                if is_connection_error(err) {
                    conn.broken.store(true, Ordering::Relaxed);
                }
            })
    }

    fn has_broken(&self, conn: &mut PoolConn) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

/// Connection-management errors that belong to no caller go to the log.
#[derive(Debug, Clone, Copy)]
struct LogSink;

impl bb8::ErrorSink<RedisError> for LogSink {
    fn sink(&self, error: RedisError) {
        tracing::debug!(error = %error, "redis connection attempt failed");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<RedisError>> {
        Box::new(*self)
    }
}

enum Pool {
    Own(bb8::Pool<Manager>),
    External(bb8::Pool<bb8_redis::RedisConnectionManager>),
}

impl Pool {
    fn state(&self) -> bb8::State {
        match self {
            Self::Own(pool) => pool.state(),
            Self::External(pool) => pool.state(),
        }
    }

    fn max_size(&self) -> u32 {
        match self {
            Self::Own(pool) => pool.config().max_size,
            Self::External(pool) => pool.config().max_size,
        }
    }
}

/// A connection borrowed for one command: a clone of a pooled multiplexed
/// connection (the pool slot is released at once, so concurrent commands
/// pipeline on the same connection).
struct Lease {
    conn: MultiplexedConnection,
    broken: Option<Arc<AtomicBool>>,
}

impl Lease {
    fn settle<T>(&self, result: Result<T, RedisError>) -> Result<T, StoreError> {
        result.map_err(|err| {
            if is_connection_error(&err) {
                if let Some(flag) = &self.broken {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            map_redis_error(err)
        })
    }
}

/// Whether the connection the error came from should be replaced.
fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

fn map_redis_error(err: RedisError) -> StoreError {
    let protocol = match err.kind() {
        ErrorKind::Parse
        | ErrorKind::UnexpectedReturnType
        | ErrorKind::Server(ServerErrorKind::ResponseError)
        | ErrorKind::Server(ServerErrorKind::NoScript)
        | ErrorKind::Server(ServerErrorKind::CrossSlot) => true,
        ErrorKind::Extension => err.code() == Some("WRONGTYPE"),
        _ => false,
    };
    if protocol {
        StoreError::Protocol(err.to_string())
    } else {
        StoreError::unavailable(err)
    }
}

fn map_run_error(err: bb8::RunError<RedisError>, timeout: Duration) -> StoreError {
    match err {
        bb8::RunError::User(err) => map_redis_error(err),
        bb8::RunError::TimedOut => StoreError::unavailable(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no Redis connection within {timeout:?}"),
        )),
    }
}

/// A configuration mistake, reported as [`StoreError::Unavailable`].
#[derive(Debug)]
struct InvalidConfig(String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RedisStore configuration: {}", self.0)
    }
}

impl std::error::Error for InvalidConfig {}

// ---------------------------------------------------------------------------
// Connection target (for Debug and the startup checks)
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Target {
    addr: String,
    host: Option<String>,
    tls: bool,
    db: i64,
    username: Option<String>,
    has_password: bool,
}

impl Target {
    fn from_info(info: &ConnectionInfo) -> Self {
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
    fn is_local(&self) -> bool {
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
// The store
// ---------------------------------------------------------------------------

/// A [`RevocationStore`] in Redis, shared by every instance of a service.
///
/// Every [`check`](RevocationStore::check) is one `EVALSHA` round trip; every
/// write is one script (or one command). All keys of a subject share the hash
/// tag `{<subject>}`, so each script touches one cluster slot:
///
/// ```text
/// <prefix>:{<subject>}:deny:<token id>   "1", PX = remaining token life + leeway
/// <prefix>:{<subject>}:nbf               unix seconds (log out everywhere)
/// <prefix>:{<subject>}:ban               end of the ban in unix seconds, -1 = until lifted
/// <prefix>:{<subject>}:sessions          ZSET session id -> absolute end (ms)
/// <prefix>:{<subject>}:session:<sid>     HASH device, created, last, abs, idle, gen, rt
/// <prefix>:{<subject>}:ended:<sid>       why the session ended, PX = marker time
/// <prefix>:once:<purpose>:<token hash>   subject of a one-time token
/// ```
///
/// Subjects and ids are percent-encoded, so no two different ones share a key.
/// Time is Redis's own clock (`TIME`), so application clock skew does not matter.
///
/// Every revoking write publishes `<kind>\n<subject>` on `<prefix>:events`
/// ([`events_channel`](Self::events_channel)), with `kind` one of `deny`,
/// `revoke`, `ban`, `unban`, `session`, so that other instances can drop
/// cached verdicts of that subject.
///
/// The pool holds a few multiplexed connections (commands pipeline on them);
/// a connection that dies (Redis restart, failover) is replaced by itself.
/// Cloning is cheap and clones share the pool.
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), tower_jwt_auth::store::StoreError> {
/// use std::time::Duration;
/// use tower_jwt_auth::store::RedisStore;
///
/// let store = RedisStore::builder("redis://:secret@10.0.0.5:6379/2")
///     .pool_size(8)
///     .connection_timeout(Duration::from_millis(500))
///     .prefix("auth")
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    prefix: String,
    channel: String,
    target: Option<Target>,
    connection_timeout: Duration,
    near: Option<Arc<NearCache>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.pool.state();
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("prefix", &self.inner.prefix)
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

/// Builder for [`RedisStore`], from [`RedisStore::builder`].
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisStoreBuilder {
    url: String,
    pool_size: u32,
    connection_timeout: Duration,
    response_timeout: Duration,
    prefix: String,
    startup_checks: bool,
    near_cache: Option<NearCacheConfig>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self
            .url
            .as_str()
            .into_connection_info()
            .ok()
            .map(|info| Target::from_info(&info));
        f.debug_struct("RedisStoreBuilder")
            .field("target", &target)
            .field("pool_size", &self.pool_size)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("prefix", &self.prefix)
            .field("startup_checks", &self.startup_checks)
            .field("near_cache", &self.near_cache)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// Number of multiplexed connections kept open (default 4; at least 1).
    /// Each one pipelines any number of concurrent commands.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long connecting, or waiting for a pooled connection, may take
    /// (default 2 s). Past it, calls fail with [`StoreError::Unavailable`].
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one command may wait for its reply (default 1 s).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The key prefix (default `jwt`); it must not contain `{` or `}`.
    /// Events go to `<prefix>:events`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Whether [`build`](Self::build) runs
    /// [`log_startup_findings`](RedisStore::log_startup_findings) (default on).
    pub fn startup_checks(mut self, enabled: bool) -> Self {
        self.startup_checks = enabled;
        self
    }

    /// Turn the near-cache on with default settings (1 s maximum age,
    /// 100 000 tokens), or off (the default).
    ///
    /// With it, a token checked in the last second is accepted without a Redis
    /// command while the store's subscription to revocation events is alive;
    /// every revoking write on any instance drops the subject's entries on all
    /// instances as soon as its event arrives. See the README's "Scaling out".
    pub fn near_cache(mut self, enabled: bool) -> Self {
        self.near_cache = enabled.then(NearCacheConfig::default);
        self
    }

    /// Turn the near-cache on with these settings.
    pub fn near_cache_config(mut self, config: NearCacheConfig) -> Self {
        self.near_cache = Some(config);
        self
    }

    /// Open the pool (every connection is opened now, so a wrong URL, a wrong
    /// password or an unreachable server fails here).
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        validate_prefix(&self.prefix)?;
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(StoreError::unavailable)?;
        let target = Target::from_info(&info);
        if target.tls {
            ensure_crypto_provider()?;
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let pubsub_client = match self.near_cache {
            Some(_) => Some(Client::open(info.clone()).map_err(StoreError::unavailable)?),
            None => None,
        };
        let manager = Manager::new(info, config).map_err(StoreError::unavailable)?;
        let pool = bb8::Pool::builder()
            .max_size(self.pool_size)
            .min_idle(Some(self.pool_size))
            .test_on_check_out(false)
            .connection_timeout(self.connection_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .error_sink(Box::new(LogSink))
            .build(manager)
            .await
            .map_err(map_redis_error)?;
        let mut store = RedisStore::new(
            Pool::Own(pool),
            self.prefix,
            Some(target),
            self.connection_timeout,
        );
        if let (Some(config), Some(client)) = (self.near_cache, pubsub_client) {
            let cache = Arc::new(NearCache::new(config));
            let inner = Arc::get_mut(&mut store.inner).expect("store not shared yet");
            inner.near = Some(Arc::clone(&cache));
            tokio::spawn(run_subscriber(
                client,
                inner.channel.clone(),
                Arc::downgrade(&cache),
            ));
            // Wait briefly for the subscription, so the cache works from the start.
            let deadline = tokio::time::Instant::now() + self.connection_timeout;
            while !cache.is_alive() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if self.startup_checks {
            store.log_startup_findings().await;
        }
        Ok(store)
    }
}

/// redis-rs builds its rustls config from the process-wide crypto provider
/// and panics when there is none: pick aws-lc-rs when it is compiled in,
/// otherwise fail with an error instead of a panic.
#[cfg(feature = "redis-tls")]
fn ensure_crypto_provider() -> Result<(), StoreError> {
    use rustls::crypto::CryptoProvider;
    #[cfg(feature = "aws_lc_rs")]
    if CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: one is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    if CryptoProvider::get_default().is_none() {
        return Err(StoreError::unavailable(InvalidConfig(
            "rediss:// needs a rustls CryptoProvider: enable the `aws_lc_rs` feature or call \
             rustls::crypto::CryptoProvider::install_default() at startup"
                .to_owned(),
        )));
    }
    Ok(())
}

/// Without `redis-tls`, redis-rs itself refuses `rediss://` URLs.
#[cfg(not(feature = "redis-tls"))]
fn ensure_crypto_provider() -> Result<(), StoreError> {
    Ok(())
}

fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::unavailable(InvalidConfig(format!(
            "the key prefix {prefix:?} must not contain `{{` or `}}` (they would break the hash tags)"
        ))));
    }
    Ok(())
}

impl RedisStore {
    /// Connect with the defaults: `redis://[user][:password]@host[:port][/db]`,
    /// or `rediss://` with the `redis-tls` feature.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build().await
    }

    /// A builder to set the pool size, timeouts and key prefix.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            prefix: DEFAULT_PREFIX.to_owned(),
            startup_checks: true,
            near_cache: None,
        }
    }

    /// Use an existing bb8-redis pool, with the key prefix `jwt`.
    ///
    /// bb8-redis's manager never reports a connection as broken, so such a
    /// pool only recovers from a Redis restart if it was built with
    /// `test_on_check_out(true)` (one extra `PING` per call). Prefer
    /// [`connect`](Self::connect) or [`builder`](Self::builder).
    pub fn from_pool(pool: bb8::Pool<bb8_redis::RedisConnectionManager>) -> Self {
        let timeout = pool.config().connection_timeout;
        Self::new(
            Pool::External(pool),
            DEFAULT_PREFIX.to_owned(),
            None,
            timeout,
        )
    }

    /// [`from_pool`](Self::from_pool) with another key prefix (no `{` or `}`).
    pub fn from_pool_with_prefix(
        pool: bb8::Pool<bb8_redis::RedisConnectionManager>,
        prefix: &str,
    ) -> Result<Self, StoreError> {
        validate_prefix(prefix)?;
        let timeout = pool.config().connection_timeout;
        Ok(Self::new(
            Pool::External(pool),
            prefix.to_owned(),
            None,
            timeout,
        ))
    }

    fn new(pool: Pool, prefix: String, target: Option<Target>, timeout: Duration) -> Self {
        let channel = format!("{prefix}:events");
        Self {
            inner: Arc::new(Inner {
                pool,
                prefix,
                channel,
                target,
                connection_timeout: timeout,
                near: None,
            }),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The pub/sub channel revoking writes publish on: `<prefix>:events`.
    pub fn events_channel(&self) -> &str {
        &self.inner.channel
    }

    /// Checks of the server's configuration that matter for revocation:
    /// an eviction policy that may drop our keys, no password on a
    /// non-loopback address, no persistence. Uses `INFO` (allowed on managed
    /// Redis); `CONFIG GET` only where `INFO` has no answer, and only if allowed.
    pub async fn startup_findings(&self) -> Vec<StartupFinding> {
        let mut findings = Vec::new();
        if let Some(target) = &self.inner.target {
            if !target.has_password && !target.is_local() {
                findings.push(StartupFinding::NoPassword {
                    host: target.host.clone().unwrap_or_default(),
                });
            }
        }
        let info = match self.query(&redis::cmd("INFO")).await.map(value_text) {
            Ok(Some(info)) => info,
            Ok(None) => {
                findings.push(StartupFinding::CheckFailed {
                    check: "INFO",
                    error: "unexpected reply".to_owned(),
                });
                return findings;
            }
            Err(err) => {
                findings.push(StartupFinding::CheckFailed {
                    check: "INFO",
                    error: err.to_string(),
                });
                return findings;
            }
        };
        let fields = parse_info(&info);
        let policy = match fields.get("maxmemory_policy") {
            Some(policy) => Some((*policy).to_owned()),
            None => self.config_get("maxmemory-policy").await,
        };
        let save = if fields.get("aof_enabled") == Some(&"0") {
            Some(self.config_get("save").await)
        } else {
            None
        };
        findings.extend(findings_from_info(&fields, policy.as_deref(), save));
        findings
    }

    /// [`startup_findings`](Self::startup_findings), each also logged with
    /// `tracing::warn!`. [`RedisStoreBuilder::build`] runs it by default.
    pub async fn log_startup_findings(&self) -> Vec<StartupFinding> {
        let findings = self.startup_findings().await;
        for finding in &findings {
            tracing::warn!(target: "tower_jwt_auth::redis", "{finding}");
        }
        findings
    }

    /// `CONFIG GET name`, or `None` when not allowed or not answered.
    async fn config_get(&self, name: &str) -> Option<String> {
        let reply = self
            .query(redis::cmd("CONFIG").arg("GET").arg(name))
            .await
            .ok()?;
        match reply {
            Value::Array(items) if items.len() == 2 => value_text(items.into_iter().nth(1)?),
            Value::Map(pairs) => pairs.into_iter().next().and_then(|(_, v)| value_text(v)),
            _ => None,
        }
    }

    fn key(&self, subject: &str, kind: KeyKind<'_>) -> String {
        subject_key(&self.inner.prefix, subject, kind)
    }

    fn base(&self, subject: &str) -> String {
        subject_base(&self.inner.prefix, subject)
    }

    async fn lease(&self) -> Result<Lease, StoreError> {
        let timeout = self.inner.connection_timeout;
        match &self.inner.pool {
            Pool::Own(pool) => {
                // A connection flagged broken is dropped (bb8 then discards it
                // and opens a new one); the bound only guards against a loop.
                for _ in 0..=self.inner.pool.max_size() {
                    let pooled = pool.get().await.map_err(|e| map_run_error(e, timeout))?;
                    if pooled.broken.load(Ordering::Relaxed) {
                        continue;
                    }
                    return Ok(Lease {
                        conn: pooled.conn.clone(),
                        broken: Some(Arc::clone(&pooled.broken)),
                    });
                }
                Err(StoreError::unavailable(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no healthy Redis connection",
                )))
            }
            Pool::External(pool) => {
                let pooled = pool.get().await.map_err(|e| map_run_error(e, timeout))?;
                Ok(Lease {
                    conn: (*pooled).clone(),
                    broken: None,
                })
            }
        }
    }

    async fn eval(&self, invocation: ScriptInvocation<'_>) -> Result<Value, StoreError> {
        let mut lease = self.lease().await?;
        let result = invocation.invoke_async::<Value>(&mut lease.conn).await;
        lease.settle(result)
    }

    async fn query(&self, cmd: &redis::Cmd) -> Result<Value, StoreError> {
        let mut lease = self.lease().await?;
        let result = cmd.query_async::<Value>(&mut lease.conn).await;
        lease.settle(result)
    }

    async fn check_now(self, req: CheckRequest) -> Result<Verdict, StoreError> {
        let ticket = self
            .inner
            .near
            .as_ref()
            .and_then(|c| c.ticket(&req.subject));
        let mut inv = CHECK_SCRIPT.prepare_invoke();
        inv.key(self.key(&req.subject, KeyKind::Ban))
            .key(self.key(&req.subject, KeyKind::Deny(&req.token_id)))
            .key(self.key(&req.subject, KeyKind::NotBefore))
            .arg(req.issued_at.map(|iat| iat.to_string()).unwrap_or_default())
            .arg(millis(req.touch_interval));
        if let Some(sid) = &req.session_id {
            inv.key(self.key(&req.subject, KeyKind::Sessions))
                .key(self.key(&req.subject, KeyKind::Session(sid)))
                .key(self.key(&req.subject, KeyKind::Ended(sid)))
                .arg(encode_key_part(sid))
                .arg(millis(req.marker_ttl).max(1));
        }
        let reply = self.eval(inv).await?;
        let (verdict, session_ttl) = parse_check(reply)?;
        if let (Some(cache), Some(ticket), Verdict::Valid) = (&self.inner.near, ticket, &verdict) {
            // A session-bound verdict lives no longer than the session's idle
            // deadline and the touch interval (so the next real check slides it).
            let ttl = req
                .session_id
                .as_ref()
                .map(|_| Duration::from_millis(session_ttl.unwrap_or(0)).min(req.touch_interval));
            cache.insert(ticket, &req.subject, &req.token_id, ttl);
        }
        Ok(verdict)
    }

    /// Drop the near-cache entries of `subject` after our own revoking write
    /// (other instances drop theirs when the event arrives).
    fn invalidate(&self, subject: &str) {
        if let Some(cache) = &self.inner.near {
            cache.invalidate(subject);
        }
    }

    /// The near-cache's counters, when it is on.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.inner.near.as_ref().map(|c| c.stats())
    }
}

/// Keep a pub/sub subscription to the events channel; feed the near-cache.
/// The cache is in use only while the subscription is alive; it ends when
/// the store (and so the cache) is dropped.
async fn run_subscriber(client: Client, channel: String, cache: Weak<NearCache>) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(50);
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let Some(c) = cache.upgrade() else { return };
                    c.set_alive(true);
                    drop(c);
                    tracing::debug!(channel = %channel, "near-cache subscription alive");
                    backoff = Duration::from_millis(50);
                    let mut stream = pubsub.on_message();
                    loop {
                        match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                            Ok(Some(msg)) => {
                                let Some(c) = cache.upgrade() else { return };
                                match msg.get_payload_bytes().splitn(2, |&b| b == b'\n').nth(1) {
                                    Some(subject) => {
                                        c.invalidate(&String::from_utf8_lossy(subject))
                                    }
                                    // Not ours to parse: be safe.
                                    None => c.clear(),
                                }
                            }
                            Ok(None) => break,
                            Err(_idle) if cache.strong_count() == 0 => return,
                            Err(_idle) => {}
                        }
                    }
                    if let Some(c) = cache.upgrade() {
                        c.set_alive(false);
                    }
                    tracing::warn!(channel = %channel, "near-cache subscription lost: cache bypassed until it is back");
                }
                Err(err) => tracing::warn!(error = %err, "near-cache subscribe failed"),
            },
            Err(err) => tracing::debug!(error = %err, "near-cache subscription connect failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

fn protocol(what: &str, reply: &Value) -> StoreError {
    StoreError::Protocol(format!("{what}: {reply:?}"))
}

fn value_int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn value_text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

fn value_array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

fn ban_until(value: Option<&Value>) -> Option<Option<u64>> {
    let n = value_int(value?)?;
    Some(u64::try_from(n).ok())
}

fn parse_check(reply: Value) -> Result<(Verdict, Option<u64>), StoreError> {
    let items = match &reply {
        Value::Array(items) => items,
        _ => return Err(protocol("check", &reply)),
    };
    let verdict = match items.first().and_then(value_int) {
        Some(0) => Verdict::Valid,
        Some(1) => match ban_until(items.get(1)) {
            Some(until) => Verdict::Revoked(RevocationReason::Banned { until }),
            None => return Err(protocol("check", &reply)),
        },
        Some(2) => Verdict::Revoked(RevocationReason::TokenRevoked),
        Some(3) => Verdict::Revoked(RevocationReason::LoggedOutEverywhere),
        Some(4) => match items.get(1).cloned().and_then(value_text) {
            Some(code) => {
                Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::from_code(&code)))
            }
            None => return Err(protocol("check", &reply)),
        },
        _ => return Err(protocol("check", &reply)),
    };
    let session_ttl = match verdict {
        Verdict::Valid => items
            .get(1)
            .and_then(value_int)
            .and_then(|n| u64::try_from(n).ok()),
        Verdict::Revoked(_) => None,
    };
    Ok((verdict, session_ttl))
}

fn parse_count(what: &str, reply: Value) -> Result<i64, StoreError> {
    value_int(&reply).ok_or_else(|| protocol(what, &reply))
}

fn decode_member(what: &str, member: Value) -> Result<String, StoreError> {
    value_text(member.clone())
        .and_then(|m| decode_key_part(&m))
        .ok_or_else(|| protocol(what, &member))
}

fn parse_create(reply: Value) -> Result<CreateOutcome, StoreError> {
    let shown = reply.clone();
    let mut items = value_array(reply)
        .ok_or_else(|| protocol("create_session", &shown))?
        .into_iter();
    match items.next().as_ref().and_then(value_int) {
        Some(1) => Ok(CreateOutcome::Created {
            replaced: items
                .map(|m| decode_member("create_session", m))
                .collect::<Result<_, _>>()?,
        }),
        Some(2) => match ban_until(items.next().as_ref()) {
            Some(until) => Ok(CreateOutcome::Banned { until }),
            None => Err(protocol("create_session", &shown)),
        },
        Some(3) => Ok(CreateOutcome::LimitReached),
        _ => Err(protocol("create_session", &shown)),
    }
}

fn parse_list(reply: Value) -> Result<Vec<SessionInfo>, StoreError> {
    let shown = reply.clone();
    let bad = || protocol("list_sessions", &shown);
    let items = value_array(reply).ok_or_else(bad)?;
    if items.len() % 5 != 0 {
        return Err(bad());
    }
    let mut list = Vec::with_capacity(items.len() / 5);
    let mut iter = items.into_iter();
    while let (Some(member), Some(device), Some(created), Some(last), Some(expires)) = (
        iter.next(),
        iter.next(),
        iter.next(),
        iter.next(),
        iter.next(),
    ) {
        let number = |v: &Value| value_int(v).and_then(|n| u64::try_from(n).ok());
        list.push(SessionInfo {
            session_id: decode_member("list_sessions", member)?,
            device: value_text(device).ok_or_else(bad)?,
            created_at: number(&created).ok_or_else(bad)?,
            last_seen_at: number(&last).ok_or_else(bad)?,
            expires_at: number(&expires).ok_or_else(bad)?,
        });
    }
    list.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
    Ok(list)
}

fn parse_rotate(reply: Value) -> Result<RotateOutcome, StoreError> {
    let shown = reply.clone();
    let bad = || protocol("rotate_refresh", &shown);
    let mut items = value_array(reply).ok_or_else(bad)?.into_iter();
    match items.next().as_ref().and_then(value_int) {
        Some(1) => {
            let generation = items
                .next()
                .as_ref()
                .and_then(value_int)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(bad)?;
            Ok(RotateOutcome::Rotated { generation })
        }
        Some(2) => {
            let code = items.next().and_then(value_text).ok_or_else(bad)?;
            Ok(RotateOutcome::SessionEnded(SessionEnd::from_code(&code)))
        }
        Some(3) => Ok(RotateOutcome::Reused),
        Some(4) => Ok(RotateOutcome::Invalid),
        _ => Err(bad()),
    }
}

// ---------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------

impl RevocationStore for RedisStore {
    fn check(&self, request: CheckRequest) -> StoreFuture<'static, Verdict> {
        Box::pin(self.clone().check_now(request))
    }

    fn check_cached(&self, subject: &str, token_id: &str) -> bool {
        self.inner
            .near
            .as_ref()
            .is_some_and(|c| c.lookup(subject, token_id))
    }

    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut inv = DENY_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Deny(token_id)))
                .arg(millis(ttl))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await.map(drop);
            self.invalidate(subject);
            result
        })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        not_before: u64,
        keep_for: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut inv = REVOKE_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::NotBefore))
                .key(self.key(subject, KeyKind::Sessions))
                .arg(self.base(subject))
                .arg(not_before)
                .arg(keep_for.map(|d| millis(d).to_string()).unwrap_or_default())
                .arg(millis(markers))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await.map(drop);
            self.invalidate(subject);
            result
        })
    }

    fn ban<'a>(
        &'a self,
        subject: &'a str,
        duration: Option<Duration>,
        markers: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut inv = BAN_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Ban))
                .key(self.key(subject, KeyKind::Sessions))
                .arg(self.base(subject))
                .arg(duration.map(|d| millis(d).to_string()).unwrap_or_default())
                .arg(millis(markers))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await.map(drop);
            self.invalidate(subject);
            result
        })
    }

    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inv = UNBAN_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Ban))
                .arg(&self.inner.channel)
                .arg(subject);
            Ok(parse_count("unban", self.eval(inv).await?)? > 0)
        })
    }

    fn create_session(&self, new: NewSession) -> StoreFuture<'_, CreateOutcome> {
        Box::pin(async move {
            let subject = &new.subject;
            let mut inv = CREATE_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Ban))
                .key(self.key(subject, KeyKind::Sessions))
                .key(self.key(subject, KeyKind::Session(&new.session_id)))
                .key(self.key(subject, KeyKind::Ended(&new.session_id)))
                .arg(self.base(subject))
                .arg(encode_key_part(&new.session_id))
                .arg(&new.device)
                .arg(&new.refresh_hash)
                .arg(new.max_sessions)
                .arg(match new.limit_policy {
                    LimitPolicy::RejectNew => "reject",
                    _ => "evict",
                })
                .arg(if new.replace_same_device { "1" } else { "0" })
                .arg(millis(new.idle_timeout))
                .arg(millis(new.lifetime))
                .arg(millis(new.markers))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await;
            self.invalidate(subject);
            parse_create(result?)
        })
    }

    fn end_session<'a>(
        &'a self,
        subject: &'a str,
        session_id: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inv = END_ONE_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Sessions))
                .arg(self.base(subject))
                .arg(encode_key_part(session_id))
                .arg(reason.code())
                .arg(millis(markers))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await;
            self.invalidate(subject);
            Ok(parse_count("end_session", result?)? > 0)
        })
    }

    fn end_all_sessions<'a>(
        &'a self,
        subject: &'a str,
        reason: SessionEnd,
        markers: Duration,
    ) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let mut inv = END_ALL_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Sessions))
                .arg(self.base(subject))
                .arg(reason.code())
                .arg(millis(markers))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await;
            self.invalidate(subject);
            let n = parse_count("end_all_sessions", result?)?;
            usize::try_from(n).map_err(|_| StoreError::Protocol(format!("end_all_sessions: {n}")))
        })
    }

    fn list_sessions<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionInfo>> {
        Box::pin(async move {
            let mut inv = LIST_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Sessions))
                .arg(self.base(subject));
            parse_list(self.eval(inv).await?)
        })
    }

    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome> {
        Box::pin(async move {
            let subject = &rotation.subject;
            let sid = &rotation.session_id;
            let mut inv = ROTATE_SCRIPT.prepare_invoke();
            inv.key(self.key(subject, KeyKind::Sessions))
                .key(self.key(subject, KeyKind::Session(sid)))
                .key(self.key(subject, KeyKind::Ended(sid)))
                .arg(self.base(subject))
                .arg(encode_key_part(sid))
                .arg(rotation.generation)
                .arg(&rotation.presented_hash)
                .arg(&rotation.new_hash)
                .arg(millis(rotation.idle_timeout))
                .arg(millis(rotation.markers))
                .arg(&self.inner.channel)
                .arg(subject);
            let result = self.eval(inv).await;
            self.invalidate(subject);
            parse_rotate(result?)
        })
    }

    fn put_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
        subject: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = one_time_key(&self.inner.prefix, purpose, token_hash);
            let ms = millis(ttl);
            let mut cmd;
            if ms == 0 {
                cmd = redis::cmd("DEL");
                cmd.arg(key);
            } else {
                cmd = redis::cmd("SET");
                cmd.arg(key).arg(subject).arg("PX").arg(ms);
            }
            self.query(&cmd).await.map(drop)
        })
    }

    fn take_one_time<'a>(
        &'a self,
        purpose: &'a str,
        token_hash: &'a str,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let key = one_time_key(&self.inner.prefix, purpose, token_hash);
            match self.query(redis::cmd("GETDEL").arg(key)).await? {
                Value::Nil => Ok(None),
                other => {
                    let shown = other.clone();
                    value_text(other)
                        .map(Some)
                        .ok_or_else(|| protocol("take_one_time", &shown))
                }
            }
        })
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
fn parse_info(info: &str) -> HashMap<&str, &str> {
    info.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .collect()
}

/// Findings from parsed `INFO` fields, the eviction policy (from `INFO` or
/// `CONFIG GET`) and, when AOF is off, the `save` setting (`None`: unreadable).
fn findings_from_info(
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The hash tag Redis Cluster hashes for `key`, if any.
    fn hash_tag(key: &str) -> Option<&str> {
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &key[open + 1..close])
    }

    type Triple = (String, u8, String);

    fn key_of((subject, kind, id): &Triple) -> String {
        let kind = match kind % 6 {
            0 => KeyKind::Deny(id),
            1 => KeyKind::NotBefore,
            2 => KeyKind::Ban,
            3 => KeyKind::Sessions,
            4 => KeyKind::Session(id),
            _ => KeyKind::Ended(id),
        };
        subject_key("jwt", subject, kind)
    }

    /// Normalize: kinds without an id ignore it.
    fn canonical((subject, kind, id): &Triple) -> Triple {
        let kind = kind % 6;
        let id = if matches!(kind, 1..=3) {
            String::new()
        } else {
            id.clone()
        };
        (subject.clone(), kind, id)
    }

    fn part() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a:{}%~ é\\n.-]{0,4}",
            "[a-z0-9:{}%]{0,3}(deny|nbf|ban|sessions|session|ended)?[:{}%a]{0,3}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn different_triples_never_share_a_key(
            triples in prop::collection::vec((part(), any::<u8>(), part()), 1..40)
        ) {
            let mut seen: HashMap<String, Triple> = HashMap::new();
            for t in &triples {
                let t = canonical(t);
                let key = key_of(&t);
                if let Some(prev) = seen.insert(key.clone(), t.clone()) {
                    prop_assert_eq!(prev, t, "two triples share the key {}", key);
                }
            }
        }

        #[test]
        fn all_keys_of_a_subject_share_one_non_empty_hash_tag(t in (part(), any::<u8>(), part())) {
            let key = key_of(&t);
            let encoded = encode_key_part(&t.0);
            prop_assert_eq!(hash_tag(&key), Some(encoded.as_str()));
            prop_assert!(!encoded.is_empty());
            let clean = !encoded.contains(['{', '}', ':']);
            prop_assert!(clean, "braces or colon in an encoded part");
        }

        #[test]
        fn encoding_round_trips(s in part()) {
            prop_assert_eq!(decode_key_part(&encode_key_part(&s)), Some(s));
        }

        #[test]
        fn one_time_keys_never_look_like_subject_keys(
            purpose in part(), hash in part(), t in (part(), any::<u8>(), part())
        ) {
            let once = one_time_key("jwt", &purpose, &hash);
            prop_assert!(hash_tag(&once).is_none());
            prop_assert_ne!(once, key_of(&t));
        }
    }

    #[test]
    fn encoding_examples() {
        assert_eq!(encode_key_part(""), "%");
        assert_eq!(encode_key_part("alice@example.com"), "alice@example.com");
        assert_eq!(encode_key_part("a:b{c}"), "a%3Ab%7Bc%7D");
        assert_eq!(encode_key_part("%"), "%25");
        assert_eq!(encode_key_part("é"), "%C3%A9");
        assert_eq!(
            subject_key("jwt", "a}b", KeyKind::Deny("t 1")),
            "jwt:{a%7Db}:deny:t%201"
        );
        assert_eq!(decode_key_part("%zz"), None);
        assert_eq!(decode_key_part("%2"), None);
    }

    #[test]
    fn millis_rounds_up_and_clamps() {
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), MAX_MS);
    }

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

    #[test]
    fn debug_never_shows_the_password() {
        let builder = RedisStore::builder("redis://user:hunter2@10.1.2.3:6380/3");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("10.1.2.3:6380"), "{shown}");
    }

    #[test]
    fn replies_map_to_verdicts() {
        let arr = |v: Vec<Value>| Value::Array(v);
        assert_eq!(
            parse_check(arr(vec![Value::Int(0)])).unwrap(),
            (Verdict::Valid, None)
        );
        assert_eq!(
            parse_check(arr(vec![Value::Int(0), Value::Int(1500)])).unwrap(),
            (Verdict::Valid, Some(1500))
        );
        assert_eq!(
            parse_check(arr(vec![Value::Int(1), Value::Int(-1)]))
                .unwrap()
                .0,
            Verdict::Revoked(RevocationReason::Banned { until: None })
        );
        assert_eq!(
            parse_check(arr(vec![Value::Int(1), Value::Int(1_700_000_000)]))
                .unwrap()
                .0,
            Verdict::Revoked(RevocationReason::Banned {
                until: Some(1_700_000_000)
            })
        );
        assert_eq!(
            parse_check(arr(vec![
                Value::Int(4),
                Value::BulkString(b"idle_timeout".to_vec())
            ]))
            .unwrap()
            .0,
            Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::IdleTimeout))
        );
        assert!(matches!(
            parse_check(Value::Int(7)),
            Err(StoreError::Protocol(_))
        ));
        assert!(matches!(
            parse_check(arr(vec![Value::Int(9)])),
            Err(StoreError::Protocol(_))
        ));
    }
}
