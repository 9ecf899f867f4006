//! Tests of the hand-written rate limiter.
//!
//! Almost all of them run on Tokio's paused clock (`start_paused = true`):
//! time only moves when every task is waiting, and then it jumps straight to
//! the next timer. A test that spans minutes of limiter time takes
//! milliseconds, and every instant is exact, so we can compare the limiter's
//! schedule with the ideal one to the nanosecond.
//!
//! Two kinds of checks recur:
//!
//! * *Safety*: in any span of window + margin, at most the limit was admitted
//!   (`assert_window`), so the server, counting a strict window of its own on
//!   requests that arrive up to a margin late, never sees too many
//!   (`assert_server_view`).
//! * *Speed*: the limiter's schedule is exactly the best FIFO schedule
//!   (`ideal`, a brute-force reference that shares no code with the limiter):
//!   a full window's worth at once, then each next batch the instant slots
//!   free up.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use common::quota::QuotaKind;
use step4_ratelimit::limiter::{LimitError, Limiter, Limits, Permit};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant, sleep, sleep_until};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// One admission, as the tests record it.
#[derive(Debug, Clone, Copy)]
struct Admitted {
    /// The permit's id: ids follow queue order.
    id: u64,
    /// The tokens it was charged.
    tokens: u32,
    /// When it was admitted, since the start of the test.
    at: Duration,
}

/// Deterministic token counts in `lo..=hi`, one per request.
fn token_counts(n: usize, lo: u32, hi: u32) -> Vec<u32> {
    (0..n as u64)
        .map(|i| lo + (i.wrapping_mul(2_654_435_761) % u64::from(hi - lo + 1)) as u32)
        .collect()
}

/// Submits one request per entry of `tokens`, all at once, and returns the
/// admissions in id order (which is queue order).
async fn burst(limiter: &Limiter, tokens: &[u32]) -> Vec<Admitted> {
    let start = Instant::now();
    let tasks: Vec<JoinHandle<Admitted>> = tokens
        .iter()
        .map(|&tokens| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let permit = limiter.acquire(tokens).await.expect("admitted");
                Admitted {
                    id: permit.id(),
                    tokens,
                    at: permit.admitted_at() - start,
                }
            })
        })
        .collect();
    let mut admitted = Vec::with_capacity(tasks.len());
    for task in tasks {
        admitted.push(task.await.expect("the task ran"));
    }
    admitted.sort_by_key(|a| a.id);
    admitted
}

/// Starts an `acquire` in a task and returns once it is waiting in the
/// queue, so tests can line waiters up in a known order. Only for requests
/// that will have to wait for room (not for an in-flight slot).
async fn queue_up(limiter: &Limiter, tokens: u32) -> JoinHandle<Result<Permit, LimitError>> {
    let before = limiter.queued();
    let task = spawn_acquire(limiter, tokens);
    for _ in 0..1000 {
        if limiter.queued() > before {
            return task;
        }
        tokio::task::yield_now().await;
    }
    panic!("the acquire never started waiting");
}

/// Starts an `acquire` in a task, and lets it run until it waits.
async fn spawn_and_wait(limiter: &Limiter, tokens: u32) -> JoinHandle<Result<Permit, LimitError>> {
    let task = spawn_acquire(limiter, tokens);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!task.is_finished(), "it had to wait");
    task
}

fn spawn_acquire(limiter: &Limiter, tokens: u32) -> JoinHandle<Result<Permit, LimitError>> {
    let limiter = limiter.clone();
    tokio::spawn(async move { limiter.acquire(tokens).await })
}

/// Polls a future exactly once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

/// Safety, on our clock: in every span of `hold` (window + margin) ending at
/// an admission, at most `limit` units. Spans ending at an admission are the
/// only ones that matter: a span's count only grows when an admission enters.
fn assert_window(
    admitted: &[Admitted],
    hold: Duration,
    limit: u64,
    units: impl Fn(&Admitted) -> u64,
    what: &str,
) {
    for end in admitted {
        let used: u64 = admitted
            .iter()
            .filter(|a| a.at <= end.at && a.at + hold > end.at)
            .map(&units)
            .sum();
        assert!(
            used <= limit,
            "{what}: {used} > {limit} in the span of {hold:?} ending at {:?}",
            end.at
        );
    }
}

