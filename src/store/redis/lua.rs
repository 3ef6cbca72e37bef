//! [`Lua`]: one script, its body filled from the Rust constants and its
//! SHA1; [`Invocation`]: one call of it, with the `EVAL` fallback; and the
//! scripts of `scripts.rs`, ready to call.

use std::sync::LazyLock;

use redis::{Cmd, Script, ToRedisArgs};

use super::keys::{Key, KeyKind};
use super::scripts::{
    BAN, CHECK, CREATE, DENY, END_ALL, END_ONE, END_PROVIDER_SESSION, LIST, PRELUDE, REVOKE,
    ROTATE, UNBAN,
};
use crate::store::SessionEnd;

/// One Lua script: its body (for `SCRIPT LOAD` / `EVAL`) and SHA1 (for `EVALSHA`).
pub(super) struct Lua {
    pub(super) code: String,
    pub(super) hash: String,
}

/// The scripts' placeholders, filled from the Rust constants they must
/// agree with.
fn expand(code: &str) -> String {
    use crate::store::{ENDED_MARKERS_PER_SUBJECT, KEPT_HASH_HEX, REFRESH_REUSE_WINDOW};
    const _: () = assert!(
        SessionEnd::ALL.len() <= 16,
        "a reason is 4 bits of a marker's score"
    );
    let index = |end: SessionEnd| {
        let i = SessionEnd::ALL.iter().position(|e| *e == end);
        i.expect("every reason is in ALL").to_string()
    };
    let reasons: Vec<String> = SessionEnd::ALL
        .iter()
        .map(|end| format!("'{}'", end.code()))
        .collect();
    code.replace("__REASONS__", &format!("{{{}}}", reasons.join(", ")))
        .replace("__MAX_ENDED__", &ENDED_MARKERS_PER_SUBJECT.to_string())
        .replace("__WINDOW__", &REFRESH_REUSE_WINDOW.to_string())
        .replace("__KEPT_HEX__", &KEPT_HASH_HEX.to_string())
        .replace("__IDLE_TIMEOUT__", &index(SessionEnd::IdleTimeout))
        .replace("__SESSION_EXPIRED__", &index(SessionEnd::Expired))
}

impl Lua {
    /// A script that uses the [`PRELUDE`]'s helpers.
    pub(super) fn new(body: &str) -> Self {
        Self::standalone(&format!("{PRELUDE}{body}"))
    }

    /// A script that needs no helpers.
    pub(super) fn standalone(code: &str) -> Self {
        let code = expand(code);
        let hash = Script::new(&code).get_hash().to_owned();
        Self { code, hash }
    }

    /// A call of this script with these keys of the subject whose keys
    /// start with `base`; the arguments follow with [`Invocation::arg`].
    pub(super) fn invoke(&self, base: &str, kinds: &[KeyKind<'_>]) -> Invocation<'_> {
        let mut inv = self.prepare_invoke(kinds.len());
        for kind in kinds {
            inv.key(Key::new(base, *kind));
        }
        inv
    }

    /// A call of this script with `keys` keys: give them all with
    /// [`Invocation::key`], then the arguments with [`Invocation::arg`].
    pub(super) fn prepare_invoke(&self, keys: usize) -> Invocation<'_> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.hash).arg(keys);
        Invocation {
            lua: self,
            cmd,
            keys_left: keys,
        }
    }
}

/// One call of a [`Lua`] script, written straight into its `EVALSHA`
/// command (like redis-rs's `ScriptInvocation`, whose parts are private, so
/// it cannot fall back to `EVAL` on a cluster).
pub(super) struct Invocation<'a> {
    pub(super) lua: &'a Lua,
    /// `EVALSHA <sha> <numkeys> <keys...> <args...>`.
    cmd: Cmd,
    /// Keys still to come before the first argument.
    keys_left: usize,
}

impl Invocation<'_> {
    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        debug_assert!(self.keys_left > 0, "more keys than declared");
        self.keys_left = self.keys_left.saturating_sub(1);
        self.cmd.arg(key);
        self
    }

    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        debug_assert_eq!(self.keys_left, 0, "an argument before every key");
        self.cmd.arg(arg);
        self
    }

    /// `EVALSHA <sha> ...`; routed by its first key on a cluster.
    pub(super) fn evalsha(&self) -> &Cmd {
        debug_assert_eq!(self.keys_left, 0, "fewer keys than declared");
        &self.cmd
    }

    /// The same call as `EVAL <body> ...`, for a cluster node that lacks the
    /// script.
    #[cfg(any(feature = "redis-cluster", test))]
    pub(super) fn eval(&self) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(&self.lua.code);
        for arg in self.cmd.args_iter().skip(2) {
            if let redis::Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        cmd
    }
}

pub(super) static CHECK_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::standalone(CHECK));
pub(super) static DENY_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(DENY));
pub(super) static REVOKE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(REVOKE));
pub(super) static BAN_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(BAN));
pub(super) static UNBAN_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(UNBAN));
pub(super) static CREATE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(CREATE));
pub(super) static END_ONE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(END_ONE));
pub(super) static END_ALL_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(END_ALL));
pub(super) static LIST_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(LIST));
pub(super) static END_PROVIDER_SESSION_SCRIPT: LazyLock<Lua> =
    LazyLock::new(|| Lua::standalone(END_PROVIDER_SESSION));
pub(super) static ROTATE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(ROTATE));

#[cfg(test)]
mod tests {
    use redis::{Cmd, Script};

    use super::UNBAN_SCRIPT;

    #[test]
    fn scripts_fall_back_to_their_body() {
        let mut inv = UNBAN_SCRIPT.prepare_invoke(1);
        inv.key("k").arg("a").arg(7);
        let args = |cmd: Cmd| -> Vec<Vec<u8>> {
            cmd.args_iter()
                .map(|arg| match arg {
                    redis::Arg::Simple(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                })
                .collect()
        };
        let evalsha = args(inv.evalsha().clone());
        assert_eq!(evalsha[0], b"EVALSHA");
        assert_eq!(evalsha[1], UNBAN_SCRIPT.hash.as_bytes());
        assert_eq!(
            evalsha[2..],
            [b"1".to_vec(), b"k".to_vec(), b"a".to_vec(), b"7".to_vec()]
        );
        let eval = args(inv.eval());
        assert_eq!(eval[0], b"EVAL");
        assert_eq!(eval[1], UNBAN_SCRIPT.code.as_bytes());
        assert_eq!(eval[2..], evalsha[2..]);
        assert_eq!(
            UNBAN_SCRIPT.hash,
            Script::new(&UNBAN_SCRIPT.code).get_hash()
        );
    }
}
