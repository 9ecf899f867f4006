//! Tests of what `bulk` adds around step 4's limiter ([`bulk::pace`]): the
//! counters behind its progress bar and summary, the `RateLimit` interface,
//! retries that go first, limits learned mid-run, and requests remembered
//! from an earlier run. The limiter's own algorithm is tested in step 4
//! (`step4-ratelimit/tests/limiter.rs`).
//!
//! All on Tokio's paused clock: time jumps to the next timer when every task
//! waits, so every instant is exact and minutes take milliseconds.

use std::sync::{Arc, Mutex};

use bulk::pace::{LimitError, Limits, LocalLimiter, RateLimit};
use common::quota::QuotaKind;
use tokio::time::{Duration, Instant};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// One request per window of a second, no margin: easy arithmetic.
fn one_per_second() -> Arc<LocalLimiter> {
    Arc::new(LocalLimiter::new(
        Limits::default()
            .with_rpm(1)
            .with_window(SEC)
            .with_margin(Duration::ZERO),
    ))
}

/// Lets every spawned task run until it waits.
async fn settle_down() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_time_and_admissions_are_counted() {
    let limiter = LocalLimiter::new(
        Limits::default()
            .with_rpm(2)
            .with_window(10 * SEC)
            .with_margin(Duration::ZERO),
    );
    let limiter = Arc::new(limiter);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire(1).await.map(drop) })
        })
        .collect();
    settle_down().await;
    assert_eq!(limiter.stats().waiting, 2, "two went, two wait");
    for task in tasks {
        task.await.expect("ran").expect("admitted");
    }
    let stats = limiter.stats();
    assert_eq!(stats.admitted, 4);
    assert_eq!(stats.total_wait, 20 * SEC, "two waited 10 s each");
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.usage.requests, 2);
}

#[tokio::test(start_paused = true)]
async fn works_behind_the_rate_limit_trait() {
    let limiter: Arc<dyn RateLimit> = Arc::new(LocalLimiter::new(
        Limits::default()
            .with_rpm(1)
            .with_tpm(1_000)
            .with_window(10 * SEC)
            .with_margin(Duration::ZERO),
    ));
    let start = Instant::now();
    limiter.acquire(500).await.expect("admitted").settle(100);
    assert_eq!(limiter.stats().usage.tokens, 100);
    limiter.pause_until(start + 20 * SEC);
    limiter.pause_until(start + 15 * SEC); // does not shorten it
    assert_eq!(limiter.stats().paused_until, Some(start + 20 * SEC));
    let permit = limiter.acquire(1).await.expect("admitted");
    assert_eq!(permit.admitted_at() - start, 20 * SEC);
    assert_eq!(limiter.stats().paused_until, None, "over");
    limiter.stop("done");
    limiter.stop("again"); // the first reason is kept
    assert!(matches!(
        limiter.acquire(1).await,
        Err(LimitError::Stopped { .. })
    ));
    assert_eq!(limiter.stats().stopped.as_deref(), Some("done"));
}

#[tokio::test(start_paused = true)]
async fn the_day_is_reported_full_until_its_first_request_ages_out() {
    let limiter = LocalLimiter::new(
        Limits::default()
            .with_rpd(2)
            .with_day(100 * SEC)
            .with_margin(Duration::ZERO),
    );
    let start = Instant::now();
    drop(limiter.acquire(1).await.expect("admitted"));
    assert_eq!(limiter.stats().day_full_until, None);
    tokio::time::sleep(SEC).await;
    drop(limiter.acquire(1).await.expect("admitted"));
    let stats = limiter.stats();
    assert_eq!(stats.usage.day_requests, 2);
    assert_eq!(stats.day_full_until, Some(start + 100 * SEC));
}

