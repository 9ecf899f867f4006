//! Step 3 on the real wire: a standalone HTTPS emulator with HTTP/2 and Google's 100 streams
//! per connection, trusted through `SSL_CERT_FILE` as a user would.
//!
//! 1,000 requests must all be in flight at once -- over ten connections, since one carries at
//! most 100 -- a certificate the step does not trust must be one clear line, and `HTTPS_PROXY`
//! must be honoured. Counts come from the emulator; nothing here asserts a time.

use std::process::{Command, Output};
use std::time::Duration;

use emulator::{Emulator, Settings};

const STEP: &str = env!("CARGO_BIN_EXE_step3-concurrent");

/// Runs step 3 against `server` with `SSL_CERT_FILE` naming `ca_file` and nothing else trusted
/// from the environment.
async fn step3(server: &Emulator, ca_file: &std::path::Path, args: &[&str]) -> Output {
    step3_with(server, ca_file, args, &[]).await
}

/// Like [`step3`], with more environment variables.
async fn step3_with(
    server: &Emulator,
    ca_file: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut command = Command::new(STEP);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENAI_API_VERSION",
        "RUST_LOG",
        "SSL_CERT_DIR",
    ] {
        command.env_remove(var);
    }
    command
        .env("GOOGLE_GEMINI_BASE_URL", server.base_url())
        .env("GOOGLE_API_KEY", "test-key")
        .env("SSL_CERT_FILE", ca_file)
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .args(args);
    tokio::task::spawn_blocking(move || command.output().expect("step 3 runs"))
        .await
        .expect("joined")
}

/// A PEM file in the temporary directory, named after the server's port, removed on drop.
struct CaFile(std::path::PathBuf);

impl CaFile {
    fn new(server: &Emulator, pem: &str) -> CaFile {
        let path =
            std::env::temp_dir().join(format!("step3-wire-test-ca-{}.pem", server.addr().port()));
        std::fs::write(&path, pem).expect("write the CA file");
        CaFile(path)
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn https_emulator(latency: Duration) -> Emulator {
    emulator::start(Settings {
        tls: true,
        ..testkit::slow(latency)
    })
    .await
    .expect("emulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_are_all_in_flight_over_ten_connections() {
    // Long enough that all 1,000 overlap even on a slow, shared machine.
    let server = https_emulator(Duration::from_secs(3)).await;
    let ca_file = CaFile::new(&server, server.ca_pem().expect("HTTPS"));

    let out = step3(&server, &ca_file.0, &["-n", "1000", "--json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a summary")).expect("JSON");
    assert_eq!(summary["succeeded"], 1000, "{summary}");

    let stats = server.stats();
    assert_eq!(stats.max_in_flight, 1000, "all 1,000 in flight at once");
    assert!(stats.max_streams_per_connection <= 100, "{stats:?}");
    // One connection for the model check, then one more each time 100 streams are taken.
    assert_eq!(stats.connections, 10, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_one_line_that_names_ssl_cert_file() {
    let server = https_emulator(Duration::ZERO).await;
    // A CA file that does not hold this server's CA (another emulator's).
    let other = https_emulator(Duration::ZERO).await;
    let ca_file = CaFile::new(&server, other.ca_pem().expect("HTTPS"));

    let out = step3(&server, &ca_file.0, &["-n", "3"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("SSL_CERT_FILE="), "{stderr}");
    assert!(out.stdout.is_empty(), "no request was answered");
    assert_eq!(server.stats().arrivals.len(), 0, "nothing got through");
}

/// A minimal HTTP `CONNECT` proxy on 127.0.0.1: it records each tunnel's request line, then
/// copies bytes both ways (it sees only TLS, never the key).
async fn connect_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && client.read_exact(&mut byte).await.is_ok() {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let line = head.lines().next().unwrap_or_default().to_string();
                log.lock().unwrap().push(line.clone());
                let Some(target) = line
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_is_honoured_as_a_tunnel() {
    let server = https_emulator(Duration::from_millis(200)).await;
    let ca_file = CaFile::new(&server, server.ca_pem().expect("HTTPS"));
    let (proxy, seen) = connect_proxy().await;

    let out = step3_with(
        &server,
        &ca_file.0,
        &["-n", "5", "--json"],
        &[("HTTPS_PROXY", &proxy)],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tunnels = seen.lock().unwrap().clone();
    assert!(!tunnels.is_empty(), "nothing went through the proxy");
    let expected = format!("CONNECT {} HTTP/1.1", server.addr());
    assert!(tunnels.iter().all(|line| *line == expected), "{tunnels:?}");
    assert_eq!(server.stats().generates().len(), 5);
}
