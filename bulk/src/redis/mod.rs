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

mod error;
mod remote;
mod scope;
mod scripts;

pub use error::SharedError;
pub use remote::RedisLimiter;
pub use scope::Scope;
