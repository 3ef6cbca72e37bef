//! The check of one token: the plain command that decides nearly every
//! check (`EXISTS` or `MGET`) and its reply, the [`CHECK`] script where the
//! command cannot decide, and the near-cache's part in it.

use std::time::Duration;

use redis::{Cmd, Value};

use super::conn::{Due, Outgoing};
use super::keys::{encode_key_part, millis, provider_session_key, CheckKeys, Key, KeyKind};
use super::lua::{Invocation, CHECK_SCRIPT};
#[cfg(feature = "redis-cluster")]
use super::pool::Backend;
use super::reply::{ban_until, protocol, value_int, value_text};
#[cfg(doc)]
use super::scripts::CHECK;
use super::RedisStore;
use crate::store::hints::CheckHints;
use crate::store::near_cache::Ticket;
use crate::store::{CheckRequest, RevocationReason, SessionEnd, StoreError, StoreFuture, Verdict};

impl CheckHints for RedisStore {
    /// A check's command is bounded by the connection's own per-command
    /// timeout, set to what is left of the deadline: one timer instead of
    /// two. Not with a cluster, whose client keeps its own timeouts.
    fn bounds_check_time(&self) -> bool {
        match self.inner.backend {
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(_) => false,
            _ => true,
        }
    }

    fn check_cached(&self, subject: &str, token_id: &str) -> bool {
        self.inner
            .near
            .as_ref()
            .is_some_and(|c| c.lookup(subject, token_id))
    }

    fn has_near_cache(&self) -> bool {
        self.inner.near.is_some()
    }
}

impl RedisStore {
    /// [`RevocationStore::check`](crate::RevocationStore::check): the check
    /// prepared from the request, then a future that borrows nothing.
    pub(super) fn start_check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
        self.start_check_with(request, None)
    }

    /// [`start_check`](Self::start_check), and for a remote token with a
    /// `sid`, whether its provider session (issuer, sid) was ended: on one
    /// Redis the same `MGET` reads its key too (one round trip); on a
    /// cluster the client splits that `MGET` by slot, one more command to
    /// the node of the provider session's key, sent at the same time.
    pub(super) fn start_check_with(
        &self,
        request: &CheckRequest<'_>,
        provider_session: Option<(&str, &str)>,
    ) -> StoreFuture<'static, Verdict> {
        let due = self
            .bounds_check_time()
            .then(|| Due::after(request.deadline))
            .flatten();
        let provider = provider_session
            .map(|(issuer, sid)| provider_session_key(&self.inner.prefix, issuer, sid));
        Box::pin(
            self.clone()
                .run_check(self.prepare_check(request, provider), due),
        )
    }

    /// The check of one token, as far as it can be prepared before its
    /// future starts: its keys, and the plain command unless the script
    /// must run first (with the near-cache on, for a session's token: only
    /// the script returns the session's deadline).
    fn prepare_check(&self, req: &CheckRequest<'_>, provider: Option<String>) -> PreparedCheck {
        let args = CheckArgs {
            issued_at: req.issued_at,
            touch_ms: millis(req.touch_interval),
            marker_ms: millis(req.marker_ttl).max(1),
        };
        let sid = req.session_id.as_deref();
        let cache = self.inner.near.as_ref().and_then(|c| {
            Some(Box::new(CacheEntry {
                ticket: c.ticket(&req.subject)?,
                subject: req.subject.to_string(),
                token_id: req.token_id.to_string(),
                touch_interval: sid.map(|_| req.touch_interval),
            }))
        });
        let keys = CheckKeys::new(&self.inner.prefix, &req.subject, &req.token_id, sid);
        let plain = match sid {
            Some(_) if self.inner.near.is_some() => None,
            _ => Some(plain_command(&keys, provider.as_deref())),
        };
        PreparedCheck {
            keys,
            plain,
            args,
            cache,
            provider,
        }
    }

    /// One plain command decides nearly every check: `MGET` of ban, deny and
    /// nbf for a token without a session; `EXISTS fresh deny deny` for a
    /// session's token, which stands when the answer is exactly 1 (`fresh`
    /// there, deny not: a ban or a log-out-everywhere ends every session,
    /// and the [`CHECK`] script sets `fresh` only when no `nbf` can touch the
    /// session's tokens). The script runs when that cannot decide: the
    /// session's touch is due, or a session's token looks revoked (the
    /// script then tells the exact reason), and with the near-cache on,
    /// which needs the session's deadline that only the script returns.
    async fn run_check(
        self,
        check: PreparedCheck,
        due: Option<Due>,
    ) -> Result<Verdict, StoreError> {
        // Whether the provider session was ended, when the `MGET` read it.
        let mut provider_ended = None;
        let (verdict, session_ttl) = match &check.plain {
            Some(cmd) => {
                let reply = self.send(Outgoing::Command(cmd), due).await?;
                // Neither answer carries the session's deadline.
                let decided = match check.keys.session_id() {
                    Some(_) => (reply == Value::Int(1)).then_some(Verdict::Valid),
                    None if check.provider.is_some() => {
                        let (reply, ended) = split_provider(reply)?;
                        provider_ended = Some(ended);
                        parse_mget_check(reply, check.args.issued_at)?
                    }
                    None => parse_mget_check(reply, check.args.issued_at)?,
                };
                match decided {
                    Some(verdict) => (verdict, None),
                    None => {
                        // Rare (once per touch interval, or a revoked
                        // token): its own future keeps this one small
                        // (BENCHMARKS.md, fourth round, item 9: a check's
                        // future 1480 → 792 bytes, with the checkout's).
                        let script = check_script(&check.keys, &check.args);
                        let sent = Box::pin(self.send(Outgoing::Script(&script), due));
                        parse_check(sent.await?)?
                    }
                }
            }
            None => {
                let script = check_script(&check.keys, &check.args);
                parse_check(self.send(Outgoing::Script(&script), due).await?)?
            }
        };
        let verdict = match (verdict, &check.provider) {
            (Verdict::Valid, Some(key)) => {
                let ended = match provider_ended {
                    Some(ended) => ended,
                    // A session's token of a remote issuer (not one the
                    // layer asks about): its own command.
                    None => {
                        let mut cmd = redis::cmd("EXISTS");
                        cmd.arg(key);
                        self.send(Outgoing::Command(&cmd), due).await? == Value::Int(1)
                    }
                };
                match ended {
                    true => Verdict::Revoked(RevocationReason::SessionEnded(SessionEnd::LoggedOut)),
                    false => Verdict::Valid,
                }
            }
            (verdict, _) => verdict,
        };
        if let (Some(cache), Some(entry), Verdict::Valid) =
            (&self.inner.near, check.cache, &verdict)
        {
            // A session-bound verdict lives no longer than the session's idle
            // deadline and the touch interval (so the next real check slides it).
            let ttl = entry
                .touch_interval
                .map(|touch| Duration::from_millis(session_ttl.unwrap_or(0)).min(touch));
            cache.insert(entry.ticket, &entry.subject, &entry.token_id, ttl);
        }
        Ok(verdict)
    }
}

