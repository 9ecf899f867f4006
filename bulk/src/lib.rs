//! # bulk: thousands of Gemini prompts, at the quota's pace, never paid twice
//!
//! The tutorial's step 4 (`step4-ratelimit`) is the lesson: a hand-written
//! rate limiter and retries that wait the server's `retryDelay`. This crate
//! is the tool built on that limiter for real work:
//!
//! ```text
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl
//! ```
//!
//! * [`prompts`]: the prompts file (plain text, or JSONL with ids).
//! * [`journal`]: `--output`, an append-only file of answers that a stopped
//!   run resumes from, so no answer is lost or paid for twice.
//! * [`runner`]: drives the prompts through step 4's limiter, learns the
//!   real limits from the server's 429s ([`runner::learn`]) and remembers
//!   them ([`memory`]), stops cleanly when the day's quota is spent.
//! * [`pace`]: the interface the runner paces itself through, and step 4's
//!   limiter behind it, with the counters a progress bar needs.
//! * [`redis`]: the same limiter with its books in Redis (`--redis`), so
//!   many processes on many machines draw from one quota.
//! * [`options`]: the command line.

pub mod gauge;
pub mod journal;
pub mod memory;
pub mod options;
pub mod pace;
pub mod prompts;
pub mod redis;
pub mod runner;
