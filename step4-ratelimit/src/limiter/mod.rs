//! A hand-written rate limiter for a quota counted on a strict sliding window.
//!
//! Gemini counts requests per minute (RPM), input tokens per minute (TPM) and
//! requests per day (RPD), per project and model. We read each as a *strict
//! sliding window*, the most demanding reading: at no moment may the last 60 s
//! (or 24 h) on the **server's** clock hold more than the limit. The rule:
//!
//! > An admitted request holds a slot of each limit from the moment we let it
//! > go until **admission + window + margin**; a request goes only when every
//! > limit has room for it, and goes at once when they do.
//!
//! The margin covers the trip: we stamp a request when it leaves, the server
//! counts it when it arrives, 40 to 85 ms later, more in a burst (2% of the
//! window, at least 250 ms: [`Limits::margin_or_default`]). Going the moment
//! there is room makes it fast: a whole window's worth at once, then the next
//! batch exactly when the first one's slots expire (limit 100 per 10 s, 350
//! requests: 100 at 0 s, 10.25 s and 20.5 s, 50 at 30.75 s, zero 429s).
//!
//! The course's sliding-window log has no margin (its request 101 leaves at
//! exactly 10 s and may land while request 1 still counts on the server); its
//! sleepers all wake at every boundary and all but one sleep again (450
//! wake-ups for 350 requests), the race picks who goes, and it counts requests
//! only, deaf to the server. Here: a margin, one timer, a FIFO queue, three
//! limits with the real token count ([`Permit::settle`]), and
//! [`Limiter::pause_until`] and [`Limiter::stop`] for the server's "wait" and
//! "stop". A token bucket (GCRA: `governor`, `aiolimiter`) with a burst of 100
//! refills while the first 100 still count on the server (up to 200 in one
//! window); with a burst of 1 it is safe but trickles (35.2 s, not 30.75 s).
//!
//! The shape is mini-redis's for its expiring keys: a cheap-to-clone handle on
//! books behind a `std::sync::Mutex`, never held across an `.await`. The books
//! are a [`Window`] log per limit and a FIFO queue of waiters, each with a
//! `oneshot` channel (a request that fits on arrival is admitted there and
//! then, with no channel and no wait). One task, the *driver*, sleeps until the head of the
//! queue fits, admits everyone at the front who fits, and sleeps again: one
//! timer however many wait, each waiter woken once. The cap on requests in
//! flight ([`Limits::max_in_flight`]) is taken *before* the stamp: stamped,
//! then kept waiting for a connection, a request would arrive late. What
//! `bulk` adds (retries first, limits learned mid-run) is in `hooks.rs`.

mod hooks;
mod permit;
mod window;

pub use crate::limits::Limits;
pub use permit::{Permit, Settle};

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use common::quota::QuotaKind;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::time::{Duration, Instant};

use window::Window;

/// Why a request was not admitted. Both are final: asking again cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// More input tokens than the per-window limit: it could never go.
    #[error("a request of {tokens} input tokens can never fit {limit} tokens per window")]
    TooLarge {
        /// The tokens asked for.
        tokens: u32,
        /// The tokens-per-window limit.
        limit: u32,
    },
    /// [`Limiter::stop`] was called: the daily quota is spent, say.
    #[error("rate limiter stopped: {reason}")]
    Stopped {
        /// The reason given to `stop`.
        reason: String,
    },
}

/// The rate limiter: a handle, cheap to clone, on shared books.
///
/// ```
/// # use step4_ratelimit::limiter::{Limiter, Limits};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), step4_ratelimit::limiter::LimitError> {
/// let limiter = Limiter::new(Limits::default().with_rpm(10).with_tpm(250_000));
/// let permit = limiter.acquire(12).await?; // 12 input tokens, estimated
/// permit.settle(9); // the response said 9
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Limiter(Arc<Core>);

/// What the handles, the driver and the permits share.
struct Core {
    state: Mutex<State>,
    /// Wakes the driver: the head of the queue changed, or room came early.
    wake_driver: Notify,
    /// The cap on requests in flight, if any (FIFO, like the queue).
    slots: Option<Arc<Semaphore>>,
}

