//! The shape of a step's run: open a session, send a batch, end with a summary.
//!
//! A step's `main` reads like the tutorial: it sets up logging and the
//! [`Shutdown`] handle (a line each), builds its request, awaits
//! `client.generate_content(...)` -- in a loop, or all together -- and hands
//! each call to the [`Batch`], which times it and records its [`Outcome`].
//! Steps 2 and 3 make one try per request ([`Batch::record`]); step 4 makes
//! as many as its retries need, each a [`Tries::turn`] from its rate limiter
//! and a [`Tries::attempt`]. Every attempt, in every step and in `bulk`, is
//! timed by the one [`timed_attempt`].
//! What the steps share lives here: [`session`] connects (to the real API
//! with a key, to the built-in emulator without one) and checks the model
//! before any request is spent; [`exit`] prints the summary and picks the
//! exit code.
//!
//! Ctrl-C and SIGTERM reach the batch through the [`Shutdown`] handle that
//! `main` passes in: the first stops new requests from starting, lets those
//! in flight finish for a bounded time, and the run still ends with a
//! (partial) summary and exit code 130 (143 after SIGTERM).

use std::{
    fmt::Display,
    future::Future,
    pin::Pin,
    process::ExitCode,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use tracing_subscriber::EnvFilter;

use crate::{
    cli::{BatchArgs, CommonArgs},
    client::Client,
    connect::{ConnectOptions, Session, connect},
    error::Error,
    outcome::{Answer, Attempt, AttemptStatus, Ended, Outcome},
    report::{PrintOptions, Report, Summary},
    shutdown::Shutdown,
    terminal, timeline,
    types::GenerateContentResponse,
};

/// Exit code when every request succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code when a request failed, or the run could not start.
pub const EXIT_FAILED: u8 = 1;
/// Exit code after Ctrl-C (128 + SIGINT, as shells do); SIGTERM's is 143
/// (see [`Signal::exit_code`](crate::shutdown::Signal::exit_code)).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Connects as the step's options say, and checks the model exists.
///
/// Checking the model first (one `models.get`, which costs no generation
/// quota) turns the errors that would fail every request -- a bad key, an
/// unknown model, an unreachable host -- into one clear line before the
/// batch starts, instead of N copies of the same error. A `--timeline`
/// path that holds something else than a picture of ours is refused first:
/// the run would write over it.
pub async fn session(args: &CommonArgs) -> Result<Session, Error> {
    session_with(args, emulator::Settings::default()).await
}

/// [`session`], with the built-in emulator (when it is the one started) set
/// up as `emulator` says: step 4 runs it on its limiter's window.
pub async fn session_with(
    args: &CommonArgs,
    emulator: emulator::Settings,
) -> Result<Session, Error> {
    if let Some(path) = &args.timeline {
        crate::timeline::refuse_foreign(path).map_err(|e| Error::Config(e.to_string()))?;
    }
    crate::open_files::raise_limit();
    let session = connect(ConnectOptions {
        force_emulator: args.emulator,
        timeout: args.timeout,
        emulator,
    })
    .await?;
    if let Some(mib) = args.max_response_mib {
        session.client.set_max_response(mib as usize * 1024 * 1024);
    }
    check_model(&session.client, &args.model).await?;
    Ok(session)
}

/// `models.get` for the model; when the server says 404, the error names the
/// models it does offer (closest to the typo first), read from `models.list`
/// while the server is still there to ask.
async fn check_model(client: &Client, model: &str) -> Result<(), Error> {
    let Err(error) = client.get_model(model).await else {
        return Ok(());
    };
    let Error::Api(api) = error else {
        return Err(error);
    };
    if api.http_status != 404 {
        return Err(Error::Api(api));
    }
    let Ok(models) = client.list_models().await else {
        return Err(Error::Api(api));
    };
    let generating = models.iter().filter(|m| {
        m.supported_generation_methods
            .iter()
            .any(|method| method == "generateContent")
    });
    let closest = crate::suggest::closest_models(model, generating.map(|m| m.name.as_str()));
    // The names come from the network: scrubbed like every text from it.
    Err(client
        .redactor()
        .error(Error::UnknownModel { api, closest }))
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only), so a
/// step prints nothing beyond its own output unless asked to.
///
/// `RUST_LOG=debug` means debug for this project's code: the libraries
/// underneath (hyper's connection pool, h2's frames, rustls, reqwest) stay at
/// `warn` unless named, because at debug they write a dozen lines per request
/// and bury the one line per attempt. Naming one brings it back:
/// `RUST_LOG=debug,hyper=debug`.
///
/// Colours only on a terminal: in a log file or a pipe the escape codes
/// would be noise (and would break a `grep request=3`).
pub fn init_tracing() {
    use std::io::IsTerminal;

    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The libraries whose debug output is noise to a learner: kept at `warn`
/// unless `RUST_LOG` names them.
const QUIET_LIBRARIES: [&str; 7] = [
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "reqwest",
    "tower",
];

/// The filter for a `RUST_LOG` value: the quiet libraries at `warn` first, so
/// that a bare level applies to our own targets, and anything the user names
/// (given later, so it wins) overrides them. Unset or unparsable: `warn`.
pub fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let Some(spec) = rust_log.map(str::trim).filter(|s| !s.is_empty()) else {
        return EnvFilter::new("warn");
    };
    let quiet = QUIET_LIBRARIES
        .map(|target| format!("{target}=warn"))
        .join(",");
    EnvFilter::try_new(format!("{quiet},{spec}")).unwrap_or_else(|error| {
        eprintln!("RUST_LOG={spec:?} is not a log filter ({error}): logging warnings only");
        EnvFilter::new("warn")
    })
}

/// A batch of requests, and the report of what became of each.
///
/// Steps 2 and 3 both use it; only the way they await [`Batch::record`]
/// differs. Step 4 starts it [paced](Batch::start_paced) and records each
/// request's [`Tries`].
pub struct Batch {
    session: Session,
    report: Report,
    shutdown: Shutdown,
    pacing: Option<Pacing>,
    /// The turns given so far (a std mutex: a few additions per turn).
    turns: Mutex<Turns>,
}

/// What a paced batch (step 4's) is told at its start.
pub struct Pacing {
    /// The window the limits are counted over: the timeline shades it, and
    /// the built-in emulator, when it is the one started, counts over it too
    /// (so that `--window 5s` makes a demo of minutes take seconds).
    pub window: Duration,
    /// Whether a limiter paces the requests (not with `--no-limit`).
    pub limited: bool,
    /// The summary's notes on the pacing, from the turns the requests took.
    pub notes: Box<PacingNotes>,
}

/// What makes a paced run's notes (step 4's are its `pace::notes`).
pub type PacingNotes = dyn Fn(&Turns) -> Vec<String> + Send + Sync;

/// The turns the requests of a batch waited for (step 4: its limiter's
/// permits), added up for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turns {
    /// Turns given: one per attempt.
    pub count: u64,
    /// The time spent waiting for them, summed.
    pub waited: Duration,
    /// When the first turn was given, since the run started.
    pub first: Option<Duration>,
    /// When the last turn was given, since the run started.
    pub last: Option<Duration>,
}

