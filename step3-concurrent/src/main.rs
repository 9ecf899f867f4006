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
//! reused (over HTTP/2 many requests share one connection), where a client
//! per request would pay a TCP and TLS handshake every time.

use std::process::ExitCode;

use clap::Parser;
use common::{
    cli::BatchArgs,
    report::Summary,
    run::{self, Batch},
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
    run::exit(send_all(Args::parse()).await)
}

async fn send_all(args: Args) -> Result<Summary, common::Error> {
    // Connect (the real API with a key, the built-in emulator without one),
    // check the model, and start the clock.
    let batch = Batch::start(&args.batch).await?;

    // `send` records each request's answer or error and the run goes on; its
    // `?` stops the run only for an error that would fail every request
    // (a revoked key, say), so you see one line instead of N.

    // All at once: build one future per request (nothing is sent yet), then
    // `try_join_all` -- Rust's `asyncio.gather` -- polls them together, so
    // every request is in flight while the others wait on the network.
    let requests = batch.indices().map(|index| batch.send(index));
    try_join_all(requests).await?;

    Ok(batch.finish())
}
