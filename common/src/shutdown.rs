//! One handle that says "stop", and why: Ctrl-C and SIGTERM made awaitable,
//! and the other reasons a run ends early.
//!
//! In the spirit of mini-redis's `Shutdown`: `main` creates one
//! [`Shutdown`] and passes a clone to everything that must stop (the batch,
//! the bulk runner). Nothing is global: a test can make its own handle and
//! call [`Shutdown::request`] instead of sending a signal.
//!
//! A run stops early for one of four reasons ([`StopReason`]): a signal, an
//! error that would fail every request (a revoked key), an answer that could
//! not be written, or a spent daily quota. Whatever the reason, it goes
//! through this one handle, so anything that waits (a request queued in a
//! limiter, one backing off before a retry) listens to one thing
//! ([`Shutdown::requested`]), and the first reason is the one reported for
//! the requests that were never sent ([`Shutdown::not_sent`]).
//!
//! The rules for signals, which every step follows:
//!
//! - The first Ctrl-C (or SIGTERM, as `kill` and service managers send) stops
//!   new requests from starting, and gives those in flight a [`GRACE`] period:
//!   their answers are still worth keeping. The run then ends with a partial
//!   summary and exit code 130 (143 after SIGTERM), as shells count them.
//! - A second signal quits at once, and so does the end of a short
//!   [`BACKSTOP`] after the grace period: `main` waits on [`Shutdown::forced`]
//!   beside the run and returns as soon as it completes.
//!
//! A signal counts even after the run stopped for another reason: Ctrl-C
//! while a stopped run waits for its requests in flight still cuts them off
//! after the grace period, and the exit code is still the signal's. The
//! other reasons never cut a request in flight short: its answer may be paid
//! for.
//!
//! The state is a `tokio::sync::watch` channel: any number of requests can
//! await it without polling, and a late reader still sees that a stop was
//! asked for, why, and when.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, time::Instant};

use crate::{error::Error, terminal};

/// How long requests in flight may take to finish after the first signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// How long after the grace period the process quits no matter what: time
/// enough for a run cut off at the end of its grace period to print its
/// summary, and a bound on a call that does not honour the grace period
/// (step 1's one request, say).
pub const BACKSTOP: Duration = Duration::from_secs(3);

/// Which signal asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C at the terminal.
    Interrupt,
    /// SIGTERM: `kill`, a container or a service manager stopping us.
    Terminate,
}