/// The books.
struct State {
    limits: Limits,
    /// A log per limited kind, in [`KINDS`] order.
    windows: [Option<Window>; 3],
    /// Waiters in arrival order (one whose caller left is skipped at the front).
    queue: VecDeque<Waiter>,
    /// Ids are handed out at admission, so each log stays sorted by id.
    next_id: u64,
    /// Admit nobody before this: the server said "retry in N s".
    paused_until: Option<Instant>,
    /// Set by `stop`.
    stopped: Option<String>,
    /// Whether the driver runs: it starts with a queue and ends with it.
    driving: bool,
    /// How often the driver woke (the tests count them: no herd).
    wakeups: u64,
}

/// A request waiting its turn.
struct Waiter {
    tokens: u32,
    /// Queued by `acquire_first`.
    retry: bool,
    answer: oneshot::Sender<Answer>,
}

/// What a waiter is told: its admission (id and instant), or the stop.
type Answer = Result<(u64, Instant), LimitError>;

/// What becomes of a request on arrival.
enum Arrival {
    /// Nobody ahead and room now: admitted, with this id, at this instant.
    Admitted(u64, Instant),
    /// Queued: its answer comes on this channel.
    Queued(oneshot::Receiver<Answer>),
}

/// The three limits, in the order of [`State::windows`].
const KINDS: [QuotaKind; 3] = [QuotaKind::Rpm, QuotaKind::Tpm, QuotaKind::Rpd];

impl Limiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> Limiter {
        let limits = limits.normalised();
        let windows = KINDS.map(|kind| Some(Window::new(of(&limits, kind)?, hold(&limits, kind))));
        let slots = limits
            .max_in_flight
            .map(|n| Semaphore::new(n.min(Semaphore::MAX_PERMITS)));
        let state = State {
            limits,
            windows,
            queue: VecDeque::new(),
            next_id: 0,
            paused_until: None,
            stopped: None,
            driving: false,
            wakeups: 0,
        };
        let core = Core {
            state: Mutex::new(state),
            wake_driver: Notify::new(),
            slots: slots.map(Arc::new),
        };
        Limiter(Arc::new(core))
    }

    /// Waits until a request of `tokens` input tokens may go, in arrival
    /// order, and returns its permit. Fails at once if it could never fit,
    /// and when the limiter stops. Cancel-safe: dropped, it gives its place
    /// up (or an admission it did not collect). A large request at the head
    /// is not overtaken by small ones: that is what keeps it from starving.
    pub async fn acquire(&self, tokens: u32) -> Result<Permit, LimitError> {
        self.acquire_in(tokens, false).await
    }

    /// Admits nobody until `deadline`: a 429's `retryDelay` says the server
    /// counts more than we do, so everyone backs off, not only the request
    /// refused. A later deadline extends the pause; an earlier one is ignored.
    pub fn pause_until(&self, deadline: Instant) {
        let mut state = self.0.lock();
        state.paused_until = state.paused_until.max(Some(deadline));
        // A sleeping driver wakes at its old deadline and sees the pause.
    }

    /// Fails every waiter now, and every later `acquire`, with `reason` (the
    /// first one is kept): for when going on is pointless.
    pub fn stop(&self, reason: &str) {
        let (error, queue) = {
            let mut state = self.0.lock();
            let reason = state.stopped.get_or_insert_with(|| reason.into()).clone();
            (
                LimitError::Stopped { reason },
                std::mem::take(&mut state.queue),
            )
        };
        for waiter in queue {
            let _ = waiter.answer.send(Err(error.clone()));
        }
        if let Some(slots) = &self.0.slots {
            slots.close(); // Whoever waits for an in-flight slot fails too.
        }
    }

    /// What this limiter enforces right now.
    pub fn limits(&self) -> Limits {
        self.0.lock().limits.clone()
    }

    /// `acquire`, joining the queue at the back, or (a retry) at the front.
    async fn acquire_in(&self, tokens: u32, first: bool) -> Result<Permit, LimitError> {
        let (core, since) = (&self.0, Instant::now());
        // The in-flight slot comes first: once stamped, a request must leave.
        // One that could never fit fails before it waits for a slot.
        let slot = match &core.slots {
            Some(slots) => {
                core.lock().check(tokens)?;
                match Arc::clone(slots).acquire_owned().await {
                    Ok(slot) => Some(slot),
                    Err(_closed_by_stop) => {
                        return Err(core.lock().check(0).err().unwrap_or_else(gone));
                    }
                }
            }
            None => None,
        };
        // A temporary guard: the lock is released before any `.await`.
        let arrival = core.lock().arrive(tokens, first, core)?;
        let (id, at) = match arrival {
            Arrival::Admitted(id, at) => (id, at),
            Arrival::Queued(answer) => wait_turn(core, answer).await?,
        };
        let (books, waited) = (Arc::clone(core), at.saturating_duration_since(since));
        Ok(Permit::new(books, id, tokens, at, waited, slot))
    }
}

