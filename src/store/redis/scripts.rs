//! The Lua scripts' text: every store write is one of them, run atomically
//! (how they are loaded and called: `lua.rs`).

/// Shared helpers, prepended to every script.
///
/// Session hash fields: `device`, `created`, `last` (ms), `abs` (absolute end
/// ms), `idle` (ms), `gen`, `rt`, and `p<g>` for each of the last
/// [`REFRESH_REUSE_WINDOW`](crate::store::REFRESH_REUSE_WINDOW) generations
/// `g` before `gen`: the first 32 hex characters of the hash that
/// generation was issued with (what proves a reuse, see [`ROTATE`]). The
/// subject's `sessions` ZSET maps the
/// encoded session id to its absolute end (ms), so a session whose hash has
/// expired can still tell `idle_timeout` from `session_expired`; its TTL
/// always covers its longest session's lifetime plus the marker time (see
/// [`CREATE`]). Beside the
/// hash, `fresh:<sid>` exists while the session is live and its touch is not
/// yet due: what the per-request `EXISTS` reads (see [`CHECK`], which alone
/// sets it). Every script that ends a session, or changes its deadline,
/// deletes it.
///
/// Ended sessions leave their markers in one ZSET per subject, `ended`:
/// member the encoded session id, score `end_ms * 16 + reason` (`end_ms`
/// when the marker lapses, `reason` the index of its code in
/// [`SessionEnd::ALL`](crate::store::SessionEnd::ALL); exact integers far below 2^53, durations being
/// capped at 100 years). It keeps at most
/// [`ENDED_MARKERS_PER_SUBJECT`](crate::store::ENDED_MARKERS_PER_SUBJECT)
/// members: lapsed ones go first, then those that lapse first. (The
/// `__NAME__` placeholders in the scripts are filled from the Rust
/// constants when they are loaded.) Its TTL is that of its
/// longest marker. A session with neither a live hash nor a marker is
/// `session_ended` all the same, so a dropped marker only loses the reason.
pub(super) const PRELUDE: &str = r#"
local function num(n) return string.format('%.0f', n) end
local REASONS = __REASONS__
local function mark_ended(ekey, member, why, markers, now)
  if markers <= 0 then
    redis.call('ZREM', ekey, member)
    return
  end
  local code = #REASONS - 1
  for i, r in ipairs(REASONS) do
    if r == why then code = i - 1 end
  end
  redis.call('ZREMRANGEBYSCORE', ekey, '-inf', num(now * 16 + 15))
  redis.call('ZADD', ekey, num((now + markers) * 16 + code), member)
  local n = redis.call('ZCARD', ekey)
  if n > __MAX_ENDED__ then redis.call('ZREMRANGEBYRANK', ekey, 0, n - __MAX_ENDED__ - 1) end
  if redis.call('PTTL', ekey) < markers then redis.call('PEXPIRE', ekey, num(markers)) end
end
local function ended_reason(ekey, member, now)
  local e = redis.call('ZSCORE', ekey, member)
  if e then
    e = tonumber(e)
    local code = e % 16
    if (e - code) / 16 > now then return REASONS[code + 1] or 'session_ended' end
  end
  return 'session_ended'
end
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
    redis.call('DEL', skey, base .. 'fresh:' .. member)
  else
    reason = gone_reason(zkey, member, now)
    if not reason then return false, false end
  end
  redis.call('ZREM', zkey, member)
  mark_ended(base .. 'ended', member, reason, markers, now)
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

/// KEYS: ban, deny, nbf, [sessions, session, ended, fresh]; ARGV: iat ('' if
/// none), touch interval ms, encoded session id, marker ttl ms (a lapsed
/// session leaves a marker, like an ended one; `ended` is the subject's
/// marker ZSET, see [`PRELUDE`]).
///
/// Reply: `{0}` valid, `{0, ms}` valid with the session's idle deadline `ms`
/// away, `{1, until_secs | -1}` banned, `{2}` token denied, `{3}` logged out
/// everywhere, `{4, "<SessionEnd code>"}` session ended.
///
/// The authoritative check, and the one that slides a session. A request
/// first asks Redis one plain command (see `RedisStore::run_check`): for a
/// token without a session, `MGET` of ban, deny and nbf, which decides; for
/// a session's token, `EXISTS fresh deny deny`, which decides only that the
/// token stands (the answer is 1). This script runs when that cannot
/// decide: the session's touch is due (`fresh` has expired), or the token
/// looks revoked (the script then tells the exact reason, in the order ban,
/// deny, nbf, session).
///
/// `nbf` is the "log out everywhere" mark in unix milliseconds (a value
/// below 1e11 is an older mark in seconds: its whole second counts). A
/// token whose `iat` second is at or before the mark's is revoked, except
/// a session's token whose live session was created at or after the mark
/// (in ms): every session live when the mark was set was ended then, so its
/// tokens were issued after the mark, even within the same second.
///
/// It sets `fresh` of a live session until its next touch is due, unless an
/// `nbf` at or after the session's creation is in force (tokens of that
/// session may then be revoked by it, which only this script checks).
/// A ban or a log-out-everywhere ends every session, so `fresh` needs no
/// other check of them. It stands alone (no [`PRELUDE`]: defining its
/// functions costs Redis more than the check itself); its session rules are
/// the prelude's `lapsed`, `gone_reason`, `ended_reason` and `mark_ended`,
/// spelled out. A session that is neither live, nor in the index, nor
/// marked is `session_ended`: never valid.
pub(super) const CHECK: &str = r#"
local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
if v[1] then return {1, tonumber(v[1]) or -1} end
if v[2] then return {2} end
local nbf = tonumber(v[3])
if nbf and nbf < 1e11 then nbf = nbf * 1000 + 999 end
local marked = nbf and (ARGV[1] == '' or tonumber(ARGV[1]) <= math.floor(nbf / 1000))
if #KEYS < 7 then
  if marked then return {3} end
  return {0}
