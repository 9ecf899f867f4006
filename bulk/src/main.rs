//! bulk: a file of prompts through the Gemini API, at the quota's pace.
//!
//! ```text
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl   # again: resumes
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl --restart
//! cargo run --release -p bulk -- -n 20 --redis redis://127.0.0.1:6379   # one quota, many processes
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
//! The library part of this crate holds the machinery; this file only puts
//! it together.

use std::{path::Path, process::ExitCode, sync::Arc};

use bulk::pace::{LocalLimiter, RateLimit};
use bulk::{
    journal::{self, Journal, Resume},
    options::{LimitArgs, RetryArgs, RunFiles, StateArgs},
    paths::{self, Named},
    prompts::Prompts,
    redis::{RedisLimiter, Scope},
    runner::{self, RunOptions, Runner, learn::Learner},
    state_file,
};
use clap::Parser;
use common::{Session, cli::BatchArgs, report::Summary, run, shutdown::Shutdown};

/// What `--help` shows under the options: the commands a user runs.
const EXAMPLES: &str = "\
Examples:
  bulk --prompts questions.jsonl --output answers.jsonl
      every prompt, at the quota's pace; run it again to continue a stopped run
  bulk --prompts questions.jsonl --output answers.jsonl --restart
      start over (the old answers.jsonl is kept as answers.jsonl.1)
  bulk --prompts questions.jsonl --output answers.jsonl --redis redis://127.0.0.1:6379
      several processes or machines drawing from one quota
  bulk -n 20 --no-limit
      no limiter: see the 429s

Without an API key (GEMINI_API_KEY, in the environment or .env), bulk runs against
the built-in emulator.
The rate limiter it uses is the tutorial's step 4: cargo run -p step4-ratelimit";

/// Sends a file of prompts (or one prompt N times) to Gemini at the
/// quota's pace, with no 429, keeping every answer in a file that a stopped
/// run resumes from.
#[derive(Parser)]
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    run::exit(&args.batch.common, &shutdown, send_all(&args, &shutdown)).await
}

/// Every prompt not answered yet, sent through the limiter.
async fn send_all(args: &Args, shutdown: &Shutdown) -> anyhow::Result<Summary> {
    let common = &args.batch.common;

    // Check what we can before connecting: a missing prompts file or a model
    // with no known limits is one line, and no request is spent on it.
    let prompts = Prompts::from_args(
        &common.prompt,
        args.batch.requests,
        args.files.prompts.as_deref(),
    )?;
    // No file the run writes may be another of its files, or anything but
    // one of ours: checked before a file is opened for writing.
    check_files(args)?;
    // An existing --output is read first: the answers it holds are paid
    // for, and only the other prompts are sent.
    let journal = open_journal(args, &prompts)?;
    let todo = match &journal {
        Some((answers, resume)) => {
            let todo = resume.todo();
            if todo.is_empty() {
                return Ok(journal::nothing_left(prompts.len(), answers.path()));
            }
            todo
        }
        None => (0..prompts.len()).collect(),
    };
    let limiter = build_limiter(&args.limit, &common.model).await?;

    // Connect (the real API with a key, the built-in emulator without one)
    // and check the model exists.
    let session = run::session(common).await?;

    // The report prints each outcome in order, and the summary at the end.
    let window = args.limit.paced().then_some(args.limit.window);
    let report = runner::report(todo.len(), common, window);

    // All requests are queued at once, as in step 3; the limiter decides
    // when each one may go.
    let mut runner = Runner::new(
        session.client.clone(),
        limiter,
        report,
        RunOptions {
            model: common.model.clone(),
            retry: args.retry.policy(),
            paced: args.limit.paced(),
            shutdown: shutdown.clone(),
        },
    )
    .with_learner(Arc::new(learner(args, &session, shutdown)?));
    if let Some((answers, _)) = &journal {
        runner = runner.with_journal(answers.clone());
    }
    let mut summary = runner.run(&prompts, &todo).await?;
    if let Some((answers, resume)) = &journal {
        journal::account(answers, resume, &mut summary);
    }
    Ok(summary)
}

/// Every file the run names, checked before any is written: none it writes
/// is another of them through whatever name (a link, `a/../b`), the limits
/// file (from the flag, the environment or the default) is a limits file,
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
