//! [`RedisLimiter`]: the [`RateLimit`] whose books are kept in Redis.
//!
//! The life of a request in one process:
//!
//! 1. `acquire` takes an in-flight slot, if there is a cap (a FIFO semaphore,
//!    as in the local limiter: the slot comes before the stamp).
//! 2. It takes its *turn*: a `tokio::sync::Mutex<()>`, which queues its
//!    waiters in arrival order. Only the holder talks to Redis, so within a
//!    process requests are admitted strictly first come, first served, and
//!    however many wait, one of them at a time asks.
//! 3. The holder runs `admit.lua`. Admitted: it returns the permit and passes
//!    the turn on. Refused: the script said how long until there is room, and
//!    the holder sleeps that long (plus a little jitter) *holding the turn*,
//!    then asks again. One timer per process, no polling.
//!
//! Why a mutex here when the local limiter has a queue and a driver task: the
//! local limiter can compute on its own when the head fits and admit a whole
//! batch in one go; here only Redis knows, and every admission is a round
//! trip anyway. The holder of the turn *is* the driver. The price is one
//! round trip per admission (about 0.1 ms to a local Redis), which is nothing
//! next to a limit counted in requests per minute.
//!
//! Why a `std::sync::Mutex` for the counters: as in the local limiter, it is
//! only held for a few assignments, never across an `.await`.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use futures_util::future::BoxFuture;
use redis::AsyncConnectionConfig;

use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Duration, Instant};

use super::error::SharedError;
use super::scope::Scope;
use super::scripts::{self, Reply, Verdict};
use crate::gauge::Gauge;
use crate::pace::{LimitError, Limits, Permit, RateLimit, Settle, Stats, Usage};
use common::quota::QuotaKind;
use common::redact::{Redactor, parse_url, redact_url, url_secrets};

/// How long `connect` may take, and how long any one command may take
/// before the connection counts as lost. Generous for a server on the same
/// network, short enough that a dead one is noticed in seconds.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The longest shared pause: the longest `retryDelay` the client honours
/// ([`common::error::MAX_RETRY_DELAY`]). A pause key silences every process
/// on the quota, so its TTL is bounded however it was asked for.
const MAX_PAUSE: Duration = common::error::MAX_RETRY_DELAY;

/// The most a refused waiter adds to its sleep at random, so that processes
/// told the same instant do not all ask at once. Also capped at 1% of the
/// window (see [`RedisLimiter::jitter`]).
const MAX_JITTER: Duration = Duration::from_millis(5);

/// A rate limiter shared by every process that names the same Redis and the
/// same [`Scope`]. See the [module documentation](super) for the design.
///
/// ```no_run
/// use std::sync::Arc;
/// use bulk::pace::{Limits, RateLimit};
/// use bulk::redis::{RedisLimiter, Scope};
///
/// # async fn demo(api_key: &str) -> anyhow::Result<()> {
/// let scope = Scope::new(api_key, "gemini-2.5-flash");
/// let limits = Limits::default().with_rpm(10).with_tpm(250_000).with_rpd(250);
/// let limiter = RedisLimiter::connect("redis://127.0.0.1:6379", scope, limits).await?;
/// let limiter: Arc<dyn RateLimit> = Arc::new(limiter); // what the runner takes
/// let permit = limiter.acquire(12).await?;
/// // ... send the request, read usageMetadata.promptTokenCount ...
/// permit.settle(9);
/// # Ok(())
/// # }
/// ```
///
/// Cloning is cheap; clones share one connection and one queue.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

