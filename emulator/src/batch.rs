//! Batch Mode jobs: what a `batchGenerateContent` creates, how it moves through its states, and
//! the long-running `Operation` a client reads back.
//!
//! A job's answers are decided when it is created, with the same machinery as
//! `generateContent` (the same text, token counts and `usageMetadata`; the fault options and
//! blocked prompts drawn per request), and revealed as time passes. Its state is a pure function
//! of the time since creation ([`Job::progress`]): `PENDING` for the first fifth of the
//! turnaround, `RUNNING` while its requests complete evenly, then `SUCCEEDED` (or `FAILED`,
//! drawn once per job) -- unless the expiry comes first (`EXPIRED`, no results) or the client
//! cancels it (`CANCELLED`). No task runs in the background: reading a job computes where it
//! stands, so tests step through a job's life on explicit instants.
//!
//! A file job's results are a JSONL file, `files/batch-<job id>`, in an order that is not the
//! input's (seeded per job, so it repeats): clients must join lines by key, as users of the real
//! API learned (python-genai#1909). An inline job's results keep the input order, as the
//! reference documents. Batch requests never count against the interactive RPM, TPM or RPD;
//! they have their own limits: unfinished jobs per project and enqueued tokens per model.

use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::catalog::ModelInfo;
use crate::errors::{ApiError, QuotaKind, Status};
use crate::faults::{self, Fault};
use crate::reply;
use crate::request::{self, GenerateRequest, field, reject_unknown};
use crate::seeds::{lowercase_id, mix};
use crate::settings::{Batch, Faults};
use crate::timestamps::WallClock;
use crate::wire::GenerateContentResponse;

/// Characters in a batch id (36 lowercase alphanumerics, as captured).
const JOB_ID_LEN: usize = 36;
/// The `@type` of a batch operation's metadata. The capture says `v1main` under `v1beta` too.
const BATCH_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch";
/// The `@type` of a finished operation's `response`.
const OUTPUT_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput";
/// The MIME type of a results file (*assumed*).
pub const RESULTS_MIME_TYPE: &str = "application/jsonl";

const BATCH_FIELDS: &[&str] = &[
    "name",
    "model",
    "displayName",
    "display_name",
    "inputConfig",
    "input_config",
    "output",
    "createTime",
    "create_time",
    "endTime",
    "end_time",
    "updateTime",
    "update_time",
    "batchStats",
    "batch_stats",
    "state",
    "priority",
    "webhookConfig",
    "webhook_config",
];
const INPUT_FIELDS: &[&str] = &["fileName", "file_name", "requests"];
const INLINE_FIELDS: &[&str] = &["request", "metadata"];
const LINE_FIELDS: &[&str] = &["key", "request"];

/// A job's state, as the wire names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Queued.
    Pending,
    /// Requests are being answered.
    Running,
    /// Done, with results.
    Succeeded,
    /// Done, without results, with an `error`.
    Failed,
    /// Cancelled by the client before it finished.
    Cancelled,
    /// Not done before the expiry; no results.
    Expired,
}

impl State {
    /// `BATCH_STATE_*`.
    pub fn wire_name(self) -> &'static str {
        match self {
            State::Pending => "BATCH_STATE_PENDING",
            State::Running => "BATCH_STATE_RUNNING",
            State::Succeeded => "BATCH_STATE_SUCCEEDED",
            State::Failed => "BATCH_STATE_FAILED",
            State::Cancelled => "BATCH_STATE_CANCELLED",
            State::Expired => "BATCH_STATE_EXPIRED",
        }
    }

    /// True once nothing more will happen.
    pub fn is_done(self) -> bool {
        !matches!(self, State::Pending | State::Running)
    }
}

/// Where a job's input came from; its output goes the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `inputConfig.requests`: results inline in the operation.
    Inline,
    /// `inputConfig.fileName` (`files/<id>`): results in `files/batch-<job id>`.
    File(String),
}

/// What a create request asks for, before its input is read.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    /// `displayName` (may be empty).
    pub display_name: String,
    /// `priority` (an int64, 0 by default).
    pub priority: i64,
    /// The requests themselves, or the file that holds them.
    pub input: InputSpec,
}

/// The input as the request gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// Inline `requests.requests`, each `{"request": ..., "metadata": ...}`.
    Inline(Vec<Value>),
    /// A file name, `files/<id>`.
    File(String),
}

/// One request of a job, read: its tag (the inline `metadata`, or the file line's `key`) and
/// the request, or why it cannot be served.
#[derive(Clone, Debug)]
pub struct ParsedLine {
    /// Echoed back beside the answer.
    pub tag: Option<Value>,
    /// The request.
    pub request: Result<GenerateRequest, ApiError>,
}

/// The answer to one request of a batch.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A GenerateContentResponse, as generateContent would have sent it.
    Response(Box<GenerateContentResponse>),
    /// A `google.rpc.Status`.
    Error(Status),
}

/// One answered request, with its tag.
#[derive(Clone, Debug)]
pub struct Line {
    tag: Option<Value>,
    answer: Answer,
}

impl Line {
    fn succeeded(&self) -> bool {
        matches!(self.answer, Answer::Response(_))
    }
}

