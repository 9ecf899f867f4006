//! Step 2: send N requests one after another, and time them.
//!
//! ```text
//! cargo run -p step2-sequential            # 10 requests
//! cargo run -p step2-sequential -- -n 3    # or any other number
//! ```
//!
//! Each request is awaited before the next one is sent, so the run takes the
//! *sum* of every request's latency: about ten times one answer. The program
//! spends nearly all of that time waiting on the network, doing nothing.
//! Step 3 changes only the loop below, and that is the whole lesson.

use std::process::ExitCode;

use clap::Parser;
use common::{
    GenerateContentRequest,
    cli::BatchArgs,
    report::Summary,
    run::{self, Batch},
    shutdown::Shutdown,
};

/// Step 2: N Gemini requests, each awaited before the next, timed.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    batch: BatchArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    run::exit(&args.batch.common, &shutdown, send_all(&args, &shutdown)).await
}

async fn send_all(args: &Args, shutdown: &Shutdown) -> Result<Summary, common::Error> {
    // Connect (the real API with a key, the built-in emulator without one),
    // check the model, and start the clock.
    let batch = Batch::start(&args.batch, shutdown).await?;
    let client = batch.client();
    let model = &args.batch.common.model;
    let request = GenerateContentRequest::from_prompt(&args.batch.common.prompt);

    // `record` times each call and keeps its answer or error, and the run
    // goes on; its `?` stops the run only for an error that would fail every
    // request (a revoked key, say), so you see one line instead of N.

    // One request at a time: `.await` suspends this loop until the answer is
    // back, and only then does the next request leave.
    for index in batch.indices() {
        let call = client.generate_content(model, &request);
        batch.record(index, call).await?;
    }

    Ok(batch.finish())
}
