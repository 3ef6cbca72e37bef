//! Key layout: every key of one subject shares its hash tag; subjects and
//! ids are percent-encoded, so no two different ones share a key.

use std::fmt;
use std::time::Duration;

use redis::{RedisWrite, ToRedisArgs};

/// Durations are clamped to a hundred years of milliseconds
/// ([`MAX_KEEP`](crate::store::MAX_KEEP)), so every number a script sees
/// (even a marker's score, 16 times a deadline) stays an exact integer far
/// below 2^53.
const MAX_MS: u64 = crate::store::MAX_KEEP.as_millis() as u64;

/// Encode one part of a Redis key (a subject, a token id, a session id, a
/// purpose) injectively: every byte outside `[A-Za-z0-9._~@-]` becomes `%XX`
/// (upper-case hex), and the empty string becomes a lone `%` (which no other
/// input produces, and which keeps a hash tag from ever being empty).
///
/// The result never contains `:`, `{`, `}` or whitespace, so parts can be
/// joined with `:` and placed inside a `{...}` hash tag without ambiguity.
#[doc(hidden)]
pub fn encode_key_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len().max(1));
    write_encoded(&mut out, part).expect("a String takes any text");
    out
}

/// [`encode_key_part`] into `out`.
fn write_encoded(out: &mut impl fmt::Write, part: &str) -> fmt::Result {
    if part.is_empty() {
        return out.write_char('%');
    }
    // Subjects and ids are nearly always plain: then one copy.
    if all_plain(part.as_bytes()) {
        return out.write_str(part);
    }
    for byte in part.bytes() {
        if is_plain(byte) {
            out.write_char(char::from(byte))?;
        } else {
            write!(out, "%{byte:02X}")?;
        }
    }
    Ok(())
}

/// Whether every byte is [plain](is_plain).
fn all_plain(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| is_plain(b))
}

/// `[A-Za-z0-9._~@-]`, the bytes [`encode_key_part`] keeps as they are.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'@' | b'-')
}

/// The inverse of [`encode_key_part`]; `None` for anything it cannot produce.
pub(super) fn decode_key_part(encoded: &str) -> Option<String> {
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

/// What a subject key holds; the ids are given as they are (not encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind<'a> {
    Deny(&'a str),
    NotBefore,
    Ban,
    Sessions,
    Session(&'a str),
    /// The subject's markers of ended sessions (one ZSET).
    Ended,
    Fresh(&'a str),
}

impl<'a> KeyKind<'a> {
    /// The kind's name in the key (with the `:` before an id), and the id.
    fn parts(self) -> (&'static str, Option<&'a str>) {
        match self {
            KeyKind::Deny(id) => ("deny:", Some(id)),
            KeyKind::NotBefore => ("nbf", None),
            KeyKind::Ban => ("ban", None),
            KeyKind::Sessions => ("sessions", None),
            KeyKind::Session(id) => ("session:", Some(id)),
            KeyKind::Ended => ("ended", None),
            KeyKind::Fresh(id) => ("fresh:", Some(id)),
        }
    }
}

/// One key of a subject: its [`subject_base`], then the kind's name and its
/// encoded id: a command argument as it is, written straight into the
/// command (no `String` of its own).
#[derive(Clone, Copy)]
pub(super) struct Key<'a> {
    base: &'a str,
    kind: KeyKind<'a>,
}

impl<'a> Key<'a> {
    /// The key of `kind` of the subject whose [`subject_base`] is `base`.
    pub(super) fn new(base: &'a str, kind: KeyKind<'a>) -> Self {
        Self { base, kind }
    }
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, id) = self.kind.parts();
        f.write_str(self.base)?;
        f.write_str(name)?;
        match id {
            Some(id) => write_encoded(f, id),
            None => Ok(()),
        }
    }
}

impl ToRedisArgs for Key<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(self);
    }
}

/// `<prefix>:{<enc subject>}:`: the start of every key of one subject; the
/// hash tag puts them all in one cluster slot.
pub(super) fn subject_base(prefix: &str, subject: &str) -> String {
    // Room for the key suffix that usually follows (`session:<22-char id>`).
    let mut base = String::with_capacity(prefix.len() + subject.len() + 40);
    write_subject_base(&mut base, prefix, subject).expect("a String takes any text");
    base
}

fn write_subject_base(out: &mut String, prefix: &str, subject: &str) -> fmt::Result {
    out.push_str(prefix);
    out.push_str(":{");
    write_encoded(out, subject)?;
    out.push_str("}:");
    Ok(())
}

/// The key of `kind` of `subject`, whole (the tests' reference).
#[cfg(test)]
fn subject_key(prefix: &str, subject: &str, kind: KeyKind<'_>) -> String {
    Key::new(&subject_base(prefix, subject), kind).to_string()
}

/// What the keys of one check are made of, taken from its request before
/// its future starts (the future borrows nothing): the subject's
/// [`subject_base`], encoded once, and the token and session ids as given,
/// in one string.
pub(super) struct CheckKeys {
    /// The base, the token id, the session id, one after the other.
    text: String,
    token_id_at: usize,
    session_id_at: Option<usize>,
}

