//! The state every handler shares, and the stats tests read.
//!
//! Its own module so that the HTTP handlers (`routes`) and the server's
//! start and stop (`server`) both use it without using each other: the
//! server builds the router, and the router needs only this.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::batch::{Jobs, RESULTS_MIME_TYPE};
use crate::files::FileStore;
use crate::limits::Limiter;
use crate::settings::Settings;
use crate::timestamps::WallClock;

/// Arrivals beyond this many are not recorded (the counters go on), so a server left running
/// under a benchmark cannot grow its stats without bound.
pub const MAX_ARRIVALS: usize = 1_000_000;

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
    /// Connections accepted so far (TCP; a failed TLS handshake counts too).
    pub connections: usize,
    /// The most requests in flight at once on any one connection: over HTTP/2, its peak of
    /// concurrent streams, which the server keeps at or under `Settings::max_streams`.
    pub max_streams_per_connection: usize,
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
    /// Batch jobs kept.
    pub batch_jobs: usize,
    /// Files kept (uploaded and generated).
    pub files: usize,
    /// Upload sessions open.
    pub upload_sessions: usize,
    /// Bytes held by files and reserved by open uploads.
    pub stored_bytes: u64,
}

/// State shared by every handler.
pub(crate) struct ServerState {
    pub(crate) settings: Settings,
    pub(crate) started: Instant,
    /// A std Mutex: critical sections are a few pushes and never hold across an `.await`.
    pub(crate) limiter: Mutex<Limiter>,
    pub(crate) stats: Mutex<Stats>,
    /// Numbers generate requests, to seed each one's random generator.
    pub(crate) generated: AtomicU64,
    /// Numbers Flex requests, for `Flex::shed_every`.
    pub(crate) flex_requests: AtomicU64,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The bound address, for the upload URLs the server hands out.
    pub(crate) addr: SocketAddr,
    /// Dates resources (batch jobs, files) on tokio's clock.
    pub(crate) clock: WallClock,
    /// Batch jobs. Locked before `files` when both are needed.
    pub(crate) jobs: Mutex<Jobs>,
    /// The Files API's store.
    pub(crate) files: Mutex<FileStore>,
}

/// Locks a mutex even if a panicking thread poisoned it: the data are plain counters and logs
/// that stay consistent between statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ServerState {
    /// Records an arrival; returns its index for [`ServerState::finish`].
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

    pub(crate) fn connection_opened(&self) {
        lock(&self.stats).connections += 1;
    }

    pub(crate) fn streams_on_connection(&self, streams: usize) {
        let mut stats = lock(&self.stats);
        stats.max_streams_per_connection = stats.max_streams_per_connection.max(streams);
    }

    /// Hands the results files of newly succeeded batch jobs to the file store. Every batch and
    /// file handler calls it first, so a job's results file exists as soon as the job reads
    /// as succeeded.
    pub(crate) fn publish_results(&self, now: Instant) {
        let mut jobs = lock(&self.jobs);
        let ready = jobs.take_results(now);
        if ready.is_empty() {
            return;
        }
        let mut files = lock(&self.files);
        for results in ready {
            files.insert_generated(
                results.project,
                results.id,
                RESULTS_MIME_TYPE,
                results.data,
                results.created,
            );
        }
    }

    /// Milliseconds since start: a clock that fits an atomic.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counts a generate request as in flight for as long as it lives (for a stream: until the
/// body is finished or dropped).
pub(crate) struct InFlight(Arc<ServerState>);

impl InFlight {
    pub(crate) fn new(shared: &Arc<ServerState>) -> InFlight {
        shared.enter();
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.leave();
    }
}
