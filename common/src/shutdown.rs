//! One handle that says "stop": Ctrl-C and SIGTERM, made awaitable.
//!
//! In the spirit of mini-redis's `Shutdown`: `main` creates one
//! [`Shutdown`] and passes a clone to everything that must stop (the batch,
//! step 4's runner). Nothing is global: a test can make its own handle and
//! call [`Shutdown::request`] instead of sending a signal.
//!
//! The rules every step follows:
//!
//! - The first Ctrl-C (or SIGTERM, as `kill` and service managers send) stops
//!   new requests from starting, and gives those in flight a [`GRACE`] period:
//!   their answers are still worth keeping. The run then ends with a partial
//!   summary and exit code 130 (143 after SIGTERM), as shells count them.
//! - A second signal quits at once, and so does the end of a short
//!   [`BACKSTOP`] after the grace period: `main` waits on [`Shutdown::forced`]
//!   beside the run and returns as soon as it completes.
//!
//! The state is a `tokio::sync::watch` channel: any number of requests can
//! await it without polling, and a late reader still sees that a stop was
//! asked for, and when.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, time::Instant};

use crate::terminal;

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

/// A stop that was asked for: by which signal, when, and whether a second
/// signal asked to quit at once.
#[derive(Debug, Clone, Copy)]
struct Stop {
    signal: Signal,
    at: Instant,
    forced: bool,
}

/// The run's stop signal; cheap to clone, every clone sees the same state.
#[derive(Debug, Clone)]
pub struct Shutdown {
    state: Arc<watch::Sender<Option<Stop>>>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A handle that stops only when told to ([`Shutdown::request`]).
    pub fn new() -> Shutdown {
        Shutdown {
            state: Arc::new(watch::channel(None).0),
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
    /// was the first request (later ones change nothing).
    pub fn request(&self, signal: Signal) -> bool {
        self.state.send_if_modified(|stop| {
            let first = stop.is_none();
            if first {
                *stop = Some(Stop {
                    signal,
                    at: Instant::now(),
                    forced: false,
                });
            }
            first
        })
    }

    /// Asks to quit at once, as a second signal does.
    pub fn force(&self) {
        self.state.send_modify(|stop| match stop {
            Some(stop) => stop.forced = true,
            None => {
                *stop = Some(Stop {
                    signal: Signal::Interrupt,
                    at: Instant::now(),
                    forced: true,
                })
            }
        });
    }

    /// Whether a stop was asked for: a request checks this before it starts.
    pub fn is_requested(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// The signal that asked the run to stop, if one did.
    pub fn signal(&self) -> Option<Signal> {
        self.state.borrow().map(|stop| stop.signal)
    }

    /// The reason reported for a request never sent because of the stop.
    pub fn not_sent(&self) -> String {
        format!("not sent: interrupted by {}", self.signal_name())
    }

    /// The reason reported for a request cut off at the end of the grace period.
    pub fn cut_off(&self) -> String {
        format!("cut off by {} before the answer came", self.signal_name())
    }

    fn signal_name(&self) -> &'static str {
        self.signal().unwrap_or(Signal::Interrupt).name()
    }

    /// Completes when a stop is asked for (at once if it already was).
    pub async fn requested(&self) {
        self.first_stop().await;
    }

    /// Completes when the grace period after a stop request is over; never
    /// completes if no stop is asked for.
    pub async fn grace_over(&self) {
        let stop = self.first_stop().await;
        tokio::time::sleep_until(stop.at + GRACE).await;
    }

    /// Completes when the process should quit without waiting for the run:
    /// a second signal, or the backstop after the grace period. Returns
    /// whether it was a signal (`false`: the backstop ran out).
    pub async fn forced(&self) -> bool {
        let stop = self.first_stop().await;
        let mut receiver = self.state.subscribe();
        tokio::select! {
            _ = receiver.wait_for(|stop| stop.is_some_and(|stop| stop.forced)) => true,
            () = tokio::time::sleep_until(stop.at + GRACE + BACKSTOP) => false,
        }
    }

    /// Waits for the first stop request and returns it.
    async fn first_stop(&self) -> Stop {
        let mut receiver = self.state.subscribe();
        // Copied out at once: the guard must not live across an `.await`.
        let stop = receiver
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|stop| *stop);
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
        assert!(!shutdown.forced().await, "the backstop, not a signal");
        assert_eq!(started.elapsed(), GRACE + BACKSTOP);
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
        shutdown.force();
        assert!(
            waiter.await.expect("the waiter ran"),
            "forced by the signal"
        );
    }
}
