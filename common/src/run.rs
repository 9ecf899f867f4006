//! The shape of a step's run: open a session, send a batch, end with a summary.
//!
//! A step's `main` reads like the tutorial: it sets up logging and the
//! [`Shutdown`] handle (a line each), builds its request, awaits
//! `client.generate_content(...)` -- in a loop, or all together -- and hands
//! each call to the [`Batch`], which times it and records its [`Outcome`].
//! What the steps share lives here: [`session`] connects (to the real API
//! with a key, to the built-in emulator without one) and checks the model
//! before any request is spent; [`exit`] prints the summary and picks the
//! exit code.
//!
//! Ctrl-C and SIGTERM reach the batch through the [`Shutdown`] handle that
//! `main` passes in: the first stops new requests from starting, lets those
//! in flight finish for a bounded time, and the run still ends with a
//! (partial) summary and exit code 130 (143 after SIGTERM).

use std::{future::Future, pin::Pin, process::ExitCode};

use tracing_subscriber::EnvFilter;

use crate::{
    cli::{BatchArgs, CommonArgs},
    client::Client,
    connect::{ConnectOptions, Session, connect},
    error::Error,
    outcome::{Answer, Attempt, AttemptStatus, Ended, Outcome},
    report::{PrintOptions, Report, Summary},
    shutdown::Shutdown,
    terminal,
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
/// batch starts, instead of N copies of the same error.
pub async fn session(args: &CommonArgs) -> Result<Session, Error> {
    crate::open_files::raise_limit();
    let session = connect(ConnectOptions {
        force_emulator: args.emulator,
        timeout: args.timeout,
        emulator: emulator::Settings::default(),
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
/// Steps 2 and 3 both use it; only the way they await [`Batch::record`] differs.
pub struct Batch {
    session: Session,
    report: Report,
    shutdown: Shutdown,
}

impl Batch {
    /// Connects, checks the model, and starts the run's clock.
    pub async fn start(args: &BatchArgs, shutdown: &Shutdown) -> Result<Batch, Error> {
        let session = session(&args.common).await?;
        Ok(Batch {
            session,
            report: Report::new(args.requests as usize, &args.common),
            shutdown: shutdown.clone(),
        })
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
        if self.shutdown.is_requested() {
            self.report
                .record(Outcome::not_done(index, self.shutdown.not_sent()));
            return Ok(());
        }
        let sent = self.report.elapsed();
        let result = tokio::select! {
            result = call => result.and_then(Answer::from_response),
            () = self.shutdown.grace_over() => {
                self.report.record(Outcome::not_done(index, self.shutdown.cut_off()));
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
