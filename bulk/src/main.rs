//! bulk: a file of prompts through the Gemini API, at the quota's pace.
//!
//! ```text
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl   # again: resumes
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl --restart
//! cargo run --release -p bulk -- -n 20 --redis redis://127.0.0.1:6379   # one quota, many processes
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl --mode batch
//! cargo run --release -p bulk -- --help
//! ```
//!
//! The lesson is step 4 (`cargo run -p step4-ratelimit`): where the free
//! tier says 429, and the hand-written limiter that keeps under it. This is
//! the tool built on that limiter. Each prompt waits for a permit until every
//! window has room for it, and each answer is appended to `--output` the
//! moment it comes. A stopped run (Ctrl-C, `kill -9`, a spent day) is
//! continued by running the same command again: the prompts already answered
//! are skipped, so nothing is paid for twice. When the server still says 429,
//! the runner waits the `retryDelay` it gave and adopts the limit it named;
//! the next run starts from it (`--limits-file`, `--forget-limits`). When the
//! day's quota is spent, the run stops cleanly, and says until when.
//!
//! `--mode flex` and `--mode batch` send the same prompts at half price
//! (slower, or as an asynchronous job that a later run can collect), and
//! `--mode auto --deadline` picks the cheapest that is in time. Every run ends
//! with its bill: the tokens, and what they cost next to the standard price.
//!
//! The library part of this crate holds the machinery; this file only puts
//! it together.

use std::{io::IsTerminal, path::Path, process::ExitCode, sync::Arc, time::Duration};

use anyhow::bail;
use bulk::{
    batch::{
        api::BatchApi,
        cancel,
        ledger::Ledger,
        run::{BatchOptions, BatchRun},
    },
    bill::{Bill, Meter},
    flex::{FLEX_TIMEOUT, TierPlan},
    journal::{self, Journal, Resume},
    mode_args::{ModeArg, ModeArgs},
    options::{LimitArgs, RetryArgs, RunFiles, StateArgs},
    pace::{LocalLimiter, RateLimit},
    paths::{self, Named},
    plan::{self, Pace, Plan, Workload},
    prices::{Mode, PriceTable},
    prompts::Prompts,
    redis::{RedisLimiter, Scope},
    runner::{
        self, RunOptions, Runner,
        learn::{InForce, Learner},
    },
    state_file,
};
use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
use common::{
    Client, Session, cli::BatchArgs, quota::Tier, report::Summary, run, shutdown::Shutdown,
};

/// What `--help` shows under the options: the commands a user runs.
const EXAMPLES: &str = "\
Examples:
  bulk --prompts questions.jsonl --output answers.jsonl
      every prompt, at the quota's pace; run it again to continue a stopped run
  bulk --prompts questions.jsonl --output answers.jsonl --restart
      start over (the old answers.jsonl is kept as answers.jsonl.1)
  bulk --prompts questions.jsonl --output answers.jsonl --redis redis://127.0.0.1:6379
      several processes or machines drawing from one quota
  bulk --prompts questions.jsonl --output answers.jsonl --mode batch --tier tier1
      a Batch Mode job at half price; Ctrl-C leaves it running, the same command collects it
  bulk --prompts questions.jsonl --output answers.jsonl --mode flex --fallback standard --fallback-after 1h
      half price, slower; what is left after an hour goes at the standard price
  bulk --prompts questions.jsonl --output answers.jsonl --mode auto --deadline 12h
      the cheapest mode that finishes in 12 hours
  bulk -n 20 --no-limit
      no limiter: see the 429s

Every run ends with its bill: the tokens, and what they cost at the published
price of the mode used (bulk/prices.json, or --prices FILE) next to the standard price.
Without an API key (GEMINI_API_KEY, in the environment or .env), bulk runs against
the built-in emulator.
The rate limiter it uses is the tutorial's step 4: cargo run -p step4-ratelimit";

