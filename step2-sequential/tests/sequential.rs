//! Step 2 end to end: the binary against the emulator on 127.0.0.1.
//!
//! The lesson of step 2 is that each request waits for the one before. The
//! emulator counts how many requests it is serving at once, so the test can
//! check that lesson directly: never more than one in flight.

use std::time::Duration;

use emulator::{Latency, Settings};
use testkit::{StepCommand, generate_calls};

const STEP: &str = env!("CARGO_BIN_EXE_step2-sequential");

fn settings(latency_ms: u64) -> Settings {
    Settings {
        latency: Latency {
            base: Duration::from_millis(latency_ms),
            ..Latency::ZERO
        },
        ..Settings::instant()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_one_request_at_a_time() {
    let server = emulator::start(settings(40))
        .await
        .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "5", "--json"])
        .run()
        .await;

    assert!(out.status.success(), "{}", out.all());
    let summary = out.summary();
    assert_eq!(summary["requests"], 5);
    assert_eq!(summary["succeeded"], 5);
    assert_eq!(summary["failed"], 0);
    assert_eq!(generate_calls(&server), 5);
    assert_eq!(server.stats().max_in_flight, 1, "step 2 must be sequential");

    // One JSON line per request, in order, then the summary.
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert_eq!(lines.len(), 6);
    for (i, line) in lines[..5].iter().enumerate() {
        assert_eq!(line["request"], i + 1);
        assert_eq!(line["ok"], true);
        assert!(!line["text"].as_str().unwrap_or_default().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_request_is_reported_and_the_run_goes_on() {
    let server = emulator::start(Settings {
        faults: emulator::Faults {
            fail_503: 0.5,
            ..Default::default()
        },
        seed: 7,
        ..settings(0)
    })
    .await
    .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "20"])
        .run()
        .await;

    // Text mode: one line per request, then the summary.
    let failed = out.stdout.lines().filter(|l| l.contains("failed:")).count();
    assert!(failed > 0 && failed < 20, "{}", out.stdout);
    assert!(out.stdout.contains("overloaded"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "20 requests: {} succeeded, {failed} failed",
            20 - failed
        )),
        "{}",
        out.stdout
    );
    assert_eq!(out.code(), Some(1), "a failed request means exit code 1");
    assert_eq!(generate_calls(&server), 20, "no request is skipped");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_key_stops_the_run_with_one_line() {
    let server = emulator::start(Settings {
        key: Some("the-right-key".into()),
        ..settings(0)
    })
    .await
    .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "10"])
        .run()
        .await;

    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("GOOGLE_API_KEY"), "{}", out.stderr);
    assert_eq!(generate_calls(&server), 0, "no request is wasted");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_stops_the_run_with_one_line() {
    let server = emulator::start(settings(0)).await.expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "3", "--model", "gemini-0.1-nope"])
        .run()
        .await;

    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("gemini-0.1-nope"), "{}", out.stderr);
    assert_eq!(generate_calls(&server), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_goes_away_is_not_a_panic() {
    // `step2-sequential | head -1`: the pipe closes while the step still
    // has lines to print. It must finish its run quietly, not panic.
    let server = emulator::start(settings(0)).await.expect("emulator starts");
    let mut command = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "30"])
        .into_command();
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("the step starts");
    drop(child.stdout.take()); // The reader is gone before the first line.
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the blocking task ran")
        .expect("the step ran");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(generate_calls(&server), 30, "every request still ran");
}
