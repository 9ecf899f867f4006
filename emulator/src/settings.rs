//! Every knob of the emulator in one plain struct.
//!
//! `Settings::default()` is the *faithful* configuration: free-tier quotas taken from the
//! model catalog, a one-minute window, a one-day window for requests per day, and a latency
//! model tuned to the real `gemini-flash-latest` (see the crate docs for the figures).
//! `Settings::instant()` is the opposite end: no latency, no limits, no faults, which is what
//! tests and benchmarks want unless they are testing one of those things.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How long a generate request takes.
///
/// A request costs `base + uniform(0, jitter) + per_output_token * (thoughts + answer tokens)`.
/// The random part comes from a per-request generator seeded from `Settings::seed`, so a run
/// with the same seed and the same request order is reproducible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Fixed time before the model produces anything (queueing, prompt processing).
    pub base: Duration,
    /// Upper bound of the uniform random extra delay added to `base`.
    pub jitter: Duration,
    /// Time per generated token, thoughts included (thinking happens before the first chunk).
    pub per_output_token: Duration,
}

impl Latency {
    /// No delay at all.
    pub const ZERO: Latency = Latency {
        base: Duration::ZERO,
        jitter: Duration::ZERO,
        per_output_token: Duration::ZERO,
    };
}

impl Default for Latency {
    /// Near the real `gemini-flash-latest` on the tutorial prompt: about 4.9 s to 7.9 s, 6.4 s
    /// on average (the course measured 6.4 s per request). See the crate docs for the sums.
    fn default() -> Self {
        Latency {
            base: Duration::from_millis(2_500),
            jitter: Duration::from_millis(2_000),
            per_output_token: Duration::from_micros(3_500),
        }
    }
}

/// Probabilities (0.0 to 1.0) of the injected faults, drawn once per generate request.
///
/// They are exclusive: one uniform draw picks at most one fault, so their sum should stay at or
/// below 1.0 (any excess is simply never reached).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// HTTP 503 `UNAVAILABLE` "The model is overloaded. Please try again later."
    pub fail_503: f64,
    /// HTTP 500 `INTERNAL`.
    pub fail_500: f64,
    /// HTTP 200 with an odd but valid body (no parts, unknown fields, unknown finishReason,
    /// blocked prompt).
    pub odd_bodies: f64,
    /// A stream that breaks after some chunks (an error object written into it, or an abort).
    /// Applies to `streamGenerateContent` only.
    pub broken_stream: f64,
    /// Accept the request and never answer (until the emulator shuts down).
    pub hang: f64,
    /// Drop the connection without sending a response.
    pub close: f64,
}

impl Faults {
    /// True when no fault can ever be injected.
    pub fn is_none(&self) -> bool {
        [
            self.fail_503,
            self.fail_500,
            self.odd_bodies,
            self.broken_stream,
            self.hang,
            self.close,
        ]
        .iter()
        .all(|p| *p <= 0.0)
    }
}

