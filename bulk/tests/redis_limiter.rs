//! Tests of the limiter shared through Redis ([`RedisLimiter`]).
//!
//! Each test starts its own `redis-server` on a free port (see
//! `testkit::redis`) and connects several limiters to it,
//! each with a connection of its own, exactly as separate processes would.
//! Without `redis-server` installed the tests print a note and pass, unless
//! `CI` is set, where they fail.
//!
//! These run on the real clock (Redis has its own), with 1 s windows to keep
//! them short. As in the local limiter's tests, the safety checks use the
//! limiter's own stamps, here Redis's: the per-day log keeps every admission
//! with its expiry, so admission = score - (day + margin), on Redis's clock,
//! to the microsecond. Nothing asserts speed; the "reaches the limit" checks
//! count admissions inside one window, which a slow machine cannot shrink.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bulk::pace::{LimitError, Limits, RateLimit};
use bulk::redis::{RedisLimiter, Scope, SharedError};
use redis::aio::MultiplexedConnection;
use testkit::redis::RedisServer;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
/// Long enough for anything that should happen, to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(15);

/// Starts a Redis for this test, or skips the test (see the module docs).
macro_rules! redis_or_skip {
    () => {
        match RedisServer::start() {
            Some(server) => server,
            None => return,
        }
    };
}

/// Short windows: `rpm` requests and `tpm` tokens per 1 s (+ 50 ms margin),
/// and a huge per-day limit over an hour, only so that the per-day log keeps
/// every admission for [`admissions`] to read.
fn limits(rpm: u32, tpm: u32) -> Limits {
    Limits::default()
        .with_rpm(rpm)
        .with_tpm(tpm)
        .with_rpd(1_000_000)
        .with_window(SEC)
        .with_day(Duration::from_secs(3600))
        .with_margin(50 * MS)
}

fn scope() -> Scope {
    Scope::new("test-key", "gemini-2.5-flash")
}

async fn connect(redis: &RedisServer, scope: &Scope, limits: &Limits) -> RedisLimiter {
    RedisLimiter::connect(&redis.url(), scope.clone(), limits.clone())
        .await
        .expect("connected to the test Redis")
}

/// A plain connection, for looking at the keys.
async fn raw(redis: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connected")
}

/// Waits until Redis holds `key`: the limiter's pause and stop reach Redis
/// in the background, and the other processes see them only from there.
async fn until_stored(redis: &RedisServer, key: &str) {
    let mut conn = raw(redis).await;
    timeout(PATIENCE, async {
        loop {
            let exists: bool = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("EXISTS");
            if exists {
                return;
            }
            tokio::time::sleep(5 * MS).await;
        }
    })
    .await
    .expect("the key reached Redis in time");
}

