//! [`Limiter`]: the in-process rate limiter.
//!
//! The shape is the one mini-redis uses for its database with expiring keys:
//!
//! * [`Limiter`] is a handle. Cloning it is cheap, and every clone talks to
//!   the same `Core` value.
//! * `Core` keeps the state behind a `std::sync::Mutex`, plus a `Notify`
//!   used to wake the background task.
//! * The background task, the *driver*, sleeps until the head of the queue
//!   can go (or until it is told something changed), admits everyone who can
//!   go, in order, and goes back to sleep. There is exactly one timer however
//!   many requests wait, and each waiter is woken exactly once, when it is
//!   admitted.
//!
//! The life of a request:
//!
//! 1. `acquire` takes an in-flight slot, if there is a cap.
//! 2. Under the lock: if nobody is queued and every limit has room, the
//!    request is admitted on the spot (the common case when under the limit:
//!    no task switch at all). Otherwise it joins the back of the queue with
//!    a `oneshot` channel and waits on it.
//! 3. The driver admits it when its turn comes and there is room, and sends
//!    the admission down the channel.
//!
//! Why a `std::sync::Mutex` and not `tokio::sync::Mutex`: the lock is only
//! held for a few comparisons and `VecDeque` operations, never across an
//! `.await`. An async mutex earns its cost only when you must hold it while
//! waiting; here it would only be slower. The compiler keeps us honest: a
//! std `MutexGuard` is not `Send`, so holding one across an `.await` inside
//! a spawned task would not compile.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::{Duration, Instant};

use super::window::Window;
use super::{LimitError, Limits, Permit, RateLimit, Settle, Stats, Usage, Which};
use crate::gauge::Gauge;

/// The in-process rate limiter. See the [module documentation](super) for
/// what it guarantees and how it compares with the usual algorithms.
///
/// ```
/// use std::time::Duration;
/// use step4_ratelimit::limiter::{Limiter, Limits};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), step4_ratelimit::limiter::LimitError> {
/// let limiter = Limiter::new(Limits::default().with_rpm(10).with_tpm(250_000).with_rpd(250));
/// let permit = limiter.acquire(12).await?; // 12 input tokens, estimated
/// // ... send the request; the response says it really was 9 tokens:
/// permit.settle(9);
/// assert_eq!(limiter.stats().admitted, 1);
/// # Ok(())
/// # }
/// ```
///
/// It needs a Tokio runtime with the time driver: the first time a request
/// has to wait, the limiter spawns its background task. That task ends when
/// the last clone of the handle is dropped.
#[derive(Clone)]
pub struct Limiter {
    handle: Arc<Handle>,
}

/// Owned by the `Limiter` clones (and only by them), so that its `Drop` runs
/// when the last clone goes, and can tell the driver to stop. The driver and
/// the permits hold `Core` directly and so do not keep it alive.
struct Handle {
    core: Arc<Core>,
}

/// Everything the handles, the driver and the permits share.
struct Core {
    /// The state. See the module documentation for why a std mutex.
    state: Mutex<State>,
    /// Wakes the driver when the head of the queue changed, or when room
    /// appeared early (a permit settled for fewer tokens).
    wake_driver: Notify,
    /// Calls to `acquire` still in progress. An atomic rather than part of
    /// `State` because it is updated on entry and exit of every call,
    /// including cancelled ones, and needs no lock.
    waiting: AtomicUsize,
    /// The in-flight cap, if any. Tokio's semaphore is itself FIFO, so the
    /// order of arrival is kept through both stages.
    slots: Option<Arc<Semaphore>>,
}