impl CheckKeys {
    pub(super) fn new(
        prefix: &str,
        subject: &str,
        token_id: &str,
        session_id: Option<&str>,
    ) -> Self {
        let ids = token_id.len() + session_id.map_or(0, str::len);
        let mut text = String::with_capacity(prefix.len() + subject.len() + 4 + ids);
        write_subject_base(&mut text, prefix, subject).expect("a String takes any text");
        let token_id_at = text.len();
        text.push_str(token_id);
        let session_id_at = session_id.map(|sid| {
            let at = text.len();
            text.push_str(sid);
            at
        });
        Self {
            text,
            token_id_at,
            session_id_at,
        }
    }

    /// The subject's [`subject_base`].
    pub(super) fn base(&self) -> &str {
        &self.text[..self.token_id_at]
    }

    /// The token id, as given.
    pub(super) fn token_id(&self) -> &str {
        let end = self.session_id_at.unwrap_or(self.text.len());
        &self.text[self.token_id_at..end]
    }

    /// The session id, as given.
    pub(super) fn session_id(&self) -> Option<&str> {
        self.session_id_at.map(|at| &self.text[at..])
    }
}

/// `<prefix>:once:<enc purpose>:<enc hash>`: no hash tag, never starts like a
/// subject key (`<prefix>:{`).
pub(super) fn one_time_key(prefix: &str, purpose: &str, token_hash: &str) -> String {
    format!(
        "{prefix}:once:{}:{}",
        encode_key_part(purpose),
        encode_key_part(token_hash)
    )
}

/// `<prefix>:used:<enc scope>:<id hash>`: a single-use id
/// ([`first_use`](crate::RevocationStore::first_use)); no hash tag, never
/// starts like a subject key.
pub(super) fn used_key(prefix: &str, scope: &str, id_hash: &str) -> String {
    format!("{prefix}:used:{}:{id_hash}", encode_key_part(scope))
}

/// `<prefix>:psid:<enc issuer>:<enc sid>`: an ended provider session
/// ([`end_provider_session`](crate::RevocationStore::end_provider_session));
/// no hash tag (only the `sid` may be known, not the subject), never starts
/// like a subject key.
pub(super) fn provider_session_key(prefix: &str, issuer: &str, session_id: &str) -> String {
    format!(
        "{prefix}:psid:{}:{}",
        encode_key_part(issuer),
        encode_key_part(session_id)
    )
}

/// `d` in whole milliseconds (rounded up), capped at [`MAX_MS`].
pub(super) fn millis(d: Duration) -> u64 {
    crate::store::capped_millis(d).min(MAX_MS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::{
        all_plain, decode_key_part, encode_key_part, is_plain, millis, one_time_key, subject_base,
        subject_key, CheckKeys, Key, KeyKind, MAX_MS,
    };

    #[test]
    fn the_plain_byte_test_is_the_plain_set() {
        for b in 0..=u8::MAX {
            let plain = b.is_ascii_alphanumeric() || b"._~@-".contains(&b);
            assert_eq!(is_plain(b), plain, "byte {b:#04x}");
            // One odd byte anywhere in a part of any length.
            for len in [1, 31, 32, 33, 70] {
                for at in [0, len / 2, len - 1] {
                    let mut part = vec![b'a'; len];
                    part[at] = b;
                    assert_eq!(all_plain(&part), plain, "byte {b:#04x} at {at} of {len}");
                }
            }
        }
        assert!(all_plain(b""));
    }

    /// The hash tag Redis Cluster hashes for `key`, if any.
    fn hash_tag(key: &str) -> Option<&str> {
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &key[open + 1..close])
    }

    type Triple = (String, u8, String);

    fn key_of((subject, kind, id): &Triple) -> String {
        let kind = match kind % 7 {
            0 => KeyKind::Deny(id),
            1 => KeyKind::NotBefore,
            2 => KeyKind::Ban,
            3 => KeyKind::Sessions,
            4 => KeyKind::Session(id),
            5 => KeyKind::Ended,
            _ => KeyKind::Fresh(id),
        };
        subject_key("jwt", subject, kind)
    }

    /// Normalize: kinds without an id ignore it.
    fn canonical((subject, kind, id): &Triple) -> Triple {
        let kind = kind % 7;
        let id = if matches!(kind, 1..=3 | 5) {
            String::new()
        } else {
            id.clone()
        };
        (subject.clone(), kind, id)
    }

    fn part() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a:{}%~ é\\n.-]{0,4}",
            "[a-z0-9:{}%]{0,3}(deny|nbf|ban|sessions|session|ended|fresh)?[:{}%a]{0,3}",
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

        #[test]
        fn a_checks_keys_are_the_subjects_keys(
            subject in part(), token_id in part(), sid in proptest::option::of(part())
        ) {
            let keys = CheckKeys::new("jwt", &subject, &token_id, sid.as_deref());
            prop_assert_eq!(keys.base(), subject_base("jwt", &subject));
            prop_assert_eq!(keys.token_id(), token_id.as_str());
            prop_assert_eq!(keys.session_id(), sid.as_deref());
            let deny = Key::new(keys.base(), KeyKind::Deny(keys.token_id())).to_string();
            prop_assert_eq!(deny, subject_key("jwt", &subject, KeyKind::Deny(&token_id)));
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
}
