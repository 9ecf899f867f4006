//! Batch Mode's answers, as Rust types: the long-running operation a job
//! is, its state and counters, and its results (docs/wire.md#batch-mode).
//!
//! Everything here came from the network, so nothing is taken on trust:
//! names are checked before they go into a path ([`resource_id`]), the
//! int64 counters (strings on the wire) are parsed and bounded, texts are
//! cut short before they are printed, and unknown fields are ignored the
//! way Google's clients ignore them.

use common::types::GenerateContentResponse;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A job's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Queued.
    Pending,
    /// Requests are being answered.
    Running,
    /// Done, with results.
    Succeeded,
    /// Done, without results.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// Not done in time (48 hours); no results.
    Expired,
    /// A state this client does not know, as the server spelled it (cut short).
    Other(String),
}

impl State {
    /// Reads `BATCH_STATE_*` (or the SDKs' `JOB_STATE_*`).
    pub fn parse(text: &str) -> State {
        let name = text
            .strip_prefix("BATCH_STATE_")
            .or_else(|| text.strip_prefix("JOB_STATE_"))
            .unwrap_or(text);
        match name {
            "PENDING" | "QUEUED" => State::Pending,
            "RUNNING" => State::Running,
            "SUCCEEDED" => State::Succeeded,
            "FAILED" => State::Failed,
            "CANCELLED" => State::Cancelled,
            "EXPIRED" => State::Expired,
            other => State::Other(short(other, 40)),
        }
    }

    /// `SUCCEEDED`, `RUNNING`, ...
    pub fn name(&self) -> &str {
        match self {
            State::Pending => "PENDING",
            State::Running => "RUNNING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
            State::Cancelled => "CANCELLED",
            State::Expired => "EXPIRED",
            State::Other(name) => name,
        }
    }

    /// Whether nothing more will happen to the job.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Cancelled | State::Expired
        )
    }
}

/// A job, as `batches.get`, `batches.list` and the create call return it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `batches/<id>`.
    #[serde(default)]
    pub name: String,
    /// The batch itself.
    #[serde(default)]
    pub metadata: Metadata,
    /// Whether it ended.
    #[serde(default)]
    pub done: bool,
    /// The output, once it succeeded (also in `metadata.output`).
    #[serde(default)]
    pub response: Option<Output>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<Status>,
}

/// `metadata`: the GenerateContentBatch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The name bulk gave it (`bulk-...`).
    #[serde(default)]
    pub display_name: String,
    /// `BATCH_STATE_*`.
    #[serde(default)]
    pub state: String,
    /// The counters.
    #[serde(default)]
    pub batch_stats: Stats,
    /// The output, once it succeeded.
    #[serde(default)]
    pub output: Option<Output>,
}

/// `batchStats`: int64 counters, strings on the wire, zero ones left out.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests in the job.
    #[serde(default, deserialize_with = "count")]
    pub request_count: u64,
    /// Answered with a response.
    #[serde(default, deserialize_with = "count")]
    pub successful_request_count: u64,
    /// Answered with an error.
    #[serde(default, deserialize_with = "count")]
    pub failed_request_count: u64,
    /// Not answered yet.
    #[serde(default, deserialize_with = "count")]
    pub pending_request_count: u64,
}

impl Stats {
    /// Requests done (answered or failed), at most `of`: a counter from the
    /// network never moves a progress bar past its end.
    pub fn done(&self, of: u64) -> u64 {
        self.successful_request_count
            .saturating_add(self.failed_request_count)
            .min(of)
    }
}

/// An int64 as proto JSON sends it: a string, or a number; anything else is 0.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text.trim().parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    })
}

/// A job's output: inline answers, or the results file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// `{"inlinedResponses": [...]}` (the double nesting is real).
    #[serde(default)]
    pub inlined_responses: Option<InlinedResponses>,
    /// `files/batch-<id>`.
    #[serde(default)]
    pub responses_file: Option<String>,
}

/// The inner `inlinedResponses` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlinedResponses {
    /// One per request.
    #[serde(default)]
    pub inlined_responses: Vec<Answer>,
}

/// One request's answer: inline (its key in `metadata`) or a results
/// file's line (its key at the top).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Answer {
    /// A file line's key.
    #[serde(default)]
    pub key: Option<Value>,
    /// An inline answer's metadata, `{"key": ...}`.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The answer.
    #[serde(default)]
    pub response: Option<GenerateContentResponse>,
    /// Or why there is none.
    #[serde(default)]
    pub error: Option<Status>,
}