/// Safety, on the server's clock: each request arrives somewhere between 0
/// and `margin` after its stamp (a deterministic spread), and the server
/// counts a strict `window` with no allowance at all.
fn assert_server_view(admitted: &[Admitted], window: Duration, margin: Duration, limit: usize) {
    let mut arrivals: Vec<Duration> = admitted
        .iter()
        .map(|a| a.at + margin.mul_f64((a.id.wrapping_mul(7919) % 1000) as f64 / 1000.0))
        .collect();
    arrivals.sort();
    for (i, &end) in arrivals.iter().enumerate() {
        let in_window = arrivals[..=i].iter().filter(|&&a| a + window > end).count();
        assert!(
            in_window <= limit,
            "the server saw {in_window} > {limit} in the window ending at {end:?}"
        );
    }
}

/// The best possible FIFO schedule, by brute force: request k goes at the
/// earliest instant, not before request k-1, at which every limit has room,
/// each earlier request holding its slots for window + margin (day + margin
/// for RPD). Shares no code with the limiter.
fn ideal(tokens: &[u32], limits: &Limits) -> Vec<Duration> {
    let margin = limits.margin_or_default();
    let hold = limits.window + margin;
    let day_hold = limits.day + margin;
    let limit = |l: Option<u32>| l.filter(|&n| n > 0).map(u64::from);
    let mut at: Vec<Duration> = Vec::with_capacity(tokens.len());
    for &wanted in tokens {
        let mut t = at.last().copied().unwrap_or_default();
        loop {
            let live = |h: Duration| at.iter().zip(tokens).filter(move |(s, _)| **s + h > t);
            let requests = live(hold).count() as u64;
            let used: u64 = live(hold).map(|(_, &n)| u64::from(n)).sum();
            let today = live(day_hold).count() as u64;
            let fits = limit(limits.rpm).is_none_or(|n| requests < n)
                && limit(limits.tpm).is_none_or(|n| used + u64::from(wanted) <= n)
                && limit(limits.rpd).is_none_or(|n| today < n);
            if fits {
                break;
            }
            t = at
                .iter()
                .flat_map(|&s| [s + hold, s + day_hold])
                .filter(|&e| e > t)
                .min()
                .expect("something expires");
        }
        at.push(t);
    }
    at
}

/// The limiter's schedule is the ideal one, and admissions follow queue order.
fn assert_ideal(admitted: &[Admitted], tokens: &[u32], limits: &Limits) {
    let best = ideal(tokens, limits);
    for (k, (a, &b)) in admitted.iter().zip(&best).enumerate() {
        assert_eq!(
            a.at, b,
            "request {k} was admitted at {:?}, the best is {b:?}",
            a.at
        );
    }
    assert!(
        admitted.windows(2).all(|w| w[0].at <= w[1].at),
        "admissions out of queue order"
    );
}

// ---------------------------------------------------------------------------
// Safety and speed, one limit at a time and together.

#[tokio::test(start_paused = true)]
async fn rpm_sends_the_limit_at_once_then_a_batch_per_window() {
    // The measured case from anchors.md: 100 per 10 s, 350 requests at once.
    let limits = Limits {
        rpm: Some(100),
        window: 10 * SEC,
        margin: Some(250 * MS),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits.clone());
    let tokens = vec![1; 350];
    let admitted = burst(&limiter, &tokens).await;

    let hold = limits.window + 250 * MS;
    assert_eq!(admitted.iter().filter(|a| a.at.is_zero()).count(), 100);
    assert_eq!(admitted[349].at, 3 * hold, "100 + 100 + 100 + 50");
    assert_ideal(&admitted, &tokens, &limits);
    assert_window(&admitted, hold, 100, |_| 1, "requests");
    assert_server_view(&admitted, limits.window, 250 * MS, 100);

    // One wake-up per batch (plus the first), not one per waiter.
    assert_eq!(admitted.len(), 350);
    assert!(limiter.wakeups() <= 3 + 2, "{} wake-ups", limiter.wakeups());
}

