//! What became of each request: an answer, an error, or "not done".
//!
//! These are the facts of a run, kept apart from how they are shown: the
//! [`report`](crate::report) prints them in order and adds them up, the
//! [`timeline`](crate::timeline) draws them, and step 4's runner makes them.
//! Each request ends as exactly one [`Outcome`]; its [`Attempt`]s are stamped
//! with times since the run started.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::{
    error::Error,
    types::{GenerateContentResponse, UsageMetadata},
};

/// A successful answer, reduced to what a report shows.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The answer's text (thought summaries left out).
    pub text: String,
    /// Token counts the server reported.
    pub usage: UsageMetadata,
    /// The model that actually ran (an alias such as `gemini-flash-latest` names its target here).
    pub model_version: Option<String>,
    /// Why the model stopped (`STOP`, `MAX_TOKENS`, `SAFETY`, ...), as the
    /// server spelled it. Kept in every output row: an answer cut short by
    /// `MAX_TOKENS` looks like any other until you read this.
    pub finish_reason: Option<String>,
}

impl Answer {
    /// Turns a response into an answer, or into the error it really is.
    ///
    /// A blocked prompt arrives as HTTP 200 with no candidates: it parses
    /// fine, but treating it as an empty answer would be a silent wrong
    /// result, so it becomes [`Error::Blocked`] here.
    pub fn from_response(response: GenerateContentResponse) -> Result<Answer, Error> {
        if let Some(reason) = response.blocked() {
            return Err(Error::Blocked {
                reason: reason.to_string(),
            });
        }
        Ok(Answer {
            text: response.text(),
            usage: response.usage_metadata.clone().unwrap_or_default(),
            model_version: response.model_version.clone(),
            finish_reason: response
                .finish_reason()
                .map(|reason| bounded(reason.as_str(), MAX_FINISH_REASON)),
        })
    }

    /// Whether the model answered with no text at all (a `MAX_TOKENS` stop
    /// spent on thinking, a `SAFETY` stop, ...): a response, but not an answer
    /// anyone can use, so the summary counts these apart.
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// " | stopped: MAX_TOKENS" when the model stopped for any reason but the
/// normal one, so a cut-short answer says so under it; nothing otherwise.
fn unusual_stop(answer: &Answer) -> String {
    match answer.finish_reason.as_deref() {
        None | Some("STOP") => String::new(),
        Some(reason) => format!(" | stopped: {reason}"),
    }
}

/// The longest finish reason kept: real ones are a word (`MAX_TOKENS`), and
/// a value from the network is bounded before it is stored or printed.
const MAX_FINISH_REASON: usize = 64;

/// `text` cut to at most `max` characters.
fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// How one attempt on the wire ended, for the summary and the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// The server answered with a response.
    Ok,
    /// The server answered 429 RESOURCE_EXHAUSTED.
    RateLimited,
    /// Any other error: a 5xx, a timeout, a broken connection, ...
    Failed,
}

/// One attempt at sending a request, timed from the start of the run.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When the request left (since the run started).
    pub sent: Duration,
    /// When its answer or error arrived (since the run started).
    pub answered: Duration,
    /// How it ended.
    pub status: AttemptStatus,
}

impl Attempt {
    /// The attempt's latency: from sending to the answer.
    pub fn latency(&self) -> Duration {
        self.answered.saturating_sub(self.sent)
    }
}

/// How a request ended. Exactly one of these per request, always.
#[derive(Debug)]
pub enum Ended {
    /// The model answered.
    Answered(Answer),
    /// Every attempt failed; this is the last error.
    Failed(Error),
    /// The request has no answer and no error of its own: it was never sent
    /// (the day's quota ran out, or Ctrl-C), or Ctrl-C cut it off in flight.
    NotDone(String),
}

/// One request's story: its index, its attempts, and how it ended.
#[derive(Debug)]
pub struct Outcome {
    /// The request's position in the batch, from 0.
    pub index: usize,
    /// Every attempt, in order; empty when it was never sent.
    pub attempts: Vec<Attempt>,
    /// How it ended.
    pub ended: Ended,
}

impl Outcome {
    /// Frees the answer's text. The report calls it once the line is
    /// printed: what comes after (the summary, the timeline) needs only
    /// counts and times, and a long run should not hold every answer.
    pub fn drop_text(&mut self) {
        if let Ended::Answered(answer) = &mut self.ended {
            answer.text = String::new();
        }
    }