/// What the clones, the permits and the background writes share.
struct Inner {
    /// One multiplexed connection: cheap to clone, pipelines concurrent
    /// commands. It does not reconnect on its own, on purpose: a lost
    /// connection stops the limiter (see [`RedisLimiter::acquire`]).
    conn: MultiplexedConnection,
    /// Where Redis is, without any password, for messages.
    url: String,
    /// The URL's password, to take out of the Redis client's error messages.
    secrets: Redactor,
    /// Whose quota this is.
    scope: Scope,
    /// The key names, computed once.
    keys: Keys,
    /// What we enforce, as configured.
    limits: Limits,
    /// RPM, TPM, RPD as learned from the server since (`set_limit`),
    /// overriding `limits`.
    learned: Mutex<[Option<u32>; 3]>,
    /// The limits other processes learned and published in Redis, read at
    /// connect time.
    published: Vec<(QuotaKind, u32)>,
    /// Window + margin, and day + margin, in microseconds (the scripts' unit).
    hold_us: u64,
    /// Day + margin in microseconds.
    day_hold_us: u64,
    /// The turn: whoever holds it may ask Redis. Tokio's mutex is fair
    /// (FIFO), which is what keeps admissions in arrival order.
    turn: tokio::sync::Mutex<()>,
    /// The in-flight cap, if any (FIFO, like the local limiter's).
    slots: Option<Arc<Semaphore>>,
    /// Tells the sleeping holder of the turn that room may have appeared
    /// early (this process settled a request for fewer tokens).
    room: Notify,
    /// `Some(reason)` once stopped. A watch channel, so that a sleeper can
    /// wait for it in a `select!` and a late subscriber still sees it.
    stopped: watch::Sender<Option<String>>,
    /// Calls to `acquire` in progress.
    waiting: AtomicUsize,
    /// Counters for [`Stats`].
    counters: Mutex<Counters>,
    /// The runtime to run fire-and-forget writes on (`settle`, `pause_until`
    /// and `stop` are not async).
    runtime: tokio::runtime::Handle,
    /// A weak reference to ourselves, so that `Settle::settle`, which only
    /// gets `&self`, can hand a spawned task an `Arc` of its own.
    me: Weak<Inner>,
}

/// The key names of one scope.
struct Keys {
    rpm: String,
    tpm: String,
    tpm_weights: String,
    tpm_sum: String,
    rpd: String,
    pause: String,
    stop: String,
    seq: String,
    /// The limits learned from the server (a hash: `rpm`, `tpm`, `rpd`).
    learned: String,
}

impl Keys {
    fn new(scope: &Scope) -> Keys {
        Keys {
            rpm: scope.key("rpm"),
            tpm: scope.key("tpm"),
            tpm_weights: scope.key("tpm:w"),
            tpm_sum: scope.key("tpm:sum"),
            rpd: scope.key("rpd"),
            pause: scope.key("pause"),
            stop: scope.key("stop"),
            seq: scope.key("seq"),
            learned: scope.key("learned"),
        }
    }

    /// In the order `admit.lua` and `usage.lua` expect them.
    fn all(&self) -> [&str; 8] {
        [
            &self.rpm,
            &self.tpm,
            &self.tpm_weights,
            &self.tpm_sum,
            &self.rpd,
            &self.pause,
            &self.stop,
            &self.seq,
        ]
    }
}

/// This process's view, for [`Stats`].
#[derive(Default)]
struct Counters {
    admitted: u64,
    total_wait: Duration,
    /// Times a refused waiter woke up to ask again.
    wakeups: u64,
    /// Usage as Redis reported it on the last admission script run.
    usage: Usage,
    /// The latest pause we know of (ours, or one Redis told us about).
    paused_until: Option<Instant>,
    /// Requests in the window, ours included, at our first admission.
    first_in_window: Option<u64>,
}

