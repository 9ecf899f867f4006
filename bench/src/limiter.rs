//! Section 3: step 4's limiter against a strict sliding window, next to `governor`.
//!
//! A scaled-down version of the experiment in the seed's notes
//! (`anchors.md`): the emulator admits at most `limit` requests in any
//! trailing `window` (on its own clock, at arrival) and answers the rest 429;
//! `limit_requests` requests are submitted at once, each waits for its
//! limiter, then sends once (no retries, so every 429 shows). The same
//! harness runs:
//!
//! - step 4's [`Limiter`] with its default margin, and with a margin of 2 %
//!   of the window (what the default is for a 60 s window);
//! - `governor` (GCRA) for the same quota with burst = limit, the usual
//!   configuration, and with burst = 1, requests evenly spaced.
//!
//! "Share of best" compares the wall time with the best any limiter can do
//! for the requests that succeeded: `limit` at once, then `limit` more each
//! window, so `(⌈ok / limit⌉ − 1) × window + latency`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::GenerateContentRequest;
use common::cli::{DEFAULT_MODEL, DEFAULT_PROMPT};
use common::client::Client;
use emulator::limits::most_in_any_window;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use step4_ratelimit::limiter::{Limiter, Limits, Permit};

use crate::plan::{self, Plan};
use crate::table::{self, Table, median};

/// What stands between a request and the wire.
#[derive(Clone)]
enum Gate {
    /// Step 4's limiter.
    Ours(Limiter),
    /// A GCRA limiter from the `governor` crate.
    Governor(Arc<DefaultDirectRateLimiter>),
}

impl Gate {
    /// Waits for this gate; the permit (ours only) is held while the request is in flight.
    async fn wait(&self) -> anyhow::Result<Option<Permit>> {
        match self {
            Gate::Ours(limiter) => Ok(Some(limiter.acquire(0).await?)),
            Gate::Governor(limiter) => {
                limiter.until_ready().await;
                Ok(None)
            }
        }
    }
}

/// How one run went.
#[derive(Debug, Clone, Copy)]
struct Run {
    ok: usize,
    rate_limited: usize,
    failed: usize,
    /// The most requests that reached the server in any `window`.
    most_in_window: usize,
    wall: Duration,
}

/// Runs the section.
pub async fn run(plan: &Plan) -> anyhow::Result<Table> {
    let settings = strict_emulator(plan);
    let ours = Limits::default()
        .with_rpm(plan.limit)
        .with_window(plan.window);
    let two_percent = plan.window / 50;
    let configs: Vec<(String, Box<dyn Fn() -> Gate>)> = vec![
        (
            format!(
                "step 4 `Limiter`, default margin ({})",
                plan::ms(ours.margin_or_default())
            ),
            Box::new({
                let ours = ours.clone();
                move || Gate::Ours(Limiter::new(ours.clone()))
            }),
        ),
        (
            format!(
                "step 4 `Limiter`, margin {} (2 % of the window)",
                plan::ms(two_percent)
            ),
            Box::new({
                let ours = ours.clone().with_margin(two_percent);
                move || Gate::Ours(Limiter::new(ours.clone()))
            }),
        ),
        (
            format!("governor 0.10 (GCRA), burst {}", plan.limit),
            Box::new(governor_gate(plan, plan.limit)),
        ),
        (
            "governor 0.10 (GCRA), burst 1".to_string(),
            Box::new(governor_gate(plan, 1)),
        ),
    ];
    let mut table = Table::new(
        format!(
            "Rate limiting: {} requests at once, limit {} per {}",
            plan.limit_requests,
            plan.limit,
            plan::ms(plan.window)
        ),
        format!(
            "{}; each request waits for its limiter, then sends once (no retries); median of {} run(s), a fresh emulator each.",
            plan::describe(&settings),
            plan.runs
        ),
        &[
            "limiter",
            "429s (median / worst run)",
            "most arrivals in any window (worst run)",
            "wall",
            "share of best",
        ],
    );
    let best = best_wall(plan, plan.limit_requests);
    for (name, gate) in &configs {
        let mut runs = Vec::new();
        for run in 1..=plan.runs {
            eprintln!("bench: limiter: {name} (run {run}/{})", plan.runs);
            runs.push(run_once(plan, &settings, gate()).await?);
        }
        let field = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let wall = field(|r| r.wall.as_secs_f64());
        let ok = field(|r| r.ok as f64);
        let failed = field(|r| r.failed as f64);
        let mut share = best_wall(plan, ok.round() as usize).as_secs_f64() / wall;
        if ok == 0.0 {
            share = f64::NAN;
        }
        let worst = |f: fn(&Run) -> usize| runs.iter().map(f).max().unwrap_or(0);
        table.row(vec![
            name.clone(),
            format!(
                "{} / {}",
                table::count(field(|r| r.rate_limited as f64)),
                worst(|r| r.rate_limited)
            ),
            worst(|r| r.most_in_window).to_string(),
            table::secs(wall),
            table::percent(share),
        ]);
        if failed > 0.0 {
            table.note(format!(
                "{name}: {failed} requests failed with errors other than 429"
            ));
        }
    }
    table.row(vec![
        "best possible (computed, zero 429s)".into(),
        "0 / 0".into(),
        plan.limit.to_string(),
        table::secs(best.as_secs_f64()),
        "100.0 %".into(),
    ]);
    let margin = ours.margin_or_default();
    table.note(format!(
        "Share of best = (⌈ok / limit⌉ − 1) × window + latency, over the wall time. Step 4 holds each slot for window + margin, so at this window its ceiling is {} / {} = {} of the limit; the margin's floor ({}) is sized for the real API's 60 s window, where it costs 2 %.",
        plan::ms(plan.window),
        plan::ms(plan.window + margin),
        table::percent(plan.window.as_secs_f64() / (plan.window + margin).as_secs_f64()),
        plan::ms(Limits::MIN_MARGIN),
    ));
    table.note("Arrivals are counted on the emulator's clock, 429s included: a strict window refuses everything past the limit.");
    Ok(table)
}