/// Waits in the queue for the driver's answer. Cancel-safe: the [`Place`]
/// gives the place (or an admission not collected) back if dropped.
async fn wait_turn(core: &Arc<Core>, answer: oneshot::Receiver<Answer>) -> Answer {
    let mut place = Place {
        core: Arc::clone(core),
        answer,
        done: false,
    };
    let answer = (&mut place.answer).await;
    place.done = true;
    answer.unwrap_or_else(|_| Err(gone()))
}

impl Core {
    /// Locks the books. Our critical sections run no caller code, so a
    /// poisoned lock still guards consistent books: carry on.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admission `id` really used `tokens` (`None`: the server did not count
    /// it at all); wakes the driver if that freed room.
    fn reweigh(&self, id: u64, tokens: Option<u32>) {
        let mut state = self.lock();
        let mut freed = false;
        for (kind, window) in KINDS.iter().zip(state.windows.iter_mut()) {
            let units = match tokens {
                None => 0,
                Some(n) if *kind == QuotaKind::Tpm => u64::from(n),
                Some(_) => continue,
            };
            freed |= window.as_mut().is_some_and(|w| w.reweigh(id, units));
        }
        if freed {
            self.wake_driver.notify_one();
        }
    }
}

impl Settle for Core {
    fn settle(&self, id: u64, _charged: u32, actual: u32) {
        self.reweigh(id, Some(actual));
    }

    fn refund(&self, id: u64) {
        self.reweigh(id, None);
    }
}

impl State {
    /// Fails if the limiter was stopped, or `tokens` can never fit.
    fn check(&self, tokens: u32) -> Result<(), LimitError> {
        if let Some(reason) = &self.stopped {
            return Err(LimitError::Stopped {
                reason: reason.clone(),
            });
        }
        match self.limits.tpm {
            Some(limit) if tokens > limit => Err(LimitError::TooLarge { tokens, limit }),
            _ => Ok(()),
        }
    }

    /// A request arrives: admitted now if nobody is ahead and there is room,
    /// queued otherwise (and the driver started, or told if it must know).
    fn arrive(
        &mut self,
        tokens: u32,
        first: bool,
        core: &Arc<Core>,
    ) -> Result<Arrival, LimitError> {
        self.check(tokens)?;
        let now = Instant::now(); // Read under the lock: stamps in log order.
        self.expire(now);
        self.skip_departed();
        // Going ahead of a waiter would break FIFO, even if this one fits.
        if (first || self.queue.is_empty()) && self.ready_at(tokens, now) <= now {
            return Ok(Arrival::Admitted(self.admit(tokens, now), now));
        }
        let (answer, receiver) = oneshot::channel();
        let at = match first {
            true => self.queue.iter().take_while(|w| w.retry).count(),
            false => self.queue.len(),
        };
        self.queue.insert(
            at,
            Waiter {
                tokens,
                retry: first,
                answer,
            },
        );
        if !self.driving {
            self.driving = true;
            tokio::spawn(drive(Arc::clone(core)));
        } else if at == 0 {
            core.wake_driver.notify_one(); // A new head: the driver must look.
        }
        Ok(Arrival::Queued(receiver))
    }