impl RedisLimiter {
    /// Connects to Redis at `url` (`redis://HOST:PORT`, optionally with
    /// `/DB` or a password) and returns a limiter that draws `limits` from
    /// the budget named by `scope`.
    ///
    /// Fails fast, within a few seconds, if Redis cannot be reached or
    /// cannot run the scripts; the error is one line that says where it
    /// looked (never the password). A program should then exit before it
    /// sends any request: running without the shared limiter would blow the
    /// quota for every other process.
    ///
    /// Every process sharing a scope must use the same `limits`; each
    /// process enforces the limits it was given against the shared log.
    pub async fn connect(
        url: &str,
        scope: Scope,
        limits: Limits,
    ) -> Result<RedisLimiter, SharedError> {
        let shown = redact_url(url);
        let secrets = Redactor::new(url_secrets(url));
        // First as a URL (a password with a raw `/`, `?` or `#` is refused
        // with the fix), then as a Redis address.
        let invalid = |error: String| SharedError::InvalidUrl {
            url: shown.clone(),
            error: secrets.text(&error),
        };
        parse_url(url).map_err(invalid)?;
        let client = redis::Client::open(url).map_err(|error| invalid(error.to_string()))?;
        let unreachable = |error: redis::RedisError| SharedError::Unreachable {
            url: shown.clone(),
            error: secrets.text(&error.to_string()),
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(unreachable)?;
        // Loading the scripts proves the server answers and runs Lua; the
        // usage script proves it can read its own clock.
        for script in [
            &scripts::ADMIT,
            &scripts::SETTLE,
            &scripts::PAUSE,
            &scripts::USAGE,
        ] {
            script.load_async(&mut conn).await.map_err(unreachable)?;
        }
        let published = read_learned(&mut conn, &Keys::new(&scope).learned)
            .await
            .map_err(unreachable)?;
        let inner = Arc::new_cyclic(|me| {
            let limits = limits.normalised();
            let mut inner = Inner::new(conn, shown, secrets.clone(), scope, limits, me.clone());
            inner.published = published;
            inner
        });
        inner.read_usage().await?;
        Ok(RedisLimiter { inner })
    }

    /// What this limiter enforces right now: as configured, with the limits
    /// learned since.
    pub fn limits(&self) -> Limits {
        self.inner.current()
    }

    /// The Redis it keeps its books in, without any password.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Whose quota this limiter draws from.
    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// Waits until a request of `tokens` input tokens may be sent, and
    /// returns its permit. Within this process, waiters are admitted in
    /// arrival order; across processes, whoever asks Redis first when room
    /// appears.
    ///
    /// Errors:
    /// * [`LimitError::TooLarge`] at once if `tokens` exceeds the TPM limit;
    /// * [`LimitError::Stopped`] if this limiter, or any process sharing the
    ///   scope, was stopped;
    /// * [`LimitError::Stopped`] if Redis stops answering. Then the limiter
    ///   stops for good: every waiter fails and nothing more is admitted.
    ///   Requests already in flight finish; they were counted. Carrying on
    ///   without the shared count would mean no limit at all.
    ///
    /// Cancel-safe in the sense that matters: dropping the future gives its
    /// place in line up. If it is dropped while the admission script is
    /// running, Redis may have admitted it: that slot stays counted, unused,
    /// until it expires (the safe direction).
    pub async fn acquire(&self, tokens: u32) -> Result<Permit, LimitError> {
        let inner = &self.inner;
        let since = Instant::now();
        let _waiting = Gauge::enter(&inner.waiting);
        // A request that can never fit fails now rather than waiting forever.
        match inner.current().tpm {
            Some(limit) if tokens > limit => {
                return Err(LimitError::TooLarge { tokens, limit });
            }
            _ => {}
        }
        inner.check_running()?;
        let slot = inner.take_slot().await?;
        let _turn = tokio::select! {
            turn = inner.turn.lock() => turn,
            error = inner.until_stopped() => return Err(error),
        };
        loop {
            inner.check_running()?;
            if let Some(pause) = inner.local_pause() {
                inner.sleep_until(pause).await?;
                continue;
            }
            let reply = match inner.ask(tokens).await {
                Ok(reply) => reply,
                Err(error) => return Err(inner.lost(&error)),
            };
            let wait = match reply.verdict {
                Verdict::Admitted(id) => {
                    let at = Instant::now();
                    let waited = at.saturating_duration_since(since);
                    inner.count_admission(waited);
                    return Ok(Permit::new(
                        Arc::clone(inner) as Arc<dyn Settle>,
                        id,
                        tokens,
                        at,
                        waited,
                        slot,
                    ));
                }
                Verdict::Full(micros) => Duration::from_micros(micros),
                Verdict::Paused(micros) => {
                    // Another process wrote this pause: bounded like any
                    // server-sent delay, so a bad one cannot park us for years.
                    let wait = Duration::from_micros(micros).min(MAX_PAUSE);
                    inner.extend_local_pause(Instant::now() + wait);
                    wait
                }
                Verdict::Stopped(reason) => {
                    let reason = format!("stopped by a process sharing this quota: {reason}");
                    inner.stop_local(&reason);
                    return Err(inner.stopped_error());
                }
            };
            inner.lock().wakeups += 1;
            let deadline = Instant::now() + inner.nap(wait);
            inner.sleep_until(deadline).await?;
        }
    }

    /// What counts against each limit right now, read from Redis (a
    /// [`Stats`] only has what this process saw on its last admission).
    pub async fn usage(&self) -> Result<Usage, SharedError> {
        self.inner.read_usage().await.map(|(usage, _pause)| usage)
    }

    /// A snapshot of this process's counters, and the shared usage as of
    /// this process's last call to Redis. `wakeups` counts the times a
    /// refused waiter woke up to ask Redis again.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let counters = inner.lock();
        let now = Instant::now();
        let limits = inner.current();
        Stats {
            limits: limits.clone(),
            waiting: inner.waiting.load(Ordering::Relaxed),
            admitted: counters.admitted,
            total_wait: counters.total_wait,
            usage: counters.usage,
            paused_until: counters.paused_until.filter(|&p| p > now),
            stopped: inner.stopped.borrow().clone(),
            wakeups: counters.wakeups,
            // Redis knows when its day frees a slot; this process only knows
            // the day is full (as of its last call), and that it frees within
            // a day: the latest it can be.
            day_full_until: limits
                .rpd
                .filter(|&n| n > 0 && counters.usage.day_requests >= u64::from(n))
                .map(|_| now + limits.day + limits.margin_or_default()),
        }
    }
}