/// A check prepared by [`RedisStore::prepare_check`].
struct PreparedCheck {
    keys: CheckKeys,
    /// `EXISTS fresh deny deny` for a session's token, `MGET ban deny nbf`
    /// for another; `None`: the [`CHECK`] script goes first.
    plain: Option<Cmd>,
    args: CheckArgs,
    /// Where a valid verdict goes, with the near-cache on (boxed: the
    /// future of a check without it stays smaller).
    cache: Option<Box<CacheEntry>>,
    /// The key of the token's provider session (a remote issuer's `sid`).
    provider: Option<String>,
}

/// The [`CHECK`] script's arguments besides the keys.
struct CheckArgs {
    issued_at: Option<u64>,
    touch_ms: u64,
    marker_ms: u64,
}

/// A near-cache entry to make of a valid verdict.
struct CacheEntry {
    ticket: Ticket,
    subject: String,
    token_id: String,
    /// A session's token: its verdict lives no longer than this.
    touch_interval: Option<Duration>,
}

/// `EXISTS fresh deny deny` for a session's token (it stands when the
/// answer is exactly 1: the deny key counts twice), `MGET ban deny nbf`
/// for another, with the provider session's key last when there is one.
fn plain_command(keys: &CheckKeys, provider: Option<&str>) -> Cmd {
    let deny = KeyKind::Deny(keys.token_id());
    let (name, kinds) = match keys.session_id() {
        Some(sid) => ("EXISTS", [KeyKind::Fresh(sid), deny, deny]),
        None => ("MGET", [KeyKind::Ban, deny, KeyKind::NotBefore]),
    };
    let id_len = keys
        .token_id()
        .len()
        .max(keys.session_id().map_or(0, str::len));
    let key_len = keys.base().len() + 3 * id_len + 16;
    let mut cmd = Cmd::with_capacity(4, 8 + 3 * key_len);
    cmd.arg(name);
    for kind in kinds {
        cmd.arg(Key::new(keys.base(), kind));
    }
    if let (None, Some(provider)) = (keys.session_id(), provider) {
        cmd.arg(provider);
    }
    cmd
}

/// The `MGET` reply with a provider session's key last: the reply of ban,
/// deny and nbf, and whether the provider session was ended.
fn split_provider(reply: Value) -> Result<(Value, bool), StoreError> {
    match reply {
        Value::Array(mut items) if items.len() == 4 => {
            let ended = !matches!(items.pop(), Some(Value::Nil));
            Ok((Value::Array(items), ended))
        }
        other => Err(protocol("check", &other)),
    }
}