#[tokio::test(start_paused = true)]
async fn the_default_margin_keeps_98_percent_of_the_limit() {
    // Real windows: 60 RPM, default margin (2% of 60 s = 1.2 s), five minutes' worth.
    let limits = Limits::default().with_rpm(60);
    assert_eq!(limits.margin_or_default(), 1200 * MS);
    let limiter = Limiter::new(limits.clone());
    let tokens = vec![1; 300];
    let admitted = burst(&limiter, &tokens).await;

    assert_ideal(&admitted, &tokens, &limits);
    assert_window(&admitted, 61200 * MS, 60, |_| 1, "requests");
    // After the first batch, 240 requests in the time the limit would allow
    // them in (4 windows of 60 s) plus the margins.
    let last = admitted[299].at;
    assert_eq!(last, 4 * 61200 * MS);
    let share = 240.0 / (last.as_secs_f64() / 60.0 * 60.0);
    assert!(share >= 0.97, "ran at {:.1}% of the limit", share * 100.0);
}

#[tokio::test(start_paused = true)]
async fn tpm_fills_each_window_with_tokens() {
    let limits = Limits {
        tpm: Some(10_000),
        window: 10 * SEC,
        margin: Some(100 * MS),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits.clone());
    let tokens = token_counts(300, 50, 500);
    let admitted = burst(&limiter, &tokens).await;

    let hold = limits.window + 100 * MS;
    assert_ideal(&admitted, &tokens, &limits);
    assert_window(&admitted, hold, 10_000, |a| u64::from(a.tokens), "tokens");

    // Every batch but the last is as full as FIFO allows: the request that
    // had to wait for the next batch would not have fitted.
    let mut batches: Vec<(Duration, u64)> = Vec::new();
    for a in &admitted {
        match batches.last_mut() {
            Some((at, sum)) if *at == a.at => *sum += u64::from(a.tokens),
            _ => batches.push((a.at, u64::from(a.tokens))),
        }
    }
    assert_eq!(batches[0].0, Duration::ZERO);
    for (k, (at, sum)) in batches.iter().enumerate() {
        assert_eq!(*at, hold * k as u32, "batch {k} went late");
        if k + 1 < batches.len() {
            assert!(*sum > 10_000 - 500, "batch {k} only used {sum} tokens");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn rpm_and_tpm_are_enforced_together() {
    let limits = Limits {
        rpm: Some(40),
        tpm: Some(8_000),
        window: 10 * SEC,
        margin: Some(100 * MS),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits.clone());
    // Sizes such that sometimes requests and sometimes tokens run out first.
    let tokens = token_counts(250, 20, 400);
    let admitted = burst(&limiter, &tokens).await;

    let hold = limits.window + 100 * MS;
    assert_ideal(&admitted, &tokens, &limits);
    assert_window(&admitted, hold, 40, |_| 1, "requests");
    assert_window(&admitted, hold, 8_000, |a| u64::from(a.tokens), "tokens");
    assert_server_view(&admitted, limits.window, 100 * MS, 40);
}

#[tokio::test(start_paused = true)]
async fn rpd_has_its_own_longer_window() {
    let limits = Limits {
        rpm: Some(10),
        rpd: Some(30),
        window: SEC,
        day: 10 * SEC,
        margin: Some(50 * MS),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits.clone());
    let tokens = vec![1; 100];
    let admitted = burst(&limiter, &tokens).await;

    assert_ideal(&admitted, &tokens, &limits);
    assert_window(&admitted, 1050 * MS, 10, |_| 1, "requests");
    assert_window(&admitted, 10050 * MS, 30, |_| 1, "requests per day");
    // Three minute-batches use the day up; the 31st waits for the day.
    assert_eq!(admitted[29].at, 2 * 1050 * MS);
    assert_eq!(admitted[30].at, 10050 * MS);
    assert_eq!(admitted[99].at, 3 * 10050 * MS);
    // At the end, the last day's 30 requests: 20 still counting from 20.1 s
    // on, and the 10 just admitted.
    assert_eq!(limiter.usage(QuotaKind::Rpd).0, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stays_within_the_window_on_a_real_clock_with_threads() {
    // Real time and real threads, short windows. Nothing here is about speed:
    // the stamps are the limiter's own, so the safety property holds however
    // slow the machine is.
    let limits = Limits {
        rpm: Some(20),
        tpm: Some(2_000),
        window: 100 * MS,
        margin: Some(10 * MS),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits);
    let tokens = token_counts(100, 10, 200);
    let admitted = burst(&limiter, &tokens).await;

    assert_eq!(admitted.len(), 100);
    assert_window(&admitted, 110 * MS, 20, |_| 1, "requests");
    assert_window(
        &admitted,
        110 * MS,
        2_000,
        |a| u64::from(a.tokens),
        "tokens",
    );
    assert!(admitted.windows(2).all(|w| w[0].at <= w[1].at), "FIFO");
}

// ---------------------------------------------------------------------------
// Fairness and cancellation.

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_arrival_order() {
    let limiter = Limiter::new(
        Limits::default()
            .with_rpm(1)
            .with_window(SEC)
            .with_margin(Duration::ZERO),
    );
    let start = Instant::now();
    let first = limiter.acquire(1).await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..10 {
        waiters.push(queue_up(&limiter, 1).await);
    }
    assert_eq!(limiter.queued(), 10);
    for (i, waiter) in waiters.into_iter().enumerate() {
        let permit = waiter.await.unwrap().unwrap();
        assert_eq!(permit.id(), first.id() + 1 + i as u64);
        assert_eq!(permit.admitted_at() - start, SEC * (i as u32 + 1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_large_request_at_the_head_is_not_overtaken() {
    let limits = Limits {
        tpm: Some(100),
        window: 10 * SEC,
        margin: Some(Duration::ZERO),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits);
    let start = Instant::now();
    let _sixty = limiter.acquire(60).await.unwrap();
    let big = queue_up(&limiter, 80).await;
    // 60 + 10 would fit now, but the 80 came first.
    let small = queue_up(&limiter, 10).await;
    let small_too = queue_up(&limiter, 10).await;

    let big = big.await.unwrap().unwrap();
    let small = small.await.unwrap().unwrap();
    let small_too = small_too.await.unwrap().unwrap();
    assert_eq!(big.admitted_at() - start, 10 * SEC);
    assert_eq!(small.admitted_at() - start, 10 * SEC);
    assert_eq!(small_too.admitted_at() - start, 10 * SEC);
    assert!(big.id() < small.id() && small.id() < small_too.id());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_its_place_up() {
    let limiter = Limiter::new(
        Limits::default()
            .with_rpm(1)
            .with_window(10 * SEC)
            .with_margin(Duration::ZERO),
    );
    let start = Instant::now();
    let _first = limiter.acquire(1).await.unwrap();
    let a = queue_up(&limiter, 1).await;
    let b = queue_up(&limiter, 1).await;
    let c = queue_up(&limiter, 1).await;

    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());

    let a = a.await.unwrap().unwrap();
    let c = c.await.unwrap().unwrap();
    assert_eq!(a.admitted_at() - start, 10 * SEC);
    assert_eq!(c.admitted_at() - start, 20 * SEC, "C took B's place");
    assert_eq!(c.id(), a.id() + 1, "B was never admitted");
    assert_eq!(limiter.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_head_does_not_hold_up_the_queue() {
    let limits = Limits {
        tpm: Some(100),
        window: 10 * SEC,
        margin: Some(Duration::ZERO),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits);
    let start = Instant::now();
    let _fifty = limiter.acquire(50).await.unwrap();
    sleep(SEC).await;
    let _forty = limiter.acquire(40).await.unwrap();
    // The head needs 60: it must wait for the 50 to expire at 10 s. The 10
    // behind it would fit now.
    let head = queue_up(&limiter, 60).await;
    let behind = queue_up(&limiter, 10).await;
    sleep(SEC).await;

    head.abort();
    let behind = behind.await.unwrap().unwrap();
    assert_eq!(
        behind.admitted_at() - start,
        2 * SEC,
        "went as soon as the head left"
    );
}

#[tokio::test(start_paused = true)]
async fn an_admission_nobody_collected_is_given_back() {
    let limiter = Limiter::new(
        Limits::default()
            .with_rpm(1)
            .with_window(10 * SEC)
            .with_margin(Duration::ZERO),
    );
    let start = Instant::now();
    let _first = limiter.acquire(1).await.unwrap();

    // Queue a request, then stop polling it.
    let mut abandoned = Box::pin(limiter.acquire(1));
    assert!(poll_once(&mut abandoned).await.is_pending());
    // The limiter admits it at 10 s, but its caller never looks.
    sleep_until(start + 10 * SEC + MS).await;
    assert_eq!(limiter.usage(QuotaKind::Rpm).0, 1);
    assert_eq!(limiter.queued(), 0);

    // Dropping it hands the slot back: no request went out.
    drop(abandoned);
    assert_eq!(limiter.usage(QuotaKind::Rpm).0, 0);
    let next = limiter.acquire(1).await.unwrap();
    assert_eq!(next.admitted_at() - start, 10 * SEC + MS);
}

// ---------------------------------------------------------------------------
// Settling, oversized requests, pausing and stopping.

#[tokio::test(start_paused = true)]
async fn settling_low_gives_tokens_back_at_once() {
    let limits = Limits {
        tpm: Some(100),
        window: 10 * SEC,
        margin: Some(Duration::ZERO),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits);
    let start = Instant::now();
    let estimate = limiter.acquire(80).await.unwrap();
    let waiter = queue_up(&limiter, 50).await;
    sleep(SEC).await;
    assert_eq!(limiter.queued(), 1);

    // The response says the prompt was 30 tokens, not 80: 50 more fit now.
    estimate.settle(30);
    let permit = waiter.await.unwrap().unwrap();
    assert_eq!(permit.admitted_at() - start, SEC);
    assert_eq!(limiter.usage(QuotaKind::Tpm).0, 30 + 50);
}

#[tokio::test(start_paused = true)]
async fn settling_high_charges_the_difference() {
    let limits = Limits {
        tpm: Some(100),
        window: 10 * SEC,
        margin: Some(Duration::ZERO),
        ..Limits::default()
    };
    let limiter = Limiter::new(limits);
    let start = Instant::now();
    limiter.acquire(10).await.unwrap().settle(90);
    assert_eq!(
        limiter.usage(QuotaKind::Tpm),
        (90, None),
        "one more token fits"
    );

    // 90 + 20 > 100: wait for the 90 to expire.
    let permit = limiter.acquire(20).await.unwrap();
    assert_eq!(permit.admitted_at() - start, 10 * SEC);
    assert_eq!(permit.waited(), 10 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_request_over_the_token_limit_fails_at_once() {
    let limiter = Limiter::new(Limits::default().with_tpm(100));
    let start = Instant::now();
    assert_eq!(
        limiter.acquire(101).await.unwrap_err(),
        LimitError::TooLarge {
            tokens: 101,
            limit: 100
        }
    );
    assert_eq!(Instant::now(), start);
    assert_eq!(limiter.queued(), 0);
    assert!(limiter.acquire(100).await.is_ok(), "exactly the limit fits");

    // Without a token limit, any size goes.
    let unlimited = Limiter::new(Limits::default());
    assert!(unlimited.acquire(u32::MAX).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn pause_until_holds_everyone_until_the_deadline() {
    let limiter = Limiter::new(Limits::default().with_rpm(100));
    let start = Instant::now();
    let _before = limiter.acquire(1).await.unwrap();

    limiter.pause_until(start + 5 * SEC);
    limiter.pause_until(start + 3 * SEC); // does not shorten the pause

    let waiters = [
        queue_up(&limiter, 1).await,
        queue_up(&limiter, 1).await,
        queue_up(&limiter, 1).await,
    ];
    for waiter in waiters {
        let permit = waiter.await.unwrap().unwrap();
        assert_eq!(permit.admitted_at() - start, 5 * SEC);
    }
    // Over: admissions are immediate again.
    let after = limiter.acquire(1).await.unwrap();
    assert_eq!(after.admitted_at() - start, 5 * SEC);
}

#[tokio::test(start_paused = true)]
async fn stop_fails_every_waiter_at_once_and_every_later_call() {
    // One request per minute and two in flight: one waiter is queued for the
    // window, two more for an in-flight slot.
    let limiter = Limiter::new(Limits::default().with_rpm(1).with_max_in_flight(2));
    let start = Instant::now();
    let _in_flight = limiter.acquire(1).await.unwrap();
    let waiters = [
        queue_up(&limiter, 1).await,
        spawn_and_wait(&limiter, 1).await,
        spawn_and_wait(&limiter, 1).await,
    ];
    assert_eq!(
        limiter.queued(),
        1,
        "the other two wait for an in-flight slot"
    );

    limiter.stop("daily quota exhausted");
    limiter.stop("another reason"); // the first reason is kept
    let stopped = LimitError::Stopped {
        reason: "daily quota exhausted".to_owned(),
    };
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap_err(), stopped);
    }
    assert_eq!(Instant::now(), start, "nobody waited for anything");
    assert_eq!(limiter.acquire(1).await.unwrap_err(), stopped);
    assert_eq!(limiter.queued(), 0);
}

// ---------------------------------------------------------------------------
// The in-flight cap, and scale.

#[tokio::test(start_paused = true)]
async fn the_in_flight_slot_is_taken_before_the_stamp() {
    let limiter = Limiter::new(Limits::default().with_max_in_flight(2));
    let start = Instant::now();
    let first = limiter.acquire(1).await.unwrap();
    let _second = limiter.acquire(1).await.unwrap();
    let third = spawn_and_wait(&limiter, 1).await;

    sleep(3 * SEC).await;
    drop(first); // the response came back: a slot frees up
    let third = third.await.unwrap().unwrap();
    // Stamped when it could actually leave, not when it asked.
    assert_eq!(third.admitted_at() - start, 3 * SEC);
    assert_eq!(third.waited(), 3 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_waiters_wake_once_each() {
    let limits = Limits::default().with_rpm(10_000).with_margin(SEC);
    let limiter = Limiter::new(limits);
    let tokens = vec![1; 100_000];
    let admitted = burst(&limiter, &tokens).await;

    // Ten batches of 10,000, each exactly one window + margin after the last,
    // in queue order.
    let hold = 61 * SEC;
    for (k, a) in admitted.iter().enumerate() {
        let batch = (k / 10_000) as u32;
        assert_eq!(a.at, hold * batch, "request {k}");
    }
    // The driver woke about once per batch: no thundering herd, and no
    // wake-up per waiter.
    assert_eq!(admitted.len(), 100_000);
    assert!(
        limiter.wakeups() <= 10 + 2,
        "{} wake-ups",
        limiter.wakeups()
    );
}

// ---------------------------------------------------------------------------
// Refunds, and a driver that comes and goes.

#[tokio::test(start_paused = true)]
async fn a_refunded_slot_is_free_at_once() {
    let limiter = Limiter::new(
        Limits::default()
            .with_rpm(2)
            .with_window(SEC)
            .with_margin(Duration::ZERO),
    );
    let first = limiter.acquire(1).await.expect("admitted");
    let refused = limiter.acquire(1).await.expect("admitted");
    // Full: a third would wait a window.
    let start = Instant::now();
    refused.refund();
    drop(first);
    let _third = limiter.acquire(1).await.expect("admitted");
    assert_eq!(Instant::now(), start, "the refunded slot went at once");
    assert_eq!(limiter.usage(QuotaKind::Rpm).0, 2);
}

#[tokio::test(start_paused = true)]
async fn the_driver_ends_with_its_queue_and_the_next_wait_starts_another() {
    let limits = Limits::default()
        .with_rpm(2)
        .with_window(SEC)
        .with_margin(Duration::ZERO);
    let limiter = Limiter::new(limits.clone());
    for round in 0..3u32 {
        // Long after the last round: its windows are empty again.
        sleep(10 * SEC).await;
        let start = Instant::now();
        let admitted = burst(&limiter, &[1; 5]).await;
        let at: Vec<Duration> = admitted.iter().map(|a| a.at).collect();
        assert_eq!(at, [0, 0, 1, 1, 2].map(|s| s * SEC), "round {round}");
        assert_eq!(limiter.queued(), 0);
        assert!(Instant::now() >= start);
    }
}
