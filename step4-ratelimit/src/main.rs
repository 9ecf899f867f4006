//! Step 4: find the rate limit, then run exactly at it with zero 429s.
//!
//! ```text
//! cargo run -p step4-ratelimit -- --ramp             # where does the free tier say 429?
//! cargo run -p step4-ratelimit -- -n 20              # through the limiter: zero 429s
//! ```
//!
//! (Being rewritten as the lesson: for now, step 3 and `--ramp`.)

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
use step4_ratelimit::ramp;

/// Step 4: N Gemini requests paced by a rate limiter, so that none gets a 429.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    batch: BatchArgs,

    /// Find the breaking point: send 10, 20, 40, ... requests at once until
    /// the server answers 429.
    #[arg(long)]
    ramp: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    if args.ramp {
        return ramp::exit(find_breaking_point(&args, &shutdown), &shutdown).await;
    }
    run::exit(&args.batch.common, &shutdown, send_all(&args, &shutdown)).await
}

/// `--ramp`: 10, 20, 40, ... requests at once until the server says 429.
async fn find_breaking_point(args: &Args, shutdown: &Shutdown) -> anyhow::Result<ramp::Ramp> {
    let common = &args.batch.common;
    let session = run::session(common).await?;
    let ramp = ramp::find_breaking_point(
        &session.client,
        &common.model,
        &common.prompt,
        320,
        common.json,
        shutdown,
    )
    .await?;
    Ok(ramp)
}

async fn send_all(args: &Args, shutdown: &Shutdown) -> Result<Summary, common::Error> {
    let batch = Batch::start(&args.batch, shutdown).await?;
    let client = batch.client();
    let model = &args.batch.common.model;
    let request = GenerateContentRequest::from_prompt(&args.batch.common.prompt);
    let calls = batch.indices().map(|index| {
        let call = client.generate_content(model, &request);
        batch.record(index, call)
    });
    try_join_all(calls).await?;
    Ok(batch.finish())
}