    /// A request answered at its first attempt, sent when the run started
    /// and answered `after` it (step 1's one request).
    pub fn answered(index: usize, answer: Answer, after: Duration) -> Outcome {
        Outcome {
            index,
            attempts: vec![Attempt {
                sent: Duration::ZERO,
                answered: after,
                status: AttemptStatus::Ok,
            }],
            ended: Ended::Answered(answer),
        }
    }

    /// A request that did not get done, with the reason to report.
    pub fn not_done(index: usize, reason: impl Into<String>) -> Outcome {
        Outcome {
            index,
            attempts: Vec::new(),
            ended: Ended::NotDone(reason.into()),
        }
    }

    /// The latency of the last attempt, if any was made.
    pub fn latency(&self) -> Option<Duration> {
        self.attempts.last().map(Attempt::latency)
    }

    /// The error, when the request failed.
    pub fn error(&self) -> Option<&Error> {
        match &self.ended {
            Ended::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// One human line: index, latency, tokens and the first words of the answer.
    pub fn line(&self) -> String {
        let latency = self.latency().map_or_else(
            || "     -".to_string(),
            |l| format!("{:5.2}s", l.as_secs_f64()),
        );
        let retries = match self.attempts.len() {
            0 | 1 => String::new(),
            n => format!(" ({} attempts)", n),
        };
        match &self.ended {
            Ended::Answered(answer) if answer.is_empty() => format!(
                "#{:<4} {latency} {:>6} tokens  (no text; finish reason {}){retries}",
                self.index + 1,
                answer.usage.total_token_count,
                answer.finish_reason.as_deref().unwrap_or("not given"),
            ),
            Ended::Answered(answer) => format!(
                "#{:<4} {latency} {:>6} tokens  {}{retries}",
                self.index + 1,
                answer.usage.total_token_count,
                first_words(&answer.text, 60),
            ),
            Ended::Failed(error) => {
                format!("#{:<4} {latency}  failed: {error}{retries}", self.index + 1)
            }
            Ended::NotDone(reason) => {
                format!("#{:<4} {latency}  not done: {reason}", self.index + 1)
            }
        }
    }

    /// The line under step 1's answer: which model ran, the tokens, the time.
    pub fn footer(&self) -> String {
        let seconds = self.latency().unwrap_or_default().as_secs_f64();
        match &self.ended {
            Ended::Answered(answer) => {
                let u = &answer.usage;
                format!(
                    "[{}{} | tokens: {} prompt + {} thinking + {} answer = {} | {seconds:.2} s]",
                    answer
                        .model_version
                        .as_deref()
                        .unwrap_or("model version not reported"),
                    unusual_stop(answer),
                    u.prompt_token_count,
                    u.thoughts_token_count,
                    u.candidates_token_count,
                    u.total_token_count,
                )
            }
            _ => self.line(),
        }
    }

    /// The same facts as [`Outcome::line`], as one JSON object for `--json`.
    pub fn json_line(&self) -> serde_json::Value {
        let latency_ms = self.latency().map(|l| l.as_millis() as u64);
        let attempts = self.attempts.len();
        match &self.ended {
            Ended::Answered(answer) => json!({
                "request": self.index + 1, "ok": true, "latency_ms": latency_ms, "attempts": attempts,
                "model_version": answer.model_version,
                "finish_reason": answer.finish_reason,
                "usage": {
                    "prompt_tokens": answer.usage.prompt_token_count,
                    "candidates_tokens": answer.usage.candidates_token_count,
                    "thoughts_tokens": answer.usage.thoughts_token_count,
                    "total_tokens": answer.usage.total_token_count,
                },
                "text": answer.text,
            }),
            Ended::Failed(error) => json!({
                "request": self.index + 1, "ok": false, "latency_ms": latency_ms, "attempts": attempts,
                "error": error.to_string(),
            }),
            Ended::NotDone(reason) => json!({
                "request": self.index + 1, "ok": false, "attempts": attempts, "not_done": reason,
            }),
        }
    }
}

/// The first `max` characters of `text` on one line, with an ellipsis if cut.
fn first_words(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_words_cuts_on_characters_not_bytes() {
        assert_eq!(first_words("é".repeat(10).as_str(), 4), "éééé…");
        assert_eq!(first_words("a\n b", 10), "a b");
    }

    #[test]
    fn the_finish_reason_is_kept_and_bounded() {
        let response: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{"finishReason": "X".repeat(1000)}]
        }))
        .expect("parses");
        let answer = Answer::from_response(response).expect("not blocked");
        assert!(answer.is_empty());
        assert_eq!(
            answer.finish_reason.map(|r| r.len()),
            Some(MAX_FINISH_REASON)
        );
    }
}
