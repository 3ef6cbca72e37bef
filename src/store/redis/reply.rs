//! Script replies, parsed into the store's types.

use redis::Value;

use super::keys::decode_key_part;
use crate::store::{CreateOutcome, RotateOutcome, SessionEnd, SessionInfo, StoreError};

pub(super) fn protocol(what: &str, reply: &Value) -> StoreError {
    StoreError::Protocol(format!("{what}: {reply:?}"))
}

pub(super) fn value_int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn value_text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

pub(super) fn value_array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

pub(super) fn ban_until(value: Option<&Value>) -> Option<Option<u64>> {
    let n = value_int(value?)?;
    Some(u64::try_from(n).ok())
}

pub(super) fn parse_count(what: &str, reply: Value) -> Result<i64, StoreError> {
    value_int(&reply).ok_or_else(|| protocol(what, &reply))
}

pub(super) fn decode_member(what: &str, member: Value) -> Result<String, StoreError> {
    value_text(member.clone())
        .and_then(|m| decode_key_part(&m))
        .ok_or_else(|| protocol(what, &member))
}

pub(super) fn parse_create(reply: Value) -> Result<CreateOutcome, StoreError> {
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

pub(super) fn parse_list(reply: Value) -> Result<Vec<SessionInfo>, StoreError> {
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

pub(super) fn parse_rotate(reply: Value) -> Result<RotateOutcome, StoreError> {
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
