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
//! * **One run at a time.** A run holds a lock on `FILE.lock` beside the
//!   journal until it ends: a second run with the same `--output` is refused
//!   with one line, instead of both sending the same prompts.
//! * **Matched to its prompts.** Each row carries the prompt's id, line and
//!   a fingerprint of its text: a journal with no id in common with the
//!   prompts file, or another prompt under one of its ids, is an error
//!   instead of a silent mix.
//!
//! Rows carry `id`, `line`, `prompt_hash`, `ok` and `status`, then what the
//! terminal's `--json` lines carry (answer text, finish reason, tokens,
//! attempts, latency, or the error), and the input line's other fields under
//! `input`. An ordered copy is one command:
//! `jq -c -s 'sort_by(.line)[]' answers.jsonl > ordered.jsonl`.

use std::{
    collections::HashMap,
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
};
use serde_json::{Map, Value};

use crate::prompts::Prompts;

/// Why the journal cannot be used; nothing has been sent when one of these happens.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// `--output` names a file the run reads or writes for another purpose.
    #[error("--output {} is the same file as the {what} {}: write the answers to a file of their own", output.display(), other.display())]
    SameFile {
        /// The output.
        output: PathBuf,
        /// What the other file is (`prompts file`, `--timeline`, ...).
        what: &'static str,
        /// The other file, as given.
        other: PathBuf,
    },
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
    #[error("another run is writing to {} now (it holds {}): wait for it to end, or give another --output", path.display(), lock.display())]
    Busy {
        /// The journal.
        path: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The existing file is not this prompts file's journal.
    #[error("{} does not belong to these prompts ({reason}): give another --output, or --restart to start over (the old file is kept aside)", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
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
}

/// The open journal: one row per outcome, appended as each is known.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    /// Held for the run: another run on the same file is refused.
    _run_lock: Option<fd_lock::RwLock<File>>,
}

impl Resume {
    /// The prompts still to send: every one without an answer, in order.
    pub fn todo(&self) -> Vec<usize> {
        (0..self.done.len()).filter(|&i| !self.done[i]).collect()
    }
}

