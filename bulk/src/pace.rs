//! Pacing for a real run: the [`RateLimit`] interface the runner talks to,
//! and [`LocalLimiter`], step 4's limiter behind it.
//!
//! Step 4's [`Limiter`] is the lesson: a FIFO queue, a log per limit, one
//! timer. A run of thousands of prompts needs more around it: the limiter
//! may live in Redis, shared by many processes ([`crate::redis`]), so the
//! runner takes any `Arc<dyn RateLimit>`; and it wants figures for its
//! progress bar and summary ([`Stats`]), retries that go first, limits
//! learned from the server mid-run, and the requests an earlier run sent
//! (step 4's limiter has a hook for each; [`LocalLimiter`] counts the rest).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use common::quota::QuotaKind;
use futures_util::future::BoxFuture;
use tokio::time::{Duration, Instant};

pub use step4_ratelimit::limiter::{LimitError, Limiter, Limits, Permit, Settle};

use crate::gauge::Gauge;

/// The interface the runner uses, so that the limiter behind it can change.
///
/// Why a trait with a boxed future, and not `async fn` in the trait: a trait
/// with `async fn` cannot be used as `dyn RateLimit`, and choosing the
/// implementation at run time (`--redis`) needs `dyn`. The box is one small
/// allocation per request, nothing next to an HTTP call. Settling the token
/// count is not a method here: it goes through the [`Permit`], which knows
/// the books that issued it ([`Settle`]).
pub trait RateLimit: Send + Sync {
    /// Waits until a request of `tokens` input tokens may be sent, in FIFO
    /// order, and returns its permit. Cancel-safe: dropping the future gives
    /// the place in the queue up.
    fn acquire(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>>;

    /// Admits nobody until `deadline` (the server said "retry in N s"). A
    /// later deadline extends the pause; an earlier one does not shorten it.
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
    fn set_limit(&self, kind: QuotaKind, limit: u32) -> bool {
        let _ = (kind, limit);
        false
    }

    /// Limits learned by other processes and shared with this limiter (the
    /// Redis mode keeps them in Redis). The default has none.
    fn published_limits(&self) -> Vec<(QuotaKind, u32)> {
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

/// A snapshot of a limiter, for a progress bar or a final summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// What the limiter enforces.
    pub limits: Limits,
    /// Calls to `acquire` still waiting (for an in-flight slot or for room).
    pub waiting: usize,
    /// Requests admitted so far.
    pub admitted: u64,
    /// The time admitted requests spent in `acquire`, summed.
    pub total_wait: Duration,
    /// What counts against each limit right now (an unlimited one reads 0).
    pub usage: Usage,
    /// Until when admissions are paused, if that is still in the future.
    pub paused_until: Option<Instant>,
    /// The reason given to `stop`, once stopped.
    pub stopped: Option<String>,
    /// While the requests-per-day limit is reached: when the next request
    /// fits again. A run should end rather than wait for it.
    pub day_full_until: Option<Instant>,
    /// How many times the limiter's waiters were woken to look again (its
    /// driver, or a Redis waiter asking again).
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

/// Step 4's [`Limiter`], in this process, with the counters [`Stats`] needs.
pub struct LocalLimiter {
    limiter: Limiter,
    /// Calls to `acquire` in progress.
    waiting: AtomicUsize,
    /// What the permits and the calls said (a std mutex: a few assignments).
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    admitted: u64,
    total_wait: Duration,
    paused_until: Option<Instant>,
    stopped: Option<String>,
}

impl LocalLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> LocalLimiter {
        LocalLimiter {
            limiter: Limiter::new(limits),
            waiting: AtomicUsize::new(0),
            counts: Mutex::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `acquire` or `acquire_first`, counted.
    async fn counted(&self, tokens: u32, first: bool) -> Result<Permit, LimitError> {
        let _waiting = Gauge::enter(&self.waiting);
        let permit = match first {
            true => self.limiter.acquire_first(tokens).await?,
            false => self.limiter.acquire(tokens).await?,
        };
        let mut counts = self.counts();
        counts.admitted += 1;
        counts.total_wait = counts.total_wait.saturating_add(permit.waited());
        Ok(permit)
    }
}

impl RateLimit for LocalLimiter {
    fn acquire(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>> {
        Box::pin(self.counted(tokens, false))
    }

    fn acquire_first(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>> {
        Box::pin(self.counted(tokens, true))
    }

    fn pause_until(&self, deadline: Instant) {
        self.limiter.pause_until(deadline);
        let mut counts = self.counts();
        counts.paused_until = counts.paused_until.max(Some(deadline));
    }

    fn stop(&self, reason: &str) {
        self.limiter.stop(reason);
        self.counts()
            .stopped
            .get_or_insert_with(|| reason.to_owned());
    }

    fn stats(&self) -> Stats {
        let now = Instant::now();
        let (day_requests, day_full_until) = self.limiter.usage(QuotaKind::Rpd);
        let counts = self.counts();
        Stats {
            limits: self.limiter.limits(),
            waiting: self.waiting.load(Ordering::Relaxed),
            admitted: counts.admitted,
            total_wait: counts.total_wait,
            usage: Usage {
                requests: self.limiter.usage(QuotaKind::Rpm).0,
                tokens: self.limiter.usage(QuotaKind::Tpm).0,
                day_requests,
            },
            paused_until: counts.paused_until.filter(|&until| until > now),
            stopped: counts.stopped.clone(),
            day_full_until,
            wakeups: self.limiter.wakeups(),
        }
    }

    fn set_limit(&self, kind: QuotaKind, limit: u32) -> bool {
        self.limiter.set_limit(kind, limit);
        true
    }

    fn remember(&self, ages: &[Duration]) {
        self.limiter.remember(ages);
    }
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("limits", &self.limiter.limits())
            .finish_non_exhaustive()
    }
}
