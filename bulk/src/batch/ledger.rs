//! The batch ledger: what bulk asked the server to make, written down
//! *before* it asked, so that no job is ever paid for twice.
//!
//! A batch job is paid for when it is created. If the process dies between
//! the create call and the moment it writes down the job's name (`kill -9`,
//! a power cut, a lost connection after the server acted), the next run
//! must find that job and follow it, not make another. So bulk first
//! chooses the job's display name, deterministically (`bulk-<hash>-<n>`:
//! a hash of the journal, the model and the set of prompt ids, and the
//! how-many-th job for that set), appends an *intent* with it to this
//! ledger and syncs it to disk, and only then sends the create. The next
//! run reads the ledger first: every intent not closed is looked for on the
//! server (by the job's name if it was written, else by listing the
//! project's jobs for that display name) and followed to its end before
//! anything new is created.
//!
//! The ledger sits beside the journal (`answers.jsonl.batches`): one JSON
//! object per line, appended, never rewritten. Its events, per display name:
//!
//! * `intent`: the name, the model, the prompt ids (their batch keys), the
//!   fingerprint of each prompt's text and when, written and synced before
//!   the create;
//! * `created`: the job's name (`batches/<id>`), once the create answered;
//! * `closed`: the job ended and its results are in the journal, or the
//!   create was refused (no job exists), or the job is gone from the server.
//!
//! A line cut short by a death mid-write is skipped when read back.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// The ledger cannot be read or written: the run stops before creating
/// anything it could not remember.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} the batch ledger {}", path.display())]
pub struct LedgerError {
    /// `read` or `write`.
    what: &'static str,
    /// The ledger.
    path: PathBuf,
    /// What the system said.
    source: std::io::Error,
}

/// One line of the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Intent {
        display_name: String,
        set: String,
        attempt: u32,
        model: String,
        keys: Vec<String>,
        /// The prompts' fingerprints (16 hex digits), in the order of `keys`.
        #[serde(default)]
        hashes: Vec<String>,
        at: u64,
    },
    Created {
        display_name: String,
        job: String,
    },
    Closed {
        display_name: String,
        #[serde(default)]
        job: Option<String>,
        state: String,
    },
}

/// A job bulk meant to create, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The display name (`bulk-<hash>-<n>`): how the job is found again.
    pub display_name: String,
    /// The hash of the set of prompts it holds.
    pub set: String,
    /// How many jobs for that set came before it, plus one.
    pub attempt: u32,
    /// The model.
    pub model: String,
    /// The batch keys of its prompts.
    pub keys: Vec<String>,
    /// Their prompts' fingerprints, in the same order: an answer is only
    /// used for the prompt it was asked for.
    pub hashes: Vec<String>,
    /// When it was intended (seconds since 1970).
    pub at: u64,
    /// Its name on the server, once known.
    pub job: Option<String>,
    /// How it ended, once it has.
    pub closed: Option<String>,
}

/// The ledger of one journal.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    entries: BTreeMap<String, Entry>,
    /// Display names in the order they were intended.
    order: Vec<String>,
}

impl Ledger {
    /// The ledger of the journal at `output`: `output` + `.batches`.
    pub fn path_for(output: &Path) -> PathBuf {
        let mut name = output.as_os_str().to_owned();
        name.push(".batches");
        PathBuf::from(name)
    }