/// The run's journal at `output`: checked against the run's other files
/// (`others`: what each one is, and where; the prompts file is added here),
/// read back (or moved aside first when `restart`), open for appending.
pub fn open(
    output: &Path,
    restart: bool,
    others: &[(&'static str, &Path)],
    prompts: &Prompts,
) -> Result<(Arc<Journal>, Resume), JournalError> {
    let prompts_file = prompts.path().map(|p| ("prompts file", p));
    let others: Vec<(&'static str, &Path)> = prompts_file
        .into_iter()
        .chain(others.iter().copied())
        .collect();
    refuse_inputs(output, &others)?;
    let (journal, resume) = Journal::open(output, prompts, restart)?;
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

/// Refuses an `--output` that is one of the run's other files.
pub fn refuse_inputs(output: &Path, others: &[(&'static str, &Path)]) -> Result<(), JournalError> {
    for &(what, other) in others {
        if same_file(output, other) {
            return Err(JournalError::SameFile {
                output: output.to_path_buf(),
                what,
                other: other.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Whether two paths name one file: the same canonical path (symbolic links
/// followed, `./` and `..` resolved), or the same inode (hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
    }
    canonical(a) == canonical(b)
}

/// The canonical form of a path whose file may not exist yet.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(path) = path.canonicalize() {
        return path;
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match (parent.canonicalize(), path.file_name()) {
        (Ok(parent), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    }
}

impl Journal {
    /// Opens the journal at `path` for `prompts`: reads what an earlier run
    /// wrote (unless `restart`, which moves it aside first), then opens it
    /// for appending.
    pub fn open(
        path: &Path,
        prompts: &Prompts,
        restart: bool,
    ) -> Result<(Journal, Resume), JournalError> {
        let run_lock = lock_for_the_run(path)?;
        let mut resume = Resume {
            done: vec![false; prompts.len()],
            ..Resume::default()
        };
        // Only a regular file is read back: /dev/null or a pipe is written only.
        let existing = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0);
        if existing && restart {
            let to = aside(path);
            std::fs::rename(path, &to).map_err(|source| JournalError::KeepAside {
                path: path.to_path_buf(),
                to: to.clone(),
                source,
            })?;
            resume.kept_aside = Some(to);
        } else if existing {
            read_back(path, prompts, &mut resume)?;
        }
        let open_error = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_error)?;
        if existing && !restart && !ends_with_newline(path).map_err(open_error)? {
            // A torn last line stays (nothing is erased), on a line of its own.
            file.write_all(b"\n").map_err(open_error)?;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new(file),
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
        let written = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&line);
        written.map_err(|error| WriteError {
            path: self.path.clone(),
            error,
        })
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
        row.extend(fields.into_iter().filter(|(key, _)| key != "index"));
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

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    let mut file = File::open(path)?;
    if file.seek(SeekFrom::End(0))? == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Reads an earlier run's rows and marks the prompts they answered.
fn read_back(path: &Path, prompts: &Prompts, resume: &mut Resume) -> Result<(), JournalError> {
    let read_error = |source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let foreign = |reason: String| JournalError::Foreign {
        path: path.to_path_buf(),
        reason,
    };
    let index_of: HashMap<String, usize> =
        (0..prompts.len()).map(|i| (prompts.key(i), i)).collect();
    let (mut rows, mut known) = (0usize, 0usize);
    // Whether the last line read was cut short (no newline): a death mid-write.
    let mut unterminated = false;
    let mut reader = BufReader::new(File::open(path).map_err(read_error)?);
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        if reader.read_until(b'\n', &mut bytes).map_err(read_error)? == 0 {
            break;
        }
        unterminated = !bytes.ends_with(b"\n");
        let Some((key, hash, ok)) = parse_row(&bytes) else {
            if !bytes.trim_ascii().is_empty() {
                resume.torn += 1;
            }
            continue;
        };
        rows += 1;
        let Some(&index) = index_of.get(&key) else {
            continue;
        };
        known += 1;
        if hash != format!("{:016x}", prompts.hash(index)) {
            return Err(foreign(format!(
                "its id {key} answered another prompt than line {} holds now",
                prompts.line(index)
            )));
        }
        if ok && !resume.done[index] {
            resume.done[index] = true;
            resume.answered += 1;
        }
    }
    if rows == 0 && resume.torn == 1 && unterminated {
        // The first row of an earlier run, cut short: nothing was kept.
        return Ok(());
    }
    if rows == 0 {
        return Err(foreign(
            "no line of it is an answer row of this program".into(),
        ));
    }
    if known == 0 {
        return Err(foreign("none of its ids is in the prompts".into()));
    }
    Ok(())
}

/// Takes the lock that says "a run is writing this journal": an advisory
/// lock on `FILE.lock`, held as long as the returned handle lives (the
/// journal keeps it for the run). The system releases it when the file is
/// closed, however the process ends (`kill -9` included), so a stale lock
/// cannot block the next run. The lock file itself stays: it is empty, and
/// removing it could let two runs lock two different files.
///
/// `None` for a journal that is not a regular file (`/dev/null`, a pipe):
/// it holds no answers to protect.
fn lock_for_the_run(path: &Path) -> Result<Option<fd_lock::RwLock<File>>, JournalError> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Ok(None);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| JournalError::Open {
            path: lock_path.clone(),
            source,
        })?;
    let mut lock = fd_lock::RwLock::new(file);
    match lock.try_write() {
        // Not unlocked when the guard goes: closing the file (when the
        // journal is dropped, or the process ends) releases the lock.
        Ok(guard) => std::mem::forget(guard),
        Err(_) => {
            return Err(JournalError::Busy {
                path: path.to_path_buf(),
                lock: lock_path,
            });
        }
    }
    Ok(Some(lock))
}

/// A row's id (compact JSON), prompt fingerprint and whether it holds an
/// answer; `None` for a line that is not a whole row.
fn parse_row(bytes: &[u8]) -> Option<(String, String, bool)> {
    let row: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
    let id = row
        .get("id")
        .filter(|id| id.is_string() || id.is_number())?;
    let hash = row.get("prompt_hash")?.as_str()?;
    let ok = row.get("ok")?.as_bool()?;
    Some((id.to_string(), hash.to_string(), ok))
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
        let (journal, resume) = Journal::open(&out, &p, false).expect("opens");
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
        let (journal, resume) = Journal::open(&out, &p, false).expect("resumes");
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
        let error = Journal::open(&out, &p, false).expect_err("another prompt");
        assert!(error.to_string().contains("--restart"), "{error}");
        std::fs::write(&out, "{\"id\":\"y\",\"prompt_hash\":\"0\",\"ok\":true}\n")
            .expect("written");
        let error = Journal::open(&out, &p, false).expect_err("no id in common");
        assert!(error.to_string().contains("none of its ids"), "{error}");
        std::fs::write(&out, "Why?\n").expect("written");
        assert!(Journal::open(&out, &p, false).is_err(), "not a journal");
        std::fs::write(&out, "{\"id\":\"x\",\"li").expect("written");
        let (_, resume) = Journal::open(&out, &p, false).expect("a first row cut short");
        assert_eq!((resume.answered, resume.torn), (0, 1));
        std::fs::write(&out, "Why?\n").expect("written");
        let (_, resume) = Journal::open(&out, &p, true).expect("restarts");
        let kept = resume.kept_aside.expect("kept aside");
        assert_eq!(std::fs::read_to_string(kept).expect("kept"), "Why?\n");
    }

    #[test]
    fn two_runs_may_not_write_one_journal_at_once() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "a\nb\n");
        let out = dir.path().join("out.jsonl");
        let first = Journal::open(&out, &p, false).expect("opens");
        let second = Journal::open(&out, &p, false).map(|_| ());
        assert!(
            matches!(&second, Err(JournalError::Busy { .. })),
            "{second:?}"
        );
        let line = second.expect_err("busy").to_string();
        assert!(line.contains("another run is writing to"), "{line}");
        drop(first);
        Journal::open(&out, &p, false).expect("free again once the first run ends");
    }

    #[test]
    fn the_output_may_not_be_an_input() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let prompts = dir.path().join("p.txt");
        std::fs::write(&prompts, "a\n").expect("written");
        let via_dots = dir.path().join(".").join("p.txt");
        assert!(refuse_inputs(&via_dots, &[("prompts file", &prompts)]).is_err());
        let svg = dir.path().join("t.svg");
        assert!(
            refuse_inputs(&svg, &[("--timeline file", &svg)]).is_err(),
            "not yet existing"
        );
        assert!(refuse_inputs(&dir.path().join("o.jsonl"), &[("prompts file", &prompts)]).is_ok());
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
