//! `--cancel-batch`: cancels the jobs a journal's runs left running.
//!
//! The jobs are those the ledger beside the journal still has open (see
//! [`crate::batch::ledger`]); each is found by the name written down, or by
//! its display name. Cancelling is all this does: the next run with the
//! same command follows each job to its end (`CANCELLED`, with whatever was
//! done before the cancel, which the API does not return) and sends the
//! unanswered prompts in a new job.

use std::path::Path;

use crate::batch::{api::BatchApi, error::BatchError, ledger::Ledger};

/// Cancels every open job of the journal at `output`; returns the lines
/// that say what was done.
pub async fn cancel(api: &BatchApi, output: &Path) -> Result<Vec<String>, BatchError> {
    let open = Ledger::read_open(output)?;
    if open.is_empty() {
        return Ok(vec![format!(
            "no batch job of {} is left running (its ledger {} has none open): nothing to cancel",
            output.display(),
            Ledger::path_for(output).display()
        )]);
    }
    let mut lines = Vec::new();
    for entry in open {
        let names = match &entry.job {
            Some(job) => vec![job.clone()],
            None => api
                .find(&entry.display_name)
                .await
                .map_err(|source| BatchError::Api {
                    what: format!("look for the batch job named {}", entry.display_name),
                    source,
                })?
                .into_iter()
                .map(|operation| operation.name)
                .collect(),
        };
        if names.is_empty() {
            lines.push(format!(
                "no job named {} is on the server: nothing to cancel for it",
                entry.display_name
            ));
        }
        for name in names {
            match api.cancel(&name).await {
                Ok(()) => {}
                Err(error) if error.api().is_some_and(|api| api.http_status == 404) => {
                    lines.push(format!(
                        "{name} ({}) is no longer on the server (deleted, or run by an emulator that has stopped): nothing to cancel",
                        entry.display_name
                    ));
                    continue;
                }
                Err(source) => {
                    return Err(BatchError::Api {
                        what: format!("cancel the batch job {name}"),
                        source,
                    });
                }
            }
            lines.push(format!(
                "asked the server to cancel {name} ({}, {} prompt(s)); the same command without --cancel-batch sends the unanswered ones in a new job",
                entry.display_name,
                entry.keys.len()
            ));
        }
    }
    Ok(lines)
}
