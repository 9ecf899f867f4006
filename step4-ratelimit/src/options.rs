//! Step 4's own command-line options: the limits to keep, how to retry, and
//! the two experiments (`--no-limit`, `--ramp`).
//!
//! The limits default to the model's free tier (the emulator's catalogue,
//! [`common::quota`]); `--rpm`, `--tpm` and `--rpd` override each, and 0
//! means no limit. Everything else a step needs (`-n`, `--prompt`, `--model`,
//! `--json`, `--timeline`, ...) is the shared [`common::cli::BatchArgs`].

use std::time::Duration;

use clap::Args;
use common::{Error, cli::parse_duration, quota, run::Pacing};

use crate::{limiter::Limits, pace, retry::RetryPolicy};

/// Step 4's options, flattened into its command line.
#[derive(Args, Debug, Clone)]
pub struct Options {
    /// Requests per window to stay under (default: the model's free tier;
    /// 0 = unlimited).
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,

    /// Input tokens per window to stay under (default: the model's free
    /// tier; 0 = unlimited).
    #[arg(long, value_name = "N")]
    pub tpm: Option<u32>,

    /// Requests per day to stay under (default: the model's free tier;
    /// 0 = unlimited).
    #[arg(long, value_name = "N")]
    pub rpd: Option<u32>,

    /// The window --rpm and --tpm are counted over: 60s on the real API. The
    /// built-in emulator counts over the same window, so a short one (5s)
    /// turns a demo of minutes into seconds.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,

    /// At most this many requests in flight at once; a request waiting to
    /// retry keeps its place (default: no cap).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// Retries per request after a 429 or a server error (0 = never retry).
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::default().max_retries)]
    pub max_retries: u32,

    /// Send without the limiter, every request at once as in step 3 (a 429
    /// still pauses until its retryDelay, and is retried): see the 429s.
    #[arg(long, conflicts_with_all = ["rpm", "tpm", "rpd"])]
    pub no_limit: bool,

    /// Find the breaking point instead: send 10, 20, 40, ... requests at once,
    /// without the limiter, until the server answers 429.
    #[arg(long, conflicts_with_all = ["no_limit", "concurrency", "max_retries"])]
    pub ramp: bool,
}

impl Options {
    /// The limits to keep with `model`: the flags, else its free tier; with
    /// `--no-limit`, none but the cap on requests in flight.
    ///
    /// A model with no known free tier needs `--rpm` (its `--tpm` and
    /// `--rpd` are then unlimited unless given), rather than a guess.
    pub fn limits(&self, model: &str) -> Result<Limits, Error> {
        let limits = Limits::default()
            .with_window(self.window)
            .with_max_in_flight(self.concurrency.unwrap_or(0) as usize);
        if self.no_limit {
            return Ok(limits);
        }
        let free = quota::free_tier(model);
        let Some(rpm) = self.rpm.or(free.map(|q| q.rpm)) else {
            return Err(Error::Config(format!(
                "no free-tier limits are known for the model {model}: give them with --rpm (and --tpm, --rpd; 0 = unlimited), or use --no-limit"
            )));
        };
        let tpm = self.tpm.or(free.map(|q| q.tpm)).unwrap_or(0);
        let rpd = self.rpd.or(free.map(|q| q.rpd)).unwrap_or(0);
        Ok(limits.with_rpm(rpm).with_tpm(tpm).with_rpd(rpd))
    }

    /// The retry policy: Google's SDK's backoff, `--max-retries` retries.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            ..RetryPolicy::default()
        }
    }

    /// How the batch is paced, for [`common::run::Batch::start_paced`]: the
    /// window (the built-in emulator's too), and the summary's notes. (Taken
    /// before connecting, where a model unknown to the table is no error yet:
    /// the server has its say first, [`Options::limits`] after it.)
    pub fn pacing(&self, model: &str) -> Pacing {
        let (limits, limited) = (self.limits(model).ok(), !self.no_limit);
        let notes = move |turns: &_| match &limits {
            Some(limits) => pace::notes(limits, limited, turns),
            None => Vec::new(),
        };
        Pacing {
            window: self.window,
            limited,
            notes: Box::new(notes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        let args = std::iter::once("step4").chain(args.iter().copied());
        Cli::try_parse_from(args).map(|cli| cli.options)
    }

    #[test]
    fn the_limits_default_to_the_free_tier_of_the_model() {
        let limits = parse(&[]).unwrap().limits("gemini-flash-latest").unwrap();
        let free = quota::free_tier("gemini-flash-latest").unwrap();
        assert_eq!(limits.rpm, Some(free.rpm));
        assert_eq!(limits.tpm, Some(free.tpm));
        assert_eq!(limits.rpd, Some(free.rpd));
        assert_eq!(
            (limits.window, limits.max_in_flight),
            (Limits::WINDOW, None)
        );
    }

    #[test]
    fn flags_override_each_limit_and_zero_is_unlimited() {
        let options = parse(&[
            "--rpm",
            "4",
            "--tpm",
            "0",
            "--window",
            "1s",
            "--concurrency",
            "2",
        ]);
        let limits = options.unwrap().limits("gemini-flash-latest").unwrap();
        assert_eq!((limits.rpm, limits.tpm), (Some(4), None));
        assert_eq!(limits.window, Duration::from_secs(1));
        assert_eq!(limits.max_in_flight, Some(2));
    }

    #[test]
    fn an_unknown_model_needs_rpm() {
        let error = parse(&[]).unwrap().limits("gemini-9-ultra").unwrap_err();
        assert!(error.to_string().contains("--rpm"), "{error}");
        let limits = parse(&["--rpm", "5"])
            .unwrap()
            .limits("gemini-9-ultra")
            .unwrap();
        assert_eq!((limits.rpm, limits.tpm, limits.rpd), (Some(5), None, None));
    }

    #[test]
    fn no_limit_keeps_only_the_cap_in_flight() {
        let options = parse(&["--no-limit", "--concurrency", "3"]).unwrap();
        let limits = options.limits("gemini-9-ultra").unwrap();
        assert_eq!((limits.rpm, limits.tpm, limits.rpd), (None, None, None));
        assert_eq!(limits.max_in_flight, Some(3));
    }

    #[test]
    fn conflicting_or_bad_flags_are_refused() {
        assert!(parse(&["--no-limit", "--rpm", "5"]).is_err());
        assert!(parse(&["--ramp", "--no-limit"]).is_err());
        assert!(parse(&["--window", "0s"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert_eq!(
            parse(&["--max-retries", "2"]).unwrap().retry().max_retries,
            2
        );
    }
}
