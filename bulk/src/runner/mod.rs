//! The runner: sends a run's prompts through a rate limiter and retries the
//! way the server asks.
//!
//! Step 3 sent N futures at once with `try_join_all`. So does this runner;
//! the difference is what each future does before and after its HTTP call:
//!
//! ```text
//!   for each request, concurrently:
//!     loop {
//!       permit = limiter.acquire(estimated tokens)   // wait for room in every window
//!       result = client.generate_content(...)        // one attempt on the wire
//!       ok  -> permit.settle(real prompt tokens); done
//!       err -> ask the retry policy:
//!                429 with retryDelay -> limiter.pause_until(now + delay): everyone waits
//!                503, 500, timeout   -> sleep a random backoff (full jitter)
//!                429 per day         -> stop the run for the day: the rest end as "not done"
//!                bad key, 404 model  -> stop the run with one line
//!                anything else       -> the request failed
//!     }
//! ```
//!
//! Every request ends as exactly one [`Outcome`] in the shared [`Report`]:
//! answered, failed, or not done. Nothing is dropped on the floor, so the
//! summary always adds up to N.
//!
//! The runner talks to the limiter through `Arc<dyn RateLimit>` only: it
//! neither knows nor cares whether the limiter lives in this process or is
//! shared with others.
//!
//! ## Stopping early
//!
//! A run stops before its end for one of four reasons: Ctrl-C (or SIGTERM),
//! an error that would fail every request, an answer the journal could not
//! write, and a spent daily quota. All four go through the one [`Shutdown`]
//! handle `main` passes in ([`StopReason`] says which): every request checks
//! it before it asks for a permit, and listens to it while it queues or
//! backs off. Requests already on the wire are left alone: after a signal
//! they get the shared grace period ([`Shutdown::grace_over`]); otherwise
//! their answers are as good as any, and are kept. A spent day also stops
//! the limiter ([`RateLimit::stop`]), so that with `--redis` every process
//! sharing the quota learns it too.
//!
//! ## The files
//!
//! * this one: a request's life, from its permit to its outcome;
//! * [`learn`]: the limits learned from 429s, and the day's books;
//! * [`daily`]: when the daily quota comes back, and the lines that say so;
//! * [`watchdog`]: a line when the queue has been silent for too long;
//! * [`notes`]: the notes under the summary;
//! * [`units`]: durations and counts, spelled one way for all of them.

pub mod daily;
pub mod learn;
pub mod notes;
pub mod units;
pub mod watchdog;

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::{
    Client, Error,
    cli::CommonArgs,
    outcome::{Answer, Attempt, AttemptStatus, Ended, Outcome},
    report::{Report, Summary},
    run,
    shutdown::{Shutdown, StopReason},
    terminal, timeline,
    types::GenerateContentRequest,
};
use futures_util::future::join_all;
use indicatif::ProgressStyle;
use rand::{SeedableRng, rngs::SmallRng};
use step4_ratelimit::retry::{Decision, RetryPolicy};
use tokio::time::Instant;

use crate::{
    bill::Meter,
    flex::{self, TierPlan},
    gauge::Gauge,
    journal::{self, Journal},
    pace::{LimitError, Limits, Permit, RateLimit, Stats},
    prompts::{Loaded, Prompts},
};
use daily::DAILY_QUOTA;
use learn::Learner;
use notes::Pace;
use units::seconds;
use watchdog::Watchdog;

/// What a run needs to know besides the limiter and the report.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The model to call.
    pub model: String,
    /// When and how to retry.
    pub retry: RetryPolicy,
    /// Whether requests are paced by the limiter (`false` with `--no-limit`).
    ///
    /// It decides who waits out a 429's `retryDelay`: with a limiter, the
    /// whole limiter pauses, since every request would meet the same full
    /// window; without one, only the request that was refused waits.
    pub paced: bool,
    /// The run's one way to stop (signals, and the runner's own reasons),
    /// from `main`.
    pub shutdown: Shutdown,
    /// The tier each attempt goes at (`--mode flex`, `--fallback`).
    pub tiers: TierPlan,
}

