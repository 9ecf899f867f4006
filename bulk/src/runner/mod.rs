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
//!                429 per day         -> limiter.stop(): the rest end as "not done"
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
//! Two things stop a run before its end: Ctrl-C, and a spent daily quota.
//! Both go through one [`Halt`] signal (a `watch` channel) that every request
//! checks before it asks for a permit and waits on while it queues or backs
//! off. Requests already on the wire are left alone: after Ctrl-C they get
//! the shared grace period ([`Shutdown::grace_over`]); after the daily
//! quota, their answers are as good as any.

pub mod daily;
pub mod learn;

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
    shutdown::Shutdown,
    terminal, timeline,
    types::GenerateContentRequest,
};
use futures_util::future::try_join_all;
use indicatif::ProgressStyle;
use rand::{SeedableRng, rngs::SmallRng};
use tokio::{sync::watch, time::Instant};

use crate::{
    gauge::Gauge,
    pace::{LimitError, Limits, Permit, RateLimit, Stats},
};
pub use learn::{Learner, Source};
pub use step4_ratelimit::retry::{Decision, RetryPolicy};

use crate::{
    journal::Journal,
    prompts::{Loaded, Prompts},
};

/// The reason given to the limiter when the day's quota is spent.
const DAILY_QUOTA: &str = "the daily quota is spent";

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
    /// The run's stop signal (Ctrl-C, SIGTERM), from `main`.
    pub shutdown: Shutdown,
}

/// The report of a step 4 run: the shared one, with the limiter's window
/// shaded on the `--timeline`. (The `--output` file is the [`Journal`].)
pub fn report(total: usize, common: &CommonArgs, window: Option<Duration>) -> Report {
    // The title is left to the report (program, requests, time), like the
    // other steps' pictures; step 4 adds its limit's windows, shaded.
    Report::new(total, common).with_timeline_options(timeline::Options {
        title: None,
        window,
    })
}

