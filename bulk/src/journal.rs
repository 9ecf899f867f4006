//! The `--output` journal: every answer kept the moment it arrives, and a
//! stopped run that picks up where it left off.
//!
//! A bulk run spends quota on every answer (on the free tier, a day's worth
//! may be a few hundred), so an answer must never be lost and never be paid
//! for twice. The journal is the file that makes both true:
//!
//! * **Append-only.** Each outcome is one JSON line, appended with a single
//!   `write` the moment it is known (answers in completion order, not input
//!   order: nothing waits behind a slow request). The file is never
//!   truncated: `kill -9` loses at most the requests in flight, whose line
//!   was not written yet. A line cut short by a death mid-write is skipped
//!   when the file is read back, and its prompt is sent again.
//! * **Resumed by default.** When the file exists, it is read first: every
//!   id with an answer is skipped, and only failed and never-sent prompts go.
//!   Starting over takes `--restart`, and even then the old file is renamed,
//!   not erased.
//! * **One run at a time.** A run holds a lock on the journal file itself
//!   (see [`crate::locks`]) until it ends: a second run on the same file,
//!   through this name or any other (a link, `a/../answers.jsonl`), is
//!   refused with one line, instead of both sending the same prompts.
//! * **Matched to its prompts.** Each row carries the prompt's id, line and
//!   a fingerprint of its text. An edited prompts file leaves every answer
//!   that still answers a prompt standing, and a prompt that failed and was
//!   edited is simply sent again; an answered prompt that was edited is
//!   sent again only with `--resend-changed` (see [`crate::reconcile`]). A
//!   journal with nothing in common with the prompts file is an error
//!   instead of a silent mix.
//!
//! Rows carry `id`, `line`, `prompt_hash`, `ok` and `status`, then what the
//! terminal's `--json` lines carry (answer text, finish reason, tokens,
//! attempts, latency, or the error), and the input line's other fields under
//! `input`. An ordered copy is one command:
//! `jq -c -s 'sort_by(.line)[]' answers.jsonl > ordered.jsonl`.
//! An answer that followed its prompt to a new id (a line removed above it
//! in a plain-text file, say) is filed again under the new id, with
//! `moved_from` naming the old one: the last answered row of an id is its
//! answer.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    outcome::{Ended, Outcome},
    redact::redact_url,
    report::Summary,
    terminal,
};
use serde_json::{Map, Value};

use crate::{
    locks::{self, Held},
    prompts::Prompts,
    reconcile::{self, Matcher, Reconciled, Row},
};

/// How a run treats an existing journal (`--restart`, `--resend-changed`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Start over: the old journal is moved aside, never erased.
    pub restart: bool,
    /// Send again the prompts that changed since they were answered.
    pub resend_changed: bool,
}