/// Why a run failed as a whole: its one line, instead of a summary.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An error that would fail every request (a revoked key, say).
    #[error(transparent)]
    Fatal(#[from] Error),
    /// An answer could not be written to the `--output` journal.
    #[error(
        "{line}: the run stopped; the answers written before it are kept; fix it, then run the same command again to continue: {command}"
    )]
    WriteFailed {
        /// What could not be written, and why.
        line: String,
        /// The command that continues the run.
        command: String,
    },
}

/// The report of a bulk run: the shared one, with the limiter's window
/// shaded on the `--timeline`. (The `--output` file is the [`Journal`].)
pub fn report(total: usize, common: &CommonArgs, window: Option<Duration>) -> Report {
    // The title is left to the report (program, requests, time), like the
    // steps' pictures; bulk adds its limit's windows, shaded.
    Report::new(total, common).with_timeline_options(timeline::Options {
        title: None,
        window,
    })
}

/// Sends a run's prompts through a limiter and reports each outcome.
pub struct Runner {
    client: Client,
    limiter: Arc<dyn RateLimit>,
    options: RunOptions,
    report: Report,
    live: Live,
    /// Randomness for the backoff's jitter. A std mutex: held for one draw.
    rng: Mutex<SmallRng>,
    /// Learns limits from 429s and remembers them, if the run does.
    learner: Option<Arc<Learner>>,
    /// Where each outcome is appended as soon as it is known (`--output`).
    journal: Option<Arc<Journal>>,
    /// Counts each answer's tokens for the bill.
    meter: Option<Arc<Meter>>,
}

impl Runner {
    /// A runner that sends with `client`, through `limiter`, into `report`.
    pub fn new(
        client: Client,
        limiter: Arc<dyn RateLimit>,
        report: Report,
        options: RunOptions,
    ) -> Runner {
        Runner {
            client,
            limiter,
            options,
            report,
            live: Live::default(),
            rng: Mutex::new(SmallRng::seed_from_u64(seed())),
            learner: None,
            journal: None,
            meter: None,
        }
    }

    /// The same runner, counting each answer's tokens with `meter`.
    pub fn with_meter(mut self, meter: Arc<Meter>) -> Runner {
        self.meter = Some(meter);
        self
    }

    /// The same runner, learning the limits from the server's 429s and
    /// keeping what it learns and spends with `learner`.
    pub fn with_learner(mut self, learner: Arc<Learner>) -> Runner {
        self.learner = Some(learner);
        self
    }

