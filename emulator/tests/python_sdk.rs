//! The emulator against Google's own Python SDK (`google-genai`).
//!
//! Our Rust client and the emulator were written from the same notes (docs/wire.md), so testing one
//! against the other can hide a shared mistake. Google's SDK is an independent judge: this test
//! starts two emulators in-process and runs `conformance/sdk_conformance.py`, which makes the
//! tutorial's calls (unary, async batch, stream, countTokens, models.list/get), drives Batch
//! Mode (inline and file jobs, list, cancel, delete), the Files API (upload, download) and the
//! Flex tier, and provokes the 400/404/429 errors, checking that the SDK parses every answer. It runs twice: over HTTPS
//! with HTTP/2, as the real API is served (the SDK trusting the emulator's CA through
//! `SSL_CERT_FILE`, as a user of the standalone emulator does), and over plain HTTP.
//!
//! It needs a Python with `google-genai`, named by `GEMINI_CONFORMANCE_PYTHON`. Run `.ci/setup`
//! once and export the line it prints. Without it the test is skipped with a note, except under
//! CI (env `CI` set), where a skip would hide a regression, so it fails.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use emulator::{Batch, Flex, Settings};

/// The key the main emulator insists on, so the script can also test a wrong one. Not a secret.
const KEY: &str = "conformance-test-key";

/// The limited emulator's requests per window: small, so the script reaches the 429 quickly.
const LIMITED_RPM: u32 = 2;

/// The main emulator sheds every this many Flex requests.
const FLEX_SHED_EVERY: u32 = 2;

/// The limited emulator's enqueued batch tokens per model: a job over it gets a 429.
const LIMITED_ENQUEUED_TOKENS: u64 = 50;

/// A backstop for a hung script or server; a healthy run takes a few seconds.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_sdk_accepts_the_emulator_over_https() {
    conformance(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_genai_sdk_accepts_the_emulator_over_plain_http() {
    conformance(false).await;
}

/// Runs the script against two emulators, over HTTPS (`tls`) or plain HTTP.
async fn conformance(tls: bool) {
    let Some(python) = conformance_python() else {
        return;
    };

    // Batch jobs finish in a fraction of a second, so the script's polls end quickly.
    let open = emulator::start(Settings {
        key: Some(KEY.to_string()),
        tls,
        batch: Batch {
            turnaround: Duration::from_millis(200),
            ..Batch::default()
        },
        flex: Flex {
            shed_every: FLEX_SHED_EVERY,
            ..Flex::default()
        },
        ..Settings::instant()
    })
    .await
    .expect("start the main emulator");
    // A window far longer than the test, so the limit cannot reset half-way through it; batch
    // jobs that stay unfinished (to be cancelled) and a small enqueued-token allowance.
    let limited = emulator::start(Settings {
        tls,
        rpm: Some(LIMITED_RPM),
        window: Duration::from_secs(3600),
        batch: Batch {
            turnaround: Duration::from_secs(3600),
            enqueued_tokens: Some(LIMITED_ENQUEUED_TOKENS),
            ..Batch::default()
        },
        ..Settings::instant()
    })
    .await
    .expect("start the rate-limited emulator");

    let mut command = Command::new(&python);
    command
        .arg(script_path())
        .env("GOOGLE_GEMINI_BASE_URL", open.base_url())
        .env("GOOGLE_API_KEY", KEY)
        .env("CONFORMANCE_LIMITED_BASE_URL", limited.base_url())
        .env("CONFORMANCE_LIMITED_RPM", LIMITED_RPM.to_string())
        .env("CONFORMANCE_FLEX_SHED_EVERY", FLEX_SHED_EVERY.to_string())
        .env(
            "CONFORMANCE_LIMITED_ENQUEUED_TOKENS",
            LIMITED_ENQUEUED_TOKENS.to_string(),
        )
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    // Each emulator made its own CA; the SDK reads SSL_CERT_FILE (and then ignores certifi).
    let ca_file = tempfile::NamedTempFile::new().expect("a temporary file");
    let pems: Vec<&str> = [&open, &limited]
        .iter()
        .filter_map(|emulator| emulator.ca_pem())
        .collect();
    std::fs::write(ca_file.path(), pems.concat()).expect("write the CA file");
    if tls {
        command.env("SSL_CERT_FILE", ca_file.path());
    } else {
        command.env_remove("SSL_CERT_FILE");
    }
    command.env_remove("SSL_CERT_DIR");
    // Settings from the developer's shell would change what the SDK does (another key, another
    // API version, Vertex AI instead of the Gemini API); the script must see only ours.
    for var in [
        "GEMINI_API_KEY",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ] {
        command.env_remove(var);
    }

    let run = run_script(command).await;
    let output = format!(
        "--- {python} conformance/sdk_conformance.py: {}\n--- stdout\n{}--- stderr\n{}",
        run.outcome, run.stdout, run.stderr
    );
    assert!(run.success, "the SDK conformance script failed\n{output}");
    // Shown with `--nocapture`; a useful record of what was checked.
    println!("{output}");

    open.shutdown().await;
    limited.shutdown().await;
}

/// The Python to run, or `None` when the test should be skipped (never under CI).
fn conformance_python() -> Option<String> {
    match std::env::var("GEMINI_CONFORMANCE_PYTHON") {
        Ok(python) if !python.trim().is_empty() => Some(python),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but GEMINI_CONFORMANCE_PYTHON is not: run .ci/setup and export it")
        }
        _ => {
            // Written to the real stderr, not with `eprintln!`, which the test harness captures
            // and would only show for a failing test.
            let _ = writeln!(
                std::io::stderr(),
                "note: python_sdk conformance test skipped; run `.ci/setup` and export the \
                 GEMINI_CONFORMANCE_PYTHON line it prints to enable it"
            );
            None
        }
    }
}

/// `conformance/sdk_conformance.py` at the workspace root.
fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("conformance")
        .join("sdk_conformance.py")
}

/// What the script did.
struct ScriptRun {
    success: bool,
    outcome: String,
    stdout: String,
    stderr: String,
}

/// Runs the script to completion (or kills it after [`SCRIPT_TIMEOUT`]).
///
/// The child is waited on by polling with tokio's sleep rather than a blocking `wait`, so the
/// emulators, which live on this test's runtime, keep serving it meanwhile.
async fn run_script(mut command: Command) -> ScriptRun {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {:?}: {err}", command.get_program()));
    // Drain both pipes on threads so a chatty child can never block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (success, outcome) = wait_with_deadline(&mut child).await;
    ScriptRun {
        success,
        outcome,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Waits for `child`, killing it at the deadline; returns (success, a description).
async fn wait_with_deadline(child: &mut Child) -> (bool, String) {
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status.success(), status.to_string()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return (false, format!("killed after {SCRIPT_TIMEOUT:?}"));
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => return (false, format!("wait failed: {err}")),
        }
    }
}

/// Reads a pipe to the end on its own thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}
