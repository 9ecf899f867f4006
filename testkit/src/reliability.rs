//! The reliability suite, as scenarios each step's `tests/reliability.rs` calls.
//!
//! The fault matrix, a server that restarts mid-run, Ctrl-C and SIGTERM, bad
//! input, the key's secrecy and quiet logging. Each step calls the ones that
//! apply to it, so every step is held to the same promises by the same code:
//!
//! - no panic, ever (stderr never says "panicked");
//! - every request ends as an answer or a reported failure, and the summary
//!   adds up: `succeeded + failed + not_done == requests`;
//! - exit code 0 when all succeeded, 1 when something failed, 2 for bad
//!   usage, 130 after Ctrl-C, 143 after SIGTERM;
//! - bad input is one line on stderr, never a backtrace;
//! - the key never appears in any output, even at `RUST_LOG=trace`.
//!
//! Nothing here measures speed: every check is about *what* happened.

use std::time::Duration;

use emulator::{Emulator, Faults, Settings};
use serde_json::Value;

use crate::command::{StepCommand, StepOutput, TEST_KEY};
use crate::emulators::{
    closed_port, faulty, generate_calls, restart_on, settled_generate_calls, slow,
    start_restartable,
};
use crate::scratch::ScratchDir;
use crate::wait::wait_until;

/// Runs a batch step (2, 3...) with `--json -n N` plus `extra_args` against a
/// fresh emulator with `settings`, and checks that the run adds up.
async fn batch_run(
    binary: &str,
    extra_args: &[&str],
    settings: Settings,
    requests: usize,
    more_args: &[&str],
) -> (StepOutput, Value, Emulator) {
    let server = emulator::start(settings).await.expect("emulator starts");
    let n = requests.to_string();
    let out = StepCommand::new(binary)
        .against(&server)
        .args(["--json", "-n", &n])
        .args(more_args)
        .args(extra_args)
        .run()
        .await;
    let summary = out.assert_accounted(requests, false);
    (out, summary, server)
}

/// The fault matrix for a batch step, with no retries expected (steps 2, 3).
///
/// 1. The realistic mix (10% 503, 5% 500, 5% odd bodies, 5% broken streams,
///    which a unary call never sees): every server error and every blocked
///    prompt is one reported failure, everything else an answer.
/// 2. Only odd-but-valid bodies (no parts, unknown fields and enum values, a
///    blocked prompt): they parse; only the blocked prompt is a failure.
/// 3. A server that never answers, with `--timeout 1`: each request is a
///    timeout failure, not a hang.
/// 4. A server that drops every connection: each request a network failure.
pub async fn assert_fault_matrix(binary: &str, extra_args: &[&str]) {
    // 1. The mix.
    let mix = Faults {
        fail_503: 0.10,
        fail_500: 0.05,
        odd_bodies: 0.05,
        broken_stream: 0.05,
        ..Faults::default()
    };
    let (out, summary, server) = batch_run(binary, extra_args, faulty(mix, 7), 100, &[]).await;
    let server_errors = server
        .stats()
        .arrivals
        .iter()
        .filter(|a| matches!(a.status, 500 | 503))
        .count();
    let blocked = out
        .errors()
        .iter()
        .filter(|e| e.contains("blocked"))
        .count();
    assert!(
        server_errors > 0,
        "the seed should give some 5xx\n{}",
        out.dump()
    );
    assert_eq!(summary["failed"], server_errors + blocked, "{}", out.dump());
    assert_eq!(summary["not_done"], 0, "{}", out.dump());
    assert_eq!(generate_calls(&server), 100, "every request was sent once");

    // 2. Odd but valid bodies.
    let odd = Faults {
        odd_bodies: 1.0,
        ..Faults::default()
    };
    let (out, summary, _server) = batch_run(binary, extra_args, faulty(odd, 3), 24, &[]).await;
    let errors = out.errors();
    assert!(
        errors.iter().all(|e| e.contains("blocked")),
        "only a blocked prompt is a failure\n{}",
        out.dump()
    );
    assert!(
        !errors.is_empty(),
        "the seed should block some\n{}",
        out.dump()
    );
    assert!(summary["succeeded"].as_u64() > Some(0), "{}", out.dump());

    // 3. A silent server and a short timeout.
    let hang = Faults {
        hang: 1.0,
        ..Faults::default()
    };
    let (out, summary, _server) =
        batch_run(binary, extra_args, faulty(hang, 1), 2, &["--timeout", "1"]).await;
    assert_eq!(summary["failed"], 2, "{}", out.dump());
    assert!(
        out.errors()
            .iter()
            .all(|e| e.contains("no answer within 1s")),
        "{}",
        out.dump()
    );

    // 4. A server that closes the connection.
    let close = Faults {
        close: 1.0,
        ..Faults::default()
    };
    let (out, summary, _server) = batch_run(binary, extra_args, faulty(close, 1), 3, &[]).await;
    assert_eq!(summary["failed"], 3, "{}", out.dump());
    assert!(
        out.errors().iter().all(|e| e.contains("network error")),
        "{}",
        out.dump()
    );
}