/// Sends a file of prompts (or one prompt N times) to Gemini at the
/// quota's pace, with no 429, keeping every answer in a file that a stopped
/// run resumes from.
#[derive(clap::Parser)]
#[command(version, after_help = EXAMPLES)]
struct Args {
    #[command(flatten)]
    files: RunFiles,

    /// The options every program of the tutorial shares.
    #[command(flatten, next_help_heading = "Common options")]
    batch: BatchArgs,

    #[command(flatten)]
    limit: LimitArgs,

    #[command(flatten)]
    state: StateArgs,

    #[command(flatten)]
    retry: RetryArgs,

    #[command(flatten)]
    modes: ModeArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    // Flex waits longer for an answer, unless the user said how long.
    let timeout_given = matches.value_source("timeout") == Some(ValueSource::CommandLine);
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    let work = send_all(&args, timeout_given, &shutdown);
    run::exit(&args.batch.common, &shutdown, work).await
}

/// Every prompt not answered yet, in the mode asked for, and the bill.
async fn send_all(
    args: &Args,
    timeout_given: bool,
    shutdown: &Shutdown,
) -> anyhow::Result<Summary> {
    let common = &args.batch.common;
    if args.modes.cancel_batch {
        return cancel_batches(args).await;
    }

    // Check what we can before connecting: a missing prompts file, a bad
    // price table or a model with no known limits is one line, and no
    // request is spent on it.
    let prices = PriceTable::load(args.modes.prices.as_deref())?;
    check_modes(args)?;
    // No file the run writes may be another of its files, or anything but
    // one of ours: checked before a file is opened for writing.
    check_files(args)?;
    let prompts = Prompts::from_args(
        &common.prompt,
        args.batch.requests,
        args.files.prompts.as_deref(),
    )?;
    // An existing --output is read first: the answers it holds are paid
    // for, and only the other prompts are sent.
    let journal = open_journal(args, &prompts)?;
    let meter = Arc::new(Meter::new(&prices, &common.model));
    let todo = match &journal {
        Some((_, resume)) => resume.todo(),
        None => (0..prompts.len()).collect(),
    };
    let (mode, mut summary) = match &journal {
        Some((answers, _)) if todo.is_empty() => {
            let mode = args.modes.mode.fixed().unwrap_or(Mode::Standard);
            (mode, journal::nothing_left(prompts.len(), answers.path()))
        }
        _ => {
            // The limiter synchronous requests keep to, built before
            // connecting: a model with no known limits, or a Redis that is
            // not there, is one line and no request. A batch job needs none.
            let limiter = match args.modes.mode.fixed() {
                Some(Mode::Batch) => None,
                _ => Some(build_limiter(&args.limit, &common.model).await?),
            };
            // Connect (the real API with a key, the built-in emulator without
            // one) and check the model exists.
            let session = run::session(common).await?;
            let pacing = match limiter {
                Some(limiter) => Some(Pacing::new(args, limiter, &session, shutdown)?),
                None => None,
            };
            let (mode, tiers) = choose_mode(args, pacing.as_ref(), &prompts, &todo, &prices)?;
            let summary = match pacing {
                Some(pacing) if mode != Mode::Batch => {
                    let run = Synchronous {
                        args,
                        client: client_for(&session, mode, timeout_given),
                        pacing,
                        tiers,
                        meter: meter.clone(),
                    };
                    run.send(&prompts, journal, &todo, shutdown).await?
                }
                _ => {
                    let meter = meter.clone();
                    send_batch(args, &session, &prompts, journal, &todo, meter, shutdown).await?
                }
            };
            (mode, summary)
        }
    };
    let tier = Tier::from(args.limit.tier).name();
    let bill = Bill::of(&meter, &prices, &common.model, mode, tier);
    summary.notes.push(bill.line());
    summary.extra.insert("bill".into(), bill.json());
    Ok(summary)
}