impl Signal {
    /// The name a user knows it by, for messages and "not done" reasons.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code after this signal: 128 + its number, as shells count.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Why a run stopped before its end.
#[derive(Debug, Clone)]
pub enum StopReason {
    /// Ctrl-C or SIGTERM: the requests in flight get the grace period, the
    /// run ends with a partial summary and the signal's exit code.
    Signal(Signal),
    /// An error that would fail every request (a revoked key, say): nothing
    /// more is sent, the requests in flight end, and the run ends with this
    /// error's one line instead of N copies of it.
    Fatal(Error),
    /// An answer could not be written where the run keeps them (the line
    /// that says why): an answer that cannot be kept is not a success, so
    /// nothing more is sent and the run fails.
    WriteFailed(String),
    /// The day's quota is spent: nothing more can be sent until it resets,
    /// and the requests left end as not done.
    DaySpent,
}

impl StopReason {
    /// Why a request that was never sent was not: its "not done" reason.
    pub fn not_sent(&self) -> String {
        match self {
            StopReason::Signal(signal) => format!("not sent: interrupted by {}", signal.name()),
            StopReason::Fatal(_) => "not sent: the run stopped".into(),
            StopReason::WriteFailed(line) => format!("not sent: {line}"),
            StopReason::DaySpent => "not sent: the daily quota is spent".into(),
        }
    }
}

/// The first signal: which, when, and whether a second one asked to quit at once.
#[derive(Debug, Clone, Copy)]
struct SignalStop {
    signal: Signal,
    at: Instant,
    forced: bool,
}

/// What every clone of a handle sees.
#[derive(Debug, Clone, Default)]
struct State {
    /// Why the run stopped: the first reason given (later ones are not kept).
    reason: Option<StopReason>,
    /// The first signal, whatever the first reason was: it alone starts the
    /// grace period, and it alone sets the exit code.
    signal: Option<SignalStop>,
}

/// The run's stop signal; cheap to clone, every clone sees the same state.
#[derive(Debug, Clone)]
pub struct Shutdown {
    state: Arc<watch::Sender<State>>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A handle that stops only when told to ([`Shutdown::request`],
    /// [`Shutdown::stop`]).
    pub fn new() -> Shutdown {
        Shutdown {
            state: Arc::new(watch::channel(State::default()).0),
        }
    }

    /// A handle that Ctrl-C and SIGTERM stop: the first asks the run to
    /// stop, the second to quit at once. Call it from `main`, in the runtime.
    pub fn on_signals() -> Shutdown {
        let shutdown = Shutdown::new();
        tokio::spawn(listen(shutdown.clone()));
        shutdown
    }

    /// Asks the run to stop, as the first signal does. Returns whether this
    /// was the first signal (later ones change nothing).
    pub fn request(&self, signal: Signal) -> bool {
        self.record(StopReason::Signal(signal)).1
    }

    /// Stops the run for `reason` (a signal goes through here too, as
    /// [`Shutdown::request`]). Returns whether it is the run's first reason:
    /// the one reported (later ones are not kept, so the caller that gets
    /// `true` is the one that says why, once).
    pub fn stop(&self, reason: StopReason) -> bool {
        self.record(reason).0
    }

    /// Records `reason`: (whether it is the first reason, whether it is the
    /// first signal).
    fn record(&self, reason: StopReason) -> (bool, bool) {
        let (mut first_reason, mut first_signal) = (false, false);
        self.state.send_if_modified(|state| {
            if let (StopReason::Signal(signal), None) = (&reason, &state.signal) {
                state.signal = Some(SignalStop {
                    signal: *signal,
                    at: Instant::now(),
                    forced: false,
                });
                first_signal = true;
            }
            if state.reason.is_none() {
                state.reason = Some(reason);
                first_reason = true;
            }
            first_reason || first_signal
        });
        (first_reason, first_signal)
    }

    /// Asks to quit at once, as a second signal does.
    pub fn force(&self) {
        self.request(Signal::Interrupt);
        self.state.send_modify(|state| {
            if let Some(signal) = &mut state.signal {
                signal.forced = true;
            }
        });
    }

    /// Whether the run was asked to stop, for any reason: a request checks
    /// this before it starts.
    pub fn is_requested(&self) -> bool {
        self.state.borrow().reason.is_some()
    }

    /// Whether the process should quit without waiting for the run, as
    /// [`Shutdown::forced`] completes: a second signal, or the backstop after
    /// the grace period. For a wait that blocks its thread and cannot await
    /// (a file lock): it checks this between tries, so Ctrl-C ends it too.
    pub fn is_forced(&self) -> bool {
        self.state
            .borrow()
            .signal
            .is_some_and(|stop| stop.forced || stop.at.elapsed() >= GRACE + BACKSTOP)
    }

    /// Why the run stopped (the first reason), if it did.
    pub fn reason(&self) -> Option<StopReason> {
        self.state.borrow().reason.clone()
    }

    /// The signal that asked the run to stop, if one did (even after another
    /// reason): it decides the exit code.
    pub fn signal(&self) -> Option<Signal> {
        self.state.borrow().signal.map(|stop| stop.signal)
    }

    /// The reason reported for a request never sent because of the stop.
    pub fn not_sent(&self) -> String {
        self.reason()
            .unwrap_or(StopReason::Signal(Signal::Interrupt))
            .not_sent()
    }

    /// The reason reported for a request cut off at the end of the grace period.
    pub fn cut_off(&self) -> String {
        let signal = self.signal().unwrap_or(Signal::Interrupt);
        format!("cut off by {} before the answer came", signal.name())
    }

    /// Completes with the reason when the run is asked to stop, for any
    /// reason (at once if it already was).
    pub async fn requested(&self) -> StopReason {
        let mut receiver = self.state.subscribe();
        // Cloned out at once: the guard must not live across an `.await`.
        let reason = receiver
            .wait_for(|state| state.reason.is_some())
            .await
            .ok()
            .and_then(|state| state.reason.clone());
        match reason {
            Some(reason) => reason,
            // `self` holds a sender, so the channel cannot close under us.
            None => std::future::pending().await,
        }
    }

    /// Completes when the grace period after a signal is over; never
    /// completes if no signal comes (the other reasons let the requests in
    /// flight end on their own).
    pub async fn grace_over(&self) {
        let stop = self.first_signal().await;
        tokio::time::sleep_until(stop.at + GRACE).await;
    }

    /// Completes when the process should quit without waiting for the run:
    /// a second signal, or the backstop after the grace period. Returns
    /// whether it was a signal (`false`: the backstop ran out).
    pub async fn forced(&self) -> bool {
        let stop = self.first_signal().await;
        let mut receiver = self.state.subscribe();
        tokio::select! {
            _ = receiver.wait_for(|state| state.signal.is_some_and(|stop| stop.forced)) => true,
            () = tokio::time::sleep_until(stop.at + GRACE + BACKSTOP) => false,
        }
    }

    /// Waits for the first signal and returns it.
    async fn first_signal(&self) -> SignalStop {
        let mut receiver = self.state.subscribe();
        // Copied out at once: the guard must not live across an `.await`.
        let stop = receiver
            .wait_for(|state| state.signal.is_some())
            .await
            .ok()
            .and_then(|state| state.signal);
        match stop {
            Some(stop) => stop,
            // `self` holds a sender, so the channel cannot close under us.
            None => std::future::pending().await,
        }
    }
}

/// The signal watcher: turns the first signal into a stop request and the
/// second into "quit now".
///
/// The stop is requested *before* anything is written: with stderr a closed
/// pipe (`step3 2>&1 | head -1`) the message is lost, but the stop is not,
/// and the write itself never panics.
async fn listen(shutdown: Shutdown) {
    let Ok(mut signals) = Signals::new() else {
        return; // No signal handling on this platform: nothing to watch.
    };
    let Some(first) = signals.next().await else {
        return;
    };
    shutdown.request(first);
    terminal::diagnostic(format_args!(
        "{}: no new requests; waiting up to {} s for those in flight (Ctrl-C again to quit now)",
        first.name(),
        GRACE.as_secs()
    ));
    if signals.next().await.is_some() {
        shutdown.force();
    }
}

/// The signals we listen for: SIGINT and SIGTERM on Unix, Ctrl-C elsewhere.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Some(Signal::Interrupt),
            Some(()) = self.terminate.recv() => Some(Signal::Terminate),
            else => None,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Option<Signal> {
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| Signal::Interrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_request_wins_and_every_clone_sees_it() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_requested());
        assert!(shutdown.request(Signal::Terminate));
        assert!(
            !shutdown.request(Signal::Interrupt),
            "only the first counts"
        );
        clone.requested().await;
        assert_eq!(clone.signal(), Some(Signal::Terminate));
        assert_eq!(clone.not_sent(), "not sent: interrupted by SIGTERM");
        assert_eq!(Signal::Terminate.exit_code(), 143);
    }

