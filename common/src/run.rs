//! The shape of a step's run: open a session, send a batch, end with a summary.
//!
//! The steps differ in one thing only -- *how* their requests are awaited --
//! so everything else lives here: [`session`] connects (to the real API with a
//! key, to the built-in emulator without one) and checks the model before any
//! request is spent; [`Batch`] sends the prompt and records each
//! [`Outcome`]; [`exit`] prints the summary and picks the exit code.
//!
//! Ctrl-C is handled here too (see [`interrupt`]), so that a step's `main.rs`
//! stays the lesson: the first Ctrl-C stops new requests from starting, lets
//! those in flight finish for a bounded time, and the run still ends with a
//! (partial) summary and exit code 130.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::{
    cli::{BatchArgs, CommonArgs},
    connect::{ConnectOptions, Session, connect},
    error::Error,
    report::{Answer, Attempt, AttemptStatus, Ended, Outcome, Report, Summary},
    types::GenerateContentRequest,
};

/// Exit code when every request succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code when a request failed, or the run could not start.
pub const EXIT_FAILED: u8 = 1;
/// Exit code after Ctrl-C (128 + SIGINT, as shells do).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Connects as the step's options say, and checks the model exists.
///
/// Checking the model first (one `models.get`, which costs no generation
/// quota) turns the errors that would fail every request -- a bad key, an
/// unknown model, an unreachable host -- into one clear line before the
/// batch starts, instead of N copies of the same error.
pub async fn session(args: &CommonArgs) -> Result<Session, Error> {
    init_tracing();
    interrupt::watch_ctrl_c();
    crate::limits::raise_open_files_limit();
    let session = connect(ConnectOptions {
        force_emulator: args.emulator,
        timeout: args.timeout,
        emulator: emulator::Settings::default(),
    })
    .await?;
    if let Some(mib) = args.max_response_mib {
        session.client.set_max_response(mib as usize * 1024 * 1024);
    }
    session.client.get_model(&args.model).await?;
    Ok(session)
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only), so a
/// step prints nothing beyond its own output unless asked to.
///
/// Colours only on a terminal: in a log file or a pipe the escape codes
/// would be noise (and would break a `grep index=3`).
pub fn init_tracing() {
    use std::io::IsTerminal;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// A batch of identical requests, and the report of what became of each.
///
/// Steps 2 and 3 both use it; only the way they await [`Batch::send`] differs.
pub struct Batch {
    session: Session,
    model: String,
    request: GenerateContentRequest,
    report: Report,
}

impl Batch {
    /// Connects, checks the model, and starts the run's clock.
    pub async fn start(args: &BatchArgs) -> Result<Batch, Error> {
        let session = session(&args.common).await?;
        Ok(Batch {
            session,
            model: args.common.model.clone(),
            request: GenerateContentRequest::from_prompt(&args.common.prompt),
            report: Report::new(args.requests as usize, &args.common),
        })
    }

    /// The request indices of this batch: `0..N`.
    pub fn indices(&self) -> std::ops::Range<usize> {
        0..self.report.total()
    }

    /// Sends request `index` once, times it, and records how it ended.
    ///
    /// It returns an error only when the error would fail every other
    /// request too (a revoked key, say): the caller stops the run with `?`
    /// and the user sees one line, not N. Any other failure is recorded and
    /// the run goes on.
    pub async fn send(&self, index: usize) -> Result<(), Error> {
        if interrupt::requested() {
            self.report
                .record(Outcome::not_done(index, "not sent: interrupted by Ctrl-C"));
            return Ok(());
        }
        let sent = self.report.elapsed();
        let call = self
            .session
            .client
            .generate_content(&self.model, &self.request);
        let result = tokio::select! {
            result = call => result.and_then(Answer::from_response),
            () = interrupt::grace_over() => {
                self.report.record(Outcome::not_done(index, "cut off by Ctrl-C before the answer came"));
                return Ok(());
            }
        };
        let attempt = Attempt {
            sent,
            answered: self.report.elapsed(),
            status: status_of(&result),
        };
        // Steps 2 and 3 never retry: this is always attempt 1.
        log_attempt(index, 1, &attempt, &result);
        let ended = match result {
            Ok(answer) => Ended::Answered(answer),
            Err(error) if stops_the_run(&error) => return Err(error),
            Err(error) => Ended::Failed(error),
        };
        self.report.record(Outcome {
            index,
            attempts: vec![attempt],
            ended,
        });
        Ok(())
    }

    /// Ends the run and adds it up.
    pub fn finish(self) -> Summary {
        self.report.finish("not sent")
    }
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

/// One line per attempt at `RUST_LOG=debug`: index, attempt number, status,
/// latency, and the retry delay when the server asked for one (a 429's
/// `RetryInfo`). Every step logs its attempts through this, so one `grep`
/// reads them all alike.
pub fn log_attempt<T>(index: usize, number: usize, attempt: &Attempt, result: &Result<T, Error>) {
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    tracing::debug!(
        index,
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

/// Prints how the run ended and turns it into the process's exit code.
///
/// Results and the summary go to stdout; an error that stopped the run is
/// one line on stderr. The codes mean: 0 all succeeded, 1 something failed
/// (or the run could not start), 130 interrupted by Ctrl-C (2, bad usage, is
/// clap's own).
pub fn exit(result: Result<Summary, impl Into<anyhow::Error>>) -> ExitCode {
    match result {
        Ok(mut summary) => {
            summary.interrupted = interrupt::requested();
            summary.print();
            ExitCode::from(if summary.interrupted {
                EXIT_INTERRUPTED
            } else if summary.all_succeeded() {
                EXIT_OK
            } else {
                EXIT_FAILED
            })
        }
        Err(error) => {
            let error: anyhow::Error = error.into();
            // `{:#}` keeps the whole chain on one line: "what failed: why".
            let line = format!("{error:#}").replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::from(if interrupt::requested() {
                EXIT_INTERRUPTED
            } else {
                EXIT_FAILED
            })
        }
    }
}

pub mod interrupt {
    //! Ctrl-C, handled once for every step.
    //!
    //! The first Ctrl-C sets a flag that [`super::Batch::send`] (and step 4's
    //! runner) check before starting a request, and starts a grace period
    //! for those already in flight: their answers are still worth keeping.
    //! When the grace period is over, whatever is still in flight is cut off
    //! and reported as not done. A second Ctrl-C quits at once, and so does
    //! the end of a short [`BACKSTOP`] after the grace period.
    //!
    //! The state is a `watch` channel holding the instant of the first
    //! Ctrl-C: any number of requests can wait on it without polling.

    use std::{sync::OnceLock, time::Duration};

    use tokio::{sync::watch, time::Instant};

    /// How long requests in flight may take to finish after Ctrl-C.
    pub const GRACE: Duration = Duration::from_secs(10);

    /// How long after the grace period the process quits no matter what:
    /// time enough for a run cut off at the end of its grace period to print
    /// its summary, and a bound on everything else.
    pub const BACKSTOP: Duration = Duration::from_secs(3);

    fn channel() -> &'static watch::Sender<Option<Instant>> {
        static CHANNEL: OnceLock<watch::Sender<Option<Instant>>> = OnceLock::new();
        CHANNEL.get_or_init(|| watch::channel(None).0)
    }

    /// Starts listening for Ctrl-C (once; later calls do nothing).
    pub fn watch_ctrl_c() {
        static STARTED: OnceLock<()> = OnceLock::new();
        STARTED.get_or_init(|| {
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_err() {
                    return; // No signal handling here: nothing to do.
                }
                eprintln!(
                    "Ctrl-C: no new requests; waiting up to {} s for those in flight (Ctrl-C again to quit now)",
                    GRACE.as_secs()
                );
                request();
                // A second Ctrl-C quits at once. So does the end of a short
                // backstop after the grace period: a run honours the grace
                // period through `grace_over`, but a call that does not (step
                // 1's single request, say) must not turn "waiting up to 10 s"
                // into a wait as long as `--timeout`.
                tokio::select! {
                    Ok(()) = tokio::signal::ctrl_c() => {}
                    () = tokio::time::sleep(GRACE + BACKSTOP) => {
                        eprintln!("error: still not finished {} s after Ctrl-C; quitting", (GRACE + BACKSTOP).as_secs());
                    }
                }
                std::process::exit(i32::from(super::EXIT_INTERRUPTED));
            });
        });
    }

    /// Asks the run to stop, as the first Ctrl-C does.
    pub fn request() {
        channel().send_if_modified(|at| {
            let first = at.is_none();
            if first {
                *at = Some(Instant::now());
            }
            first
        });
    }

    /// Whether a stop was asked for.
    pub fn requested() -> bool {
        channel().borrow().is_some()
    }

    /// Completes when the grace period after a stop request is over; never
    /// completes if no stop is asked for.
    pub async fn grace_over() {
        let mut receiver = channel().subscribe();
        let asked_at = loop {
            if let Some(at) = *receiver.borrow_and_update() {
                break at;
            }
            if receiver.changed().await.is_err() {
                // The sender lives in a static and is never dropped.
                std::future::pending::<()>().await;
            }
        };
        tokio::time::sleep_until(asked_at + GRACE).await;
    }
}
