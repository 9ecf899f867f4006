//! The `--output` journal end to end: answers kept the moment they arrive,
//! a stopped run resumed without paying twice, and the files it refuses.
//!
//! Each test runs the binary against an emulator on 127.0.0.1 and checks
//! two books against each other: the journal's rows, and the emulator's own
//! count of `generateContent` requests, which keeps counting across the runs
//! of a test (one emulator, the binary run several times against it).

use std::{collections::HashMap, path::Path, time::Duration};

use emulator::{Emulator, Settings};
use testkit::{StepCommand, StepOutput, generate_calls, json_lines, wait_until};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

async fn emulator(settings: Settings) -> Emulator {
    emulator::start(settings)
        .await
        .expect("the emulator starts")
}

fn command(server: &Emulator, args: &[&str]) -> StepCommand {
    StepCommand::new(BULK).against(server).args(args)
}

/// How many answered rows each id has.
fn answers_per_id(path: &Path) -> HashMap<String, usize> {
    let mut answers = HashMap::new();
    for row in json_lines(path).iter().filter(|row| row["ok"] == true) {
        *answers.entry(row["id"].to_string()).or_default() += 1;
    }
    answers
}

/// A JSONL prompts file of `n` prompts with ids `p1`, `p2`, ...
fn prompts_file(dir: &Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("prompts.jsonl");
    let text: String = (1..=n)
        .map(|i| {
            let line = serde_json::json!({"id": format!("p{i}"), "prompt": format!("Question {i}?"), "topic": i % 3});
            format!("{line}\n")
        })
        .collect();
    std::fs::write(&path, text).expect("written");
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_halfway_then_resume_answers_every_id_exactly_once() {
    const N: usize = 300;
    const IN_FLIGHT: usize = 8;
    let server = emulator(testkit::slow(Duration::from_millis(20))).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), N);
    let output = dir.path().join("answers.jsonl");
    let args = [
        "--prompts",
        path_str(&prompts),
        "--output",
        path_str(&output),
        "--rpm",
        "60",
        "--window",
        "1s",
        "--concurrency",
        "8",
    ];
    // The same command, with a summary a test can read. (The killed run
    // prints short lines: a pipe nobody reads while it runs holds 64 KB.)
    let json: Vec<&str> = args.iter().copied().chain(["--json"]).collect();

    let first = command(&server, &args).spawn();
    wait_until("half the answers in the journal", || {
        json_lines(&output).len() >= N / 2
    })
    .await;
    first.signal("KILL");
    let killed = first.wait().await;
    assert_eq!(
        killed.code(),
        None,
        "killed by the signal\n{}",
        killed.dump()
    );
    let sent_before = generate_calls(&server);
    let kept = answers_per_id(&output).len();
    assert!((N / 2..N).contains(&kept), "{kept} answers kept");
    assert!(
        sent_before - kept <= IN_FLIGHT,
        "only the requests in flight at the kill are unrecorded: {sent_before} sent, {kept} kept"
    );

    let second = command(&server, &json).run().await;
    assert_eq!(second.code(), Some(0), "{}", second.dump());
    let summary = second.summary();
    assert_eq!(summary["requests"], N - kept, "only the rest is sent");
    assert!(
        second
            .stdout
            .contains(&format!("{kept} of {N} prompts were already answered"))
            || second
                .stderr
                .contains(&format!("{kept} of {N} prompts were already answered")),
        "{}",
        second.dump()
    );
    let answers = answers_per_id(&output);
    assert_eq!(answers.len(), N, "every id answered");
    assert!(answers.values().all(|&n| n == 1), "each exactly once");
    assert_eq!(
        generate_calls(&server),
        N + (sent_before - kept),
        "300 answers, plus the ones in flight at the kill, sent again"
    );
    // The rows echo the input line's other fields and say where they belong.
    let row = json_lines(&output)
        .into_iter()
        .find(|row| row["id"] == "p7")
        .expect("p7 has a row");
    assert_eq!(
        (row["line"].as_u64(), row["input"]["topic"].as_u64()),
        (Some(7), Some(1))
    );

    // Run a finished job again: nothing is sent, and it says so.
    let third = command(&server, &json).run().await;
    assert_eq!(third.code(), Some(0), "{}", third.dump());
    assert!(third.all().contains("nothing to send"), "{}", third.dump());
    assert_eq!(generate_calls(&server), N + (sent_before - kept));
}

