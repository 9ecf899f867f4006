//! The `emulator` program: prints the lines to export, serves, and binds loopback by default.
//! By default it serves HTTPS and writes its CA to a file for `SSL_CERT_FILE`; `--plain`
//! serves plain HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts the binary with `args`; returns it and the `export` lines it printed first.
fn run(args: &[&str], lines: usize) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["--port", "0", "--instant"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let printed = (0..lines)
        .map(|_| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("a line");
            line.trim().to_string()
        })
        .collect();
    (child, printed)
}

/// `GET /v1beta/models` with `client`; the status.
fn list_models(client: reqwest::Client, url: &str) -> Option<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        client
            .get(format!("{url}/v1beta/models"))
            .header("x-goog-api-key", "k")
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    })
}

#[test]
fn serves_https_and_writes_the_ca_to_trust() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_path = dir.path().join("ca.pem");
    let (mut child, lines) = run(&["--ca-file", ca_path.to_str().unwrap()], 2);
    let served = (|| {
        let ca_file = lines[0].strip_prefix("export SSL_CERT_FILE=")?;
        let url = lines[1].strip_prefix("export GOOGLE_GEMINI_BASE_URL=")?;
        let pem = std::fs::read(ca_file).ok()?;
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).ok()?)
            .build()
            .ok()?;
        Some((url.to_string(), list_models(client, url)))
    })();
    let _ = child.kill();
    let _ = child.wait();
    let (url, status) = served.unwrap_or_else(|| panic!("unexpected lines: {lines:?}"));
    assert_eq!(
        lines[0],
        format!("export SSL_CERT_FILE={}", ca_path.display())
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert_eq!(status, Some(200));
}

#[test]
fn plain_serves_http_for_curl() {
    let (mut child, lines) = run(&["--plain"], 1);
    let url = lines[0]
        .strip_prefix("export GOOGLE_GEMINI_BASE_URL=")
        .map(str::to_string);
    let served = url
        .as_ref()
        .and_then(|url| list_models(reqwest::Client::new(), url));
    let _ = child.kill();
    let _ = child.wait();
    let url = url.unwrap_or_else(|| panic!("unexpected first line: {lines:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(served, Some(200));
}

/// Its log, redirected to a file, is plain text: no ANSI colour codes.
#[test]
fn a_redirected_log_has_no_colour_codes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log_path = dir.path().join("emulator.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["--port", "0", "--instant", "--plain"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line");
    let url = line
        .trim()
        .strip_prefix("export GOOGLE_GEMINI_BASE_URL=")
        .map(str::to_string);
    let served = url
        .as_ref()
        .and_then(|url| list_models(reqwest::Client::new(), url));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(served, Some(200), "{line}");
    let text = std::fs::read_to_string(&log_path).expect("the log is readable");
    assert!(text.contains("emulator ready"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in {text:?}");
}