/// The state behind the lock.
struct State {
    /// What we enforce: as configured, then as learned from the server
    /// ([`Limiter::set_limit`]).
    limits: Limits,
    /// Requests per window, if limited.
    requests: Option<Window>,
    /// Input tokens per window, if limited.
    tokens: Option<Window>,
    /// Requests per day, if limited.
    day: Option<Window>,
    /// Waiters, in arrival order. Waiters whose caller gave up stay in place
    /// until they reach the front, where they are skipped: removing them from
    /// the middle would cost O(n) each, and a mass cancellation (Ctrl-C with
    /// 100,000 queued) would turn quadratic.
    queue: VecDeque<Waiter>,
    /// The next waiter id to hand out: how a waiter that gives up finds
    /// itself in the queue.
    next_id: u64,
    /// The next admission id. Handed out when a request is admitted, so ids
    /// grow in admission order and the window logs stay sorted by id, even
    /// when a retried request goes before requests queued earlier.
    next_admission: u64,
    /// Admit nobody before this instant (the server asked us to back off).
    paused_until: Option<Instant>,
    /// Set by `stop`: every `acquire` fails with this reason.
    stopped: Option<String>,
    /// Whether the background task exists yet, or should end.
    driver: Driver,
    /// Requests admitted so far.
    admitted: u64,
    /// Time admitted requests spent in `acquire`, summed.
    total_wait: Duration,
    /// How many times the driver woke up.
    wakeups: u64,
}

/// The background task's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// Nobody has had to wait yet, so there is no task.
    NotStarted,
    /// The task is running.
    Running,
    /// The last handle was dropped: the task should end.
    ShutDown,
}

/// A request waiting its turn. Small on purpose: 40 bytes here, plus the
/// channel's own allocation of about 100, so 100,000 waiters cost the
/// limiter under 15 MB.
struct Waiter {
    /// Its place in line, and its admission's id.
    id: u64,
    /// The input tokens it needs.
    tokens: u32,
    /// A retry: it queues before every request not yet sent, after the
    /// retries already queued.
    retry: bool,
    /// When its `acquire` began, for the waiting-time total.
    since: Instant,
    /// Where to send the answer. If the caller gave up, the receiving end is
    /// closed, and `is_closed` tells us to skip it.
    answer: oneshot::Sender<Answer>,
}

/// What a waiter is told: admitted, or stopped.
type Answer = Result<Admission, LimitError>;

/// An admission: which request, and when it was let go.
#[derive(Debug, Clone, Copy)]
struct Admission {
    id: u64,
    at: Instant,
}

/// The result of arriving at the limiter.
enum Arrival {
    /// Room right away: admitted.
    Admitted(Admission),
    /// Queued: wait for the answer on this channel.
    Queued {
        id: u64,
        answer: oneshot::Receiver<Answer>,
        wake: Wake,
    },
}

/// Whom an arrival has to wake.
enum Wake {
    /// The driver already has a head to sleep for: nobody.
    Nobody,
    /// This waiter is the new head: the driver may be idle, tell it.
    Driver,
    /// First waiter ever: start the driver.
    SpawnDriver,
}

/// What the driver should do next.
enum Next {
    /// Sleep until this instant, when the head of the queue fits.
    At(Instant),
    /// Nobody is waiting: sleep until told.
    Idle,
    /// The limiter is gone: end.
    ShutDown,
}

impl Limiter {
    /// A limiter enforcing `limits`. Nothing is spawned until a request
    /// first has to wait.
    pub fn new(limits: Limits) -> Limiter {
        let limits = limits.normalised();
        let margin = limits.margin_or_default();
        // A slot counts for the window plus the margin (see the module docs).
        let hold = limits.window.saturating_add(margin);
        let day_hold = limits.day.saturating_add(margin);
        let state = State {
            limits: limits.clone(),
            requests: limits.rpm.map(|n| Window::new(n, hold)),
            tokens: limits.tpm.map(|n| Window::new(n, hold)),
            day: limits.rpd.map(|n| Window::new(n, day_hold)),
            queue: VecDeque::new(),
            next_id: 0,
            next_admission: 0,
            paused_until: None,
            stopped: None,
            driver: Driver::NotStarted,
            admitted: 0,
            total_wait: Duration::ZERO,
            wakeups: 0,
        };
        let slots = limits
            .max_in_flight
            .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        let core = Arc::new(Core {
            state: Mutex::new(state),
            wake_driver: Notify::new(),
            waiting: AtomicUsize::new(0),
            slots,
        });
        Limiter {
            handle: Arc::new(Handle { core }),
        }
    }

