//! Section 3c: the limiter at a paid tier's pace, where its timer and its queue carry the most.
//!
//! The rate-limiting section runs a hundred requests per window; a paid tier allows
//! thousands a minute, with a thousand requests in flight at once. This row runs `bulk`
//! (the tool built on step 4's limiter) as a learner would, against an emulator that
//! enforces the same limit as a strict sliding window: 10,000 requests a minute, compressed
//! (the plan's paces: 1,000 per 6 s, 2,500 per 15 s), every request taking a fixed latency,
//! and several windows' worth of requests. What the server saw is the figure:
//!
//! - **429s**: none may come back (bulk is told the limit and the window);
//! - **most arrivals in any window**: at most the limit;
//! - **share of the limit over the run**: requests answered per window, from the first
//!   arrival to the last plus one window, over the limit (100 % is the limit in every
//!   window; what the limiter's safety margin costs shows here);
//! - **wall**, next to the best any limiter can do with zero 429s: the limit at once, then
//!   the limit again each window, `(⌈N / limit⌉ − 1) × window + latency`.

use std::time::{Duration, Instant};

use anyhow::Context;
use emulator::limits::most_in_any_window;
use testkit::StepCommand;

use crate::binaries::{Binaries, trusting};
use crate::plan::{self, Pace, Plan};
use crate::table::{self, Table};

/// Runs the section.
pub async fn run(plan: &Plan, bins: &Binaries) -> anyhow::Result<Table> {
    let mut table = Table::new(
        "The limiter at a paid tier's pace (bulk, step 4's limiter)",
        format!(
            "emulator: latency {} fixed, the limit as a strict sliding window, no faults, HTTPS with HTTP/2, at most 100 streams per connection; `bulk -n N --rpm LIMIT --window W --tpm 0 --rpd 0 --max-retries 0 --json`; one run each (the pace is set by the windows, not by the machine); what the emulator saw.",
            plan::ms(plan.paid_latency)
        ),
        &[
            "limit",
            "requests",
            "429s at the server",
            "most arrivals in any window",
            "share of the limit over the run",
            "wall",
            "best possible wall (zero 429s)",
        ],
    );
    let Some(bulk) = &bins.bulk else {
        table.note("bulk's binary was not found: build it with `cargo build --release -p bulk`.");
        return Ok(table);
    };
    for &pace in &plan.paid_paces {
        let (limit, window, n) = (pace.limit, pace.window, pace.requests);
        eprintln!(
            "bench: bulk at a paid tier's pace, {n} requests, {limit} per {}",
            plan::ms(window)
        );
        let server = emulator::start(emulator_settings(plan, pace)).await?;
        let started = Instant::now();
        let output = trusting(StepCommand::new(bulk).against(&server), &server)?
            .args(["-n", &n.to_string(), "--rpm", &limit.to_string()])
            .args(["--window", &window_arg(window)])
            .args(["--tpm", "0", "--rpd", "0", "--max-retries", "0", "--json"])
            .run()
            .await;
        let wall = started.elapsed();
        let arrivals = server.stats().generates();
        server.shutdown().await;
        let summary = output.stdout.lines().last().unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(summary).with_context(|| {
            format!(
                "bulk printed no JSON summary: {}",
                output.stderr.lines().last().unwrap_or_default()
            )
        })?;
        let times: Vec<Duration> = arrivals.iter().map(|a| a.at).collect();
        let answered: Vec<Duration> = arrivals
            .iter()
            .filter(|a| a.status == 200)
            .map(|a| a.at)
            .collect();
        let refused = arrivals.iter().filter(|a| a.status == 429).count();
        let most = most_in_any_window(&times, window);
        table.row(vec![
            format!(
                "{} per {}",
                table::count(f64::from(limit)),
                plan::ms(window)
            ),
            table::count(f64::from(n)),
            table::count(refused as f64),
            format!(
                "{} ({})",
                table::count(most as f64),
                table::percent(most as f64 / f64::from(limit))
            ),
            table::percent(share_of_limit(&answered, limit, window)),
            table::secs(wall.as_secs_f64()),
            table::secs(best_wall(n, limit, window, plan.paid_latency).as_secs_f64()),
        ]);
        if answered.len() < n as usize {
            table.note(format!(
                "{limit} per {}: only {} of {n} requests were answered.",
                plan::ms(window),
                answered.len()
            ));
        }
    }
    table.note("The full run's limits are both 10,000 requests a minute, compressed tenfold and fourfold so that a row takes half a minute. Share of the limit over the run = requests answered per window, from the first arrival to the last plus one window, over the limit. The limiter holds each slot for the window plus a safety margin, 2 % of the window but at least 250 ms: at a 6 s window that floor is 4 % of the window, at 15 s (and at the real 60 s) the margin is 2 %.");
    table.note("Wall includes starting bulk, connecting and checking the model.");
    Ok(table)
}

/// The emulator of a row: the pace's limit as a strict sliding window, a fixed latency, HTTPS.
fn emulator_settings(plan: &Plan, pace: Pace) -> emulator::Settings {
    let mut settings = plan::fixed_latency(plan.paid_latency);
    settings.rpm = Some(pace.limit);
    settings.window = pace.window;
    settings
}

/// A window as bulk's `--window` takes it.
fn window_arg(window: Duration) -> String {
    format!("{}ms", window.as_millis())
}

/// The best wall time for `n` requests with zero 429s: `limit` at once, then `limit` more
/// each window, the last batch answered one latency after it went.
pub(crate) fn best_wall(n: u32, limit: u32, window: Duration, latency: Duration) -> Duration {
    let batches = n.div_ceil(limit.max(1)).max(1);
    window * (batches - 1) + latency
}

/// Answers per window over the run, as a share of the limit: `answered` arrival times
/// (in order), from the first to the last plus one window.
pub(crate) fn share_of_limit(answered: &[Duration], limit: u32, window: Duration) -> f64 {
    let (Some(first), Some(last)) = (answered.first(), answered.last()) else {
        return 0.0;
    };
    let windows = (*last - *first + window).as_secs_f64() / window.as_secs_f64();
    answered.len() as f64 / windows / f64::from(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_wall_is_one_window_per_batch_after_the_first() {
        let (window, latency) = (Duration::from_secs(6), Duration::from_secs(2));
        assert_eq!(
            best_wall(5000, 1000, window, latency),
            Duration::from_secs(26)
        );
        assert_eq!(best_wall(1000, 1000, window, latency), latency);
        assert_eq!(
            best_wall(1001, 1000, window, latency),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn the_limit_in_every_window_is_a_full_share() {
        let window = Duration::from_secs(6);
        // 1,000 at once, five windows running: the limit in each.
        let answered: Vec<Duration> = (0..5)
            .flat_map(|w| std::iter::repeat_n(window * w, 1000))
            .collect();
        assert!((share_of_limit(&answered, 1000, window) - 1.0).abs() < 1e-9);
        // The same requests spread over twice the time: half the limit.
        let slow: Vec<Duration> = (0..5)
            .flat_map(|w| std::iter::repeat_n(window * 2 * w, 1000))
            .collect();
        assert!(share_of_limit(&slow, 1000, window) < 0.6);
        assert_eq!(share_of_limit(&[], 1000, window), 0.0);
    }
}
