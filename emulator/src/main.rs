//! The emulator as a program: `cargo run -p emulator -- --port 8080`.
//!
//! It serves HTTPS with HTTP/2, like the real API, on a certificate made at start; the CA that
//! signed it is written to a file (`--ca-file`) so clients can trust it. `--plain` serves plain
//! HTTP instead, for curl one-liners and tools without TLS. Prints the lines to export on
//! stdout (so `eval "$(emulator ...)"` works), logs to stderr (`RUST_LOG=debug` shows every
//! request), and shuts down gracefully on Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use emulator::settings::parse_duration;
use emulator::{Batch, Faults, Flex, Latency, Settings};

/// A local Gemini API server with real-shaped bodies, quotas, latency and faults.
#[derive(Debug, Parser)]
#[command(name = "emulator", version)]
struct Args {
    /// Address to bind (loopback by default: never exposed unless asked).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests per window per key and model (default: the model's free tier; 0 = unlimited).
    #[arg(long)]
    rpm: Option<u32>,
    /// Input tokens per window per key and model (default: free tier; 0 = unlimited).
    #[arg(long)]
    tpm: Option<u32>,
    /// Requests per day per key and model (default: free tier; 0 = unlimited).
    #[arg(long)]
    rpd: Option<u32>,
    /// RPM/TPM window, e.g. 60s, 1s, 500ms.
    #[arg(long, default_value = "60s", value_parser = duration_option)]
    window: Duration,
    /// RPD window, e.g. 24h.
    #[arg(long, default_value = "24h", value_parser = duration_option)]
    day: Duration,
    /// Base latency of a generate request, in milliseconds.
    #[arg(long, default_value_t = 2500)]
    latency_ms: u64,
    /// Upper bound of the uniform random extra latency, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    jitter_ms: u64,
    /// Time per output token (thoughts included), in milliseconds (fractions allowed).
    #[arg(long, default_value_t = 3.5)]
    per_token_ms: f64,
    /// Probability of a 503 UNAVAILABLE (model overloaded).
    #[arg(long, default_value_t = 0.0)]
    fail_503: f64,
    /// Probability of a 500 INTERNAL.
    #[arg(long, default_value_t = 0.0)]
    fail_500: f64,
    /// Probability of an odd but valid body.
    #[arg(long, default_value_t = 0.0)]
    odd: f64,
    /// Probability that a stream breaks midway.
    #[arg(long, default_value_t = 0.0)]
    broken_stream: f64,
    /// Probability that a request is never answered.
    #[arg(long, default_value_t = 0.0)]
    hang: f64,
    /// Probability that the connection is dropped without a response.
    #[arg(long, default_value_t = 0.0)]
    close: f64,
    /// Seed for every random choice.
    #[arg(long, default_value_t = Settings::default().seed)]
    seed: u64,
    /// Accept only this API key (default: any non-empty key).
    #[arg(long, env = "EMULATOR_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = Settings::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Shortcut: no latency and no limits (explicit --rpm/--tpm/--rpd and fault flags still apply).
    #[arg(long)]
    instant: bool,
    /// Serve every 429 in an odd shape the real API sometimes sends: zero
    /// (quotaValue "0"), short-day-delay, dimensions-string or no-value.
    #[arg(long, value_name = "QUIRK")]
    quota_quirk: Option<emulator::settings::QuotaQuirk>,
    /// Serve plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge) instead of HTTPS.
    #[arg(long)]
    plain: bool,
    /// Where to write the CA certificate (PEM) that clients must trust (HTTPS only).
    /// Default: gemini-emulator-ca-PORT.pem in the system's temporary directory.
    #[arg(long, conflicts_with = "plain")]
    ca_file: Option<PathBuf>,
    /// Most concurrent HTTP/2 streams per connection (Google's front end allows 100).
    #[arg(long, default_value_t = Settings::default().max_streams, value_parser = clap::value_parser!(u32).range(1..))]
    max_streams: u32,
    /// Close a connection that sends nothing for this long (handshake, headers, body, idle).
    #[arg(long, default_value = "30s", value_parser = duration_option)]
    read_timeout: Duration,
    /// Batch Mode: time from a job's creation to its end (PENDING for the first fifth, then
    /// RUNNING as its requests complete). Default 10s (0 with --instant); the real target is 24h.
    #[arg(long, value_parser = duration_option, help_heading = "Batch Mode and files")]
    batch_turnaround: Option<Duration>,
    /// Batch Mode: a job not done this long after creation ends EXPIRED, with no results.
    #[arg(long, default_value = "48h", value_parser = duration_option, help_heading = "Batch Mode and files")]
    batch_expiry: Duration,
    /// Batch Mode: probability that a job ends FAILED instead of SUCCEEDED (drawn per job).
    #[arg(long, default_value_t = 0.0, value_parser = probability, help_heading = "Batch Mode and files")]
    batch_fail: f64,
    /// Batch Mode: the paid tier (1, 2 or 3) whose enqueued-token limits apply.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3), help_heading = "Batch Mode and files")]
    batch_tier: u8,
    /// Batch Mode: prompt tokens of unfinished jobs allowed per project and model (default: the
    /// tier's figure for the model; 0 = unlimited). Over it, a create gets a 429.
    #[arg(long, help_heading = "Batch Mode and files")]
    batch_enqueued_tokens: Option<u64>,
    /// Batch Mode: unfinished jobs allowed per project; over it, a create gets a 429.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Batch Mode and files")]
    batch_max_jobs: u32,
    /// Files API: largest file an upload may declare, in bytes (2 GiB).
    #[arg(long, default_value_t = Batch::default().max_file_bytes, help_heading = "Batch Mode and files")]
    max_file_bytes: u64,
    /// Files API: bytes of files kept at once, in memory (uploads in progress included).
    #[arg(long, default_value_t = Batch::default().max_stored_bytes, help_heading = "Batch Mode and files")]
    max_stored_bytes: u64,
    /// Files API: how long a file lives before it is deleted.
    #[arg(long, default_value = "48h", value_parser = duration_option, help_heading = "Batch Mode and files")]
    file_lifetime: Duration,
    /// Flex tier: extra wait before a Flex request (serviceTier "flex") starts, in
    /// milliseconds. Default 30000 (0 with --instant); the real target is 1 to 15 minutes.
    #[arg(long, help_heading = "Flex tier")]
    flex_latency_ms: Option<u64>,
    /// Flex tier: probability that a Flex request is shed (a 429 after the wait).
    #[arg(long, default_value_t = 0.0, value_parser = probability, help_heading = "Flex tier")]
    flex_shed: f64,
    /// Flex tier: shed every Nth Flex request (0 = never), a reproducible pattern for tests.
    #[arg(long, default_value_t = 0, help_heading = "Flex tier")]
    flex_shed_every: u32,
}