    /// Reads the ledger of `output` (empty if there is none yet) and opens
    /// it for appending.
    pub fn open(output: &Path) -> Result<Ledger, LedgerError> {
        let path = Ledger::path_for(output);
        let (entries, order) = read_entries(&path)?;
        let write_error = |source| LedgerError {
            what: "write",
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(write_error)?;
        if !ends_a_line(&path).map_err(write_error)? {
            // A line cut short stays, on a line of its own: the next event
            // must not be glued to it.
            file.write_all(b"\n").map_err(write_error)?;
        }
        Ok(Ledger {
            path,
            file,
            entries,
            order,
        })
    }

    /// The entries of the ledger of `output` that are not closed, without
    /// opening it for writing (`--cancel-batch`).
    pub fn read_open(output: &Path) -> Result<Vec<Entry>, LedgerError> {
        let (mut entries, order) = read_entries(&Ledger::path_for(output))?;
        Ok(order
            .iter()
            .filter_map(|name| entries.remove(name))
            .filter(|entry| entry.closed.is_none())
            .collect())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry not closed, in the order they were intended.
    pub fn open_entries(&self) -> Vec<Entry> {
        self.order
            .iter()
            .filter_map(|name| self.entries.get(name))
            .filter(|entry| entry.closed.is_none())
            .cloned()
            .collect()
    }

    /// The number of the next job for the set `set`: one more than any so far.
    pub fn next_attempt(&self, set: &str) -> u32 {
        self.entries
            .values()
            .filter(|entry| entry.set == set)
            .map(|entry| entry.attempt)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Writes down, and syncs to disk, that a job named `display_name` is
    /// about to be created: before the create call, never after.
    pub fn intend(
        &mut self,
        display_name: &str,
        set: &str,
        attempt: u32,
        model: &str,
        keys: Vec<String>,
        hashes: Vec<String>,
    ) -> Result<(), LedgerError> {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.append(Event::Intent {
            display_name: display_name.to_string(),
            set: set.to_string(),
            attempt,
            model: model.to_string(),
            keys,
            hashes,
            at,
        })?;
        self.file.sync_data().map_err(|source| self.error(source))
    }

    /// The create answered: the job is `job`.
    pub fn created(&mut self, display_name: &str, job: &str) -> Result<(), LedgerError> {
        self.append(Event::Created {
            display_name: display_name.to_string(),
            job: job.to_string(),
        })
    }

    /// Nothing more will come of the job: it ended (`state`) and its
    /// results are written, the create was refused, or the job is gone.
    pub fn closed(
        &mut self,
        display_name: &str,
        job: Option<&str>,
        state: &str,
    ) -> Result<(), LedgerError> {
        self.append(Event::Closed {
            display_name: display_name.to_string(),
            job: job.map(str::to_string),
            state: state.to_string(),
        })
    }

    fn append(&mut self, event: Event) -> Result<(), LedgerError> {
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|source| self.error(source))?;
        apply(&mut self.entries, &mut self.order, event);
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> LedgerError {
        LedgerError {
            what: "write",
            path: self.path.clone(),
            source,
        }
    }
}

/// Whether the file is empty or ends with a newline.
fn ends_a_line(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    if file.seek(SeekFrom::End(0))? == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Reads every event of the ledger at `path` (none if it does not exist).
fn read_entries(path: &Path) -> Result<(BTreeMap<String, Entry>, Vec<String>), LedgerError> {
    let mut entries = BTreeMap::new();
    let mut order = Vec::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((entries, order)),
        Err(source) => {
            return Err(LedgerError {
                what: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|source| LedgerError {
            what: "read",
            path: path.to_path_buf(),
            source,
        })?;
        // A line cut short by a death mid-write is no event.
        if let Ok(event) = serde_json::from_slice::<Event>(&line) {
            apply(&mut entries, &mut order, event);
        }
    }
    Ok((entries, order))
}

/// Applies one event to the entries.
fn apply(entries: &mut BTreeMap<String, Entry>, order: &mut Vec<String>, event: Event) {
    match event {
        Event::Intent {
            display_name,
            set,
            attempt,
            model,
            keys,
            hashes,
            at,
        } => {
            if !entries.contains_key(&display_name) {
                order.push(display_name.clone());
            }
            let entry = Entry {
                display_name: display_name.clone(),
                set,
                attempt,
                model,
                keys,
                hashes,
                at,
                job: None,
                closed: None,
            };
            entries.insert(display_name, entry);
        }
        Event::Created { display_name, job } => {
            if let Some(entry) = entries.get_mut(&display_name) {
                entry.job = Some(job);
            }
        }
        Event::Closed {
            display_name,
            job,
            state,
        } => {
            if let Some(entry) = entries.get_mut(&display_name) {
                entry.job = job.or(entry.job.take());
                entry.closed = Some(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_are_read_back_until_closed_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let output = dir.path().join("answers.jsonl");
        let mut ledger = Ledger::open(&output).expect("opens");
        assert_eq!(ledger.next_attempt("s1"), 1);
        ledger
            .intend(
                "bulk-a-1",
                "s1",
                1,
                "m",
                vec!["k1".into(), "k2".into()],
                vec!["01".into(), "02".into()],
            )
            .expect("written");
        ledger
            .intend(
                "bulk-b-1",
                "s2",
                1,
                "m",
                vec!["k3".into()],
                vec!["03".into()],
            )
            .expect("written");
        ledger.created("bulk-a-1", "batches/x").expect("written");
        ledger.closed("bulk-b-1", None, "REFUSED").expect("written");
        drop(ledger);
        let mut text = std::fs::read_to_string(Ledger::path_for(&output)).expect("read");
        text.push_str("{\"event\":\"closed\",\"display_na");
        std::fs::write(Ledger::path_for(&output), text).expect("written");

        let open = Ledger::read_open(&output).expect("reads");
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].display_name, "bulk-a-1");
        assert_eq!(open[0].job.as_deref(), Some("batches/x"));
        assert_eq!(open[0].keys, ["k1", "k2"]);
        assert_eq!(open[0].hashes, ["01", "02"]);
        let mut ledger = Ledger::open(&output).expect("opens again");
        ledger
            .closed("bulk-a-1", None, "SUCCEEDED")
            .expect("written");
        assert!(
            ledger.open_entries().is_empty(),
            "not glued to the torn line"
        );
        drop(ledger);
        assert!(Ledger::read_open(&output).expect("reads").is_empty());
        let ledger = Ledger::open(&output).expect("opens again");
        assert_eq!(ledger.next_attempt("s1"), 2);
        assert_eq!(ledger.next_attempt("s2"), 2);
        assert_eq!(ledger.open_entries(), []);
    }
}
