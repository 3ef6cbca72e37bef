//! The writes: the revoking ones of [`RevocationStore`] and the whole
//! [`SessionStore`], each one script (or, for one-time tokens, one command).

use std::time::Duration;

use redis::Value;

use super::keys::{encode_key_part, millis, one_time_key, provider_session_key, used_key, KeyKind};
use super::lua::{
    Invocation, BAN_SCRIPT, CREATE_SCRIPT, DENY_SCRIPT, END_ALL_SCRIPT, END_ONE_SCRIPT,
    END_PROVIDER_SESSION_SCRIPT, LIST_SCRIPT, REVOKE_SCRIPT, ROTATE_SCRIPT, UNBAN_SCRIPT,
};
use super::reply::{parse_count, parse_create, parse_list, parse_rotate, protocol, value_text};
use super::RedisStore;
use crate::store::{
    CheckRequest, CreateOutcome, LimitPolicy, NewSession, RevocationStore, RotateOutcome, Rotation,
    SessionEnd, SessionInfo, SessionStore, StoreError, StoreFuture, Verdict,
};
use crate::util::sha256_hex;

impl RedisStore {
    /// Runs a script that may revoke tokens of `subject`: it gets the events
    /// channel and the subject as its last two arguments (it publishes the
    /// event there), and our own near-cache drops the subject whatever the
    /// outcome (other instances drop theirs when the event arrives).
    async fn eval_revoking(
        &self,
        mut invocation: Invocation<'_>,
        subject: &str,
    ) -> Result<Value, StoreError> {
        invocation.arg(&self.inner.channel).arg(subject);
        let result = self.eval(invocation).await;
        if let Some(cache) = &self.inner.near {
            cache.invalidate(subject);
        }
        result
    }
}

impl RevocationStore for RedisStore {
    fn check(&self, request: &CheckRequest<'_>) -> StoreFuture<'static, Verdict> {
        self.start_check(request)
    }

    fn deny_token<'a>(
        &'a self,
        subject: &'a str,
        token_id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut inv = DENY_SCRIPT.invoke(&self.base(subject), &[KeyKind::Deny(token_id)]);
            inv.arg(millis(ttl));
            self.eval_revoking(inv, subject).await.map(drop)
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
            let mut inv = REVOKE_SCRIPT.invoke(&base, &[KeyKind::NotBefore, KeyKind::Sessions]);
            inv.arg(&base)
                .arg(not_before)
                .arg(keep_for.map(|d| millis(d).to_string()).unwrap_or_default())
                .arg(millis(markers));
            self.eval_revoking(inv, subject).await.map(drop)
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
            let mut inv = BAN_SCRIPT.invoke(&base, &[KeyKind::Ban, KeyKind::Sessions]);
            inv.arg(&base)
                .arg(duration.map(|d| millis(d).to_string()).unwrap_or_default())
                .arg(millis(markers));
            self.eval_revoking(inv, subject).await.map(drop)
        })
    }

    fn unban<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inv = UNBAN_SCRIPT.invoke(&self.base(subject), &[KeyKind::Ban]);
            inv.arg(&self.inner.channel).arg(subject);
            Ok(parse_count("unban", self.eval(inv).await?)? > 0)
        })
    }

    fn sessions(&self) -> Option<&dyn SessionStore> {
        Some(self)
    }

    fn first_use<'a>(
        &'a self,
        scope: &'a str,
        id: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key = used_key(&self.inner.prefix, scope, &sha256_hex(id.as_bytes()));
            let mut cmd = redis::cmd("SET");
            cmd.arg(key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl).max(1));
            match self.query(&cmd).await? {
                Value::Nil => Ok(false),
                Value::Okay => Ok(true),
                other => Err(protocol("SET NX", &other)),
            }
        })
    }

    fn end_provider_session<'a>(
        &'a self,
        issuer: &'a str,
        session_id: &'a str,
        keep_for: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = provider_session_key(&self.inner.prefix, issuer, session_id);
            let mut inv = END_PROVIDER_SESSION_SCRIPT.prepare_invoke(1);
            inv.key(&key)
                .arg(millis(keep_for).max(1))
                .arg(&self.inner.channel);
            let result = self.eval(inv).await;
            // The subjects are not known: every verdict may be stale.
            if let Some(cache) = &self.inner.near {
                cache.clear();
            }
            result.map(drop)
        })
    }

    fn check_with_provider_session(
        &self,
        request: &CheckRequest<'_>,
        issuer: &str,
        session_id: &str,
    ) -> StoreFuture<'static, Verdict> {
        self.start_check_with(request, Some((issuer, session_id)))
    }
}

impl SessionStore for RedisStore {
    fn create_session(&self, new: NewSession) -> StoreFuture<'_, CreateOutcome> {
        Box::pin(async move {
            let subject = &new.subject;
            let base = self.base(subject);
            let sid = &new.session_id;
            let mut inv = CREATE_SCRIPT.invoke(
                &base,
                &[
                    KeyKind::Ban,
                    KeyKind::Sessions,
                    KeyKind::Session(sid),
                    KeyKind::Ended,
                    KeyKind::Fresh(sid),
                ],
            );
            inv.arg(&base)
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
                .arg(millis(new.markers));
            let result = self.eval_revoking(inv, subject).await;
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
            let mut inv = END_ONE_SCRIPT.invoke(&base, &[KeyKind::Sessions]);
            inv.arg(&base)
                .arg(encode_key_part(session_id))
                .arg(reason.code())
                .arg(millis(markers));
            let result = self.eval_revoking(inv, subject).await;
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
            let mut inv = END_ALL_SCRIPT.invoke(&base, &[KeyKind::Sessions]);
            inv.arg(&base).arg(reason.code()).arg(millis(markers));
            let result = self.eval_revoking(inv, subject).await;
            let n = parse_count("end_all_sessions", result?)?;
            usize::try_from(n).map_err(|_| StoreError::Protocol(format!("end_all_sessions: {n}")))
        })
    }

    fn list_sessions<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<SessionInfo>> {
        Box::pin(async move {
            let base = self.base(subject);
            let mut inv = LIST_SCRIPT.invoke(&base, &[KeyKind::Sessions]);
            inv.arg(&base);
            parse_list(self.eval(inv).await?)
        })
    }

    fn rotate_refresh(&self, rotation: Rotation) -> StoreFuture<'_, RotateOutcome> {
        Box::pin(async move {
            let subject = &rotation.subject;
            let sid = &rotation.session_id;
            let base = self.base(subject);
            let mut inv = ROTATE_SCRIPT.invoke(
                &base,
                &[
                    KeyKind::Sessions,
                    KeyKind::Session(sid),
                    KeyKind::Ended,
                    KeyKind::Fresh(sid),
                ],
            );
            inv.arg(&base)
                .arg(encode_key_part(sid))
                .arg(rotation.generation)
                .arg(&rotation.presented_hash)
                .arg(&rotation.new_hash)
                .arg(millis(rotation.idle_timeout))
                .arg(millis(rotation.markers));
            let result = self.eval_revoking(inv, subject).await;
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
