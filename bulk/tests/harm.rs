//! bulk does no harm: no file a user names is overwritten by another, no lock
//! can be dodged through another name, no wait can hang, an edited prompt is
//! sent again without paying twice for the rest, and every refusal is one
//! line that names the real cause.
//!
//! Each test runs the binary against an emulator on 127.0.0.1 and checks
//! what reached the server (the emulator's own count) and what is left of
//! the files afterwards.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use emulator::{Emulator, Settings};
use testkit::{StepCommand, StepOutput, generate_calls, json_lines, wait_until};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

/// A run that should end at once: a hang shows as this, not as a stuck test.
const NO_HANG: Duration = Duration::from_secs(120);

/// The variables of the machine running the tests that would change where
/// requests go or what is trusted.
const MACHINE_VARS: [&str; 10] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

async fn emulator(settings: Settings) -> Emulator {
    emulator::start(settings)
        .await
        .expect("the emulator starts")
}

/// bulk against `server`, with none of the machine's proxies or CA files.
fn bulk(server: &Emulator, args: &[&str]) -> StepCommand {
    MACHINE_VARS
        .iter()
        .fold(StepCommand::new(BULK).against(server), |command, var| {
            command.env_remove(var)
        })
        .args(args)
}

async fn run(command: StepCommand) -> StepOutput {
    tokio::time::timeout(NO_HANG, command.run())
        .await
        .expect("the run ended instead of hanging")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The answered rows for each id (the last answered row of an id is its answer).
fn answered_ids(path: &Path) -> Vec<String> {
    let mut ids: Vec<String> = json_lines(path)
        .iter()
        .filter(|row| row["ok"] == true)
        .map(|row| row["id"].to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("written");
    path.to_path_buf()
}

/// The one error line of a refused run, which sent nothing.
fn assert_refused(out: &StepOutput, says: &str, server: &Emulator, sent_before: usize) {
    out.assert_no_panic();
    out.assert_no_key();
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    let lines: Vec<&str> = out.stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "one line\n{}", out.dump());
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(says),
        "{says:?}\n{}",
        out.dump()
    );
    assert_eq!(
        generate_calls(server),
        sent_before,
        "nothing sent\n{}",
        out.dump()
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_journal_held_by_a_run_is_refused_through_any_other_name() {
    let server = emulator(testkit::slow(Duration::from_secs(60))).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out.jsonl");
    let first = bulk(&server, &["-n", "1", "--rpm", "0", "--output", s(&out)]).spawn();
    // Its lock is taken before it connects: a request on the wire means it holds it.
    wait_until("the first run to send", || generate_calls(&server) >= 1).await;
    let sent = generate_calls(&server);

    let symlink = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&out, &symlink).expect("a symlink");
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&out, &hard).expect("a hard link");
    std::fs::create_dir(dir.path().join("a")).expect("a dir");
    let dots = dir.path().join("a").join("..").join("out.jsonl");
    for alias in [&symlink, &hard, &dots] {
        let second = run(bulk(
            &server,
            &["-n", "2", "--rpm", "0", "--output", s(alias)],
        ))
        .await;
        assert_refused(&second, "another run is writing to", &server, sent);
    }
    first.signal("KILL");
    first.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limits_file_may_not_be_the_output_whoever_names_it() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("out.jsonl");
    let args = ["-n", "2", "--rpm", "0", "--output", s(&out)];
    // The flag, and the variable: each names the journal itself.
    let flag = bulk(&server, &args).args(["--limits-file", s(&out)]);
    let env = bulk(&server, &args).env("GEMINI_LIMITS_FILE", s(&out));
    // The default, under the state directory: the journal is put there.
    let state = dir.path().join("state");
    let default = state.join("gemini-tutorial").join("limits.json");
    std::fs::create_dir_all(default.parent().expect("a dir")).expect("created");
    let by_default = bulk(&server, &["-n", "2", "--rpm", "0", "--output", s(&default)])
        .env_remove("GEMINI_LIMITS_FILE")
        .env("XDG_STATE_HOME", s(&state))
        .env("HOME", s(dir.path()));
    for (command, names) in [
        (flag, "--limits-file"),
        (env, "GEMINI_LIMITS_FILE"),
        (by_default, "the default limits file"),
    ] {
        let refused = run(command).await;
        assert_refused(&refused, "is the same file as", &server, 0);
        assert!(
            refused.stderr.contains(names),
            "{names}\n{}",
            refused.dump()
        );
    }
    assert!(!out.exists() && !default.exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limits_file_that_is_not_one_is_refused_and_left_as_it_is() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let questions = write(
        &dir.path().join("questions.txt"),
        "Why is the sky blue?\nWhat is a monad?\n",
    );
    let settings = write(
        &dir.path().join("settings.json"),
        "{\"entries\": {}, \"theme\": \"dark\"}\n",
    );
    let flag = bulk(&server, &["-n", "1", "--limits-file", s(&questions)]);
    let env = bulk(&server, &["-n", "1"]).env("GEMINI_LIMITS_FILE", s(&settings));
    for command in [flag, env] {
        let refused = run(command).await;
        assert_refused(&refused, "is not a limits file", &server, 0);
    }
    assert_eq!(
        std::fs::read_to_string(&questions).expect("read"),
        "Why is the sky blue?\nWhat is a monad?\n"
    );
    assert_eq!(
        std::fs::read_to_string(&settings).expect("read"),
        "{\"entries\": {}, \"theme\": \"dark\"}\n"
    );

    // A limits file of the version before the format marker is one.
    let earlier = write(&dir.path().join("limits.json"), "{\"entries\": {}}\n");
    let out = run(bulk(
        &server,
        &["-n", "1", "--rpm", "0", "--limits-file", s(&earlier)],
    ))
    .await;
    assert_eq!(out.code(), Some(0), "{}", out.dump());
    let text = std::fs::read_to_string(&earlier).expect("read");
    assert!(text.contains("gemini-tutorial limits, version 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeline_is_never_drawn_over_the_prompts_or_another_file() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = write(&dir.path().join("q.txt"), "Why?\nHow?\n");
    let notes = write(&dir.path().join("notes.txt"), "my notes\n");
    let cases = [
        (
            bulk(
                &server,
                &["--prompts", s(&prompts), "--timeline", s(&prompts)],
            ),
            "is the same file as --prompts",
        ),
        (
            bulk(&server, &["-n", "1", "--timeline", s(&notes)]),
            "holds something else than a timeline",
        ),
    ];
    for (command, says) in cases {
        let refused = run(command.args(["--rpm", "0"])).await;
        assert_refused(&refused, says, &server, 0);
    }
    assert_eq!(
        std::fs::read_to_string(&prompts).expect("read"),
        "Why?\nHow?\n"
    );
    assert_eq!(std::fs::read_to_string(&notes).expect("read"), "my notes\n");
    // A picture of ours is drawn again.
    let svg = dir.path().join("run.svg");
    for _ in 0..2 {
        let out = run(bulk(
            &server,
            &["-n", "1", "--rpm", "0", "--timeline", s(&svg)],
        ))
        .await;
        assert_eq!(out.code(), Some(0), "{}", out.dump());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_batch_ledger_is_never_drawn_or_written_over() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = write(&dir.path().join("q.txt"), "Why?\nHow?\n");
    let out = dir.path().join("out.jsonl");
    let ledger = dir.path().join("out.jsonl.batches");
    let link = dir.path().join("picture.svg");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&ledger, &link).expect("a symlink");
    #[cfg(not(unix))]
    let link = ledger.clone();
    let files = [
        "--prompts",
        s(&prompts),
        "--output",
        s(&out),
        "--timeline",
        s(&link),
    ];
    for mode in [
        &["--mode", "batch"][..],
        &["--mode", "auto", "--deadline", "1d"],
    ] {
        let refused = run(bulk(&server, &[&files[..], mode].concat())).await;
        assert_refused(
            &refused,
            "is the same file as the batch ledger of --output",
            &server,
            0,
        );
        assert!(server.stats().arrivals.is_empty(), "no job created");
    }
    // A synchronous run never writes the ledger: the same names are no harm.
    let standard = run(bulk(&server, &[&files[..], &["--rpm", "0"]].concat())).await;
    assert_eq!(standard.code(), Some(0), "{}", standard.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_failed_prompt_is_sent_again_and_the_other_answers_stand() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let too_long = "Why is the sky blue? ".repeat(30);
    let prompts = write(
        &dir.path().join("q.txt"),
        &format!("Question one?\nQuestion two?\n{too_long}\nQuestion four?\n"),
    );
    let out = dir.path().join("out.jsonl");
    let args = [
        "--prompts",
        s(&prompts),
        "--output",
        s(&out),
        "--rpm",
        "0",
        "--tpm",
        "60",
        "--json",
    ];
    let first = run(bulk(&server, &args)).await;
    assert_eq!(first.code(), Some(1), "{}", first.dump());
    assert_eq!(first.summary()["failed"], 1, "{}", first.dump());
    let error = first.errors().pop().unwrap_or_default();
    assert!(
        error.contains("can never fit") && error.contains("shorten the prompt"),
        "{error}"
    );
    assert_eq!(generate_calls(&server), 3, "the long one never left");

    // Shortened: it is sent, and only it.
    write(
        &prompts,
        "Question one?\nQuestion two?\nWhy is the sky blue?\nQuestion four?\n",
    );
    let second = run(bulk(&server, &args)).await;
    assert_eq!(second.code(), Some(0), "{}", second.dump());
    assert_eq!(second.summary()["requests"], 1, "{}", second.dump());
    assert!(
        second
            .stderr
            .contains("1 prompt(s) edited since they failed (line 3): sent again"),
        "{}",
        second.dump()
    );
    assert!(
        !second.stderr.contains("does not belong") && !second.stderr.contains("--restart"),
        "{}",
        second.dump()
    );
    assert_eq!(generate_calls(&server), 4, "nothing paid twice");
    assert_eq!(answered_ids(&out), ["1", "2", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_or_editing_a_line_says_what_it_changes_and_pays_only_when_asked() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = dir.path().join("q.txt");
    write(&prompts, "Alpha?\nBeta?\nGamma?\nDelta?\n");
    let out = dir.path().join("out.jsonl");
    let args = ["--prompts", s(&prompts), "--output", s(&out), "--rpm", "0"];
    assert!(run(bulk(&server, &args)).await.status.success());
    assert_eq!(generate_calls(&server), 4);

    // Line 2 removed: the lines after it moved up, their answers with them.
    write(&prompts, "Alpha?\nGamma?\nDelta?\n");
    let removed = run(bulk(&server, &args)).await;
    assert_eq!(removed.code(), Some(0), "{}", removed.dump());
    assert!(
        removed
            .stderr
            .contains("line 3 is now line 2, line 4 is now line 3"),
        "{}",
        removed.dump()
    );
    assert!(
        removed.stderr.contains("no longer in the prompts (line 2)"),
        "{}",
        removed.dump()
    );
    assert!(
        removed.all().contains("nothing to send"),
        "{}",
        removed.dump()
    );
    assert_eq!(generate_calls(&server), 4, "nothing sent again");
    // Each line's last answered row is its answer.
    let last_for_line_2 = json_lines(&out)
        .into_iter()
        .rfind(|row| row["id"] == 2 && row["ok"] == true)
        .expect("a row for line 2");
    assert_eq!(last_for_line_2["moved_from"]["line"], 3);

    // An answered line edited: named, and nothing sent without the flag.
    write(&prompts, "Alpha?\nGamma, again?\nDelta?\n");
    let edited = run(bulk(&server, &args)).await;
    assert_refused(&edited, "changed since (line 2)", &server, 4);
    assert!(
        edited.stderr.contains("--resend-changed"),
        "{}",
        edited.dump()
    );
    // With it, that prompt alone is sent again.
    let resend = run(bulk(&server, &args).args(["--resend-changed", "--json"])).await;
    assert_eq!(resend.code(), Some(0), "{}", resend.dump());
    assert_eq!(resend.summary()["requests"], 1, "{}", resend.dump());
    assert!(
        resend.stderr.contains("sent again (--resend-changed)"),
        "{}",
        resend.dump()
    );
    assert_eq!(generate_calls(&server), 5);

    // A JSONL id edited is named by its id.
    let jsonl = write(
        &dir.path().join("q.jsonl"),
        "{\"id\":\"a\",\"prompt\":\"One?\"}\n{\"id\":\"b\",\"prompt\":\"Two?\"}\n",
    );
    let answers = dir.path().join("answers.jsonl");
    let args = [
        "--prompts",
        s(&jsonl),
        "--output",
        s(&answers),
        "--rpm",
        "0",
    ];
    assert!(run(bulk(&server, &args)).await.status.success());
    write(
        &jsonl,
        "{\"id\":\"a\",\"prompt\":\"One?\"}\n{\"id\":\"b\",\"prompt\":\"Two, edited?\"}\n",
    );
    let edited = run(bulk(&server, &args)).await;
    assert_refused(&edited, "changed since (id \"b\" (line 2))", &server, 7);
}

/// An HTTPS emulator, and a file holding its CA.
async fn https_emulator(dir: &Path) -> (Emulator, PathBuf) {
    let server = emulator(Settings {
        tls: true,
        ..Settings::instant()
    })
    .await;
    let ca = write(&dir.join("ca.pem"), server.ca_pem().expect("HTTPS"));
    (server, ca)
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_an_https_server_says_it_speaks_https() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, ca) = https_emulator(dir.path()).await;
    let http = format!("http://{}", server.addr());
    let out = run(bulk(&server, &["-n", "1"])
        .env("GOOGLE_GEMINI_BASE_URL", &http)
        .env("SSL_CERT_FILE", s(&ca)))
    .await;
    assert_refused(&out, "this server speaks HTTPS", &server, 0);
    assert!(
        out.stderr
            .contains(&format!("use https://{}", server.addr())),
        "{}",
        out.dump()
    );
    assert!(
        !out.stderr.contains("invalid HTTP version"),
        "{}",
        out.dump()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_variable_that_is_wrong_is_the_one_named() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, ca) = https_emulator(dir.path()).await;
    let empty = write(&dir.path().join("empty.pem"), "no certificate here\n");
    let cases = [
        (
            vec![("SSL_CERT_DIR", "/nonexistent")],
            "SSL_CERT_DIR=/nonexistent",
            "SSL_CERT_FILE",
        ),
        (
            vec![("SSL_CERT_FILE", s(&ca)), ("SSL_CERT_DIR", "/nonexistent")],
            "SSL_CERT_DIR=/nonexistent",
            "fix or unset SSL_CERT_FILE",
        ),
        (
            vec![("SSL_CERT_FILE", s(&empty))],
            "holds no CA certificate",
            "SSL_CERT_DIR",
        ),
    ];
    for (vars, says, not) in cases {
        let command = vars
            .iter()
            .fold(bulk(&server, &["-n", "1"]), |c, (k, v)| c.env(k, v));
        let out = run(command).await;
        assert_refused(&out, says, &server, 0);
        assert!(!out.stderr.contains(not), "{not}\n{}", out.dump());
        assert_eq!(server.stats().arrivals.len(), 0, "refused at start");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_proxy_is_blamed_and_named_and_a_malformed_one_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, ca) = https_emulator(dir.path()).await;
    let closed = testkit::closed_port();
    let port = closed.rsplit(':').next().expect("a port");
    let proxy = format!("http://ann:Pa55%2Fw0rd@127.0.0.1:{port}");
    let out = run(bulk(&server, &["-n", "1"])
        .env("SSL_CERT_FILE", s(&ca))
        .env("HTTPS_PROXY", &proxy))
    .await;
    assert_refused(
        &out,
        &format!("through the proxy http://***@127.0.0.1:{port} (HTTPS_PROXY)"),
        &server,
        0,
    );
    assert!(
        !out.stderr.contains("Pa55") && !out.stderr.contains("GOOGLE_GEMINI_BASE_URL"),
        "{}",
        out.dump()
    );

    for bad in ["ftp://ann:Pa55word@proxy.corp:21", "http://proxy corp:3128"] {
        let out = run(bulk(&server, &["-n", "1"])
            .env("SSL_CERT_FILE", s(&ca))
            .env("HTTPS_PROXY", bad))
        .await;
        assert_refused(&out, "HTTPS_PROXY=", &server, 0);
        assert!(
            out.stderr.contains("bypass the proxy") && !out.stderr.contains("Pa55"),
            "{}",
            out.dump()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_too_big_for_a_learned_tpm_says_where_the_limit_comes_from() {
    let server = emulator(Settings {
        tpm: Some(100),
        window: Duration::from_secs(1),
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let limits = dir.path().join("limits.json");
    let prompt = "Tell me why the sky is blue, in detail. ".repeat(20);
    let command = || {
        bulk(
            &server,
            &["-n", "1", "--window", "1s", "--json", "--prompt", &prompt],
        )
        .env("GEMINI_LIMITS_FILE", s(&limits))
    };
    // The server's 429 names its TPM: learned in this run.
    let first = run(command()).await;
    assert_eq!(first.code(), Some(1), "{}", first.dump());
    let error = first.errors().pop().unwrap_or_default();
    assert!(
        error.contains("can never fit 100 tokens per window")
            && error.contains("named this limit")
            && error.contains("--tpm cannot raise it"),
        "{}",
        first.dump()
    );
    assert!(!error.contains("raise --tpm"), "{error}");
    let sent = generate_calls(&server);

    // The next run remembers it: where, and how to forget it.
    let second = run(command().args(["--tpm", "1000000"])).await;
    assert_eq!(second.code(), Some(1), "{}", second.dump());
    let error = second.errors().pop().unwrap_or_default();
    assert!(
        error.contains(&format!("remembered in {}", limits.display()))
            && error.contains("--forget-limits"),
        "{}",
        second.dump()
    );
    assert_eq!(generate_calls(&server), sent, "nothing sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limits_file_locked_by_someone_else_never_hangs_the_run() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let limits = dir.path().join("limits.json");
    // Another process's lock, as this run sees it: held for the whole run.
    let lock_path = bulk::state_file::lock_path_of(&limits);
    let held = std::sync::Arc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .expect("opened"),
    );
    let _held = bulk::locks::try_lock(&held)
        .expect("lockable")
        .expect("free");
    let out =
        run(bulk(&server, &["-n", "1", "--rpm", "0", "--json"])
            .env("GEMINI_LIMITS_FILE", s(&limits)))
        .await;
    assert_eq!(out.code(), Some(0), "the answer is kept\n{}", out.dump());
    assert!(
        out.stderr
            .contains("what this run learned is not remembered: cannot lock the limits file")
            && out.stderr.contains("still locked by another process"),
        "{}",
        out.dump()
    );
    assert_eq!(generate_calls(&server), 1);
}
