//! A hand-written rate limiter for a quota counted on a strict sliding window.
//!
//! # What the server enforces
//!
//! The Gemini API counts requests per minute (RPM), input tokens per minute
//! (TPM) and requests per day (RPD), per project and per model. We treat each
//! of them as a *strict sliding window*: at no moment may the last 60 seconds
//! (or 24 hours) on the **server's** clock hold more than the limit. That is
//! the most demanding reading of the rule, so a limiter that satisfies it is
//! safe under any gentler one (a fixed minute, a midnight reset).
//!
//! # The rule this limiter follows
//!
//! > An admitted request occupies one slot of each limit from the moment we
//! > let it go until **admission + window + margin**. A request is let go only
//! > when every limit has room for it.
//!
//! The margin is there because we stamp a request when *we* admit it, but the
//! server counts it when it *arrives*: 40 to 85 ms later on a good day, more in
//! a burst that opens many connections at once. If request 1 travels slowly and
//! request 101 travels fast, both can land in the same server window even
//! though our stamps are a full window apart. Holding each slot a little longer
//! than the window absorbs that gap. The default margin is 2% of the window,
//! and never less than 250 ms ([`Limits::margin_or_default`]): 1.2 s for a
//! minute, ten times the worst gap measured, at a cost of 2% of throughput.
//!
//! The other half of the rule is what makes it fast: a request goes the moment
//! there is room, so a fresh limiter lets a whole window's worth go *at once*,
//! and the next batch goes exactly when the first batch's slots expire:
//!
//! ```text
//!   limit 100 per 10 s, margin 0.25 s, 350 requests submitted at t = 0
//!
//!   t (s)   0          10.25        20.5         30.75
//!           |==========|============|============|=====
//!   sent    100        100          100          50      -> 30.75 s, zero 429s
//!
//!   any trailing 10 s window on the server holds at most 100 requests
//! ```
//!
//! That is the best any limiter can do against a strict window (the ideal,
//! with no margin, is 30 s); the margin costs a quarter of a second per window.
//!
//! # How it compares
//!
//! **The course's sliding-window log** keeps the timestamps of the last N
//! requests and lets a request go when the oldest has aged out of the window.
//! It is right on the client's clock, and still gets 429s, for four reasons:
//!
//! * *No margin.* Its request 101 goes at exactly 10.000 s, when request 1's
//!   stamp expires. But request 1 *arrived* at 0.085 s, and request 101
//!   arrives at 10.040 s: the server's window (0.040, 10.040] holds both.
//!
//!   ```text
//!   client stamps   1 @ 0.000 ........................ 101 @ 10.000
//!   server arrivals   1 @ 0.085 ........................ 101 @ 10.040
//!                     |<------ less than 10 s apart ------>|  -> 429
//!   ```
//!
//! * *A thundering herd.* Every waiting task sleeps and re-checks on its own,
//!   so at each window boundary they all wake, one wins, and the rest go back
//!   to sleep: 450 wake-ups and 800 lock acquisitions for 350 requests.
//!   Here a single task sleeps until the head of the queue can go and wakes
//!   exactly the waiters that can go, once each.
//! * *No fairness.* Whichever sleeper wins the race goes first. Here waiters
//!   are served strictly in arrival order.
//! * *Requests only, and deaf to the server.* No tokens per minute, no daily
//!   quota, and nothing learned from a 429's `retryDelay`. Here all three
//!   limits are enforced together, [`Permit::settle`] corrects the token count
//!   with the real `usageMetadata.promptTokenCount`, and
//!   [`RateLimit::pause_until`] / [`RateLimit::stop`] let the server's answer
//!   stop everyone at once.
//!
//! **A token bucket** (or GCRA, as in `governor` and `aiolimiter`) set to a
//! burst of 100 and a refill of 10 per second lets 100 go at once, then keeps
//! refilling while those 100 are still inside the server's window:
//!
//! ```text
//!   t (s)    0                5                10
//!            |================|================|
//!   sent     100 at once      +50 refilled     +50 more
//!   server   window (0, 10] holds 100 + 100 = 200  -> 100 requests get 429
//! ```
//!
//! A bucket limits the *average* rate, and the burst is on top of it: within
//! one window it admits up to twice the limit. Set the burst to 1 and it is
//! safe, but then requests are spaced evenly and the first window is spent
//! trickling (35.2 s instead of about 30 s for the run above). A sliding window
//! needs a sliding-window limiter.
//!
//! # Design
//!
//! * [`Limits`] says what to enforce; `None` means unlimited (the 0 of the
//!   command line becomes `None`).
//! * [`Limiter`] is the in-process implementation: a cheap-to-clone handle on
//!   shared state behind a `std::sync::Mutex`. The state is one log per limit
//!   (a `VecDeque` of admissions and when they stop counting) and a FIFO queue
//!   of waiters (an id, a token count, a start time and a `oneshot` sender:
//!   40 bytes, plus about 100 for the channel, so 100,000 waiters cost the
//!   limiter under 15 MB). A single
//!   background task sleeps until the head of the queue fits and then admits
//!   everyone who fits, in order. Nobody polls, and a waiter costs no CPU.
//! * [`Permit`] is what an admission hands back. Hold it while the request is
//!   in flight; call [`Permit::settle`] with the real prompt token count when
//!   the response arrives.
//! * [`RateLimit`] is the interface the runner uses, so that another
//!   implementation (a limiter shared through Redis by several processes)
//!   can stand in for [`Limiter`] without the runner changing.
//!
//! The cap on requests *in flight* is part of [`Limiter`]
//! ([`Limits::max_in_flight`]) rather than a separate semaphore next to it,
//! because the order matters: a request must get its in-flight slot *before*
//! it is stamped. Stamped first and then kept waiting for a connection, it
//! would reach the server long after its stamp, which is exactly the gap the
//! margin is too small to cover.

