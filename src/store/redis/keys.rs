//! Key layout: every key of one subject shares its hash tag.

use super::*;

use std::cell::RefCell;

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
    let mut out = String::with_capacity(part.len().max(1));
    push_encoded(&mut out, part);
    out
}

/// [`encode_key_part`] into `out`.
fn push_encoded(out: &mut String, part: &str) {
    if part.is_empty() {
        return out.push('%');
    }
    // Subjects and ids are nearly always plain: one branch-free pass (this
    // runs for every key of every check), then one copy.
    if all_plain(part.as_bytes()) {
        return out.push_str(part);
    }
    for &byte in part.as_bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

/// Whether every byte is [plain](is_plain), by table: subjects and ids are
/// short (a vectorized pass, with its setup, cost about three times more
/// for a 22-byte id).
fn all_plain(bytes: &[u8]) -> bool {
    const ODD: [u8; 256] = {
        let mut odd = [0; 256];
        let mut b = 0;
        while b < 256 {
            odd[b] = !is_plain(b as u8) as u8;
            b += 1;
        }
        odd
    };
    bytes.iter().fold(0, |acc, &b| acc | ODD[usize::from(b)]) == 0
}

/// `[A-Za-z0-9._~@-]`, the bytes [`push_encoded`] keeps as they are, without
/// branches (a unit test holds it to that set).
#[inline(always)]
const fn is_plain(b: u8) -> bool {
    crate::util::is_alnum(b) | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'@') | (b == b'-')
}

#[cfg(test)]
#[test]
fn the_branch_free_plain_byte_test_is_the_plain_set() {
    for b in 0..=u8::MAX {
        let plain = b.is_ascii_alphanumeric() || b"._~@-".contains(&b);
        assert_eq!(is_plain(b), plain, "byte {b:#04x}");
        // One odd byte anywhere in a part of any length, chunk edges included.
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

/// What a subject key holds.
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

/// `<prefix>:{<enc subject>}:`: the start of every key of one subject; the
/// hash tag puts them all in one cluster slot.
pub(super) fn subject_base(prefix: &str, subject: &str) -> String {
    // Room for the key suffix that usually follows (`session:<22-char id>`).
    let mut base = String::with_capacity(prefix.len() + subject.len() + 40);
    push_subject_base(&mut base, prefix, subject);
    base
}

fn push_subject_base(out: &mut String, prefix: &str, subject: &str) {
    out.push_str(prefix);
    out.push_str(":{");
    push_encoded(out, subject);
    out.push_str("}:");
}

pub(super) fn subject_key(prefix: &str, subject: &str, kind: KeyKind<'_>) -> String {
    key_in(&subject_base(prefix, subject), kind)
}

/// A key of the subject whose [`subject_base`] is `base`: callers that need
/// several keys of one subject encode the subject once.
pub(super) fn key_in(base: &str, kind: KeyKind<'_>) -> String {
    let mut key = String::with_capacity(base.len() + 32);
    key.push_str(base);
    push_key_suffix(&mut key, kind);
    key
}

/// Appends keys of `subject` to `cmd`, one argument each. They are written
/// in a buffer kept by the thread (the subject encoded once), so that a
/// check allocates nothing for its keys besides the command.
pub(super) fn push_key_args(cmd: &mut Cmd, prefix: &str, subject: &str, kinds: &[KeyKind<'_>]) {
    thread_local! {
        static KEY: RefCell<String> = const { RefCell::new(String::new()) };
    }
    KEY.with_borrow_mut(|key| {
        key.clear();
        push_subject_base(key, prefix, subject);
        let base = key.len();
        for (i, kind) in kinds.iter().enumerate() {
            // `EXISTS fresh deny deny`: the deny key is written once.
            if i == 0 || kinds[i - 1] != *kind {
                key.truncate(base);
                push_key_suffix(key, *kind);
            }
            cmd.arg(key.as_bytes());
        }
        // A subject of unusual length leaves no large buffer behind.
        if key.capacity() > 1024 {
            *key = String::new();
        }
    });
}

impl<'a> KeyKind<'a> {
    /// The kind's name in the key (with the `:` before an id), and the id.
    pub(super) fn parts(self) -> (&'static str, Option<&'a str>) {
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

/// Appends what follows the subject's base in a key of this kind.
pub(super) fn push_key_suffix(key: &mut String, kind: KeyKind<'_>) {
    let (name, id) = kind.parts();
    key.push_str(name);
    if let Some(id) = id {
        push_encoded(key, id);
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

/// `d` in whole milliseconds (rounded up), capped at [`MAX_MS`].
pub(super) fn millis(d: Duration) -> u64 {
    crate::store::capped_millis(d).min(MAX_MS)
}