/// Reads a create body: `{"batch": {...}}`, camelCase or snake_case.
pub fn parse_create(body: &Map<String, Value>) -> Result<CreateRequest, ApiError> {
    reject_unknown(body, &["batch"], None)?;
    let batch = field(body, "batch", "batch")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::validation("BatchGenerateContentRequest.batch", "batch is required")
        })?;
    reject_unknown(batch, BATCH_FIELDS, Some("batch"))?;
    let display_name = match field(batch, "displayName", "display_name") {
        None => String::new(),
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(ApiError::invalid_value(
                "batch.display_name",
                "TYPE_STRING",
                other,
            ));
        }
    };
    if display_name.chars().count() > 512 {
        return Err(ApiError::invalid_argument(
            "batch.display_name is longer than 512 characters.",
        ));
    }
    let priority = match field(batch, "priority", "priority") {
        None => 0,
        Some(value) => int64(value)
            .ok_or_else(|| ApiError::invalid_value("batch.priority", "TYPE_INT64", value))?,
    };
    let missing_input = || {
        ApiError::validation(
            "BatchGenerateContentRequest.batch.input_config",
            "input_config is required",
        )
    };
    let input = field(batch, "inputConfig", "input_config")
        .and_then(Value::as_object)
        .ok_or_else(missing_input)?;
    reject_unknown(input, INPUT_FIELDS, Some("batch.input_config"))?;
    let file = field(input, "fileName", "file_name");
    let requests = field(input, "requests", "requests");
    let input = match (file, requests) {
        (Some(Value::String(name)), None) => InputSpec::File(name.clone()),
        (Some(other), None) => {
            return Err(ApiError::invalid_value(
                "batch.input_config.file_name",
                "TYPE_STRING",
                other,
            ));
        }
        (None, Some(requests)) => InputSpec::Inline(inline_items(requests)?),
        (None, None) => return Err(missing_input()),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_argument(
                "batch.input_config sets both file_name and requests; give exactly one.",
            ));
        }
    };
    Ok(CreateRequest {
        display_name,
        priority,
        input,
    })
}

/// `inputConfig.requests`: `{"requests": [...]}`.
fn inline_items(requests: &Value) -> Result<Vec<Value>, ApiError> {
    let at = "batch.input_config.requests";
    let object = requests.as_object().ok_or_else(|| {
        ApiError::invalid_value(
            at,
            "type.googleapis.com/google.ai.generativelanguage.v1beta.InlinedRequests",
            requests,
        )
    })?;
    reject_unknown(object, &["requests"], Some(at))?;
    let items = match object.get("requests") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    if items.is_empty() {
        return Err(ApiError::validation(
            "BatchGenerateContentRequest.batch.input_config.requests.requests",
            "requests must not be empty",
        ));
    }
    Ok(items)
}

/// An int64 as proto JSON allows it: a number or a numeric string.
fn int64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads inline requests. They are part of the create body, so a bad one refuses the whole
/// create with a 400 naming it (*assumed*: the real service parses the body as one message).
pub fn parse_inline(items: &[Value], version: &str) -> Result<Vec<ParsedLine>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("batch.input_config.requests.requests[{i}]");
            let object = item.as_object().ok_or_else(|| {
                ApiError::invalid_value(
                    &at,
                    "type.googleapis.com/google.ai.generativelanguage.v1beta.InlinedRequest",
                    item,
                )
            })?;
            reject_unknown(object, INLINE_FIELDS, Some(&at))?;
            let request = field(object, "request", "request")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    ApiError::validation(
                        &format!("BatchGenerateContentRequest.{at}.request"),
                        "request is required",
                    )
                })?;
            Ok(ParsedLine {
                tag: field(object, "metadata", "metadata").cloned(),
                request: Ok(request::generate_request(request, version)?),
            })
        })
        .collect()
}

/// Reads a JSONL input file: one `{"key": ..., "request": {...}}` per line, blank lines
/// skipped. A line that cannot be served becomes an error line of its own (with its key when
/// it has one); it does not refuse the job.
pub fn parse_jsonl(data: &[u8], version: &str) -> Vec<ParsedLine> {
    data.split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| parse_jsonl_line(line, version))
        .collect()
}

fn parse_jsonl_line(line: &[u8], version: &str) -> ParsedLine {
    let object = match request::decode(line) {
        Ok(object) => object,
        Err(error) => {
            return ParsedLine {
                tag: None,
                request: Err(error),
            };
        }
    };
    let tag = object.get("key").cloned();
    let request = reject_unknown(&object, LINE_FIELDS, None).and_then(|()| {
        let request = field(&object, "request", "request")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::validation("request", "request is required"))?;
        request::generate_request(request, version)
    });
    ParsedLine { tag, request }
}