end
local h = redis.call('HMGET', KEYS[5], 'last', 'abs', 'idle', 'created')
local created = tonumber(h[4]) or 0
if marked and (not h[1] or created < nbf) then return {3} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local why
if h[1] then
  local last, abs, idle = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  if now >= abs then
    why = 'session_expired'
  elseif now >= last + idle then
    why = 'idle_timeout'
  else
    local touch = tonumber(ARGV[2])
    if now - last >= touch then
      last = now
      redis.call('HSET', KEYS[5], 'last', string.format('%.0f', now))
      local ttl = math.max(1, math.min(idle, abs - now))
      redis.call('PEXPIRE', KEYS[5], string.format('%.0f', ttl))
    end
    local deadline = math.min(last + idle, abs)
    local fresh = math.min(last + touch, deadline) - now
    if fresh > 0 and (not nbf or nbf <= created) then
      redis.call('SET', KEYS[7], '1', 'PX', string.format('%.0f', fresh))
    end
    return {0, deadline - now}
  end
  redis.call('DEL', KEYS[5], KEYS[7])
else
  local score = redis.call('ZSCORE', KEYS[4], ARGV[3])
  if not score then
    local e = redis.call('ZSCORE', KEYS[6], ARGV[3])
    why = 'session_ended'
    if e then
      e = tonumber(e)
      local code = e % 16
      if (e - code) / 16 > now then why = (__REASONS__)[code + 1] or why end
    end
    return {4, why}
  end
  if now >= tonumber(score) then why = 'session_expired' else why = 'idle_timeout' end
end
redis.call('ZREM', KEYS[4], ARGV[3])
local markers = tonumber(ARGV[4])
local code = __IDLE_TIMEOUT__
if why == 'session_expired' then code = __SESSION_EXPIRED__ end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', string.format('%.0f', now * 16 + 15))
redis.call('ZADD', KEYS[6], string.format('%.0f', (now + markers) * 16 + code), ARGV[3])
local n = redis.call('ZCARD', KEYS[6])
if n > __MAX_ENDED__ then redis.call('ZREMRANGEBYRANK', KEYS[6], 0, n - __MAX_ENDED__ - 1) end
if redis.call('PTTL', KEYS[6]) < markers then redis.call('PEXPIRE', KEYS[6], ARGV[4]) end
return {4, why}
"#;

/// KEYS: deny; ARGV: ttl ms, channel, subject. Never shortens a longer entry.
pub(super) const DENY: &str = r#"
local ttl = tonumber(ARGV[1])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
publish(ARGV[2], 'deny', ARGV[3])
return 1
"#;

/// KEYS: an ended provider session (`psid`); ARGV: keep ms, channel. Never
/// shortens a longer mark. Publishes `psid` without a subject (a
/// back-channel logout by `sid` alone names none): every near-cache clears.
pub(super) const END_PROVIDER_SESSION: &str = r#"
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
redis.call('PUBLISH', ARGV[2], 'psid')
return 1
"#;

/// KEYS: nbf, sessions; ARGV: base, not_before ms, keep ms ('' = for ever),
/// markers ms, channel, subject. Reply: number of sessions ended. The mark
/// is kept in unix milliseconds; an older mark in seconds (below 1e11) is
/// read as the last millisecond of its second.
pub(super) const REVOKE: &str = r#"
local old = redis.call('GET', KEYS[1])
local mark = ARGV[2]
local px = nil
if old then
  local was = tonumber(old) or 0
  if was < 1e11 then was = was * 1000 + 999 end
  if was > tonumber(ARGV[2]) then mark = num(was) end
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
pub(super) const BAN: &str = r#"
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
pub(super) const UNBAN: &str = r#"
local n = redis.call('DEL', KEYS[1])
if n > 0 then publish(ARGV[1], 'unban', ARGV[2]) end
return n
"#;

