//! The Lua scripts the shared limiter runs inside Redis, and what their
//! replies mean.
//!
//! The scripts live in `.lua` files next to this one, so they read as Lua
//! (with their own comments on every step) rather than as strings inside
//! Rust. `redis::Script` sends them with `EVALSHA`, and loads them first if
//! the server does not know them yet (a restarted Redis forgets its scripts).

use std::sync::LazyLock;

use redis::Script;

/// Admission: check all three limits and the pause, take a slot in each.
pub(super) static ADMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("admit.lua")));

/// Settling: reweigh one token entry.
pub(super) static SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("settle.lua")));

/// Pausing every process: set the pause key, extending only.
pub(super) static PAUSE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("pause.lua")));

/// Reading the current usage without changing anything.
pub(super) static USAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("usage.lua")));

/// The raw reply of `admit.lua`: `{code, value, now, rpm, tpm, rpd, reason}`.
pub(super) type RawReply = (i64, i64, i64, i64, i64, i64, String);

/// What `admit.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Admitted, with this id (unique and increasing across every process
    /// sharing the scope).
    Admitted(u64),
    /// No room: ask again in this many microseconds.
    Full(u64),
    /// Someone paused the quota: ask again in this many microseconds.
    Paused(u64),
    /// Someone stopped the quota, for this reason.
    Stopped(String),
}

/// A decoded reply: the verdict, plus what the script saw in use (after its
/// own admission, if any), for [`Stats`](crate::pace::Stats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    /// What the script decided.
    pub(super) verdict: Verdict,
    /// Requests counting against RPM.
    pub(super) rpm: u64,
    /// Input tokens counting against TPM.
    pub(super) tpm: u64,
    /// Requests counting against RPD.
    pub(super) rpd: u64,
}

impl Reply {
    /// Decodes `admit.lua`'s reply. Unknown codes are read as "stopped", so a
    /// script and a client from different versions fail closed, never open.
    pub(super) fn decode(raw: RawReply) -> Reply {
        let (code, value, _now, rpm, tpm, rpd, reason) = raw;
        let value = u64::try_from(value).unwrap_or(0);
        let verdict = match code {
            1 => Verdict::Admitted(value),
            0 => Verdict::Full(value.max(1)),
            2 => Verdict::Paused(value.max(1)),
            3 => Verdict::Stopped(reason),
            other => Verdict::Stopped(format!(
                "unexpected reply {other} from the admission script"
            )),
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Reply {
            verdict,
            rpm: count(rpm),
            tpm: count(tpm),
            rpd: count(rpd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_decode_and_unknown_codes_fail_closed() {
        let admitted = Reply::decode((1, 7, 0, 1, 20, 1, String::new()));
        assert_eq!(admitted.verdict, Verdict::Admitted(7));
        assert_eq!((admitted.rpm, admitted.tpm, admitted.rpd), (1, 20, 1));
        assert_eq!(
            Reply::decode((0, 0, 0, 0, 0, 0, String::new())).verdict,
            Verdict::Full(1),
            "a zero wait still waits a little, never spins"
        );
        assert!(matches!(
            Reply::decode((9, 0, 0, 0, 0, 0, String::new())).verdict,
            Verdict::Stopped(_)
        ));
    }
}
