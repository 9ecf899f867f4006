//! As many HTTP/2 connections as the work needs: "lanes".
//!
//! Over HTTPS the API speaks HTTP/2, where one connection carries many requests at once, each
//! on its own stream. But a server caps the streams per connection -- Google's front end at
//! 100 -- and hyper, under reqwest, keeps every request of one `reqwest::Client` on a single
//! HTTP/2 connection: request 101 waits for a free stream instead of opening a second
//! connection. With one client, 1,000 requests "at once" would run in ten waves.
//!
//! So the `Pool` holds lanes, each a `reqwest::Client` with its own connection, all sharing
//! one TLS configuration. A request takes the least-loaded lane that is under the stream limit;
//! when every lane is full a new one opens (one more connection, its handshake and a debug log
//! line); a lane beyond the first that has been idle for a while is dropped, and its connection
//! with it. N requests in flight therefore use about ⌈N/100⌉ connections.
//!
//! The limit is the known 100: reqwest does not expose the server's SETTINGS frame. A server
//! that allows fewer streams still works -- hyper queues the excess on that connection -- it is
//! just slower. Over plain HTTP (HTTP/1.1) there is one lane, and reqwest's pool opens one
//! connection per concurrent request as before; when an HTTPS server turns out to speak only
//! HTTP/1.1 (its first answer says so), the pool falls back to one lane too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Concurrent streams per HTTP/2 connection that Google's front end allows.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// An extra lane idle this long is dropped at the next request.
const IDLE_LANE: Duration = Duration::from_secs(10);

/// HTTP/2 receive windows sized for Gemini answers (a few KB, rarely more than a few hundred
/// KB), not for bulk downloads: large windows would let a fast server buffer megabytes per
/// connection in our memory.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// One connection's worth of requests: a reqwest client and how many requests it carries now.
struct Lane {
    http: reqwest::Client,
    in_flight: AtomicUsize,
    /// When the lane last fell to zero requests in flight.
    idle_since: Mutex<Instant>,
}

/// The lanes to one server. Shared by every clone of a `Client`.
pub(crate) struct Pool {
    tls: rustls::ClientConfig,
    user_agent: &'static str,
    /// False over plain HTTP, or once the server answered over HTTP/1.1: one lane only.
    multiplexed: AtomicBool,
    /// True once an answer came over HTTP/2: new lanes then skip ALPN's guess (see `open_lane`).
    speaks_h2: AtomicBool,
    limit: usize,
    host: String,
    lanes: Mutex<Vec<Arc<Lane>>>,
}

/// A request's hold on its lane, released when the answer has been read (or dropped).
pub(crate) struct LaneGuard {
    lane: Arc<Lane>,
}

impl LaneGuard {
    /// The client to send this request with.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.lane.http
    }
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if self.lane.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *lock(&self.lane.idle_since) = Instant::now();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    /// A pool for `base` (lanes only for `https`), with its first lane open.
    pub(crate) fn new(
        base: &url::Url,
        tls: rustls::ClientConfig,
        user_agent: &'static str,
    ) -> Result<Pool> {
        let pool = Pool {
            tls,
            user_agent,
            multiplexed: AtomicBool::new(base.scheme() == "https"),
            speaks_h2: AtomicBool::new(false),
            limit: STREAMS_PER_CONNECTION,
            host: base.host_str().unwrap_or_default().to_string(),
            lanes: Mutex::new(Vec::new()),
        };
        let first = pool.open_lane(0)?;
        lock(&pool.lanes).push(first);
        Ok(pool)
    }

    /// Takes a place on the least-loaded lane under the limit, opening a lane if all are full.
    pub(crate) fn acquire(&self) -> Result<LaneGuard> {
        let mut lanes = lock(&self.lanes);
        if !self.multiplexed.load(Ordering::Relaxed) {
            return Ok(take(&lanes[0]));
        }
        self.drop_idle_lanes(&mut lanes);
        let least = lanes
            .iter()
            .min_by_key(|lane| lane.in_flight.load(Ordering::Relaxed))
            .filter(|lane| lane.in_flight.load(Ordering::Relaxed) < self.limit);
        if let Some(lane) = least {
            return Ok(take(lane));
        }
        let lane = self.open_lane(lanes.len())?;
        let guard = take(&lane);
        lanes.push(lane);
        Ok(guard)
    }

    /// Number of lanes open now (over HTTP/2, connections).
    pub(crate) fn lanes(&self) -> usize {
        lock(&self.lanes).len()
    }

    /// Called with each response: an HTTP/1.1 answer over HTTPS means no multiplexing here.
    ///
    /// Read before written: every response passes here, from every thread, and a write to a
    /// flag that is already set would still pull its cache line away from the other cores.
    pub(crate) fn saw_version(&self, version: reqwest::Version) {
        if version == reqwest::Version::HTTP_2 {
            if !self.speaks_h2.load(Ordering::Relaxed) {
                self.speaks_h2.store(true, Ordering::Relaxed);
            }
        } else if version < reqwest::Version::HTTP_2
            && self.multiplexed.load(Ordering::Relaxed)
            && self.multiplexed.swap(false, Ordering::Relaxed)
        {
            tracing::debug!(host = %self.host, "the server speaks HTTP/1.1: one connection pool");
        }
    }

    /// Drops every lane but the first that has carried nothing for [`IDLE_LANE`].
    fn drop_idle_lanes(&self, lanes: &mut Vec<Arc<Lane>>) {
        let before = lanes.len();
        let mut index = 0;
        lanes.retain(|lane| {
            index += 1;
            index == 1
                || lane.in_flight.load(Ordering::Relaxed) > 0
                || lock(&lane.idle_since).elapsed() < IDLE_LANE
        });
        if lanes.len() < before {
            tracing::debug!(host = %self.host, closed = before - lanes.len(), open = lanes.len(), "closing idle connections");
        }
    }

    /// A new lane: a reqwest client with the shared TLS configuration and small windows.
    ///
    /// Until TLS has said "h2", hyper cannot know that one connection will carry every request,
    /// so a burst on a cold client races one connection per request and keeps one. Once this
    /// server has answered over HTTP/2, new lanes are told so (prior knowledge, still over the
    /// same TLS), and each opens exactly one connection however many requests arrive at once.
    fn open_lane(&self, index: usize) -> Result<Arc<Lane>> {
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(self.tls.clone())
            .user_agent(self.user_agent)
            .http2_initial_stream_window_size(STREAM_WINDOW)
            .http2_initial_connection_window_size(CONNECTION_WINDOW);
        if self.speaks_h2.load(Ordering::Relaxed) {
            builder = builder.http2_prior_knowledge();
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        if index > 0 {
            tracing::debug!(
                host = %self.host,
                connection = index + 1,
                streams_per_connection = self.limit,
                "every connection is full: opening another"
            );
        } else {
            tracing::debug!(host = %self.host, "first connection lane (it connects with the first request)");
        }
        Ok(Arc::new(Lane {
            http,
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }))
    }
}

/// Counts one more request on `lane`.
fn take(lane: &Arc<Lane>) -> LaneGuard {
    lane.in_flight.fetch_add(1, Ordering::AcqRel);
    LaneGuard { lane: lane.clone() }
}
