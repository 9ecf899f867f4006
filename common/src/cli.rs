//! The command-line options every step shares.
//!
//! Each step's `Args` flattens these, so `--prompt`, `--model`, `--emulator`,
//! `--json`, `--timeout` and `--timeline` mean the same thing everywhere and a
//! learner moving from one step to the next never relearns the interface.
//! The help text of each option is its doc comment (clap derive).

use std::{path::PathBuf, time::Duration};

use clap::Args;

/// The tutorial's model: an alias Google points at its current Flash model.
pub const DEFAULT_MODEL: &str = "gemini-flash-latest";

/// The tutorial's prompt, as in the course this project follows.
pub const DEFAULT_PROMPT: &str = "Why do some birds migrate?";

/// Options shared by every step.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// The prompt to send.
    #[arg(long, default_value = DEFAULT_PROMPT)]
    pub prompt: String,

    /// The Gemini model to call (see the models list of the API).
    #[arg(long, default_value = DEFAULT_MODEL, value_parser = parse_model)]
    pub model: String,

    /// Use the built-in emulator even when an API key is set.
    #[arg(long)]
    pub emulator: bool,

    /// Print machine-readable JSON lines; the last line on stdout is the summary.
    #[arg(long)]
    pub json: bool,

    /// Give up on one request after this many seconds (it counts as failed, or is retried by step 4 and bulk).
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = parse_seconds)]
    pub timeout: Duration,

    /// Write an SVG picture of when each request was sent and answered.
    #[arg(long, value_name = "FILE.svg")]
    pub timeline: Option<PathBuf>,

    /// Refuse a response larger than this many MiB (default: derived from the
    /// model's output limit, 8 MiB for today's models, far above any real answer).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_response_mib: Option<u32>,
}

/// The size of a batch: steps 2, 3 and 4 send the prompt this many times.
#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// How many requests to send.
    #[arg(short = 'n', long = "requests", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub requests: u32,

    /// The options every step shares.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Parses a positive number of seconds such as `30` or `2.5`.
///
/// A timeout of zero or less would fail every request before it is sent, and
/// anything beyond a day is a typo rather than a wish, so both are refused here
/// with a message that says what is accepted.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (try 30 or 2.5)"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "`{text}` is out of range: give more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a duration option such as `60s`, `1s`, `500ms`, `1.5s` or `2m` (a
/// bare number is seconds), with the emulator's parser: one grammar for every
/// binary's durations.
///
/// Zero is refused (a zero window makes every limit meaningless, a zero
/// backoff turns retries into a hammering loop), and so is anything beyond a
/// day, with a message that says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = emulator::settings::parse_duration(text)
        .map_err(|_| format!("`{text}` is not a duration (try 60s, 1s, 500ms or 2m)"))?;
    if duration.is_zero() || duration > Duration::from_secs(86_400) {
        return Err(format!(
            "`{text}` is out of range: give more than 0 and at most 24h"
        ));
    }
    Ok(duration)
}

/// Accepts a model id as the API spells it, with or without the `models/` prefix.
///
/// Whether the model exists is the server's call (a 404 names it); here we
/// only refuse what can never be a model id, so a typo like a space or a slash
/// gets a clear message instead of a confusing URL.
pub fn parse_model(text: &str) -> Result<String, String> {
    let id = text.trim().trim_start_matches("models/");
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if valid {
        Ok(id.to_string())
    } else {
        Err(format!(
            "`{text}` is not a model id (expected something like {DEFAULT_MODEL})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_whole_and_fractional_values() {
        assert_eq!(parse_seconds("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
    }

    #[test]
    fn seconds_refuse_zero_negative_absurd_and_text() {
        for bad in ["0", "-1", "1e9", "NaN", "soon", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn model_ids_are_normalised_and_checked() {
        assert_eq!(
            parse_model("models/gemini-2.5-flash").as_deref(),
            Ok("gemini-2.5-flash")
        );
        assert_eq!(
            parse_model("gemini-flash-latest").as_deref(),
            Ok(DEFAULT_MODEL)
        );
        for bad in ["", "models/", "gemini flash", "a/b", "x?key=1"] {
            assert!(parse_model(bad).is_err(), "{bad} should be refused");
        }
    }
}