/// Every admission of `scope` so far, as (id, microseconds on Redis's clock),
/// in admission order: read from the per-day log, whose score is
/// admission + day + margin.
async fn admissions(redis: &RedisServer, scope: &Scope, limits: &Limits) -> Vec<(u64, i64)> {
    let day_hold = (limits.day + limits.margin_or_default()).as_micros() as i64;
    let log: Vec<(u64, i64)> = redis::cmd("ZRANGE")
        .arg(scope.key("rpd"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut raw(redis).await)
        .await
        .expect("read the per-day log");
    let mut log: Vec<(u64, i64)> = log.into_iter().map(|(id, s)| (id, s - day_hold)).collect();
    log.sort_by_key(|&(id, at)| (at, id));
    log
}

/// Safety: in every span of `hold` ending at an admission, at most `limit`
/// units (the same check as the local limiter's `assert_window`).
fn assert_window(admitted: &[(u64, i64)], hold: Duration, limit: u64, units: impl Fn(u64) -> u64) {
    let hold = hold.as_micros() as i64;
    for &(_, end) in admitted {
        let used: u64 = admitted
            .iter()
            .filter(|&&(_, at)| at <= end && at + hold > end)
            .map(|&(id, _)| units(id))
            .sum();
        assert!(
            used <= limit,
            "{used} > {limit} in the span ending at {end} us"
        );
    }
}

/// How many admissions fall in the first `window` after the first one.
fn in_first_window(admitted: &[(u64, i64)], window: Duration) -> usize {
    let start = admitted.first().map_or(0, |&(_, at)| at);
    let window = window.as_micros() as i64;
    admitted
        .iter()
        .filter(|&&(_, at)| at < start + window)
        .count()
}

/// Sends `tokens[i]` through limiter `i % limiters.len()`, all at once, and
/// returns id -> tokens for every permit.
async fn burst(limiters: &[RedisLimiter], tokens: &[u32]) -> HashMap<u64, u32> {
    let tasks: Vec<JoinHandle<(u64, u32)>> = tokens
        .iter()
        .enumerate()
        .map(|(i, &tokens)| {
            let limiter = limiters[i % limiters.len()].clone();
            tokio::spawn(async move {
                let permit = limiter.acquire(tokens).await.expect("admitted");
                (permit.id(), tokens)
            })
        })
        .collect();
    let mut charged = HashMap::new();
    for task in tasks {
        let (id, tokens) = timeout(PATIENCE, task)
            .await
            .expect("admitted in time")
            .expect("the task ran");
        charged.insert(id, tokens);
    }
    charged
}

/// Waits until `limiter` has `n` calls waiting.
async fn until_waiting(limiter: &RedisLimiter, n: usize) {
    timeout(PATIENCE, async {
        while limiter.stats().waiting < n {
            tokio::time::sleep(MS).await;
        }
    })
    .await
    .expect("the waiter queued");
}

// ---------------------------------------------------------------------------
// One budget for many processes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_one_window_and_fill_it() {
    let redis = redis_or_skip!();
    let limits = limits(10, 0);
    let mut limiters = Vec::new();
    for _ in 0..4 {
        limiters.push(connect(&redis, &scope(), &limits).await);
    }

    let charged = burst(&limiters, &[1; 40]).await;
    let admitted = admissions(&redis, &scope(), &limits).await;

    assert_eq!(charged.len(), 40);
    assert_eq!(admitted.len(), 40, "every permit is in the shared log");
    // Never more than 10 in any window + margin, counted on Redis's clock...
    assert_window(&admitted, SEC + 50 * MS, 10, |_| 1);
    // ...and the whole limit at once in the first window, not a trickle.
    assert_eq!(in_first_window(&admitted, SEC), 10);
    // Each process got some: they really shared.
    for limiter in &limiters {
        assert_eq!(limiter.stats().admitted, 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_requests_and_tokens() {
    let redis = redis_or_skip!();
    let limits = limits(20, 1_000);
    let a = connect(&redis, &scope(), &limits).await;
    let b = connect(&redis, &scope(), &limits).await;
    let tokens: Vec<u32> = (0..20u32).map(|i| 50 + (i * 37) % 101).collect();

    let charged = burst(&[a, b], &tokens).await;
    let admitted = admissions(&redis, &scope(), &limits).await;

    assert_eq!(admitted.len(), 20);
    let hold = SEC + 50 * MS;
    assert_window(&admitted, hold, 20, |_| 1);
    assert_window(&admitted, hold, 1_000, |id| u64::from(charged[&id]));
    // The first window is filled up to the token limit: the next request in
    // line would not have fitted.
    let first = in_first_window(&admitted, SEC);
    let used: u32 = admitted[..first].iter().map(|(id, _)| charged[id]).sum();
    let next = admitted.get(first).map_or(0, |(id, _)| charged[id]);
    assert!(
        used + next > 1_000,
        "{used} tokens in the first window, next {next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_and_models_do_not_share() {
    let redis = redis_or_skip!();
    let limits = limits(3, 0).with_window(Duration::from_secs(60));
    let a = connect(&redis, &Scope::new("key-1", "gemini-2.5-flash"), &limits).await;
    let b = connect(&redis, &Scope::new("key-2", "gemini-2.5-flash"), &limits).await;
    let c = connect(&redis, &Scope::new("key-1", "gemini-2.5-pro"), &limits).await;

    for limiter in [&a, &b, &c] {
        for _ in 0..3 {
            let permit = timeout(PATIENCE, limiter.acquire(1)).await;
            assert!(matches!(permit, Ok(Ok(_))), "each scope has its own 3");
        }
    }
    // A fourth in scope A waits: its window is a minute long.
    assert!(timeout(300 * MS, a.acquire(1)).await.is_err());
    assert_eq!(a.usage().await.expect("usage").requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_in_one_process_go_in_arrival_order() {
    let redis = redis_or_skip!();
    let limits = limits(1, 0)
        .with_window(200 * MS)
        .with_margin(Duration::ZERO);
    let limiter = connect(&redis, &scope(), &limits).await;
    let _first = limiter.acquire(1).await.expect("admitted");

    let mut tasks = Vec::new();
    for k in 1..=4 {
        let waiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            waiter.acquire(1).await.map(|permit| permit.id())
        }));
        until_waiting(&limiter, k).await;
    }
    let mut ids = Vec::new();
    for task in tasks {
        let id = timeout(PATIENCE, task)
            .await
            .expect("in time")
            .expect("ran");
        ids.push(id.expect("admitted"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "FIFO: {ids:?}");
}

// ---------------------------------------------------------------------------
// Pause, stop, settle.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_from_one_process_holds_the_others() {
    let redis = redis_or_skip!();
    let limits = limits(100, 0);
    let a = connect(&redis, &scope(), &limits).await;
    let b = connect(&redis, &scope(), &limits).await;

    let start = Instant::now();
    a.pause_until(start + 600 * MS);
    until_stored(&redis, &scope().key("pause")).await;
    let permit = timeout(PATIENCE, b.acquire(1))
        .await
        .expect("in time")
        .expect("admitted after the pause");
    // Redis counts the pause in whole milliseconds: allow one.
    assert!(
        permit.admitted_at() - start >= 599 * MS,
        "admitted {:?} after the pause began",
        permit.admitted_at() - start
    );
    assert!(b.stats().wakeups >= 1, "b was told to wait, and woke up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_until_through_the_trait_reaches_redis() {
    let redis = redis_or_skip!();
    let limits = limits(100, 0);
    let a: Arc<dyn RateLimit> = Arc::new(connect(&redis, &scope(), &limits).await);
    a.pause_until(Instant::now() + 5 * SEC);
    assert!(
        a.stats().paused_until.is_some(),
        "this process pauses at once"
    );

    // The shared key is written in the background: wait for it.
    let mut conn = raw(&redis).await;
    let ttl = timeout(PATIENCE, async {
        loop {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(scope().key("pause"))
                .query_async(&mut conn)
                .await
                .expect("PTTL");
            if ttl > 0 {
                return ttl;
            }
            tokio::time::sleep(5 * MS).await;
        }
    })
    .await
    .expect("the pause reached Redis");
    assert!(ttl <= 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_every_process() {
    let redis = redis_or_skip!();
    let limits = limits(1, 0).with_window(Duration::from_secs(60));
    let a = connect(&redis, &scope(), &limits).await;
    let b = connect(&redis, &scope(), &limits).await;
    let _permit = a.acquire(1).await.expect("admitted");
    let a_waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.acquire(1).await })
    };
    until_waiting(&a, 1).await;

    a.stop("daily quota spent");
    until_stored(&redis, &scope().key("stop")).await;

    let waited = timeout(PATIENCE, a_waiter).await.expect("in time");
    assert!(matches!(
        waited.expect("ran"),
        Err(LimitError::Stopped { .. })
    ));
    match timeout(PATIENCE, b.acquire(1)).await.expect("in time") {
        Err(LimitError::Stopped { reason }) => assert!(reason.contains("daily quota spent")),
        other => panic!("expected a stop, got {other:?}"),
    }
    assert!(b.stats().stopped.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_low_gives_tokens_back_to_every_process() {
    let redis = redis_or_skip!();
    // A minute-long window: only settling can make room in this test.
    let limits = limits(0, 100).with_window(Duration::from_secs(60));
    let a = connect(&redis, &scope(), &limits).await;
    let b = connect(&redis, &scope(), &limits).await;

    let permit = a.acquire(80).await.expect("admitted");
    // A waiter in the same process, and one in another.
    let a_waiter = {
        let a = a.clone();
        tokio::spawn(async move { a.acquire(50).await.map(|p| p.tokens()) })
    };
    until_waiting(&a, 1).await;
    permit.settle(10);

    // The waiter in the same process is woken by the refund...
    let got = timeout(PATIENCE, a_waiter)
        .await
        .expect("woken by the refund");
    assert_eq!(got.expect("ran").expect("admitted"), 50);
    assert_eq!(a.usage().await.expect("usage").tokens, 60);
    // ...and another process sees the room on its next ask.
    let permit = timeout(PATIENCE, b.acquire(40)).await.expect("in time");
    let permit = permit.expect("admitted");
    assert_eq!(b.usage().await.expect("usage").tokens, 100);

    // Settling high charges the difference.
    permit.settle(45);
    let usage = timeout(PATIENCE, async {
        loop {
            let usage = b.usage().await.expect("usage");
            if usage.tokens != 100 {
                return usage;
            }
            tokio::time::sleep(5 * MS).await;
        }
    })
    .await
    .expect("the charge reached Redis");
    assert_eq!(usage.tokens, 105);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_token_limit_fails_at_once() {
    let redis = redis_or_skip!();
    let limiter = connect(&redis, &scope(), &limits(0, 100)).await;
    assert_eq!(
        limiter.acquire(101).await.expect_err("too large"),
        LimitError::TooLarge {
            tokens: 101,
            limit: 100
        }
    );
}

// ---------------------------------------------------------------------------
// Failures and housekeeping.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_fails_connect_quickly_with_one_line() {
    // A port nobody listens on (no redis-server needed for this one).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let result = timeout(
        PATIENCE,
        RedisLimiter::connect(&url, scope(), limits(10, 0)),
    )
    .await
    .expect("connect gives up by itself");
    let error = result.expect_err("nothing listens there");
    assert!(
        matches!(error, SharedError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "the password is never shown");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_mid_run_stops_admitting() {
    let mut redis = redis_or_skip!();
    let limits = limits(3, 0);
    let limiter = connect(&redis, &scope(), &limits).await;
    for _ in 0..3 {
        let _permit = limiter.acquire(1).await.expect("admitted");
    }
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire(1).await })
    };
    until_waiting(&limiter, 1).await;

    redis.kill();

    // The sleeping waiter asks again when its slot is due, and fails.
    let result = timeout(PATIENCE, waiter).await.expect("does not hang");
    match result.expect("ran") {
        Err(LimitError::Stopped { reason }) => {
            assert!(reason.contains("lost the shared rate limiter"), "{reason}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // And so does everyone after it, at once.
    let later = timeout(PATIENCE, limiter.acquire(1))
        .await
        .expect("no hang");
    assert!(matches!(later, Err(LimitError::Stopped { .. })));
    assert_eq!(
        limiter.stats().admitted,
        3,
        "nothing admitted without Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_expires_on_its_own() {
    let redis = redis_or_skip!();
    let limits = limits(10, 1_000);
    let limiter = connect(&redis, &scope(), &limits).await;
    limiter.acquire(30).await.expect("admitted").settle(20);
    limiter.pause_until(Instant::now() + 5 * SEC);
    limiter.stop("test over");
    until_stored(&redis, &scope().key("pause")).await;
    until_stored(&redis, &scope().key("stop")).await;
    // The settle is written in the background: wait until it landed.
    timeout(PATIENCE, async {
        while limiter.usage().await.expect("usage").tokens != 20 {
            tokio::time::sleep(5 * MS).await;
        }
    })
    .await
    .expect("settled");

    let mut conn = raw(&redis).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("gemini-rl:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    let expected: Vec<String> = [
        "pause", "rpd", "rpm", "seq", "stop", "tpm", "tpm:sum", "tpm:w",
    ]
    .iter()
    .map(|part| scope().key(part))
    .collect();
    assert_eq!(keys, expected);

    let day_ms = (limits.day + limits.margin_or_default()).as_millis() as i64 + 1;
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
        let most = match key.rsplit_once("}:").map_or("", |(_, part)| part) {
            // The per-day log, and the id counter that must outlive it.
            "rpd" | "seq" => day_ms,
            "pause" => 5_000,
            // Everything else: one window + margin.
            _ => 1_051,
        };
        assert!(ttl <= most, "{key}: PTTL {ttl} > {most}");
    }
}

// ---------------------------------------------------------------------------
// Limits learned from the server are shared through Redis.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_limit_is_kept_in_redis_for_every_process() {
    use bulk::pace::RateLimit;
    use common::quota::QuotaKind;

    let redis = redis_or_skip!();
    let limits = limits(10, 0);
    let first = connect(&redis, &scope(), &limits).await;
    assert!(first.published_limits().is_empty());
    assert!(RateLimit::set_limit(&first, QuotaKind::Rpm, 3));
    assert_eq!(first.stats().limits.rpm, Some(3), "in force at once");

    // The write is asynchronous: a process that connects a moment later
    // finds the limit in Redis.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let later = connect(&redis, &scope(), &limits).await;
        if later.published_limits() == [(QuotaKind::Rpm, 3)] {
            break;
        }
        assert!(Instant::now() < deadline, "never published");
        tokio::time::sleep(10 * MS).await;
    }
    // Three per window now, for this process's admissions.
    let charged = burst(&[first], &[1; 6]).await;
    let admitted = admissions(&redis, &scope(), &limits).await;
    assert_eq!(charged.len(), 6);
    assert_window(&admitted, SEC + 50 * MS, 3, |_| 1);
}