    /// What this limiter enforces right now.
    pub fn limits(&self) -> Limits {
        self.handle.core.lock().limits.clone()
    }

    /// Changes one limit for the rest of the run (0 = unlimited): the server
    /// said what its limit really is. Admissions already counted keep
    /// counting against the new limit; a waiter that now fits goes at once.
    pub fn set_limit(&self, which: Which, limit: u32) {
        let core = &self.handle.core;
        let mut state = core.lock();
        state.set_limit(which, limit);
        let anyone_waiting = !state.queue.is_empty();
        drop(state);
        if anyone_waiting {
            core.wake_driver.notify_one();
        }
    }

    /// Counts requests admitted before this limiter existed (by an earlier
    /// run, remembered in the state file), each given as how long ago it was
    /// admitted, in any order. They fill the request and day windows as the
    /// server still counts them; their tokens are not known and not counted.
    pub fn remember(&self, ages: &[Duration]) {
        let mut ages = ages.to_vec();
        // Oldest first, so that the logs stay in expiry order.
        ages.sort_unstable_by(|a, b| b.cmp(a));
        let mut state = self.handle.core.lock();
        let now = Instant::now();
        for age in ages {
            // Further back than this clock reaches: count it as admitted
            // now, which holds its slot longer than needed, never shorter.
            let at = now.checked_sub(age).unwrap_or(now);
            let id = state.next_admission;
            state.next_admission += 1;
            if let Some(requests) = &mut state.requests {
                requests.record(id, 1, at);
            }
            if let Some(day) = &mut state.day {
                day.record(id, 1, at);
            }
        }
        state.expire(now);
    }

    /// Like [`Limiter::acquire`], but the request goes before every request
    /// still waiting: it is a retry, it has waited longest, and its answer
    /// is what its caller is missing.
    pub async fn acquire_first(&self, tokens: u32) -> Result<Permit, LimitError> {
        self.acquire_in(tokens, Place::Front).await
    }

    /// Waits until a request of `tokens` input tokens may be sent, and
    /// returns its permit. Waiters are admitted strictly in arrival order.
    ///
    /// Fails at once with [`LimitError::TooLarge`] if `tokens` exceeds the
    /// tokens-per-window limit, and with [`LimitError::Stopped`] once the
    /// limiter is stopped (also while waiting).
    ///
    /// Cancel-safe: if the future is dropped while waiting, its place in the
    /// queue is given up, and if it was admitted in the meantime, the slots
    /// are given back (its caller never saw the permit, so nothing was sent).
    ///
    /// Head-of-line blocking is deliberate: a large request at the front is
    /// not overtaken by small ones behind it, even when they would fit. That
    /// is what keeps it from being starved, and it costs little, since the
    /// large request goes as soon as enough tokens have aged out.
    pub async fn acquire(&self, tokens: u32) -> Result<Permit, LimitError> {
        self.acquire_in(tokens, Place::Back).await
    }

    /// `acquire`, joining the queue at `place`.
    async fn acquire_in(&self, tokens: u32, place: Place) -> Result<Permit, LimitError> {
        let core = &self.handle.core;
        let since = Instant::now();
        let _waiting = Gauge::enter(&core.waiting);

        // A request that can never fit fails now rather than waiting forever.
        {
            let state = core.lock();
            if let Some(limit) = state.limits.tpm.filter(|&limit| tokens > limit) {
                return Err(LimitError::TooLarge { tokens, limit });
            }
            state.check_running()?;
        }

        // The in-flight slot comes first: once stamped, a request must leave
        // at once, or it reaches the server later than the margin allows for.
        let slot = core.take_slot().await?;

        // The guard is a temporary, dropped at the end of this statement:
        // the lock is never held across the `.await` below.
        let arrival = core.lock().arrive(tokens, since, place)?;
        let admission = match arrival {
            Arrival::Admitted(admission) => admission,
            Arrival::Queued { id, answer, wake } => {
                core.wake(wake);
                let ticket = Ticket {
                    core: Arc::clone(core),
                    id,
                    since,
                    answer: Some(answer),
                };
                ticket.await?
            }
        };
        Ok(Permit::new(
            Arc::clone(core) as Arc<dyn Settle>,
            admission.id,
            tokens,
            admission.at,
            admission.at.saturating_duration_since(since),
            slot,
        ))
    }

