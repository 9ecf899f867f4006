//! `--ramp`: find where the rate limit starts, the way the course asks.
//!
//! The seed's step 4 asks: "What happens if you increase the number of
//! iterations? At what point do you hit rate limits?" The ramp answers it
//! by experiment: it sends 10 requests at once, then 20, then 40, ...
//! (without the limiter and without retries, so that every 429 shows), and
//! stops at the first batch the server answers with a 429. Then it reports
//! what the server said: which quota, its limit, and how long to wait.
//!
//! One thing to keep in mind when reading its output: the batches follow
//! each other within seconds, so they all count against the *same*
//! per-minute window. Against 10 requests per minute, the first 10 pass and
//! then *none* of the next 20 do: the window is already full. The ramp says
//! so rather than pretending each batch started afresh.

use std::{future::Future, process::ExitCode};

use common::{
    Client, Error,
    cli::CommonArgs,
    report::round3,
    run::{self, stops_the_run},
    shutdown::Shutdown,
    terminal,
    types::GenerateContentRequest,
};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

/// The first batch size.
pub const FIRST: u32 = 10;

/// The largest batch step 4's `--ramp` sends: 10, 20, 40, 80, 160, 320.
pub const MAX: u32 = 320;

/// `--ramp`, from the command line to the exit code: connect, send batches
/// of doubling size until the server says 429, and say what it said.
pub async fn run(args: &CommonArgs, shutdown: &Shutdown) -> ExitCode {
    let work = async {
        let session = run::session(args).await?;
        let (client, json) = (&session.client, args.json);
        find_breaking_point(client, &args.model, &args.prompt, MAX, json, shutdown).await
    };
    exit(work, shutdown).await
}

/// One batch of the ramp: how many went at once and what became of them.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Requests sent at once.
    pub requests: usize,
    /// Answered.
    pub answered: usize,
    /// Refused with 429.
    pub rate_limited: usize,
    /// Failed in any other way.
    pub failed: usize,
    /// Cut off by Ctrl-C.
    pub not_done: usize,
    /// From sending the batch to its last answer, in seconds.
    pub elapsed_s: f64,
}

/// What the ramp found.
#[derive(Debug)]
pub struct Ramp {
    /// Every batch sent, in order.
    pub steps: Vec<Step>,
    /// The first 429 of the breaking batch, if one broke.
    pub refusal: Option<Error>,
    /// The largest batch the ramp was allowed to send.
    pub max: u32,
    /// Print as JSON.
    pub json: bool,
}

/// The batch sizes: 10, 20, 40, ... up to `max` (at least one batch).
pub fn sizes(max: u32) -> Vec<u32> {
    let mut sizes = Vec::new();
    let mut n = FIRST.min(max);
    while n <= max {
        sizes.push(n);
        n = n.saturating_mul(2);
        if n == u32::MAX {
            break;
        }
    }
    sizes
}

/// Sends batches of doubling size until one meets a 429 (or `max` is
/// reached, or Ctrl-C). Prints each batch as it completes, unless `json`.
///
/// Returns an error if a request failed in a way that would fail every
/// request (a bad key, an unknown model).
pub async fn find_breaking_point(
    client: &Client,
    model: &str,
    prompt: &str,
    max: u32,
    json: bool,
    shutdown: &Shutdown,
) -> Result<Ramp, Error> {
    let request = GenerateContentRequest::from_prompt(prompt);
    let mut ramp = Ramp {
        steps: Vec::new(),
        refusal: None,
        max,
        json,
    };
    if !json {
        let sizes = sizes(max);
        let mut shown: Vec<String> = sizes.iter().take(4).map(u32::to_string).collect();
        if let (true, Some(last)) = (sizes.len() > 4, sizes.last()) {
            shown.push(format!("... up to {last}"));
        }
        terminal::print_line(format_args!(
            "ramp: {} requests at once, without the limiter or retries, until the server answers 429",
            shown.join(", ")
        ));
    }
    for n in sizes(max) {
        if shutdown.is_requested() {
            break;
        }
        let (step, refusal) = batch(client, model, &request, n as usize, shutdown).await?;
        if !json {
            terminal::print_line(step_line(&step, ramp.steps.len()));
        }
        let broke = step.rate_limited > 0;
        let cut_off = step.not_done > 0;
        ramp.steps.push(step);
        if broke {
            ramp.refusal = refusal;
            break;
        }
        if cut_off {
            break;
        }
    }
    Ok(ramp)
}

