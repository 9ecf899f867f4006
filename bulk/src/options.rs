//! bulk's command-line options, on top of the ones every step shares.
//!
//! The shared options (`--prompt`, `--model`, `-n`, `--emulator`, `--json`,
//! `--timeout`, `--timeline`) come from [`common::cli::BatchArgs`]; the
//! binary flattens them and the groups here into one command line, each
//! group under its own heading in `--help`:
//!
//! * [`RunFiles`]: what to send (`--prompts`) and where the answers go
//!   (`--output`, resumed by default, `--restart`, `--resend-changed`);
//! * [`LimitArgs`]: the limits to keep under (`--tier`, `--rpm`, ...), or
//!   none (`--no-limit`), and where they are counted (`--redis`);
//! * [`StateArgs`]: where the limits learned from the server are kept
//!   between runs (`--limits-file`, `--forget-limits`);
//! * [`RetryArgs`]: how to retry (`--max-retries`, `--backoff`).
//!
//! The limits default to the model's free tier (the same table the built-in
//! emulator enforces, [`common::quota::free_tier`]), because that is what a
//! newcomer's key gets; `--tier` picks a paid tier's table instead
//! ([`common::quota::for_tier`]). Google changes those figures from time to
//! time, so a table is only the first guess: the runner learns the real
//! limits from the server's 429s and remembers them. `--rpm`, `--tpm` and
//! `--rpd` are ceilings of your own.
//!
//! Each group builds what it configures (the limits, the learner, the retry
//! policy) from the modules that do the work; none of those modules knows
//! about the command line.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, ValueEnum};
use common::{
    cli::parse_duration,
    quota::{Quota, Tier, for_tier},
    shutdown::Shutdown,
};
use step4_ratelimit::{limiter::Limits, retry::RetryPolicy};

use crate::{
    journal,
    runner::learn::Learner,
    state_file::{self, StateFile, StateFileError},
};

/// What to send, and where the answers go.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Prompts and answers")]
pub struct RunFiles {
    /// Read the prompts from FILE, one per line (or JSON lines with a "prompt"
    /// field, an optional "id" and any other fields; blank lines are
    /// skipped), instead of sending --prompt N times.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["prompt", "requests"])]
    pub prompts: Option<PathBuf>,

    /// Append one JSON line per prompt to FILE the moment it ends (completion
    /// order): its id, the answer or the error, tokens, attempts and latency.
    /// If FILE exists, the run resumes: prompts it already answered are skipped.
    #[arg(long, value_name = "FILE.jsonl")]
    pub output: Option<PathBuf>,

    /// Start over instead of resuming: the existing --output file is renamed
    /// to FILE.jsonl.1 (or .2, ...), never erased.
    #[arg(long, requires = "output")]
    pub restart: bool,

    /// Send again the prompts edited since --output got their answer (and
    /// only those: every other answer stands, and the earlier answers stay
    /// in the file). Without it, such a run stops before sending anything,
    /// and names them.
    #[arg(long, requires = "output", conflicts_with = "restart")]
    pub resend_changed: bool,
}

impl RunFiles {
    /// How the run treats an existing `--output` journal.
    pub fn policy(&self) -> journal::Policy {
        journal::Policy {
            restart: self.restart,
            resend_changed: self.resend_changed,
        }
    }
}

/// `--tier`: which table of limits to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    /// The free tier (no billing account).
    Free,
    /// Tier 1: a billing account linked to the project.
    Tier1,
    /// Tier 2.
    Tier2,
    /// Tier 3.
    Tier3,
}

impl From<TierArg> for Tier {
    fn from(tier: TierArg) -> Tier {
        match tier {
            TierArg::Free => Tier::Free,
            TierArg::Tier1 => Tier::Tier1,
            TierArg::Tier2 => Tier::Tier2,
            TierArg::Tier3 => Tier::Tier3,
        }
    }
}

/// The limits to keep under, and where they are counted.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Requests per window to stay under (default: the --tier table; 0 = unlimited).
    /// A ceiling: a limit learned from the server may lower it, never raise it.
    #[arg(long)]
    pub rpm: Option<u32>,

    /// Input tokens per window to stay under (default: the --tier table; 0 = unlimited).
    #[arg(long)]
    pub tpm: Option<u32>,

    /// Requests per day to stay under (default: the --tier table; 0 = unlimited).
    #[arg(long)]
    pub rpd: Option<u32>,

    /// The usage tier whose published limits to start from; the real limits
    /// are learned from the server's 429s anyway.
    #[arg(long, value_enum, default_value = "free")]
    pub tier: TierArg,

    /// The window RPM and TPM are counted over: 60s on the real API and the
    /// built-in emulator; shorter (1s, 500ms) for an emulator started with --window.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,

    /// The window RPD is counted over: 24h on the real API (which resets at
    /// midnight Pacific); shorter for an emulator started with --day.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub day: Duration,

    /// At most K requests in flight at once (default: no cap).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// No limiter: send every request at once, as step 3 does (retries still apply).
    #[arg(long, conflicts_with_all = ["rpm", "tpm", "rpd", "tier"])]
    pub no_limit: bool,

    /// Share the limits with every process that uses the same Redis, API key
    /// and model: the books are kept in Redis (redis://HOST:PORT), so several
    /// copies of this program, on one machine or many, draw from one quota.
    /// If Redis cannot be reached the program stops before sending anything.
    /// Ignored with --no-limit.
    #[arg(
        long,
        value_name = "URL",
        env = "GEMINI_RATELIMIT_REDIS",
        hide_env_values = true
    )]
    pub redis: Option<String>,
}