impl Batch {
    /// Connects, checks the model, and starts the run's clock.
    pub async fn start(args: &BatchArgs, shutdown: &Shutdown) -> Result<Batch, Error> {
        let session = session(&args.common).await?;
        Ok(Batch::new(session, args, shutdown, None))
    }

    /// [`Batch::start`] for a paced run: the built-in emulator counts over
    /// the pacing's window, the timeline shades it, and the summary ends with
    /// the pacing's notes.
    pub async fn start_paced(
        args: &BatchArgs,
        shutdown: &Shutdown,
        pacing: Pacing,
    ) -> Result<Batch, Error> {
        let emulator = emulator::Settings {
            window: pacing.window,
            ..emulator::Settings::default()
        };
        let session = session_with(&args.common, emulator).await?;
        Ok(Batch::new(session, args, shutdown, Some(pacing)))
    }

    fn new(
        session: Session,
        args: &BatchArgs,
        shutdown: &Shutdown,
        pacing: Option<Pacing>,
    ) -> Batch {
        let options = timeline::Options {
            title: None,
            window: pacing.as_ref().map(|pacing| pacing.window),
        };
        Batch {
            session,
            report: Report::new(args.requests as usize, &args.common)
                .with_timeline_options(options),
            shutdown: shutdown.clone(),
            pacing,
            turns: Mutex::new(Turns::default()),
        }
    }

