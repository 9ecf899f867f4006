//! Section 3b: what one `acquire` costs, when nothing has to wait.
//!
//! A limiter sits in front of every request, so its own cost should vanish
//! next to an HTTP call (tens of microseconds even on loopback). Three
//! measurements, each the median of several runs, in nanoseconds per acquire:
//!
//! - **uncontended**: one task acquiring in a loop, the limit never reached
//!   (step 4's limiter still logs every admission: that is its real path);
//! - **contended**: many tasks on the multi-threaded runtime hammering the
//!   same limiter at once, so its one lock is fought over;
//! - **queued**: the limiter paused while many tasks queue, then released at
//!   once: the cost per waiter of the driver admitting a whole queue (no
//!   thundering herd: each waiter is woken once). `governor` has no queue
//!   (each waiter sleeps on its own timer), so it has no figure there.
//!
//! `governor` is configured so it never waits either (a quota of
//! `u32::MAX` per second) and called through `until_ready().await`, the call
//! an async client makes.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use step4_ratelimit::limiter::{Limiter, Limits};

use crate::plan::Plan;
use crate::table::{self, Table, median};

/// The two limiters measured here.
#[derive(Clone)]
enum Subject {
    Ours(Limiter),
    Governor(Arc<DefaultDirectRateLimiter>),
}

impl Subject {
    /// A fresh limiter whose limit is never reached.
    fn fresh(ours: bool) -> Subject {
        if ours {
            Subject::Ours(Limiter::new(Limits::default().with_rpm(u32::MAX)))
        } else {
            let quota = Quota::per_second(NonZeroU32::MAX);
            Subject::Governor(Arc::new(RateLimiter::direct(quota)))
        }
    }

    /// `count` acquires, one after another.
    async fn acquire_many(&self, count: usize) -> anyhow::Result<()> {
        for _ in 0..count {
            match self {
                Subject::Ours(limiter) => drop(limiter.acquire(0).await?),
                Subject::Governor(limiter) => limiter.until_ready().await,
            }
        }
        Ok(())
    }
}

/// Runs the section.
pub async fn run(plan: &Plan) -> anyhow::Result<Table> {
    let mut table = Table::new(
        "Cost of one acquire (limit never reached)",
        format!(
            "{} acquires per measurement; nanoseconds per acquire, median of {} run(s); multi-threaded tokio runtime.",
            table::count(plan.acquires as f64),
            plan.runs
        ),
        &[
            "limiter",
            "uncontended, 1 task",
            &format!("contended, {} tasks", plan.acquire_tasks),
            &format!(
                "queued, {} released at once",
                table::count(plan.acquires as f64)
            ),
        ],
    );
    for (name, ours) in [("step 4 `Limiter`", true), ("governor 0.10", false)] {
        eprintln!("bench: cost of acquire: {name}");
        let uncontended = measure(plan, || per_acquire(ours, 1, plan.acquires)).await?;
        let contended = measure(plan, || {
            per_acquire(ours, plan.acquire_tasks, plan.acquires)
        })
        .await?;
        let queued = if ours {
            table::num(measure(plan, || queued(plan.acquires)).await?, 0)
        } else {
            "— (no queue)".into()
        };
        table.row(vec![
            name.into(),
            table::num(uncontended, 0),
            table::num(contended, 0),
            queued,
        ]);
    }
    table.note("Queued: time from the end of the pause until the last waiter has its permit, per waiter; it includes waking each task once.");
    Ok(table)
}

/// The median of `plan.runs` results of `f`.
async fn measure<F, Fut>(plan: &Plan, f: F) -> anyhow::Result<f64>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<f64>>,
{
    let mut values = Vec::new();
    for _ in 0..plan.runs {
        values.push(f().await?);
    }
    Ok(median(&values))
}

/// Nanoseconds per acquire, with `tasks` tasks sharing `total` acquires.
async fn per_acquire(ours: bool, tasks: usize, total: usize) -> anyhow::Result<f64> {
    let subject = Subject::fresh(ours);
    let each = total / tasks;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let subject = subject.clone();
            tokio::spawn(async move { subject.acquire_many(each).await })
        })
        .collect();
    for handle in handles {
        handle.await.context("an acquiring task panicked")??;
    }
    Ok(started.elapsed().as_nanos() as f64 / (each * tasks) as f64)
}

/// Nanoseconds per waiter for the driver to admit `count` queued waiters at once.
async fn queued(count: usize) -> anyhow::Result<f64> {
    let limiter = Limiter::new(Limits::default().with_rpm(u32::MAX));
    // Long enough to queue everyone before the pause ends (checked below).
    let pause = Duration::from_millis(200) + Duration::from_micros(count as u64 * 5);
    let release = tokio::time::Instant::now() + pause;
    limiter.pause_until(release);
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(0).await.map(drop) })
        })
        .collect();
    // Wait until every task has joined the queue.
    while limiter.queued() < count {
        if tokio::time::Instant::now() >= release {
            bail!("the queue was not full before the pause ended; raise the pause");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for handle in handles {
        handle.await.context("a waiting task panicked")??;
    }
    let done = tokio::time::Instant::now();
    Ok(done.saturating_duration_since(release).as_nanos() as f64 / count as f64)
}