/// Why the journal cannot be used; nothing has been sent when one of these happens.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The existing journal could not be read.
    #[error("cannot read the output file {} to resume from it", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The journal could not be opened for appending.
    #[error("cannot open the output file {} for writing", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Another run is writing to the same journal now.
    #[error("another run is writing to {} now (through this name or another): wait for it to end, or give another --output", path.display())]
    Busy {
        /// The journal, as named in this run.
        path: PathBuf,
    },
    /// The journal cannot be locked at all (a file system without locks).
    #[error("cannot lock the output file {} to keep other runs out of it: {source}; give an --output on a local disk", path.display())]
    Lock {
        /// The journal.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The existing file is not this prompts file's journal.
    #[error("{} does not belong to these prompts ({reason}): give another --output, or --restart to start over (the old file is kept aside)", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Prompts answered earlier were edited since: sending them again would
    /// pay again, which is never done without being asked.
    #[error("{} holds answers to {count} prompt(s) that have changed since ({which}): add --resend-changed to send only those again (every other answer stands, and the earlier answers stay in the file), or put them back as they were; nothing was sent", path.display())]
    Changed {
        /// The journal.
        path: PathBuf,
        /// How many prompts changed.
        count: usize,
        /// Which, as a message lists them.
        which: String,
    },
    /// `--restart` could not move the old journal aside.
    #[error("cannot keep the old output file {} aside as {}", path.display(), to.display())]
    KeepAside {
        /// The old file.
        path: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// An outcome that could not be written: the run must stop, since an
/// answer that cannot be kept is not a success.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to the output file {}: {error}", path.display())]
pub struct WriteError {
    /// The journal.
    pub path: PathBuf,
    /// What the system said.
    pub error: std::io::Error,
}

/// What an existing journal said, read before the run.
#[derive(Debug, Default)]
pub struct Resume {
    /// For each prompt, whether the journal already holds its answer.
    pub done: Vec<bool>,
    /// How many prompts already have an answer.
    pub answered: usize,
    /// Lines that were not rows (cut short by a stop mid-write), skipped.
    pub torn: usize,
    /// Where `--restart` put the old journal.
    pub kept_aside: Option<PathBuf>,
    /// What edits to the prompts file changed, one line each.
    pub notes: Vec<String>,
}

/// The open journal: one row per outcome, appended as each is known.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Opened for appending (and reading back); the lock is on this handle.
    file: Arc<File>,
    /// One row at a time: a row is one `write_all`, which may be several writes.
    writing: Mutex<()>,
    /// Held for the run: another run on the same file is refused.
    _run_lock: Option<Held>,
}

impl Resume {
    /// The prompts still to send: every one without an answer, in order.
    pub fn todo(&self) -> Vec<usize> {
        (0..self.done.len()).filter(|&i| !self.done[i]).collect()
    }
}

/// The run's journal at `output`, read back (or moved aside first with
/// `--restart`), open for appending, and what edits of the prompts file
/// changed said on stderr. The run's files were checked against each other
/// before (see [`crate::paths`]).
pub fn open(
    output: &Path,
    policy: Policy,
    prompts: &Prompts,
) -> Result<(Arc<Journal>, Resume), JournalError> {
    let (journal, resume) = Journal::open(output, prompts, policy)?;
    for note in &resume.notes {
        terminal::diagnostic(note);
    }
    Ok((Arc::new(journal), resume))
}

/// The summary of a run with nothing left to send: every prompt already
/// has its answer in the journal at `output`.
pub fn nothing_left(total: usize, output: &Path) -> Summary {
    let mut summary = Summary::from_outcomes(&[], Duration::ZERO);
    let file = output.display();
    summary.notes.push(format!(
        "all {total} prompts already have an answer in {file}: nothing to send (--restart starts over, keeping that file aside)"
    ));
    summary
}

/// Adds what the journal knows to the summary: what was skipped, what is
/// left and the command that continues.
pub fn account(journal: &Journal, resume: &Resume, summary: &mut Summary) {
    let file = journal.path().display();
    if let Some(kept) = &resume.kept_aside {
        summary
            .notes
            .push(format!("the earlier {file} was kept as {}", kept.display()));
    }
    if resume.torn > 0 {
        summary.notes.push(format!(
            "{} unreadable line(s) in {file} (cut short by an earlier stop) were skipped: their prompts were sent again",
            resume.torn
        ));
    }
    if resume.answered > 0 {
        summary.notes.push(format!(
            "{} of {} prompts were already answered in {file} and not sent again",
            resume.answered,
            resume.done.len()
        ));
    }
    let left = summary.failed + summary.not_done;
    if left > 0 {
        summary.notes.push(format!(
            "{left} prompt(s) left ({} failed, {} not done), the rest answered in {file}: run the same command again to continue: {}",
            summary.failed,
            summary.not_done,
            command_line()
        ));
    } else {
        summary.notes.push(format!(
            "every prompt has its answer in {file} (in completion order; sorted: jq -c -s 'sort_by(.line)[]' {file})"
        ));
    }
}

impl Journal {
    /// Opens the journal at `path` for `prompts`: locks it, reads what an
    /// earlier run wrote (unless `--restart`, which moves it aside first),
    /// files again the answers that followed their prompt to a new id, and
    /// leaves it open for appending.
    pub fn open(
        path: &Path,
        prompts: &Prompts,
        policy: Policy,
    ) -> Result<(Journal, Resume), JournalError> {
        let mut resume = Resume {
            done: vec![false; prompts.len()],
            ..Resume::default()
        };
        // Only a regular file is locked and read back: /dev/null or a pipe
        // is written only, and holds no answers to protect.
        let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
        let (mut file, mut run_lock) = open_locked(path, special)?;
        let open_error = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        let existing = !special && file.metadata().map_err(open_error)?.len() > 0;
        if existing && policy.restart {
            let to = aside(path);
            std::fs::rename(path, &to).map_err(|source| JournalError::KeepAside {
                path: path.to_path_buf(),
                to: to.clone(),
                source,
            })?;
            resume.kept_aside = Some(to);
            // The old file keeps its lock until its handle closes here.
            (file, run_lock) = open_locked(path, special)?;
        } else if existing {
            let (matched, torn) = read_back(&file, path, prompts)?;
            if !matched.changed.is_empty() && !policy.resend_changed {
                return Err(JournalError::Changed {
                    path: path.to_path_buf(),
                    count: matched.changed.len(),
                    which: reconcile::described(prompts, &matched.changed),
                });
            }
            if !ends_with_newline(&file).map_err(open_error)? {
                // A torn last line stays (nothing is erased), on a line of its own.
                (&*file).write_all(b"\n").map_err(open_error)?;
            }
            refile(&file, prompts, &matched).map_err(open_error)?;
            let shown = path.display().to_string();
            resume.notes = matched.notes(prompts, &shown, policy.resend_changed);
            resume.answered = matched.answered();
            resume.done = matched.done;
            resume.torn = torn;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                writing: Mutex::new(()),
                _run_lock: run_lock,
            },
            resume,
        ))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends prompt `index`'s outcome, unless it is "not done" (a prompt
    /// not done is simply sent next time). `input` is the line's other fields.
    ///
    /// One `write` of a whole line to a file opened for appending: the line
    /// is in the operating system's hands when this returns, so the
    /// process dying a moment later does not lose it. An error means the
    /// run must stop: the runner stops it, and says why once.
    pub fn append(
        &self,
        prompts: &Prompts,
        index: usize,
        outcome: &Outcome,
        input: Option<&Map<String, Value>>,
    ) -> Result<(), WriteError> {
        if matches!(outcome.ended, Ended::NotDone(_)) {
            return Ok(());
        }
        let mut line = serde_json::to_vec(&row(prompts, index, outcome, input)).unwrap_or_default();
        line.push(b'\n');
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        (&*self.file).write_all(&line).map_err(|error| WriteError {
            path: self.path.clone(),
            error,
        })
    }
}

