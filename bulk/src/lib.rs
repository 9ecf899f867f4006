//! # bulk: thousands of Gemini prompts, at the quota's pace, never paid twice
//!
//! The tutorial's step 4 (`step4-ratelimit`) is the lesson: a hand-written
//! rate limiter, and retries that wait the server's `retryDelay`. Read it
//! there. This crate is the tool built on that limiter for real work:
//!
//! ```text
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl   # again: resumes
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl --redis redis://127.0.0.1:6379
//! cargo run --release -p bulk -- --prompts questions.jsonl --output answers.jsonl --mode batch   # half price
//! ```
//!
//! The modules, each with one job; each one only uses those listed before it:
//!
//! * [`paths`]: the files a run names, told apart by identity (a link or
//!   `a/../b` is the same file), so that no file overwrites another.
//! * [`locks`]: locks taken on the file itself, never waited on without end.
//! * [`prompts`]: the prompts file (plain text, or JSONL with ids), indexed
//!   rather than held, and the token estimate each prompt is charged.
//! * [`reconcile`]: which earlier answers still answer the prompts, once
//!   the prompts file was edited.
//! * [`journal`]: `--output`, an append-only file of answers that a stopped
//!   run resumes from, so no answer is lost or paid for twice.
//! * [`state_file`]: the limits learned from the server and the day's
//!   spend, kept between runs (`--limits-file`).
//! * [`pace`]: the interface the runner paces itself through, and step 4's
//!   limiter behind it, with the counters a progress bar needs.
//! * [`redis`]: step 4's limiter with its books in Redis (`--redis`), so
//!   many processes on many machines draw from one quota.
//! * [`prices`]: the price table (`bulk/prices.json`, or `--prices FILE`):
//!   USD per 1M tokens per model, and each mode's share of it.
//! * [`bill`]: the tokens of every answer, added up per mode, and what they
//!   cost next to the standard price: the summary's last line.
//! * [`flex`]: the tier each attempt goes at (`--mode flex`, `--fallback`).
//! * [`runner`]: drives the prompts through the limiter, learns the real
//!   limits from the server's 429s ([`runner::learn`]), writes each outcome
//!   to the journal, and stops cleanly when the day's quota is spent.
//! * [`plan`]: `--mode auto`: the cheapest mode that meets `--deadline`.
//! * [`batch`]: `--mode batch`: Batch Mode jobs, followed to their end, their
//!   answers in the same journal; a job is never created twice.
//! * [`mode_args`] and [`options`]: the command line, in small groups that
//!   build what they configure.
//!
//! The binary (`src/main.rs`) puts them together in a page.

pub mod batch;
pub mod bill;
pub mod flex;
pub mod gauge;
pub mod journal;
pub mod locks;
pub mod mode_args;
pub mod options;
pub mod pace;
pub mod paths;
pub mod plan;
pub mod prices;
pub mod prompts;
pub mod reconcile;
pub mod redis;
pub mod runner;
pub mod state_file;
