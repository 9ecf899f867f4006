//! Step 4's command-line options, on top of the ones every step shares.
//!
//! The shared options (`--prompt`, `--model`, `-n`, `--emulator`, `--json`,
//! `--timeout`, `--timeline`) come from [`common::cli::BatchArgs`]; the
//! binary flattens both structs into one command line. What is here is what
//! step 4 adds: the limits to keep under, how to retry, and the two other
//! ways to run (`--no-limit` to see the 429s, `--ramp` to find where they
//! start).
//!
//! The limits default to the model's free tier (the same table the built-in
//! emulator enforces, [`common::quota::free_tier`]), because that is what a
//! newcomer's key gets. Google changes those figures from time to time, and a
//! paid project has others: AI Studio shows a project's real limits, and
//! `--rpm`, `--tpm` and `--rpd` override ours.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use common::quota::{Quota, free_tier};

use crate::{limiter::Limits, runner::RetryPolicy};

/// The options step 4 adds to the shared ones.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Requests per window to stay under (default: the model's free tier; 0 = unlimited).
    #[arg(long)]
    pub rpm: Option<u32>,

    /// Input tokens per window to stay under (default: the model's free tier; 0 = unlimited).
    #[arg(long)]
    pub tpm: Option<u32>,

    /// Requests per day to stay under (default: the model's free tier; 0 = unlimited).
    #[arg(long)]
    pub rpd: Option<u32>,

    /// The window RPM and TPM are counted over: 60s on the real API and the
    /// built-in emulator; shorter (1s, 500ms) for an emulator started with --window.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,

    /// At most K requests in flight at once (default: no cap).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// No limiter: send every request at once, as step 3 does (retries still apply).
    #[arg(long, conflicts_with_all = ["rpm", "tpm", "rpd"])]
    pub no_limit: bool,

    /// Find the breaking point: send 10, 20, 40, ... requests at once, without
    /// the limiter or retries, until the server answers 429.
    #[arg(long, conflicts_with_all = ["no_limit", "rpm", "tpm", "rpd", "concurrency", "prompts", "output"])]
    pub ramp: bool,

    /// The largest batch --ramp sends.
    #[arg(long, value_name = "N", default_value_t = 320, requires = "ramp",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub ramp_max: u32,

    /// Retries per request after its first attempt (0 = never retry; 4 is
    /// 5 attempts, like Google's HttpRetryOptions).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_retries: u32,

    /// The first retry's backoff: a random wait up to this, doubling with each
    /// retry up to 60s (exponential backoff with full jitter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub backoff: Duration,

    /// Read the prompts from FILE, one per line (or JSON lines with a "prompt"
    /// field; blank lines are skipped), instead of sending --prompt N times.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "requests"])]
    pub prompts: Option<PathBuf>,

    /// Write one JSON line per prompt to FILE, in input order: the answer or
    /// the error, token usage, attempts and latency.
    #[arg(long, value_name = "FILE.jsonl")]
    pub output: Option<PathBuf>,
}

/// A model we know no limits for, and no `--rpm` to go by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no free-tier limits are known for model `{model}`: pass your project's limits with --rpm (and --tpm, --rpd; AI Studio shows them), or --no-limit"
)]
pub struct UnknownLimits {
    /// The model asked for.
    pub model: String,
}

impl LimitArgs {
    /// The limits to enforce for `model`: its free tier, with each of
    /// `--rpm`, `--tpm`, `--rpd` overriding its part, counted over `--window`,
    /// and `--concurrency` as the cap on requests in flight.
    ///
    /// With `--no-limit` there are no rate limits at all, but `--concurrency`
    /// still caps requests in flight (the limiter enforces that cap too).
    pub fn limits(&self, model: &str) -> Result<Limits, UnknownLimits> {
        let in_flight = self.concurrency.map(|k| k as usize);
        if self.no_limit {
            return Ok(Limits {
                max_in_flight: in_flight,
                ..Limits::default()
            });
        }
        // An unknown model is fine when the user says what its limits are;
        // then whatever they did not give is unlimited.
        let base = match (free_tier(model), self.rpm) {
            (Some(quota), _) => quota,
            (None, Some(_)) => Quota {
                rpm: 0,
                tpm: 0,
                rpd: 0,
            },
            (None, None) => {
                return Err(UnknownLimits {
                    model: model.to_string(),
                });
            }
        };
        Ok(Limits {
            max_in_flight: in_flight,
            ..Limits::new(
                self.rpm.unwrap_or(base.rpm),
                self.tpm.unwrap_or(base.tpm),
                self.rpd.unwrap_or(base.rpd),
            )
            .with_window(self.window)
        })
    }

