//! Step 3 on the real wire: a standalone HTTPS emulator with HTTP/2 and Google's 100 streams
//! per connection, trusted through `SSL_CERT_FILE` as a user would.
//!
//! 1,000 requests must all be in flight at once -- over ten connections, since one carries at
//! most 100 -- and a certificate the step does not trust must be one clear line. Counts come
//! from the emulator; nothing here asserts a time.

use std::process::{Command, Output};
use std::time::Duration;

use emulator::{Emulator, Latency, Settings};

const STEP: &str = env!("CARGO_BIN_EXE_step3-concurrent");

/// Runs step 3 against `server` with `SSL_CERT_FILE` naming `ca_file` and nothing else trusted
/// from the environment.
async fn step3(server: &Emulator, ca_file: &std::path::Path, args: &[&str]) -> Output {
    let mut command = Command::new(STEP);
    for var in [
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
        latency: Latency {
            base: latency,
            ..Latency::ZERO
        },
        ..Settings::instant()
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
