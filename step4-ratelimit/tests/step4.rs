//! Step 4 end to end: the binary against the emulator on 127.0.0.1.
//!
//! Each test starts an emulator with the limits it needs, over *short*
//! windows (1 s instead of a minute) and with small latencies, runs the
//! step's binary against it as a learner would, and then checks what really
//! reached the server: the emulator records every arrival with its time and
//! status. There are no assertions about speed (shared machines are noisy);
//! the only time checks are lower bounds ("nothing arrived before the
//! server's window had room"), which a slow machine cannot break.
//!
//! What `bulk` adds on top (prompts files, the journal, learned limits,
//! Redis) is tested in `bulk/tests`.

use emulator::{Emulator, Faults, Settings};
use serde_json::Value;
use testkit::{StepCommand, StepOutput, pacing, pacing::count};

const STEP: &str = env!("CARGO_BIN_EXE_step4-ratelimit");

/// An emulator with a 20-30 ms latency, no limits unless `settings` sets them.
async fn emulator(settings: Settings) -> Emulator {
    testkit::start_quick(settings).await
}

/// Runs the step against `server` with `args`.
async fn step(server: &Emulator, args: &[&str]) -> StepOutput {
    StepCommand::new(STEP)
        .against(server)
        .args(args)
        .run()
        .await
}

