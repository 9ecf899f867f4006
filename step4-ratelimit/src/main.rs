//! Step 4: find the rate limit, then run exactly at it with zero 429s.
//!
//! ```text
//! cargo run -p step4-ratelimit -- --ramp                         # where does the free tier say 429?
//! cargo run -p step4-ratelimit -- -n 60 --window 5s --no-limit   # retries alone: a storm of 429s
//! cargo run -p step4-ratelimit -- -n 60 --window 5s              # the limiter: zero 429s
//! ```
//!
//! Step 3 sent every request at once, and past the quota the server answers
//! `429 RESOURCE_EXHAUSTED`: `--ramp` finds where (the free tier allows 10
//! requests per minute) and prints what the server says. This step changes
//! only the inside of step 3's loop. Before each attempt, `limiter.acquire`
//! waits until every window (requests and input tokens per minute, requests
//! per day) has room for it; after it, the permit is settled with the real
//! token count. When the server still says 429, its `retryDelay` pauses the
//! whole limiter, not just the request refused; a 503 is retried after a
//! random backoff (full jitter); a spent day stops the limiter.
//!
//! `--window 5s` makes the minute five seconds, for the limiter and for the
//! built-in emulator alike (free tier: 10 requests per window, answers in 5
//! to 8 s), so the two runs take seconds. Measured, the same both times:
//!
//! ```text
//!              answered    429s   retries   time
//! --no-limit   50 of 60    150    140       27.7 s   10 failed: 5 attempts, all refused
//! limiter      60 of 60      0      0       33.1 s   10 per window, 95% of the limit's pace
//! ```
//!
//! Without the limiter, every request goes at once, the server takes 10 and
//! refuses 50; their `retryDelay` pauses everyone until the window frees, and
//! then all 50 retries go back together, a herd: 10 pass, 40 are refused
//! again, and so on, until the last 10 run out of attempts. The limiter sends
//! 10, then 10 more each time the window frees (5.25 s: the window plus a
//! margin for the trip), and never hears a 429. Over the real API's 60 s
//! window (the emulator's too, by default), `-n 20` through the limiter takes
//! 68 s, zero 429s: the course's limiter took 1 min 9 s.

use std::process::ExitCode;

use clap::Parser;
use common::{
    GenerateContentRequest,
    cli::BatchArgs,
    report::Summary,
    run::{self, Batch},
    shutdown::Shutdown,
};
use futures_util::future::try_join_all;
use step4_ratelimit::{Options, limiter::Limiter, ramp, retry::Decision};
use tokio::time::Instant;

/// Step 4: N Gemini requests paced by a rate limiter, so that none gets a 429.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    batch: BatchArgs,

    #[command(flatten)]
    options: Options,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    if args.options.ramp {
        return ramp::run(&args.batch.common, &shutdown).await;
    }
    run::exit(&args.batch.common, &shutdown, send_all(&args, &shutdown)).await
}

async fn send_all(args: &Args, shutdown: &Shutdown) -> Result<Summary, common::Error> {
    // Connect (the real API with a key, the built-in emulator without one),
    // check the model, and start the clock.
    let pacing = args.options.pacing(&args.batch.common.model);
    let batch = Batch::start_paced(&args.batch, shutdown, pacing).await?;
    let client = batch.client();
    let model = &args.batch.common.model;
    let request = GenerateContentRequest::from_prompt(&args.batch.common.prompt);

    // The limiter, from the limits (the model's free tier unless --rpm,
    // --tpm, --rpd say otherwise), and the retry policy (--max-retries).
    let limiter = &Limiter::new(args.options.limits(model)?);
    let retry = args.options.retry();
    let tokens = step4_ratelimit::estimate_tokens(&args.batch.common.prompt);

    // As in step 3, a future per request, all awaited together; each one now
    // loops: a permit from the limiter, an attempt, and a retry if the error
    // deserves one. `tries` times and keeps every attempt (429s included)
    // and records how the request ended, as `record` did in step 3.
    let calls = batch.indices().map(|index| {
        let (mut tries, request) = (batch.tries(index), &request);
        async move {
            // Wait until every window has room for one more request (a turn
            // ends at once at Ctrl-C, or when the limiter has been stopped).
            while let Some(permit) = tries.turn(limiter.acquire(tokens)).await {
                let call = client.generate_content(model, request);
                let error = match tries.attempt(call).await {
                    Some(Ok(answer)) => {
                        // Put the limiter's books right: the real token count.
                        permit.settle(answer.usage.prompt_token_count);
                        return tries.answered(answer);
                    }
                    Some(Err(error)) => error,
                    None => break, // Ctrl-C came first.
                };
                match retry.decide(&error, tries.retries()) {
                    // A 429 that says when: everyone waits, not just this one.
                    Decision::RetryAfter(delay) => limiter.pause_until(Instant::now() + delay),
                    // A 503 (or a 429 that does not say): a random wait, full jitter.
                    Decision::Backoff => tries.sleep(retry.full_jitter(tries.retries())).await,
                    // Nothing more today: the requests still waiting end at once.
                    Decision::StopForTheDay => limiter.stop("the daily quota is spent"),
                    Decision::GiveUp | Decision::StopTheRun => break,
                }
            }
            // Failed with its last error, or not done; an error every request
            // would meet (a revoked key) comes back here and stops the run.
            tries.end()
        }
    });
    try_join_all(calls).await?;

    Ok(batch.finish())
}