/// The mode options that cannot work together, refused in one line.
fn check_modes(args: &Args) -> anyhow::Result<()> {
    let mode = args.modes.mode;
    if mode == ModeArg::Batch && args.files.output.is_none() {
        bail!(
            "--mode batch needs --output FILE.jsonl: a job's answers are written there, and a later run follows an unfinished job through it"
        );
    }
    if args.modes.fallback.is_some() && !matches!(mode, ModeArg::Flex | ModeArg::Auto) {
        bail!("--fallback applies to --mode flex (or auto, when it picks flex)");
    }
    Ok(())
}

/// The mode to send in, and the tier of each attempt: the one asked for,
/// or the planner's choice for `--mode auto` (said in one line first).
fn choose_mode(
    args: &Args,
    pacing: Option<&Pacing>,
    prompts: &Prompts,
    todo: &[usize],
    prices: &PriceTable,
) -> anyhow::Result<(Mode, TierPlan)> {
    let given_fallback = args
        .modes
        .fallback_after
        .filter(|_| args.modes.fallback.is_some())
        .map(|after| (Mode::Standard, after));
    let mode = match args.modes.mode.fixed() {
        Some(mode) => mode,
        None => {
            let plan = plan_for(args, pacing, prompts, todo, prices)?;
            common::terminal::diagnostic(plan.line());
            if plan.chosen == Mode::Flex && given_fallback.is_none() {
                let fallback = plan.fallback_after.map(|after| (Mode::Standard, after));
                let tiers = TierPlan {
                    first: Mode::Flex,
                    fallback,
                };
                return Ok((Mode::Flex, tiers));
            }
            plan.chosen
        }
    };
    let tiers = match mode {
        Mode::Flex => TierPlan {
            first: Mode::Flex,
            fallback: given_fallback,
        },
        _ => TierPlan::standard(),
    };
    Ok((mode, tiers))
}

/// `--mode auto`'s plan: the prompts' tokens, the limits in force (as
/// earlier runs learned them), the deadline.
fn plan_for(
    args: &Args,
    pacing: Option<&Pacing>,
    prompts: &Prompts,
    todo: &[usize],
    prices: &PriceTable,
) -> anyhow::Result<Plan> {
    let model = &args.batch.common.model;
    // Without pacing (`--no-limit`) the runner ignores what was remembered.
    let in_force = match pacing {
        Some(pacing) if args.limit.paced() => pacing.learner.in_force(&*pacing.limiter),
        _ => InForce {
            limits: args.limit.limits(model)?,
            sent_today: 0,
            spent_for: None,
        },
    };
    let limits = &in_force.limits;
    let pace = Pace {
        rpm: limits.rpm,
        tpm: limits.tpm,
        rpd: limits.rpd,
        window: limits.window,
        day: limits.day,
        sent_today: in_force.sent_today,
        spent_for: in_force.spent_for,
    };
    let count = todo.len() as u64;
    let workload = Workload {
        prompts: count,
        input_tokens: todo.iter().map(|&i| u64::from(prompts.tokens(i))).sum(),
        output_tokens: count * u64::from(args.modes.expect_output),
    };
    let Some(deadline) = args.modes.deadline else {
        bail!(
            "--mode auto needs --deadline DURATION (30m, 6h, 2d): when the last answer must be in"
        );
    };
    Ok(plan::plan(
        workload,
        pace,
        prices,
        model,
        deadline,
        args.modes.batch_expect,
        args.files.output.is_some(),
    ))
}

/// The session's client with the per-request timeout of `mode`: Flex's
/// minutes, unless `--timeout` was given.
fn client_for(session: &Session, mode: Mode, timeout_given: bool) -> Client {
    if mode == Mode::Flex && !timeout_given {
        session.client.with_timeout(FLEX_TIMEOUT)
    } else {
        session.client.clone()
    }
}

/// `--cancel-batch`: cancels the jobs the journal's runs left running.
async fn cancel_batches(args: &Args) -> anyhow::Result<Summary> {
    let Some(output) = args.files.output.as_deref() else {
        bail!("--cancel-batch needs --output FILE.jsonl: the journal whose batch jobs to cancel");
    };
    let session = run::session(&args.batch.common).await?;
    let lines = cancel::cancel(&BatchApi::new(session.client.clone()), output).await?;
    let mut summary = Summary::from_outcomes(&[], Duration::ZERO);
    summary.notes = lines;
    Ok(summary)
}