    /// The client every request of the batch shares (one connection pool).
    pub fn client(&self) -> &Client {
        &self.session.client
    }

    /// The request indices of this batch: `0..N`.
    pub fn indices(&self) -> std::ops::Range<usize> {
        0..self.report.total()
    }

    /// Awaits request `index`'s `call`, times it, and records how it ended.
    ///
    /// A future does nothing until it is awaited, so `call` has not left
    /// yet: after Ctrl-C it is never sent, and once the grace period is over
    /// it is cut off (dropping a future cancels it).
    ///
    /// It returns an error only when the error would fail every other
    /// request too (a revoked key, say): the caller stops the run with `?`
    /// and the user sees one line, not N. Any other failure is recorded and
    /// the run goes on.
    ///
    /// `call` is boxed here, before any future holds it: an `async fn` keeps
    /// its arguments for its whole life, so one taking `call` by value would
    /// hold it twice (the argument, and the `select!` it is moved into), and
    /// step 3 holds ten thousand of these at once.
    pub fn record<'a>(
        &'a self,
        index: usize,
        call: impl Future<Output = Result<GenerateContentResponse, Error>> + 'a,
    ) -> impl Future<Output = Result<(), Error>> + 'a {
        self.record_boxed(index, Box::pin(call))
    }

    /// [`Batch::record`], its call on the heap.
    async fn record_boxed(
        &self,
        index: usize,
        call: Pin<Box<impl Future<Output = Result<GenerateContentResponse, Error>>>>,
    ) -> Result<(), Error> {
        let mut tries = self.tries(index);
        match tries.attempt(call).await {
            Some(Ok(answer)) => tries.answered(answer),
            _ => tries.end(),
        }
    }

    /// Request `index`, to be tried as many times as the caller decides.
    pub fn tries(&self, index: usize) -> Tries<'_> {
        Tries {
            batch: self,
            index,
            attempts: Vec::new(),
            error: None,
            not_done: None,
        }
    }

    /// Ends the run and adds it up.
    pub fn finish(self) -> Summary {
        let turns = *self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        let mut summary = self.report.finish("not sent");
        if let Some(pacing) = &self.pacing {
            summary.paced = pacing.limited;
            summary.notes.splice(0..0, (pacing.notes)(&turns));
        }
        summary
    }
}

/// One request of a [`Batch`], try by try: each attempt is timed and kept,
/// and how the request ended is recorded once, by [`Tries::answered`] or
/// [`Tries::end`] (both return an error only when it stops the run).
pub struct Tries<'a> {
    batch: &'a Batch,
    index: usize,
    attempts: Vec<Attempt>,
    /// The last attempt's error: the request's, unless a retry answers.
    error: Option<Error>,
    /// Why the request stopped without an answer: Ctrl-C, or a turn refused.
    not_done: Option<String>,
}