/// Batch Mode and the Files API: how jobs move through their states, and what is kept.
///
/// A job's life is a function of the time since its creation (docs/wire.md#batch-mode): it is
/// `PENDING` for the first fifth of `turnaround`, `RUNNING` for the rest (its requests
/// completing evenly, so `batchStats` moves), then `SUCCEEDED` -- or `FAILED`, drawn with
/// `fail_jobs` -- unless `expiry` comes first, which ends it `EXPIRED` with no results.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// From create to done. The real target is 24 h and usually much less; the default is
    /// seconds, so offline demos finish. Zero finishes a job by the first time it is read.
    pub turnaround: Duration,
    /// A job still not done this long after its creation ends `EXPIRED` (48 h on the real API).
    pub expiry: Duration,
    /// Probability (0.0 to 1.0) that a job ends `FAILED` instead of `SUCCEEDED`, drawn once per
    /// job from the seed.
    pub fail_jobs: f64,
    /// The paid tier (1, 2 or 3) whose enqueued-token limits apply.
    pub tier: u8,
    /// Prompt tokens of unfinished jobs allowed per project and model: `None` = the tier's
    /// published figure for the model, `Some(0)` = unlimited.
    pub enqueued_tokens: Option<u64>,
    /// Unfinished jobs allowed per project (100 on the real API).
    pub max_active_jobs: usize,
    /// Jobs kept in all; past it the oldest finished ones are forgotten.
    pub max_kept_jobs: usize,
    /// Largest file an upload may declare (2 GB on the real API).
    pub max_file_bytes: u64,
    /// Bytes of files kept at once, uploads in progress included (20 GB per project on the
    /// real API). The emulator keeps files in memory: this bounds it.
    pub max_stored_bytes: u64,
    /// Files kept at once.
    pub max_files: usize,
    /// How long a file lives before it is deleted (48 h on the real API).
    pub file_lifetime: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            turnaround: Duration::from_secs(10),
            expiry: Duration::from_secs(48 * 60 * 60),
            fail_jobs: 0.0,
            tier: 1,
            enqueued_tokens: None,
            max_active_jobs: 100,
            max_kept_jobs: 10_000,
            max_file_bytes: 2 * 1024 * 1024 * 1024,
            max_stored_bytes: 20 * 1024 * 1024 * 1024,
            max_files: 10_000,
            file_lifetime: Duration::from_secs(48 * 60 * 60),
        }
    }
}

/// The Flex tier of synchronous requests (`serviceTier: "flex"`): slower, and sometimes shed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flex {
    /// Extra time before a Flex request starts, on top of the latency model (the real target
    /// is 1 to 15 minutes; the default is shorter so demos finish).
    pub latency: Duration,
    /// Probability (0.0 to 1.0) that a Flex request is shed: a 429 after the extra wait.
    pub shed: f64,
    /// Shed every Nth Flex request (0 = never): a deterministic pattern for tests.
    pub shed_every: u32,
}

impl Flex {
    /// Flex with the default extra latency (30 s) and no shedding.
    pub fn faithful() -> Flex {
        Flex {
            latency: Duration::from_secs(30),
            ..Flex::default()
        }
    }
}

/// An odd 429 the real API sends now and then, served on demand so that
/// clients can be tested against it (`--quota-quirk`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaQuirk {
    /// Every generate request is refused with `quotaValue: "0"`: the model is
    /// not available on this project's tier.
    Zero,
    /// A per-day 429 carries a short `retryDelay` (at most half a window),
    /// as the real API's sometimes do: the delay says nothing about the day.
    ShortDayDelay,
    /// `quotaDimensions` is a string instead of an object.
    DimensionsString,
    /// The violations have no `quotaValue`.
    NoValue,
}

impl std::str::FromStr for QuotaQuirk {
    type Err = String;

    fn from_str(text: &str) -> Result<QuotaQuirk, String> {
        match text {
            "zero" => Ok(QuotaQuirk::Zero),
            "short-day-delay" => Ok(QuotaQuirk::ShortDayDelay),
            "dimensions-string" => Ok(QuotaQuirk::DimensionsString),
            "no-value" => Ok(QuotaQuirk::NoValue),
            _ => Err(format!(
                "unknown quota quirk `{text}`: choose zero, short-day-delay, dimensions-string or no-value"
            )),
        }
    }
}