/// Two answered, four waiting in the limiter; then `signals`.
#[cfg(unix)]
async fn stop_keeps_every_finished_answer(signals: &[&str], code: i32) {
    let server = emulator(Settings {
        rpm: Some(2),
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let output = dir.path().join("answers.jsonl");
    let args = [
        "-n",
        "6",
        "--rpm",
        "2",
        "--output",
        path_str(&output),
        "--json",
    ];
    let run = command(&server, &args).spawn();
    wait_until("two answers kept", || json_lines(&output).len() >= 2).await;
    for signal in signals {
        run.signal(signal);
    }
    let out: StepOutput = run.wait().await;
    assert_eq!(out.code(), Some(code), "{}", out.dump());
    assert_eq!(answers_per_id(&output).len(), 2, "{}", out.dump());
    assert_eq!(generate_calls(&server), 2);
    if signals.len() == 1 {
        // The run's end says what is left and how to continue.
        assert!(
            out.stderr.contains("4 prompt(s) left")
                && out.stderr.contains("run the same command again"),
            "{}",
            out.dump()
        );
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_keeps_every_finished_answer() {
    stop_keeps_every_finished_answer(&["TERM"], 143).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_second_ctrl_c_keeps_every_finished_answer() {
    stop_keeps_every_finished_answer(&["INT", "INT"], 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_last_line_is_skipped_and_its_prompt_sent_again() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 3);
    let output = dir.path().join("answers.jsonl");
    let args = [
        "--prompts",
        path_str(&prompts),
        "--output",
        path_str(&output),
        "--rpm",
        "0",
        "--json",
    ];
    assert!(command(&server, &args).run().await.status.success());
    // Keep two rows whole and cut the third short, as a death mid-write would.
    let text = std::fs::read_to_string(&output).expect("read");
    let cut = text.trim_end().rfind('\n').expect("three lines") + 20;
    std::fs::write(&output, &text[..cut]).expect("written");

    let out = command(&server, &args).run().await;
    assert!(out.status.success(), "{}", out.dump());
    assert_eq!(out.summary()["requests"], 1, "only the torn row's prompt");
    assert!(
        out.stderr.contains("1 unreadable line(s)"),
        "{}",
        out.dump()
    );
    let answers = answers_per_id(&output);
    assert_eq!(answers.len(), 3);
    assert!(answers.values().all(|&n| n == 1));
    assert!(
        std::fs::read_to_string(&output)
            .expect("read")
            .starts_with(&text[..cut])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_journals_and_inputs_are_one_line_and_send_nothing() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 3);
    let p = path_str(&prompts);

    // A journal written for another prompts file.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"id\":\"x1\",\"prompt\":\"Else\"}\n").expect("written");
    let foreign = dir.path().join("foreign.jsonl");
    let args = [
        "--prompts",
        path_str(&other),
        "--output",
        path_str(&foreign),
        "--rpm",
        "0",
    ];
    assert!(command(&server, &args).run().await.status.success());
    let sent = generate_calls(&server);
    let before = std::fs::read(&foreign).expect("read");

    let dup = dir.path().join("dup.jsonl");
    std::fs::write(
        &dup,
        "{\"id\":7,\"prompt\":\"a\"}\nb\n{\"id\":7,\"prompt\":\"c\"}\n",
    )
    .expect("written");
    let full = "/dev/full";
    let cases: [(&[&str], &str); 5] = [
        (
            &["--prompts", p, "--output", path_str(&foreign)],
            "does not belong to these prompts",
        ),
        (
            &["--prompts", path_str(&dup), "--output", "o.jsonl"],
            "lines 1 and 3 have the same id 7",
        ),
        (
            &["--prompts", p, "--output", "/nonexistent/dir/o.jsonl"],
            "cannot open the output file",
        ),
        (
            &["--prompts", p, "--output", p],
            "is the same file as --prompts",
        ),
        (
            &["--prompts", p, "--output", "t.svg", "--timeline", "./t.svg"],
            "is the same file as --timeline",
        ),
    ];
    for (args, says) in cases {
        let out = command(&server, args).in_dir(dir.path()).run().await;
        out.assert_no_panic();
        assert_eq!(out.code(), Some(1), "{}", out.dump());
        let last = out.stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(says),
            "{says}\n{}",
            out.dump()
        );
        assert_eq!(
            generate_calls(&server),
            sent,
            "nothing sent: {}",
            out.dump()
        );
    }
    assert_eq!(
        std::fs::read(&foreign).expect("read"),
        before,
        "nothing lost"
    );
    assert_eq!(
        std::fs::read_to_string(&prompts)
            .expect("read")
            .lines()
            .count(),
        3
    );

    // A disk that is full: a failure, never "succeeded".
    let out = command(
        &server,
        &[
            "--prompts",
            p,
            "--output",
            full,
            "--concurrency",
            "1",
            "--rpm",
            "0",
        ],
    )
    .run()
    .await;
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    let last = out.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("cannot write to the output file /dev/full"),
        "{}",
        out.dump()
    );
    assert_eq!(
        generate_calls(&server),
        sent + 1,
        "the run stops at the first failed write"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_with_a_bom_is_parsed_not_sent_as_json() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = dir.path().join("bom.jsonl");
    std::fs::write(
        &prompts,
        "\u{feff}{\"id\":\"b\",\"prompt\":\"Why is the sky blue?\"}\r\n",
    )
    .expect("written");
    let output = dir.path().join("o.jsonl");
    let out = command(
        &server,
        &[
            "--prompts",
            path_str(&prompts),
            "--output",
            path_str(&output),
            "--rpm",
            "0",
        ],
    )
    .run()
    .await;
    assert!(out.status.success(), "{}", out.dump());
    let row = json_lines(&output).pop().expect("one row");
    assert_eq!(row["id"], "b");
    assert_eq!(
        row["usage"]["prompt_tokens"],
        emulator::tokens::count("Why is the sky blue?"),
        "the prompt, not the JSON text, was sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_prompts_are_left_for_the_next_run_and_only_they_are_sent() {
    const N: usize = 20;
    let flaky = emulator(testkit::faulty(
        emulator::Faults {
            fail_503: 0.5,
            ..Default::default()
        },
        7,
    ))
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let output = dir.path().join("answers.jsonl");
    let args = [
        "-n",
        "20",
        "--rpm",
        "0",
        "--max-retries",
        "0",
        "--output",
        path_str(&output),
        "--json",
    ];
    let first = command(&flaky, &args).run().await;
    assert_eq!(first.code(), Some(1), "{}", first.dump());
    let failed = first.summary()["failed"].as_u64().expect("a count") as usize;
    assert!(failed > 0 && failed < N, "{}", first.dump());
    assert!(
        first.stderr.contains(&format!(
            "{failed} prompt(s) left ({failed} failed, 0 not done)"
        )) && first
            .stderr
            .contains("run the same command again to continue: "),
        "{}",
        first.dump()
    );

    let steady = emulator(Settings::instant()).await;
    let second = command(&steady, &args).run().await;
    assert_eq!(second.code(), Some(0), "{}", second.dump());
    assert_eq!(generate_calls(&steady), failed, "only the failed ones");
    let answers = answers_per_id(&output);
    assert_eq!(answers.len(), N);
    assert!(answers.values().all(|&n| n == 1));
}