/// Spawns requests that record the order they were admitted in.
fn spawn_in_order(
    limiter: &Arc<LocalLimiter>,
    order: &Arc<Mutex<Vec<&'static str>>>,
    name: &'static str,
    retry: bool,
) -> tokio::task::JoinHandle<()> {
    let (limiter, order) = (Arc::clone(limiter), Arc::clone(order));
    tokio::spawn(async move {
        let permit = match retry {
            true => limiter.acquire_first(1).await,
            false => limiter.acquire(1).await,
        };
        order.lock().expect("not poisoned").push(name);
        drop(permit.expect("admitted"));
    })
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_before_requests_queued_earlier() {
    let limiter = one_per_second();
    let _held = limiter.acquire(1).await.expect("admitted");
    let order = Arc::new(Mutex::new(Vec::new()));
    let new1 = spawn_in_order(&limiter, &order, "new 1", false);
    let new2 = spawn_in_order(&limiter, &order, "new 2", false);
    settle_down().await;
    let retry = spawn_in_order(&limiter, &order, "retry", true);
    for task in [new1, new2, retry] {
        task.await.expect("ran");
    }
    assert_eq!(
        *order.lock().expect("not poisoned"),
        ["retry", "new 1", "new 2"]
    );
}

#[tokio::test(start_paused = true)]
async fn retries_keep_their_own_order() {
    let limiter = one_per_second();
    let _held = limiter.acquire(1).await.expect("admitted");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, retry) in [("new", false), ("retry 1", true), ("retry 2", true)] {
        tasks.push(spawn_in_order(&limiter, &order, name, retry));
        settle_down().await;
    }
    for task in tasks {
        task.await.expect("ran");
    }
    assert_eq!(
        *order.lock().expect("not poisoned"),
        ["retry 1", "retry 2", "new"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lowered_limit_holds_at_once_and_a_raised_one_frees_waiters() {
    let limiter = Arc::new(LocalLimiter::new(
        Limits::default()
            .with_rpm(10)
            .with_window(SEC)
            .with_margin(Duration::ZERO),
    ));
    for _ in 0..3 {
        drop(limiter.acquire(1).await.expect("admitted"));
    }
    assert!(limiter.set_limit(QuotaKind::Rpm, 3));
    assert_eq!(limiter.stats().limits.rpm, Some(3));
    let start = Instant::now();
    drop(limiter.acquire(1).await.expect("admitted"));
    assert_eq!(
        Instant::now() - start,
        SEC,
        "the fourth waited for the window"
    );

    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move {
            let started = Instant::now();
            // Three in the window (the fourth and two more): full at 3.
            for _ in 0..3 {
                drop(limiter.acquire(1).await.expect("admitted"));
            }
            Instant::now() - started
        })
    };
    settle_down().await;
    assert!(limiter.set_limit(QuotaKind::Rpm, 0));
    assert_eq!(limiter.stats().limits.rpm, None);
    assert_eq!(waiter.await.expect("ran"), Duration::ZERO);

    // A limit that was off can be put on: it counts from now.
    assert!(limiter.set_limit(QuotaKind::Tpm, 100));
    drop(limiter.acquire(100).await.expect("admitted"));
    let start = Instant::now();
    drop(limiter.acquire(1).await.expect("admitted"));
    assert_eq!(Instant::now() - start, SEC);
}

#[tokio::test(start_paused = true)]
async fn requests_remembered_from_an_earlier_run_count_until_they_age_out() {
    let limiter = LocalLimiter::new(
        Limits::default()
            .with_rpm(2)
            .with_rpd(5)
            .with_window(SEC)
            .with_day(10 * SEC)
            .with_margin(Duration::ZERO),
    );
    // Two sent 400 ms ago by an earlier run, three more earlier "today".
    limiter.remember(&[400 * MS, 400 * MS, 5 * SEC, 6 * SEC, 7 * SEC]);
    let stats = limiter.stats();
    assert_eq!((stats.usage.requests, stats.usage.day_requests), (2, 5));
    let start = Instant::now();
    assert_eq!(
        stats.day_full_until,
        Some(start + 3 * SEC),
        "7 s ago + a day of 10 s"
    );
    // The next request waits for the oldest of the day to age out.
    drop(limiter.acquire(1).await.expect("admitted"));
    assert_eq!(Instant::now() - start, 3 * SEC);
}
