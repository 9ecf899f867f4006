//! Starting and stopping the server, and the wire it speaks (its shared state and stats are in `state`).
//!
//! [`start`] binds (with a deep accept backlog, so a burst of thousands of connections is not
//! dropped at the door) and runs its own accept loop on hyper-util's server, which speaks
//! HTTP/1.1 and HTTP/2 on the same port, over TLS or plain TCP. It does not use `axum::serve`
//! because that has no TLS and no hook per connection, and the emulator needs both: the real
//! API is HTTPS with HTTP/2, and Google's front end allows at most 100 concurrent streams on one
//! connection (`--max-streams`). hyper's HTTP/2 server advertises that number in its SETTINGS
//! frame and answers a stream opened past it with `RST_STREAM(REFUSED_STREAM)` (RFC 9113
//! §5.1.2), so a client sees exactly the ceiling it meets online. Each connection counts its
//! requests in flight, so tests can check the ceiling from the server's side.
//!
//! A connection that owes the server something -- a TLS handshake, request headers, the next
//! piece of a body -- or that sits idle with nothing in flight, is closed after
//! `Settings::read_timeout`, like any server: half-open connections do not pile up.
//!
//! Dropping the handle, or calling [`Emulator::shutdown`], flips a watch channel: the server
//! stops accepting, every connection shuts down gracefully, and anything still waiting
//! (latency sleeps, hung requests) is cut off so shutdown never waits on a fault.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower_http::timeout::TimeoutBody;

use crate::batch::Jobs;
use crate::files::FileStore;
use crate::limits::Limiter;
use crate::settings::Settings;
use crate::timestamps::WallClock;
use crate::tls::Identity;

pub use crate::state::{Arrival, MAX_ARRIVALS, Stats, TrackedState};
use crate::state::{ServerState, lock};

/// Accept backlog: deeper than tokio's default 1024 so bursts of connections are queued.
const BACKLOG: u32 = 4096;