/// The fault matrix for a step that retries (step 4), with its default
/// number of retries and a short backoff (`--backoff 10ms`) so the test is
/// quick; `extra_args` should lift the limiter's pacing (`--rpm 0 ...`).
///
/// 1. 10% 503 and 5% 500: at least 99% succeed, and every attempt is
///    accounted for (arrivals at the server = requests + retries).
/// 2. The realistic mix with odd bodies: a blocked prompt is not retried
///    (it would be blocked again) and is the only kind of failure left.
/// 3. A server that never answers, `--timeout 1 --max-retries 1`: each
///    request is a timeout, retried once, then a reported failure.
/// 4. A server that drops every connection, `--max-retries 1`: the same.
pub async fn assert_fault_matrix_with_retries(binary: &str, extra_args: &[&str]) {
    let quick: Vec<&str> = [&["--backoff", "10ms"][..], extra_args].concat();

    // 1. Server errors are retried to success.
    let errors = Faults {
        fail_503: 0.10,
        fail_500: 0.05,
        ..Faults::default()
    };
    let (out, summary, server) = batch_run(binary, &quick, faulty(errors, 7), 200, &[]).await;
    let succeeded = summary["succeeded"].as_u64().unwrap_or_default();
    let retries = summary["retries"].as_u64().unwrap_or_default();
    assert!(succeeded >= 198, "at least 99% succeed\n{}", out.dump());
    assert!(retries > 0, "the seed should give some 5xx\n{}", out.dump());
    assert_eq!(
        generate_calls(&server) as u64,
        200 + retries,
        "each attempt is one arrival\n{}",
        out.dump()
    );

    // 2. The mix: only blocked prompts fail.
    let mix = Faults {
        fail_503: 0.10,
        fail_500: 0.05,
        odd_bodies: 0.05,
        broken_stream: 0.05,
        ..Faults::default()
    };
    let (out, _summary, _server) = batch_run(binary, &quick, faulty(mix, 7), 100, &[]).await;
    assert!(
        out.errors().iter().all(|e| e.contains("blocked")),
        "{}",
        out.dump()
    );

    // 3 and 4. Silence and dropped connections: retried, then reported.
    let hang = Faults {
        hang: 1.0,
        ..Faults::default()
    };
    let close = Faults {
        close: 1.0,
        ..Faults::default()
    };
    for (faults, mentions) in [(hang, "no answer within 1s"), (close, "network error")] {
        let args = ["--timeout", "1", "--max-retries", "1"];
        let (out, summary, server) = batch_run(binary, &quick, faulty(faults, 1), 2, &args).await;
        assert_eq!(summary["failed"], 2, "{}", out.dump());
        assert_eq!(summary["retries"], 2, "{}", out.dump());
        assert_eq!(generate_calls(&server), 4, "{}", out.dump());
        assert!(
            out.errors().iter().all(|e| e.contains(mentions)),
            "{}",
            out.dump()
        );
    }
}

/// What [`server_restarts_mid_run`] saw.
pub struct Restart {
    /// The step's output.
    pub out: StepOutput,
    /// Its `--json` summary (already checked to add up).
    pub summary: Value,
    /// Generate requests that reached the first server (all of them hung).
    pub first: usize,
    /// Generate requests that reached the second server on the same port.
    pub second: usize,
}

