//! Printing a run: each request's line in order, and the summary.
//!
//! Every step ends the same way: each request becomes an [`Outcome`] (an
//! answer, an error, or "not done"), the [`Report`] prints one line per
//! request in request order while a progress bar runs on stderr, and a
//! [`Summary`] adds it all up. Nothing is lost on the way: the summary's
//! `succeeded + failed + not_done` is always the number of requests.
//!
//! The report is shared by reference between many concurrent requests, so its
//! state sits behind a `std::sync::Mutex`: the critical sections are a few
//! field updates and never hold the lock across an `.await`, which is exactly
//! when a std mutex is the right (and cheaper) choice over tokio's.

use std::{io::IsTerminal, path::PathBuf, sync::Mutex, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    cli::CommonArgs,
    outcome::{AttemptStatus, Ended, Outcome},
    shutdown::Signal,
    terminal::{diagnostic, print_line},
    timeline,
};

/// Collects outcomes as they arrive and prints them in request order.
///
/// Requests finish in any order when they run concurrently, but a reader
/// wants `#1, #2, #3...`: the report holds finished outcomes back until every
/// earlier one has finished too, then prints the run of ready lines. In step 2
/// that is immediate; in step 3 the lines come out as the prefix completes.
pub struct Report {
    total: usize,
    json: bool,
    timeline: Option<PathBuf>,
    timeline_options: timeline::Options,
    started: Instant,
    bar: ProgressBar,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    outcomes: Vec<Option<Outcome>>,
    next_to_print: usize,
    /// Answers with no text, counted as they arrive: the text itself is
    /// dropped once printed, so the summary cannot count them from it later.
    empty_answers: usize,
}

impl Report {
    /// A report for `total` requests, whose clock starts now.
    ///
    /// The progress bar is drawn on stderr only when stderr is a terminal and
    /// the output is not `--json`: a bar in a log file or a pipe is noise.
    pub fn new(total: usize, args: &CommonArgs) -> Report {
        let bar = if args.json || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        Report {
            total,
            json: args.json,
            timeline: args.timeline.clone(),
            timeline_options: timeline::Options::default(),
            started: Instant::now(),
            bar,
            state: Mutex::new(State {
                outcomes: (0..total).map(|_| None).collect(),
                next_to_print: 0,
                empty_answers: 0,
            }),
        }
    }

    /// Sets what the timeline draws besides the bars (step 4 shades its windows).
    pub fn with_timeline_options(mut self, options: timeline::Options) -> Report {
        self.timeline_options = options;
        self
    }

    /// How many requests the run has.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Time since the run started: every attempt is stamped with this.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The progress bar, so a step can show more in its message (step 4 does).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Stores one outcome, advances the bar and prints every line now in order.
    pub fn record(&self, outcome: Outcome) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let index = outcome.index;
        if index >= self.total || state.outcomes[index].is_some() {
            // A bug in the caller, not in the run: say so loudly in debug
            // builds, and never overwrite a recorded outcome.
            debug_assert!(false, "outcome {index} recorded twice or out of range");
            return;
        }
        if matches!(&outcome.ended, Ended::Answered(answer) if answer.is_empty()) {
            state.empty_answers += 1;
        }
        state.outcomes[index] = Some(outcome);
        self.bar.inc(1);
        let state = &mut *state;
        while let Some(Some(ready)) = state.outcomes.get_mut(state.next_to_print) {
            let line = if self.json {
                ready.json_line().to_string()
            } else {
                ready.line()
            };
            self.bar.suspend(|| print_line(&line));
            // The line is out (and step 4's journal has its row): the summary
            // and the timeline need counts and times, not the text, so a run
            // of 100,000 prompts does not keep 100,000 answers in memory.
            ready.drop_text();
            state.next_to_print += 1;
        }
    }

    /// Ends the run: every request without an outcome is reported as not
    /// sent with `reason`, the timeline is written, and the summary is made.
    pub fn finish(self, reason_for_missing: &str) -> Summary {
        let elapsed = self.elapsed();
        let missing: Vec<usize> = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (0..self.total)
                .filter(|&i| state.outcomes[i].is_none())
                .collect()
        };
        for index in missing {
            self.record(Outcome::not_done(index, reason_for_missing));
        }
        self.bar.finish_and_clear();
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let state_empty_answers = state.empty_answers;
        let outcomes: Vec<Outcome> = state.outcomes.into_iter().flatten().collect();
        let mut summary = Summary::from_outcomes(&outcomes, elapsed);
        summary.empty_answers = state_empty_answers;
        if let Some(path) = &self.timeline {
            draw_timeline(path, &outcomes, self.timeline_options, &mut summary);
        }
        summary
    }
}

