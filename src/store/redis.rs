//! The Redis store: many processes share one Redis; every check is one round trip.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Script, ServerErrorKind,
    ToRedisArgs, Value,
};

use super::near_cache::{NearCache, NearCacheConfig, NearCacheStats};
use super::{
    CheckRequest, CreateOutcome, LimitPolicy, NewSession, RevocationReason, RevocationStore,
    RotateOutcome, Rotation, SessionEnd, SessionInfo, StoreError, StoreFuture, Verdict,
};

const DEFAULT_PREFIX: &str = "jwt";
const DEFAULT_POOL_SIZE: u32 = 1;
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
    key_in(&subject_base(prefix, subject), kind)
}

/// A key of the subject whose [`subject_base`] is `base`: callers that need
/// several keys of one subject encode the subject once.
fn key_in(base: &str, kind: KeyKind<'_>) -> String {
    let mut key = String::with_capacity(base.len() + 32);
    key.push_str(base);
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
/// Reply: `{0}` valid, `{0, ms}` valid with the session's idle deadline `ms`
/// away, `{1, until_secs | -1}` banned, `{2}` token denied, `{3}` logged out
/// everywhere, `{4, "<SessionEnd code>"}` session ended.
///
/// This script runs on every request, so it stands alone (no [`PRELUDE`]:
/// defining its functions costs Redis more than this whole hot path) and
/// reads the three subject keys with one `MGET`. Its session rules are the
/// prelude's `lapsed` and `gone_reason`, spelled out.
const CHECK: &str = r#"
local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
if v[1] then return {1, tonumber(v[1]) or -1} end
if v[2] then return {2} end
if v[3] and (ARGV[1] == '' or tonumber(ARGV[1]) <= tonumber(v[3])) then return {3} end
if #KEYS < 6 then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[5], 'last', 'abs', 'idle')
local why
if h[1] then
  local last, abs, idle = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  if now >= abs then
    why = 'session_expired'
  elseif now >= last + idle then
    why = 'idle_timeout'
  else
    if now - last >= tonumber(ARGV[2]) then
      last = now
      redis.call('HSET', KEYS[5], 'last', string.format('%.0f', now))
      local ttl = math.max(1, math.min(idle, abs - now))
      redis.call('PEXPIRE', KEYS[5], string.format('%.0f', ttl))
    end
    return {0, math.min(last + idle, abs) - now}
  end
  redis.call('DEL', KEYS[5])
else
  local score = redis.call('ZSCORE', KEYS[4], ARGV[3])
  if not score then return {4, redis.call('GET', KEYS[6]) or 'session_ended'} end
  if now >= tonumber(score) then why = 'session_expired' else why = 'idle_timeout' end
end
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('SET', KEYS[6], why, 'PX', ARGV[4])
return {4, why}
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
local newest = 0
for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
  local h = redis.call('HMGET', base .. 'session:' .. m, 'last', 'abs', 'idle', 'created', 'device')
  if h[1] and not lapsed(h, now) then
    table.insert(live, {m, tonumber(h[4]), h[5]})
    newest = math.max(newest, tonumber(h[4]))
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
-- Strictly after every live session, so logins within one millisecond
-- still evict in login order.
local created = math.max(now, newest + 1)
redis.call('HSET', KEYS[3], 'device', ARGV[3], 'created', num(created), 'last', num(now),
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

/// One Lua script: its body (for `SCRIPT LOAD` / `EVAL`) and SHA1 (for `EVALSHA`).
struct Lua {
    code: String,
    hash: String,
}

impl Lua {
    /// A script that uses the [`PRELUDE`]'s helpers.
    fn new(body: &str) -> Self {
        Self::standalone(&format!("{PRELUDE}{body}"))
    }

    /// A script that needs no helpers.
    fn standalone(code: &str) -> Self {
        let hash = Script::new(code).get_hash().to_owned();
        Self {
            code: code.to_owned(),
            hash,
        }
    }

    fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            lua: self,
            keys: Vec::with_capacity(6),
            args: Vec::with_capacity(6),
        }
    }
}

/// One call of a [`Lua`] script: its keys and arguments (like redis-rs's
/// `ScriptInvocation`, whose parts are private, so it cannot fall back to
/// `EVAL` on a cluster).
struct Invocation<'a> {
    lua: &'a Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Invocation<'_> {
    /// A key; a `String` is moved in, not copied.
    fn key(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.keys.push(key.into());
        self
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// `EVALSHA <sha> ...`, or with `full` `EVAL <body> ...`; either is routed
    /// by its first key on a cluster.
    fn cmd(&self, full: bool) -> Cmd {
        let mut cmd = if full {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(&self.lua.code);
            cmd
        } else {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.lua.hash);
            cmd
        };
        cmd.arg(self.keys.len()).arg(&self.keys).arg(&self.args);
        cmd
    }
}

static CHECK_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::standalone(CHECK));
static DENY_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(DENY));
static REVOKE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(REVOKE));
static BAN_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(BAN));
static UNBAN_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(UNBAN));
static CREATE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(CREATE));
static END_ONE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(END_ONE));
static END_ALL_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(END_ALL));
static LIST_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(LIST));
static ROTATE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(ROTATE));

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// A pooled multiplexed connection with a flag that goes up when the
/// connection is known to be dead (the driver reported a disconnect, or a
/// command failed with a connection-level error).
struct PoolConn {
    conn: MultiplexedConnection,
    broken: Arc<AtomicBool>,
    /// The manager's epoch when it was opened: older than the current one
    /// means its server was demoted, so it is stale too.
    epoch: u64,
}