/// A request's input tokens, estimated before it is sent.
///
/// The limiter must charge tokens against TPM *before* the request goes,
/// but only the response says the real count (`promptTokenCount`). Google's
/// rule of thumb is about four characters per token for English; we charge
/// one token per *three* characters, which errs high for most text. Erring
/// high costs a little speed when TPM is what binds; erring low risks a 429.
/// Either way [`Permit::settle`] puts the books right when the answer comes.
/// (The alternative, a `countTokens` call per distinct prompt, is exact but
/// costs a round trip before the first request can go.)
pub fn estimate_tokens(prompt: &str) -> u32 {
    let tokens = prompt.chars().count().div_ceil(3).max(1);
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// Sends a run's prompts through a limiter and reports each outcome.
pub struct Runner {
    client: Client,
    limiter: Arc<dyn RateLimit>,
    options: RunOptions,
    report: Report,
    halt: Halt,
    live: Live,
    /// Randomness for the backoff's jitter. A std mutex: held for one draw.
    rng: Mutex<SmallRng>,
    /// Learns limits from 429s and remembers them, if the run does.
    learner: Option<Arc<Learner>>,
    /// Where each outcome is appended as soon as it is known (`--output`).
    journal: Option<Arc<Journal>>,
    /// The error that stopped the run, reported once everything in flight
    /// has ended. A std mutex: set once, read at the end.
    fatal: Mutex<Option<Error>>,
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
            halt: Halt::new(),
            live: Live::default(),
            rng: Mutex::new(SmallRng::seed_from_u64(seed())),
            learner: None,
            journal: None,
            fatal: Mutex::new(None),
        }
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
    /// would fail (a bad key, say): that is one line for the user, not N. It
    /// comes once the requests already in flight have ended, so an answer
    /// that arrives meanwhile is still kept (and journaled).
    pub async fn run(self, prompts: &Prompts, todo: &[usize]) -> Result<Summary, Error> {
        self.start_from_memory();
        let requests = todo
            .iter()
            .enumerate()
            .map(|(position, &index)| self.request(position, prompts, index));
        let result = tokio::select! {
            result = try_join_all(requests) => result,
            never = self.monitor() => match never {},
            never = self.stop_on_shutdown() => match never {},
        };
        if let Some(learner) = &self.learner {
            learner.save();
        }
        if let Some(error) = result.err().or_else(|| self.fatal()) {
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
        let notes = notes(&stats, &pace, &summary, self.options.paced, sources);
        summary.notes.splice(0..0, notes);
        Ok(summary)
    }

    /// One request, from its first permit to its outcome, retries included.
    ///
    /// Until its first permit, a queued request is this small future and
    /// nothing more: the rest of its story ([`Runner::serve`]) is boxed once
    /// it may go, and the prompt is read from the file only then, so a
    /// million queued prompts cost a few hundred bytes each, not a copy of
    /// the prompt and a request.
    async fn request(&self, position: usize, prompts: &Prompts, index: usize) -> Result<(), Error> {
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
    ) -> Result<(), Error> {
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
            let Some((request, _)) = &loaded else {
                continue;
            };
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
                    break Ended::Answered(answer);
                }
                Err(error) => error,
            };
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
                    self.stop_for_the_day(&error);
                    break Ended::Failed(error);
                }
                Decision::GiveUp => break Ended::Failed(error),
                Decision::RetryAfter(delay) => self.wait_for_server(delay).await,
                Decision::Backoff => self.back_off(retries).await,
            }
            // Round again: `admit` notices if the run was halted meanwhile.
        };
        if attempts.is_empty() && self.fatal().is_some() {
            // Never sent, and the run ends with the one line that says why:
            // not one "not sent" line per queued prompt.
            return Ok(());
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
        Ok(())
    }

    /// Appends an outcome to the journal, if the run keeps one; a write
    /// error halts the run at once (the requests in flight still end, and
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
        if let Err(line) = journal.append(prompts, index, outcome, input) {
            // `main` says it once the run has ended (see `journal::account`).
            self.halt.stop(&format!("not sent: {line}"));
        }
    }

    /// Waits for the limiter to let a request go, unless the run is halted
    /// first (then the request ends as not done, with the reason).
    ///
    /// A retry goes before the requests not yet sent: it has waited longest.
    async fn admit(&self, tokens: u32, retry: bool) -> Result<Permit, Ended> {
        if let Some(reason) = self.halted() {
            return Err(Ended::NotDone(reason));
        }
        let acquire = if retry {
            self.limiter.acquire_first(tokens)
        } else {
            self.limiter.acquire(tokens)
        };
        // Dropping `acquire` when the halt wins gives the place in the queue
        // up: the limiter's `acquire` is cancel-safe.
        let acquired = tokio::select! {
            acquired = acquire => acquired,
            reason = self.halt.stopped() => return Err(Ended::NotDone(reason)),
        };
        let permit = match acquired {
            Ok(permit) => permit,
            Err(LimitError::Stopped { reason }) => {
                return Err(Ended::NotDone(format!("not sent: {reason}")));
            }
            Err(too_large @ LimitError::TooLarge { .. }) => {
                return Err(Ended::Failed(Error::Config(format!(
                    "{too_large}: raise --tpm or shorten the prompt"
                ))));
            }
        };
        // Ctrl-C may have come while we queued.
        if let Some(reason) = self.halted() {
            return Err(Ended::NotDone(reason));
        }
        self.live.admitted(permit.admitted_at(), permit.id());
        Ok(permit)
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
            self.sleep_unless_halted(delay).await;
        }
    }

    /// Sleeps a random backoff before retry number `retries + 1`.
    async fn back_off(&self, retries: u32) {
        let delay = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            self.options.retry.backoff(retries, &mut *rng)
        };
        self.sleep_unless_halted(delay).await;
    }

    /// Sleeps, but wakes at once if the run is halted.
    async fn sleep_unless_halted(&self, delay: Duration) {
        let _backing_off = Gauge::enter(&self.live.backing_off);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = self.halt.stopped() => {}
        }
    }

    /// The day's quota is spent: stop the limiter (waiters fail at once and
    /// end as not done) and say so in one line, once.
    fn stop_for_the_day(&self, error: &Error) {
        let resume_in = self.day_reset_in(error.retry_delay());
        let line = daily_quota_line(error, resume_in);
        self.halt_for_the_day(resume_in, &line);
    }

    /// An error that would fail every request (a revoked key, say): nothing
    /// more is sent, the requests already in flight still end (an answer
    /// that may be billed is kept), and the run then ends with this error's
    /// one line. The first such error is the one reported.
    fn stop_the_run(&self, error: &Error) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if fatal.is_none() {
            *fatal = Some(error.clone());
        }
        drop(fatal);
        // The halt, not `limiter.stop`: a Redis limiter would stop every
        // process sharing the quota, and this error is this run's own.
        self.halt.stop("not sent: the run stopped");
    }

    /// The error that stopped the run, if one did.
    fn fatal(&self) -> Option<Error> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the run for the day, remembers until when, and prints `line` once.
    fn halt_for_the_day(&self, resume_in: Duration, line: &str) {
        if let Some(learner) = &self.learner {
            learner.day_spent(resume_in);
        }
        self.limiter.stop(DAILY_QUOTA);
        if self.halt.stop(&format!("not sent: {DAILY_QUOTA}")) {
            self.say(line);
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
            let line = format!(
                "the daily quota of {} is spent (an earlier run was refused for the day): nothing is sent; it resets in {} (at {}); the requests are reported as not done; --forget-limits forgets this",
                self.options.model,
                daily::human(resume_in),
                daily::clock_in(resume_in),
            );
            self.halt_for_the_day(resume_in, &line);
        }
    }

    /// Our own per-day limit is reached and requests wait for it: end the
    /// run the way a server's per-day 429 does, rather than wait a day.
    fn check_own_day(&self, stats: &Stats) {
        let Some(full_until) = stats.day_full_until else {
            return;
        };
        if stats.waiting == 0 || self.halt.reason().is_some() {
            return;
        }
        let ours = full_until.saturating_duration_since(Instant::now());
        let resume_in = if stats.limits.day >= Limits::DAY {
            daily::until_midnight_pacific()
        } else {
            ours
        };
        let rpd = stats.limits.rpd.unwrap_or(0);
        let source = self
            .learner
            .as_ref()
            .map(|l| format!(" ({})", l.sources()[2]))
            .unwrap_or_default();
        let line = format!(
            "daily quota reached by our own count: {rpd} requests per day{source} are spent; no more requests until it resets in {} (at {}); the {} requests still waiting are reported as not done",
            daily::human(resume_in),
            daily::clock_in(resume_in),
            stats.waiting,
        );
        self.halt_for_the_day(resume_in, &line);
    }

    /// Why the run is halted, if it is. Checks Ctrl-C itself too, so a
    /// request never starts in the moment before [`Runner::stop_on_shutdown`]
    /// has run.
    fn halted(&self) -> Option<String> {
        if self.options.shutdown.is_requested() {
            self.halt.stop(&self.options.shutdown.not_sent());
        }
        self.halt.reason()
    }

    /// Runs beside the requests: turns Ctrl-C (or SIGTERM) into a halt the
    /// moment it comes, so requests queued in the limiter or backing off
    /// stop waiting at once.
    async fn stop_on_shutdown(&self) -> Infallible {
        self.options.shutdown.requested().await;
        self.halt.stop(&self.options.shutdown.not_sent());
        std::future::pending().await
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

/// Makes sure a run never waits longer than one window without a line on
/// stderr saying what it waits for and until when.
struct Watchdog {
    /// The last time something happened: an admission, or a line.
    last_news: Instant,
    /// Admissions counted then.
    admitted: u64,
}

impl Watchdog {
    fn new(now: Instant) -> Watchdog {
        Watchdog {
            last_news: now,
            admitted: 0,
        }
    }

    /// The line to print, if requests have waited a whole window with no news.
    fn check(&mut self, stats: &Stats, waiting: usize, now: Instant) -> Option<String> {
        if stats.admitted != self.admitted || waiting == 0 || stats.stopped.is_some() {
            self.admitted = stats.admitted;
            self.last_news = now;
            return None;
        }
        // A full window is the normal wait (plus the margin, plus a tick):
        // only a longer silence needs a line.
        let normal =
            stats.limits.window + stats.limits.margin_or_default() + Duration::from_secs(1);
        if now.saturating_duration_since(self.last_news) < normal {
            return None;
        }
        self.last_news = now;
        Some(waiting_line(stats, waiting, now))
    }
}

/// What `waiting` requests are waiting for, and until when, in one line.
fn waiting_line(stats: &Stats, waiting: usize, now: Instant) -> String {
    if let Some(until) = stats.paused_until {
        let left = until.saturating_duration_since(now);
        return format!(
            "still waiting: {waiting} requests wait for the server's retryDelay, until {} (in {})",
            daily::clock_in(left),
            daily::human(left)
        );
    }
    let usage = &stats.usage;
    let limits = &stats.limits;
    if let Some(rpd) = limits
        .rpd
        .filter(|&n| n > 0 && usage.day_requests >= u64::from(n))
    {
        return format!(
            "still waiting: {waiting} requests wait for the daily limit ({} of {rpd} requests per day used); it frees as the day's first requests age out; Ctrl-C stops the run",
            usage.day_requests
        );
    }
    format!(
        "still waiting: {waiting} requests wait for room in the limiter's window ({} of {} requests, {} of {} tokens per {}); Ctrl-C stops the run",
        usage.requests,
        limits.rpm.unwrap_or(0),
        usage.tokens,
        limits.tpm.unwrap_or(0),
        seconds(limits.window)
    )
}

/// The one line printed when the daily quota runs out.
fn daily_quota_line(error: &Error, resume_in: Duration) -> String {
    let quota = error.api().and_then(|api| api.quota.as_ref());
    let what = quota
        .map(|q| {
            let limit = q.value.as_deref().map(|v| format!(", limit {v} per day"));
            let model = q.model.as_deref().map(|m| format!(" for {m}"));
            format!(
                " ({}{}{})",
                q.quota_id,
                limit.unwrap_or_default(),
                model.unwrap_or_default()
            )
        })
        .unwrap_or_default();
    format!(
        "daily quota spent{what}: no more requests until it resets in {} (at {}); the requests not yet sent are reported as not done",
        daily::human(resume_in),
        daily::clock_in(resume_in),
    )
}

/// The notes under the summary: what the limiter enforced, how long
/// requests waited in it, how close to the limit the run went, and why the
/// server still said 429 if it did.
fn notes(
    stats: &Stats,
    pace: &Pace,
    summary: &Summary,
    paced: bool,
    sources: Option<[Source; 3]>,
) -> Vec<String> {
    if !paced {
        let mut notes = vec!["no limiter (--no-limit): every request was sent at once".to_string()];
        if summary.rate_limited > 0 {
            notes.push(format!(
                "the server answered 429 {}: run without --no-limit to stay under the limit",
                times(summary.rate_limited)
            ));
        }
        return notes;
    }
    let mut notes = vec![describe(&stats.limits)];
    if let Some(sources) = sources {
        notes.push(describe_sources(&stats.limits, sources));
    }
    notes.extend(waited(stats, summary));
    notes.extend(pace_against_limit(
        &stats.limits,
        pace,
        summary,
        stats.total_wait,
    ));
    let learned = sources.is_some_and(|s| s.contains(&Source::Learned));
    let day_spent = stats.stopped.as_deref() == Some(DAILY_QUOTA);
    if summary.rate_limited > 0 && day_spent {
        notes.push(format!(
            "the server answered 429 {}: the day's quota is spent (the daily line above says until when)",
            times(summary.rate_limited)
        ));
    } else if summary.rate_limited > 0 && learned {
        notes.push(format!(
            "the server answered 429 {} before the limiter learned its limits (see \"limits in force\"); the next run starts from them",
            times(summary.rate_limited)
        ));
    } else if summary.rate_limited > 0 {
        notes.push(earlier_requests_line(summary.rate_limited, pace.shared));
    }
    notes
}

/// The server said 429 although the limiter kept to the limits in force
/// and no 429 named a lower one (it would have been learned). The likely
/// cause: the server's window already held requests from before this run,
/// which the limiter could not know about.
fn earlier_requests_line(rate_limited: usize, shared: bool) -> String {
    let (others, advice) = if shared {
        (
            "a program not using this Redis, or an earlier run",
            "Wait a minute between runs on the free tier",
        )
    } else {
        (
            "another program using the same key, or an earlier step or run",
            "Wait a minute between runs on the free tier, and let programs that run together share one quota with --redis",
        )
    };
    format!(
        "the server answered 429 {} although the limiter kept to its limits: its window most likely held requests this run did not send ({others}); the limiter waited as the server asked. {advice}; if it happens every time, the project's limits are lower: set --rpm/--tpm/--rpd (and --window)",
        times(rate_limited)
    )
}

/// How long admissions waited in the limiter, named for what was counted:
/// requests when every request went once, admissions when retries went too.
fn waited(stats: &Stats, summary: &Summary) -> Option<String> {
    if stats.admitted == 0 {
        return None;
    }
    let wait = stats.total_wait.as_secs_f64();
    let average = wait / stats.admitted as f64;
    if summary.retries == 0 {
        return Some(format!(
            "waited in the limiter: {wait:.1} s in all, {average:.1} s per request on average"
        ));
    }
    Some(format!(
        "waited in the limiter: {wait:.1} s in all over {} attempts ({} included), {average:.1} s per attempt on average",
        stats.admitted,
        match summary.retries {
            1 => "1 retry".to_string(),
            n => format!("{n} retries"),
        }
    ))
}

/// What the limiter enforced, in one line.
fn describe(limits: &Limits) -> String {
    let window = seconds(limits.window);
    let mut parts = Vec::new();
    match (limits.rpm, limits.tpm) {
        (Some(rpm), Some(tpm)) => {
            parts.push(format!(
                "{rpm} requests and {tpm} input tokens per {window}"
            ));
        }
        (Some(rpm), None) => parts.push(format!("{rpm} requests per {window}")),
        (None, Some(tpm)) => parts.push(format!("{tpm} input tokens per {window}")),
        (None, None) => {}
    }
    if let Some(rpd) = limits.rpd {
        parts.push(format!("{rpd} requests per day"));
    }
    if let Some(k) = limits.max_in_flight.filter(|&k| k > 0) {
        parts.push(format!("at most {k} in flight"));
    }
    if parts.is_empty() {
        return "limiter: no limits (all set to 0)".into();
    }
    format!(
        "limiter: {} (each slot held {} past its window, for the trip to the server)",
        parts.join(", "),
        seconds(limits.margin_or_default())
    )
}

/// Where each limit in force came from, in one line.
fn describe_sources(limits: &Limits, sources: [Source; 3]) -> String {
    let parts: Vec<String> = [
        ("RPM", limits.rpm, sources[0]),
        ("TPM", limits.tpm, sources[1]),
        ("RPD", limits.rpd, sources[2]),
    ]
    .iter()
    .map(|(name, value, source)| match value {
        Some(n) => format!("{name} {n} ({source})"),
        None => format!("{name} unlimited ({source})"),
    })
    .collect();
    format!("limits in force: {}", parts.join(", "))
}

/// How the run's pace compares with the request limit, as a share of it
/// (the summary's first line already gives the rate).
///
/// The fastest any client may go against a strict window of `rpm`: the first
/// `rpm` requests at once, then `rpm` more each window, so admission number
/// `count` can go no earlier than `(ceil(count / rpm) - 1)` windows after the
/// first. Dividing that by when our last admission really went says what
/// share of the allowed rate we reached (the margin costs about 2%).
///
/// When the quota is shared through Redis, what counts is every process's
/// admissions: the admission ids number them all, so the ids of our first
/// and last admission say how many went in between, ours and the others'.
fn pace_against_limit(
    limits: &Limits,
    pace: &Pace,
    summary: &Summary,
    waited: Duration,
) -> Option<String> {
    let rpm = limits.rpm?;
    let (first, last) = (pace.first?, pace.last?);
    // Refused attempts are not counted (they were refunded), retried ones
    // are: the count is of requests only when each went once.
    let noun = if summary.retries == 0 || pace.count == (summary.succeeded + summary.failed) as u64
    {
        "requests"
    } else {
        "attempts"
    };
    let combined = pace.combined();
    let (count, whose) = match combined {
        Some(all) => (
            all,
            format!(
                "{all} requests of all the processes sharing the quota ({} of them this run's {noun})",
                pace.count
            ),
        ),
        None => (pace.count, format!("{} {noun}", pace.count)),
    };
    let window = seconds(limits.window);
    if count <= u64::from(rpm) {
        // Fitting in one window is not the same as not waiting: the window
        // may have held requests from before this run, or the server paused.
        let why = if waited < Duration::from_millis(100) {
            "none had to wait for the limit"
        } else if pace.shared {
            "the wait was for other processes' requests in the window, or for the server's retryDelay"
        } else {
            "the wait was for requests sent before this run, still in the window, or for the server's retryDelay"
        };
        return Some(format!(
            "all {whose} fit in one window of {rpm} per {window}: {why}"
        ));
    }
    let windows = count.div_ceil(u64::from(rpm)) - 1;
    let ideal = limits.window.as_secs_f64() * windows as f64;
    let actual = last.saturating_duration_since(first).as_secs_f64();
    if actual <= 0.0 {
        return None;
    }
    let share = (ideal / actual).min(1.0);
    let label = if combined.is_some() {
        "combined pace"
    } else {
        "pace"
    };
    Some(format!(
        "{label}: {:.1}% of the limit of {rpm} per {window}: {whose} went in {actual:.1} s from the first to the last, the limit allows {ideal:.1} s at the earliest",
        share * 100.0,
    ))
}

/// `60 s`, `1.5 s`, `250 ms`.
fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", trim(duration.as_secs_f64()))
    }
}

