//! The state file: what bulk remembers between runs (the limits the server
//! named, and the day's spend) per project, base URL and model.
//!
//! A 429 says exactly what the limit is, and a run that learned it should not
//! have to learn it again with another 429 the next time; a run stopped by the
//! daily quota should not let the next run, the same day, spend a request to
//! find out. So the facts go into a small JSON file under the user's state
//! directory (`$XDG_STATE_HOME`, else `~/.local/state`, on Linux; the
//! platform's local data directory elsewhere), at
//! `gemini-tutorial/limits.json`. `--limits-file PATH` or
//! `GEMINI_LIMITS_FILE` put it elsewhere; `--forget-limits` forgets what it
//! holds for this project and model.
//!
//! An entry is keyed by the project fingerprint the Redis mode uses (a hash
//! of the key, never the key), the base URL and the model. It holds:
//!
//! * each limit learned: which, the limit, the `quotaId` it came from, when;
//! * when the requests the server counted were sent (unix milliseconds),
//!   back to the start of the current day;
//! * a per-day stop, if the day is spent, and when it lifts.
//!
//! Two processes may finish at the same moment, so every change is a
//! read-modify-write under an exclusive lock on `limits.json.lock` (an OS
//! file lock, through `fd-lock`), and the file is replaced atomically: written to a
//! temporary file in the same directory, then renamed over the old one. A
//! reader never sees half a file.
//!
//! The file is a cache of what the server said, not a source of truth: if it
//! cannot be read or parsed, the run says so in one line and starts afresh.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// The environment variable that overrides where the state file is.
pub const FILE_VAR: &str = "GEMINI_LIMITS_FILE";

/// What one project, base URL and model has taught us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The limits learned from the server, the latest per limit.
    #[serde(default)]
    pub learned: Vec<Learned>,
    /// When the requests the server counted were sent, in unix milliseconds,
    /// oldest first, back to the start of the current day.
    #[serde(default)]
    pub sent_ms: Vec<u64>,
    /// The day is spent until then (unix milliseconds).
    #[serde(default)]
    pub stopped_until_ms: Option<u64>,
}

/// One limit the server named in a 429.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// `rpm`, `tpm` or `rpd`.
    pub limit: String,
    /// The limit the server named (`quotaValue`).
    pub value: u32,
    /// The `quotaId` it came from.
    pub quota_id: String,
    /// When it was learned (unix milliseconds).
    pub learned_at_ms: u64,
}

/// The whole file: one entry per project, base URL and model.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    #[serde(default)]
    entries: BTreeMap<String, Entry>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// No state directory on this platform, and no `--limits-file`.
    #[error(
        "no state directory is known on this system: give the limits file with --limits-file PATH (or {FILE_VAR})"
    )]
    NoStateDir,
    /// The file or its directory could not be read or written.
    #[error("cannot {what} the limits file {}: {source}; fix it, or choose another with --limits-file", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The state file, and the entry of one project, base URL and model in it.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    key: String,
}