mod config;
mod local;
mod permit;
mod window;

pub use config::Limits;
pub use local::Limiter;
pub use permit::{Permit, Settle};

use futures_util::future::BoxFuture;
use tokio::time::{Duration, Instant};

/// Why a request was not admitted.
///
/// Both variants are final: retrying the same call cannot succeed, so the
/// caller should record the failure rather than loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The request needs more input tokens than the per-window limit. It
    /// could never be admitted, so it fails at once instead of waiting forever.
    #[error(
        "a request of {tokens} input tokens can never fit a limit of {limit} tokens per window"
    )]
    TooLarge {
        /// The tokens the request asked for.
        tokens: u32,
        /// The tokens-per-window limit it cannot fit in.
        limit: u32,
    },
    /// The limiter was stopped (for example, the daily quota is spent), so no
    /// request will be admitted again.
    #[error("rate limiter stopped: {reason}")]
    Stopped {
        /// The reason given to [`RateLimit::stop`].
        reason: String,
    },
}

/// A snapshot of a limiter, for a progress bar or a final summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// What the limiter enforces.
    pub limits: Limits,
    /// Calls to `acquire` that are still waiting (for an in-flight slot or
    /// for room in the window).
    pub waiting: usize,
    /// Requests admitted so far.
    pub admitted: u64,
    /// The time admitted requests spent inside `acquire`, summed over all of
    /// them. Divide by `admitted` for the average wait.
    pub total_wait: Duration,
    /// Current use of each limit, as the limiter counts it (a slot counts
    /// until admission + window + margin). Only limited dimensions are
    /// tracked; an unlimited one reads 0.
    pub usage: Usage,
    /// Until when admissions are paused by [`RateLimit::pause_until`], if
    /// that is still in the future.
    pub paused_until: Option<Instant>,
    /// The reason given to [`RateLimit::stop`], once stopped.
    pub stopped: Option<String>,
    /// While the requests-per-day limit is reached: when the next request
    /// fits again. A run should end rather than wait for it.
    pub day_full_until: Option<Instant>,
    /// How many times the background task woke up. It wakes once per batch
    /// of admissions, not once per waiter: a test uses this to prove there is
    /// no thundering herd.
    pub wakeups: u64,
}

/// How much of each limit is in use right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests counted in the current window (against RPM).
    pub requests: u64,
    /// Input tokens counted in the current window (against TPM).
    pub tokens: u64,
    /// Requests counted in the current day (against RPD).
    pub day_requests: u64,
}

/// The interface the runner talks to, so the limiter behind it can change.
///
/// [`Limiter`] implements it in process. A limiter shared by several
/// processes (through Redis, say) can implement it too, and the runner takes
/// an `Arc<dyn RateLimit>` without caring which one it got.
///
/// Why a trait with a boxed future, and not `async fn` in the trait: a trait
/// with `async fn` cannot be used as `dyn RateLimit`, and choosing the
/// implementation at run time (a command-line flag) needs `dyn`. The box is
/// one small allocation per request, nothing next to an HTTP call.
///
/// Settling the token count is not a method here: it goes through the
/// [`Permit`], which remembers which limiter issued it (see [`Settle`]).
pub trait RateLimit: Send + Sync {
    /// Waits until a request of `tokens` input tokens may be sent, in FIFO
    /// order, and returns the permit that stands for it.
    ///
    /// Cancel-safe: dropping the future gives the place in the queue up.
    fn acquire(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>>;

    /// Admits nobody until `deadline` (the server said "retry in N s").
    /// A later deadline extends the pause; an earlier one does not shorten it.
    fn pause_until(&self, deadline: Instant);

    /// Fails every waiting and every future `acquire` with
    /// [`LimitError::Stopped`]. The first reason given is kept.
    fn stop(&self, reason: &str);

    /// A snapshot of the limiter's counters.
    fn stats(&self) -> Stats;

    /// Like `acquire`, but before every request still waiting: for a retry.
    /// The default joins the back of the queue like any request.
    fn acquire_first(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>> {
        self.acquire(tokens)
    }

    /// Changes one limit for the rest of the run (0 = unlimited); true if
    /// this limiter can. The default cannot, and keeps its limits.
    fn set_limit(&self, which: Which, limit: u32) -> bool {
        let _ = (which, limit);
        false
    }

    /// Limits learned by other processes and shared with this limiter (the
    /// Redis mode keeps them in Redis). The default has none.
    fn published_limits(&self) -> Vec<(Which, u32)> {
        Vec::new()
    }

    /// Counts requests an earlier run admitted, each given as how long ago.
    /// The default ignores them.
    fn remember(&self, ages: &[Duration]) {
        let _ = ages;
    }

    /// With books shared by other processes (Redis), whose admissions a
    /// permit's [`id`](Permit::id) numbers too: how many requests were in
    /// the window, this one included, when this process's first request was
    /// admitted. `None` when the books are this process's alone (the
    /// default), or nothing was admitted yet.
    fn in_window_at_first(&self) -> Option<u64> {
        None
    }
}

/// One of the three limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    /// Requests per window (RPM).
    Rpm,
    /// Input tokens per window (TPM).
    Tpm,
    /// Requests per day (RPD).
    Rpd,
}