/// KEYS: ban, sessions, new session, the subject's marker ZSET, the new
/// session's fresh key; ARGV: base, member, device, refresh hash, max sessions, 'evict' |
/// 'reject', replace same device '1' | '0', idle ms, lifetime ms, markers
/// ms, channel, subject.
///
/// Reply: `{1, ended members...}` created, `{2, until_secs | -1}` banned,
/// `{3}` limit reached.
///
/// The `sessions` index gets a TTL of at least the new session's lifetime
/// plus the marker time, whether it was just created (`PTTL` -1) or had a
/// shorter one: it never outlives its sessions by more, and never lives
/// less than them.
pub(super) const CREATE: &str = r#"
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
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[5])
local keep_index = math.max(1, lifetime + markers)
if redis.call('PTTL', zkey) < keep_index then redis.call('PEXPIRE', zkey, num(keep_index)) end
if #replaced > 0 then publish(ARGV[11], 'session', ARGV[12]) end
local reply = {1}
for _, m in ipairs(replaced) do table.insert(reply, m) end
return reply
"#;

/// KEYS: sessions; ARGV: base, member, reason code, markers ms, channel,
/// subject. Reply: 1 if the session was live.
pub(super) const END_ONE: &str = r#"
local live, touched = end_one(ARGV[1], KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), now_ms())
if touched then publish(ARGV[5], 'session', ARGV[6]) end
if live then return 1 end
return 0
"#;

/// KEYS: sessions; ARGV: base, reason code, markers ms, channel, subject.
/// Reply: how many live sessions ended.
pub(super) const END_ALL: &str = r#"
local n, touched = end_all(ARGV[1], KEYS[1], ARGV[2], tonumber(ARGV[3]), now_ms())
if touched then publish(ARGV[4], 'session', ARGV[5]) end
return n
"#;

/// KEYS: sessions; ARGV: base. Reply: flat list of live sessions, five
/// entries each: member, device, created ms, last ms, expires ms.
pub(super) const LIST: &str = r#"
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

/// KEYS: sessions, session, the subject's marker ZSET, fresh; ARGV: base,
/// member, generation, presented hash, new hash, idle ms, markers ms,
/// channel, subject.
///
/// Reply: `{1, generation}` rotated, `{2, "<SessionEnd code>"}` session gone
/// (a lapsed one leaves its marker), `{3}` reused (session ended), `{4}`
/// invalid.
///
/// An earlier generation ends the session only when it is one of the last
/// [`REFRESH_REUSE_WINDOW`](crate::store::REFRESH_REUSE_WINDOW) (16) and
/// the presented hash starts with the 32 hex characters
/// kept for it (`p<generation>`): knowing the subject and the session id
/// is not enough. A generation of more than 15 digits (beyond what a Lua
/// number holds exactly, and beyond any rotation count) is invalid.
pub(super) const ROTATE: &str = r#"
local now = now_ms()
local markers = tonumber(ARGV[7])
local h = redis.call('HMGET', KEYS[2], 'last', 'abs', 'idle', 'gen', 'rt')
if h[1] then
  local why = lapsed(h, now)
  if why then
    end_one(ARGV[1], KEYS[1], ARGV[2], why, markers, now)
    return {2, why}
  end
else
  local why = gone_reason(KEYS[1], ARGV[2], now)
  if why then
    redis.call('ZREM', KEYS[1], ARGV[2])
    mark_ended(KEYS[3], ARGV[2], why, markers, now)
    return {2, why}
  end
  return {2, ended_reason(KEYS[3], ARGV[2], now)}
end
if #ARGV[3] > 15 or not string.find(ARGV[3], '^%d+$') then return {4} end
local gen = tonumber(h[4])
local presented = tonumber(ARGV[3])
if presented < gen then
  if gen - presented > __WINDOW__ then return {4} end
  local kept = redis.call('HGET', KEYS[2], 'p' .. num(presented))
  if not kept or kept ~= string.sub(ARGV[4], 1, __KEPT_HEX__) then return {4} end
  end_one(ARGV[1], KEYS[1], ARGV[2], 'refresh_reuse', markers, now)
  publish(ARGV[8], 'session', ARGV[9])
  return {3}
end
if presented == gen and ARGV[4] == h[5] then
  local idle = tonumber(ARGV[6])
  redis.call('HSET', KEYS[2], 'gen', num(gen + 1), 'rt', ARGV[5], 'idle', num(idle), 'last', num(now),
    'p' .. num(gen), string.sub(h[5], 1, __KEPT_HEX__))
  if gen >= __WINDOW__ then redis.call('HDEL', KEYS[2], 'p' .. num(gen - __WINDOW__)) end
  redis.call('PEXPIRE', KEYS[2], num(math.max(1, math.min(idle, tonumber(h[2]) - now))))
  -- The idle timeout may have changed: the next check sets `fresh` anew.
  redis.call('DEL', KEYS[4])
  return {1, gen + 1}
end
return {4}
"#;
