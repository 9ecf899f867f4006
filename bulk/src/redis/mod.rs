//! One Gemini quota shared by many processes and machines, through Redis.
//!
//! # The problem
//!
//! The [local limiter](step4_ratelimit::limiter) keeps its books in memory, so it only
//! knows about the requests of its own process. Start the program twice with
//! the same key and each copy runs at the full limit: together they send
//! twice what the server allows, and half the second window is 429s. Yet the
//! quota is the project's, per model (docs/wire.md#rate-limits), however many processes
//! or machines draw from it. The books must live somewhere they all see.
//!
//! [`RedisLimiter`] keeps them in Redis and implements the same
//! [`RateLimit`](crate::pace::RateLimit) trait, so the runner takes an
//! `Arc<dyn RateLimit>` and does not know which one it got. It follows the
//! same rule as the local limiter, word for word: *an admitted request
//! occupies one slot of each limit from admission until admission + window +
//! margin, and goes only when every limit has room.* The differences are all
//! about where the rule is evaluated.
//!
//! # Which quota: the [`Scope`]
//!
//! Processes share a budget when they name the same Redis, the same API key
//! and the same model. The key itself never goes to Redis (anyone who can
//! read Redis could use it): the scope holds the first 16 hex digits of its
//! SHA-256, which identify the project well enough and reveal nothing. Every
//! Redis key of a scope looks like
//!
//! ```text
//! gemini-rl:{3f1c0e2a9b7d4c55:gemini-2.5-flash}:rpm
//! ```
//!
//! The part in braces is a *hash tag*: Redis Cluster places keys by the hash
//! of that part only, so all of a scope's keys sit on one shard, which is
//! what lets a single script touch all of them.
//!
//! # Why a Lua script
//!
//! Admission is *check three limits, then take a slot in each*. Done as
//! separate commands from the client, two processes can both check, both see
//! room for one, and both take it. A transaction (`MULTI`) does not help,
//! because the write depends on what the read returned. Redis runs a Lua
//! script to completion before serving anyone else, so `admit.lua` makes the
//! check and the write one indivisible step, for RPM, TPM and RPD together.
//!
//! Each limit is a *sorted set*, the same log the local limiter keeps in a
//! `VecDeque`: member = admission id, score = the instant the slot stops
//! counting (admission + window + margin, in microseconds). Expiring is one
//! `ZREMRANGEBYSCORE`; "how long until one more fits?" is the score of the
//! entry that has to go first. Token weights sit in a companion hash
//! (id → tokens) with a running sum, so checking TPM is O(1) and only a
//! refusal walks the log. [`Permit::settle`](step4_ratelimit::limiter::Permit::settle)
//! runs `settle.lua`, which reweighs the entry in place (same expiry) and
//! moves the sum by the difference, atomically too. Tokens given back wake
//! this process's waiter at once; other processes find the room at their
//! next ask.
//!
//! # Why Redis's clock
//!
//! The scripts read the time with Redis's `TIME`, never the caller's clock.
//! Two machines whose clocks disagree by half a second would otherwise
//! disagree about which slots have expired, and the one running ahead would
//! admit early. With one clock, the only thing a process measures itself is
//! a *duration* (how long to sleep), which skew does not affect.
//!
//! # How waiting works
//!
//! When there is no room, the script does not just say no: it returns how
//! long until there will be (the expiry of the entry that must go first, or
//! what is left of a pause). The waiter sleeps exactly that long on a timer,
//! plus a random 0 to 5 ms of jitter so that processes told the same instant
//! do not all ask at once, and then asks again. Nothing polls.
//!
//! Within one process, waiters queue on a fair (FIFO) async mutex and only
//! the one at the front talks to Redis; the others wait their turn without
//! a timer or a round trip of their own. That keeps the local limiter's
//! promises: first come, first served, and one timer per process instead of
//! a herd. Across processes there is no queue: whoever asks first when room
//! appears wins, which costs a few extra round trips at a boundary and is
//! fair enough among a handful of processes. (A cross-process FIFO would
//! need a ticket queue in Redis and a notification channel; the gain is
//! small for the cost.)
//!
//! A refused waiter re-asks at least once per window even when told to come
//! back much later (the daily quota, say), so it notices a shared stop.
//!
//! # Pause and stop
//!
//! * [`pause_until`](crate::pace::RateLimit::pause_until) (the server
//!   answered 429 with `retryDelay`) pauses this process at once and sets a
//!   `…:pause` key with a `PX` expiry; `admit.lua` refuses everyone while it
//!   exists and returns its `PTTL` as the wait. One process's 429 stops all
//!   of them from making it worse. A longer pause extends it, a shorter one
//!   never cuts it short.
//! * [`stop`](crate::pace::RateLimit::stop) (going on is pointless: the
//!   daily quota is spent, the key is refused) fails this process's waiters
//!   at once, and sets a `…:stop` key holding the reason, for one window +
//!   margin. Processes sharing the scope see it on their next ask, well
//!   within a window, and stop with that reason. A stop is about the quota,
//!   not the process, so sharing it is right; but it expires, so a run
//!   started later (after midnight Pacific, or with the key fixed) is not
//!   turned away by a stale verdict. At worst it spends one request finding
//!   out for itself.
//!
//! # When Redis fails
//!
//! * Unreachable at start: [`RedisLimiter::connect`] fails within about two
//!   seconds with one line naming the address (never a password), and the
//!   program exits before sending anything.
//! * Lost mid-run: the next Redis call fails (or times out after two
//!   seconds), `acquire` returns [`LimitError::Stopped`](step4_ratelimit::limiter::LimitError)
//!   saying so, and the limiter stays stopped: requests in flight finish,
//!   nothing new is sent. It never falls back to "no limit", which would be
//!   the one thing guaranteed to break the shared quota. (A waiter asleep
//!   when Redis goes finds out when it next asks, within one window.)
//! * A process crashes: its slots simply expire. Every key is given a TTL
//!   of its longest entry (window + margin, day + margin for RPD) on every
//!   write, so nothing is left behind beyond that, and an idle Redis ends up
//!   empty.
//!
//! # How it compares
//!
//! **LiteLLM's proxy** counts requests and tokens in Redis with *fixed*
//! one-minute windows: a counter per key per minute (or, in its newer
//! limiter, a window start and a counter updated by a Lua script), reset
//! when the minute turns over, and checked before the call. A fixed window
//! lets a full limit through at 0:59 and another at 1:00: up to twice the
//! limit inside a trailing minute, which a strict window answers with 429s.
//! And it rejects rather than waits, the right shape for a gateway that
//! turns clients away, not for a client that wants its batch done.
//!
//! **redis-cell** (`CL.THROTTLE key max_burst count period`) implements GCRA
//! inside Redis: atomic, and it returns a precise "retry after", like our
//! script. But GCRA *is* a token bucket, scheduled by arrival times: with a
//! burst of the whole limit it lets the limit go at once and then refills
//! while those are still in the server's window, up to twice the limit in
//! one window (the `governor` row in the measurements the local limiter's
//! docs quote: 101 × 429 out of 350). With a burst of 1 it is safe and
//! spaced out, so the first window trickles. A strict sliding window needs a
//! sliding-window log, and a log is what the sorted sets are.
//!
//! The price of the log is memory: one sorted-set entry per request still
//! counting (about 100 bytes), per limit. For RPD that is one per request of
//! the last day: 250 on the free tier, fine; a big paid tier might prefer a
//! coarser daily count.