/// A server that goes away mid-run and comes back on the same port.
///
/// The first server accepts requests and never answers them. Once `in_flight`
/// requests hang there, the step is frozen (SIGSTOP), the server is shut down
/// (cutting those requests off) and a healthy one is started on the same
/// port, and the step is thawed. Freezing makes this deterministic: without
/// it, the step's next request could race the new server's start and meet a
/// refused connection instead (also a reported failure, but then the test
/// could not show that the run recovers).
///
/// Checked here: the run ends and adds up, and every request the second
/// server saw is an answer. Whether the requests cut off are failures (steps
/// 2, 3) or retried to success (step 4) is the caller's to check.
pub async fn server_restarts_mid_run(
    binary: &str,
    extra_args: &[&str],
    requests: usize,
    in_flight: usize,
) -> Restart {
    let hang = Faults {
        hang: 1.0,
        ..Faults::default()
    };
    let first = start_restartable(faulty(hang, 1)).await;
    let addr = first.addr();
    let n = requests.to_string();
    let step = StepCommand::new(binary)
        .against(&first)
        .args(["--json", "-n", &n, "--timeout", "60"])
        .args(extra_args)
        .spawn();
    wait_until("requests hanging on the first server", || {
        first.stats().in_flight >= in_flight
    })
    .await;

    step.freeze().await;
    let first_calls = generate_calls(&first);
    first.shutdown().await;
    let second = restart_on(addr, Settings::instant()).await;
    step.thaw();

    let out = step.wait().await;
    let summary = out.assert_accounted(requests, false);
    let second_calls = generate_calls(&second);
    assert_eq!(summary["succeeded"], second_calls, "{}", out.dump());
    Restart {
        out,
        summary,
        first: first_calls,
        second: second_calls,
    }
}

/// Ctrl-C in the middle of a batch: no new request starts, those in flight
/// finish (each request takes 2 s, well within the grace period), the
/// partial summary is printed and adds up, and the exit code is 130.
///
/// The signal is sent once `started` requests have reached the emulator;
/// returns the output and that count.
pub async fn assert_ctrl_c_stops_the_batch(
    binary: &str,
    extra_args: &[&str],
    requests: usize,
    started: usize,
) -> (StepOutput, usize) {
    let (server, out, at_signal) =
        signal_mid_batch(binary, extra_args, requests, started, "INT").await;

    let summary = out.assert_accounted(requests, true);
    assert_eq!(
        generate_calls(&server),
        at_signal,
        "no request may start after Ctrl-C\n{}",
        out.dump()
    );
    assert_eq!(
        summary["succeeded"],
        at_signal,
        "those in flight finish\n{}",
        out.dump()
    );
    assert_eq!(summary["not_done"], requests - at_signal, "{}", out.dump());
    assert!(out.stderr.contains("Ctrl-C"), "{}", out.dump());
    assert!(
        out.stdout.contains("not sent: interrupted by Ctrl-C") || at_signal == requests,
        "{}",
        out.dump()
    );
    (out, at_signal)
}

/// Runs a batch of `requests` (`--json`) against an emulator with a 2 s
/// latency and sends `signal` once `started` requests have arrived and the
/// count has settled (a request sent before the signal may reach the server
/// a moment after it). Returns the server, the output and the requests that
/// had arrived at the signal.
async fn signal_mid_batch(
    binary: &str,
    extra_args: &[&str],
    requests: usize,
    started: usize,
    signal: &str,
) -> (Emulator, StepOutput, usize) {
    let server = emulator::start(slow(Duration::from_secs(2)))
        .await
        .expect("emulator starts");
    let n = requests.to_string();
    let step = StepCommand::new(binary)
        .against(&server)
        .args(["--json", "-n", &n])
        .args(extra_args)
        .spawn();
    wait_until("the first requests to arrive", || {
        generate_calls(&server) >= started
    })
    .await;
    let at_signal = settled_generate_calls(&server).await;
    step.signal(signal);
    let out = step.wait().await;
    (server, out, at_signal)
}

/// SIGTERM (what `kill`, a container or a service manager sends) in the
/// middle of a batch does what Ctrl-C does: no new request starts, those in
/// flight finish and are kept, the partial summary adds up, and the exit
/// code is 143 (128 + SIGTERM).
pub async fn assert_sigterm_stops_the_batch(
    binary: &str,
    extra_args: &[&str],
    requests: usize,
    started: usize,
) {
    let (server, out, at_signal) =
        signal_mid_batch(binary, extra_args, requests, started, "TERM").await;

    out.assert_no_panic();
    assert_eq!(out.code(), Some(143), "{}", out.dump());
    let summary = out.summary();
    assert_eq!(summary["requests"], requests, "{}", out.dump());
    assert_eq!(generate_calls(&server), at_signal, "{}", out.dump());
    assert_eq!(
        summary["succeeded"],
        at_signal,
        "finished answers kept\n{}",
        out.dump()
    );
    assert_eq!(summary["not_done"], requests - at_signal, "{}", out.dump());
    let answered = out.results().iter().filter(|r| r["ok"] == true).count();
    assert_eq!(answered, at_signal, "{}", out.dump());
    assert!(out.stderr.contains("SIGTERM"), "{}", out.dump());
    assert!(
        out.stdout.contains("not sent: interrupted by SIGTERM") || at_signal == requests,
        "{}",
        out.dump()
    );
}