    /// Admits nobody until `deadline`: the server answered 429 with
    /// `retryDelay`, so its count and ours disagree and everyone must back off,
    /// not only the request that was refused. A later deadline extends the
    /// pause; an earlier one does not shorten it.
    pub fn pause_until(&self, deadline: Instant) {
        let mut state = self.handle.core.lock();
        state.paused_until = Some(state.paused_until.map_or(deadline, |p| p.max(deadline)));
        // No need to wake the driver: if it sleeps, it wakes at its old
        // deadline, sees the pause, and sleeps again; if it is idle, the next
        // arrival finds the pause and queues.
    }

    /// Fails every waiter now, and every later `acquire`, with
    /// [`LimitError::Stopped`] carrying `reason` (the first reason given is
    /// kept). For when going on is pointless, e.g. the daily quota is spent.
    pub fn stop(&self, reason: &str) {
        let core = &self.handle.core;
        let (error, queue) = {
            let mut state = core.lock();
            let reason = state
                .stopped
                .get_or_insert_with(|| reason.to_owned())
                .clone();
            (
                LimitError::Stopped { reason },
                std::mem::take(&mut state.queue),
            )
        };
        // Answer outside the lock: sending to 100,000 waiters need not keep
        // everyone else out. Waiters that already left just miss the message.
        for waiter in queue {
            let _ = waiter.answer.send(Err(error.clone()));
        }
        // Those still waiting for an in-flight slot fail when it closes.
        if let Some(slots) = &core.slots {
            slots.close();
        }
    }

    /// A snapshot of the counters, for a progress bar or a summary.
    pub fn stats(&self) -> Stats {
        let core = &self.handle.core;
        let mut state = core.lock();
        let now = Instant::now();
        state.expire(now);
        let used = |window: &Option<Window>| window.as_ref().map_or(0, Window::used);
        let day_full_until = state.day.as_ref().and_then(|day| {
            let ready = day.ready_at(1, now);
            (ready > now).then_some(ready)
        });
        Stats {
            limits: state.limits.clone(),
            day_full_until,
            waiting: core.waiting.load(Ordering::Relaxed),
            admitted: state.admitted,
            total_wait: state.total_wait,
            usage: Usage {
                requests: used(&state.requests),
                tokens: used(&state.tokens),
                day_requests: used(&state.day),
            },
            paused_until: state.paused_until.filter(|&p| p > now),
            stopped: state.stopped.clone(),
            wakeups: state.wakeups,
        }
    }
}

impl RateLimit for Limiter {
    fn acquire(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>> {
        Box::pin(Limiter::acquire(self, tokens))
    }

    fn pause_until(&self, deadline: Instant) {
        Limiter::pause_until(self, deadline);
    }

    fn stop(&self, reason: &str) {
        Limiter::stop(self, reason);
    }

    fn stats(&self) -> Stats {
        Limiter::stats(self)
    }

    fn acquire_first(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>> {
        Box::pin(Limiter::acquire_first(self, tokens))
    }

    fn set_limit(&self, which: Which, limit: u32) -> bool {
        Limiter::set_limit(self, which, limit);
        true
    }

    fn remember(&self, ages: &[Duration]) {
        Limiter::remember(self, ages);
    }
}

/// Where an arrival joins the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Behind everyone: a new request.
    Back,
    /// Before everyone: a retry.
    Front,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits())
            .finish_non_exhaustive()
    }
}

impl Drop for Handle {
    /// The last `Limiter` clone is gone: nobody can call `acquire` any more,
    /// so the driver has nothing left to do.
    fn drop(&mut self) {
        self.core.lock().driver = Driver::ShutDown;
        self.core.wake_driver.notify_one();
    }
}