impl StateFile {
    /// The state file: `explicit` if given, else the default under the
    /// user's state directory.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, StateFileError> {
        if let Some(path) = explicit {
            return Ok(path.to_path_buf());
        }
        let base = dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .ok_or(StateFileError::NoStateDir)?;
        Ok(base.join("gemini-tutorial").join("limits.json"))
    }

    /// The entry of `project` (a fingerprint, never a key), `base_url` and
    /// `model` in the file at `path`.
    pub fn new(path: PathBuf, project: &str, base_url: &str, model: &str) -> StateFile {
        let model = model.strip_prefix("models/").unwrap_or(model);
        StateFile {
            path,
            key: format!("{project} {} {model}", base_url.trim_end_matches('/')),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file holds for this entry (empty if there is no file yet).
    pub fn load(&self) -> Result<Entry, StateFileError> {
        Ok(self.read()?.entries.remove(&self.key).unwrap_or_default())
    }

    /// Changes this entry under the lock, and writes the file atomically.
    /// `change` gets the entry as it is on disk now (another process may
    /// have written since we loaded it).
    pub fn update(&self, change: impl FnOnce(&mut Entry)) -> Result<(), StateFileError> {
        let mut lock = fd_lock::RwLock::new(self.lock_file()?);
        let _held = lock.write().map_err(self.io("lock"))?;
        let mut book = self.read()?;
        let entry = book.entries.entry(self.key.clone()).or_default();
        change(entry);
        if *entry == Entry::default() {
            book.entries.remove(&self.key);
        }
        self.write(&book)
    }

    /// Forgets this entry (`--forget-limits`).
    pub fn forget(&self) -> Result<(), StateFileError> {
        self.update(|entry| *entry = Entry::default())
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> StateFileError + '_ {
        move |source| StateFileError::Io {
            what,
            path: self.path.clone(),
            source,
        }
    }

    /// The whole file; a missing file is an empty book, and so is one that
    /// is not ours to understand (said in one line: it is only a cache).
    fn read(&self) -> Result<Book, StateFileError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Book::default()),
            Err(e) => return Err(self.io("read")(e)),
        };
        match serde_json::from_str(&text) {
            Ok(book) => Ok(book),
            Err(error) => {
                common::terminal::diagnostic(format_args!(
                    "the limits file {} is not valid ({error}): starting afresh; it is rewritten at the end of the run",
                    self.path.display()
                ));
                Ok(Book::default())
            }
        }
    }

    /// `FILE.lock`, the file the lock is taken on (created if need be).
    fn lock_file(&self) -> Result<File, StateFileError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(self.io("create the directory of"))?;
        }
        let lock_path = sibling(&self.path, ".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(self.io("lock"))?;
        Ok(file)
    }

    /// Writes `book` to a temporary file beside the real one, then renames
    /// it over: readers see the old file or the new one, never half of one.
    fn write(&self, book: &Book) -> Result<(), StateFileError> {
        let temp = sibling(&self.path, &format!(".{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(book).unwrap_or_default();
        let written = File::create(&temp).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(error) = written.and_then(|()| fs::rename(&temp, &self.path)) {
            let _ = fs::remove_file(&temp);
            return Err(self.io("write")(error));
        }
        Ok(())
    }
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// A time in unix milliseconds (0 before 1970).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long ago `ms` was (zero if in the future).
pub fn age(ms: u64) -> Duration {
    Duration::from_millis(now_ms().saturating_sub(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_per_project_url_and_model_and_can_be_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state").join("limits.json");
        let flash = StateFile::new(
            path.clone(),
            "abc",
            "http://127.0.0.1:9/",
            "gemini-2.5-flash",
        );
        let pro = StateFile::new(
            path.clone(),
            "abc",
            "http://127.0.0.1:9",
            "models/gemini-2.5-pro",
        );
        assert_eq!(flash.load().expect("no file yet"), Entry::default());
        flash
            .update(|entry| {
                entry.sent_ms = vec![1, 2, 3];
                entry.stopped_until_ms = Some(99);
            })
            .expect("written");
        pro.update(|entry| entry.sent_ms = vec![7])
            .expect("written");
        assert_eq!(flash.load().expect("read").sent_ms, [1, 2, 3]);
        assert_eq!(pro.load().expect("read").sent_ms, [7]);
        flash.forget().expect("forgotten");
        assert_eq!(flash.load().expect("read"), Entry::default());
        assert_eq!(pro.load().expect("read").sent_ms, [7]);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("listed")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_corrupt_file_is_a_fresh_start_not_a_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("limits.json");
        fs::write(&path, "{not json").expect("written");
        let state = StateFile::new(path, "p", "u", "m");
        assert_eq!(state.load().expect("fresh"), Entry::default());
        state.update(|e| e.sent_ms.push(5)).expect("rewritten");
        assert_eq!(state.load().expect("read").sent_ms, [5]);
    }

    #[test]
    fn two_writers_lose_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("limits.json");
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let state = StateFile::new(path.clone(), "p", "u", "m");
                std::thread::spawn(move || {
                    for i in 0..25 {
                        state
                            .update(|e| e.sent_ms.push(w * 100 + i))
                            .expect("written");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("no panic");
        }
        let state = StateFile::new(path, "p", "u", "m");
        assert_eq!(state.load().expect("read").sent_ms.len(), 100);
    }
}