/// The enqueued-token limit of `model` on a paid tier (1, 2 or 3), from the rate-limits page
/// (docs/wire.md#batch-mode). The 2.0 models follow their 2.5 counterparts (*assumed*).
pub fn enqueued_token_limit(model: &ModelInfo, tier: u8) -> u64 {
    const M: u64 = 1_000_000;
    let (tier1, tier2, tier3) = if model.model_version.contains("pro") {
        (5 * M, 500 * M, 1_000 * M)
    } else if model.model_version.contains("flash-lite") {
        (10 * M, 500 * M, 1_000 * M)
    } else {
        (3 * M, 400 * M, 1_000 * M)
    };
    match tier {
        0 | 1 => tier1,
        2 => tier2,
        _ => tier3,
    }
}

/// Answers every request of a job, in input order, as generateContent would: the request's own
/// generator (seeded from the job's), the fault options drawn per request (503 and 500 become
/// error lines, odd bodies and blocked prompts their bodies; hanging, closing and broken
/// streams have no batch equivalent and answer normally).
pub fn answer_lines(
    lines: Vec<ParsedLine>,
    model: &'static ModelInfo,
    faults: &Faults,
    job_seed: u64,
) -> Vec<Line> {
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let mut rng = SmallRng::seed_from_u64(mix(job_seed, i as u64 + 1));
            let answer = match line.request {
                Err(error) => Answer::Error(Status::from(&error)),
                Ok(mut request) => {
                    // A batch is its own tier; a serviceTier in one of its requests is moot.
                    request.service_tier = None;
                    match faults::draw(faults, false, &mut rng) {
                        Fault::Overloaded => Answer::Error(Status::from(&ApiError::overloaded())),
                        Fault::Internal => Answer::Error(Status::from(&ApiError::internal())),
                        fault => {
                            let odd = match fault {
                                Fault::Odd(odd) => Some(odd),
                                _ => None,
                            };
                            let plan = reply::plan(&request, model, odd, &mut rng);
                            Answer::Response(Box::new(plan.unary_body()))
                        }
                    }
                }
            };
            Line {
                tag: line.tag,
                answer,
            }
        })
        .collect()
}

/// Where a job stands at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Its state.
    pub state: State,
    /// Requests answered so far (the first this many lines, in output order).
    pub completed: usize,
    /// When it ended, once it has.
    pub ended: Option<Instant>,
}

/// One job.
#[derive(Debug)]
pub struct Job {
    /// The id, without `batches/`.
    pub id: String,
    /// The project (a hash of the API key) that owns it.
    pub project: u64,
    model_id: &'static str,
    model_version: &'static str,
    display_name: String,
    priority: i64,
    /// Where the input came from.
    pub input: Input,
    /// The answers, in output order.
    lines: Vec<Line>,
    prompt_tokens: u64,
    created: Instant,
    /// Drawn at creation: the job ends FAILED.
    fails: bool,
    cancelled: Option<Instant>,
    /// The results file was handed to the file store.
    published: bool,
    seq: u64,
}

impl Job {
    /// Where the job stands at `now`.
    pub fn progress(&self, now: Instant, settings: &Batch) -> Progress {
        let turnaround = settings.turnaround;
        let (state, planned_end) = if settings.expiry < turnaround {
            (State::Expired, self.at(settings.expiry))
        } else if self.fails {
            (State::Failed, self.at(turnaround))
        } else {
            (State::Succeeded, self.at(turnaround))
        };
        let (state, end) = match self.cancelled {
            Some(at) if at < planned_end => (State::Cancelled, at),
            _ => (state, planned_end),
        };
        if now >= end {
            let completed = match state {
                State::Succeeded | State::Failed => self.lines.len(),
                _ => self.completed_at(end, turnaround),
            };
            return Progress {
                state,
                completed,
                ended: Some(end),
            };
        }
        let running_from = self.at(turnaround / 5);
        Progress {
            state: if now < running_from {
                State::Pending
            } else {
                State::Running
            },
            completed: self.completed_at(now, turnaround),
            ended: None,
        }
    }

    /// The progress to answer a create with: just made, nothing done.
    pub fn created(&self) -> Progress {
        Progress {
            state: State::Pending,
            completed: 0,
            ended: None,
        }
    }

    /// `created + delay`, or `created` itself if that would overflow the clock.
    fn at(&self, delay: Duration) -> Instant {
        self.created.checked_add(delay).unwrap_or(self.created)
    }

    /// Requests done at `at`: none while pending, then evenly over the running part.
    fn completed_at(&self, at: Instant, turnaround: Duration) -> usize {
        let pending = turnaround / 5;
        let running = turnaround - pending;
        let into = at.saturating_duration_since(self.at(pending));
        if running.is_zero() || into >= running {
            return if at >= self.at(pending) {
                self.lines.len()
            } else {
                0
            };
        }
        let share = into.as_secs_f64() / running.as_secs_f64();
        ((self.lines.len() as f64 * share).floor() as usize).min(self.lines.len())
    }