/// Ctrl-C still stops the run when stdout and stderr are closed pipes
/// (`step 2>&1 | head -1` after `head` has its line): the message about it
/// cannot be written, but that must neither panic (exit 101) nor lose the
/// stop (the run going on to exit 0). No request starts after the signal.
pub async fn assert_ctrl_c_with_closed_output(binary: &str, extra_args: &[&str], requests: usize) {
    let server = emulator::start(slow(Duration::from_secs(2)))
        .await
        .expect("emulator starts");
    let n = requests.to_string();
    let mut step = StepCommand::new(binary)
        .against(&server)
        .args(["-n", &n])
        .args(extra_args)
        .spawn();
    step.close_output();
    wait_until("the first request to arrive", || {
        generate_calls(&server) >= 1
    })
    .await;
    // A concurrent step sends its first wave together, but the requests reach
    // the server a little apart: wait until the count settles (the latency is
    // 2 s, so nothing new is due), so every arrival after the signal would be
    // a request sent after it.
    let at_signal = settled_generate_calls(&server).await;
    step.signal("INT");
    let out = step.wait().await;
    assert_eq!(out.code(), Some(130), "Ctrl-C honoured, no panic");
    assert_eq!(
        generate_calls(&server),
        at_signal,
        "no request after Ctrl-C"
    );
}

/// Ctrl-C while requests hang: the wait is bounded by the grace period, the
/// requests still in flight are cut off and reported as not done, and the
/// summary still comes out (this scenario takes the grace period, ~10 s).
pub async fn assert_ctrl_c_cuts_off_after_the_grace_period(
    binary: &str,
    extra_args: &[&str],
    requests: usize,
) {
    let hang = Faults {
        hang: 1.0,
        ..Faults::default()
    };
    let server = emulator::start(faulty(hang, 1))
        .await
        .expect("emulator starts");
    let n = requests.to_string();
    let step = StepCommand::new(binary)
        .against(&server)
        .args(["--json", "-n", &n, "--timeout", "600"])
        .args(extra_args)
        .spawn();
    wait_until("a request to hang", || server.stats().in_flight >= 1).await;
    step.signal("INT");
    let out = step.wait().await;

    let summary = out.assert_accounted(requests, true);
    assert_eq!(summary["not_done"], requests, "{}", out.dump());
    assert!(
        out.stdout.contains("cut off by Ctrl-C"),
        "the hung request is reported as cut off\n{}",
        out.dump()
    );
}

