//! Step 2's reliability: faults, a restarting server, Ctrl-C, bad
//! input, the key's secrecy and quiet logs.
//!
//! The scenarios live in `testkit`, shared with steps 3 and 4; this
//! file says which apply to step 2 and what is particular to a sequential
//! run: after a server restart the *next* requests succeed, and after Ctrl-C
//! exactly the one request in flight finishes.

use testkit::TEST_KEY_FRAGMENT;

const STEP: &str = env!("CARGO_BIN_EXE_step2-sequential");

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_ends_as_a_reported_failure_and_the_counts_add_up() {
    testkit::assert_fault_matrix(STEP, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_restarts_mid_run_fails_one_request_and_the_run_goes_on() {
    let restart = testkit::server_restarts_mid_run(STEP, &[], 6, 1).await;
    // The request cut off by the shutdown failed; every later one went to
    // the new server on the same port and was answered.
    assert_eq!(restart.first, 1, "{}", restart.out.dump());
    assert_eq!(restart.second, 5, "{}", restart.out.dump());
    assert_eq!(restart.summary["failed"], 1, "{}", restart.out.dump());
    assert_eq!(restart.out.code(), Some(1));
    assert!(
        restart.out.results()[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("network error")),
        "{}",
        restart.out.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_lets_the_request_in_flight_finish_and_sends_no_more() {
    let (_, at_signal) = testkit::assert_ctrl_c_stops_the_batch(STEP, &[], 5, 1).await;
    assert_eq!(at_signal, 1, "one request at a time");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_batch_as_ctrl_c_does() {
    testkit::assert_sigterm_stops_the_batch(STEP, &[], 5, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_is_honoured_when_the_output_is_a_closed_pipe() {
    testkit::assert_ctrl_c_with_closed_output(STEP, &[], 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_clear_line() {
    testkit::assert_bad_input_is_one_line(STEP, true, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_dotenv_is_one_clear_line() {
    testkit::assert_bad_dotenv_is_one_line(STEP, &["-n", "1"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_never_printed_even_at_trace_level() {
    assert!(testkit::TEST_KEY.contains(TEST_KEY_FRAGMENT));
    testkit::assert_key_never_shown(STEP, &["-n", "3"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_remote_host_is_warned_about() {
    testkit::assert_warns_about_plain_http(STEP, &["-n", "1"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_silent_by_default_and_one_line_per_attempt_at_debug() {
    testkit::assert_silent_by_default(STEP, &["-n", "3"]).await;
    testkit::assert_one_debug_line_per_attempt(STEP, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_draws_over_nothing_else() {
    testkit::assert_timeline_draws_over_nothing_else(STEP, &[]).await;
}
