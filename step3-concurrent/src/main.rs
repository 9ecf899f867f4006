//! Step 3: send the same N requests concurrently, and time them.
//!
//! ```text
//! cargo run -p step3-concurrent            # 10 requests
//! cargo run -p step3-concurrent -- -n 3    # or any other number
//! ```
//!
//! All N requests are in flight at once, so the run takes about as long as
//! the *slowest* request instead of the sum of all of them. They share one
//! `Client`, and so one connection pool: its connections are opened once and
//! reused (over HTTP/2 up to 100 requests share one connection, and a second
//! opens when it is full), where a client per request would pay a TCP and
//! TLS handshake every time.

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

/// Step 3: the same N Gemini requests, sent concurrently on one client, timed.
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

    // All at once: build one future per request (nothing is sent yet), then
    // `try_join_all` -- Rust's `asyncio.gather` -- awaits them together, so
    // every request is in flight while the others wait on the network.
    let calls = batch.indices().map(|index| {
        let call = client.generate_content(model, &request);
        batch.record(index, call)
    });
    try_join_all(calls).await?;

    Ok(batch.finish())
}