/// `once`, `twice`, `5 times`.
fn times(n: usize) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// A number without a useless `.0`.
fn trim(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A seed for the jitter: different in every run, which is the point of jitter.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// The stop signal of a run: `None` while it goes on, then the reason its
/// remaining requests are not done. The first reason given is kept.
///
/// A `watch` channel, so any number of requests can wait on it without
/// polling, and one that arrives late still sees it.
struct Halt(watch::Sender<Option<String>>);

impl Halt {
    fn new() -> Halt {
        Halt(watch::channel(None).0)
    }

    /// Halts the run; true if this call did (it was not halted before).
    fn stop(&self, reason: &str) -> bool {
        self.0.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason.to_string());
            }
            first
        })
    }

    /// The reason, once halted.
    fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Completes with the reason once the run is halted.
    async fn stopped(&self) -> String {
        let mut receiver = self.0.subscribe();
        // Clone the reason out at once: the `Ref` holds a read lock.
        let reason = receiver
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.clone().unwrap_or_default());
        match reason {
            Ok(reason) => reason,
            // The sender lives as long as the runner, which outlives this.
            Err(_) => std::future::pending().await,
        }
    }
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
    /// When admissions happened. A std mutex: a few comparisons per admission.
    pace: Mutex<Pace>,
}