impl Tries<'_> {
    /// Waits for the request's turn (`wait`: step 4's `limiter.acquire`),
    /// unless the run is stopped first. `None` means the request goes no
    /// further: the run was stopped, or the turn refused (the error's text
    /// says why, in the request's line).
    pub async fn turn<T, E: Display>(
        &mut self,
        wait: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        let (batch, asked) = (self.batch, tokio::time::Instant::now());
        let result = tokio::select! {
            biased;
            _ = batch.shutdown.requested() => {
                self.not_done = Some(batch.shutdown.not_sent());
                return None;
            }
            result = wait => result,
        };
        match result {
            Ok(turn) => {
                let mut turns = batch.turns.lock().unwrap_or_else(PoisonError::into_inner);
                let now = batch.report.elapsed();
                turns.count += 1;
                turns.waited = turns.waited.saturating_add(asked.elapsed());
                turns.first.get_or_insert(now);
                turns.last = Some(now);
                Some(turn)
            }
            Err(refused) => {
                self.not_done = Some(format!("not sent: {refused}"));
                None
            }
        }
    }

    /// Sends one attempt of the request: timed, logged and kept. `None` if
    /// the run was stopped before it left, or Ctrl-C's grace period cut it
    /// off in flight.
    ///
    /// The call goes on the heap at once, so a request waiting for its turn
    /// (step 4 queues thousands behind the limiter) holds a pointer, not the
    /// whole HTTP exchange's state.
    pub fn attempt<'a>(
        &'a mut self,
        call: impl Future<Output = Result<GenerateContentResponse, Error>> + 'a,
    ) -> impl Future<Output = Option<Result<Answer, Error>>> + 'a {
        self.attempt_boxed(Box::pin(call))
    }

    /// [`Tries::attempt`], its call on the heap.
    async fn attempt_boxed(
        &mut self,
        call: Pin<Box<impl Future<Output = Result<GenerateContentResponse, Error>>>>,
    ) -> Option<Result<Answer, Error>> {
        let shutdown = &self.batch.shutdown;
        if shutdown.is_requested() {
            self.not_done = Some(shutdown.not_sent());
            return None;
        }
        let Some((attempt, result)) = timed_attempt(&self.batch.report, shutdown, call).await
        else {
            (self.error, self.not_done) = (None, Some(shutdown.cut_off()));
            return None;
        };
        self.attempts.push(attempt);
        log_attempt(self.index, self.attempts.len(), &attempt, &result);
        self.error = result.as_ref().err().cloned();
        Some(result)
    }

    /// How many attempts were retries: all but the first.
    pub fn retries(&self) -> u32 {
        u32::try_from(self.attempts.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// Sleeps `delay` before a retry, or less if the run is stopped meanwhile.
    pub async fn sleep(&self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = self.batch.shutdown.requested() => {}
        }
    }

    /// The request ended with `answer`.
    pub fn answered(self, answer: Answer) -> Result<(), Error> {
        self.record(Ended::Answered(answer))
    }

    /// The request ended without an answer: failed with its last attempt's
    /// error, or not done (never sent, or cut off). An error that would fail
    /// every request (a revoked key, say) is returned instead, to stop the
    /// run with one line.
    pub fn end(mut self) -> Result<(), Error> {
        let ended = match self.error.take() {
            Some(error) if stops_the_run(&error) => return Err(error),
            Some(error) => Ended::Failed(error),
            None => Ended::NotDone(self.not_done.take().unwrap_or_else(|| "not sent".into())),
        };
        self.record(ended)
    }

    fn record(self, ended: Ended) -> Result<(), Error> {
        self.batch.report.record(Outcome {
            index: self.index,
            attempts: self.attempts,
            ended,
        });
        Ok(())
    }
}

/// One attempt on the wire, timed on the run's clock (the report's): the
/// one way every step, and `bulk`, times an attempt. `None` if Ctrl-C's
/// grace period ran out first (the call is dropped, which cancels it).
pub async fn timed_attempt(
    report: &Report,
    shutdown: &Shutdown,
    call: impl Future<Output = Result<GenerateContentResponse, Error>>,
) -> Option<(Attempt, Result<Answer, Error>)> {
    let sent = report.elapsed();
    let result = tokio::select! {
        result = call => result.and_then(Answer::from_response),
        () = shutdown.grace_over() => return None,
    };
    let attempt = Attempt {
        sent,
        answered: report.elapsed(),
        status: status_of(&result),
    };
    Some((attempt, result))
}

