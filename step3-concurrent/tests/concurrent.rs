//! Step 3 end to end: the binary against the emulator on 127.0.0.1.
//!
//! The lesson of step 3 is that all requests are in flight at once on one
//! client. The emulator counts concurrent requests, so the test checks
//! exactly that, with no timing assertions (shared machines are noisy).

use std::time::Duration;

use emulator::{Latency, Settings};
use testkit::StepCommand;

const STEP: &str = env!("CARGO_BIN_EXE_step3-concurrent");

#[tokio::test(flavor = "multi_thread")]
async fn sends_every_request_at_once_and_reports_in_order() {
    // Long enough that all 20 overlap even on a slow machine.
    let server = emulator::start(Settings {
        latency: Latency {
            base: Duration::from_millis(1500),
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await
    .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "20", "--json"])
        .run()
        .await;

    assert!(out.status.success(), "{}", out.all());
    let summary = out.summary();
    assert_eq!(summary["succeeded"], 20);
    assert_eq!(
        server.stats().max_in_flight,
        20,
        "step 3 must have all requests in flight together"
    );
    let indices: Vec<u64> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["request"].as_u64())
        .collect();
    assert_eq!(
        indices,
        (1..=20).collect::<Vec<_>>(),
        "results in order, numbered from 1 like the terminal's #n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_counted_and_add_up() {
    let server = emulator::start(Settings {
        faults: emulator::Faults {
            fail_500: 0.3,
            odd_bodies: 0.3,
            ..Default::default()
        },
        seed: 11,
        ..Settings::instant()
    })
    .await
    .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["-n", "50", "--json"])
        .run()
        .await;

    let summary = out.summary();
    let succeeded = summary["succeeded"].as_u64().expect("a number");
    let failed = summary["failed"].as_u64().expect("a number");
    assert_eq!(succeeded + failed, 50, "{summary}");
    assert!(failed > 0, "{summary}");
    assert_eq!(out.code(), Some(1));
}