impl Answer {
    /// The key bulk gave the request, as text (a number's digits), if any.
    pub fn key(&self) -> Option<String> {
        let key = match (&self.key, &self.metadata) {
            (Some(key), _) => key,
            (None, Some(metadata)) => metadata.get("key")?,
            (None, None) => return None,
        };
        match key {
            Value::String(text) => Some(text.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A `google.rpc.Status`: why a job or a request failed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// The gRPC code (14 is UNAVAILABLE).
    #[serde(default)]
    pub code: i64,
    /// What the server said.
    #[serde(default)]
    pub message: String,
}

impl Status {
    /// Whether the same request may succeed in a new job: the server's
    /// trouble (unavailable, internal, deadline, exhausted, aborted), not
    /// the request's.
    pub fn is_retryable(&self) -> bool {
        matches!(self.code, 4 | 8 | 10 | 13 | 14)
    }

    /// One line: `code 14: The model is overloaded...` (cut short).
    pub fn line(&self) -> String {
        format!("code {}: {}", self.code, short(&self.message, 300))
    }
}

/// A page of `batches.list`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// This page's jobs.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// The next page's token; absent on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A file, as the upload's last answer holds it (`{"file": {...}}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Uploaded {
    /// The file.
    #[serde(default)]
    pub file: FileName,
}

/// The part of a File bulk needs: its name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileName {
    /// `files/<id>`.
    #[serde(default)]
    pub name: String,
}

impl Operation {
    /// The job's state.
    pub fn state(&self) -> State {
        State::parse(&self.metadata.state)
    }

    /// The output, wherever the server put it.
    pub fn output(&self) -> Option<&Output> {
        self.response.as_ref().or(self.metadata.output.as_ref())
    }
}

/// The id of `prefix/<id>` (`batches/abc`, `files/batch-abc`) when it is a
/// plain id: 1 to 128 lowercase letters, digits, `-` or `_`. Anything else
/// (a `/`, `..`, a query) never goes into a request's path.
pub fn resource_id<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let id = name.strip_prefix(prefix)?.strip_prefix('/')?;
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    plain.then_some(id)
}

/// `text` cut to `max` characters, on one line.
pub fn short(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_operation_reads_as_the_reference_writes_it() {
        let operation: Operation = serde_json::from_value(json!({
            "name": "batches/abc123",
            "metadata": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "displayName": "bulk-1",
                "state": "BATCH_STATE_RUNNING",
                "batchStats": {"requestCount": "10", "successfulRequestCount": "4", "failedRequestCount": 1, "pendingRequestCount": "x"}
            }
        }))
        .expect("parses");
        assert_eq!(operation.state(), State::Running);
        assert!(!operation.done);
        let stats = operation.metadata.batch_stats;
        assert_eq!((stats.request_count, stats.pending_request_count), (10, 0));
        assert_eq!(stats.done(10), 5);
        assert_eq!(stats.done(3), 3, "never past the end");
        assert_eq!(resource_id(&operation.name, "batches"), Some("abc123"));
    }

    #[test]
    fn answers_carry_their_key_inline_or_in_a_file_line() {
        let inline: Answer = serde_json::from_value(
            json!({"metadata": {"key": "q1"}, "error": {"code": 14, "message": "overloaded"}}),
        )
        .expect("parses");
        assert_eq!(inline.key().as_deref(), Some("q1"));
        assert!(inline.error.as_ref().is_some_and(Status::is_retryable));
        let line: Answer =
            serde_json::from_value(json!({"key": 7, "response": {}})).expect("parses");
        assert_eq!(line.key().as_deref(), Some("7"));
        let bad = Status {
            code: 3,
            message: "bad request".into(),
        };
        assert!(!bad.is_retryable());
        assert_eq!(bad.line(), "code 3: bad request");
    }

    #[test]
    fn only_plain_ids_go_into_a_path() {
        assert_eq!(resource_id("files/batch-x1", "files"), Some("batch-x1"));
        for bad in [
            "files/../models",
            "files/a/b",
            "files/",
            "batches/abc",
            "files/a?b",
            "files/ABC",
        ] {
            assert_eq!(resource_id(bad, "files"), None, "{bad}");
        }
    }

    #[test]
    fn states_are_read_in_both_spellings() {
        assert_eq!(State::parse("BATCH_STATE_SUCCEEDED"), State::Succeeded);
        assert_eq!(State::parse("JOB_STATE_CANCELLED"), State::Cancelled);
        assert!(State::parse("BATCH_STATE_EXPIRED").is_done());
        let odd = State::parse(&"Z".repeat(500));
        assert!(!odd.is_done());
        assert!(odd.name().len() < 50);
    }
}