/// The first and last admission of a run, and how many there were.
#[derive(Debug, Clone, Copy, Default)]
struct Pace {
    first: Option<Instant>,
    last: Option<Instant>,
    count: u64,
    /// The lowest and highest admission id this run was given.
    ids: Option<(u64, u64)>,
    /// Whether the ids number the admissions of every process sharing the
    /// quota (`--redis`), not only this run's.
    shared: bool,
    /// With a shared quota: the other processes' requests already in the
    /// window when this run's first request went.
    before: u64,
}

impl Pace {
    /// With a shared quota: how many admissions every process made from this
    /// run's first to its last, this run's included, plus those already in
    /// the window at the first (taken as sent then: the pace errs high, and
    /// is capped at 100%). `None` when the quota is not shared, or the ids
    /// cannot tell (Redis lost its counter when the quota sat idle longer
    /// than a window).
    fn combined(&self) -> Option<u64> {
        let (low, high) = self.ids.filter(|_| self.shared)?;
        let all = high.checked_sub(low)? + 1 + self.before;
        (all > self.count).then_some(all)
    }
}

impl Live {
    fn admitted(&self, at: Instant, id: u64) {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.first = Some(pace.first.map_or(at, |first| first.min(at)));
        pace.last = Some(pace.last.map_or(at, |last| last.max(at)));
        pace.count += 1;
        pace.ids = Some(
            pace.ids
                .map_or((id, id), |(low, high)| (low.min(id), high.max(id))),
        );
    }