impl Args {
    fn settings(&self) -> anyhow::Result<Settings> {
        // At most a minute a token: more is no model, and `per_token × tokens`
        // must stay far from the largest Duration.
        if !(0.0..=60_000.0).contains(&self.per_token_ms) {
            anyhow::bail!("--per-token-ms must be between 0 and 60000");
        }
        let per_token = Duration::try_from_secs_f64(self.per_token_ms / 1000.0)
            .context("--per-token-ms must be a non-negative number")?;
        if self.flex_latency_ms.is_some_and(|ms| ms > 366 * 86_400_000) {
            anyhow::bail!("--flex-latency-ms must be at most a year (31622400000)");
        }
        let defaults = Settings::default();
        let mut settings = Settings {
            addr: SocketAddr::new(self.host, self.port),
            key: self.key.clone(),
            rpm: self.rpm,
            tpm: self.tpm,
            rpd: self.rpd,
            window: self.window,
            day: self.day,
            latency: Latency {
                base: Duration::from_millis(self.latency_ms),
                jitter: Duration::from_millis(self.jitter_ms),
                per_output_token: per_token,
            },
            faults: Faults {
                fail_503: self.fail_503,
                fail_500: self.fail_500,
                odd_bodies: self.odd,
                broken_stream: self.broken_stream,
                hang: self.hang,
                close: self.close,
            },
            seed: self.seed,
            max_body_bytes: self.max_body_bytes,
            quota_quirk: self.quota_quirk,
            tls: !self.plain,
            max_streams: self.max_streams,
            read_timeout: self.read_timeout,
            batch: Batch {
                turnaround: self.batch_turnaround.unwrap_or(defaults.batch.turnaround),
                expiry: self.batch_expiry,
                fail_jobs: self.batch_fail,
                tier: self.batch_tier,
                enqueued_tokens: self.batch_enqueued_tokens,
                max_active_jobs: self.batch_max_jobs as usize,
                max_file_bytes: self.max_file_bytes,
                max_stored_bytes: self.max_stored_bytes,
                file_lifetime: self.file_lifetime,
                ..defaults.batch.clone()
            },
            flex: Flex {
                latency: self
                    .flex_latency_ms
                    .map_or(defaults.flex.latency, Duration::from_millis),
                shed: self.flex_shed,
                shed_every: self.flex_shed_every,
            },
        };
        if self.read_timeout.is_zero() {
            anyhow::bail!("--read-timeout must be more than 0 (e.g. 30s)");
        }
        if self.instant {
            let instant = Settings::instant();
            settings.latency = instant.latency;
            settings.rpm = self.rpm.or(instant.rpm);
            settings.tpm = self.tpm.or(instant.tpm);
            settings.rpd = self.rpd.or(instant.rpd);
            settings.batch.turnaround = self.batch_turnaround.unwrap_or(instant.batch.turnaround);
            settings.flex.latency = self
                .flex_latency_ms
                .map_or(instant.flex.latency, Duration::from_millis);
        }
        Ok(settings)
    }
}