    /// How to retry, from `--max-retries` and `--backoff`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base: self.backoff,
            ..RetryPolicy::default()
        }
    }
}

/// Parses a duration such as `60s`, `1s`, `500ms`, `1.5s` or `2m` (a bare
/// number is seconds).
///
/// Zero is refused: a zero window would make every limit meaningless, and a
/// zero backoff turns retries into a hammering loop.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (try 60s, 1s, 500ms or 2m)");
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "`{text}` is out of range: give more than 0 and at most 24h"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        batch: common::cli::BatchArgs,
        #[command(flatten)]
        limit: LimitArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("step4").chain(args.iter().copied()))
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0", "0s", "-1s", "fast", "1 parsec", "", "25h"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn defaults_are_the_free_tier_of_the_model() {
        let cli = parse(&[]).expect("parses");
        let limits = cli.limit.limits(&cli.batch.common.model).expect("known");
        assert_eq!(
            (limits.rpm, limits.tpm, limits.rpd),
            (Some(10), Some(250_000), Some(250))
        );
        assert_eq!(limits.window, Duration::from_secs(60));
        assert_eq!(limits.max_in_flight, None);
        let retry = cli.limit.retry_policy();
        assert_eq!(retry.max_retries, 4);
        assert_eq!(retry.base, Duration::from_secs(1));
        assert_eq!(retry.cap, Duration::from_secs(60));
    }

    #[test]
    fn flags_override_each_limit_and_zero_is_unlimited() {
        let cli = parse(&[
            "--rpm",
            "0",
            "--tpm",
            "1000",
            "--window",
            "1s",
            "--concurrency",
            "3",
        ])
        .expect("parses");
        let limits = cli.limit.limits("gemini-2.5-pro").expect("known");
        assert_eq!(
            (limits.rpm, limits.tpm, limits.rpd),
            (Some(0), Some(1000), Some(100))
        );
        assert_eq!(limits.window, Duration::from_secs(1));
        assert_eq!(limits.max_in_flight, Some(3));
    }

    #[test]
    fn an_unknown_model_needs_rpm() {
        let cli = parse(&[]).expect("parses");
        let error = cli.limit.limits("gemini-9-ultra").expect_err("unknown");
        assert!(error.to_string().contains("--rpm"), "{error}");
        let cli = parse(&["--rpm", "7"]).expect("parses");
        let limits = cli.limit.limits("gemini-9-ultra").expect("given");
        assert_eq!(
            (limits.rpm, limits.tpm, limits.rpd),
            (Some(7), Some(0), Some(0))
        );
    }

    #[test]
    fn no_limit_keeps_only_the_concurrency_cap() {
        let cli = parse(&["--no-limit", "--concurrency", "2"]).expect("parses");
        let limits = cli
            .limit
            .limits("gemini-9-ultra")
            .expect("no limits needed");
        assert_eq!((limits.rpm, limits.tpm, limits.rpd), (None, None, None));
        assert_eq!(limits.max_in_flight, Some(2));
    }

    #[test]
    fn conflicting_flags_are_refused() {
        assert!(parse(&["--no-limit", "--rpm", "5"]).is_err());
        assert!(parse(&["--ramp", "--no-limit"]).is_err());
        assert!(parse(&["--prompts", "p.txt", "-n", "3"]).is_err());
        assert!(parse(&["--prompts", "p.txt", "--prompt", "hi"]).is_err());
        assert!(parse(&["--ramp-max", "40"]).is_err(), "needs --ramp");
        assert!(parse(&["--concurrency", "0"]).is_err());
        // Defaults do not count as given.
        assert!(parse(&["--prompts", "p.txt"]).is_ok());
        assert!(parse(&["--ramp", "--ramp-max", "40"]).is_ok());
    }
}
