//! # Step 4: a rate limiter, written by hand
//!
//! Step 3 sent every prompt at once, and the free tier answered the
//! eleventh request of the minute with `429 RESOURCE_EXHAUSTED`. The API has
//! a quota, and the quota is not one number but three, all enforced at the
//! same time (see docs/wire.md#rate-limits):
//!
//! * requests per minute (**RPM**),
//! * *input* tokens per minute (**TPM**),
//! * requests per day (**RPD**).
//!
//! Going over any one of them is a 429. This step's lesson is to stay under
//! all three *without* giving up speed: the program should run exactly at
//! the limit, with zero 429s, however many prompts it is given.
//!
//! We build the limiter ourselves rather than reaching for `governor` or
//! `tower::limit`. Not because those crates are bad, but because the Gemini
//! API counts with a *strict sliding window*, and the classic algorithms
//! (token bucket, GCRA) either burst past it or crawl under it. Seeing why
//! is the point of the step; [`limiter`]'s documentation tells the story with
//! timelines and measurements.
//!
//! ## Map of the crate
//!
//! Read them in this order:
//!
//! * [`ramp`]: `--ramp`, the experiment first. Send 10, 20, 40, ... requests
//!   at once until the server answers 429, and read what it says: which
//!   quota, what limit, how long to wait.
//! * [`limiter`]: the rate limiter. A FIFO queue of waiters, one log per
//!   limit, and one background task that sleeps until the head of the queue
//!   can go. Everything else in this step is built on top of it.
//! * [`runner`]: the program that drives prompts through the limiter: a
//!   permit before each request, the real token count settled after it,
//!   retries that wait as long as the server says (or back off with jitter
//!   when it does not say), and a clean stop when the daily quota runs out.
//! * [`redis`]: the same limiter with its books in Redis (`--redis`), so
//!   many processes on many machines draw from one project's quota: an
//!   atomic Lua script per admission, Redis's clock, keys that expire.
//! * [`runner::learn`] and [`memory`]: every 429 names the limit it
//!   enforces; the runner adopts it at once and remembers it, with the day's
//!   spend, in a small state file, so the next run starts at the real limits
//!   and never spends the same day twice.
//! * [`options`] and [`prompts`]: the command line (limits default to the
//!   model's free tier) and the prompts to send (`--prompts FILE`).
//! * [`journal`]: `--output`, an append-only file of answers that a stopped
//!   run resumes from, so no answer is lost or paid for twice.
//!
//! The binary (`src/main.rs`) puts them together in a page: parse the
//! arguments, connect, build the limiter, run the batch through it.

pub mod gauge;
pub mod limiter;
pub mod ramp;
pub mod retry;
