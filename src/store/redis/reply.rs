//! Script replies, parsed into the store's types.

use super::*;

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

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
        // iat at or below nbf is revoked; so is a token without iat.
        Some(Some(nbf)) if issued_at.is_none_or(|iat| i128::from(iat) <= i128::from(nbf)) => {
            revoked(RevocationReason::LoggedOutEverywhere)
        }
        Some(Some(_)) => Ok(Some(Verdict::Valid)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