mod remote;
mod scripts;

pub use remote::RedisLimiter;

use sha2::{Digest, Sha256};

/// Whose quota a [`RedisLimiter`] draws from: a project (a hash of the API
/// key) and a model. Processes with equal scopes share one budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    project: String,
    model: String,
}

impl Scope {
    /// Hex digits of the key's SHA-256 kept as the project id: 64 bits, far
    /// more than enough to tell projects apart, useless for finding the key.
    const PROJECT_DIGITS: usize = 16;

    /// The scope of `api_key` and `model`. Only a hash of the key is kept.
    ///
    /// ```
    /// use bulk::redis::Scope;
    ///
    /// let scope = Scope::new("AIza-not-a-real-key", "models/gemini-2.5-flash");
    /// assert_eq!(scope.model(), "gemini-2.5-flash");
    /// assert_eq!(scope.project().len(), 16);
    /// assert!(!format!("{scope:?}").contains("AIza"));
    /// assert!(scope.key("rpm").starts_with("gemini-rl:{"));
    /// ```
    pub fn new(api_key: &str, model: &str) -> Scope {
        let digest = Sha256::digest(api_key.as_bytes());
        let mut project: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        project.truncate(Scope::PROJECT_DIGITS);
        Scope::with_project(&project, model)
    }