/// The end of a run of one request that the step printed itself (step 1):
/// its summary, and its picture with `--timeline`.
pub fn single(outcome: Outcome, elapsed: Duration, args: &CommonArgs) -> Summary {
    let outcomes = [outcome];
    let mut summary = Summary::from_outcomes(&outcomes, elapsed);
    if let Some(path) = &args.timeline {
        draw_timeline(path, &outcomes, timeline::Options::default(), &mut summary);
    }
    summary
}

/// Writes the SVG timeline and says so (or why not) in the summary's notes.
fn draw_timeline(
    path: &std::path::Path,
    outcomes: &[Outcome],
    mut options: timeline::Options,
    summary: &mut Summary,
) {
    options.title.get_or_insert_with(|| timeline_title(summary));
    let note = match timeline::write(path, outcomes, &options) {
        Ok(()) => format!("timeline written to {}", path.display()),
        Err(error) => format!(
            "could not write the timeline to {}: {error}",
            path.display()
        ),
    };
    summary.notes.push(note);
}

/// "step3-concurrent: 20 requests, 20 answered in 1.25 s": which program
/// drew the picture, and the figures a reader checks the bars against.
fn timeline_title(summary: &Summary) -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "run".into());
    let mut title = format!(
        "{program}: {} request{}, {} answered in {:.2} s",
        summary.requests,
        if summary.requests == 1 { "" } else { "s" },
        summary.succeeded,
        summary.elapsed_s
    );
    if summary.rate_limited > 0 {
        let attempts = if summary.rate_limited == 1 {
            "attempt"
        } else {
            "attempts"
        };
        title.push_str(&format!(
            ", {} {attempts} answered 429",
            summary.rate_limited
        ));
    }
    title
}

/// p50, p95 and the maximum latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    /// The median.
    pub p50: u64,
    /// The 95th percentile.
    pub p95: u64,
    /// The slowest.
    pub max: u64,
}

impl Latency {
    /// Nearest-rank percentiles of the given latencies (all zero when empty).
    pub fn of(latencies: &[Duration]) -> Latency {
        let mut ms: Vec<u64> = latencies.iter().map(|l| l.as_millis() as u64).collect();
        ms.sort_unstable();
        let rank = |p: f64| -> u64 {
            if ms.is_empty() {
                return 0;
            }
            let i = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
            ms[i]
        };
        Latency {
            p50: rank(0.50),
            p95: rank(0.95),
            max: ms.last().copied().unwrap_or(0),
        }
    }
}

/// The figures of one run, as every step prints them.
///
/// Serialised, this is the `--json` object; its first fields are fixed by the
/// tutorial so that a script can compare steps.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests in the batch.
    pub requests: usize,
    /// Requests that ended with an answer.
    pub succeeded: usize,
    /// Of those, answers with no text at all (see each row's `finish_reason`).
    pub empty_answers: usize,
    /// Requests that were sent and ended with an error.
    pub failed: usize,
    /// 429 answers received, over all attempts.
    pub rate_limited: usize,
    /// Attempts beyond the first, over all requests.
    pub retries: usize,
    /// Wall time of the run, in seconds.
    pub elapsed_s: f64,
    /// Answers per minute over the run.
    pub throughput_rpm: f64,
    /// Latency of the answered requests.
    pub latency_ms: Latency,
    /// Requests not done: never sent (out of quota for the day, Ctrl-C) or cut off by Ctrl-C.
    pub not_done: usize,
    /// The sum of every request's latency: what a one-at-a-time run would take.
    pub sum_of_latencies_s: f64,
    /// Extra human lines a step adds (limiter figures, files written).
    #[serde(skip)]
    pub notes: Vec<String>,
    /// Whether a rate limiter paced the run (step 4): then its time is the
    /// limit's doing, and a speed-up over one-at-a-time means nothing.
    #[serde(skip)]
    pub paced: bool,
    /// Fields a program adds to the `--json` object after the tutorial's
    /// own (bulk's `bill`); its text lines go in `notes`.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// How to print a summary: chosen by the command line and by how the run