/// Opens the journal at `path` for appending (and, a regular file, for
/// reading back), and locks it: the lock is on the file, whatever name led
/// to it.
fn open_locked(path: &Path, special: bool) -> Result<(Arc<File>, Option<Held>), JournalError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(!special)
        .open(path)
        .map_err(|source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let file = Arc::new(file);
    if special {
        return Ok((file, None));
    }
    match locks::try_lock(&file) {
        Ok(Some(held)) => Ok((file, Some(held))),
        Ok(None) => Err(JournalError::Busy {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(JournalError::Lock {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Prompt `index`'s journal row.
pub fn row(
    prompts: &Prompts,
    index: usize,
    outcome: &Outcome,
    input: Option<&Map<String, Value>>,
) -> Value {
    let mut row = Map::new();
    row.insert("id".into(), prompts.id(index));
    row.insert("line".into(), prompts.line(index).into());
    row.insert(
        "prompt_hash".into(),
        format!("{:016x}", prompts.hash(index)).into(),
    );
    let status = match outcome.ended {
        Ended::Answered(_) => "answered",
        Ended::Failed(_) => "failed",
        Ended::NotDone(_) => "not_done",
    };
    row.insert("status".into(), status.into());
    if let Value::Object(fields) = outcome.json_line() {
        row.extend(fields.into_iter().filter(|(key, _)| key != "request"));
    }
    if let Some(input) = input.filter(|input| !input.is_empty()) {
        row.insert("input".into(), Value::Object(input.clone()));
    }
    Value::Object(row)
}

/// `answers.jsonl.1` (or `.2`, ...): the first name not taken.
fn aside(path: &Path) -> PathBuf {
    (1u32..)
        .map(|n| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.with_extension("old"))
}

fn ends_with_newline(file: &File) -> std::io::Result<bool> {
    let mut file = file;
    if file.seek(SeekFrom::End(0))? == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Reads an earlier run's rows (through the locked handle: the very file
/// this run will append to) and matches them to the prompts. Returns what
/// stands, and how many lines were torn.
fn read_back(
    file: &File,
    path: &Path,
    prompts: &Prompts,
) -> Result<(Reconciled, usize), JournalError> {
    let read_error = |source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let foreign = |reason: &str| JournalError::Foreign {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut matcher = Matcher::new(prompts);
    let (mut rows, mut torn) = (0usize, 0usize);
    // Whether the last line read was cut short (no newline): a death mid-write.
    let mut unterminated = false;
    let mut reader = file;
    reader.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let mut reader = BufReader::new(reader);
    let mut bytes = Vec::new();
    let mut offset = 0u64;
    loop {
        bytes.clear();
        let read = reader.read_until(b'\n', &mut bytes).map_err(read_error)?;
        if read == 0 {
            break;
        }
        let start = offset;
        offset += read as u64;
        unterminated = !bytes.ends_with(b"\n");
        let Some(row) = parse_row(&bytes, start) else {
            if !bytes.trim_ascii().is_empty() {
                torn += 1;
            }
            continue;
        };
        rows += 1;
        matcher.row(row);
    }
    let matched = matcher.finish();
    if rows == 0 && torn == 1 && unterminated {
        // The first row of an earlier run, cut short: nothing was kept.
        return Ok((matched, torn));
    }
    if rows == 0 {
        return Err(foreign("no line of it is an answer row of this program"));
    }
    if matched.known == 0 {
        return Err(foreign(
            "none of its ids is in the prompts, and none of its answers answers one of them",
        ));
    }
    Ok((matched, torn))
}

/// Files again, under its new id, each answer that followed its prompt:
/// a copy of its row with the new `id` and `line`, and `moved_from`.
fn refile(file: &File, prompts: &Prompts, matched: &Reconciled) -> std::io::Result<()> {
    for moved in &matched.moved {
        let mut reader = file;
        reader.seek(SeekFrom::Start(moved.offset))?;
        let mut bytes = Vec::new();
        BufReader::new(reader).read_until(b'\n', &mut bytes)?;
        let Ok(mut row) = serde_json::from_slice::<Map<String, Value>>(&bytes) else {
            continue;
        };
        let from: Map<String, Value> = ["id", "line"]
            .into_iter()
            .filter_map(|key| Some((key.to_string(), row.get(key)?.clone())))
            .collect();
        row.insert("id".into(), prompts.id(moved.index));
        row.insert("line".into(), prompts.line(moved.index).into());
        row.insert("moved_from".into(), Value::Object(from));
        let mut line = serde_json::to_vec(&row).unwrap_or_default();
        line.push(b'\n');
        (&*file).write_all(&line)?;
    }
    Ok(())
}

/// A row as the matcher reads it; `None` for a line that is not a whole row.
fn parse_row(bytes: &[u8], offset: u64) -> Option<Row> {
    let row: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
    let id = row
        .get("id")
        .filter(|id| id.is_string() || id.is_number())?;
    let hash = row.get("prompt_hash")?.as_str()?;
    let ok = row.get("ok")?.as_bool()?;
    Some(Row {
        key: id.to_string(),
        hash: u64::from_str_radix(hash, 16).ok(),
        ok,
        line: row.get("line").and_then(Value::as_u64),
        offset,
    })
}

/// This process's command line, quoted for a POSIX shell: the exact command
/// that continues a stopped run. An argument that is not UTF-8 (a file name,
/// say) is shown with U+FFFD where its bytes were not text, rather than
/// panicking as `std::env::args` would.
pub fn command_line() -> String {
    quote_command(std::env::args_os().map(|arg| arg.to_string_lossy().into_owned()))
}

/// `args` as one shell command line, with the password of a `--redis` URL
/// shown as `***` (a secret is never printed; the user knows their own), and
/// without `--restart`: run again, it would set aside the very journal the
/// command is meant to continue, and send every answered prompt again.
fn quote_command(args: impl Iterator<Item = String>) -> String {
    let mut after_redis = false;
    args.filter(|arg| arg != "--restart")
        .map(|arg| {
            let arg = if after_redis {
                redact_url(&arg)
            } else if let Some(url) = arg.strip_prefix("--redis=") {
                format!("--redis={}", redact_url(url))
            } else {
                arg
            };
            after_redis = arg == "--redis";
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::outcome::Outcome;

    fn prompts(dir: &Path, text: &str) -> Prompts {
        let path = dir.join("p.jsonl");
        std::fs::write(&path, text).expect("written");
        Prompts::read(&path).expect("indexes")
    }

    const RESTART: Policy = Policy {
        restart: true,
        resend_changed: false,
    };

    fn failed(index: usize) -> Outcome {
        Outcome {
            index,
            attempts: Vec::new(),
            ended: Ended::Failed(common::Error::Config("refused".into())),
        }
    }

    #[test]
    fn rows_are_appended_and_read_back_with_a_torn_line_skipped() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "{\"prompt\":\"a\",\"id\":\"x\",\"k\":1}\nb\n");
        let out = dir.path().join("out.jsonl");
        let (journal, resume) = Journal::open(&out, &p, Policy::default()).expect("opens");
        assert_eq!(resume.answered, 0);
        journal.append(&p, 0, &failed(0), None).expect("written");
        journal
            .append(&p, 1, &Outcome::not_done(1, "stop"), None)
            .expect("nothing to write");
        drop(journal);
        // A row that says ok, as a finished answer would, then a torn line.
        let mut text = std::fs::read_to_string(&out).expect("read");
        assert_eq!(text.lines().count(), 1, "not-done rows are not written");
        let ok = text.replace("\"ok\":false", "\"ok\":true");
        text.push_str(&ok);
        text.push_str("{\"id\":2,\"li");
        std::fs::write(&out, &text).expect("written");
        let (journal, resume) = Journal::open(&out, &p, Policy::default()).expect("resumes");
        assert_eq!((resume.answered, resume.torn), (1, 1));
        assert_eq!(resume.done, [true, false]);
        journal.append(&p, 1, &failed(1), None).expect("written");
        let after = std::fs::read_to_string(&out).expect("read");
        assert!(after.starts_with(&text), "nothing erased");
        assert!(after.ends_with("}\n") && after.contains("li\n{"), "{after}");
    }

    #[test]
    fn a_journal_of_other_prompts_is_refused_and_restart_keeps_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "{\"prompt\":\"a\",\"id\":\"x\"}\n");
        let out = dir.path().join("out.jsonl");
        std::fs::write(
            &out,
            "{\"id\":\"x\",\"prompt_hash\":\"0000000000000000\",\"ok\":true}\n",
        )
        .expect("written");
        let error = Journal::open(&out, &p, Policy::default()).expect_err("another prompt");
        assert!(
            matches!(&error, JournalError::Changed { count: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--resend-changed"), "{error}");
        let resend = Policy {
            resend_changed: true,
            ..Policy::default()
        };
        let (_, resume) = Journal::open(&out, &p, resend).expect("sends it again");
        assert_eq!(resume.todo(), [0]);
        std::fs::write(&out, "{\"id\":\"y\",\"prompt_hash\":\"0\",\"ok\":true}\n")
            .expect("written");
        let error = Journal::open(&out, &p, Policy::default()).expect_err("no id in common");
        assert!(error.to_string().contains("none of its ids"), "{error}");
        assert!(error.to_string().contains("--restart"), "{error}");
        std::fs::write(&out, "Why?\n").expect("written");
        assert!(
            Journal::open(&out, &p, Policy::default()).is_err(),
            "not a journal"
        );
        std::fs::write(&out, "{\"id\":\"x\",\"li").expect("written");
        let (_, resume) =
            Journal::open(&out, &p, Policy::default()).expect("a first row cut short");
        assert_eq!((resume.answered, resume.torn), (0, 1));
        std::fs::write(&out, "Why?\n").expect("written");
        let (_, resume) = Journal::open(&out, &p, RESTART).expect("restarts");
        let kept = resume.kept_aside.expect("kept aside");
        assert_eq!(std::fs::read_to_string(kept).expect("kept"), "Why?\n");
    }

    #[test]
    fn two_runs_may_not_write_one_journal_at_once() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "a\nb\n");
        let out = dir.path().join("out.jsonl");
        let first = Journal::open(&out, &p, Policy::default()).expect("opens");
        let second = Journal::open(&out, &p, Policy::default()).map(|_| ());
        assert!(
            matches!(&second, Err(JournalError::Busy { .. })),
            "{second:?}"
        );
        let line = second.expect_err("busy").to_string();
        assert!(line.contains("another run is writing to"), "{line}");
        drop(first);
        Journal::open(&out, &p, Policy::default()).expect("free again once the first run ends");
    }

    #[cfg(unix)]
    #[test]
    fn a_journal_is_one_run_s_through_any_name() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "a\nb\n");
        let out = dir.path().join("out.jsonl");
        let first = Journal::open(&out, &p, Policy::default()).expect("opens");
        let symlink = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&out, &symlink).expect("a symlink");
        let hard = dir.path().join("hard.jsonl");
        std::fs::hard_link(&out, &hard).expect("a hard link");
        std::fs::create_dir(dir.path().join("a")).expect("a dir");
        let dots = dir.path().join("a/../out.jsonl");
        for alias in [&symlink, &hard, &dots] {
            let second = Journal::open(alias, &p, Policy::default()).map(|_| ());
            assert!(
                matches!(&second, Err(JournalError::Busy { .. })),
                "{}: {second:?}",
                alias.display()
            );
        }
        drop(first);
        Journal::open(&hard, &p, Policy::default()).expect("free once the first run ends");
    }

    #[test]
    fn an_answer_that_followed_its_line_is_filed_again_under_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "a\nb\nc\n");
        let out = dir.path().join("out.jsonl");
        let (journal, _) = Journal::open(&out, &p, Policy::default()).expect("opens");
        for index in 0..3 {
            let row = row(&p, index, &failed(index), None).to_string();
            let answered = row.replace("\"ok\":false", "\"ok\":true");
            (&*journal.file)
                .write_all(format!("{answered}\n").as_bytes())
                .expect("written");
        }
        drop(journal);
        // Line 1 removed: b is line 1 now, c line 2.
        let p = prompts(dir.path(), "b\nc\n");
        let (_, resume) = Journal::open(&out, &p, Policy::default()).expect("resumes");
        assert_eq!(resume.todo(), Vec::<usize>::new(), "{:?}", resume.notes);
        let notes = resume.notes.join("\n");
        assert!(
            notes.contains("line 2 is now line 1, line 3 is now line 2"),
            "{notes}"
        );
        let text = std::fs::read_to_string(&out).expect("read");
        let refiled: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|row| row.get("moved_from").is_some())
            .collect();
        assert_eq!(refiled.len(), 2, "{text}");
        assert_eq!(
            (refiled[0]["id"].as_u64(), refiled[0]["line"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(refiled[0]["moved_from"]["line"], 2);
        // The next run finds them by id: nothing moves again.
        let (_, resume) = Journal::open(&out, &p, Policy::default()).expect("resumes");
        assert!(resume.todo().is_empty());
        assert!(
            !resume.notes.join(" ").contains("is now"),
            "{:?}",
            resume.notes
        );
    }

    #[test]
    fn the_command_that_continues_is_quoted_keeps_no_password_and_does_not_restart() {
        let args = [
            "bulk",
            "--prompts",
            "my prompts.txt",
            "--redis",
            "redis://:hunter2@db:6379",
            "--redis=redis://u:pw@db",
            "--restart",
            "--prompt",
            "it's",
        ];
        let line = quote_command(args.iter().map(|a| a.to_string()));
        assert_eq!(
            line,
            r"bulk --prompts 'my prompts.txt' --redis 'redis://***@db:6379' '--redis=redis://***@db' --prompt 'it'\''s'"
        );
    }
}