/// A model we know no limits for, and no `--rpm` to go by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no {tier} limits are known for model `{model}`: pass your project's limits with --rpm (and --tpm, --rpd; AI Studio shows them), or --no-limit"
)]
pub struct UnknownLimits {
    /// The model asked for.
    pub model: String,
    /// The table looked in (`free-tier`, `tier1`, ...).
    pub tier: String,
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
        let base = match (for_tier(model, self.tier.into()), self.rpm) {
            (Some(quota), _) => quota,
            (None, Some(_)) => Quota {
                rpm: 0,
                tpm: 0,
                rpd: 0,
            },
            (None, None) => {
                return Err(UnknownLimits {
                    model: model.to_string(),
                    tier: match self.tier {
                        TierArg::Free => "free-tier".into(),
                        tier => Tier::from(tier).name().into(),
                    },
                });
            }
        };
        Ok(Limits {
            max_in_flight: in_flight,
            ..Limits::default()
                .with_rpm(self.rpm.unwrap_or(base.rpm))
                .with_tpm(self.tpm.unwrap_or(base.tpm))
                .with_rpd(self.rpd.unwrap_or(base.rpd))
                .with_window(self.window)
                .with_day(self.day)
        })
    }

    /// Which of RPM, TPM, RPD the user gave on the command line.
    pub fn explicit(&self) -> [bool; 3] {
        [self.rpm.is_some(), self.tpm.is_some(), self.rpd.is_some()]
    }

    /// Whether requests are paced by a limiter (not `--no-limit`).
    pub fn paced(&self) -> bool {
        !self.no_limit
    }

    /// The Redis that keeps the books, if the limits are shared and paced.
    pub fn shared_through(&self) -> Option<&str> {
        self.redis.as_deref().filter(|_| self.paced())
    }
}

/// Where the limits learned from the server are kept between runs.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Learned limits")]
pub struct StateArgs {
    /// Where to remember the limits learned and the day's spend, per
    /// project and model (default: limits.json in gemini-tutorial/ under the
    /// user's state directory; env GEMINI_LIMITS_FILE; `off` remembers nothing).
    #[arg(long, value_name = "PATH")]
    pub limits_file: Option<PathBuf>,

    /// Forget what was remembered for this project and model before the run.
    #[arg(long)]
    pub forget_limits: bool,
}

impl StateArgs {
    /// The learner of a run with `limits`: it learns the limits from the
    /// server's 429s and keeps them, with the day's spend, in the state file
    /// of `project` (a fingerprint of the key), `base_url` and `model`.
    ///
    /// `remember` is false with the built-in emulator, whose quota ends
    /// with the run; then nothing is read or written. `--forget-limits`
    /// forgets the entry first. A forced stop of `shutdown` (a second
    /// Ctrl-C) ends any wait for the file's lock.
    pub fn learner(
        &self,
        limits: &LimitArgs,
        model: &str,
        project: &str,
        base_url: &str,
        remember: bool,
        shutdown: &Shutdown,
    ) -> Result<Learner, StateFileError> {
        let state = self
            .path(remember)?
            .map(|path| StateFile::new(path, project, base_url, model).stopped_by(shutdown));
        if let (true, Some(state)) = (self.forget_limits, &state) {
            state.forget()?;
            common::terminal::diagnostic(format_args!(
                "forgot the limits and the day's spend remembered for {model} in {}",
                state.path().display()
            ));
        }
        let remembered = match &state {
            Some(state) => state.load()?,
            None => Default::default(),
        };
        Ok(Learner::new(
            model,
            limits.explicit(),
            Tier::from(limits.tier).name(),
            state,
            remembered,
            limits.day,
        ))
    }

    /// The state file, unless the run keeps none (`off`, or not `remember`).
    fn path(&self, remember: bool) -> Result<Option<PathBuf>, StateFileError> {
        if !remember {
            return Ok(None);
        }
        Ok(self.file()?.map(|(_, path)| path))
    }

