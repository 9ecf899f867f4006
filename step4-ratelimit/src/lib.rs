//! # Step 4: a rate limiter, written by hand
//!
//! Step 3 sent every prompt at once, and the free tier answered the
//! eleventh request of the minute with `429 RESOURCE_EXHAUSTED`. The quota is
//! not one number but three, all enforced at once (see
//! docs/wire.md#rate-limits): requests per minute (**RPM**), *input* tokens
//! per minute (**TPM**) and requests per day (**RPD**). Going over any one is
//! a 429. This step's lesson is to stay under all three without giving up
//! speed: run exactly at the limit, with zero 429s, however many requests.
//!
//! We write the limiter ourselves rather than reach for `governor` or
//! `tower::limit`: the Gemini API counts on a *strict sliding window*, and
//! the classic algorithms (token bucket, GCRA) either burst past it or crawl
//! under it. Seeing why is the point; [`limiter`]'s documentation says it.
//!
//! ## Map of the crate, in reading order
//!
//! * [`ramp`]: `--ramp`, the experiment first. Send 10, 20, 40, ... requests
//!   at once until the server answers 429, and read what it says: which
//!   quota, what limit, how long to wait.
//! * [`limiter`]: the rate limiter. A FIFO queue of waiters, a log per limit
//!   ([`limits`] says which), and one task that sleeps until the head of the
//!   queue can go. `src/main.rs` asks it for a permit before each attempt.
//! * [`retry`]: what to do after a failed attempt: wait the `retryDelay` a
//!   429 gives (the whole limiter pauses), back off with full jitter after a
//!   503, stop cleanly when the day's quota is spent.
//! * [`options`]: the command line (limits default to the model's free
//!   tier; 0 is unlimited), and [`pace`], the summary's notes on the pacing.
//!
//! The binary (`src/main.rs`) is step 3's with the lesson inside its loop:
//! a permit, an attempt, the real token count settled, a retry if due.
//!
//! This step is the lesson, and stops there. The tool for real work, built
//! on this limiter, is `bulk`: prompts files, a resumable journal of
//! answers, limits learned from the server and remembered, one quota shared
//! by many processes through Redis.

pub mod limiter;
pub mod limits;
pub mod options;
pub mod pace;
pub mod ramp;
pub mod retry;

pub use options::Options;

/// A prompt's input tokens, estimated before it is sent: the limiter must
/// charge them against TPM before the request goes, and only the response
/// says the real count (then [`limiter::Permit::settle`] corrects it).
///
/// One token per three characters errs high for most text (Google's rule of
/// thumb is four for English): too high costs a little speed when TPM binds,
/// too low risks a 429.
pub fn estimate_tokens(prompt: &str) -> u32 {
    let tokens = prompt.chars().count().div_ceil(3).max(1);
    u32::try_from(tokens).unwrap_or(u32::MAX)
}
