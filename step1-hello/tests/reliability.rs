//! Step 1's reliability: one request, so every fault must end as
//! one clear error line and exit code 1 -- or, for an odd but valid body, as
//! an answer -- and never as a panic or a hang.
//!
//! The bad-input, secrecy and logging scenarios are shared with the other
//! steps (`testkit`); the fault cases are here, for both the unary
//! call and `--stream`.

use emulator::Faults;
use testkit::{StepCommand, StepOutput, faulty};

const STEP: &str = env!("CARGO_BIN_EXE_step1-hello");

/// Step 1 against a fresh emulator with `faults` (seeded), with `args`.
async fn ask(faults: Faults, seed: u64, args: &[&str]) -> StepOutput {
    let server = emulator::start(faulty(faults, seed))
        .await
        .expect("emulator starts");
    StepCommand::new(STEP)
        .against(&server)
        .args(args)
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_silence_and_dropped_connections_are_one_error_line() {
    let cases = [
        (
            Faults {
                fail_503: 1.0,
                ..Faults::default()
            },
            "overloaded",
        ),
        (
            Faults {
                fail_500: 1.0,
                ..Faults::default()
            },
            "500",
        ),
        (
            Faults {
                hang: 1.0,
                ..Faults::default()
            },
            "no answer within 1s",
        ),
        (
            Faults {
                close: 1.0,
                ..Faults::default()
            },
            "network error",
        ),
    ];
    for (faults, mentions) in cases {
        for mode in [&["--timeout", "1"][..], &["--timeout", "1", "--stream"]] {
            let out = ask(faults.clone(), 1, mode).await;
            out.assert_one_error_line(mentions, 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_broken_midway_is_an_error_on_a_line_of_its_own() {
    let broken = Faults {
        broken_stream: 1.0,
        ..Faults::default()
    };
    for seed in 0..6 {
        let out = ask(broken.clone(), seed, &["--stream"]).await;
        // Broken by an error object written into the stream, or by a
        // dropped connection: either way one line, never a silent success.
        out.assert_one_error_line("", 0);
        assert!(
            out.stdout.is_empty() || out.stdout.ends_with('\n'),
            "the partial answer's line is ended before the error\n{}",
            out.dump()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_but_valid_bodies_are_answers_except_a_blocked_prompt() {
    let odd = Faults {
        odd_bodies: 1.0,
        ..Faults::default()
    };
    let (mut answered, mut blocked) = (0, 0);
    for seed in 0..16 {
        for mode in [&[][..], &["--stream"]] {
            let out = ask(odd.clone(), seed, mode).await;
            out.assert_no_panic();
            match out.code() {
                Some(0) => answered += 1,
                _ => {
                    out.assert_one_error_line("blocked", 0);
                    blocked += 1;
                }
            }
        }
    }
    assert!(
        answered > 0 && blocked > 0,
        "{answered} answered, {blocked} blocked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_on_a_request_that_hangs_quits_after_the_grace_period() {
    let server = emulator::start(faulty(
        Faults {
            hang: 1.0,
            ..Faults::default()
        },
        1,
    ))
    .await
    .expect("emulator starts");
    let step = StepCommand::new(STEP)
        .against(&server)
        .args(["--timeout", "600"])
        .spawn();
    testkit::wait_until("the request to hang", || server.stats().in_flight == 1).await;
    step.signal("INT");
    let out = step.wait().await;

    // Not after --timeout's 600 s: the backstop ends the wait it announced.
    out.assert_no_panic();
    assert_eq!(out.code(), Some(130), "{}", out.dump());
    assert!(out.stderr.contains("still not finished"), "{}", out.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_clear_line() {
    testkit::assert_bad_input_is_one_line(STEP, false, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_dotenv_is_one_clear_line() {
    testkit::assert_bad_dotenv_is_one_line(STEP, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_never_printed_even_at_trace_level() {
    testkit::assert_key_never_shown(STEP, &[]).await;
    testkit::assert_key_never_shown(STEP, &["--stream"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_remote_host_is_warned_about() {
    testkit::assert_warns_about_plain_http(STEP, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_on_stderr_by_default() {
    testkit::assert_silent_by_default(STEP, &[]).await;
    testkit::assert_silent_by_default(STEP, &["--stream"]).await;
}