impl Core {
    /// Locks the state.
    ///
    /// A panic while holding the lock would poison it. Our critical sections
    /// do plain arithmetic and queue operations and never run caller code, so
    /// the state would still be consistent; carrying on beats turning one
    /// panic into a panic in every task that uses the limiter.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for an in-flight slot, if there is a cap.
    async fn take_slot(&self) -> Result<Option<OwnedSemaphorePermit>, LimitError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        match Arc::clone(slots).acquire_owned().await {
            Ok(slot) => Ok(Some(slot)),
            // Only `stop` closes the semaphore.
            Err(_closed) => Err(self.lock().stopped_error()),
        }
    }

    /// Does what an arrival asked for.
    fn wake(self: &Arc<Self>, wake: Wake) {
        match wake {
            Wake::Nobody => {}
            // `notify_one` stores a wake-up if the driver is not waiting yet,
            // so one sent between its check and its sleep is not lost.
            Wake::Driver => self.wake_driver.notify_one(),
            Wake::SpawnDriver => {
                tokio::spawn(drive(Arc::clone(self)));
            }
        }
    }

    /// A waiter gave up before being admitted. If it was at the front, the
    /// driver may be sleeping for it: remove it and let the driver look at the
    /// new front. Anywhere else, it stays until it reaches the front, where
    /// the driver skips it (its channel is closed).
    fn leave_queue(&self, id: u64) {
        let mut state = self.lock();
        let was_head = state.queue.front().is_some_and(|waiter| waiter.id == id);
        if was_head {
            state.queue.pop_front();
        }
        drop(state);
        if was_head {
            self.wake_driver.notify_one();
        }
    }

    /// A waiter was admitted but gave up before it saw its permit, so no
    /// request went out: give its slots back.
    fn refund(&self, admission: Admission, since: Instant) {
        let mut state = self.lock();
        state.refund(admission, since);
        let anyone_waiting = !state.queue.is_empty();
        drop(state);
        if anyone_waiting {
            self.wake_driver.notify_one();
        }
    }
}

impl Settle for Core {
    fn refund(&self, id: u64) {
        let mut guard = self.lock();
        let state = &mut *guard;
        for window in [&mut state.requests, &mut state.tokens, &mut state.day]
            .into_iter()
            .flatten()
        {
            window.reweigh(id, 0);
        }
        let anyone_waiting = !state.queue.is_empty();
        drop(guard);
        if anyone_waiting {
            self.wake_driver.notify_one();
        }
    }

    fn settle(&self, id: u64, _charged: u32, actual: u32) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let freed = match &mut state.tokens {
            Some(tokens) => tokens.reweigh(id, u64::from(actual)),
            None => false,
        };
        // Tokens came back: the head of the queue may fit now, earlier than
        // the driver planned. (A charge only makes the head wait longer; the
        // driver finds out when it wakes, so it need not be told.)
        let wake = freed && !state.queue.is_empty();
        drop(guard);
        if wake {
            self.wake_driver.notify_one();
        }
    }
}

impl State {
    /// Fails if the limiter was stopped.
    fn check_running(&self) -> Result<(), LimitError> {
        match self.stopped {
            Some(_) => Err(self.stopped_error()),
            None => Ok(()),
        }
    }

    /// The error for a stopped limiter.
    fn stopped_error(&self) -> LimitError {
        LimitError::Stopped {
            reason: self
                .stopped
                .clone()
                .unwrap_or_else(|| "the limiter was stopped".to_owned()),
        }
    }

