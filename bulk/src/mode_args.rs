//! The command line of the modes and the bill: `--mode`, its options, and `--prices`.
//!
//! One group, [`ModeArgs`], flattened into bulk's command line under its own
//! heading in `--help`:
//!
//! * `--mode standard|flex|batch|auto`: how the prompts go (see each mode's
//!   module: [`crate::runner`] for standard, [`crate::flex`], [`crate::batch`],
//!   [`crate::plan`] for auto);
//! * flex's `--fallback standard --fallback-after DURATION`;
//! * auto's `--deadline` and the assumptions its estimate rests on;
//! * batch's `--batch-poll`, `--batch-retries`, `--batch-inline-max` and
//!   `--cancel-batch`;
//! * `--prices FILE`, the price table the bill uses.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use common::cli::parse_duration;

use crate::prices::Mode;

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Synchronous requests at the standard price, at the limiter's pace.
    Standard,
    /// Synchronous requests at half price (serviceTier flex): minutes of
    /// latency, and sometimes shed (retried with backoff).
    Flex,
    /// A Batch Mode job: half price, its own quota, results within 24 h;
    /// needs --output.
    Batch,
    /// The cheapest of the three that finishes by --deadline.
    Auto,
}

impl ModeArg {
    /// The mode itself, unless it is `auto` (which the planner decides).
    pub fn fixed(self) -> Option<Mode> {
        match self {
            ModeArg::Standard => Some(Mode::Standard),
            ModeArg::Flex => Some(Mode::Flex),
            ModeArg::Batch => Some(Mode::Batch),
            ModeArg::Auto => None,
        }
    }
}

/// `--fallback`: the tier a flex run falls back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FallbackArg {
    /// The standard tier (full price, no shedding).
    Standard,
}

/// How the prompts go, and what the bill prices them with.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Modes and the bill")]
pub struct ModeArgs {
    /// How to send the prompts: standard, flex (half price, slower,
    /// sheddable), batch (a Batch Mode job: half price, within 24 h; needs
    /// --output) or auto (the cheapest that finishes by --deadline).
    #[arg(long, value_enum, default_value = "standard")]
    pub mode: ModeArg,

    /// With --mode auto: when the last answer must be in (30m, 6h, 2d).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline, required_if_eq("mode", "auto"))]
    pub deadline: Option<Duration>,

    /// With --mode auto: output tokens expected per prompt, thinking
    /// included, for the cost estimate (the real count is billed).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub expect_output: u32,

    /// With --mode auto: how long a batch job is assumed to take (the
    /// API's target is 24 hours; usually less).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_deadline)]
    pub batch_expect: Duration,

    /// With --mode flex: send what is still unanswered at this tier once
    /// --fallback-after has passed (speed over price).
    #[arg(long, value_enum, requires = "fallback_after")]
    pub fallback: Option<FallbackArg>,

    /// With --fallback: how long into the run flex is tried first.
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline, requires = "fallback")]
    pub fallback_after: Option<Duration>,

    /// The price table the bill uses (USD per 1M tokens; the format of
    /// bulk/prices.json), instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// With --mode batch: the longest wait between two looks at a job
    /// (the waits start at 1s and double up to this).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub batch_poll: Duration,

    /// With --mode batch: how many times the lines that failed (server
    /// errors, a failed job) are sent again in a new job in the same run.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub batch_retries: u32,

    /// With --mode batch: requests go inline in the create call while its
    /// body stays under this many bytes (the API takes 20 MB); beyond, they
    /// are uploaded as a JSONL file first. 0 always uploads.
    #[arg(long, value_name = "BYTES", default_value_t = 20_000_000)]
    pub batch_inline_max: u64,

    /// Cancel the batch jobs that runs with this --output submitted and
    /// that have not ended, then exit (run the same command without it to
    /// send their prompts again in a new job).
    #[arg(long, requires = "output")]
    pub cancel_batch: bool,
}

/// The longest deadline or wait accepted: 30 days.
const MAX_SPAN: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Parses a span that may pass a day: `500ms`, `90s`, `30m`, `6h`, `2d`
/// (up to 30 days).
pub fn parse_deadline(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (try 30m, 6h or 2d)");
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(bad()),
    };
    let span = Duration::try_from_secs_f64(value * seconds).map_err(|_| bad())?;
    if span.is_zero() || span > MAX_SPAN {
        return Err(format!(
            "`{text}` is out of range: give more than 0 and at most 30d"
        ));
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        modes: ModeArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bulk").chain(args.iter().copied()))
    }

    #[test]
    fn the_defaults_are_standard_and_the_built_in_prices() {
        let cli = parse(&[]).expect("parses");
        assert_eq!(cli.modes.mode, ModeArg::Standard);
        assert_eq!(cli.modes.mode.fixed(), Some(Mode::Standard));
        assert_eq!(cli.modes.prices, None);
        assert_eq!(cli.modes.batch_retries, 1);
        assert_eq!(cli.modes.batch_poll, Duration::from_secs(60));
    }

    #[test]
    fn auto_needs_a_deadline_and_a_fallback_needs_its_time() {
        assert!(parse(&["--mode", "auto"]).is_err());
        let cli = parse(&["--mode", "auto", "--deadline", "2d"]).expect("parses");
        assert_eq!(cli.modes.deadline, Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(cli.modes.mode.fixed(), None);
        assert!(parse(&["--mode", "flex", "--fallback", "standard"]).is_err());
        assert!(parse(&["--fallback-after", "5m"]).is_err());
        let cli = parse(&[
            "--mode",
            "flex",
            "--fallback",
            "standard",
            "--fallback-after",
            "5m",
        ])
        .expect("parses");
        assert_eq!(cli.modes.fallback_after, Some(Duration::from_secs(300)));
        assert!(parse(&["--cancel-batch"]).is_err(), "needs --output");
        assert!(parse(&["--cancel-batch", "--output", "a.jsonl"]).is_ok());
        assert!(parse(&["--mode", "turbo"]).is_err());
    }

    #[test]
    fn spans_pass_a_day_but_not_a_month() {
        assert_eq!(parse_deadline("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_deadline("1.5d"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_deadline("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["0", "31d", "-1h", "soon", "", "5 parsecs"] {
            assert!(parse_deadline(bad).is_err(), "{bad}");
        }
    }
}