    /// The `Operation` for this job at `progress`. `inline_output` false leaves inline
    /// results out (a list shows none).
    pub fn operation<'a>(
        &'a self,
        progress: Progress,
        clock: &WallClock,
        inline_output: bool,
    ) -> Operation<'a> {
        let output = (progress.state == State::Succeeded)
            .then(|| self.output(inline_output))
            .flatten();
        let error = (progress.state == State::Failed).then(|| Status {
            code: 13,
            // Inferred wording: a failed job's error was not captured.
            message: "The batch failed. Please retry it.".to_string(),
            details: Vec::new(),
        });
        let created = clock.rfc3339(self.created);
        let updated = progress
            .ended
            .map_or_else(|| created.clone(), |at| clock.rfc3339(at));
        Operation {
            name: format!("batches/{}", self.id),
            metadata: Metadata {
                kind: BATCH_TYPE,
                model: format!("models/{}", self.model_id),
                display_name: &self.display_name,
                output: output.clone(),
                create_time: created,
                end_time: progress.ended.map(|at| clock.rfc3339(at)),
                update_time: updated,
                batch_stats: self.stats(progress),
                state: progress.state.wire_name(),
                priority: (self.priority != 0).then(|| self.priority.to_string()),
                name: format!("batches/{}", self.id),
            },
            done: progress.state.is_done(),
            response: output.map(|output| TypedOutput {
                kind: OUTPUT_TYPE,
                output,
            }),
            error,
        }
    }

    fn output(&self, inline_output: bool) -> Option<Output<'_>> {
        match &self.input {
            Input::File(_) => Some(Output::File {
                responses_file: format!("files/{}", self.results_file_id()),
            }),
            Input::Inline if inline_output => Some(Output::Inline {
                inlined_responses: InlinedResponses {
                    inlined_responses: self.lines.iter().map(InlinedResponse::of).collect(),
                },
            }),
            Input::Inline => None,
        }
    }

    /// Counters as strings, zero ones left out (proto3 JSON).
    fn stats(&self, progress: Progress) -> BatchStats {
        let total = self.lines.len();
        let (succeeded, failed) = if progress.state == State::Failed {
            (0, total)
        } else {
            let done = &self.lines[..progress.completed.min(total)];
            let succeeded = done.iter().filter(|l| l.succeeded()).count();
            (succeeded, done.len() - succeeded)
        };
        let pending = total.saturating_sub(succeeded + failed);
        let count = |n: usize| (n > 0).then(|| n.to_string());
        BatchStats {
            request_count: count(total),
            successful_request_count: count(succeeded),
            failed_request_count: count(failed),
            pending_request_count: count(pending),
        }
    }

    /// `batch-<job id>`: the id of the results file.
    pub fn results_file_id(&self) -> String {
        format!("{}{}", crate::files::GENERATED_PREFIX, self.id)
    }

    /// The results file: one compact JSON object per line, `{"key": ..., "response": ...}` or
    /// `{"key": ..., "error": ...}`.
    fn results_file(&self) -> Bytes {
        let mut out = Vec::new();
        for line in &self.lines {
            let (response, error) = match &line.answer {
                Answer::Response(response) => (Some(response.as_ref()), None),
                Answer::Error(status) => (None, Some(status)),
            };
            let entry = ResultLine {
                key: line.tag.as_ref(),
                response,
                error,
            };
            if serde_json::to_writer(&mut out, &entry).is_ok() {
                out.push(b'\n');
            }
        }
        Bytes::from(out)
    }
}

/// A results file ready for the file store.
#[derive(Clone, Debug)]
pub struct ResultsFile {
    /// The owning project.
    pub project: u64,
    /// `batch-<job id>`.
    pub id: String,
    /// The JSONL bytes.
    pub data: Bytes,
    /// When the job ended: the file's creation time.
    pub created: Instant,
}

/// A job about to be made: everything decided, checked against the limits at insertion.
#[derive(Debug)]
pub struct NewJob {
    /// The caller's project.
    pub project: u64,
    /// The model.
    pub model: &'static ModelInfo,
    /// From the request.
    pub display_name: String,
    /// From the request.
    pub priority: i64,
    /// Where the input came from.
    pub input: Input,
    /// The answered requests, in input order.
    pub lines: Vec<Line>,
    /// Prompt tokens of the servable requests (what the enqueued-token limit counts).
    pub prompt_tokens: u64,
    /// From [`Jobs::reserve`].
    pub number: u64,
}

/// Every job the emulator keeps, in creation order.
pub struct Jobs {
    settings: Batch,
    seed: u64,
    jobs: Vec<Job>,
    next_number: u64,
}

impl Jobs {
    /// No jobs yet.
    pub fn new(settings: Batch, seed: u64) -> Jobs {
        Jobs {
            settings,
            seed,
            jobs: Vec::new(),
            next_number: 0,
        }
    }

    /// The settings jobs follow.
    pub fn settings(&self) -> &Batch {
        &self.settings
    }

    /// Reserves a job number; its seed decides the job's answers, id and fate.
    pub fn reserve(&mut self) -> (u64, u64) {
        self.next_number += 1;
        (self.next_number, mix(self.seed, self.next_number))
    }

    /// Checks that a job of `tokens` prompt tokens on `model` would be admitted now, before the
    /// work of answering it is done ([`Jobs::insert`] checks again).
    pub fn admit(
        &self,
        project: u64,
        model: &'static ModelInfo,
        tokens: u64,
        now: Instant,
    ) -> Result<(), ApiError> {
        self.check_limits(project, model, tokens, now)
    }

