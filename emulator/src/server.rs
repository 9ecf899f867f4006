//! Starting and stopping the server, the shared state behind it, and the stats tests read.
//!
//! [`start`] binds (with a deep accept backlog, so a burst of thousands of connections is not
//! dropped at the door), spawns `axum::serve` with graceful shutdown, and returns an
//! [`Emulator`] handle. Dropping the handle, or calling [`Emulator::shutdown`], flips a watch
//! channel: the server stops accepting, idle keep-alive connections close, and anything still
//! waiting (latency sleeps, hung requests) is cut off so shutdown never waits on a fault.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::limits::Limiter;
use crate::settings::Settings;

/// Arrivals beyond this many are not recorded (the counters go on), so a server left running
/// under a benchmark cannot grow its stats without bound.
pub const MAX_ARRIVALS: usize = 1_000_000;

/// Accept backlog: deeper than tokio's default 1024 so bursts of connections are queued.
const BACKLOG: u32 = 4096;

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When it arrived, since the emulator started.
    pub at: Duration,
    /// The model id from the path (without `models/`); empty for `models.list`.
    pub model: String,
    /// `generateContent`, `streamGenerateContent`, `countTokens`, `listModels`, `getModel`,
    /// another `:action` name, or `unknown`.
    pub method: String,
    /// The HTTP status sent, or 0 if no response was sent (hang, close, or still running).
    pub status: u16,
}

/// A snapshot of what the server has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request, in arrival order (up to [`MAX_ARRIVALS`]).
    pub arrivals: Vec<Arrival>,
    /// The most generate requests (unary or streaming) in flight at once.
    pub max_in_flight: usize,
    /// Generate requests in flight now.
    pub in_flight: usize,
}

impl Stats {
    /// The unary `generateContent` requests, in arrival order: what tests
    /// and benchmarks count against a limit.
    pub fn generates(&self) -> Vec<Arrival> {
        self.arrivals
            .iter()
            .filter(|a| a.method == "generateContent")
            .cloned()
            .collect()
    }
}

/// The size of the state the server keeps between requests (for leak checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackedState {
    /// (key, model) quota buckets held.
    pub quota_buckets: usize,
    /// Sliding-window log entries held, over all buckets.
    pub quota_entries: usize,
    /// Arrivals recorded.
    pub arrivals: usize,
}

/// State shared by every handler.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) started: Instant,
    /// A std Mutex: critical sections are a few pushes and never hold across an `.await`.
    pub(crate) limiter: Mutex<Limiter>,
    stats: Mutex<Stats>,
    /// Numbers generate requests, to seed each one's random generator.
    pub(crate) generated: AtomicU64,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Locks a mutex even if a panicking thread poisoned it: the data are plain counters and logs
/// that stay consistent between statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Records an arrival; returns its index for [`Shared::finish`].
    pub(crate) fn arrive(&self, model: &str, method: &str) -> Option<usize> {
        let mut stats = lock(&self.stats);
        if stats.arrivals.len() >= MAX_ARRIVALS {
            return None;
        }
        stats.arrivals.push(Arrival {
            at: self.started.elapsed(),
            model: model.to_string(),
            method: method.to_string(),
            status: 0,
        });
        Some(stats.arrivals.len() - 1)
    }

    /// Records the status sent for an arrival.
    pub(crate) fn finish(&self, arrival: Option<usize>, status: u16) {
        if let Some(index) = arrival {
            if let Some(entry) = lock(&self.stats).arrivals.get_mut(index) {
                entry.status = status;
            }
        }
    }

    fn enter(&self) {
        let mut stats = lock(&self.stats);
        stats.in_flight += 1;
        stats.max_in_flight = stats.max_in_flight.max(stats.in_flight);
    }

    fn leave(&self) {
        let mut stats = lock(&self.stats);
        stats.in_flight = stats.in_flight.saturating_sub(1);
    }
}

/// Counts a generate request as in flight for as long as it lives (for a stream: until the
/// body is finished or dropped).
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    pub(crate) fn new(shared: &Arc<Shared>) -> InFlight {
        shared.enter();
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A running emulator. Dropping it shuts the server down.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts an emulator on `settings.addr` (port 0 = any free port) and returns its handle.
///
/// Must be called inside a tokio runtime; the server runs as a task on it.
pub async fn start(settings: Settings) -> std::io::Result<Emulator> {
    let socket = if settings.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(settings.addr)?;
    let listener = socket.listen(BACKLOG)?;
    let addr = listener.local_addr()?;

    let (stop, shutdown) = watch::channel(false);
    let shared = Arc::new(Shared {
        limiter: Mutex::new(Limiter::new(settings.window, settings.day)),
        settings,
        started: Instant::now(),
        stats: Mutex::new(Stats::default()),
        generated: AtomicU64::new(0),
        shutdown: shutdown.clone(),
    });
    let app = crate::routes::router(shared.clone());
    // Small SSE chunks must leave at once, not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut signal = shutdown;
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = signal.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "emulator server failed");
        }
    });
    tracing::debug!(%addr, "emulator listening");
    Ok(Emulator {
        addr,
        shared,
        stop,
        task: Some(task),
    })
}

impl Emulator {
    /// `http://127.0.0.1:PORT`, with no version segment (the SDKs add `/v1beta/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the stats.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// How much state the server holds between requests. Prunes the quota logs first, so the
    /// figures are what is really live now.
    pub fn tracked_state(&self) -> TrackedState {
        let (quota_buckets, quota_entries) = {
            let mut limiter = lock(&self.shared.limiter);
            limiter.sweep(Instant::now());
            (limiter.buckets(), limiter.entries())
        };
        TrackedState {
            quota_buckets,
            quota_entries,
            arrivals: lock(&self.shared.stats).arrivals.len(),
        }
    }

    /// Generate requests numbered so far (each one seeds its own random generator).
    pub fn generate_requests(&self) -> u64 {
        self.shared.generated.load(Ordering::Relaxed)
    }

    /// Stops accepting, ends in-flight work, and waits for the server task to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