/// Sends `n` requests at once, once each, and counts what came back.
async fn batch(
    client: &Client,
    model: &str,
    request: &GenerateContentRequest,
    n: usize,
    shutdown: &Shutdown,
) -> Result<(Step, Option<Error>), Error> {
    let started = Instant::now();
    let calls = (0..n).map(|_| async {
        tokio::select! {
            result = client.generate_content(model, request) => Some(result),
            () = shutdown.grace_over() => None,
        }
    });
    let results = join_all(calls).await;
    let mut step = Step {
        requests: n,
        answered: 0,
        rate_limited: 0,
        failed: 0,
        not_done: 0,
        elapsed_s: round3(started.elapsed().as_secs_f64()),
    };
    let mut refusal: Option<Error> = None;
    for result in results {
        match result {
            Some(Ok(_)) => step.answered += 1,
            Some(Err(error)) if stops_the_run(&error) => return Err(error),
            Some(Err(error)) if error.is_rate_limited() => {
                step.rate_limited += 1;
                // Keep the most informative refusal: one that names its quota.
                let has_quota = |e: &Error| e.api().is_some_and(|a| a.quota.is_some());
                if refusal
                    .as_ref()
                    .is_none_or(|r| !has_quota(r) && has_quota(&error))
                {
                    refusal = Some(error);
                }
            }
            Some(Err(_)) => step.failed += 1,
            None => step.not_done += 1,
        }
    }
    Ok((step, refusal))
}

/// One batch, as a line: `  20 at once: 10 answered, 10 answered 429 (0.41 s)`.
fn step_line(step: &Step, earlier_batches: usize) -> String {
    let mut line = format!("{:>6} at once: {} answered", step.requests, step.answered);
    if step.rate_limited > 0 {
        line += &format!(", {} answered 429", step.rate_limited);
    }
    if step.failed > 0 {
        line += &format!(", {} failed otherwise", step.failed);
    }
    if step.not_done > 0 {
        line += &format!(", {} cut off by Ctrl-C", step.not_done);
    }
    line += &format!(" ({:.2} s)", step.elapsed_s);
    if step.rate_limited > 0 && earlier_batches > 0 {
        line += "; the earlier batches still count in the server's window";
    }
    line
}

impl Ramp {
    /// The batch size that met the first 429.
    pub fn breaking_point(&self) -> Option<usize> {
        self.refusal.as_ref()?;
        self.steps.last().map(|step| step.requests)
    }

    /// The conclusion, in words (one or two lines).
    pub fn conclusion(&self) -> String {
        let Some(n) = self.breaking_point() else {
            return match self.steps.last() {
                Some(step) if step.not_done > 0 => {
                    "interrupted by Ctrl-C before the server answered 429".into()
                }
                Some(step) => format!(
                    "no 429 up to {} requests at once: the limit is higher, or not per minute",
                    step.requests
                ),
                None => "interrupted by Ctrl-C before the first batch".into(),
            };
        };
        let sent_before: usize = self.steps.iter().rev().skip(1).map(|s| s.requests).sum();
        let mut text = format!(
            "breaking point: {n} requests at once, the first batch that met a 429 (a batch size, not the limit)"
        );
        if sent_before > 0 {
            text += &format!(
                "; the {sent_before} sent just before still counted in the server's window"
            );
        }
        if let Some(error) = &self.refusal {
            text += &format!("\nthe limit, as the server names it: {}", said(error));
        }
        text
    }

    /// The ramp as one JSON object, for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let api = self.refusal.as_ref().and_then(Error::api);
        let quota = api.and_then(|a| a.quota.as_ref());
        json!({
            "ramp": self.steps,
            "breaking_point": self.breaking_point(),
            "quota_id": quota.map(|q| q.quota_id.clone()),
            "limit": quota.and_then(|q| q.value.clone()),
            "per_day": quota.map(|q| q.is_per_day()),
            "retry_delay_s": api.and_then(|a| a.retry_delay).map(|d| round3(d.as_secs_f64())),
            "message": self.refusal.as_ref().map(ToString::to_string),
        })
    }
}