    /// A request arrives: admit it now if nobody is ahead and there is room,
    /// otherwise queue it.
    fn arrive(&mut self, tokens: u32, since: Instant, place: Place) -> Result<Arrival, LimitError> {
        self.check_running()?;
        // Read the clock under the lock, so that stamps are taken in the same
        // order as they are recorded.
        let now = Instant::now();
        self.expire(now);
        self.skip_departed();
        let id = self.next_id;
        self.next_id += 1;

        // Only when nobody is queued (or this is a retry, which goes first):
        // jumping ahead of a waiter would break FIFO order, even if this
        // request happens to fit.
        let first = place == Place::Front || self.queue.is_empty();
        if first && self.ready_at(tokens, now) <= now {
            let admission = Admission {
                id: self.next_admission(),
                at: now,
            };
            self.record(admission, tokens, since);
            return Ok(Arrival::Admitted(admission));
        }

        let (sender, answer) = oneshot::channel();
        let waiter = Waiter {
            id,
            tokens,
            retry: place == Place::Front,
            since,
            answer: sender,
        };
        match place {
            Place::Back => self.queue.push_back(waiter),
            Place::Front => {
                // Retries keep their own arrival order, ahead of the rest.
                let at = self.queue.iter().take_while(|w| w.retry).count();
                self.queue.insert(at, waiter);
            }
        }
        let wake = match self.driver {
            Driver::NotStarted => {
                self.driver = Driver::Running;
                Wake::SpawnDriver
            }
            _ if self.queue.len() == 1 || place == Place::Front => Wake::Driver,
            _ => Wake::Nobody,
        };
        Ok(Arrival::Queued { id, answer, wake })
    }

    /// The driver's turn: admit, in order, every waiter at the front that
    /// fits now, and say when to look again.
    fn admit_ready(&mut self, now: Instant) -> Next {
        if self.driver == Driver::ShutDown {
            return Next::ShutDown;
        }
        self.wakeups += 1;
        self.expire(now);
        loop {
            self.skip_departed();
            let Some(head) = self.queue.front() else {
                return Next::Idle;
            };
            let ready = self.ready_at(head.tokens, now);
            if ready > now {
                return Next::At(ready);
            }
            if let Some(waiter) = self.queue.pop_front() {
                self.grant(waiter, now);
            }
        }
    }

    /// The id of the next admission.
    fn next_admission(&mut self) -> u64 {
        let id = self.next_admission;
        self.next_admission += 1;
        id
    }

    /// Changes one limit (0 = unlimited), keeping what its window counted.
    fn set_limit(&mut self, which: Which, limit: u32) {
        let margin = self.limits.margin_or_default();
        let (slot, window, hold) = match which {
            Which::Rpm => (&mut self.limits.rpm, &mut self.requests, self.limits.window),
            Which::Tpm => (&mut self.limits.tpm, &mut self.tokens, self.limits.window),
            Which::Rpd => (&mut self.limits.rpd, &mut self.day, self.limits.day),
        };
        // 0 is no limit, stored as `None` (see `Limits`).
        *slot = Some(limit).filter(|&n| n > 0);
        match (window, limit) {
            (window, 0) => *window = None,
            (Some(window), limit) => window.set_limit(limit),
            (window @ None, limit) => {
                *window = Some(Window::new(limit, hold.saturating_add(margin)));
            }
        }
    }

    /// Admits a waiter taken off the front of the queue.
    fn grant(&mut self, waiter: Waiter, now: Instant) {
        let admission = Admission {
            id: self.next_admission,
            at: now,
        };
        // Send first, record after: if the caller has gone, the send fails
        // and nothing is counted. We hold the lock, so nobody sees the gap.
        if waiter.answer.send(Ok(admission)).is_ok() {
            self.next_admission += 1;
            self.record(admission, waiter.tokens, waiter.since);
        }
    }

    /// Counts an admission in every limited window and in the totals.
    fn record(&mut self, admission: Admission, tokens: u32, since: Instant) {
        let Admission { id, at } = admission;
        if let Some(requests) = &mut self.requests {
            requests.record(id, 1, at);
        }
        if let Some(window) = &mut self.tokens {
            window.record(id, u64::from(tokens), at);
        }
        if let Some(day) = &mut self.day {
            day.record(id, 1, at);
        }
        self.admitted += 1;
        let waited = at.saturating_duration_since(since);
        self.total_wait = self.total_wait.saturating_add(waited);
    }