/// Bad input of every kind: one clear line and a non-zero exit, never a
/// panic or a backtrace. `batch` adds the `-n` cases of steps 2-4.
pub async fn assert_bad_input_is_one_line(binary: &str, batch: bool, extra_args: &[&str]) {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut step = StepCommand::new(binary).against(&server).args(extra_args);
        for (k, v) in env {
            step = step.env(k, v);
        }
        step.args(args.iter().copied()).run()
    };

    // Keys that cannot be sent: refused before anything is sent (not even
    // the model check), without echoing them.
    for key in ["ab\ncd-7f3a9c", "clé-7f3a9c", "two words-7f3a9c"] {
        let out = run(&[("GOOGLE_API_KEY", key)], &[]).await;
        out.assert_one_error_line("API key", 0);
        out.assert_no_key();
        assert!(server.stats().arrivals.is_empty(), "{key:?} was sent");
    }
    // An empty or blank key for a remote server: no key at all.
    for key in ["", "   "] {
        let env = [
            ("GOOGLE_API_KEY", key),
            ("GOOGLE_GEMINI_BASE_URL", "https://gemini.example.invalid"),
        ];
        run(&env, &[]).await.assert_one_error_line("no API key", 0);
    }
    // A key the server does not accept.
    let strict = emulator::start(Settings {
        key: Some("another-key".into()),
        ..Settings::instant()
    })
    .await
    .expect("emulator starts");
    let out = run(&[("GOOGLE_GEMINI_BASE_URL", &strict.base_url())], &[]).await;
    out.assert_one_error_line("API key", 0);
    out.assert_no_key();
    assert_eq!(generate_calls(&strict), 0, "no request is wasted");

    // An unknown model: one 404 line naming it, before any request.
    let out = run(&[], &["--model", "gemini-0.1-nope"]).await;
    out.assert_one_error_line("gemini-0.1-nope", 0);
    assert_eq!(generate_calls(&server), 0);

    // Base URLs that are not URLs, or lead nowhere.
    let out = run(&[("GOOGLE_GEMINI_BASE_URL", "not a url")], &[]).await;
    out.assert_one_error_line("GOOGLE_GEMINI_BASE_URL", 0);
    let closed = closed_port();
    let out = run(&[("GOOGLE_GEMINI_BASE_URL", &closed)], &[]).await;
    out.assert_one_error_line("cannot reach", 0);
    let invalid = [("GOOGLE_GEMINI_BASE_URL", "https://gemini.example.invalid")];
    let out = run(&invalid, &["--timeout", "5"]).await;
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.dump());

    // Options clap refuses, with its usage message and exit code 2.
    let mut usage: Vec<Vec<&str>> = vec![
        vec!["--timeout", "0"],
        vec!["--timeout", "-1"],
        vec!["--timeout", "soon"],
        vec!["--timeout", "1e12"],
        vec!["--model", "a/b"],
        vec!["--model", ""],
        vec!["--no-such-option"],
    ];
    if batch {
        for n in ["0", "-3", "99999999999", "many"] {
            usage.push(vec!["-n", n]);
        }
    }
    for args in usage {
        let out = run(&[], &args).await;
        out.assert_usage_error();
    }
    assert_eq!(
        generate_calls(&server),
        0,
        "bad input never reaches the server"
    );
}

/// `--timeline` never draws over a file it did not draw: notes, or someone
/// else's SVG, are one error line before anything is sent, and left as they
/// were; a picture of the step's own is drawn again.
pub async fn assert_timeline_draws_over_nothing_else(binary: &str, extra_args: &[&str]) {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let dir = ScratchDir::new("timeline");
    let run = |path: &std::path::Path| {
        StepCommand::new(binary)
            .against(&server)
            .args(extra_args)
            .args(["-n", "1", "--timeline"])
            .args([path])
            .run()
    };
    let notes = dir.path().join("notes.txt");
    let logo = dir.path().join("logo.svg");
    let kept = [
        (&notes, "my notes\n"),
        (
            &logo,
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"4\"/></svg>\n",
        ),
    ];
    for (path, text) in kept {
        std::fs::write(path, text).expect("written");
        let out = run(path).await;
        out.assert_one_error_line("holds something else than a timeline", 0);
        assert_eq!(
            std::fs::read_to_string(path).expect("read"),
            text,
            "left as it was"
        );
    }
    assert_eq!(generate_calls(&server), 0, "nothing sent");
    let svg = dir.path().join("run.svg");
    for _ in 0..2 {
        let out = run(&svg).await;
        assert_eq!(out.code(), Some(0), "{}", out.dump());
    }
    assert_eq!(generate_calls(&server), 2);
}

/// A `.env` file that cannot be used is one line naming it (and never its
/// content: it holds the key); a *directory* called `.env` is skipped.
pub async fn assert_bad_dotenv_is_one_line(binary: &str, extra_args: &[&str]) {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let bad_files: [&[u8]; 3] = [
        b"GOOGLE_API_KEY=\"test-key-7f3a9c-do-not-print\n",
        b"GOOGLE_API_KEY=\xff\xfe\xfd\n",
        b"this line is not an assignment 7f3a9c\n",
    ];
    for content in bad_files {
        let dir = ScratchDir::new("dotenv");
        std::fs::write(dir.path().join(".env"), content).expect("writes .env");
        let out = StepCommand::new(binary)
            .env("GOOGLE_GEMINI_BASE_URL", &server.base_url())
            .in_dir(dir.path())
            .args(extra_args)
            .run()
            .await;
        out.assert_one_error_line(".env", 0);
        out.assert_no_key();
    }

    // A directory named `.env` (often a Python virtualenv: `python -m venv
    // .env`) is not a dotenv file. dotenvy and python-dotenv skip it, and so
    // do we: the run goes on with the real environment.
    let dir = ScratchDir::new("dotenv-dir");
    std::fs::create_dir(dir.path().join(".env")).expect("creates .env/");
    let out = StepCommand::new(binary)
        .against(&server)
        .in_dir(dir.path())
        .args(extra_args)
        .run()
        .await;
    out.assert_no_panic();
    assert_eq!(out.code(), Some(0), "{}", out.dump());
    assert!(out.stderr.is_empty(), "{}", out.dump());
}