/// Where the pool's connections go.
enum Dial {
    /// One server, from its URL.
    Fixed(Box<ConnectionInfo>),
    /// Whatever master the sentinels name at connect time.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Arc<SentinelLookup>),
}

/// bb8 manager that, unlike bb8-redis's, reports broken connections, so the
/// pool replaces them by itself (after a Redis restart, a failover, a reset).
/// With Sentinel, every new connection asks the sentinels for the current
/// master first, so replacing broken connections is also what follows a
/// failover.
struct Manager {
    dial: Dial,
    resp2_only: AtomicBool,
    config: AsyncConnectionConfig,
    /// Raised when a connection meets `READONLY`: every connection opened
    /// before is to the demoted server, so all of them are replaced at once.
    epoch: Arc<AtomicU64>,
}

impl Manager {
    fn new(dial: Dial, config: AsyncConnectionConfig, epoch: Arc<AtomicU64>) -> Self {
        Self {
            dial,
            resp2_only: AtomicBool::new(false),
            config,
            epoch,
        }
    }

    /// A multiplexed connection to `info`: RESP3 (so the driver reports its
    /// own death at once) unless the server only speaks RESP2.
    /// `epoch` is the manager's epoch read before `info` was chosen.
    async fn open(&self, info: ConnectionInfo, epoch: u64) -> Result<PoolConn, RedisError> {
        let broken = Arc::new(AtomicBool::new(false));
        let settings = info.redis_settings().clone();
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
            let resp3 = Client::open(
                info.clone()
                    .set_redis_settings(settings.clone().set_protocol(ProtocolVersion::RESP3)),
            )?;
            match resp3
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(conn) => {
                    return Ok(PoolConn {
                        conn,
                        broken,
                        epoch,
                    })
                }
                Err(err) if err.kind() == ErrorKind::RESP3NotSupported => {
                    self.resp2_only.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        let resp2 =
            Client::open(info.set_redis_settings(settings.set_protocol(ProtocolVersion::RESP2)))?;
        let conn = resp2
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        Ok(PoolConn {
            conn,
            broken,
            epoch,
        })
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = PoolConn;
    type Error = RedisError;

    async fn connect(&self) -> Result<PoolConn, RedisError> {
        // Read before asking where to connect: if the sentinels name a new
        // master meanwhile, this connection is already stale.
        let epoch = self.epoch.load(Ordering::Relaxed);
        match &self.dial {
            Dial::Fixed(info) => self.open((**info).clone(), epoch).await,
            #[cfg(feature = "redis-sentinel")]
            Dial::Sentinel(lookup) => {
                let info = lookup.master().await?;
                let mut conn = self.open(info, epoch).await?;
                // A sentinel may still name a master that has just been
                // demoted: never keep a connection to a replica.
                ensure_master(&mut conn.conn).await?;
                Ok(conn)
            }
        }
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
        conn.broken.load(Ordering::Relaxed) || conn.epoch < self.epoch.load(Ordering::Relaxed)
    }
}

/// Finds the current master of a Sentinel-monitored group.
#[cfg(feature = "redis-sentinel")]
struct SentinelLookup {
    sentinels: Vec<ConnectionInfo>,
    master_name: String,
    /// Database, credentials of the master (the protocol is set per connection).
    settings: redis::RedisConnectionInfo,
    timeout: Duration,
    /// The sentinel that answered last: asked first next time.
    preferred: std::sync::atomic::AtomicUsize,
    /// The master's address as last named by a sentinel.
    current: std::sync::Mutex<Option<(String, u16)>>,
    /// The pool's epoch: raised when the sentinels name another master, so
    /// that every connection to the old one is replaced, even if the old
    /// master is still up and still a master (a `SENTINEL FAILOVER` leaves it
    /// so for several seconds, and writes sent to it then would be lost).
    pool_epoch: Arc<AtomicU64>,
    /// Counts master changes; the near-cache subscription follows them.
    changes: tokio::sync::watch::Sender<u64>,
}

#[cfg(feature = "redis-sentinel")]
impl SentinelLookup {
    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`, asking each sentinel in turn
    /// (the one that answered last first) until one knows the master.
    async fn master(&self) -> Result<ConnectionInfo, RedisError> {
        let count = self.sentinels.len();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..count {
            let index = (start + i) % count;
            match self.ask(&self.sentinels[index]).await {
                Ok(Some((host, port))) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    self.observe(&host, port);
                    return Ok(ConnectionAddr::Tcp(host, port)
                        .into_connection_info()?
                        .set_redis_settings(self.settings.clone()));
                }
                Ok(None) => {
                    last_error = Some(RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "the sentinel does not monitor this master name",
                        self.master_name.clone(),
                    )))
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no sentinel addresses"))
        }))
    }

    /// Note the master's address; on a change, retire the pool's connections
    /// and tell the near-cache subscription.
    fn observe(&self, host: &str, port: u16) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match current.as_ref() {
            Some((h, p)) => (h.as_str(), *p) != (host, port),
            None => false,
        };
        if changed || current.is_none() {
            *current = Some((host.to_owned(), port));
        }
        drop(current);
        if changed {
            tracing::warn!(
                target: "tower_jwt_auth::redis",
                master = %format!("{host}:{port}"),
                "the sentinels name a new master: moving every connection to it"
            );
            self.pool_epoch.fetch_add(1, Ordering::Relaxed);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    async fn ask(&self, sentinel: &ConnectionInfo) -> Result<Option<(String, u16)>, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = Client::open(sentinel.clone())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await
    }
}

/// `ROLE` must say `master`.
#[cfg(feature = "redis-sentinel")]
async fn ensure_master(conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
    let role: Value = redis::cmd("ROLE").query_async(conn).await?;
    let first = value_array(role.clone()).and_then(|items| items.into_iter().next());
    match first.and_then(value_text).as_deref() {
        Some("master") => Ok(()),
        _ => Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "the server the sentinels named is not a master (yet)",
            format!("{role:?}"),
        ))),
    }
}

/// Follow the sentinels' `+switch-master` announcements (subscribed on one
/// sentinel at a time, the next one when it is lost), so that the store moves
/// to a new master as soon as it is named, not only when the old one fails.
/// After each (re)subscription the master is looked up once, in case a
/// switch was announced while no subscription was alive. Ends with the store.
#[cfg(feature = "redis-sentinel")]
async fn watch_master(lookup: Weak<SentinelLookup>) {
    use futures_util::StreamExt;
    let mut next = 0;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = lookup.upgrade() else {
            return;
        };
        let sentinel = strong.sentinels[next % strong.sentinels.len()].clone();
        next += 1;
        let timeout = strong.timeout;
        drop(strong);
        let subscribe = async {
            let mut pubsub = Client::open(sentinel)?.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, RedisError>(pubsub)
        };
        if let Ok(Ok(mut pubsub)) = tokio::time::timeout(timeout, subscribe).await {
            backoff = Duration::from_millis(50);
            let Some(strong) = lookup.upgrade() else {
                return;
            };
            let _ = strong.master().await;
            drop(strong);
            let mut stream = pubsub.on_message();
            loop {
                match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                    Ok(Some(msg)) => {
                        let Some(strong) = lookup.upgrade() else {
                            return;
                        };
                        // `<name> <old ip> <old port> <new ip> <new port>`
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        let parts: Vec<&str> = payload.split_whitespace().collect();
                        if let [name, _, _, host, port] = parts[..] {
                            if name == strong.master_name {
                                if let Ok(port) = port.parse() {
                                    strong.observe(host, port);
                                }
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_idle) if lookup.strong_count() == 0 => return,
                    Err(_idle) => {}
                }
            }
            continue;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
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

/// How the store reaches Redis.
enum Backend {
    /// Our own pool (one server, or Sentinel's master), and its manager's epoch.
    Own(bb8::Pool<Manager>, Arc<AtomicU64>),
    /// A pool handed in by the user.
    External(bb8::Pool<bb8_redis::RedisConnectionManager>),
    /// A Redis Cluster: one multiplexed connection per node, routed by key
    /// slot; MOVED/ASK, retries and topology refreshes are the client's.
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Backend {
    /// Connections open and idle, for `Debug` (a cluster shows none: its
    /// client keeps one per node out of sight).
    fn state(&self) -> (u32, u32) {
        let state = match self {
            Self::Own(pool, _) => pool.state(),
            Self::External(pool) => pool.state(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(_) => return (0, 0),
        };
        (state.connections, state.idle_connections)
    }

    fn max_size(&self) -> u32 {
        match self {
            Self::Own(pool, _) => pool.config().max_size,
            Self::External(pool) => pool.config().max_size,
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(_) => 1,
        }
    }
}

/// A connection borrowed for one command: a clone of a pooled multiplexed
/// connection (the pool slot is released at once, so concurrent commands
/// pipeline on the same connection), or of the cluster connection.
struct Lease {
    conn: LeasedConn,
    /// Our own pool's connection: how to report it unusable.
    health: Option<Health>,
}

struct Health {
    broken: Arc<AtomicBool>,
    /// The manager's epoch, and the connection's.
    epoch: Arc<AtomicU64>,
    opened: u64,
}

enum LeasedConn {
    Single(MultiplexedConnection),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Lease {
    async fn query(&mut self, cmd: &Cmd) -> Result<Value, RedisError> {
        match &mut self.conn {
            LeasedConn::Single(conn) => cmd.query_async(conn).await,
            #[cfg(feature = "redis-cluster")]
            LeasedConn::Cluster(conn) => cmd.query_async(conn).await,
        }
    }

    /// `EVALSHA`; on `NOSCRIPT` (a flushed cache, a restarted or new node, a
    /// promoted replica):
    ///
    /// - one server: `SCRIPT LOAD` then `EVALSHA` again on the same
    ///   connection (what redis-rs's `ScriptInvocation` does);
    /// - a cluster: `EVAL` with the body, routed by the first key like the
    ///   `EVALSHA` was. redis-rs would send `SCRIPT LOAD` to *all* nodes and
    ///   fail unless all succeed, so one unreachable node (exactly the case
    ///   during a failover) would fail every script on every healthy shard;
    ///   `EVAL` needs only the key's node and also caches the script there.
    async fn eval(&mut self, invocation: &Invocation<'_>) -> Result<Value, RedisError> {
        let evalsha = invocation.cmd(false);
        match self.query(&evalsha).await {
            Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                match &mut self.conn {
                    LeasedConn::Single(conn) => {
                        redis::cmd("SCRIPT")
                            .arg("LOAD")
                            .arg(&invocation.lua.code)
                            .query_async::<()>(conn)
                            .await?;
                        evalsha.query_async(conn).await
                    }
                    #[cfg(feature = "redis-cluster")]
                    LeasedConn::Cluster(conn) => invocation.cmd(true).query_async(conn).await,
                }
            }
            other => other,
        }
    }

    fn settle<T>(&self, result: Result<T, RedisError>) -> Result<T, StoreError> {
        result.map_err(|err| {
            if let Some(health) = &self.health {
                if is_read_only(&err) {
                    // Every connection opened so far goes to the demoted server.
                    health.epoch.fetch_max(health.opened + 1, Ordering::Relaxed);
                }
                if is_connection_error(&err) {
                    health.broken.store(true, Ordering::Relaxed);
                }
            }
            map_redis_error(err)
        })
    }

    /// Whether `result` failed with `READONLY` on a connection of our own
    /// pool: then nothing was written, and after [`settle`](Self::settle) a
    /// new lease reaches the new master, so trying once more is safe.
    fn worth_retrying<T>(&self, result: &Result<T, RedisError>) -> bool {
        self.health.is_some() && result.as_ref().is_err_and(is_read_only)
    }
}

/// Whether the connection the error came from should be replaced.
///
/// `READONLY` counts: the server was demoted to a replica (a Sentinel
/// failover); a new connection asks the sentinels for the new master.
fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_unrecoverable_error()
        || is_read_only(err)
}

fn is_read_only(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
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
/// # Deployments
///
/// The same store, and so the same application code, runs against:
///
/// - one Redis ([`connect`](Self::connect), [`builder`](Self::builder)): a
///   pool of a few multiplexed connections (commands pipeline on them); a
///   connection that dies (Redis restart) is replaced by itself;
/// - a Redis Cluster ([`cluster`](Self::cluster), feature `redis-cluster`):
///   each script goes to the node that serves its subject's slot; MOVED/ASK
///   redirections, retries and topology refreshes after a failover are the
///   cluster client's;
/// - a Sentinel group ([`sentinel`](Self::sentinel), feature
///   `redis-sentinel`): every new connection asks the sentinels for the
///   current master, and a connection to a master that died or was demoted
///   (`READONLY`) is replaced, so the store follows a failover by itself.
///
/// Cloning is cheap and clones share the connections.
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
    backend: Backend,
    prefix: String,
    channel: String,
    mode: Mode,
    /// The servers named in the configuration (for `Debug` and the startup
    /// checks); empty for a pool handed in by the user.
    targets: Vec<Target>,
    connection_timeout: Duration,
    near: Option<Arc<NearCache>>,
}

/// How the store was configured, for `Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    ExternalPool,
    #[cfg(feature = "redis-cluster")]
    Cluster,
    #[cfg(feature = "redis-sentinel")]
    Sentinel,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connections, idle) = self.inner.backend.state();
        f.debug_struct("RedisStore")
            .field("mode", &self.inner.mode)
            .field("targets", &self.inner.targets)
            .field("prefix", &self.inner.prefix)
            .field("connections", &connections)
            .field("idle_connections", &idle)
            .finish()
    }
}