/// The emulator of this section: strict window, fixed latency.
fn strict_emulator(plan: &Plan) -> emulator::Settings {
    let mut settings = plan::fixed_latency(plan.limit_latency);
    // The limiter's figures do not depend on the wire; plain HTTP keeps them comparable.
    settings.tls = false;
    settings.rpm = Some(plan.limit);
    settings.window = plan.window;
    settings
}

/// A maker of `governor` limiters for `limit` per window, with this burst.
fn governor_gate(plan: &Plan, burst: u32) -> impl Fn() -> Gate + use<> {
    let period = plan.window / plan.limit;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    move || {
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Gate::Governor(Arc::new(RateLimiter::direct(quota)))
    }
}

/// The best wall time for `ok` requests with zero 429s.
fn best_wall(plan: &Plan, ok: usize) -> Duration {
    let batches = ok.div_ceil(plan.limit as usize).max(1) as u32;
    plan.window * (batches - 1) + plan.limit_latency
}

/// One run: a fresh emulator, every request submitted at once through `gate`.
async fn run_once(plan: &Plan, settings: &emulator::Settings, gate: Gate) -> anyhow::Result<Run> {
    let server = emulator::start(settings.clone()).await?;
    let client = crate::throughput::our_client(&server.base_url())?;
    let request = Arc::new(GenerateContentRequest::from_prompt(DEFAULT_PROMPT));
    let started = Instant::now();
    let tasks: Vec<_> = (0..plan.limit_requests)
        .map(|_| tokio::spawn(one_request(gate.clone(), client.clone(), request.clone())))
        .collect();
    let mut run = Run {
        ok: 0,
        rate_limited: 0,
        failed: 0,
        most_in_window: 0,
        wall: Duration::ZERO,
    };
    for task in tasks {
        match task.await.context("a request task panicked")?? {
            Ok(()) => run.ok += 1,
            Err(error) if error.is_rate_limited() => run.rate_limited += 1,
            Err(_) => run.failed += 1,
        }
    }
    run.wall = started.elapsed();
    let arrivals: Vec<Duration> = server.stats().generates().iter().map(|a| a.at).collect();
    run.most_in_window = most_in_any_window(&arrivals, plan.window);
    server.shutdown().await;
    Ok(run)
}

/// One request: wait for the gate, send, and hold the permit until the answer.
async fn one_request(
    gate: Gate,
    client: Client,
    request: Arc<GenerateContentRequest>,
) -> anyhow::Result<Result<(), common::Error>> {
    let permit = gate.wait().await?;
    let result = client.generate_content(DEFAULT_MODEL, &request).await;
    drop(permit);
    Ok(result.map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_wall_is_one_window_per_extra_batch() {
        let plan = Plan::full(1);
        assert_eq!(best_wall(&plan, 350), Duration::from_millis(6_200));
        assert_eq!(best_wall(&plan, 100), Duration::from_millis(200));
    }
}