/// How long a learned limit stays in Redis: a week.
const LEARNED_TTL_S: i64 = 7 * 24 * 3600;

/// The hash field of a limit.
fn field(which: QuotaKind) -> &'static str {
    match which {
        QuotaKind::Rpm => "rpm",
        QuotaKind::Tpm => "tpm",
        QuotaKind::Rpd => "rpd",
    }
}

/// The limits published in the `learned` hash (unknown fields and values
/// that are not numbers are ignored).
async fn read_learned(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> redis::RedisResult<Vec<(QuotaKind, u32)>> {
    let map: std::collections::HashMap<String, String> =
        redis::cmd("HGETALL").arg(key).query_async(conn).await?;
    let mut learned: Vec<(QuotaKind, u32)> = [QuotaKind::Rpm, QuotaKind::Tpm, QuotaKind::Rpd]
        .into_iter()
        .filter_map(|which| Some((which, map.get(field(which))?.parse().ok()?)))
        .collect();
    learned.sort_by_key(|(which, _)| field(*which));
    Ok(learned)
}

impl RateLimit for RedisLimiter {
    fn set_limit(&self, which: QuotaKind, limit: u32) -> bool {
        let index = match which {
            QuotaKind::Rpm => 0,
            QuotaKind::Tpm => 1,
            QuotaKind::Rpd => 2,
        };
        self.inner
            .learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[index] = Some(limit);
        let inner = Arc::clone(&self.inner);
        self.inner.runtime.spawn(async move {
            if let Err(error) = inner.write_learned(which, limit).await {
                tracing::warn!("could not publish the learned limit in Redis: {error}");
            }
        });
        true
    }

    fn published_limits(&self) -> Vec<(QuotaKind, u32)> {
        self.inner.published.clone()
    }

    /// Every process on this Redis, key and model takes its admission ids
    /// from one counter (`seq`).
    fn in_window_at_first(&self) -> Option<u64> {
        self.inner.lock().first_in_window
    }

    fn acquire(&self, tokens: u32) -> BoxFuture<'_, Result<Permit, LimitError>> {
        Box::pin(RedisLimiter::acquire(self, tokens))
    }

    /// Pauses this process at once, and every other one as soon as Redis has
    /// the pause key (a background write; they see it on their next ask).
    fn pause_until(&self, deadline: Instant) {
        let now = Instant::now();
        let duration = deadline.saturating_duration_since(now).min(MAX_PAUSE);
        if duration.is_zero() {
            return;
        }
        // Here at once, before the background write lands.
        self.inner.extend_local_pause(now + duration);
        let this = self.clone();
        self.inner.runtime.spawn(async move {
            if let Err(error) = this.inner.write_pause(duration).await {
                tracing::warn!("could not share the pause: {error}");
            }
        });
    }

    /// Stops this process at once, and every other one sharing the scope
    /// through a key that lives one window plus margin (a background write).
    fn stop(&self, reason: &str) {
        self.inner.stop_local(reason);
        let this = self.clone();
        let reason = reason.to_owned();
        self.inner.runtime.spawn(async move {
            if let Err(error) = this.inner.write_stop(&reason).await {
                tracing::warn!("could not share the stop: {error}");
            }
        });
    }

    fn stats(&self) -> Stats {
        RedisLimiter::stats(self)
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("url", &self.inner.url)
            .field("scope", &self.inner.scope)
            .field("limits", &self.inner.current())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn new(
        conn: MultiplexedConnection,
        url: String,
        secrets: Redactor,
        scope: Scope,
        limits: Limits,
        me: Weak<Inner>,
    ) -> Inner {
        let margin = limits.margin_or_default();
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let slots = limits
            .max_in_flight
            .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        Inner {
            conn,
            url,
            secrets,
            keys: Keys::new(&scope),
            scope,
            hold_us: micros(limits.window.saturating_add(margin)),
            day_hold_us: micros(limits.day.saturating_add(margin)),
            limits,
            learned: Mutex::new([None; 3]),
            published: Vec::new(),
            turn: tokio::sync::Mutex::new(()),
            slots,
            room: Notify::new(),
            stopped: watch::Sender::new(None),
            waiting: AtomicUsize::new(0),
            counters: Mutex::new(Counters::default()),
            runtime: tokio::runtime::Handle::current(),
            me,
        }
    }

    /// Locks the counters (poisoning is harmless here, see the local limiter).
    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limits in force: as configured, with what was learned since.
    fn current(&self) -> Limits {
        let learned = *self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        let mut limits = self.limits.clone();
        for (slot, value) in [&mut limits.rpm, &mut limits.tpm, &mut limits.rpd]
            .into_iter()
            .zip(learned)
        {
            if value.is_some() {
                *slot = value;
            }
        }
        limits.normalised()
    }

    /// Publishes a learned limit for every process sharing the scope; it
    /// expires after a week, so a limit Google raised since is learned anew.
    async fn write_learned(&self, which: QuotaKind, limit: u32) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .hset(&self.keys.learned, field(which), limit)
            .ignore()
            .expire(&self.keys.learned, LEARNED_TTL_S)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    /// Runs the admission script once.
    async fn ask(&self, tokens: u32) -> redis::RedisResult<Reply> {
        let limit = |l: Option<u32>| l.unwrap_or(0);
        let limits = self.current();
        let mut invocation = scripts::ADMIT.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        invocation
            .arg(limit(limits.rpm))
            .arg(limit(limits.tpm))
            .arg(limit(limits.rpd))
            .arg(tokens)
            .arg(self.hold_us)
            .arg(self.day_hold_us);
        let mut conn = self.conn.clone();
        let reply = Reply::decode(invocation.invoke_async(&mut conn).await?);
        self.lock().usage = Usage {
            requests: reply.rpm,
            tokens: reply.tpm,
            day_requests: reply.rpd,
        };
        Ok(reply)
    }

    /// Reads the shared usage and the pause left, in milliseconds.
    async fn read_usage(&self) -> Result<(Usage, u64), SharedError> {
        let mut invocation = scripts::USAGE.prepare_invoke();
        for key in self.keys.all() {
            invocation.key(key);
        }
        let mut conn = self.conn.clone();
        let (requests, tokens, day_requests, pause): (u64, u64, u64, u64) = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.error(error))?;
        let usage = Usage {
            requests,
            tokens,
            day_requests,
        };
        Ok((usage, pause))
    }

    /// Sets the shared pause key (extending only), for at most [`MAX_PAUSE`].
    async fn write_pause(&self, duration: Duration) -> Result<(), SharedError> {
        let millis = u64::try_from(duration.min(MAX_PAUSE).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.conn.clone();
        let _left: i64 = scripts::PAUSE
            .key(&self.keys.pause)
            .arg(millis)
            .invoke_async(&mut conn)
            .await
            .map_err(|error| self.error(error))?;
        Ok(())
    }

    /// Sets the shared stop key, keeping the first reason, for one window
    /// plus margin: long enough for every running process to see it (a
    /// waiter asks again at least once a window), short enough that a run
    /// started later, when things may have changed, is not turned away.
    async fn write_stop(&self, reason: &str) -> Result<(), SharedError> {
        let millis = self.hold_us.div_ceil(1000).max(1);
        let mut conn = self.conn.clone();
        let _set: Option<String> = redis::cmd("SET")
            .arg(&self.keys.stop)
            .arg(reason)
            .arg("PX")
            .arg(millis)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(|error| self.error(error))?;
        Ok(())
    }

    /// Sends a token correction and, if tokens came back, tells our own
    /// sleeping waiter to ask again now.
    async fn write_settle(&self, id: u64, actual: u32) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let change: i64 = scripts::SETTLE
            .key(&self.keys.tpm)
            .key(&self.keys.tpm_weights)
            .key(&self.keys.tpm_sum)
            .arg(id)
            .arg(actual)
            .arg(self.hold_us)
            .invoke_async(&mut conn)
            .await?;
        if change < 0 {
            self.room.notify_one();
        }
        Ok(())
    }

    /// Wraps a Redis failure after connecting.
    fn error(&self, error: redis::RedisError) -> SharedError {
        SharedError::Redis {
            url: self.url.clone(),
            error: self.secrets.text(&error.to_string()),
        }
    }

    /// Redis failed mid-run: stop for good and say why.
    fn lost(&self, error: &redis::RedisError) -> LimitError {
        let reason = format!(
            "lost the shared rate limiter at {}: {}; no new requests are sent",
            self.url,
            self.secrets.text(&error.to_string())
        );
        tracing::error!("{reason}");
        self.stop_local(&reason);
        self.stopped_error()
    }

    /// How long a refused waiter sleeps for a wait Redis announced: the wait
    /// plus a little jitter, but never longer than a window (so that a stop
    /// or a pause from elsewhere is noticed within one window, even by a
    /// waiter that was told to come back tomorrow).
    fn nap(&self, wait: Duration) -> Duration {
        let recheck = self
            .limits
            .window
            .saturating_add(self.limits.margin_or_default())
            .max(Duration::from_secs(1));
        wait.saturating_add(self.jitter()).min(recheck)
    }

    /// A random extra delay of up to 5 ms (at most 1% of the window).
    ///
    /// `RandomState` is seeded at random per process, which is all the
    /// randomness this needs: processes told the same instant by Redis wake
    /// a few milliseconds apart instead of together.
    fn jitter(&self) -> Duration {
        let cap = MAX_JITTER.min(self.limits.window / 100);
        let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(0);
        if cap_micros == 0 {
            return Duration::ZERO;
        }
        let random = RandomState::new().hash_one(Instant::now());
        Duration::from_micros(random % cap_micros)
    }

    /// Sleeps until `deadline`, unless stopped (an error) or told that room
    /// appeared (an early return, to ask again).
    async fn sleep_until(&self, deadline: Instant) -> Result<(), LimitError> {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => Ok(()),
            () = self.room.notified() => Ok(()),
            error = self.until_stopped() => Err(error),
        }
    }

    /// Resolves once the limiter is stopped, with the error to return.
    async fn until_stopped(&self) -> LimitError {
        let mut stopped = self.stopped.subscribe();
        // `wait_for` checks the current value first, so a stop that happened
        // before we subscribed is seen too.
        let _ = stopped.wait_for(Option::is_some).await;
        self.stopped_error()
    }

    /// The pause in force in this process, if any.
    fn local_pause(&self) -> Option<Instant> {
        let now = Instant::now();
        self.lock().paused_until.filter(|&p| p > now)
    }

    /// Extends this process's pause (never shortens it).
    fn extend_local_pause(&self, deadline: Instant) {
        let mut counters = self.lock();
        counters.paused_until = Some(counters.paused_until.map_or(deadline, |p| p.max(deadline)));
    }

    /// Stops this process's limiter: every waiter fails now, every later
    /// call too. The first reason is kept.
    fn stop_local(&self, reason: &str) {
        self.stopped.send_if_modified(|stopped| {
            if stopped.is_some() {
                return false;
            }
            *stopped = Some(reason.to_owned());
            true
        });
        if let Some(slots) = &self.slots {
            slots.close();
        }
    }

    /// Fails if stopped.
    fn check_running(&self) -> Result<(), LimitError> {
        match self.stopped.borrow().is_some() {
            true => Err(self.stopped_error()),
            false => Ok(()),
        }
    }

    /// The error for a stopped limiter.
    fn stopped_error(&self) -> LimitError {
        let reason = self.stopped.borrow().clone();
        LimitError::Stopped {
            reason: reason.unwrap_or_else(|| "the limiter was stopped".to_owned()),
        }
    }

    /// Waits for an in-flight slot, if there is a cap.
    async fn take_slot(&self) -> Result<Option<OwnedSemaphorePermit>, LimitError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        match Arc::clone(slots).acquire_owned().await {
            Ok(slot) => Ok(Some(slot)),
            // Only a stop closes the semaphore.
            Err(_closed) => Err(self.stopped_error()),
        }
    }

    /// Counts an admission in this process's totals.
    fn count_admission(&self, waited: Duration) {
        let mut counters = self.lock();
        counters.admitted += 1;
        counters.total_wait = counters.total_wait.saturating_add(waited);
        // `usage` is the admitting reply's: this process asks one at a time.
        let in_window = counters.usage.requests;
        counters.first_in_window.get_or_insert(in_window);
    }
}

impl Settle for Inner {
    /// Sends the correction to Redis from a spawned task: settling must not
    /// block, and the permit's owner has no reason to wait for it. If it
    /// fails, the estimate stays charged (and the next `acquire` finds out
    /// that Redis is gone).
    fn settle(&self, id: u64, charged: u32, actual: u32) {
        if charged == actual || self.current().tpm.is_none_or(|n| n == 0) {
            return;
        }
        // `settle` has `&self`, and the task needs to own what it uses.
        let Some(this) = self.me.upgrade() else {
            return;
        };
        self.runtime.spawn(async move {
            if let Err(error) = this.write_settle(id, actual).await {
                tracing::warn!("could not settle admission {id} in Redis: {error}");
            }
        });
    }
}