/// What a 429 said, in a few words: quota, limit, delay.
fn said(error: &Error) -> String {
    let Some(api) = error.api() else {
        return error.to_string();
    };
    let mut parts = Vec::new();
    match &api.quota {
        Some(quota) => {
            parts.push(format!("quota {}", quota.quota_id));
            if let Some(limit) = &quota.value {
                let per = if quota.is_per_day() { "day" } else { "minute" };
                let what = if quota.is_tokens() {
                    "input tokens"
                } else {
                    "requests"
                };
                parts.push(format!("limit {limit} {what} per {per}"));
            }
        }
        None => parts.push(format!("{} {}", api.http_status, api.status)),
    }
    if let Some(delay) = api.retry_delay {
        parts.push(format!("retry in {:.1} s", delay.as_secs_f64()));
    }
    parts.join(", ")
}

/// Prints what the ramp found and turns it into the exit code: 0 when it
/// ran to a conclusion (finding the limit is the point, not a failure), 130
/// after Ctrl-C (143 after SIGTERM), and as [`run::exit`] for an error
/// that stopped it.
///
/// A second signal, or the backstop after the grace period, quits at once.
pub async fn exit<E: Into<anyhow::Error>>(
    work: impl Future<Output = Result<Ramp, E>>,
    shutdown: &Shutdown,
) -> ExitCode {
    let result = tokio::select! {
        result = work => result,
        _ = shutdown.forced() => {
            return ExitCode::from(run::stopped_code(shutdown).unwrap_or(run::EXIT_INTERRUPTED));
        }
    };
    let stopped = run::stopped_code(shutdown);
    let ramp = match result {
        Ok(ramp) => ramp,
        Err(error) => {
            run::print_error(error);
            return ExitCode::from(stopped.unwrap_or(run::EXIT_FAILED));
        }
    };
    if ramp.json {
        terminal::print_line(ramp.to_json());
    } else {
        terminal::print_line(ramp.conclusion());
    }
    ExitCode::from(stopped.unwrap_or(run::EXIT_OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::error::{ApiError, QuotaViolation};
    use std::time::Duration;

    #[test]
    fn sizes_double_from_ten_up_to_the_max() {
        assert_eq!(sizes(320), [10, 20, 40, 80, 160, 320]);
        assert_eq!(sizes(100), [10, 20, 40, 80]);
        assert_eq!(sizes(5), [5]);
    }

    fn refusal() -> Error {
        Error::from(ApiError {
            http_status: 429,
            status: "RESOURCE_EXHAUSTED".into(),
            message: "You exceeded your current quota".into(),
            retry_delay: Some(Duration::from_millis(38_500)),
            quota: Some(QuotaViolation {
                quota_id: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier".into(),
                metric: "generativelanguage.googleapis.com/generate_content_free_tier_requests"
                    .into(),
                model: Some("gemini-2.5-flash".into()),
                value: Some("10".into()),
                malformed: false,
            }),
            reason: None,
        })
    }

    fn step(requests: usize, answered: usize, rate_limited: usize) -> Step {
        Step {
            requests,
            answered,
            rate_limited,
            failed: 0,
            not_done: 0,
            elapsed_s: 0.5,
        }
    }

    #[test]
    fn the_conclusion_names_the_batch_and_what_the_server_said() {
        let ramp = Ramp {
            steps: vec![step(10, 10, 0), step(20, 0, 20)],
            refusal: Some(refusal()),
            max: 320,
            json: false,
        };
        assert_eq!(ramp.breaking_point(), Some(20));
        assert_eq!(
            ramp.conclusion(),
            "breaking point: 20 requests at once, the first batch that met a 429 (a batch size, not the limit); \
             the 10 sent just before still counted in the server's window\n\
             the limit, as the server names it: quota GenerateRequestsPerMinutePerProjectPerModel-FreeTier, limit 10 requests per minute, retry in 38.5 s"
        );
        let json = ramp.to_json();
        assert_eq!(json["breaking_point"], 20);
        assert_eq!(json["limit"], "10");
        assert_eq!(json["retry_delay_s"], 38.5);
        assert_eq!(json["ramp"][1]["rate_limited"], 20);
        assert_eq!(
            step_line(&ramp.steps[1], 1),
            "    20 at once: 0 answered, 20 answered 429 (0.50 s); the earlier batches still count in the server's window"
        );
    }

    #[test]
    fn no_breaking_point_says_so() {
        let ramp = Ramp {
            steps: vec![step(10, 10, 0), step(20, 20, 0)],
            refusal: None,
            max: 20,
            json: false,
        };
        assert_eq!(ramp.breaking_point(), None);
        assert!(
            ramp.conclusion()
                .starts_with("no 429 up to 20 requests at once")
        );
    }
}
