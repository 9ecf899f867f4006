//! Step 3's reliability: faults, a restarting server, Ctrl-C, bad
//! input, the key's secrecy and quiet logs.
//!
//! The scenarios live in `testkit`, shared with steps 2 and 4. What
//! is particular to a concurrent run: every request is in flight at once,
//! so a server restart cuts them all off (and each is still one reported
//! failure), and Ctrl-C lets all of them finish -- or, if they hang, cuts
//! them off when the grace period ends.

const STEP: &str = env!("CARGO_BIN_EXE_step3-concurrent");

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_ends_as_a_reported_failure_and_the_counts_add_up() {
    testkit::assert_fault_matrix(STEP, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_goes_away_mid_run_fails_each_request_in_flight_once() {
    let restart = testkit::server_restarts_mid_run(STEP, &[], 4, 4).await;
    assert_eq!(
        (restart.first, restart.second),
        (4, 0),
        "{}",
        restart.out.dump()
    );
    assert_eq!(restart.summary["failed"], 4, "{}", restart.out.dump());
    assert_eq!(restart.out.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_lets_every_request_in_flight_finish() {
    testkit::assert_ctrl_c_stops_the_batch(STEP, &[], 4, 4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_waits_a_bounded_time_for_requests_that_hang() {
    testkit::assert_ctrl_c_cuts_off_after_the_grace_period(STEP, &[], 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_batch_as_ctrl_c_does() {
    testkit::assert_sigterm_stops_the_batch(STEP, &[], 4, 4).await;
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