/// The per-request JSON lines on stdout (every line but the summary).
fn request_lines(out: &StepOutput) -> Vec<Value> {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("request").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_windows_worth_through_the_limiter_get_no_429() {
    let out = pacing::assert_paced_without_429s(STEP).await;
    // The notes (on stderr with --json): what the limiter kept to, the pace.
    assert!(
        out.stderr.contains("limiter: 4 requests") && out.stderr.contains("pace: "),
        "{}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_limiter_429s_appear() {
    pacing::assert_429s_without_the_limiter(STEP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_retry_delay_is_waited_out() {
    pacing::assert_retry_delay_is_waited_out(STEP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_in_emulator_counts_over_the_limiters_window() {
    // No server given: the step starts its own emulator (the free tier's 10
    // requests per window), on the window of --window.
    let out = StepCommand::new(STEP)
        .env("RUST_LOG", "debug")
        .args(["-n", "12", "--window", "1s", "--no-limit", "--json"])
        .run()
        .await;
    assert!(out.status.success(), "{}", out.all());
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 12, "{summary}");
    assert!(count(&summary, "rate_limited") >= 2, "{summary}");
    // Each 429 says to retry within its window: a second, not a minute.
    let delays: Vec<u64> = out
        .stderr
        .lines()
        .filter_map(|line| line.split("retry_delay_ms=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 2, "{}", out.stderr);
    assert!(delays.iter().all(|&ms| ms <= 1_000), "{delays:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_daily_quota_stops_the_run_cleanly() {
    let server = emulator(Settings {
        rpd: Some(3),
        ..Settings::instant()
    })
    .await;
    let out = step(&server, &["-n", "6", "--concurrency", "1", "--json"]).await;

    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 3, "{}", out.all());
    assert_eq!(count(&summary, "failed"), 1, "the one the server refused");
    assert_eq!(count(&summary, "not_done"), 2, "the rest were never sent");
    assert_eq!(out.code(), Some(1));
    let lines = request_lines(&out);
    let refused: Vec<&str> = lines.iter().filter_map(|l| l["error"].as_str()).collect();
    assert_eq!(refused.len(), 1, "{}", out.all());
    assert!(
        refused[0].contains("daily quota") && refused[0].contains("resets"),
        "{}",
        refused[0]
    );
    let not_done: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["not_done"].as_str())
        .collect();
    assert!(
        not_done
            .iter()
            .all(|r| r.contains("the daily quota is spent")),
        "{not_done:?}"
    );
    assert_eq!(
        server.stats().generates().len(),
        4,
        "nothing sent after the daily 429"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_daily_quota_with_requests_in_flight_still_adds_up() {
    let server = emulator(Settings {
        rpd: Some(3),
        ..Settings::instant()
    })
    .await;
    let out = step(&server, &["-n", "8", "--concurrency", "2", "--json"]).await;

    let summary = out.summary();
    let (succeeded, failed, not_done) = (
        count(&summary, "succeeded"),
        count(&summary, "failed"),
        count(&summary, "not_done"),
    );
    assert_eq!(succeeded, 3, "{}", out.all());
    assert_eq!(succeeded + failed + not_done, 8, "{summary}");
    assert!(not_done > 0, "{summary}");
    // Each failure is a daily 429, none retried into the spent day.
    assert_eq!(count(&summary, "retries"), 0, "{summary}");
    assert_eq!(count(&summary, "rate_limited"), failed, "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_caps_requests_in_flight() {
    pacing::assert_concurrency_caps_requests_in_flight(STEP).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_503s_are_retried_to_success() {
    let server = emulator(Settings {
        faults: Faults {
            fail_503: 0.3,
            ..Faults::default()
        },
        seed: 5,
        ..Settings::instant()
    })
    .await;
    // Enough retries that 0.3^9 makes a request that never succeeds
    // practically impossible; the backoff is the real one (1 s doubling,
    // full jitter), so this takes a few seconds.
    let out = step(
        &server,
        &["-n", "10", "--rpm", "0", "--max-retries", "8", "--json"],
    )
    .await;

    assert!(out.status.success(), "{}", out.all());
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 10, "{summary}");
    assert!(count(&summary, "retries") > 0, "{summary}");
    assert_eq!(count(&summary, "rate_limited"), 0, "{summary}");
    // Every attempt is in the summary: the retries are the 503s.
    let arrivals = server.stats().generates();
    let refused = arrivals.iter().filter(|a| a.status == 503).count() as u64;
    assert!(refused > 0);
    assert_eq!(count(&summary, "retries"), refused, "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ramp_finds_the_breaking_point() {
    // 15 per minute: the batch of 10 passes, the batch of 20 meets the limit
    // (with the first 10 still in the window, only 5 more fit).
    let server = emulator(Settings {
        rpm: Some(15),
        tpm: Some(0),
        rpd: Some(0),
        ..Settings::instant()
    })
    .await;
    let out = step(&server, &["--ramp", "--json"]).await;

    assert!(out.status.success(), "{}", out.all());
    let ramp = out.summary();
    assert_eq!(ramp["breaking_point"], 20, "{ramp}");
    assert_eq!(ramp["ramp"][0]["requests"], 10);
    assert_eq!(ramp["ramp"][0]["answered"], 10);
    assert_eq!(ramp["ramp"][1]["answered"], 5, "{ramp}");
    assert_eq!(ramp["ramp"][1]["rate_limited"], 15, "{ramp}");
    assert_eq!(ramp["limit"], "15");
    assert_eq!(ramp["per_day"], false);
    let quota = ramp["quota_id"].as_str().expect("a quota id");
    assert!(quota.contains("PerMinute"), "{quota}");
    assert!(ramp["retry_delay_s"].as_f64().is_some_and(|d| d > 0.0));
    assert_eq!(
        ramp["ramp"].as_array().map(Vec::len),
        Some(2),
        "it stops at the break"
    );

    // And in words, for people.
    let server = emulator(Settings {
        rpm: Some(15),
        ..Settings::instant()
    })
    .await;
    let out = step(&server, &["--ramp"]).await;
    // What 20 is, and what the limit is.
    assert!(
        out.stdout.contains(
            "breaking point: 20 requests at once, the first batch that met a 429 (a batch size, not the limit)"
        ),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("limit 15 requests per minute"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_lets_requests_in_flight_finish_and_ends_those_queued() {
    // Two requests per minute: two go, three wait in the limiter, and Ctrl-C
    // ends those at once, as "not sent".
    let paced = ["--rpm", "2"];
    let (_, at_signal) = testkit::assert_ctrl_c_stops_the_batch(STEP, &paced, 5, 2).await;
    assert_eq!(at_signal, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_waits_a_bounded_time_for_requests_that_hang() {
    testkit::assert_ctrl_c_cuts_off_after_the_grace_period(STEP, &["--rpm", "0"], 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_retries_every_fault_is_one_failure_and_all_add_up() {
    // Step 3's promises, kept: every request sent once, every one accounted.
    testkit::assert_fault_matrix(STEP, &["--rpm", "0", "--max-retries", "0"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_clear_line() {
    testkit::assert_bad_input_is_one_line(STEP, true, &[]).await;
    let server = emulator(Settings::instant()).await;
    for args in [
        &["--window", "0s"][..],
        &["--window", "soon"],
        &["--concurrency", "0"],
        &["--rpm", "-1"],
        &["--no-limit", "--rpm", "5"],
        &["--ramp", "--no-limit"],
        &["--max-retries", "many"],
    ] {
        step(&server, args).await.assert_usage_error();
    }
    assert!(server.stats().arrivals.is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_debug_line_per_attempt() {
    testkit::assert_one_debug_line_per_attempt(STEP, &["--rpm", "0"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_draws_over_nothing_else() {
    testkit::assert_timeline_draws_over_nothing_else(STEP, &[]).await;
}