    /// Checks the limits and keeps the job.
    pub fn insert(&mut self, new: NewJob, now: Instant) -> Result<&Job, ApiError> {
        self.check_limits(new.project, new.model, new.prompt_tokens, now)?;
        if self.jobs.len() >= self.settings.max_kept_jobs {
            self.forget_oldest_finished(new.model, now)?;
        }
        let mut rng = SmallRng::seed_from_u64(mix(self.seed, new.number));
        let id = lowercase_id(&mut rng, JOB_ID_LEN);
        let fails = rng.random::<f64>() < self.settings.fail_jobs;
        let mut lines = new.lines;
        if matches!(new.input, Input::File(_)) {
            lines.shuffle(&mut rng);
        }
        self.jobs.push(Job {
            id,
            project: new.project,
            model_id: new.model.id,
            model_version: new.model.model_version,
            display_name: new.display_name,
            priority: new.priority,
            input: new.input,
            lines,
            prompt_tokens: new.prompt_tokens,
            created: now,
            fails,
            cancelled: None,
            published: false,
            seq: new.number,
        });
        let last = self.jobs.len() - 1;
        Ok(&self.jobs[last])
    }

    /// Unfinished jobs per project, and enqueued tokens per project and model.
    fn check_limits(
        &self,
        project: u64,
        model: &'static ModelInfo,
        tokens: u64,
        now: Instant,
    ) -> Result<(), ApiError> {
        let active: Vec<&Job> = self
            .jobs
            .iter()
            .filter(|job| {
                job.project == project && !job.progress(now, &self.settings).state.is_done()
            })
            .collect();
        let max_active = self.settings.max_active_jobs;
        if active.len() >= max_active {
            let wait = self.first_end(active.iter().copied(), now);
            return Err(ApiError::quota_exceeded(
                &[(QuotaKind::BatchConcurrentJobs, clamp_u32(max_active as u64))],
                model.model_version,
                wait,
            ));
        }
        let limit = self
            .settings
            .enqueued_tokens
            .unwrap_or_else(|| enqueued_token_limit(model, self.settings.tier));
        if limit == 0 {
            return Ok(());
        }
        let same_model: Vec<&Job> = active
            .into_iter()
            .filter(|job| job.model_version == model.model_version)
            .collect();
        let enqueued: u64 = same_model.iter().map(|job| job.prompt_tokens).sum();
        if enqueued.saturating_add(tokens) > limit {
            let wait = if tokens > limit {
                self.settings.expiry.min(self.settings.turnaround)
            } else {
                self.first_end(same_model.into_iter(), now)
            };
            return Err(ApiError::quota_exceeded(
                &[(QuotaKind::BatchEnqueuedTokens, clamp_u32(limit))],
                model.model_version,
                wait,
            ));
        }
        Ok(())
    }

    /// Time until the first of `jobs` ends (and frees what it holds).
    fn first_end<'a>(&self, jobs: impl Iterator<Item = &'a Job>, now: Instant) -> Duration {
        let run = self.settings.turnaround.min(self.settings.expiry);
        jobs.map(|job| job.at(run).saturating_duration_since(now))
            .min()
            .unwrap_or(run)
    }

    /// Makes room for one more job by forgetting the oldest finished one; a 429 if every
    /// kept job is still running.
    fn forget_oldest_finished(
        &mut self,
        model: &'static ModelInfo,
        now: Instant,
    ) -> Result<(), ApiError> {
        let settings = &self.settings;
        let oldest = self
            .jobs
            .iter()
            .position(|job| job.progress(now, settings).state.is_done());
        match oldest {
            Some(index) => {
                self.jobs.remove(index);
                Ok(())
            }
            None => Err(ApiError::quota_exceeded(
                &[(
                    QuotaKind::BatchConcurrentJobs,
                    clamp_u32(self.settings.max_kept_jobs as u64),
                )],
                model.model_version,
                self.settings.turnaround.min(self.settings.expiry),
            )),
        }
    }

    /// The job `id` of `project`.
    pub fn job(&self, project: u64, id: &str) -> Option<&Job> {
        self.jobs
            .iter()
            .find(|job| job.id == id && job.project == project)
    }

    /// Cancels the job if it has not finished; false if there is no such job.
    pub fn cancel(&mut self, project: u64, id: &str, now: Instant) -> bool {
        let settings = &self.settings;
        let Some(job) = self
            .jobs
            .iter_mut()
            .find(|job| job.id == id && job.project == project)
        else {
            return false;
        };
        if !job.progress(now, settings).state.is_done() {
            job.cancelled = Some(now);
        }
        true
    }

    /// Forgets the job; false if there was none.
    pub fn delete(&mut self, project: u64, id: &str) -> bool {
        let before = self.jobs.len();
        self.jobs
            .retain(|job| !(job.id == id && job.project == project));
        self.jobs.len() < before
    }

    /// One page of `project`'s jobs, newest first, after sequence number `after`; the sequence
    /// number to continue from, if more follow.
    pub fn list(&self, project: u64, after: Option<u64>, size: usize) -> (Vec<&Job>, Option<u64>) {
        let mut mine: Vec<&Job> = self
            .jobs
            .iter()
            .rev()
            .filter(|job| job.project == project && after.is_none_or(|seq| job.seq < seq))
            .collect();
        let more = mine.len() > size;
        mine.truncate(size);
        let next = more.then(|| mine.last().map(|job| job.seq)).flatten();
        (mine, next)
    }

    /// The results files of file jobs that have succeeded since the last call, each once.
    pub fn take_results(&mut self, now: Instant) -> Vec<ResultsFile> {
        let settings = &self.settings;
        let mut ready = Vec::new();
        for job in &mut self.jobs {
            if job.published || !matches!(job.input, Input::File(_)) {
                continue;
            }
            let progress = job.progress(now, settings);
            if progress.state == State::Succeeded {
                job.published = true;
                ready.push(ResultsFile {
                    project: job.project,
                    id: job.results_file_id(),
                    data: job.results_file(),
                    created: progress.ended.unwrap_or(now),
                });
            }
        }
        ready
    }

    /// Jobs kept.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True when no job is kept.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A long-running operation, fields in the order of the captured one.