/// What a [`RedisStoreBuilder`] connects to.
#[derive(Clone)]
enum Endpoint {
    Url(String),
    #[cfg(feature = "redis-cluster")]
    Cluster(Vec<String>),
    #[cfg(feature = "redis-sentinel")]
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// Builder for [`RedisStore`], from [`RedisStore::builder`],
/// [`RedisStoreBuilder::cluster`] or [`RedisStoreBuilder::sentinel`].
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisStoreBuilder {
    endpoint: Endpoint,
    pool_size: u32,
    connection_timeout: Duration,
    response_timeout: Duration,
    prefix: String,
    startup_checks: bool,
    near_cache: Option<NearCacheConfig>,
    #[cfg(feature = "redis-sentinel")]
    master: redis::RedisConnectionInfo,
}

/// Targets for `Debug`, without passwords; unparsable URLs are left out.
fn targets_of<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<Target> {
    urls.into_iter()
        .filter_map(|url| url.into_connection_info().ok())
        .map(|info| Target::from_info(&info))
        .collect()
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RedisStoreBuilder");
        match &self.endpoint {
            Endpoint::Url(url) => out.field("target", &targets_of([url.as_str()]).pop()),
            #[cfg(feature = "redis-cluster")]
            Endpoint::Cluster(nodes) => out.field(
                "cluster_nodes",
                &targets_of(nodes.iter().map(String::as_str)),
            ),
            #[cfg(feature = "redis-sentinel")]
            Endpoint::Sentinel {
                sentinels,
                master_name,
            } => {
                let urls: Vec<String> = sentinels.iter().map(|s| sentinel_url(s)).collect();
                out.field("sentinels", &targets_of(urls.iter().map(String::as_str)))
                    .field("master_name", master_name)
            }
        };
        out.field("pool_size", &self.pool_size)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("prefix", &self.prefix)
            .field("startup_checks", &self.startup_checks)
            .field("near_cache", &self.near_cache)
            .finish()
    }
}