/// A running emulator. Dropping it shuts the server down.
pub struct Emulator {
    addr: SocketAddr,
    /// The CA that signed the server's certificate, when it serves HTTPS.
    ca_pem: Option<String>,
    shared: Arc<ServerState>,
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
/// With `settings.tls` it serves HTTPS on a certificate made now (see [`crate::tls`]); the
/// handle's [`Emulator::ca_pem`] is what a client must trust. Must be called inside a tokio
/// runtime; the server runs as a task on it.
pub async fn start(settings: Settings) -> std::io::Result<Emulator> {
    let identity = if settings.tls {
        Some(Identity::generate().map_err(std::io::Error::other)?)
    } else {
        None
    };
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
    let shared = Arc::new(ServerState {
        limiter: Mutex::new(Limiter::new(settings.window, settings.day)),
        jobs: Mutex::new(Jobs::new(settings.batch.clone(), settings.seed)),
        files: Mutex::new(FileStore::new(settings.batch.clone(), settings.seed)),
        settings,
        started: Instant::now(),
        stats: Mutex::new(Stats::default()),
        generated: AtomicU64::new(0),
        flex_requests: AtomicU64::new(0),
        shutdown: shutdown.clone(),
        addr,
        clock: WallClock::now(),
    });
    let app = crate::routes::router(shared.clone());
    let acceptor = identity.as_ref().map(|identity| identity.acceptor.clone());
    let task = tokio::spawn(accept_loop(listener, app, shared.clone(), acceptor));
    tracing::debug!(%addr, tls = identity.is_some(), "emulator listening");
    Ok(Emulator {
        addr,
        ca_pem: identity.map(|identity| identity.ca_pem),
        shared,
        stop,
        task: Some(task),
    })
}

/// Accepts until shutdown, one task per connection; then waits for those tasks to end.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    shared: Arc<ServerState>,
    tls: Option<TlsAcceptor>,
) {
    let mut stop = shared.shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        // Reap finished connection tasks so the set stays as small as the open connections.
        while connections.try_join_next().is_some() {}
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small SSE chunks must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        shared.connection_opened();
        connections.spawn(serve_connection(
            tcp,
            app.clone(),
            shared.clone(),
            tls.clone(),
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One connection: the TLS handshake (bounded by the read timeout), then HTTP.
async fn serve_connection(
    tcp: TcpStream,
    app: Router,
    shared: Arc<ServerState>,
    tls: Option<TlsAcceptor>,
) {
    let activity = Arc::new(Activity::new(&shared));
    let io = Watched {
        io: tcp,
        activity: activity.clone(),
    };
    let Some(acceptor) = tls else {
        return serve_http(io, app, shared, activity).await;
    };
    match tokio::time::timeout(shared.settings.read_timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => serve_http(stream, app, shared, activity).await,
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// HTTP/1.1 or HTTP/2 (hyper-util detects which) on an established connection, until the
/// client closes it, it goes idle past the read timeout, or the emulator shuts down.
async fn serve_http<I>(io: I, app: Router, shared: Arc<ServerState>, activity: Arc<Activity>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = shared.settings.read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(shared.settings.max_streams)
        .keep_alive_interval(read_timeout)
        .keep_alive_timeout(read_timeout);
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let stream = Stream::open(&activity);
            // The body may not stall for longer than the read timeout between two pieces.
            let request = request.map(|body| Body::new(TimeoutBody::new(read_timeout, body)));
            let response = tower::ServiceExt::oneshot(app.clone(), request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Body::new(CountedBody { body, stream })))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stop = shared.shutdown.clone();
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
        _ = activity.idle_for(read_timeout) => tracing::debug!("closing an idle connection"),
    }
    connection.as_mut().graceful_shutdown();
    // Handlers are cut off at shutdown, so this is quick; the cap covers a client that never
    // reads its last bytes.
    let _ = tokio::time::timeout(read_timeout, connection).await;
}

/// What one connection is doing: requests in flight and when a byte last moved.
struct Activity {
    shared: Arc<ServerState>,
    streams: AtomicUsize,
    last_io_ms: AtomicU64,
}

impl Activity {
    fn new(shared: &Arc<ServerState>) -> Activity {
        Activity {
            shared: shared.clone(),
            streams: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(shared.now_ms()),
        }
    }

    fn touch(&self) {
        self.last_io_ms
            .store(self.shared.now_ms(), Ordering::Relaxed);
    }

    /// Returns once the connection has had no request in flight and no byte moving for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet_ms = self
                .shared
                .now_ms()
                .saturating_sub(self.last_io_ms.load(Ordering::Relaxed));
            if quiet_ms >= limit_ms && self.streams.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wait = limit_ms.saturating_sub(quiet_ms).max(limit_ms / 4).max(10);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// A request counted on its connection from the moment hyper hands it over until its response
/// body is finished or dropped (for HTTP/2: one stream).
struct Stream(Arc<Activity>);

impl Stream {
    fn open(activity: &Arc<Activity>) -> Stream {
        let streams = activity.streams.fetch_add(1, Ordering::Relaxed) + 1;
        activity.shared.streams_on_connection(streams);
        Stream(activity.clone())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A response body that keeps its request counted until it is done.
struct CountedBody {
    body: Body,
    #[allow(dead_code)] // held for its Drop
    stream: Stream,
}

impl hyper::body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TCP stream, noting every byte that moves, so an idle connection can be told apart.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Emulator {
    /// `https://127.0.0.1:PORT` (or `http://` when plain), with no version segment (the SDKs
    /// add `/v1beta/...`).
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM of the CA a client must trust to reach this server over HTTPS; `None` when it
    /// serves plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
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
        let batch_jobs = lock(&self.shared.jobs).len();
        let (files, upload_sessions, stored_bytes) = lock(&self.shared.files).usage();
        TrackedState {
            quota_buckets,
            quota_entries,
            arrivals: lock(&self.shared.stats).arrivals.len(),
            batch_jobs,
            files,
            upload_sessions,
            stored_bytes,
        }
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