    /// The scope of the key this program would send (found the way
    /// `common::config::Config::from_env` finds it: the environment, then a
    /// `.env` file, silently) and `model`. Without a key (the built-in
    /// emulator), the project is `offline`.
    pub fn from_env(model: &str) -> Scope {
        let key = std::env::current_dir().ok().and_then(|dir| {
            common::config::Config::from_env_in(&dir, |name| std::env::var(name).ok())
                .ok()?
                .api_key
        });
        match key {
            Some(key) => Scope::new(key.expose(), model),
            None => Scope::with_project("offline", model),
        }
    }

    /// A scope with an explicit project id (a name for a test, or an id you
    /// already have). Characters that could break a key name or its hash
    /// tag (anything but letters, digits, `.`, `_` and `-`) become `_`.
    pub fn with_project(project: &str, model: &str) -> Scope {
        let model = model.strip_prefix("models/").unwrap_or(model);
        Scope {
            project: clean(project),
            model: clean(model),
        }
    }

    /// The project id (a hash of the key, for [`Scope::new`]).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The model, without a `models/` prefix.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The Redis key of one part of this scope's books, e.g. `key("rpm")`
    /// is `gemini-rl:{<project>:<model>}:rpm`. The parts are `rpm`, `tpm`,
    /// `tpm:w`, `tpm:sum`, `rpd`, `pause`, `stop`, `seq` and `learned`.
    pub fn key(&self, part: &str) -> String {
        format!("gemini-rl:{{{}:{}}}:{part}", self.project, self.model)
    }
}

/// Keeps what is safe inside a key name and its hash tag.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// `url` with any password replaced by `***`, fit to print.
fn redact(url: &str) -> String {
    common::error::redact_url(url)
}

/// The passwords a Redis URL carries (as written and percent-decoded), so
/// that they can be taken out of any message, the Redis client's included.
fn url_secrets(url: &str) -> Vec<String> {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut found = Vec::new();
    if let Some(scheme_end) = head.find("://") {
        let rest = &head[scheme_end + 3..];
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            // `user:pass@` or a lone `pass@` (some write the password alone).
            found.push(userinfo.split_once(':').map_or(userinfo, |(_, p)| p));
        }
    }
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=') {
            if common::error::is_password_param(name) {
                found.push(value);
            }
        }
    }
    found
        .into_iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| [s.to_owned(), common::error::percent_decode(s)])
        .collect()
}

/// Why the shared limiter could not be set up, or a call to Redis failed.
///
/// Each message is one line naming the Redis address (never its password),
/// fit to print before exiting.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL {url:?} for the shared rate limiter: {error}")]
    InvalidUrl {
        /// The URL, password removed.
        url: String,
        /// What the Redis client said, password removed. (Part of the message
        /// rather than a `source()`, so that printing the error chain does not
        /// say it twice.)
        error: String,
    },
    /// Redis did not answer at start (or could not run the scripts).
    #[error("cannot reach Redis at {url} for the shared rate limiter: {error}")]
    Unreachable {
        /// The URL, password removed.
        url: String,
        /// What the Redis client said, password removed. (Part of the message
        /// rather than a `source()`, so that printing the error chain does not
        /// say it twice.)
        error: String,
    },
    /// A command failed after connecting.
    #[error("Redis at {url} failed: {error}")]
    Redis {
        /// The URL, password removed.
        url: String,
        /// What the Redis client said, password removed. (Part of the message
        /// rather than a `source()`, so that printing the error chain does not
        /// say it twice.)
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_reaches_a_key_name() {
        let scope = Scope::new("secret-key-123", "gemini-2.5-flash");
        let name = scope.key("rpm");
        assert!(!name.contains("secret"));
        assert_eq!(
            scope,
            Scope::new("secret-key-123", "models/gemini-2.5-flash")
        );
        assert_ne!(scope, Scope::new("secret-key-124", "gemini-2.5-flash"));
        assert_ne!(scope, Scope::new("secret-key-123", "gemini-2.5-pro"));
    }

    #[test]
    fn braces_cannot_break_the_hash_tag() {
        let scope = Scope::with_project("a}b{c", "m:x");
        assert_eq!(scope.key("rpm"), "gemini-rl:{a_b_c:m_x}:rpm");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://user:hunter2@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            url_secrets("redis://u:hun%40ter@db?password=x2"),
            ["hun%40ter", "hun@ter", "x2", "x2"]
        );
        assert!(url_secrets("redis://db:6379/0").is_empty());
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("not a url"), "not a url");
    }
}