impl RedisStoreBuilder {
    fn with_endpoint(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            pool_size: DEFAULT_POOL_SIZE,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            prefix: DEFAULT_PREFIX.to_owned(),
            startup_checks: true,
            near_cache: None,
            #[cfg(feature = "redis-sentinel")]
            master: redis::RedisConnectionInfo::default(),
        }
    }

    /// A builder for one Redis server (same as [`RedisStore::builder`]).
    pub fn new(url: &str) -> Self {
        Self::with_endpoint(Endpoint::Url(url.to_owned()))
    }

    /// A builder for a Redis Cluster, from the `redis://` (or `rediss://`)
    /// URLs of some of its nodes (any role; the client discovers the rest).
    /// All URLs must carry the same credentials.
    ///
    /// The near-cache subscribes to the events channel on one of these nodes
    /// (a plain `PUBLISH` reaches every node of a cluster) and moves to the
    /// next one when the subscription is lost, so list several. A node that
    /// is up but cut off from the other nodes delivers no events while its
    /// connection looks healthy: then a cached verdict can outlive a
    /// revocation by up to the near-cache's maximum age.
    ///
    /// Every key of one subject shares a hash tag, so each check and each
    /// session operation stays one script on one node. The client follows
    /// MOVED/ASK, refreshes the topology after a failover and retries a
    /// failed attempt a few times (short backoff, all within
    /// [`response_timeout`](Self::response_timeout)).
    /// [`pool_size`](Self::pool_size) does not apply: the client keeps one
    /// multiplexed connection per node.
    #[cfg(feature = "redis-cluster")]
    pub fn cluster(nodes: &[&str]) -> Self {
        Self::with_endpoint(Endpoint::Cluster(
            nodes.iter().map(|n| (*n).to_owned()).collect(),
        ))
    }

    /// A builder for a master watched by Redis Sentinel: the sentinels'
    /// addresses (`host:port`, or `redis://[:password@]host:port` when the
    /// sentinels require a password) and the monitored master's name.
    ///
    /// Every new connection asks the sentinels (`SENTINEL
    /// GET-MASTER-ADDR-BY-NAME`) for the current master and checks its
    /// `ROLE`; a connection that breaks or meets `READONLY` (its server was
    /// demoted) is replaced, so after a failover the store finds the new
    /// master by itself. The master's credentials and database are set with
    /// [`master_auth`](Self::master_auth) and [`master_db`](Self::master_db).
    #[cfg(feature = "redis-sentinel")]
    pub fn sentinel(sentinels: &[&str], master_name: &str) -> Self {
        Self::with_endpoint(Endpoint::Sentinel {
            sentinels: sentinels.iter().map(|s| (*s).to_owned()).collect(),
            master_name: master_name.to_owned(),
        })
    }

    /// Sentinel only: the credentials of the master (and replicas), for
    /// `AUTH [username] password`.
    #[cfg(feature = "redis-sentinel")]
    pub fn master_auth(mut self, username: Option<&str>, password: &str) -> Self {
        let mut settings = self.master.set_password(password);
        if let Some(username) = username {
            settings = settings.set_username(username);
        }
        self.master = settings;
        self
    }

    /// Sentinel only: the database number on the master (default 0).
    #[cfg(feature = "redis-sentinel")]
    pub fn master_db(mut self, db: i64) -> Self {
        self.master = self.master.set_db(db);
        self
    }

    /// Number of multiplexed connections kept open (default 1; at least 1).
    /// Each one pipelines any number of concurrent commands, so one is
    /// usually best: concurrent checks share its writes and reads (one
    /// syscall for many commands, on both sides). The load test measured 4
    /// connections 20–25% slower than 1 at 64 concurrent requests
    /// (`BENCHMARKS.md`). More help only when one connection's socket is the
    /// bottleneck, e.g. TLS on a fast link. Not used with a cluster (one
    /// connection per node).
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

    /// How long one command may wait for its reply (default 1 s); on a
    /// cluster, the whole command including its retries and redirections.
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

    /// Connect (a wrong URL, a wrong password or an unreachable server fails
    /// here): open the pool's connections, or the cluster connection.
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        validate_prefix(&self.prefix)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let (backend, mode, targets, events) = match &self.endpoint {
            Endpoint::Url(url) => {
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(StoreError::unavailable)?;
                let target = Target::from_info(&info);
                if target.tls {
                    ensure_crypto_provider()?;
                }
                let pool = self
                    .own_pool(
                        Dial::Fixed(Box::new(info.clone())),
                        config,
                        Arc::new(AtomicU64::new(0)),
                    )
                    .await?;
                let events = EventSource::Nodes {
                    nodes: vec![info],
                    next: 0,
                };
                (pool, Mode::Single, vec![target], events)
            }
            #[cfg(feature = "redis-cluster")]
            Endpoint::Cluster(nodes) => {
                let infos = nodes
                    .iter()
                    .map(|url| url.as_str().into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::unavailable)?;
                if infos.is_empty() {
                    return Err(StoreError::unavailable(InvalidConfig(
                        "a cluster needs at least one node URL".to_owned(),
                    )));
                }
                let targets: Vec<Target> = infos.iter().map(Target::from_info).collect();
                if targets.iter().any(|t| t.tls) {
                    ensure_crypto_provider()?;
                }
                let conn = self.cluster_connection(infos.clone()).await?;
                let events = EventSource::Nodes {
                    nodes: infos,
                    next: 0,
                };
                (Backend::Cluster(conn), Mode::Cluster, targets, events)
            }
            #[cfg(feature = "redis-sentinel")]
            Endpoint::Sentinel {
                sentinels,
                master_name,
            } => {
                let infos = sentinels
                    .iter()
                    .map(|s| sentinel_url(s).into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::unavailable)?;
                if infos.is_empty() {
                    return Err(StoreError::unavailable(InvalidConfig(
                        "Sentinel needs at least one sentinel address".to_owned(),
                    )));
                }
                // The master's host is not known before connecting: judge by
                // the sentinels' hosts, with the master's password.
                let targets = infos
                    .iter()
                    .map(|info| Target {
                        has_password: self.master.password().is_some(),
                        ..Target::from_info(info)
                    })
                    .collect();
                let epoch = Arc::new(AtomicU64::new(0));
                let lookup = Arc::new(SentinelLookup {
                    sentinels: infos,
                    master_name: master_name.clone(),
                    settings: self.master.clone(),
                    timeout: self.connection_timeout,
                    preferred: std::sync::atomic::AtomicUsize::new(0),
                    current: std::sync::Mutex::new(None),
                    pool_epoch: Arc::clone(&epoch),
                    changes: tokio::sync::watch::Sender::new(0),
                });
                let pool = self
                    .own_pool(Dial::Sentinel(Arc::clone(&lookup)), config, epoch)
                    .await?;
                tokio::spawn(watch_master(Arc::downgrade(&lookup)));
                (pool, Mode::Sentinel, targets, EventSource::Sentinel(lookup))
            }
        };
        let mut store =
            RedisStore::new(backend, self.prefix, mode, targets, self.connection_timeout);
        if let Some(config) = self.near_cache {
            let cache = Arc::new(NearCache::new(config));
            let inner = Arc::get_mut(&mut store.inner).expect("store not shared yet");
            inner.near = Some(Arc::clone(&cache));
            tokio::spawn(run_subscriber(
                events,
                inner.channel.clone(),
                Arc::downgrade(&cache),
                self.connection_timeout,
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

    async fn own_pool(
        &self,
        dial: Dial,
        config: AsyncConnectionConfig,
        epoch: Arc<AtomicU64>,
    ) -> Result<Backend, StoreError> {
        let pool = bb8::Pool::builder()
            .max_size(self.pool_size)
            .min_idle(Some(self.pool_size))
            .test_on_check_out(false)
            .connection_timeout(self.connection_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .error_sink(Box::new(LogSink))
            .build(Manager::new(dial, config, Arc::clone(&epoch)))
            .await
            .map_err(map_redis_error)?;
        Ok(Backend::Own(pool, epoch))
    }

    /// The cluster client: per-node connect and per-attempt timeouts from the
    /// builder; a few quick retries (10 ms, then up to 20, 40, ... 400 ms
    /// apart, jittered) instead of redis-rs's default 16 retries of at least
    /// 1.28 s each, all bounded by the response timeout.
    #[cfg(feature = "redis-cluster")]
    async fn cluster_connection(
        &self,
        nodes: Vec<ConnectionInfo>,
    ) -> Result<redis::cluster_async::ClusterConnection, StoreError> {
        redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.response_timeout)
            .overall_response_timeout(Some(self.response_timeout))
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(10)
            .max_retry_wait(400)
            .retry_wait_formula(10, 2)
            .build()
            .map_err(StoreError::unavailable)?
            .get_async_connection()
            .await
            .map_err(map_redis_error)
    }
}

/// Retries of one cluster command (MOVED/ASK, TRYAGAIN, CLUSTERDOWN, lost
/// connections), within the response timeout.
#[cfg(feature = "redis-cluster")]
const CLUSTER_RETRIES: u32 = 8;

/// `host:port` → `redis://host:port`; URLs pass unchanged.
#[cfg(feature = "redis-sentinel")]
fn sentinel_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("redis://{address}")
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
        RedisStoreBuilder::new(url)
    }

    /// Connect to a Redis Cluster with the defaults, from the URLs of some of
    /// its nodes; see [`RedisStoreBuilder::cluster`].
    #[cfg(feature = "redis-cluster")]
    pub async fn cluster(nodes: &[&str]) -> Result<Self, StoreError> {
        RedisStoreBuilder::cluster(nodes).build().await
    }

    /// Connect to the master `master_name` watched by these sentinels
    /// (`host:port`) with the defaults; see [`RedisStoreBuilder::sentinel`].
    #[cfg(feature = "redis-sentinel")]
    pub async fn sentinel(sentinels: &[&str], master_name: &str) -> Result<Self, StoreError> {
        RedisStoreBuilder::sentinel(sentinels, master_name)
            .build()
            .await
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
            Backend::External(pool),
            DEFAULT_PREFIX.to_owned(),
            Mode::ExternalPool,
            Vec::new(),
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
            Backend::External(pool),
            prefix.to_owned(),
            Mode::ExternalPool,
            Vec::new(),
            timeout,
        ))
    }

    fn new(
        backend: Backend,
        prefix: String,
        mode: Mode,
        targets: Vec<Target>,
        timeout: Duration,
    ) -> Self {
        let channel = format!("{prefix}:events");
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix,
                channel,
                mode,
                targets,
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
    /// `tracing::warn!`. [`RedisStoreBuilder::build`] runs it by default.
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

    fn key(&self, subject: &str, kind: KeyKind<'_>) -> String {
        subject_key(&self.inner.prefix, subject, kind)
    }

    fn base(&self, subject: &str) -> String {
        subject_base(&self.inner.prefix, subject)
    }

    async fn lease(&self) -> Result<Lease, StoreError> {
        let timeout = self.inner.connection_timeout;
        match &self.inner.backend {
            Backend::Own(pool, epoch) => {
                // A connection flagged broken (or stale) is dropped (bb8 then
                // discards it and opens a new one); the bound only guards
                // against a loop.
                for _ in 0..=self.inner.backend.max_size() {
                    let pooled = pool.get().await.map_err(|e| map_run_error(e, timeout))?;
                    if pooled.broken.load(Ordering::Relaxed)
                        || pooled.epoch < epoch.load(Ordering::Relaxed)
                    {
                        continue;
                    }
                    return Ok(Lease {
                        conn: LeasedConn::Single(pooled.conn.clone()),
                        health: Some(Health {
                            broken: Arc::clone(&pooled.broken),
                            epoch: Arc::clone(epoch),
                            opened: pooled.epoch,
                        }),
                    });
                }
                Err(StoreError::unavailable(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no healthy Redis connection",
                )))
            }
            Backend::External(pool) => {
                let pooled = pool.get().await.map_err(|e| map_run_error(e, timeout))?;
                Ok(Lease {
                    conn: LeasedConn::Single((*pooled).clone()),
                    health: None,
                })
            }
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(conn) => Ok(Lease {
                conn: LeasedConn::Cluster(conn.clone()),
                health: None,
            }),
        }
    }

    async fn eval(&self, invocation: Invocation<'_>) -> Result<Value, StoreError> {
        let mut lease = self.lease().await?;
        let mut result = lease.eval(&invocation).await;
        if lease.worth_retrying(&result) {
            let _ = lease.settle(result);
            lease = self.lease().await?;
            result = lease.eval(&invocation).await;
        }
        lease.settle(result)
    }

    async fn query(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        let mut lease = self.lease().await?;
        let mut result = lease.query(cmd).await;
        if lease.worth_retrying(&result) {
            let _ = lease.settle(result);
            lease = self.lease().await?;
            result = lease.query(cmd).await;
        }
        lease.settle(result)
    }

    async fn check_now(self, req: CheckRequest) -> Result<Verdict, StoreError> {
        let ticket = self
            .inner
            .near
            .as_ref()
            .and_then(|c| c.ticket(&req.subject));
        // Every key of one check shares the subject's base: encode it once.
        let base = self.base(&req.subject);
        let mut inv = CHECK_SCRIPT.prepare_invoke();
        inv.key(key_in(&base, KeyKind::Ban))
            .key(key_in(&base, KeyKind::Deny(&req.token_id)))
            .key(key_in(&base, KeyKind::NotBefore))
            .arg(req.issued_at.map(|iat| iat.to_string()).unwrap_or_default())
            .arg(millis(req.touch_interval));
        if let Some(sid) = &req.session_id {
            inv.key(key_in(&base, KeyKind::Sessions))
                .key(key_in(&base, KeyKind::Session(sid)))
                .key(key_in(&base, KeyKind::Ended(sid)))
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

/// Where the near-cache subscribes to the events channel.
enum EventSource {
    /// Fixed servers, tried in turn: the one server, or the cluster nodes
    /// given (a plain `PUBLISH` on any cluster node reaches every node, so
    /// any one of them will do; the next one is used when it is lost).
    Nodes {
        nodes: Vec<ConnectionInfo>,
        next: usize,
    },
    /// The current master, asked of the sentinels at each (re)connect.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Arc<SentinelLookup>),
}

impl EventSource {
    /// Announces that the subscription should move (Sentinel: a new master).
    fn moves(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            Self::Nodes { .. } => None,
            #[cfg(feature = "redis-sentinel")]
            Self::Sentinel(lookup) => Some(lookup.changes.subscribe()),
        }
    }

    /// The server to subscribe on now (a different one after each call when
    /// there are several).
    async fn next(&mut self) -> Result<Client, RedisError> {
        match self {
            Self::Nodes { nodes, next } => {
                let info = nodes[*next % nodes.len()].clone();
                *next = (*next + 1) % nodes.len();
                Client::open(info)
            }
            #[cfg(feature = "redis-sentinel")]
            Self::Sentinel(lookup) => Client::open(lookup.master().await?),
        }
    }
}

/// What the subscription loop waits for.
enum Next {
    Message(Option<redis::Msg>),
    Idle,
    Moved,
    Closed,
}

/// Keep a pub/sub subscription to the events channel; feed the near-cache.
/// The cache is in use only while the subscription is alive; it ends when
/// the store (and so the cache) is dropped.
async fn run_subscriber(
    mut source: EventSource,
    channel: String,
    cache: Weak<NearCache>,
    connect_timeout: Duration,
) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(50);
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        // Taken before the lookup, so that a move during it is not missed.
        let mut moves = source.moves();
        let connect = async {
            let client = source.next().await?;
            let addr = Target::from_info(client.get_connection_info()).addr;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>((pubsub, addr))
        };
        match tokio::time::timeout(connect_timeout, connect).await {
            Ok(Ok((mut pubsub, addr))) => {
                let Some(c) = cache.upgrade() else { return };
                c.set_alive(true);
                drop(c);
                tracing::debug!(channel = %channel, server = %addr, "near-cache subscription alive");
                backoff = Duration::from_millis(50);
                let mut stream = pubsub.on_message();
                loop {
                    let message = tokio::time::timeout(Duration::from_secs(1), stream.next());
                    let next = match moves.as_mut() {
                        None => match message.await {
                            Ok(message) => Next::Message(message),
                            Err(_) => Next::Idle,
                        },
                        Some(watch) => {
                            use futures_util::future::{select, Either};
                            let moved = std::pin::pin!(watch.changed());
                            match select(std::pin::pin!(message), moved).await {
                                Either::Left((Ok(message), _)) => Next::Message(message),
                                Either::Left((Err(_), _)) => Next::Idle,
                                Either::Right((Ok(()), _)) => Next::Moved,
                                Either::Right((Err(_), _)) => Next::Closed,
                            }
                        }
                    };
                    match next {
                        Next::Message(Some(msg)) => {
                            let Some(c) = cache.upgrade() else { return };
                            match msg.get_payload_bytes().splitn(2, |&b| b == b'\n').nth(1) {
                                Some(subject) => c.invalidate(&String::from_utf8_lossy(subject)),
                                // Not ours to parse: be safe.
                                None => c.clear(),
                            }
                        }
                        Next::Message(None) => break,
                        // The publisher moved (a new master): follow it.
                        Next::Moved => break,
                        // No more moves to watch (cannot happen: the sender
                        // lives as long as `source`).
                        Next::Closed => moves = None,
                        Next::Idle if cache.strong_count() == 0 => return,
                        Next::Idle => {}
                    }
                }
                if let Some(c) = cache.upgrade() {
                    c.set_alive(false);
                }
                tracing::warn!(channel = %channel, server = %addr, "near-cache subscription lost: cache bypassed until it is back");
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "near-cache subscription failed")
            }
            Err(_elapsed) => tracing::debug!("near-cache subscription timed out"),
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
            let base = self.base(subject);
            let mut inv = REVOKE_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::NotBefore))
                .key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
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
            let base = self.base(subject);
            let mut inv = BAN_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::Ban))
                .key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
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
            let base = self.base(subject);
            let mut inv = CREATE_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::Ban))
                .key(key_in(&base, KeyKind::Sessions))
                .key(key_in(&base, KeyKind::Session(&new.session_id)))
                .key(key_in(&base, KeyKind::Ended(&new.session_id)))
                .arg(&base)
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
            let base = self.base(subject);
            let mut inv = END_ONE_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
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
            let base = self.base(subject);
            let mut inv = END_ALL_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::Sessions))
                .arg(&base)
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
            let base = self.base(subject);
            let mut inv = LIST_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::Sessions)).arg(&base);
            parse_list(self.eval(inv).await?)
        })
    }

    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome> {
        Box::pin(async move {
            let subject = &rotation.subject;
            let sid = &rotation.session_id;
            let base = self.base(subject);
            let mut inv = ROTATE_SCRIPT.prepare_invoke();
            inv.key(key_in(&base, KeyKind::Sessions))
                .key(key_in(&base, KeyKind::Session(sid)))
                .key(key_in(&base, KeyKind::Ended(sid)))
                .arg(&base)
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

    #[cfg(feature = "redis-cluster")]
    #[test]
    fn debug_of_a_cluster_builder_never_shows_passwords() {
        let builder = RedisStoreBuilder::cluster(&[
            "redis://:hunter2@10.1.2.3:7000",
            "redis://:hunter2@10.1.2.4:7000",
        ]);
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("10.1.2.4:7000"), "{shown}");
    }

    #[cfg(feature = "redis-sentinel")]
    #[test]
    fn sentinel_addresses_may_be_bare_or_urls() {
        assert_eq!(sentinel_url("10.0.0.1:26379"), "redis://10.0.0.1:26379");
        assert_eq!(
            sentinel_url("redis://:pw@10.0.0.1:26379"),
            "redis://:pw@10.0.0.1:26379"
        );
        let builder = RedisStoreBuilder::sentinel(&["10.0.0.1:26379"], "mymaster")
            .master_auth(Some("app"), "hunter2");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("10.0.0.1:26379") && shown.contains("mymaster"),
            "{shown}"
        );
    }

    #[test]
    fn scripts_fall_back_to_their_body() {
        let mut inv = UNBAN_SCRIPT.prepare_invoke();
        inv.key("k").arg("a").arg(7);
        let args = |cmd: Cmd| -> Vec<Vec<u8>> {
            cmd.args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                })
                .collect()
        };
        let evalsha = args(inv.cmd(false));
        assert_eq!(evalsha[0], b"EVALSHA");
        assert_eq!(evalsha[1], UNBAN_SCRIPT.hash.as_bytes());
        assert_eq!(
            evalsha[2..],
            [b"1".to_vec(), b"k".to_vec(), b"a".to_vec(), b"7".to_vec()]
        );
        let eval = args(inv.cmd(true));
        assert_eq!(eval[0], b"EVAL");
        assert_eq!(eval[1], UNBAN_SCRIPT.code.as_bytes());
        assert_eq!(eval[2..], evalsha[2..]);
        assert_eq!(
            UNBAN_SCRIPT.hash,
            Script::new(&UNBAN_SCRIPT.code).get_hash()
        );
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
