//! Starting and stopping the server, the shared state behind it, and the stats tests read.
//!
//! [`start`] binds (with a deep accept backlog, so a burst of thousands of connections is not
//! dropped at the door), spawns `axum::serve` with graceful shutdown, and returns an
//! [`Emulator`] handle. Dropping the handle, or calling [`Emulator::shutdown`], flips a watch
//! channel: the server stops accepting, idle keep-alive connections close, and anything still
//! waiting (latency sleeps, hung requests) is cut off so shutdown never waits on a fault.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::serve::ListenerExt;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::limits::Limiter;
use crate::settings::Settings;
pub use crate::state::{Arrival, MAX_ARRIVALS, Stats, TrackedState};
use crate::state::{Shared, lock};

/// Accept backlog: deeper than tokio's default 1024 so bursts of connections are queued.
const BACKLOG: u32 = 4096;

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