/// `--mode batch`: the prompts `todo` as Batch Mode jobs, their answers in the journal.
async fn send_batch(
    args: &Args,
    session: &Session,
    prompts: &Prompts,
    journal: Option<(Arc<Journal>, Resume)>,
    todo: &[usize],
    meter: Arc<Meter>,
    shutdown: &Shutdown,
) -> anyhow::Result<Summary> {
    let common = &args.batch.common;
    let Some((answers, resume)) = journal else {
        bail!("--mode batch needs --output FILE.jsonl");
    };
    let ledger = Ledger::open(answers.path())?;
    let report = runner::report(todo.len(), common, None);
    let journal_id = std::fs::canonicalize(answers.path())
        .unwrap_or_else(|_| answers.path().to_path_buf())
        .display()
        .to_string();
    let options = BatchOptions {
        model: common.model.clone(),
        poll: args.modes.batch_poll,
        retries: args.modes.batch_retries,
        inline_max: args.modes.batch_inline_max,
        journal_id,
        draw_bar: !common.json && std::io::stderr().is_terminal(),
        offline: session.is_offline(),
        shutdown: shutdown.clone(),
    };
    let api = BatchApi::new(session.client.clone());
    let run = BatchRun::new(
        api,
        prompts,
        answers.clone(),
        resume.done.clone(),
        ledger,
        report,
        meter,
        options,
    )?;
    let mut summary = run.run(todo).await?;
    journal::account(&answers, &resume, &mut summary);
    Ok(summary)
}

/// What synchronous requests keep to: the limiter, at the limits from the
/// flags or the tier's table, and the learner that changes them with what
/// the server says (and said to earlier runs). The planner plans with both,
/// the runner paces itself with them.
struct Pacing {
    limiter: Arc<dyn RateLimit>,
    learner: Arc<Learner>,
}

impl Pacing {
    /// `limiter`, and what earlier runs remembered for this model on this server.
    fn new(
        args: &Args,
        limiter: Arc<dyn RateLimit>,
        session: &Session,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Pacing> {
        let learner = Arc::new(learner(args, session, shutdown)?);
        Ok(Pacing { limiter, learner })
    }
}

/// A synchronous run (standard or flex) and what it needs besides the prompts.
struct Synchronous<'a> {
    args: &'a Args,
    /// The session's client, with the mode's timeout.
    client: Client,
    pacing: Pacing,
    tiers: TierPlan,
    meter: Arc<Meter>,
}

impl Synchronous<'_> {
    /// Every prompt of `todo` sent through the limiter.
    async fn send(
        self,
        prompts: &Prompts,
        journal: Option<(Arc<Journal>, Resume)>,
        todo: &[usize],
        shutdown: &Shutdown,
    ) -> anyhow::Result<Summary> {
        let args = self.args;
        let common = &args.batch.common;

        // The report prints each outcome in order, and the summary at the end.
        let window = args.limit.paced().then_some(args.limit.window);
        let report = runner::report(todo.len(), common, window);

        // All requests are queued at once, as in step 3; the limiter decides
        // when each one may go.
        let mut runner = Runner::new(
            self.client,
            self.pacing.limiter,
            report,
            RunOptions {
                model: common.model.clone(),
                retry: args.retry.policy(),
                paced: args.limit.paced(),
                shutdown: shutdown.clone(),
                tiers: self.tiers,
            },
        )
        .with_learner(self.pacing.learner)
        .with_meter(self.meter);
        if let Some((answers, _)) = &journal {
            runner = runner.with_journal(answers.clone());
        }
        let mut summary = runner.run(prompts, todo).await?;
        if let Some((answers, resume)) = &journal {
            journal::account(answers, resume, &mut summary);
        }
        Ok(summary)
    }
}