/// ended, not part of the figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintOptions {
    /// One JSON line instead of text (`--json`).
    pub json: bool,
    /// The signal that cut the run short, if one did: the figures are partial.
    pub stopped_by: Option<Signal>,
}

impl Summary {
    /// Adds up a run's outcomes.
    pub fn from_outcomes(outcomes: &[Outcome], elapsed: Duration) -> Summary {
        let count = |f: fn(&Ended) -> bool| outcomes.iter().filter(|o| f(&o.ended)).count();
        let attempts = outcomes.iter().flat_map(|o| &o.attempts);
        let answered: Vec<Duration> = outcomes
            .iter()
            .filter(|o| matches!(o.ended, Ended::Answered(_)))
            .filter_map(Outcome::latency)
            .collect();
        let succeeded = answered.len();
        let elapsed_s = elapsed.as_secs_f64();
        Summary {
            requests: outcomes.len(),
            succeeded: count(|e| matches!(e, Ended::Answered(_))),
            empty_answers: count(|e| matches!(e, Ended::Answered(a) if a.is_empty())),
            failed: count(|e| matches!(e, Ended::Failed(_))),
            not_done: count(|e| matches!(e, Ended::NotDone(_))),
            rate_limited: attempts
                .clone()
                .filter(|a| a.status == AttemptStatus::RateLimited)
                .count(),
            retries: outcomes
                .iter()
                .map(|o| o.attempts.len().saturating_sub(1))
                .sum(),
            elapsed_s: round3(elapsed_s),
            throughput_rpm: if elapsed_s > 0.0 {
                round3(succeeded as f64 * 60.0 / elapsed_s)
            } else {
                0.0
            },
            latency_ms: Latency::of(&answered),
            sum_of_latencies_s: round3(attempts.map(|a| a.latency().as_secs_f64()).sum()),
            notes: Vec::new(),
            paced: false,
            extra: serde_json::Map::new(),
        }
    }

    /// Whether every request ended with an answer.
    pub fn all_succeeded(&self) -> bool {
        self.succeeded == self.requests
    }