    #[tokio::test(start_paused = true)]
    async fn grace_then_backstop_bound_the_wait() {
        let shutdown = Shutdown::new();
        let started = Instant::now();
        shutdown.request(Signal::Interrupt);
        shutdown.grace_over().await;
        assert_eq!(started.elapsed(), GRACE);
        assert!(!shutdown.is_forced(), "still within the backstop");
        assert!(!shutdown.forced().await, "the backstop, not a signal");
        assert_eq!(started.elapsed(), GRACE + BACKSTOP);
        assert!(shutdown.is_forced(), "a blocking wait sees it too");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_forces_at_once() {
        let shutdown = Shutdown::new();
        shutdown.request(Signal::Interrupt);
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.forced().await }
        });
        tokio::task::yield_now().await;
        assert!(!shutdown.is_forced());
        shutdown.force();
        assert!(shutdown.is_forced());
        assert!(
            waiter.await.expect("the waiter ran"),
            "forced by the signal"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn another_reason_stops_the_run_without_cutting_requests_off() {
        let shutdown = Shutdown::new();
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.requested().await }
        });
        tokio::task::yield_now().await;
        assert!(shutdown.stop(StopReason::WriteFailed("disk full".into())));
        assert!(
            !shutdown.stop(StopReason::DaySpent),
            "the first reason is kept"
        );
        let reason = waiter.await.expect("the waiter ran");
        assert!(matches!(reason, StopReason::WriteFailed(_)), "{reason:?}");
        assert!(shutdown.is_requested());
        assert_eq!(shutdown.not_sent(), "not sent: disk full");
        assert_eq!(shutdown.signal(), None, "no exit code of a signal");
        // Only a signal starts the grace period: requests in flight end on
        // their own, however long they take.
        let grace = tokio::time::timeout(GRACE * 100, shutdown.grace_over()).await;
        assert!(grace.is_err(), "no grace period without a signal");
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_after_another_reason_still_counts() {
        let shutdown = Shutdown::new();
        shutdown.stop(StopReason::DaySpent);
        let started = Instant::now();
        assert!(shutdown.request(Signal::Terminate), "the first signal");
        assert!(matches!(shutdown.reason(), Some(StopReason::DaySpent)));
        assert_eq!(shutdown.not_sent(), "not sent: the daily quota is spent");
        assert_eq!(shutdown.signal(), Some(Signal::Terminate));
        shutdown.grace_over().await;
        assert_eq!(started.elapsed(), GRACE);
        assert_eq!(
            shutdown.cut_off(),
            "cut off by SIGTERM before the answer came"
        );
    }
}
