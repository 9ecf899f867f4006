//! The pacing scenarios: what step 4 and `bulk` promise alike, tested once.
//!
//! Both binaries take step 4's flags (`--rpm`, `--window`, `--no-limit`,
//! `--concurrency`) and pace themselves with step 4's limiter, so they make
//! the same promises: a run through the limiter meets no 429, a run without
//! it does, a 429's `retryDelay` is waited out, and `--concurrency` caps what
//! is in flight. Each scenario starts its own emulator, runs `binary` as a
//! user would, checks what really reached the server, and returns the
//! output for the checks that belong to one binary alone.
//!
//! There are no assertions about speed (shared machines are noisy): the only
//! time checks are lower bounds ("nothing arrived before the server's window
//! had room"), which a slow machine cannot break.

use std::time::Duration;

use emulator::{Emulator, Latency, Settings};

use crate::{ScratchDir, StepCommand, StepOutput, start_quick};

const MS: Duration = Duration::from_millis(1);

/// A number from the `--json` summary.
pub fn count(summary: &serde_json::Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {summary}"))
}

/// An emulator allowing `rpm` requests per second (a one-second window).
async fn per_second(rpm: u32) -> Emulator {
    start_quick(Settings {
        rpm: Some(rpm),
        window: Duration::from_secs(1),
        ..Settings::instant()
    })
    .await
}

async fn run(binary: &str, server: &Emulator, args: &[&str]) -> StepOutput {
    StepCommand::new(binary)
        .against(server)
        .args(args)
        .run()
        .await
}

/// Three windows' worth of requests through the limiter: all answered, one
/// attempt each, no 429, and the timeline shades the windows.
pub async fn assert_paced_without_429s(binary: &str) -> StepOutput {
    let server = per_second(4).await;
    let dir = ScratchDir::new("pacing");
    let svg = dir.path().join("run.svg");
    let svg_arg = svg.to_str().expect("a UTF-8 path");
    let args = ["-n", "12", "--rpm", "4", "--window", "1s", "--json"];
    let out = run(
        binary,
        &server,
        &[&args[..], &["--timeline", svg_arg]].concat(),
    )
    .await;

    assert!(out.status.success(), "{}", out.all());
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 12, "{summary}");
    assert_eq!(count(&summary, "rate_limited"), 0, "{summary}");
    let arrivals = server.stats().generates();
    assert_eq!(arrivals.len(), 12, "one attempt each: {arrivals:?}");
    assert!(arrivals.iter().all(|a| a.status == 200), "{arrivals:?}");
    let picture = std::fs::read_to_string(&svg).expect("the timeline was written");
    assert!(
        picture.contains(r#"class="window""#),
        "the windows are shaded"
    );
    out
}

/// `--no-limit` with no retries: the server refuses, and each 429 is a
/// failed request.
pub async fn assert_429s_without_the_limiter(binary: &str) -> StepOutput {
    let server = per_second(4).await;
    let args = ["-n", "12", "--no-limit", "--max-retries", "0", "--json"];
    let out = run(binary, &server, &args).await;

    let summary = out.summary();
    let rate_limited = count(&summary, "rate_limited");
    assert!(rate_limited > 0, "{summary}");
    assert_eq!(
        count(&summary, "failed"),
        rate_limited,
        "no retries: each 429 fails"
    );
    assert_eq!(count(&summary, "retries"), 0, "{summary}");
    assert_eq!(out.code(), Some(1));
    assert!(server.stats().generates().iter().any(|a| a.status == 429));
    out
}

/// The server allows 2 per second while the limiter is told 4 per half
/// second: the server refuses, says when its window frees a slot, and no
/// request arrives before then.
pub async fn assert_retry_delay_is_waited_out(binary: &str) -> StepOutput {
    let window = Duration::from_secs(1);
    let server = per_second(2).await;
    let args = [
        "-n",
        "6",
        "--rpm",
        "4",
        "--window",
        "500ms",
        "--concurrency",
        "1",
        "--json",
    ];
    let out = run(binary, &server, &args).await;

    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 6, "{}", out.all());
    assert!(
        count(&summary, "rate_limited") > 0,
        "the server refused: {summary}"
    );
    let arrivals = server.stats().generates();
    for (i, refused) in arrivals.iter().enumerate().filter(|(_, a)| a.status == 429) {
        // The server's retryDelay: until the oldest admitted request of its
        // window ages out.
        let oldest = arrivals[..i]
            .iter()
            .filter(|a| a.status == 200 && refused.at.saturating_sub(a.at) < window)
            .map(|a| a.at)
            .min()
            .expect("a 429 means the window holds admitted requests");
        let free_at = oldest + window;
        if let Some(next) = arrivals.get(i + 1) {
            assert!(
                next.at + MS >= free_at,
                "a request arrived at {:?}, before the server's window freed at {free_at:?} (429 at {:?})",
                next.at,
                refused.at
            );
        }
    }
    out
}

/// `--concurrency 3` with answers slow enough to overlap: never more than 3
/// in flight at the server.
pub async fn assert_concurrency_caps_requests_in_flight(binary: &str) -> StepOutput {
    let server = emulator::start(Settings {
        latency: Latency {
            base: 100 * MS,
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await
    .expect("the emulator starts");
    let args = ["-n", "12", "--rpm", "0", "--concurrency", "3", "--json"];
    let out = run(binary, &server, &args).await;

    assert_eq!(count(&out.summary(), "succeeded"), 12, "{}", out.all());
    let max = server.stats().max_in_flight;
    assert!(max <= 3, "{max} in flight at once, with --concurrency 3");
    out
}