    /// The same runner, appending each outcome to `journal` the moment it
    /// is known. A write error stops the run: an answer that could not be
    /// kept is not a success.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Runner {
        self.journal = Some(journal);
        self
    }

    /// Sends the prompts `todo` (indices into `prompts`), all of them queued
    /// at once, and adds up the run; the report numbers them in that order.
    ///
    /// Returns an error only when the run had to stop because every request
    /// would fail (a bad key, say), or because an answer could not be
    /// written: that is one line for the user, not N. It comes once the
    /// requests already in flight have ended, so an answer that arrives
    /// meanwhile is still kept (and journaled).
    pub async fn run(self, prompts: &Prompts, todo: &[usize]) -> Result<Summary, RunError> {
        self.start_from_memory();
        let requests = todo
            .iter()
            .enumerate()
            .map(|(position, &index)| self.request(position, prompts, index));
        tokio::select! {
            _ = join_all(requests) => {}
            never = self.monitor() => match never {},
            never = self.stop_the_limiter_for_the_day() => match never {},
        };
        // The day may have been spent by the very last request, after the
        // task above last looked.
        self.stop_the_limiter_if_the_day_is_spent();
        if let Some(learner) = &self.learner {
            learner.save();
        }
        if let Err(error) = self.failure() {
            self.report.bar().finish_and_clear();
            return Err(error);
        }
        let stats = self.limiter.stats();
        // Other processes' requests already in the window count in the
        // combined pace: the limit was theirs as much as ours.
        let in_window = self.limiter.in_window_at_first();
        let pace = Pace {
            shared: in_window.is_some(),
            before: in_window.map_or(0, |n| n.saturating_sub(1)),
            ..self.live.pace()
        };
        let mut summary = self.report.finish("not sent");
        summary.paced = self.options.paced;
        let sources = self.learner.as_ref().map(|l| l.sources());
        // A flex request the server shed is no quota's 429: the notes that
        // explain 429s leave those out, and one line says what they were.
        let shed = self.live.shed.load(Ordering::Relaxed);
        let mut quota_429s = summary.clone();
        quota_429s.rate_limited = summary.rate_limited.saturating_sub(shed);
        let mut notes = notes::notes(&stats, &pace, &quota_429s, self.options.paced, sources);
        notes.extend(flex::shed_line(shed));
        summary.notes.splice(0..0, notes);
        Ok(summary)
    }

    /// The run's end, if it failed as a whole: the reason it stopped, when
    /// that reason fails the run.
    fn failure(&self) -> Result<(), RunError> {
        match self.options.shutdown.reason() {
            Some(StopReason::Fatal(error)) => Err(RunError::Fatal(error)),
            Some(StopReason::WriteFailed(line)) => Err(RunError::WriteFailed {
                line,
                command: journal::command_line(),
            }),
            _ => Ok(()),
        }
    }

    /// One request, from its first permit to its outcome, retries included.
    ///
    /// Until its first permit, a queued request is this small future and
    /// nothing more: the rest of its story ([`Runner::serve`]) is boxed once
    /// it may go, and the prompt is read from the file only then, so a
    /// million queued prompts cost a few hundred bytes each, not a copy of
    /// the prompt and a request.
    async fn request(&self, position: usize, prompts: &Prompts, index: usize) {
        let first = self.admit(prompts.tokens(index), false).await;
        Box::pin(self.serve(position, prompts, index, first)).await
    }

    /// A request once its first permit (or its end) came: send, retry, record.
    async fn serve(
        &self,
        position: usize,
        prompts: &Prompts,
        index: usize,
        first: Result<Permit, Ended>,
    ) {
        let tokens = prompts.tokens(index);
        let mut first = Some(first);
        let mut loaded: Option<(GenerateContentRequest, Loaded)> = None;
        let mut attempts = Vec::new();
        let ended = loop {
            let admitted = match first.take() {
                Some(admitted) => admitted,
                None => self.admit(tokens, !attempts.is_empty()).await,
            };
            let permit = match admitted {
                Ok(permit) => permit,
                Err(ended) => break ended,
            };
            if loaded.is_none() {
                match prompts.load(index) {
                    Ok(prompt) => {
                        let request = GenerateContentRequest::from_prompt(&prompt.prompt);
                        loaded = Some((request, prompt));
                    }
                    Err(error) => break Ended::Failed(Error::Config(error.to_string())),
                }
            }
            let Some((request, _)) = &mut loaded else {
                continue;
            };
            let tier = self.options.tiers.at(self.report.elapsed());
            request.service_tier = flex::service_tier(tier);
            let Some((attempt, result)) = self.attempt(request).await else {
                break Ended::NotDone(self.options.shutdown.cut_off());
            };
            attempts.push(attempt);
            run::log_attempt(index, attempts.len(), &attempt, &result);
            let error = match result {
                Ok(answer) => {
                    // Correct the limiter's books with the real count.
                    permit.settle(answer.usage.prompt_token_count);
                    self.counted();
                    if let Some(meter) = &self.meter {
                        meter.add(flex::served(tier, &answer.usage), &answer.usage);
                    }
                    break Ended::Answered(answer);
                }
                Err(error) => error,
            };
            if flex::is_shed(tier, &error) {
                self.live.shed.fetch_add(1, Ordering::Relaxed);
            }
            if error.is_rate_limited() {
                // The server did not count a refused attempt, so neither do
                // we: its slot goes back (the retryDelay says when to go).
                permit.refund();
                self.live.refunded();
                self.learn_from(&error);
            } else {
                // Frees the in-flight slot. The window slot keeps counting:
                // the server counted this attempt whatever it answered.
                drop(permit);
                self.counted();
            }
            let retries = attempts.len().saturating_sub(1) as u32;
            match self.options.retry.decide(&error, retries) {
                Decision::StopTheRun => {
                    self.stop_the_run(&error);
                    break Ended::Failed(error);
                }
                Decision::StopForTheDay => {
                    self.spent_for_the_day(&error);
                    break Ended::Failed(error);
                }
                Decision::GiveUp => break Ended::Failed(error),
                Decision::RetryAfter(delay) => self.wait_for_server(delay).await,
                Decision::Backoff => self.back_off(retries).await,
            }
            // Round again: `admit` notices if the run was stopped meanwhile.
        };
        let fatal = matches!(self.options.shutdown.reason(), Some(StopReason::Fatal(_)));
        if attempts.is_empty() && fatal {
            // Never sent, and the run ends with the one line that says why:
            // not one "not sent" line per queued prompt.
            return;
        }
        let outcome = Outcome {
            index: position,
            attempts,
            ended,
        };
        self.keep(
            prompts,
            index,
            &outcome,
            loaded.as_ref().map(|(_, l)| &l.input),
        );
        self.report.record(outcome);
    }

    /// Appends an outcome to the journal, if the run keeps one; a write
    /// error stops the run at once (the requests in flight still end, and
    /// try to write, so the journal keeps whatever it still can).
    fn keep(
        &self,
        prompts: &Prompts,
        index: usize,
        outcome: &Outcome,
        input: Option<&serde_json::Map<String, serde_json::Value>>,
    ) {
        let Some(journal) = &self.journal else {
            return;
        };
        if let Err(error) = journal.append(prompts, index, outcome, input) {
            // `main` says it once the run has ended (see [`Runner::failure`]).
            let reason = StopReason::WriteFailed(error.to_string());
            self.options.shutdown.stop(reason);
        }
    }

    /// Waits for the limiter to let a request go, unless the run is stopped
    /// first (then the request ends as not done, with the reason).
    ///
    /// A retry goes before the requests not yet sent: it has waited longest.
    async fn admit(&self, tokens: u32, retry: bool) -> Result<Permit, Ended> {
        if let Some(reason) = self.stopped() {
            return Err(Ended::NotDone(reason));
        }
        let acquire = if retry {
            self.limiter.acquire_first(tokens)
        } else {
            self.limiter.acquire(tokens)
        };
        // Dropping `acquire` when the stop wins gives the place in the queue
        // up: the limiter's `acquire` is cancel-safe.
        let acquired = tokio::select! {
            acquired = acquire => acquired,
            reason = self.options.shutdown.requested() => return Err(Ended::NotDone(reason.not_sent())),
        };
        let permit = match acquired {
            Ok(permit) => permit,
            Err(LimitError::Stopped { reason }) => {
                return Err(Ended::NotDone(format!("not sent: {reason}")));
            }
            Err(too_large @ LimitError::TooLarge { .. }) => {
                let hint = self.too_large_hint();
                return Err(Ended::Failed(Error::Config(format!("{too_large}: {hint}"))));
            }
        };
        // Ctrl-C may have come while we queued.
        if let Some(reason) = self.stopped() {
            return Err(Ended::NotDone(reason));
        }
        self.live.admitted(permit.admitted_at(), permit.id());
        Ok(permit)
    }

    /// What to do about a prompt too large for the TPM limit: where the
    /// limit came from says (see [`Learner::too_large_hint`]).
    fn too_large_hint(&self) -> String {
        match &self.learner {
            Some(learner) => learner.too_large_hint(),
            None => "raise --tpm, or shorten the prompt".into(),
        }
    }

    /// One attempt on the wire, timed. `None` if Ctrl-C's grace period ran
    /// out before the answer came.
    async fn attempt(
        &self,
        request: &GenerateContentRequest,
    ) -> Option<(Attempt, Result<Answer, Error>)> {
        let _in_flight = Gauge::enter(&self.live.in_flight);
        let call = self.client.generate_content(&self.options.model, request);
        let shutdown = &self.options.shutdown;
        let (attempt, result) = run::timed_attempt(&self.report, shutdown, call).await?;
        if attempt.status == AttemptStatus::RateLimited {
            self.live.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        Some((attempt, result))
    }

    /// The server said "retry in `delay`".
    ///
    /// With a limiter, its window and the server's disagree (the server
    /// counted something we did not: another program on the same project, or
    /// lower limits than we were told), so nobody should go before the delay
    /// is over, not only this request: the whole limiter pauses, and this
    /// request queues again behind the others.
    async fn wait_for_server(&self, delay: Duration) {
        if self.options.paced {
            self.limiter.pause_until(Instant::now() + delay);
        } else {
            self.sleep_unless_stopped(delay).await;
        }
    }

    /// Sleeps a random backoff before retry number `retries + 1`.
    async fn back_off(&self, retries: u32) {
        let delay = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            self.options.retry.backoff(retries, &mut *rng)
        };
        self.sleep_unless_stopped(delay).await;
    }

    /// Sleeps, but wakes at once if the run is stopped.
    async fn sleep_unless_stopped(&self, delay: Duration) {
        let _backing_off = Gauge::enter(&self.live.backing_off);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = self.options.shutdown.requested() => {}
        }
    }

    /// The server says the day's quota is spent: stop the run for the day,
    /// and say so in one line, once.
    fn spent_for_the_day(&self, error: &Error) {
        let resume_in = self.day_reset_in(error.retry_delay());
        let line = daily::spent_line(error, resume_in);
        self.stop_for_the_day(resume_in, &line);
    }

    /// An error that would fail every request (a revoked key, say): nothing
    /// more is sent, the requests already in flight still end (an answer
    /// that may be billed is kept), and the run then ends with this error's
    /// one line. The first such error is the one reported.
    ///
    /// The limiter is not stopped: a Redis limiter would stop every process
    /// sharing the quota, and this error is this run's own.
    fn stop_the_run(&self, error: &Error) {
        self.options.shutdown.stop(StopReason::Fatal(error.clone()));
    }

    /// Stops the run for the day, remembers until when, and prints `line`
    /// if the spent day is what stopped the run (once).
    fn stop_for_the_day(&self, resume_in: Duration, line: &str) {
        if let Some(learner) = &self.learner {
            learner.day_spent(resume_in);
        }
        if self.options.shutdown.stop(StopReason::DaySpent) {
            self.say(line);
        }
    }

    /// Runs beside the requests: when the run stops because the day is
    /// spent, stops the limiter too. Its waiters end at once, and with
    /// `--redis` every process sharing the quota learns it: a spent day is
    /// the quota's, not only this run's.
    async fn stop_the_limiter_for_the_day(&self) -> Infallible {
        self.options.shutdown.requested().await;
        self.stop_the_limiter_if_the_day_is_spent();
        std::future::pending().await
    }

    /// Stops the limiter if the run stopped because the day is spent.
    fn stop_the_limiter_if_the_day_is_spent(&self) {
        if matches!(self.options.shutdown.reason(), Some(StopReason::DaySpent)) {
            self.limiter.stop(DAILY_QUOTA);
        }
    }

    /// How long until the day's quota is back. The server's `retryDelay` is
    /// taken when it is longer than our own reckoning (midnight Pacific, or
    /// a test's shorter day), never when shorter: a per-day 429 can carry a
    /// delay of half a minute that says nothing about the day.
    fn day_reset_in(&self, retry_delay: Option<Duration>) -> Duration {
        let ours = match &self.learner {
            Some(learner) => learner.day_reset_in(),
            None => daily::until_midnight_pacific(),
        };
        ours.max(retry_delay.unwrap_or_default())
    }

    /// One line on stderr, above the progress bar.
    fn say(&self, line: &str) {
        self.report.bar().suspend(|| terminal::diagnostic(line));
    }

    /// A 429 may name the limit: adopt it (see [`learn`]). A limit of 0 is
    /// not learned: it stops the run (the retry policy sees to that).
    fn learn_from(&self, error: &Error) {
        let Some(learner) = self.learner.as_ref().filter(|_| self.options.paced) else {
            return;
        };
        if let Some(line) = learner.learn(error, &*self.limiter) {
            self.say(&line);
        }
    }

    /// The server counted an attempt: remember it for the day's books.
    fn counted(&self) {
        if let Some(learner) = &self.learner {
            learner.sent();
        }
    }

    /// Before the first request: the limits and the spend an earlier run
    /// remembered, and its per-day stop if the day is still spent.
    fn start_from_memory(&self) {
        let Some(learner) = &self.learner else {
            return;
        };
        if !self.options.paced {
            return;
        }
        let (line, stop) = learner.prime(&*self.limiter);
        if let Some(line) = line {
            self.say(&line);
        }
        if let Some(resume_in) = stop {
            let line = daily::spent_earlier_line(&self.options.model, resume_in);
            self.stop_for_the_day(resume_in, &line);
        }
    }

    /// Our own per-day limit is reached and requests wait for it: end the
    /// run the way a server's per-day 429 does, rather than wait a day.
    fn check_own_day(&self, stats: &Stats) {
        let Some(full_until) = stats.day_full_until else {
            return;
        };
        if stats.waiting == 0 || self.options.shutdown.is_requested() {
            return;
        }
        let ours = full_until.saturating_duration_since(Instant::now());
        let resume_in = if stats.limits.day >= Limits::DAY {
            daily::until_midnight_pacific()
        } else {
            ours
        };
        let rpd = stats.limits.rpd.unwrap_or(0);
        let source = self.learner.as_ref().map(|l| l.sources()[2].to_string());
        let line = daily::reached_line(rpd, source.as_deref(), stats.waiting, resume_in);
        self.stop_for_the_day(resume_in, &line);
    }

    /// Why the run is stopped, as the reason a request not sent ends with,
    /// if it is.
    fn stopped(&self) -> Option<String> {
        let shutdown = &self.options.shutdown;
        shutdown.is_requested().then(|| shutdown.not_sent())
    }

    /// Runs beside the requests for as long as they run: keeps the progress
    /// bar's message up to date, and, when paced, watches for our own daily
    /// limit and for a queue that has gone silent. These read the limiter's
    /// numbers, which change without telling anyone, so it looks ten times a
    /// second: one cheap check in one task, whatever N is.
    async fn monitor(&self) -> Infallible {
        let bar = self.report.bar();
        if !bar.is_hidden() {
            // The shared style, with a shorter bar and a message that is cut
            // to the terminal's width rather than wrapped onto a second line.
            bar.set_style(
                ProgressStyle::with_template("{bar:20} {pos}/{len} {elapsed_precise} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = Watchdog::new(Instant::now());
        loop {
            tick.tick().await;
            if self.options.paced {
                let stats = self.limiter.stats();
                self.check_own_day(&stats);
                let waiting = stats.waiting + self.live.backing_off.load(Ordering::Relaxed);
                if let Some(line) = watch.check(&stats, waiting, Instant::now()) {
                    self.say(&line);
                }
            }
            if !bar.is_hidden() {
                bar.set_message(self.progress());
            }
        }
    }

    /// The progress bar's message: where every request is, and how full the
    /// window is.
    fn progress(&self) -> String {
        let stats = self.limiter.stats();
        let waiting = stats.waiting + self.live.backing_off.load(Ordering::Relaxed);
        let mut message = format!(
            "{} in flight, {waiting} waiting, {}×429",
            self.live.in_flight.load(Ordering::Relaxed),
            self.live.rate_limited.load(Ordering::Relaxed),
        );
        // The most telling last: a pause the server asked for, or else how
        // full the window is (requests counted against the limit right now).
        if let Some(until) = stats.paused_until {
            let left = until.saturating_duration_since(Instant::now());
            message += &format!(", paused {} by the server", seconds(left));
        } else if let Some(rpm) = stats.limits.rpm {
            message += &format!(
                ", {}/{rpm} per {}",
                stats.usage.requests,
                seconds(stats.limits.window)
            );
        }
        message
    }
}

/// A seed for the jitter: different in every run, which is the point of jitter.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// Live counters, for the progress bar and the final notes.
#[derive(Default)]
struct Live {
    /// Attempts on the wire right now.
    in_flight: AtomicUsize,
    /// Requests sleeping before a retry.
    backing_off: AtomicUsize,
    /// 429 answers so far.
    rate_limited: AtomicUsize,
    /// Of those, flex requests the server shed (no capacity, not a quota).
    shed: AtomicUsize,
    /// When admissions happened. A std mutex: a few comparisons per admission.
    pace: Mutex<Pace>,
}

impl Live {
    fn admitted(&self, at: Instant, id: u64) {
        self.lock_pace().admitted(at, id);
    }

    /// An admission the server refused and we refunded: it did not use the
    /// limit, so it does not count in the pace either.
    fn refunded(&self) {
        self.lock_pace().refunded();
    }

    fn pace(&self) -> Pace {
        *self.lock_pace()
    }

    fn lock_pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }
}
