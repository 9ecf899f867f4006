//! Why a batch run stopped as a whole: one line for the user.
//!
//! Everything else -- a line that failed, a job that expired -- is part of
//! the run's report, not an error of the run.

use crate::{batch::ledger::LedgerError, prompts::PromptsError};

/// A batch run that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A call the run needs failed for good (a bad key, an upload refused,
    /// a create refused for another reason than a full quota).
    #[error("cannot {what}")]
    Api {
        /// What was being done.
        what: String,
        /// What the server (or the network) said.
        source: common::Error,
    },
    /// The ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A prompt could not be read back.
    #[error(transparent)]
    Prompts(#[from] PromptsError),
    /// Two prompt ids would be the same key in a job.
    #[error(
        "the prompt ids {first} and {second} would both be the batch key {key:?}: give one of them another id"
    )]
    SameKey {
        /// The first id, as JSON.
        first: String,
        /// The second id, as JSON.
        second: String,
        /// The key.
        key: String,
    },
    /// An answer could not be written to the journal.
    #[error(
        "{line}: the run stopped; the answers written before it are kept, and the job's results stay on the server; fix it, then run the same command again to continue: {command}"
    )]
    WriteFailed {
        /// What could not be written, and why.
        line: String,
        /// The command that continues.
        command: String,
    },
}