/// Every file the run names, checked before any is written: none it writes
/// (the batch ledger beside `--output` included) is another of them through
/// whatever name (a link, `a/../b`), the limits file (from the flag, the
/// environment or the default) is a limits file,
/// and the timeline a picture of ours. One line, and nothing sent, if not.
fn check_files(args: &Args) -> anyhow::Result<()> {
    let timeline = args.batch.common.timeline.as_deref();
    // No state directory on this system: said when the file is needed.
    let limits = args.state.file().ok().flatten();
    let mut files: Vec<Named> = Vec::new();
    let mut name = |what: &str, path: Option<&Path>, writes: bool| {
        if let Some(path) = path {
            files.push(if writes {
                Named::written(what, path)
            } else {
                Named::read(what, path)
            });
        }
    };
    name("--prompts", args.files.prompts.as_deref(), false);
    name("--output", args.files.output.as_deref(), true);
    name("--timeline", timeline, true);
    // A batch job's ledger sits beside the journal; losing it could pay for
    // a job twice.
    if args
        .modes
        .mode
        .fixed()
        .is_none_or(|mode| mode == Mode::Batch)
    {
        let ledger = args.files.output.as_deref().map(Ledger::path_for);
        name("the batch ledger of --output", ledger.as_deref(), true);
    }
    if let Some((what, path)) = &limits {
        name(what, Some(path), true);
        let lock = state_file::lock_path_of(path);
        name(&format!("the lock file of {what}"), Some(&lock), true);
    }
    paths::refuse_overlaps(&files)?;
    if let Some((what, path)) = &limits {
        state_file::refuse_foreign(what, path)?;
    }
    if let Some(path) = timeline {
        common::timeline::refuse_foreign(path)?;
    }
    Ok(())
}

/// The `--output` journal, if the run keeps one (checked by [`check_files`]).
fn open_journal(args: &Args, prompts: &Prompts) -> anyhow::Result<Option<(Arc<Journal>, Resume)>> {
    let Some(output) = args.files.output.as_deref() else {
        return Ok(None);
    };
    let opened = journal::open(output, args.files.policy(), prompts)?;
    Ok(Some(opened))
}

/// The learner: it learns the real limits from the server's 429s, and
/// remembers them with the day's spend (not for the built-in emulator,
/// whose quota ends with the run). A second Ctrl-C ends a wait for the
/// limits file's lock.
fn learner(args: &Args, session: &Session, shutdown: &Shutdown) -> anyhow::Result<Learner> {
    let model = &args.batch.common.model;
    let project = Scope::from_env(model).project().to_string();
    // Keyed by the URL without its password, if it has one: the state file
    // is a plain file, and a secret is never written out.
    let base_url = common::redact::redact_url(session.client.base_url().as_str());
    let remember = !session.is_offline();
    let learner =
        args.state
            .learner(&args.limit, model, &project, &base_url, remember, shutdown)?;
    Ok(learner)
}

/// The limiter the runner paces itself with.
///
/// The runner only sees `Arc<dyn RateLimit>`: step 4's own limiter, or the
/// same one with its books in Redis, shared by several processes (it is
/// `async` for that one, which must connect before the run).
async fn build_limiter(args: &LimitArgs, model: &str) -> anyhow::Result<Arc<dyn RateLimit>> {
    let limits = args.limits(model)?;
    match args.shared_through() {
        // `--redis`: the same limits, counted in Redis for everyone sharing
        // the key and the model (see the `redis` module).
        Some(url) => {
            let scope = Scope::from_env(model);
            let limiter = RedisLimiter::connect(url, scope, limits).await?;
            common::terminal::diagnostic(format_args!(
                "Sharing the rate limits through Redis ({} for project {}, model {}).",
                limiter.url(),
                limiter.scope().project(),
                limiter.scope().model()
            ));
            Ok(Arc::new(limiter))
        }
        None => Ok(Arc::new(LocalLimiter::new(limits))),
    }
}