    /// Prints the summary on stdout: text for people, or one JSON line last.
    pub fn print(&self, options: PrintOptions) {
        if options.json {
            // The notes are diagnostics: they go to stderr so that stdout's
            // last line stays the one JSON object a script reads.
            for note in &self.notes {
                diagnostic(note);
            }
            if let Some(signal) = options.stopped_by {
                diagnostic(format_args!(
                    "interrupted by {}: the figures are partial",
                    signal.name()
                ));
            }
            print_line(serde_json::to_string(self).unwrap_or_default());
            return;
        }
        print_line(self);
        if let Some(signal) = options.stopped_by {
            print_line(format_args!(
                "interrupted by {}: the figures above are partial",
                signal.name()
            ));
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.requests == 1 && self.succeeded == 1 && self.empty_answers == 0 {
            // Step 1: its footer line already said it all.
            return write!(f, "1 request answered in {:.2} s", self.elapsed_s);
        }
        let plural = if self.requests == 1 { "" } else { "s" };
        write!(
            f,
            "{} request{plural}: {} succeeded",
            self.requests, self.succeeded
        )?;
        if self.empty_answers > 0 {
            write!(f, " ({} with no text)", self.empty_answers)?;
        }
        write!(f, ", {} failed", self.failed)?;
        if self.not_done > 0 {
            write!(f, ", {} not done", self.not_done)?;
        }
        write!(
            f,
            " in {:.2} s ({:.1} req/min)",
            self.elapsed_s, self.throughput_rpm
        )?;
        if self.rate_limited > 0 || self.retries > 0 {
            // These count attempts, not requests: one request retried three
            // times can be three 429s.
            write!(
                f,
                "; {} attempt{} answered 429, {} retr{}",
                self.rate_limited,
                if self.rate_limited == 1 { "" } else { "s" },
                self.retries,
                if self.retries == 1 { "y" } else { "ies" },
            )?;
        }
        if self.succeeded > 0 {
            let l = &self.latency_ms;
            write!(
                f,
                "\nlatency p50 {:.2} s, p95 {:.2} s, max {:.2} s",
                l.p50 as f64 / 1e3,
                l.p95 as f64 / 1e3,
                l.max as f64 / 1e3
            )?;
        }
        let unanswered = self.requests - self.succeeded.min(self.requests);
        if !self.paced && self.requests > 1 && unanswered > 0 {
            // A refused request takes a few milliseconds: adding those up
            // and dividing would claim a speed-up for work never done.
            write!(
                f,
                "\nno speed-up figure: {unanswered} of {} requests got no answer",
                self.requests
            )?;
        } else if !self.paced
            && self.requests > 1
            && self.elapsed_s > 0.0
            && self.sum_of_latencies_s > 0.0
        {
            write!(
                f,
                "\nspeed-up over one at a time: {:.1}x (the latencies add up to {:.2} s)",
                self.sum_of_latencies_s / self.elapsed_s,
                self.sum_of_latencies_s,
            )?;
        }
        for note in &self.notes {
            write!(f, "\n{note}")?;
        }
        Ok(())
    }
}

/// `x` rounded to three decimals: seconds to the millisecond in `--json`
/// output, where more digits are noise.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        error::Error,
        outcome::{Answer, Attempt},
        types::UsageMetadata,
    };

    fn answered(index: usize, sent_ms: u64, answered_ms: u64) -> Outcome {
        Outcome {
            index,
            attempts: vec![Attempt {
                sent: Duration::from_millis(sent_ms),
                answered: Duration::from_millis(answered_ms),
                status: AttemptStatus::Ok,
            }],
            ended: Ended::Answered(Answer {
                text: "Birds migrate to follow food.".into(),
                usage: UsageMetadata::default(),
                model_version: None,
                finish_reason: Some("STOP".into()),
            }),
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(
            Latency::of(&ms),
            Latency {
                p50: 50,
                p95: 95,
                max: 100
            }
        );
        assert_eq!(Latency::of(&[]), Latency::default());
    }

    #[test]
    fn counts_add_up_to_the_number_of_requests() {
        let outcomes = vec![
            answered(0, 0, 1000),
            Outcome {
                index: 1,
                attempts: vec![
                    Attempt {
                        sent: Duration::ZERO,
                        answered: Duration::from_millis(10),
                        status: AttemptStatus::RateLimited,
                    },
                    Attempt {
                        sent: Duration::from_millis(500),
                        answered: Duration::from_millis(700),
                        status: AttemptStatus::Failed,
                    },
                ],
                ended: Ended::Failed(Error::Timeout(Duration::from_secs(1))),
            },
            Outcome::not_done(2, "interrupted"),
        ];
        let s = Summary::from_outcomes(&outcomes, Duration::from_secs(2));
        assert_eq!((s.succeeded, s.failed, s.not_done), (1, 1, 1));
        assert_eq!(s.succeeded + s.failed + s.not_done, s.requests);
        assert_eq!((s.rate_limited, s.retries), (1, 1));
        assert_eq!(s.throughput_rpm, 30.0);
        assert_eq!(s.sum_of_latencies_s, 1.21);
    }

    #[test]
    fn answers_with_no_text_are_counted_apart() {
        let mut empty = answered(1, 0, 100);
        if let Ended::Answered(answer) = &mut empty.ended {
            answer.text.clear();
            answer.finish_reason = Some("MAX_TOKENS".into());
        }
        assert!(
            empty.line().contains("no text; finish reason MAX_TOKENS"),
            "{}",
            empty.line()
        );
        assert_eq!(empty.json_line()["finish_reason"], "MAX_TOKENS");
        let s = Summary::from_outcomes(&[answered(0, 0, 100), empty], Duration::from_secs(1));
        assert_eq!((s.succeeded, s.empty_answers), (2, 1));
        assert!(
            s.to_string().contains("2 succeeded (1 with no text)"),
            "{s}"
        );
        assert_eq!(
            serde_json::to_value(&s).expect("serialises")["empty_answers"],
            1
        );
    }

    fn refused(index: usize) -> Outcome {
        Outcome {
            index,
            attempts: vec![Attempt {
                sent: Duration::ZERO,
                answered: Duration::from_millis(9),
                status: AttemptStatus::RateLimited,
            }],
            ended: Ended::Failed(Error::Timeout(Duration::from_secs(1))),
        }
    }

    #[test]
    fn the_report_drops_printed_text_and_still_counts_empty_answers() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            common: CommonArgs,
        }
        let args = Cli::parse_from(["step", "--json"]).common;
        let report = Report::new(3, &args);
        let mut empty = answered(1, 0, 100);
        if let Ended::Answered(answer) = &mut empty.ended {
            answer.text.clear();
        }
        // Out of order: #3 waits for #2 before it is printed.
        report.record(answered(2, 0, 100));
        report.record(answered(0, 0, 100));
        report.record(empty);
        {
            let state = report.state.lock().expect("not poisoned");
            let texts: Vec<&str> = state
                .outcomes
                .iter()
                .flatten()
                .filter_map(|o| match &o.ended {
                    Ended::Answered(answer) => Some(answer.text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(texts, ["", "", ""], "every printed answer's text is freed");
        }
        let summary = report.finish("not sent");
        assert_eq!((summary.succeeded, summary.empty_answers), (3, 1));
    }

    #[test]
    fn a_run_where_every_request_was_refused_claims_no_speed_up() {
        let outcomes: Vec<Outcome> = (0..10).map(refused).collect();
        let text = Summary::from_outcomes(&outcomes, Duration::from_millis(10)).to_string();
        assert!(!text.contains("speed-up over"), "{text}");
        assert!(
            text.contains("no speed-up figure: 10 of 10 requests got no answer"),
            "{text}"
        );
        assert!(
            text.contains("; 10 attempts answered 429, 0 retries"),
            "{text}"
        );
    }

    #[test]
    fn a_run_where_most_requests_failed_claims_no_speed_up() {
        let mut outcomes: Vec<Outcome> = (0..100).map(refused).collect();
        for (i, outcome) in outcomes.iter_mut().take(10).enumerate() {
            *outcome = answered(i, 0, 7000);
        }
        let text = Summary::from_outcomes(&outcomes, Duration::from_millis(7100)).to_string();
        assert!(
            text.starts_with("100 requests: 10 succeeded, 90 failed"),
            "{text}"
        );
        assert!(!text.contains("speed-up over"), "{text}");
        assert!(text.contains("90 of 100 requests got no answer"), "{text}");
    }

    #[test]
    fn a_run_where_all_succeeded_shows_its_speed_up() {
        let outcomes: Vec<Outcome> = (0..10).map(|i| answered(i, 0, 7000)).collect();
        let text = Summary::from_outcomes(&outcomes, Duration::from_millis(7000)).to_string();
        assert!(
            text.contains("speed-up over one at a time: 10.0x (the latencies add up to 70.00 s)"),
            "{text}"
        );
        assert!(!text.contains("429"), "{text}");
    }

    #[test]
    fn one_retry_and_one_429_are_singular() {
        let outcome = Outcome {
            index: 0,
            attempts: vec![
                Attempt {
                    sent: Duration::ZERO,
                    answered: Duration::from_millis(9),
                    status: AttemptStatus::RateLimited,
                },
                Attempt {
                    sent: Duration::from_millis(100),
                    answered: Duration::from_millis(900),
                    status: AttemptStatus::Ok,
                },
            ],
            ..answered(0, 0, 0)
        };
        let text = Summary::from_outcomes(&[outcome, answered(1, 0, 800)], Duration::from_secs(1))
            .to_string();
        assert!(text.contains("; 1 attempt answered 429, 1 retry"), "{text}");
    }

    #[test]
    fn json_summary_has_the_tutorial_fields() {
        let s = Summary::from_outcomes(&[answered(0, 0, 250)], Duration::from_secs(1));
        let v = serde_json::to_value(&s).expect("serialises");
        for field in [
            "requests",
            "succeeded",
            "failed",
            "rate_limited",
            "retries",
            "elapsed_s",
            "throughput_rpm",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["latency_ms"]["p50"], 250);
    }
}
