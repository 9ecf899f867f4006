//! Step 1: one request to Gemini, and its answer.
//!
//! ```text
//! cargo run -p step1-hello                 # ask "Why do some birds migrate?"
//! cargo run -p step1-hello -- --stream     # print the answer as it arrives
//! cargo run -p step1-hello -- --prompt "Why is the sky blue?"
//! ```
//!
//! With no API key set, the request goes to the built-in emulator, so this
//! runs offline; put a key in `GOOGLE_API_KEY` (or a `.env` file) to ask the
//! real Gemini API instead. This is the "hello world" the later steps build
//! on: a client, a request, an `.await`, an answer.

use std::process::ExitCode;

use clap::Parser;
use common::{
    Client, GenerateContentRequest, GenerateContentResponse,
    cli::CommonArgs,
    outcome::{Answer, Outcome},
    report::{self, Summary},
    run,
    shutdown::Shutdown,
    terminal,
};
use futures_util::StreamExt;
use tokio::time::Instant;

/// Step 1: one Gemini request; print the answer, the model, the tokens and the time.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Print the answer as it arrives (streamGenerateContent) instead of all at once.
    #[arg(long, conflicts_with = "json")]
    stream: bool,

    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    run::init_tracing();
    let shutdown = Shutdown::on_signals();
    run::exit(&args.common, &shutdown, hello(&args)).await
}

async fn hello(args: &Args) -> Result<Summary, common::Error> {
    // Connect: the real API with a key, the built-in emulator without one.
    let session = run::session(&args.common).await?;
    let client = &session.client;
    let model = &args.common.model;
    let request = GenerateContentRequest::from_prompt(&args.common.prompt);

    // One request, one `.await`: nothing else happens until the answer is back.
    let started = Instant::now();
    let answer = if args.stream {
        stream_to_stdout(client, model, &request).await?
    } else {
        let response = client.generate_content(model, &request).await?;
        let answer = Answer::from_response(response)?;
        if !args.common.json {
            terminal::print_line(&answer.text);
        }
        answer
    };
    let elapsed = started.elapsed();

    // The figures every step reports, for this one request.
    let outcome = Outcome::answered(0, answer, elapsed);
    if args.common.json {
        terminal::print_line(outcome.json_line());
    } else {
        terminal::print_line(format_args!("\n{}", outcome.footer()));
    }
    Ok(report::single(outcome, elapsed, &args.common))
}

/// Streams the answer: each chunk carries only the new text, printed as it
/// comes, and the last chunk carries the final token counts.
async fn stream_to_stdout(
    client: &Client,
    model: &str,
    request: &GenerateContentRequest,
) -> Result<Answer, common::Error> {
    let mut chunks = client.stream_generate_content(model, request).await?;
    let mut text = String::new();
    let mut last: Option<GenerateContentResponse> = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                // End the half-printed answer's line, so the error line that
                // follows on stderr starts on a line of its own.
                if !text.is_empty() {
                    terminal::print_line("");
                }
                return Err(error);
            }
        };
        let delta = chunk.text();
        terminal::print(&delta);
        text.push_str(&delta);
        last = Some(chunk);
    }
    terminal::print_line("");
    let mut answer = Answer::from_response(last.unwrap_or_default())?;
    answer.text = text;
    Ok(answer)
}