/// The [`CHECK`] script for the token of `keys`.
fn check_script(keys: &CheckKeys, args: &CheckArgs) -> Invocation<'static> {
    let sid = keys.session_id();
    let deny = KeyKind::Deny(keys.token_id());
    let mut inv = match sid {
        Some(sid) => CHECK_SCRIPT.invoke(
            keys.base(),
            &[
                KeyKind::Ban,
                deny,
                KeyKind::NotBefore,
                KeyKind::Sessions,
                KeyKind::Session(sid),
                KeyKind::Ended,
                KeyKind::Fresh(sid),
            ],
        ),
        None => CHECK_SCRIPT.invoke(keys.base(), &[KeyKind::Ban, deny, KeyKind::NotBefore]),
    };
    match args.issued_at {
        Some(iat) => inv.arg(iat),
        None => inv.arg(""),
    };
    inv.arg(args.touch_ms);
    if let Some(sid) = sid {
        inv.arg(encode_key_part(sid)).arg(args.marker_ms);
    }
    inv
}

pub(super) fn parse_check(reply: Value) -> Result<(Verdict, Option<u64>), StoreError> {
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

/// The check's `MGET` of ban, deny and nbf, for a token without a session:
/// the verdict; `None` (the [`CHECK`] script decides) for an nbf this code
/// did not write.
pub(super) fn parse_mget_check(
    reply: Value,
    issued_at: Option<u64>,
) -> Result<Option<Verdict>, StoreError> {
    let items = match reply {
        Value::Array(items) if items.len() == 3 => items,
        other => return Err(protocol("check", &other)),
    };
    let present = |i: usize| items.get(i).filter(|v| !matches!(v, Value::Nil));
    let revoked = |reason| Ok(Some(Verdict::Revoked(reason)));
    if let Some(ban) = present(0) {
        let until = value_int(ban).and_then(|n| u64::try_from(n).ok());
        return revoked(RevocationReason::Banned { until });
    }
    if present(1).is_some() {
        return revoked(RevocationReason::TokenRevoked);
    }
    match present(2).map(value_int) {
        None => Ok(Some(Verdict::Valid)),
        Some(None) => Ok(None),
        // iat at or below the mark's second is revoked; so is a token
        // without iat. The mark is in ms (below 1e11: an older one in seconds).
        Some(Some(nbf)) if issued_at.is_none_or(|iat| i128::from(iat) <= mark_secs(nbf)) => {
            revoked(RevocationReason::LoggedOutEverywhere)
        }
        Some(Some(_)) => Ok(Some(Verdict::Valid)),
    }
}

/// The second of a "log out everywhere" mark kept in ms (a value below 1e11
/// is an older mark in seconds).
fn mark_secs(nbf: i64) -> i128 {
    if nbf < 100_000_000_000 {
        i128::from(nbf)
    } else {
        i128::from(nbf / 1000)
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::{parse_check, parse_mget_check};
    use crate::store::{RevocationReason, SessionEnd, StoreError, Verdict};

    /// `MGET` reply of ban, deny, nbf; `None` is a missing key.
    fn mget(values: &[Option<&str>]) -> Value {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        Value::Array(values.iter().map(|v| v.map_or(Value::Nil, bulk)).collect())
    }

    fn decide(values: &[Option<&str>], iat: Option<u64>) -> Option<Verdict> {
        parse_mget_check(mget(values), iat).expect("a well-formed reply")
    }

    fn revoked(reason: RevocationReason) -> Option<Verdict> {
        Some(Verdict::Revoked(reason))
    }

    #[test]
    fn ban_deny_and_nbf_decide_in_the_scripts_order() {
        use RevocationReason::*;
        let all = [Some("-1"), Some("1"), Some("100")];
        assert_eq!(decide(&all, Some(50)), revoked(Banned { until: None }));
        let timed = [Some("1700000000"), None, None];
        let until = Some(1_700_000_000);
        assert_eq!(decide(&timed, None), revoked(Banned { until }));
        // Like the script's `tonumber(v) or -1`: a ban that is not a number
        // is a ban without an end.
        assert_eq!(
            decide(&[Some("x"), None, None], None),
            revoked(Banned { until: None })
        );
        assert_eq!(
            decide(&[None, Some("1"), Some("100")], Some(50)),
            revoked(TokenRevoked)
        );
        let nbf = [None, None, Some("100")];
        assert_eq!(decide(&nbf, Some(100)), revoked(LoggedOutEverywhere));
        assert_eq!(decide(&nbf, None), revoked(LoggedOutEverywhere));
        assert_eq!(decide(&nbf, Some(101)), Some(Verdict::Valid));
        // A mark in ms revokes its whole second.
        let nbf_ms = [None, None, Some("1796500000123")];
        assert_eq!(
            decide(&nbf_ms, Some(1_796_500_000)),
            revoked(LoggedOutEverywhere)
        );
        assert_eq!(decide(&nbf_ms, Some(1_796_500_001)), Some(Verdict::Valid));
        assert_eq!(decide(&[None, None, None], None), Some(Verdict::Valid));
        // A value this code did not write goes to the script.
        assert_eq!(decide(&[None, None, Some("soon")], Some(1)), None);
    }

    #[test]
    fn replies_of_another_shape_are_protocol_errors() {
        for reply in [
            Value::Nil,
            Value::Int(0),
            mget(&[None, None]),
            mget(&[None, None, None, None]),
        ] {
            assert!(
                matches!(
                    parse_mget_check(reply.clone(), None),
                    Err(StoreError::Protocol(_))
                ),
                "{reply:?}"
            );
        }
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