    /// An admission the server refused and we refunded: it did not use the
    /// limit, so it does not count in the pace either.
    fn refunded(&self) {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.count = pace.count.saturating_sub(1);
    }

    fn pace(&self) -> Pace {
        *self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_estimate_errs_high_for_english() {
        let prompt = "Why do some birds migrate?";
        assert_eq!(estimate_tokens(prompt), 9);
        assert!(
            estimate_tokens(prompt) >= 26 / 4,
            "at least the 4-characters rule"
        );
        assert_eq!(estimate_tokens(""), 1);
    }

    /// A summary of `requests` requests with `retries` retries and
    /// `rate_limited` 429s.
    fn summary(requests: usize, retries: usize, rate_limited: usize) -> Summary {
        Summary {
            requests,
            succeeded: requests,
            empty_answers: 0,
            failed: 0,
            rate_limited,
            retries,
            elapsed_s: 68.2,
            throughput_rpm: 17.6,
            latency_ms: common::report::Latency::default(),
            not_done: 0,
            sum_of_latencies_s: 0.0,
            notes: Vec::new(),
            paced: true,
        }
    }

    fn stats(limits: Limits, admitted: u64, total_wait: Duration) -> Stats {
        Stats {
            limits,
            waiting: 0,
            admitted,
            total_wait,
            usage: crate::pace::Usage::default(),
            paused_until: None,
            stopped: None,
            wakeups: 0,
            day_full_until: None,
        }
    }

    #[test]
    fn pace_compares_the_last_admission_with_the_earliest_allowed() {
        let limits = Limits::default().with_rpm(10);
        let start = Instant::now();
        let pace = Pace {
            first: Some(start),
            last: Some(start + Duration::from_millis(61_200)),
            count: 20,
            ids: Some((1, 20)),
            shared: false,
            before: 0,
        };
        let wait = Duration::from_secs(612);
        let line = pace_against_limit(&limits, &pace, &summary(20, 0, 0), wait).expect("a line");
        assert_eq!(
            line,
            "pace: 98.0% of the limit of 10 per 60 s: 20 requests went in 61.2 s from the first to the last, the limit allows 60.0 s at the earliest"
        );
        assert!(!line.contains("req/min"), "one rate, the summary's: {line}");
        // 12 requests, 8 of them sent twice (a 503, say): 20 counted attempts.
        let with_retries = pace_against_limit(&limits, &pace, &summary(12, 8, 0), wait);
        assert!(with_retries.expect("a line").contains("20 attempts went"));
        assert_eq!(
            pace_against_limit(&Limits::default(), &pace, &summary(20, 0, 0), wait),
            None
        );
    }

    #[test]
    fn one_window_says_none_waited_only_when_none_did() {
        let limits = Limits::default().with_rpm(10);
        let start = Instant::now();
        let few = Pace {
            first: Some(start),
            last: Some(start + Duration::from_millis(50)),
            count: 7,
            ids: Some((1, 7)),
            shared: false,
            before: 0,
        };
        let quick = pace_against_limit(&limits, &few, &summary(7, 0, 0), Duration::ZERO);
        assert_eq!(
            quick.as_deref(),
            Some("all 7 requests fit in one window of 10 per 60 s: none had to wait for the limit")
        );
        let slow = pace_against_limit(&limits, &few, &summary(7, 0, 0), Duration::from_secs(300))
            .expect("a line");
        assert!(!slow.contains("none had to wait"), "{slow}");
        assert!(slow.contains("requests sent before this run"), "{slow}");
    }

    #[test]
    fn a_shared_quota_reports_the_combined_pace_of_every_process() {
        // Three processes, 10 each, one budget of 10 per 10 s: this run's
        // ids 5..=29 span 25 admissions, 10 of them its own.
        let limits = Limits::default()
            .with_rpm(10)
            .with_window(Duration::from_secs(10));
        let start = Instant::now();
        let pace = Pace {
            first: Some(start),
            last: Some(start + Duration::from_millis(20_500)),
            count: 10,
            ids: Some((5, 29)),
            shared: true,
            before: 0,
        };
        let wait = Duration::from_secs(120);
        let line = pace_against_limit(&limits, &pace, &summary(10, 0, 0), wait).expect("a line");
        assert_eq!(
            line,
            "combined pace: 97.6% of the limit of 10 per 10 s: 25 requests of all the processes sharing the quota (10 of them this run's requests) went in 20.5 s from the first to the last, the limit allows 20.0 s at the earliest"
        );
        // A run that found 7 of the others' requests in the window counts
        // them: its ids 8..=21 and those 7 are 21 requests in three windows.
        let late = Pace {
            ids: Some((8, 21)),
            before: 7,
            ..pace
        };
        let line = pace_against_limit(&limits, &late, &summary(10, 0, 0), wait).expect("a line");
        assert!(
            line.starts_with("combined pace: 97.6% of the limit of 10 per 10 s: 21 requests"),
            "{line}"
        );
        // Alone on the quota, the same run reads as its own pace.
        let alone = Pace {
            ids: Some((1, 10)),
            ..pace
        };
        let line = pace_against_limit(&limits, &alone, &summary(10, 0, 0), wait).expect("a line");
        assert!(
            line.starts_with("all 10 requests fit in one window"),
            "{line}"
        );
        // The notes never claim nobody waited when the limiter says it did.
        let stats = stats(limits, 10, wait);
        let notes = notes(&stats, &pace, &summary(10, 0, 0), true, None);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("waited in the limiter: 120.0 s"))
        );
        assert!(
            !notes.iter().any(|n| n.contains("none had to wait")),
            "{notes:?}"
        );
    }

    #[test]
    fn waits_are_counted_per_request_or_per_attempt_as_they_were() {
        let limits = Limits::default().with_rpm(10);
        let per_request = waited(
            &stats(limits.clone(), 20, Duration::from_secs(612)),
            &summary(20, 0, 0),
        );
        assert_eq!(
            per_request.as_deref(),
            Some("waited in the limiter: 612.0 s in all, 30.6 s per request on average")
        );
        let per_attempt = waited(
            &stats(limits.clone(), 22, Duration::from_secs(44)),
            &summary(12, 10, 0),
        );
        assert_eq!(
            per_attempt.as_deref(),
            Some(
                "waited in the limiter: 44.0 s in all over 22 attempts (10 retries included), 2.0 s per attempt on average"
            )
        );
        let one = waited(
            &stats(limits, 11, Duration::from_secs(11)),
            &summary(10, 1, 1),
        );
        assert!(one.expect("a line").contains("(1 retry included)"));
    }

    #[test]
    fn a_429_at_the_limiters_own_limits_blames_earlier_requests_not_the_limits() {
        let limits = Limits::default().with_rpm(10);
        let stats = stats(limits, 10, Duration::from_secs(55));
        let pace = Pace::default();
        let table = [Source::Table("free"); 3];
        let first = notes(&stats, &pace, &summary(10, 10, 10), true, Some(table));
        let line = first.last().expect("a note");
        assert!(
            line.starts_with("the server answered 429 10 times although the limiter kept to its limits: its window most likely held requests this run did not send (another program using the same key, or an earlier step or run); the limiter waited as the server asked. Wait a minute between runs on the free tier, and let programs that run together share one quota with --redis; if"),
            "{line}"
        );
        assert!(!line.contains("its limits are lower"), "{line}");
        // A spent day is its own reason.
        let day = Stats {
            stopped: Some(DAILY_QUOTA.to_string()),
            ..stats.clone()
        };
        let line = notes(&day, &pace, &summary(10, 0, 8), true, Some(table));
        assert_eq!(
            line.last().map(String::as_str),
            Some(
                "the server answered 429 8 times: the day's quota is spent (the daily line above says until when)"
            )
        );
        // Sharing through Redis, the other processes are no suspects.
        let shared = Pace {
            shared: true,
            ..pace
        };
        let line = notes(&stats, &shared, &summary(10, 10, 10), true, Some(table));
        let line = line.last().expect("a note");
        assert!(
            line.contains("(a program not using this Redis, or an earlier run)"),
            "{line}"
        );
        assert!(!line.contains("with --redis"), "{line}");
        let learned = [
            Source::Learned,
            Source::Table("free"),
            Source::Table("free"),
        ];
        let second = notes(&stats, &pace, &summary(10, 10, 10), true, Some(learned));
        assert!(
            second
                .last()
                .expect("a note")
                .contains("before the limiter learned")
        );
    }

    #[test]
    fn limits_are_described_in_words() {
        let limits = Limits::default()
            .with_rpm(10)
            .with_tpm(250_000)
            .with_rpd(250)
            .with_max_in_flight(4);
        assert_eq!(
            describe(&limits),
            "limiter: 10 requests and 250000 input tokens per 60 s, 250 requests per day, at most 4 in flight (each slot held 1.2 s past its window, for the trip to the server)"
        );
        let short = Limits::default()
            .with_rpm(5)
            .with_window(Duration::from_millis(500));
        assert!(describe(&short).starts_with("limiter: 5 requests per 500 ms"));
    }

    #[test]
    fn the_daily_quota_line_says_which_quota_and_when_it_resets() {
        // When it resets is worked out by the runner (`day_reset_in`): the
        // server's delay only when longer than our own reckoning.
        use common::error::{ApiError, QuotaViolation};
        let refusal = |delay: Option<Duration>| {
            Error::from(ApiError {
                http_status: 429,
                status: "RESOURCE_EXHAUSTED".into(),
                message: "You exceeded your current quota".into(),
                retry_delay: delay,
                quota: Some(QuotaViolation {
                    quota_id: "GenerateRequestsPerDayPerProjectPerModel-FreeTier".into(),
                    metric: "generate_content_free_tier_requests".into(),
                    model: Some("gemini-2.5-flash".into()),
                    value: Some("250".into()),
                    malformed: false,
                }),
                reason: None,
            })
        };
        let delay = Duration::from_secs(3 * 3600 + 60);
        let line = daily_quota_line(&refusal(Some(delay)), delay);
        assert!(
            line.starts_with(
                "daily quota spent (GenerateRequestsPerDayPerProjectPerModel-FreeTier, limit 250 per day for gemini-2.5-flash): no more requests until it resets in 3 h 1 min (at "
            ),
            "{line}"
        );
        assert!(line.contains(" UTC)"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_long_wait_gets_a_line_that_says_what_for_and_until_when() {
        let start = Instant::now();
        let mut stats = Stats {
            limits: Limits::default()
                .with_rpm(2)
                .with_rpd(2)
                .with_window(Duration::from_secs(10)),
            waiting: 1,
            admitted: 2,
            total_wait: Duration::ZERO,
            usage: crate::pace::Usage {
                requests: 0,
                tokens: 0,
                day_requests: 2,
            },
            paused_until: None,
            stopped: None,
            wakeups: 0,
            day_full_until: None,
        };
        let mut watch = Watchdog::new(start);
        assert_eq!(watch.check(&stats, 1, start), None, "an admission is news");
        let normal = start + Duration::from_secs(11);
        assert_eq!(watch.check(&stats, 1, normal), None, "a window is normal");
        let line = watch
            .check(&stats, 1, start + Duration::from_secs(12))
            .expect("a line after more than a window");
        assert!(line.contains("daily limit (2 of 2"), "{line}");
        stats.paused_until = Some(start + Duration::from_secs(100));
        let line = watch
            .check(&stats, 1, start + Duration::from_secs(24))
            .expect("another line a window later");
        assert!(
            line.contains("retryDelay, until ") && line.contains("UTC"),
            "{line}"
        );
        assert_eq!(
            watch.check(&stats, 0, start + Duration::from_secs(99)),
            None
        );
    }

    #[tokio::test]
    async fn a_halt_keeps_its_first_reason_and_wakes_waiters() {
        let halt = Arc::new(Halt::new());
        let waiter = {
            let halt = Arc::clone(&halt);
            tokio::spawn(async move { halt.stopped().await })
        };
        assert!(halt.stop("first"));
        assert!(!halt.stop("second"));
        assert_eq!(waiter.await.expect("ran"), "first");
        assert_eq!(halt.reason().as_deref(), Some("first"));
    }
}