#[derive(Clone, Debug, Serialize)]
pub struct Operation<'a> {
    /// `batches/<id>`.
    pub name: String,
    /// The batch itself.
    pub metadata: Metadata<'a>,
    /// Left out until true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
    /// The output again, with its own `@type`, once succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<TypedOutput<'a>>,
    /// A failed job's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
}

/// `metadata`: the GenerateContentBatch.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata<'a> {
    /// `@type`.
    #[serde(rename = "@type")]
    pub kind: &'static str,
    /// `models/<id>`.
    pub model: String,
    /// Left out when empty.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub display_name: &'a str,
    /// Once succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Output<'a>>,
    /// RFC 3339.
    pub create_time: String,
    /// Once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// RFC 3339.
    pub update_time: String,
    /// Counters.
    pub batch_stats: BatchStats,
    /// `BATCH_STATE_*`.
    pub state: &'static str,
    /// An int64 string, left out when 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// `batches/<id>` again.
    pub name: String,
}

/// `batchStats`: int64 counters as strings, zero ones left out.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    /// Requests in the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_count: Option<String>,
    /// Answered with a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successful_request_count: Option<String>,
    /// Answered with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_request_count: Option<String>,
    /// Not answered yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_request_count: Option<String>,
}

/// A job's output: inline answers, or the results file.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Output<'a> {
    /// `{"inlinedResponses": {"inlinedResponses": [...]}}` (the double nesting is real).
    Inline {
        /// The outer object.
        #[serde(rename = "inlinedResponses")]
        inlined_responses: InlinedResponses<'a>,
    },
    /// `{"responsesFile": "files/batch-<id>"}`.
    File {
        /// The file's name.
        #[serde(rename = "responsesFile")]
        responses_file: String,
    },
}

/// The inner `inlinedResponses` object.
#[derive(Clone, Debug, Serialize)]
pub struct InlinedResponses<'a> {
    /// One per request, in input order.
    #[serde(rename = "inlinedResponses")]
    pub inlined_responses: Vec<InlinedResponse<'a>>,
}

/// One inline answer: `response` or `error`, then the request's `metadata`.
#[derive(Clone, Debug, Serialize)]
pub struct InlinedResponse<'a> {
    /// The answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'a GenerateContentResponse>,
    /// Or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a Status>,
    /// The request's metadata, as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a Value>,
}

impl<'a> InlinedResponse<'a> {
    fn of(line: &'a Line) -> InlinedResponse<'a> {
        let (response, error) = match &line.answer {
            Answer::Response(response) => (Some(response.as_ref()), None),
            Answer::Error(status) => (None, Some(status)),
        };
        InlinedResponse {
            response,
            error,
            metadata: line.tag.as_ref(),
        }
    }
}

/// The operation's `response`: the output with its `@type` first.
#[derive(Clone, Debug, Serialize)]
pub struct TypedOutput<'a> {
    /// `@type`.
    #[serde(rename = "@type")]
    pub kind: &'static str,
    /// The output's fields.
    #[serde(flatten)]
    pub output: Output<'a>,
}

/// One line of a results file.
#[derive(Serialize)]
struct ResultLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a GenerateContentResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Status>,
}

