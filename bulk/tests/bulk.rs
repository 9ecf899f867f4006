//! bulk end to end: the binary against the emulator on 127.0.0.1.
//!
//! Each test starts an emulator with the limits it needs, over *short*
//! windows (1 s instead of a minute) and with small latencies, runs the
//! `bulk` binary against it as a user would, and then checks what really
//! reached the server: the emulator records every arrival with its time and
//! status. There are no assertions about speed (shared machines are noisy);
//! the only time checks are lower bounds ("nothing arrived before the
//! server's window had room"), which a slow machine cannot break.

use std::time::Duration;

use emulator::{Emulator, Faults, Settings};
use serde_json::Value;
use testkit::{StepCommand, StepOutput, pacing, pacing::count};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");
const MS: Duration = Duration::from_millis(1);

/// An emulator with a 20-30 ms latency, no limits unless `settings` sets them.
async fn emulator(settings: Settings) -> Emulator {
    testkit::start_quick(settings).await
}

/// Runs bulk against `server` with `args`.
async fn bulk(server: &Emulator, args: &[&str]) -> StepOutput {
    StepCommand::new(BULK)
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
    pacing::assert_paced_without_429s(BULK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_limiter_429s_appear() {
    pacing::assert_429s_without_the_limiter(BULK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_retry_delay_is_waited_out() {
    pacing::assert_retry_delay_is_waited_out(BULK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_daily_quota_stops_the_run_cleanly() {
    let server = emulator(Settings {
        rpd: Some(3),
        ..Settings::instant()
    })
    .await;
    let out = bulk(&server, &["-n", "6", "--concurrency", "1", "--json"]).await;

    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 3, "{}", out.all());
    assert_eq!(count(&summary, "failed"), 1, "the one the server refused");
    assert_eq!(count(&summary, "not_done"), 2, "the rest were never sent");
    assert_eq!(out.code(), Some(1));
    let daily: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("daily quota"))
        .collect();
    assert_eq!(daily.len(), 1, "one line about it: {}", out.stderr);
    assert!(daily[0].contains("resets"), "{}", daily[0]);
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
    let out = bulk(&server, &["-n", "8", "--concurrency", "2", "--json"]).await;

    let summary = out.summary();
    let (succeeded, failed, not_done) = (
        count(&summary, "succeeded"),
        count(&summary, "failed"),
        count(&summary, "not_done"),
    );
    assert_eq!(succeeded, 3, "{}", out.all());
    assert_eq!(succeeded + failed + not_done, 8, "{summary}");
    assert!(not_done > 0, "{summary}");
    let daily = out
        .stderr
        .lines()
        .filter(|l| l.contains("daily quota"))
        .count();
    assert_eq!(
        daily, 1,
        "one line, however many got the 429: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_caps_requests_in_flight() {
    pacing::assert_concurrency_caps_requests_in_flight(BULK).await;
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
    // A short backoff keeps the test quick; enough retries that 0.3^9 makes
    // a request that never succeeds practically impossible.
    let out = bulk(
        &server,
        &[
            "-n",
            "20",
            "--rpm",
            "0",
            "--backoff",
            "20ms",
            "--max-retries",
            "8",
            "--json",
        ],
    )
    .await;

    assert!(out.status.success(), "{}", out.all());
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 20, "{summary}");
    assert!(count(&summary, "retries") > 0, "{summary}");
    assert!(server.stats().generates().iter().any(|a| a.status == 503));
}

#[tokio::test(flavor = "multi_thread")]
async fn prompts_files_and_output_keep_input_order() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = [
        "Why do some birds migrate?",
        "What is 2 + 2?",
        "Name three rivers in Africa.",
    ];
    let lines = dir.path().join("prompts.txt");
    std::fs::write(
        &lines,
        format!("{}\n\n{}\n   \n{}\n", prompts[0], prompts[1], prompts[2]),
    )
    .expect("written");
    let jsonl = dir.path().join("prompts.jsonl");
    let json_text: String = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}\n",
                serde_json::json!({ "prompt": p, "id": format!("q{i}") })
            )
        })
        .collect();
    std::fs::write(&jsonl, json_text).expect("written");

    for (file, name) in [(&lines, "lines.jsonl"), (&jsonl, "json.jsonl")] {
        let output = dir.path().join(name);
        let out = bulk(
            &server,
            &[
                "--rpm",
                "0",
                "--prompts",
                file.to_str().expect("UTF-8"),
                "--output",
                output.to_str().expect("UTF-8"),
                "--json",
            ],
        )
        .await;
        assert!(out.status.success(), "{}", out.all());
        assert_eq!(count(&out.summary(), "requests"), 3);
        let written = std::fs::read_to_string(&output).expect("the output was written");
        let mut rows: Vec<Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(rows.len(), 3, "one line per prompt: {written}");
        // The journal is in completion order; its lines say where each belongs.
        rows.sort_by_key(|row| row["line"].as_u64());
        for (i, row) in rows.iter().enumerate() {
            let id = if file == &lines {
                Value::from([1, 3, 5][i])
            } else {
                Value::from(format!("q{i}"))
            };
            assert_eq!(row["id"], id, "{written}");
            assert_eq!(row["ok"], true);
            assert_eq!(row["attempts"], 1);
            assert!(row["latency_ms"].is_u64());
            // Each answer is to its own prompt: the emulator counts tokens
            // the same way for the prompt it received.
            assert_eq!(
                row["usage"]["prompt_tokens"],
                emulator::tokens::count(prompts[i]),
                "row {i} answers prompt {i}"
            );
        }
        assert_eq!(request_lines(&out).len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_prompts_file_is_one_error_line() {
    let server = emulator(Settings::instant()).await;
    let out = bulk(&server, &["--prompts", "/nonexistent/prompts.txt"]).await;

    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stdout, "", "nothing on stdout");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].starts_with("error: cannot read the prompts file /nonexistent/prompts.txt"));
    assert_eq!(
        lines[0].matches("No such file").count(),
        1,
        "the cause, said once: {}",
        lines[0]
    );
    assert!(server.stats().arrivals.is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_needs_limits() {
    let server = emulator(Settings::instant()).await;
    let out = bulk(&server, &["--model", "gemini-9-ultra"]).await;

    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("--rpm"), "{}", out.stderr);
    assert!(server.stats().arrivals.is_empty(), "nothing was sent");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_ends_waiting_requests_as_not_done() {
    // 2 per minute: two requests go, the other four wait in the limiter for
    // a minute, and Ctrl-C should end them at once.
    let server = emulator(Settings {
        rpm: Some(2),
        ..Settings::instant()
    })
    .await;
    let mut command = StepCommand::new(BULK)
        .against(&server)
        .args(["-n", "6", "--rpm", "2", "--json"])
        .into_command();
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("bulk starts");
    let pid = child.id().to_string();

    // Wait until both admitted requests were answered, then press Ctrl-C.
    for _ in 0..200 {
        if server.stats().arrivals.len() >= 2 && server.stats().in_flight == 0 {
            break;
        }
        tokio::time::sleep(50 * MS).await;
    }
    tokio::time::sleep(300 * MS).await;
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joined")
        .expect("bulk ends");
    let out = StepOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };

    assert_eq!(out.code(), Some(130), "{}", out.all());
    let summary = out.summary();
    assert_eq!(count(&summary, "succeeded"), 2, "{summary}");
    assert_eq!(count(&summary, "not_done"), 4, "{summary}");
    assert_eq!(
        server.stats().generates().len(),
        2,
        "nothing sent after Ctrl-C"
    );
}