/// Whether an error, met in the middle of a run, means every later request
/// would fail too, so the run should stop with this one line.
///
/// A bad key or an unknown model will not get better. A refused connection
/// is different once the run is under way: [`session`] already reached the
/// server, so the server went away, and it may come back -- each request
/// then ends as its own failure and the summary still adds up to N.
pub fn stops_the_run(error: &Error) -> bool {
    error.is_fatal() && !matches!(error, Error::Connect { .. })
}

/// One line per attempt at `RUST_LOG=debug`: the request's number (`#1`-based,
/// as every other output counts; `index` is the 0-based position), the
/// attempt number, status, latency, and the retry delay when the server
/// asked for one (a 429's `RetryInfo`). Every step logs its attempts through
/// this, so one `grep request=3` reads them all alike.
pub fn log_attempt<T>(index: usize, number: usize, attempt: &Attempt, result: &Result<T, Error>) {
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    tracing::debug!(
        request = index + 1,
        attempt = number,
        status = ?attempt.status,
        latency_ms = millis(attempt.latency()),
        retry_delay_ms = result.as_ref().err().and_then(Error::retry_delay).map(millis),
        "attempt"
    );
}

/// How an attempt's result counts in the summary and the timeline.
pub fn status_of<T>(result: &Result<T, Error>) -> AttemptStatus {
    match result {
        Ok(_) => AttemptStatus::Ok,
        Err(error) if error.is_rate_limited() => AttemptStatus::RateLimited,
        Err(_) => AttemptStatus::Failed,
    }
}

/// Runs `work` to its end, prints how it ended and turns that into the
/// process's exit code.
///
/// Results and the summary go to stdout; an error that stopped the run is
/// one line on stderr. The codes mean: 0 all succeeded, 1 something failed
/// (or the run could not start), 130 stopped by Ctrl-C, 143 by SIGTERM (2,
/// bad usage, is clap's own).
///
/// A second signal, or the backstop after the grace period, ends the wait
/// here, in `main`'s own future: returning drops the run, and with it every
/// request still in flight.
pub async fn exit<E: Into<anyhow::Error>>(
    args: &CommonArgs,
    shutdown: &Shutdown,
    work: impl Future<Output = Result<Summary, E>>,
) -> ExitCode {
    let result = tokio::select! {
        result = work => result,
        by_signal = shutdown.forced() => {
            if !by_signal {
                terminal::diagnostic(format_args!(
                    "error: still not finished {} s after the stop; quitting",
                    (crate::shutdown::GRACE + crate::shutdown::BACKSTOP).as_secs()
                ));
            }
            return ExitCode::from(stopped_code(shutdown).unwrap_or(EXIT_INTERRUPTED));
        }
    };
    let stopped = stopped_code(shutdown);
    match result {
        Ok(summary) => {
            summary.print(PrintOptions {
                json: args.json,
                stopped_by: shutdown.signal(),
            });
            ExitCode::from(stopped.unwrap_or(if summary.all_succeeded() {
                EXIT_OK
            } else {
                EXIT_FAILED
            }))
        }
        Err(error) => {
            print_error(error);
            ExitCode::from(stopped.unwrap_or(EXIT_FAILED))
        }
    }
}

/// Prints the error that stopped a run: one line on stderr, `error: ` and
/// the whole chain, "what failed: why".
pub fn print_error(error: impl Into<anyhow::Error>) {
    let error: anyhow::Error = error.into();
    // `{:#}` keeps the whole chain on one line.
    let line = format!("{error:#}").replace('\n', " ");
    terminal::diagnostic(format_args!("error: {line}"));
}

/// The exit code of a run a signal stopped, if one did.
pub fn stopped_code(shutdown: &Shutdown) -> Option<u8> {
    shutdown.signal().map(|signal| signal.exit_code())
}