/// `gemini-emulator-ca-PORT.pem` in the temporary directory: a predictable place, one per port
/// so two emulators do not overwrite each other's CA; each start rewrites it (the certificate
/// is new every time, and holds no secret).
fn default_ca_file(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("gemini-emulator-ca-{port}.pem"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Colours only on a terminal: redirected to a file, escape codes are noise.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let settings = args.settings()?;
    tracing::info!(?settings, "starting");
    let emulator = emulator::start(settings)
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    if let Some(pem) = emulator.ca_pem() {
        let path = args
            .ca_file
            .clone()
            .unwrap_or_else(|| default_ca_file(emulator.addr().port()));
        std::fs::write(&path, pem).with_context(|| {
            format!(
                "cannot write the CA certificate to {} (choose another path with --ca-file)",
                path.display()
            )
        })?;
        println!("export SSL_CERT_FILE={}", path.display());
    }
    // Logged before the URL is printed: whoever reads the URL and calls at once may stop the
    // process right after its answer, and the log must already say it was ready.
    tracing::info!(url = %emulator.base_url(), "emulator ready; Ctrl-C to stop");
    println!("export GOOGLE_GEMINI_BASE_URL={}", emulator.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

/// A duration option: the emulator's grammar (`500ms`, `60s`, `24h`, ...),
/// at most a year. A window that long already means "never frees"; a longer
/// one would only overflow the clock when added to it.
fn duration_option(text: &str) -> Result<Duration, String> {
    const A_YEAR: Duration = Duration::from_secs(366 * 24 * 60 * 60);
    let duration = parse_duration(text).map_err(|e| e.to_string())?;
    if duration > A_YEAR {
        return Err(format!("`{text}` is longer than a year: give at most 366d"));
    }
    Ok(duration)
}

/// A probability option: a number from 0 to 1.
fn probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number: give a probability from 0 to 1"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("`{text}` is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_options_stop_at_a_year() {
        assert_eq!(duration_option("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            duration_option("366d"),
            Ok(Duration::from_secs(366 * 86_400))
        );
        let error = duration_option("10000000000000000000").expect_err("refused");
        assert!(error.contains("longer than a year"), "{error}");
    }

    #[test]
    fn batch_and_flex_options_reach_the_settings() {
        let args = Args::parse_from([
            "emulator",
            "--batch-turnaround",
            "2s",
            "--batch-fail",
            "0.5",
            "--batch-enqueued-tokens",
            "1000",
            "--flex-latency-ms",
            "250",
            "--flex-shed-every",
            "3",
        ]);
        let settings = args.settings().expect("valid");
        assert_eq!(settings.batch.turnaround, Duration::from_secs(2));
        assert_eq!(settings.batch.fail_jobs, 0.5);
        assert_eq!(settings.batch.enqueued_tokens, Some(1000));
        assert_eq!(settings.flex.latency, Duration::from_millis(250));
        assert_eq!(settings.flex.shed_every, 3);
        let instant = Args::parse_from(["emulator", "--instant"])
            .settings()
            .unwrap();
        assert_eq!(instant.batch.turnaround, Duration::ZERO);
        assert_eq!(instant.flex.latency, Duration::ZERO);
        let faithful = Args::parse_from(["emulator"]).settings().unwrap();
        assert_eq!(faithful.batch, Batch::default());
        assert_eq!(faithful.flex, Flex::faithful());
        assert!(Args::try_parse_from(["emulator", "--flex-shed", "1.5"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--batch-tier", "4"]).is_err());
    }
}