/// Everything the emulator can be told. Cheap to clone; passed by value to [`crate::start`].
#[derive(Clone)]
pub struct Settings {
    /// Where to listen. Defaults to `127.0.0.1:0` (loopback, ephemeral port): the emulator is
    /// never reachable from the network unless asked.
    pub addr: SocketAddr,
    /// The one API key to accept. `None` accepts any non-empty key, because the official SDKs
    /// refuse to run without one even when pointed at a local server.
    pub key: Option<String>,
    /// Requests per minute (per `window`) per key and model. `None` = the model's free tier,
    /// `Some(0)` = unlimited.
    pub rpm: Option<u32>,
    /// Input (prompt) tokens per `window` per key and model. `None` = free tier, `Some(0)` = unlimited.
    pub tpm: Option<u32>,
    /// Requests per `day` per key and model. `None` = free tier, `Some(0)` = unlimited.
    pub rpd: Option<u32>,
    /// Length of the sliding window for RPM and TPM (60 s on the real API).
    pub window: Duration,
    /// Length of the sliding window for RPD (24 h; the real API resets at midnight Pacific,
    /// a sliding day is stricter and simpler to reason about).
    pub day: Duration,
    /// The latency model.
    pub latency: Latency,
    /// Fault injection probabilities.
    pub faults: Faults,
    /// Seed for every random choice (latency jitter, faults, thought lengths, response ids).
    pub seed: u64,
    /// Largest request body accepted, in bytes. Larger bodies are refused without being read.
    pub max_body_bytes: usize,
    /// Serve every 429 in one of the odd shapes the real API sometimes uses.
    pub quota_quirk: Option<QuotaQuirk>,
    /// Serve HTTPS (a certificate made at start, ALPN `h2` and `http/1.1`) like the real API,
    /// instead of plain HTTP. Off in `Default` so that a test's own HTTP client needs no CA;
    /// the binary and the steps' built-in emulator turn it on.
    pub tls: bool,
    /// Most concurrent HTTP/2 streams on one connection (SETTINGS_MAX_CONCURRENT_STREAMS):
    /// Google's front end allows 100. A stream opened past it is refused (`REFUSED_STREAM`).
    pub max_streams: u32,
    /// How long the server waits on a client that owes it something: a connection with no
    /// request in flight and no byte moving, a TLS handshake, request headers, or the next
    /// piece of a request body. Past it the connection is closed, so half-open connections
    /// cannot pile up.
    pub read_timeout: Duration,
    /// Batch Mode and the Files API.
    pub batch: Batch,
    /// The Flex tier.
    pub flex: Flex,
}

impl Settings {
    /// No latency, no limits, no faults: for tests and benchmarks. Batch jobs finish by the
    /// first time they are read, and Flex requests wait no longer than others.
    pub fn instant() -> Settings {
        let defaults = Settings::default();
        Settings {
            rpm: Some(0),
            tpm: Some(0),
            rpd: Some(0),
            latency: Latency::ZERO,
            faults: Faults::default(),
            batch: Batch {
                turnaround: Duration::ZERO,
                ..defaults.batch.clone()
            },
            flex: Flex::default(),
            ..defaults
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            key: None,
            rpm: None,
            tpm: None,
            rpd: None,
            window: Duration::from_secs(60),
            day: Duration::from_secs(24 * 60 * 60),
            latency: Latency::default(),
            faults: Faults::default(),
            seed: 0x6765_6d69_6e69,
            // The documented Gemini API request size limit is 20 MB.
            max_body_bytes: 20 * 1024 * 1024,
            quota_quirk: None,
            tls: false,
            max_streams: 100,
            read_timeout: Duration::from_secs(30),
            batch: Batch::default(),
            flex: Flex::faithful(),
        }
    }
}

impl fmt::Debug for Settings {
    /// Like a derived Debug, except that the key is never shown: it is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("rpd", &self.rpd)
            .field("window", &self.window)
            .field("day", &self.day)
            .field("latency", &self.latency)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("quota_quirk", &self.quota_quirk)
            .field("tls", &self.tls)
            .field("max_streams", &self.max_streams)
            .field("read_timeout", &self.read_timeout)
            .field("batch", &self.batch)
            .field("flex", &self.flex)
            .finish()
    }
}

/// A duration string that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {0:?}: expected a number with a unit, like 500ms, 1s, 60s, 2m or 24h")]
pub struct ParseDurationError(pub String);

/// Parses `500ms`, `1s`, `1.5s`, `2m`, `24h` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    let err = || ParseDurationError(text.to_string());
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| err())?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn debug_redacts_the_key() {
        let settings = Settings {
            key: Some("sekrit-key-123".into()),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("sekrit"));
        assert!(shown.contains("<redacted>"));
    }
}