    /// The driver's turn: admits, in order, every waiter at the front that
    /// fits now, and says when the head will (`None`: nobody waits).
    fn admit_ready(&mut self, now: Instant) -> Option<Instant> {
        self.wakeups += 1;
        self.expire(now);
        loop {
            self.skip_departed();
            let ready = self.ready_at(self.queue.front()?.tokens, now);
            if ready > now {
                return Some(ready);
            }
            let waiter = self.queue.pop_front()?;
            // Told, then counted: if the caller has gone, nothing is counted.
            if waiter.answer.send(Ok((self.next_id, now))).is_ok() {
                self.admit(waiter.tokens, now);
            }
        }
    }

    /// Counts the next admission, of `tokens` at `at`, in every limited
    /// window, and returns its id.
    fn admit(&mut self, tokens: u32, at: Instant) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        for (kind, window) in KINDS.iter().zip(&mut self.windows) {
            if let Some(window) = window {
                window.record(id, units(*kind, tokens), at);
            }
        }
        id
    }

    /// When a request of `tokens` fits every window and no pause holds it:
    /// the latest of their answers, since each only frees room with time.
    fn ready_at(&self, tokens: u32, now: Instant) -> Instant {
        let windows = KINDS.iter().zip(&self.windows);
        let each =
            windows.filter_map(|(kind, w)| Some(w.as_ref()?.ready_at(units(*kind, tokens), now)));
        each.fold(self.paused_until.unwrap_or(now).max(now), Instant::max)
    }

    fn expire(&mut self, now: Instant) {
        for window in self.windows.iter_mut().flatten() {
            window.expire(now);
        }
    }

    /// Drops the waiters at the front whose caller gave up.
    fn skip_departed(&mut self) {
        while self.queue.front().is_some_and(|w| w.answer.is_closed()) {
            self.queue.pop_front();
        }
    }
}

/// The driver: like mini-redis's `purge_expired_tasks`, it does what is due,
/// then sleeps until the next deadline or until told something changed. It
/// ends when nobody waits; the next request to queue starts another.
async fn drive(core: Arc<Core>) {
    loop {
        let next = {
            let mut state = core.lock();
            let next = state.admit_ready(Instant::now());
            state.driving = next.is_some();
            next
        };
        let Some(deadline) = next else { return };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = core.wake_driver.notified() => {}
        }
    }
}

/// A place in the queue. Dropped before its answer came (the caller gave
/// up), it gives back the admission that came meanwhile, if one did, and
/// tells the driver, which may have been sleeping for it.
struct Place {
    core: Arc<Core>,
    answer: oneshot::Receiver<Answer>,
    done: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Closed first: from now on the driver's send fails, so what
        // `try_recv` says is final and no admission slips in unseen.
        self.answer.close();
        if let Ok(Ok((id, _))) = self.answer.try_recv() {
            self.core.reweigh(id, None);
        }
        self.core.wake_driver.notify_one();
    }
}

/// What one admission of `tokens` weighs in the window of `kind`.
fn units(kind: QuotaKind, tokens: u32) -> u64 {
    match kind {
        QuotaKind::Tpm => u64::from(tokens),
        QuotaKind::Rpm | QuotaKind::Rpd => 1,
    }
}

/// The limit of `kind` in `limits`.
fn of(limits: &Limits, kind: QuotaKind) -> Option<u32> {
    match kind {
        QuotaKind::Rpm => limits.rpm,
        QuotaKind::Tpm => limits.tpm,
        QuotaKind::Rpd => limits.rpd,
    }
}

/// How long a slot of `kind` counts: its window plus the margin.
fn hold(limits: &Limits, kind: QuotaKind) -> Duration {
    let window = if kind == QuotaKind::Rpd {
        limits.day
    } else {
        limits.window
    };
    window.saturating_add(limits.margin_or_default())
}

/// The error for a waiter whose limiter went away under it.
fn gone() -> LimitError {
    LimitError::Stopped {
        reason: "the rate limiter shut down".into(),
    }
}
