//! Step 4: find the rate limit, then run exactly at it with zero 429s.
//!
//! ```text
//! cargo run --release -p bulk -- --ramp             # where does the free tier say 429?
//! cargo run --release -p bulk -- -n 20 --no-limit   # step 3 with retries: see the 429s
//! cargo run --release -p bulk -- -n 20              # through the limiter: zero 429s
//! cargo run --release -p bulk -- --prompts questions.txt --output answers.jsonl   # again: resumes
//! cargo run --release -p bulk -- -n 20 --redis redis://127.0.0.1:6379   # one quota, many processes
//! ```
//!
//! Step 3 sent every request at once; past the quota the server answers
//! `429 RESOURCE_EXHAUSTED`. This step first finds that point (`--ramp`),
//! then puts a limiter between the requests and the network. Each request
//! asks the limiter for a permit and waits until the free tier's windows have
//! room for it: 20 requests at 10 per minute go as 10 at once, then 10 more
//! the moment the first ones leave the window (about 61 s), with no 429 on
//! the way. When the server still refuses, the runner listens: it waits the
//! `retryDelay` the server gave, backs off with jitter from a 503, and stops
//! cleanly when the daily quota is spent. And it learns: every 429 names the
//! limit it enforces, so the limiter adopts it at once, and the next run
//! starts from it (`--limits-file`, `--forget-limits`).
//!
//! The library part of this crate holds the machinery; this file only puts
//! it together. Start with the `limiter` module's documentation.

use std::{process::ExitCode, sync::Arc};

use bulk::pace::{LocalLimiter, RateLimit};
use bulk::{
    journal,
    options::LimitArgs,
    prompts::Prompts,
    redis::{RedisLimiter, Scope},
    runner::{self, RunOptions, Runner},
};
use clap::Parser;
use common::{cli::BatchArgs, report::Summary, run, shutdown::Shutdown};
use step4_ratelimit::ramp;

/// Step 4: N Gemini requests paced by a rate limiter, so that none gets a 429.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    batch: BatchArgs,

    #[command(flatten)]
    limit: LimitArgs,

    /// Share the limits with every process that uses the same Redis, API key
    /// and model: the books are kept in Redis (redis://HOST:PORT), so several
    /// copies of this program, on one machine or many, draw from one quota.
    /// If Redis cannot be reached the program stops before sending anything.
    /// Ignored with --no-limit and --ramp.
    #[arg(
        long,
        value_name = "URL",
        env = "GEMINI_RATELIMIT_REDIS",
        hide_env_values = true
    )]
    redis: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    if args.limit.ramp {
        ramp::exit(find_breaking_point(&args, &shutdown), &shutdown).await
    } else {
        run::exit(&args.batch.common, &shutdown, send_all(&args, &shutdown)).await
    }
}

/// `--ramp`: 10, 20, 40, ... requests at once until the server says 429.
async fn find_breaking_point(args: &Args, shutdown: &Shutdown) -> anyhow::Result<ramp::Ramp> {
    let common = &args.batch.common;
    let session = run::session(common).await?;
    let ramp = ramp::find_breaking_point(
        &session.client,
        &common.model,
        &common.prompt,
        args.limit.ramp_max,
        common.json,
        shutdown,
    )
    .await?;
    // The exact limit the server named is kept for the next runs.
    if let Some(refusal) = &ramp.refusal {
        let project = Scope::from_env(&common.model).project().to_string();
        // Keyed by the URL without its password, if it has one: the state file
        // is a plain file, and a secret is never written out.
        let base_url = common::error::redact_url(session.client.base_url().as_str());
        let learner =
            args.limit
                .learner(&common.model, &project, &base_url, !session.is_offline())?;
        if let Some(line) = learner.keep(refusal) {
            common::terminal::diagnostic(line);
        }
    }
    Ok(ramp)
}

/// Every prompt, sent through the limiter.
async fn send_all(args: &Args, shutdown: &Shutdown) -> anyhow::Result<Summary> {
    let common = &args.batch.common;

    // Check what we can before connecting: a missing prompts file or a model
    // with no known limits is one line, and no request is spent on it.
    let prompts = Prompts::from_args(
        &common.prompt,
        args.batch.requests,
        args.limit.prompts.as_deref(),
    )?;
    // An existing --output is read first: the answers it holds are paid
    // for, and only the other prompts are sent.
    let journal = journal::open(&args.limit, common.timeline.as_deref(), &prompts)?;
    let todo = journal
        .as_ref()
        .map_or_else(|| (0..prompts.len()).collect(), |(_, resume)| resume.todo());
    if todo.is_empty() {
        return Ok(journal::nothing_left(prompts.len(), &args.limit));
    }
    let limiter = build_limiter(&args.limit, args.redis.as_deref(), &common.model).await?;

    // Connect (the real API with a key, the built-in emulator without one)
    // and check the model exists.
    let session = run::session(common).await?;

    // The report prints each outcome in order, and the summary at the end.
    let window = (!args.limit.no_limit).then_some(args.limit.window);
    let report = runner::report(todo.len(), common, window);

    // The runner learns the real limits from the server's 429s, and
    // remembers them with the day's spend (not for the built-in emulator,
    // whose quota ends with the run).
    let project = Scope::from_env(&common.model).project().to_string();
    // Keyed by the URL without its password, if it has one: the state file
    // is a plain file, and a secret is never written out.
    let base_url = common::error::redact_url(session.client.base_url().as_str());
    let learner = args
        .limit
        .learner(&common.model, &project, &base_url, !session.is_offline())?;

    // All requests are queued at once, as in step 3; the limiter decides
    // when each one may go.
    let mut runner = Runner::new(
        session.client.clone(),
        limiter,
        report,
        RunOptions {
            model: common.model.clone(),
            retry: args.limit.retry_policy(),
            paced: !args.limit.no_limit,
            shutdown: shutdown.clone(),
        },
    )
    .with_learner(Arc::new(learner));
    if let Some((journal, _)) = &journal {
        runner = runner.with_journal(journal.clone());
    }
    let mut summary = runner.run(&prompts, &todo).await?;
    if let Some((journal, resume)) = &journal {
        journal::account(journal, resume, &mut summary)?;
    }
    Ok(summary)
}

/// The limiter the runner paces itself with.
///
/// The runner only sees `Arc<dyn RateLimit>`, so another implementation (one
/// shared through Redis by several processes, say) is one more branch here;
/// it is `async` for such a limiter, which must connect before the run.
async fn build_limiter(
    args: &LimitArgs,
    redis: Option<&str>,
    model: &str,
) -> anyhow::Result<Arc<dyn RateLimit>> {
    let limits = args.limits(model)?;
    match redis.filter(|_| !args.no_limit) {
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