/// The body of `batches.list`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOperations<'a> {
    /// This page (left out when empty, as proto3 JSON does).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation<'a>>,
    /// Left out on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    fn flash() -> &'static ModelInfo {
        catalog::find("gemini-2.5-flash").unwrap()
    }

    fn lines(n: usize) -> Vec<ParsedLine> {
        (0..n)
            .map(|i| ParsedLine {
                tag: Some(Value::String(format!("k{i}"))),
                request: request::generate_request(
                    request::decode(
                        format!(r#"{{"contents":[{{"parts":[{{"text":"question {i}"}}]}}]}}"#)
                            .as_bytes(),
                    )
                    .as_ref()
                    .unwrap(),
                    "v1beta",
                ),
            })
            .collect()
    }

    fn make(jobs: &mut Jobs, input: Input, n: usize, now: Instant) -> String {
        let (number, seed) = jobs.reserve();
        let answered = answer_lines(lines(n), flash(), &Faults::default(), seed);
        let tokens = 3 * n as u64;
        jobs.insert(
            NewJob {
                project: 1,
                model: flash(),
                display_name: "job".into(),
                priority: 0,
                input,
                lines: answered,
                prompt_tokens: tokens,
                number,
            },
            now,
        )
        .map(|job| job.id.clone())
        .unwrap()
    }

    fn settings(turnaround: u64, expiry: u64) -> Batch {
        Batch {
            turnaround: Duration::from_secs(turnaround),
            expiry: Duration::from_secs(expiry),
            ..Batch::default()
        }
    }

    #[test]
    fn a_job_goes_pending_running_succeeded_with_stats_moving() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(settings(100, 1000), 1);
        let id = make(&mut jobs, Input::Inline, 8, t0);
        assert_eq!(id.len(), JOB_ID_LEN);
        let job = jobs.job(1, &id).unwrap();
        let at = |secs: u64| job.progress(t0 + Duration::from_secs(secs), jobs.settings());
        assert_eq!((at(0).state, at(0).completed), (State::Pending, 0));
        assert_eq!((at(19).state, at(19).completed), (State::Pending, 0));
        assert_eq!((at(20).state, at(20).completed), (State::Running, 0));
        assert_eq!((at(60).state, at(60).completed), (State::Running, 4));
        assert_eq!(at(99).state, State::Running);
        let done = at(100);
        assert_eq!((done.state, done.completed), (State::Succeeded, 8));
        assert_eq!(done.ended, Some(t0 + Duration::from_secs(100)));
        let stats = job.stats(at(60));
        assert_eq!(stats.request_count.as_deref(), Some("8"));
        assert_eq!(stats.successful_request_count.as_deref(), Some("4"));
        assert_eq!(stats.pending_request_count.as_deref(), Some("4"));
        assert_eq!(stats.failed_request_count, None);
    }

    #[test]
    fn expiry_cancel_and_failure_end_a_job_without_results() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(settings(100, 50), 1);
        let id = make(&mut jobs, Input::Inline, 4, t0);
        let job = jobs.job(1, &id).unwrap();
        let expired = job.progress(t0 + Duration::from_secs(50), jobs.settings());
        assert_eq!((expired.state, expired.completed), (State::Expired, 1));
        let clock = WallClock::now();
        let operation = job.operation(expired, &clock, true);
        assert!(
            operation.done && operation.response.is_none() && operation.metadata.output.is_none()
        );

        let mut jobs = Jobs::new(settings(100, 1000), 1);
        let id = make(&mut jobs, Input::Inline, 4, t0);
        assert!(jobs.cancel(1, &id, t0 + Duration::from_secs(10)));
        let job = jobs.job(1, &id).unwrap();
        let cancelled = job.progress(t0 + Duration::from_secs(500), jobs.settings());
        assert_eq!(cancelled.state, State::Cancelled);
        assert_eq!(cancelled.ended, Some(t0 + Duration::from_secs(10)));
        // Cancelling a finished job changes nothing.
        let id = make(&mut jobs, Input::Inline, 1, t0);
        assert!(jobs.cancel(1, &id, t0 + Duration::from_secs(100)));
        let job = jobs.job(1, &id).unwrap();
        assert_eq!(
            job.progress(t0 + Duration::from_secs(100), jobs.settings())
                .state,
            State::Succeeded
        );

        let mut jobs = Jobs::new(
            Batch {
                fail_jobs: 1.0,
                ..settings(10, 1000)
            },
            1,
        );
        let id = make(&mut jobs, Input::Inline, 3, t0);
        let job = jobs.job(1, &id).unwrap();
        let failed = job.progress(t0 + Duration::from_secs(10), jobs.settings());
        let operation = job.operation(failed, &clock, true);
        assert_eq!(operation.metadata.state, "BATCH_STATE_FAILED");
        assert_eq!(operation.error.as_ref().map(|e| e.code), Some(13));
        assert_eq!(
            operation
                .metadata
                .batch_stats
                .failed_request_count
                .as_deref(),
            Some("3")
        );
    }

    #[test]
    fn file_results_are_shuffled_reproducibly_and_published_once() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(settings(0, 1000), 1);
        let id = make(&mut jobs, Input::File("files/in".into()), 20, t0);
        let results = jobs.take_results(t0);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].id, format!("batch-{id}"));
        assert!(jobs.take_results(t0).is_empty(), "published once");
        let text = String::from_utf8(results[0].data.to_vec()).unwrap();
        let keys: Vec<String> = text
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["key"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let input: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        assert_ne!(keys, input, "not in input order");
        let mut sorted = keys.clone();
        sorted.sort_by_key(|k| k[1..].parse::<u32>().unwrap());
        assert_eq!(sorted, input, "every key once");

        let mut again = Jobs::new(settings(0, 1000), 1);
        make(&mut again, Input::File("files/in".into()), 20, t0);
        assert_eq!(
            again.take_results(t0)[0].data,
            results[0].data,
            "same seed, same file"
        );
    }

    #[test]
    fn limits_refuse_with_a_429_and_free_up_when_jobs_end() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(
            Batch {
                enqueued_tokens: Some(10),
                max_active_jobs: 2,
                ..settings(100, 1000)
            },
            1,
        );
        make(&mut jobs, Input::Inline, 3, t0); // 9 tokens
        let (number, seed) = jobs.reserve();
        let new = |number| NewJob {
            project: 1,
            model: flash(),
            display_name: String::new(),
            priority: 0,
            input: Input::Inline,
            lines: answer_lines(lines(1), flash(), &Faults::default(), seed),
            prompt_tokens: 3,
            number,
        };
        let error = jobs
            .insert(new(number), t0 + Duration::from_secs(40))
            .unwrap_err();
        assert_eq!((error.code, error.status), (429, "RESOURCE_EXHAUSTED"));
        assert!(
            error.message.contains("batch_enqueued_tokens, limit: 10"),
            "{}",
            error.message
        );
        // The wait is the time until the first job ends.
        assert!(
            error.message.ends_with("Please retry in 60.000000000s."),
            "{}",
            error.message
        );
        assert!(
            jobs.insert(new(number), t0 + Duration::from_secs(100))
                .is_ok()
        );
    }

    #[test]
    fn list_pages_newest_first_across_pages() {
        let t0 = Instant::now();
        let mut jobs = Jobs::new(settings(0, 1000), 1);
        let ids: Vec<String> = (0..5)
            .map(|_| make(&mut jobs, Input::Inline, 1, t0))
            .collect();
        let (page, next) = jobs.list(1, None, 2);
        assert_eq!(
            page.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            [ids[4].clone(), ids[3].clone()]
        );
        let (page, next) = jobs.list(1, next, 2);
        assert_eq!(page.len(), 2);
        let (page, next) = jobs.list(1, next, 2);
        assert_eq!((page.len(), next), (1, None));
        assert_eq!(
            jobs.list(2, None, 10).0.len(),
            0,
            "another project sees none"
        );
        assert!(jobs.delete(1, &ids[0]));
        assert!(jobs.job(1, &ids[0]).is_none());
    }

    #[test]
    fn create_bodies_are_read_in_both_spellings_and_checked() {
        let body = |json: &str| request::decode(json.as_bytes()).unwrap();
        let camel = parse_create(&body(
            r#"{"batch":{"displayName":"j","priority":"3","inputConfig":{"requests":{"requests":[{"request":{"contents":[{"parts":[{"text":"hi"}]}]},"metadata":{"key":"a"}}]}}}}"#,
        ))
        .unwrap();
        assert_eq!((camel.display_name.as_str(), camel.priority), ("j", 3));
        let InputSpec::Inline(items) = camel.input else {
            panic!("inline")
        };
        let parsed = parse_inline(&items, "v1beta").unwrap();
        assert_eq!(parsed[0].tag, Some(serde_json::json!({"key": "a"})));
        let snake = parse_create(&body(
            r#"{"batch":{"display_name":"j","input_config":{"file_name":"files/abc"}}}"#,
        ))
        .unwrap();
        assert_eq!(snake.input, InputSpec::File("files/abc".into()));
        for bad in [
            r#"{}"#,
            r#"{"batch":{"displayName":"j"}}"#,
            r#"{"batch":{"inputConfig":{"requests":{"requests":[]}}}}"#,
            r#"{"batch":{"inputConfig":{"fileName":"files/a","requests":{"requests":[{}]}}}}"#,
            r#"{"batch":{"inputConfig":{"fileName":"files/a"},"colour":1}}"#,
        ] {
            assert_eq!(parse_create(&body(bad)).unwrap_err().code, 400, "{bad}");
        }
        let bad_request = serde_json::json!([{"request": {"contents": []}}]);
        assert_eq!(
            parse_inline(bad_request.as_array().unwrap(), "v1beta")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn jsonl_lines_that_cannot_be_served_become_error_lines() {
        let data =
            b"{\"key\":\"a\",\"request\":{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}}\n\n\
                     not json\n{\"key\":\"b\",\"request\":{}}\n{\"key\":\"c\",\"extra\":1}\n";
        let lines = parse_jsonl(data, "v1beta");
        assert_eq!(lines.len(), 4);
        assert!(lines[0].request.is_ok());
        assert!(lines[1].request.is_err() && lines[1].tag.is_none());
        assert_eq!(lines[2].tag, Some(Value::String("b".into())));
        assert!(lines[2].request.is_err());
        assert!(lines[3].request.is_err());
    }

    #[test]
    fn faults_apply_per_line() {
        let faults = Faults {
            fail_503: 0.5,
            ..Faults::default()
        };
        let answered = answer_lines(lines(40), flash(), &faults, 9);
        let errors: Vec<&Status> = answered
            .iter()
            .filter_map(|l| match &l.answer {
                Answer::Error(status) => Some(status),
                Answer::Response(_) => None,
            })
            .collect();
        assert!((5..35).contains(&errors.len()), "{}", errors.len());
        assert!(
            errors
                .iter()
                .all(|s| s.code == 14 && s.message.contains("overloaded"))
        );
    }
}