    /// Undoes [`State::record`] for an admission nobody used. Its entries
    /// keep their place in the logs but weigh nothing.
    fn refund(&mut self, admission: Admission, since: Instant) {
        for window in [&mut self.requests, &mut self.tokens, &mut self.day]
            .into_iter()
            .flatten()
        {
            window.reweigh(admission.id, 0);
        }
        self.admitted = self.admitted.saturating_sub(1);
        let waited = admission.at.saturating_duration_since(since);
        self.total_wait = self.total_wait.saturating_sub(waited);
    }

    /// The earliest instant, not before `now`, at which a request of
    /// `tokens` fits every limit and no pause is in force. Each window only
    /// frees room as time passes, so the answer is the latest of their
    /// answers.
    fn ready_at(&self, tokens: u32, now: Instant) -> Instant {
        let mut at = self.paused_until.map_or(now, |pause| pause.max(now));
        let checks = [
            (&self.requests, 1),
            (&self.tokens, u64::from(tokens)),
            (&self.day, 1),
        ];
        for (window, units) in checks {
            if let Some(window) = window {
                at = at.max(window.ready_at(units, now));
            }
        }
        at
    }

    /// Forgets admissions that stopped counting.
    fn expire(&mut self, now: Instant) {
        for window in [&mut self.requests, &mut self.tokens, &mut self.day]
            .into_iter()
            .flatten()
        {
            window.expire(now);
        }
    }

    /// Drops waiters at the front whose caller gave up.
    fn skip_departed(&mut self) {
        while self
            .queue
            .front()
            .is_some_and(|waiter| waiter.answer.is_closed())
        {
            self.queue.pop_front();
        }
    }
}

/// The background task: admits waiters when their time comes.
///
/// Like mini-redis's `purge_expired_tasks`: do the work that is due, then
/// sleep until the next deadline *or* until told that something changed,
/// whichever comes first. A wake-up that finds nothing to do just computes
/// the deadline again; nothing ever polls on a timer.
async fn drive(core: Arc<Core>) {
    loop {
        let next = {
            let mut state = core.lock();
            // Read the clock under the lock (see `State::arrive`).
            let now = Instant::now();
            state.admit_ready(now)
        };
        match next {
            Next::At(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = core.wake_driver.notified() => {}
                }
            }
            Next::Idle => core.wake_driver.notified().await,
            Next::ShutDown => return,
        }
    }
}

/// A queued `acquire`'s claim on its answer.
///
/// It is a future that resolves to the answer, and its `Drop` is the
/// cancel-safety: dropped before the answer was read, it takes the waiter
/// out of line, or, if the admission was already sent, gives it back.
struct Ticket {
    core: Arc<Core>,
    id: u64,
    since: Instant,
    /// `None` once the answer was read: nothing left to clean up.
    answer: Option<oneshot::Receiver<Answer>>,
}

impl Future for Ticket {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let Some(answer) = self.answer.as_mut() else {
            // Polled again after it finished; futures need not support that,
            // but an error is kinder than a panic.
            return Poll::Ready(Err(shut_down()));
        };
        let result = match Pin::new(answer).poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        self.answer = None;
        // The sender is only dropped unanswered if the limiter itself is
        // being torn down.
        Poll::Ready(result.unwrap_or_else(|_| Err(shut_down())))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        // Close first: from here on the driver's send fails, so what
        // `try_recv` says is final. Without this, the driver could admit us
        // between our look and our leaving, and the slot would be lost.
        answer.close();
        match answer.try_recv() {
            Ok(Ok(admission)) => self.core.refund(admission, self.since),
            Ok(Err(_stopped)) => {}
            Err(_not_answered) => self.core.leave_queue(self.id),
        }
    }
}

/// The error for a waiter whose limiter went away under it.
fn shut_down() -> LimitError {
    LimitError::Stopped {
        reason: "the rate limiter shut down".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_is_small() {
        // The queue's share of a waiter; the module docs promise this.
        assert!(size_of::<Waiter>() <= 48, "{} bytes", size_of::<Waiter>());
    }
}
