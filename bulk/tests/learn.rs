//! bulk learns the limits from the server's 429s, remembers them per
//! project and model, and never spends the same day twice.
//!
//! Each test runs the binary against an emulator on 127.0.0.1 with short
//! windows, and a limits file in a temporary directory (never the user's own
//! state directory). What is checked is what reached the server, as the
//! emulator recorded it; no assertion is about speed.

use std::{path::Path, time::Duration};

use emulator::{Emulator, Settings, settings::QuotaQuirk};
use testkit::{StepCommand, StepOutput, pacing::count};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

/// An emulator with a 20-30 ms latency, no limits unless `settings` sets them.
async fn emulator(settings: Settings) -> Emulator {
    testkit::start_quick(settings).await
}

/// Runs bulk against `server`, remembering in `file`.
async fn bulk(server: &Emulator, file: &Path, args: &[&str]) -> StepOutput {
    StepCommand::new(BULK)
        .against(server)
        .env("GEMINI_LIMITS_FILE", file.to_str().expect("a UTF-8 path"))
        .args(args)
        .run()
        .await
}

fn lines<'a>(out: &'a StepOutput, needle: &str) -> Vec<&'a str> {
    out.stderr.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_learned_limit_is_kept_for_the_run_and_remembered_for_the_next() {
    // The server allows 5 per second; the limiter is told 6000.
    let window = Duration::from_secs(1);
    let server = emulator(Settings {
        rpm: Some(5),
        window,
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("limits.json");
    let args = ["-n", "20", "--rpm", "6000", "--window", "1s", "--json"];

    let first = bulk(&server, &file, &args).await;
    let summary = first.summary();
    assert_eq!(count(&summary, "succeeded"), 20, "{}", first.all());
    let refused = count(&summary, "rate_limited");
    assert!(refused <= 15, "at most one round of 429s: {summary}");
    let learned = lines(&first, "the server says");
    assert_eq!(learned.len(), 1, "one line per lesson: {}", first.stderr);
    assert!(learned[0].contains("now keeps to 5"), "{}", learned[0]);
    // No 429 after the first retryDelay: every refusal came in the first round.
    let arrivals = server.stats().generates();
    let first_refusal = arrivals
        .iter()
        .find(|a| a.status == 429)
        .map(|a| a.at)
        .expect("the server refused some");
    assert!(
        arrivals
            .iter()
            .filter(|a| a.status == 429)
            .all(|a| a.at < first_refusal + window),
        "a 429 after the first round: {arrivals:?}"
    );
    assert_eq!(
        lines(&first, "limits in force: RPM 5 (learned from the server)").len(),
        1,
        "{}",
        first.stderr
    );

    // The next run starts at the learned limit, with the first run's
    // requests still counting in its window: not one 429.
    let second = bulk(&server, &file, &args).await;
    let summary = second.summary();
    assert_eq!(count(&summary, "succeeded"), 20, "{}", second.all());
    assert_eq!(count(&summary, "rate_limited"), 0, "{}", second.all());
    assert_eq!(lines(&second, "remembered from earlier runs").len(), 1);
    assert_eq!(
        lines(&second, "limits in force: RPM 5 (remembered)").len(),
        1,
        "{}",
        second.stderr
    );

    // And --forget-limits forgets it: the table's figure again (the limit
    // given on the command line).
    let forgotten = bulk(&server, &file, &["-n", "1", "--forget-limits", "--json"]).await;
    assert_eq!(lines(&forgotten, "forgot the limits").len(), 1);
    assert_eq!(lines(&forgotten, "remembered from earlier runs").len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_day_is_not_spent_twice() {
    let day = Duration::from_secs(4);
    let server = emulator(Settings {
        rpd: Some(25),
        day,
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("state").join("limits.json");
    let args = [
        "-n",
        "40",
        "--rpm",
        "1000",
        "--window",
        "1s",
        "--day",
        "4s",
        "--concurrency",
        "1",
        "--json",
    ];

    let first = bulk(&server, &file, &args).await;
    let summary = first.summary();
    assert_eq!(count(&summary, "succeeded"), 25, "{}", first.all());
    assert_eq!(count(&summary, "failed"), 1, "the per-day 429");
    assert_eq!(count(&summary, "not_done"), 14);
    let spent = lines(&first, "daily quota");
    assert_eq!(spent.len(), 1, "{}", first.stderr);
    assert!(spent[0].contains("resets in"), "{}", spent[0]);
    assert_eq!(server.stats().generates().len(), 26);

    // At once again: nothing is sent, and one line says when to come back.
    let second = bulk(&server, &file, &args).await;
    let summary = second.summary();
    assert_eq!(count(&summary, "not_done"), 40, "{}", second.all());
    assert_eq!(server.stats().generates().len(), 26, "not one request sent");
    let spent = lines(&second, "daily quota");
    assert_eq!(spent.len(), 1, "{}", second.stderr);
    assert!(spent[0].contains("resets in"), "{}", spent[0]);

    // After the (compressed) day, the other 15.
    tokio::time::sleep(day + Duration::from_millis(500)).await;
    let rest = [
        "-n", "15", "--rpm", "1000", "--window", "1s", "--day", "4s", "--json",
    ];
    let third = bulk(&server, &file, &rest).await;
    let summary = third.summary();
    assert_eq!(count(&summary, "succeeded"), 15, "{}", third.all());
    assert_eq!(count(&summary, "rate_limited"), 0, "{}", third.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn our_own_daily_limit_ends_the_run_with_a_line() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("limits.json");
    let out = bulk(&server, &file, &["-n", "3", "--rpd", "2", "--json"]).await;
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 2, "{}", out.all());
    assert_eq!(count(&summary, "not_done"), 1, "{}", out.all());
    let line = lines(&out, "daily quota reached");
    assert_eq!(line.len(), 1, "{}", out.stderr);
    assert!(
        line[0].contains("2 requests per day (configured)") && line[0].contains("resets in"),
        "{}",
        line[0]
    );
    assert_eq!(server.stats().generates().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_of_zero_is_one_fatal_line() {
    let server = emulator(Settings {
        quota_quirk: Some(QuotaQuirk::Zero),
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("limits.json");
    let out = bulk(&server, &file, &["-n", "5", "--concurrency", "1"]).await;
    out.assert_no_panic();
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr.contains("not available to this project"),
        "{}",
        out.all()
    );
    assert_eq!(server.stats().generates().len(), 1, "no retry, no wait");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_day_429_with_a_short_delay_still_stops_for_the_day() {
    let server = emulator(Settings {
        rpd: Some(3),
        quota_quirk: Some(QuotaQuirk::ShortDayDelay),
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("limits.json");
    let out = bulk(&server, &file, &["-n", "6", "--concurrency", "1", "--json"]).await;
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 3, "{}", out.all());
    assert_eq!(count(&summary, "not_done"), 2, "{}", out.all());
    assert_eq!(
        server.stats().generates().len(),
        4,
        "no retry of a per-day 429"
    );
    let spent = lines(&out, "daily quota spent");
    assert_eq!(spent.len(), 1, "{}", out.stderr);
    // The reset is midnight Pacific, not the 30 s the server said.
    assert!(spent[0].contains("resets in"), "{}", spent[0]);
    assert!(!spent[0].contains("resets in 30 s"), "{}", spent[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_quota_details_teach_nothing_and_break_nothing() {
    for quirk in [QuotaQuirk::DimensionsString, QuotaQuirk::NoValue] {
        let server = emulator(Settings {
            rpm: Some(3),
            window: Duration::from_secs(1),
            quota_quirk: Some(quirk),
            ..Settings::instant()
        })
        .await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("limits.json");
        let args = ["-n", "6", "--rpm", "100", "--window", "1s", "--json"];
        let out = bulk(&server, &file, &args).await;
        out.assert_no_panic();
        let summary = out.summary();
        assert_eq!(count(&summary, "succeeded"), 6, "{quirk:?}: {}", out.all());
        assert!(count(&summary, "rate_limited") > 0, "{quirk:?}: {summary}");
        assert_eq!(
            lines(&out, "the server says").len(),
            0,
            "{quirk:?}: {}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_plans_with_the_limits_an_earlier_run_learned() {
    // The server allows 2 requests per 1 s window; the limiter is told 6000.
    let server = emulator(Settings {
        rpm: Some(2),
        window: Duration::from_secs(1),
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("limits.json");
    let pace = ["--rpm", "6000", "--window", "1s", "--json"];
    let first = bulk(&server, &file, &[&["-n", "6"][..], &pace].concat()).await;
    assert_eq!(lines(&first, "now keeps to 2").len(), 1, "{}", first.stderr);

    // 10 prompts at 2 a second take 4 s more than at 6000: with a minute's
    // latency, "about 2 min" where the configured limit alone says 1.
    let auto = ["-n", "10", "--mode", "auto", "--deadline", "3m"];
    let second = bulk(&server, &file, &[&auto[..], &pace].concat()).await;
    let plan = lines(&second, "--mode auto chose");
    assert_eq!(plan.len(), 1, "{}", second.stderr);
    assert!(plan[0].contains("standard about 2 min"), "{}", plan[0]);
    assert_eq!(
        count(&second.summary(), "succeeded"),
        10,
        "{}",
        second.all()
    );
    assert_eq!(
        count(&second.summary(), "rate_limited"),
        0,
        "{}",
        second.all()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_knows_a_day_an_earlier_run_found_spent() {
    let server = emulator(Settings {
        rpd: Some(2),
        day: Duration::from_secs(3600),
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("limits.json");
    let pace = ["--rpm", "1000", "--window", "1s", "--day", "1h", "--json"];
    let first = bulk(
        &server,
        &file,
        &[&["-n", "3", "--concurrency", "1"][..], &pace].concat(),
    )
    .await;
    assert_eq!(lines(&first, "daily quota").len(), 1, "{}", first.stderr);
    let sent = server.stats().generates().len();

    // Flex would finish in 15 minutes on a fresh day; this one is spent for
    // about an hour, and a synchronous run would stop at once: nothing can
    // send now without --output, and the plan says why.
    let auto = ["-n", "2", "--mode", "auto", "--deadline", "30m"];
    let second = bulk(&server, &file, &[&auto[..], &pace].concat()).await;
    let plan = lines(&second, "--mode auto chose");
    assert_eq!(plan.len(), 1, "{}", second.stderr);
    assert!(
        plan[0].starts_with("--mode auto chose standard, as none can send now"),
        "{}",
        plan[0]
    );
    assert!(
        plan[0].contains("flex about")
            && plan[0].contains(", not before the day's quota is back in"),
        "{}",
        plan[0]
    );
    assert_eq!(
        server.stats().generates().len(),
        sent,
        "not one request sent"
    );

    // --no-limit paces nothing and remembers nothing: the plan neither.
    let unpaced = [
        "-n",
        "1",
        "--mode",
        "auto",
        "--deadline",
        "30m",
        "--no-limit",
    ];
    let blind = bulk(&server, &file, &unpaced).await;
    let plan = lines(&blind, "--mode auto chose");
    assert!(
        plan[0].starts_with("--mode auto chose flex, the cheapest"),
        "{}",
        blind.stderr
    );
    let sent = server.stats().generates().len();

    // With --output, a batch job can go: it has a quota of its own.
    let prompts = dir.path().join("q.txt");
    std::fs::write(&prompts, "Why?\nHow?\n").expect("written");
    let output = dir.path().join("answers.jsonl");
    let files = [
        "--prompts",
        prompts.to_str().expect("UTF-8"),
        "--output",
        output.to_str().expect("UTF-8"),
        "--mode",
        "auto",
        "--deadline",
        "30m",
        "--batch-expect",
        "1s",
        "--batch-poll",
        "100ms",
    ];
    let third = bulk(&server, &file, &[&files[..], &pace].concat()).await;
    let plan = lines(&third, "--mode auto chose");
    assert!(
        plan[0].starts_with("--mode auto chose batch"),
        "{}",
        third.stderr
    );
    third.assert_accounted(2, false);
    assert_eq!(
        server.stats().generates().len(),
        sent,
        "no synchronous request"
    );
}
