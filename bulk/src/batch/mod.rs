//! Batch Mode: the prompts as asynchronous jobs at half price, their
//! answers written to the same journal, nothing paid for twice.
//!
//! `bulk --mode batch --prompts P --output O` sends the prompts `O` does not
//! answer yet as Batch Mode jobs (docs/wire.md#batch-mode), follows them,
//! and writes each answer to `O` by its id, as the synchronous runner does.
//! The files, each with one job, each using only those listed before it:
//!
//! * [`wire`]: the operation a job is, its state, counters and results;
//! * [`api`]: the calls (create, get, list, cancel, upload, download);
//! * [`ledger`]: the jobs intended, written down before each create;
//! * [`error`]: why a batch run stops as a whole;
//! * [`submit`]: a job's keys, name and input (inline or an uploaded file);
//! * [`results`]: a finished job's results, joined to their prompts by key;
//! * [`progress`]: the bar fed by `batchStats`, and a line per state change;
//! * [`run`]: the run itself: earlier jobs first, then rounds of new ones;
//! * [`cancel`]: what `--cancel-batch` does.

pub mod api;
pub mod cancel;
pub mod error;
pub mod ledger;
pub mod progress;
pub mod results;
pub mod run;
pub mod submit;
pub mod wire;