    /// The state file a run that remembers uses, and who named it
    /// (`--limits-file`, `GEMINI_LIMITS_FILE`, or the default); `None` with
    /// `off`. The run's other files are checked against it before anything
    /// is sent, whether or not the run remembers.
    pub fn file(&self) -> Result<Option<(String, PathBuf)>, StateFileError> {
        let from_env = || {
            std::env::var_os(state_file::FILE_VAR)
                .filter(|path| !path.is_empty())
                .map(|path| (state_file::FILE_VAR.to_string(), PathBuf::from(path)))
        };
        let given = self
            .limits_file
            .clone()
            .filter(|path| !path.as_os_str().is_empty())
            .map(|path| ("--limits-file".to_string(), path))
            .or_else(from_env);
        match given {
            Some((_, path)) if path == Path::new("off") => Ok(None),
            Some(given) => Ok(Some(given)),
            None => Ok(Some((
                "the default limits file".into(),
                StateFile::locate(None)?,
            ))),
        }
    }
}

/// How to retry a request the server refused or failed.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Retries")]
pub struct RetryArgs {
    /// Retries per request after its first attempt (0 = never retry; 4 is
    /// 5 attempts, like Google's HttpRetryOptions).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_retries: u32,

    /// The first retry's backoff: a random wait up to this, doubling with each
    /// retry up to 60s (exponential backoff with full jitter).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub backoff: Duration,
}

impl RetryArgs {
    /// How to retry, from `--max-retries` and `--backoff`.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base: self.backoff,
            ..RetryPolicy::default()
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
        files: RunFiles,
        #[command(flatten)]
        batch: common::cli::BatchArgs,
        #[command(flatten)]
        limit: LimitArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        retry: RetryArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bulk").chain(args.iter().copied()))
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
        let retry = cli.retry.policy();
        assert_eq!(retry.max_retries, 4);
        assert_eq!(retry.base, Duration::from_secs(1));
        assert_eq!(retry.cap, Duration::from_secs(60));
        assert!(cli.limit.paced());
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
            (None, Some(1000), Some(100))
        );
        assert_eq!(limits.window, Duration::from_secs(1));
        assert_eq!(limits.max_in_flight, Some(3));
        assert_eq!(cli.limit.explicit(), [true, true, false]);
    }

    #[test]
    fn an_unknown_model_needs_rpm() {
        let cli = parse(&[]).expect("parses");
        let error = cli.limit.limits("gemini-9-ultra").expect_err("unknown");
        assert!(error.to_string().contains("--rpm"), "{error}");
        let cli = parse(&["--rpm", "7"]).expect("parses");
        let limits = cli.limit.limits("gemini-9-ultra").expect("given");
        assert_eq!((limits.rpm, limits.tpm, limits.rpd), (Some(7), None, None));
    }

    #[test]
    fn no_limit_keeps_only_the_concurrency_cap_and_shares_nothing() {
        let cli = parse(&[
            "--no-limit",
            "--concurrency",
            "2",
            "--redis",
            "redis://127.0.0.1:9",
        ])
        .expect("parses");
        let limits = cli
            .limit
            .limits("gemini-9-ultra")
            .expect("no limits needed");
        assert_eq!((limits.rpm, limits.tpm, limits.rpd), (None, None, None));
        assert_eq!(limits.max_in_flight, Some(2));
        assert_eq!(cli.limit.shared_through(), None, "nothing to share");
        let cli = parse(&["--redis", "redis://127.0.0.1:9"]).expect("parses");
        assert_eq!(cli.limit.shared_through(), Some("redis://127.0.0.1:9"));
    }

    #[test]
    fn conflicting_flags_are_refused() {
        assert!(parse(&["--no-limit", "--rpm", "5"]).is_err());
        assert!(parse(&["--no-limit", "--tier", "tier1"]).is_err());
        assert!(parse(&["--prompts", "p.txt", "-n", "3"]).is_err());
        assert!(parse(&["--prompts", "p.txt", "--prompt", "hi"]).is_err());
        assert!(parse(&["--restart"]).is_err(), "needs --output");
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--ramp"]).is_err(), "the ramp is step 4's");
        // Defaults do not count as given.
        assert!(parse(&["--prompts", "p.txt"]).is_ok());
        assert!(parse(&["--output", "a.jsonl", "--restart"]).is_ok());
        assert!(parse(&["--resend-changed"]).is_err(), "needs --output");
        assert!(parse(&["--output", "a.jsonl", "--restart", "--resend-changed"]).is_err());
        let cli = parse(&["--output", "a.jsonl", "--resend-changed"]).expect("parses");
        assert!(cli.files.policy().resend_changed && !cli.files.policy().restart);
    }
}