/// `RUST_LOG` for every target, the HTTP libraries included (a bare `trace`
/// leaves them at warnings): where a key could leak, it would be there.
pub const EVERYTHING_AT_TRACE: &str = "trace,hyper=trace,hyper_util=trace,h2=trace,rustls=trace,tokio_rustls=trace,reqwest=trace,tower=trace";

/// The key never shows, even at `RUST_LOG=trace`: on a successful run (which
/// proves the key was sent: the emulator only accepts [`TEST_KEY`]) and on
/// the error path of a server that refuses it. `args` select the code path
/// (`--stream`, `-n 3`...).
pub async fn assert_key_never_shown(binary: &str, args: &[&str]) {
    let accepting = emulator::start(Settings {
        key: Some(TEST_KEY.into()),
        ..Settings::instant()
    })
    .await
    .expect("emulator starts");
    let out = StepCommand::new(binary)
        .against(&accepting)
        .env("RUST_LOG", EVERYTHING_AT_TRACE)
        .args(args)
        .run()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.dump());
    assert!(
        out.stderr.contains("TRACE") && out.stderr.contains(" hyper"),
        "trace logging was on, the HTTP libraries' too\n{}",
        out.dump()
    );
    out.assert_no_key();

    let refusing = emulator::start(Settings {
        key: Some("another-key".into()),
        ..Settings::instant()
    })
    .await
    .expect("emulator starts");
    let out = StepCommand::new(binary)
        .against(&refusing)
        .env("RUST_LOG", EVERYTHING_AT_TRACE)
        .args(args)
        .run()
        .await;
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    out.assert_no_key();
}

/// Plain `http://` to a host that is not this machine: a warning that the
/// key would travel unencrypted, printed before any connection is tried.
/// The host is under `.invalid`, which never resolves, so nothing is sent.
pub async fn assert_warns_about_plain_http(binary: &str, extra_args: &[&str]) {
    let out = StepCommand::new(binary)
        .env(
            "GOOGLE_GEMINI_BASE_URL",
            "http://gemini.example.invalid:8080",
        )
        .env("GOOGLE_API_KEY", TEST_KEY)
        .args(["--timeout", "5"])
        .args(extra_args)
        .run()
        .await;
    out.assert_no_panic();
    out.assert_no_key();
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("warning:") && first.contains("unencrypted"),
        "{}",
        out.dump()
    );
}

/// With `RUST_LOG` unset, a successful run prints nothing on stderr.
pub async fn assert_silent_by_default(binary: &str, args: &[&str]) {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(binary)
        .against(&server)
        .args(args)
        .run()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.dump());
    assert!(
        out.stderr.is_empty(),
        "stderr should be empty\n{}",
        out.dump()
    );
}

/// At `RUST_LOG=debug`, one log line per attempt, with its index, attempt
/// number, status and latency.
pub async fn assert_one_debug_line_per_attempt(binary: &str, extra_args: &[&str]) {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(binary)
        .against(&server)
        .env("RUST_LOG", "debug")
        .args(["-n", "3"])
        .args(extra_args)
        .run()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.dump());
    // Numbered from 1, like the `#1` lines on stdout.
    for number in 1..=3 {
        let lines = out
            .stderr
            .lines()
            .filter(|l| l.contains(" attempt ") && l.contains(&format!("request={number} ")))
            .collect::<Vec<_>>();
        assert_eq!(lines.len(), 1, "request {number}\n{}", out.dump());
        for field in ["attempt=1", "status=Ok", "latency_ms="] {
            assert!(lines[0].contains(field), "{field} in {}", lines[0]);
        }
    }
    assert!(
        !out.stderr.contains('\u{1b}'),
        "no colour codes outside a terminal\n{}",
        out.dump()
    );
    // A bare `debug` is for this project's code: the HTTP stack stays quiet.
    let noisy: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| {
            [" hyper", " h2::", " rustls::", " reqwest::"]
                .iter()
                .any(|t| l.contains(t))
        })
        .collect();
    assert!(
        noisy.is_empty(),
        "library debug lines at RUST_LOG=debug: {noisy:#?}"
    );
    assert!(
        !out.stderr.contains("request=0 "),
        "requests are numbered from 1\n{}",
        out.dump()
    );
}
