//! What every step of the tutorial shares: how to reach Gemini, what it says, and how a run ends.
//!
//! Start here. A step does three things: it connects, it sends
//! `generateContent` requests, and it reports what happened. The first two
//! live in this crate's lower half, the third in its upper half:
//!
//! - [`config`]: reads `GOOGLE_API_KEY`/`GEMINI_API_KEY`, `GOOGLE_GEMINI_BASE_URL`
//!   and a `.env` file the way Google's SDKs do; the key type that never prints.
//! - [`connect`](mod@connect): one call that gives a [`Session`]: the real API with a key,
//!   or the built-in emulator, started in-process, without one.
//! - [`client`]: the [`Client`]: generate (unary and streamed), count tokens, list
//!   and get models, and any other call on the host ([`Client::raw`]); one
//!   connection pool shared by every clone.
//! - [`pool`] and [`trust`]: the connections under it (one HTTP/2 connection per 100
//!   requests in flight) and which certificates it trusts.
//! - [`types`]: the request and response bodies, as tolerant as Google's clients
//!   (unknown fields and enum values are kept, not fatal).
//! - [`proxy`]: the proxy variables the HTTP stack reads, checked, and their passwords.
//! - [`error`]: one [`Error`] enum that keeps what the server said (status, retry
//!   delay, which quota) and prints as one line saying what to do.
//! - [`proto_duration`]: the server's `"26s"` durations (`retryDelay`).
//! - [`redact`]: secrets kept out of what is printed: the key in what servers send,
//!   passwords in URLs.
//! - [`suggest`]: the models closest to a name the server does not know.
//! - [`sse`]: the incremental decoder behind streaming.
//! - [`cli`]: the command-line options every step shares (`--model`, `--prompt`, ...).
//! - [`open_files`]: the operating system's limit on open files, raised at start.
//! - [`quota`]: the free tier's requests/tokens per minute and per day, per model.
//! - [`outcome`]: what became of each request: an answer, an error, or "not done".
//! - [`report`]: the in-order printer, its progress bar and the final summary.
//! - [`shutdown`]: the one handle that Ctrl-C and SIGTERM stop a run through.
//! - [`terminal`]: stdout and stderr that never panic, and never obey escape codes from the network.
//! - [`run`]: the frame of a step's `main`: session, batch, exit codes.
//! - [`timeline`]: the SVG picture of when each request was sent and answered.
//!
//! The smallest program:
//!
//! ```no_run
//! # async fn demo() -> common::Result<()> {
//! let session = common::connect(common::ConnectOptions::default()).await?;
//! let request = common::GenerateContentRequest::from_prompt("Why do some birds migrate?");
//! let answer = session.client.generate_content("gemini-flash-latest", &request).await?;
//! println!("{}", answer.text());
//! # Ok(()) }
//! ```

pub mod cli;
pub mod client;
pub mod config;
pub mod connect;
pub mod error;
mod escaped;
pub mod open_files;
pub mod outcome;
mod payload;
pub mod pool;
pub mod proto_duration;
pub mod proxy;
pub mod quota;
pub mod redact;
pub mod report;
mod route;
pub mod run;
pub mod shutdown;
pub mod sse;
pub mod suggest;
pub mod terminal;
pub mod timeline;
pub mod trust;
pub mod types;

pub use client::{Client, ClientConfig};
pub use connect::{ConnectOptions, Session, connect};
pub use error::{Error, Result};
pub use types::{GenerateContentRequest, GenerateContentResponse};
