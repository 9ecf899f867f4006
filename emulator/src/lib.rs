//! A local Gemini API server that clients, including Google's own `google-genai` SDKs, cannot
//! tell from the real one on the paths it serves.
//!
//! It exists so the tutorial runs offline, tests never touch the internet, and benchmarks
//! can meet a server whose rate limits, latency and failures are real-shaped but
//! reproducible. Start it in-process with [`start`] or run the binary:
//!
//! ```text
//! cargo run -p emulator -- --port 8080
//! export SSL_CERT_FILE=/tmp/gemini-emulator-ca-8080.pem
//! export GOOGLE_GEMINI_BASE_URL=https://127.0.0.1:8080
//! ```
//!
//! It speaks the real API's wire: HTTPS with HTTP/2 (and HTTP/1.1), at most 100 concurrent
//! streams per connection, on a certificate made at start ([`tls`]); `--plain` (or
//! `Settings::tls = false`, the library default) serves plain HTTP.
//!
//! # What it serves
//!
//! Under both `/v1beta/` and `/v1/`: `POST models/{model}:generateContent`,
//! `:streamGenerateContent` (`?alt=sse` framing byte-for-byte like the captures),
//! `:countTokens`, `GET models` (paged) and `GET models/{model}`. Bodies, error envelopes,
//! 429 quota bodies and headers follow docs/wire.md and the recorded fixtures. Generate calls
//! read `serviceTier`: a Flex request waits longer ([`Flex`]) and may be shed with a 429.
//!
//! Batch Mode and the Files API (docs/wire.md#batch-mode, #files): `POST
//! models/{model}:batchGenerateContent`, `GET batches[/{id}]`, `POST batches/{id}:cancel`,
//! `DELETE batches/{id}`; the resumable upload at `/upload/{version}/files`, `GET` and `DELETE
//! files[/{id}]`, and the download of results files at `files/{id}:download` and
//! `/download/{version}/files/{id}:download`. Jobs move through their states over
//! [`Batch::turnaround`]; a test that wants them done at once sets it to zero
//! ([`Settings::instant`] does).
//!
//! # Faithful defaults
//!
//! [`Settings::default`] is the free tier: per-model quotas from [`catalog`] applied as a
//! strict sliding window per key and model ([`limits`]), and a latency model near the real
//! `gemini-flash-latest` on the tutorial prompt. The course measured 6.4 s per request (32.1 s
//! for five in a row) and 8.5 s for five at once. The emulator spends `base` 2.5 s (queueing
//! and prompt processing) + `jitter` uniform 0-2 s + 3.5 ms per output token (thoughts
//! included). The bird-migration answer is 389 tokens and the model first "thinks" 294-594
//! tokens (100 + half the answer + uniform 0-300), so one request takes 4.9-7.9 s, 6.4 s on
//! average, and five at once finish in about 7.5 s (the slowest of five draws).
//! [`Settings::instant`] turns all of that off.
//!
//! # Modules
//!
//! - [`settings`]: every knob, with the faithful and the instant presets.
//! - [`catalog`]: the models and their free-tier quotas.
//! - [`tokens`]: the deterministic token estimate shared by countTokens and usage.
//! - [`text`]: the answers (the bird-migration paragraphs, templated text otherwise).
//! - [`request`]: reading request bodies with the real validation messages.
//! - [`reply`]: thoughts, truncation, stream chunks and the bodies that carry them.
//! - [`wire`]: response types in the real field order, pretty and SSE encodings.
//! - [`errors`]: the real error bodies (403, 400, 404, 429, 500, 503).
//! - [`limits`]: the sliding-window quota.
//! - [`latency`]: when each chunk leaves.
//! - [`faults`]: injected failures (and Flex shedding), reproducible with a seed.
//! - [`seeds`]: per-item random generators and resource ids.
//! - [`batch`]: batch jobs, their states and operations; [`files`]: the Files API's store;
//!   [`timestamps`]: RFC 3339 times on tokio's clock.
//! - `routes`: the HTTP surface (with `batch_api` and `files_api` for those parts, and `http`
//!   for what every handler shares); `state`: what its handlers share; [`server`]: start,
//!   stop, stats and the wire (HTTP/1.1 and HTTP/2, plain or over TLS); [`tls`]: the
//!   certificate made at start.

pub mod batch;
mod batch_api;
pub mod catalog;
pub mod errors;
pub mod faults;
pub mod files;
mod files_api;
mod http;
pub mod latency;
pub mod limits;
pub mod reply;
pub mod request;
mod routes;
pub mod seeds;
pub mod server;
pub mod settings;
mod state;
pub mod text;
pub mod timestamps;
pub mod tls;
pub mod tokens;
pub mod wire;

pub use server::{Arrival, Emulator, Stats, TrackedState, start};
pub use settings::{Batch, Faults, Flex, Latency, Settings};
