//! bulk's reliability: the same promises as steps 2 and 3, for a
//! runner that retries and paces itself.
//!
//! The scenarios live in `testkit`. What is particular to bulk:
//! server errors, silence and dropped connections are *retried* (with the
//! default policy, at least 99% of requests survive a 10% 503 / 5% 500 mix),
//! requests cut off by a server restart are retried to success on the new
//! server, and Ctrl-C also ends the requests still queued in the limiter.
//!
//! Most tests lift the free tier's pacing (`--rpm 0 --tpm 0 --rpd 0`, the
//! emulator is unlimited too), so a hundred requests do not take ten minutes.

use emulator::Settings;
use testkit::StepCommand;

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

/// No pacing: the limiter lets everything through at once.
const UNPACED: [&str; 6] = ["--rpm", "0", "--tpm", "0", "--rpd", "0"];

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_retried_and_every_request_is_accounted_for() {
    testkit::assert_fault_matrix_with_retries(BULK, &UNPACED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_cut_off_by_a_server_restart_are_retried_to_success() {
    let args = [&UNPACED[..], &["--backoff", "10ms"]].concat();
    let restart = testkit::server_restarts_mid_run(BULK, &args, 4, 4).await;
    assert_eq!(
        (restart.first, restart.second),
        (4, 4),
        "{}",
        restart.out.dump()
    );
    assert_eq!(restart.summary["succeeded"], 4, "{}", restart.out.dump());
    assert_eq!(restart.summary["retries"], 4, "{}", restart.out.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_lets_requests_in_flight_finish_and_ends_those_queued() {
    // Two requests per minute: two go, three wait in the limiter.
    let paced = ["--rpm", "2", "--tpm", "0", "--rpd", "0"];
    let (_, at_signal) = testkit::assert_ctrl_c_stops_the_batch(BULK, &paced, 5, 2).await;
    assert_eq!(at_signal, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_waits_a_bounded_time_for_requests_that_hang() {
    testkit::assert_ctrl_c_cuts_off_after_the_grace_period(BULK, &UNPACED, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_clear_line() {
    testkit::assert_bad_input_is_one_line(BULK, true, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_prompts_file_or_an_unusable_dotenv_is_one_clear_line() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(BULK)
        .against(&server)
        .args(["--prompts", "/nonexistent/prompts.txt"])
        .run()
        .await;
    out.assert_one_error_line("/nonexistent/prompts.txt", 0);
    assert!(server.stats().arrivals.is_empty());

    testkit::assert_bad_dotenv_is_one_line(BULK, &[&UNPACED[..], &["-n", "1"]].concat()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_never_printed_even_at_trace_level() {
    testkit::assert_key_never_shown(BULK, &[&UNPACED[..], &["-n", "3"]].concat()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_remote_host_is_warned_about() {
    testkit::assert_warns_about_plain_http(BULK, &["-n", "1", "--max-retries", "0"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_on_stderr_by_default() {
    testkit::assert_silent_by_default(BULK, &[&UNPACED[..], &["-n", "3"]].concat()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_debug_line_per_attempt() {
    testkit::assert_one_debug_line_per_attempt(BULK, &UNPACED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_run_as_ctrl_c_does() {
    let paced = ["--rpm", "2", "--tpm", "0", "--rpd", "0"];
    testkit::assert_sigterm_stops_the_batch(BULK, &paced, 5, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_is_honoured_when_the_output_is_a_closed_pipe() {
    testkit::assert_ctrl_c_with_closed_output(BULK, &UNPACED, 4).await;
}
