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
//! reader never sees half a file. Since the file is replaced, the lock cannot
//! be on the file itself: it is on `.lock` beside the file a name leads to
//! (every link followed, see [`crate::paths::canonical`]), so that two names
//! of one limits file share one lock, and a symbolic link stays a link (a
//! hard link does not survive the first rename: each name is then a file of
//! its own). The wait for the lock is bounded, and a second Ctrl-C ends it (see
//! [`crate::locks`]): saving what a run learned never hangs it.
//!
//! The file says what it is: `"format": "gemini-tutorial limits, version
//! 1"`. A file that does not (a prompts file given to `--limits-file` by
//! mistake, any other JSON) is refused with one line, and left as it is:
//! only a file this program wrote is ever replaced. A file of the version
//! before the marker (an object with `entries` only) is read as one. A file
//! of ours that is damaged is a cache of what the server said, not a source
//! of truth: the run says so in one line and starts afresh.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    locks::{self, Unlocked},
    paths,
};

/// The environment variable that overrides where the state file is.
pub const FILE_VAR: &str = "GEMINI_LIMITS_FILE";

/// What the file says it is, in its `format` field.
pub const FORMAT: &str = "gemini-tutorial limits, version 1";

/// The start of [`FORMAT`] every version shares.
const FORMAT_NAME: &str = "gemini-tutorial limits";

/// The largest file read as a limits file: far more than a day's books of
/// many projects and models, and a bound on what a wrong `--limits-file`
/// (a data file, say) costs to look at.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How long a change waits for another process's lock before it gives up
/// (the work under the lock takes milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(5);

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
#[derive(Debug, Serialize, Deserialize)]
struct Book {
    /// [`FORMAT`] (absent from files of the version before).
    #[serde(default)]
    format: String,
    #[serde(default)]
    entries: BTreeMap<String, Entry>,
}

impl Default for Book {
    fn default() -> Book {
        Book {
            format: FORMAT.into(),
            entries: BTreeMap::new(),
        }
    }
}

/// What a file holds, read as a limits file.
#[derive(Debug)]
enum Contents {
    /// A limits file (or nothing yet).
    Ours(Book),
    /// A limits file of ours that does not parse: a fresh start.
    Damaged(String),
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// No state directory on this platform, and no `--limits-file`.
    #[error(
        "no state directory is known on this system: give the limits file with --limits-file PATH (or {FILE_VAR})"
    )]
    NoStateDir,
    /// The file holds something else than limits: it is never replaced.
    #[error("{what} {} is not a limits file ({why}): it is left as it is; give a file of its own with --limits-file PATH (or {FILE_VAR}; `off` remembers nothing)", path.display())]
    NotOurs {
        /// Who named it (`--limits-file`, `GEMINI_LIMITS_FILE`, ...).
        what: String,
        /// Where.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// Another process held the file's lock for too long (or the run was
    /// told to quit while it waited).
    #[error("cannot lock the limits file {}: {why}", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
        /// Why not.
        why: Unlocked,
    },
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
    /// How long a change waits for the lock.
    lock_wait: Duration,
    /// The run's stop: a forced stop (a second Ctrl-C) ends a wait for the lock.
    stop: Option<Shutdown>,
}

/// The lock file of the limits file at `path`: `.lock` beside the file the
/// name leads to, so that every name of one limits file shares one lock.
pub fn lock_path_of(path: &Path) -> PathBuf {
    sibling(&paths::canonical(path), ".lock")
}

/// Refuses a file that is not a limits file (`what` says who named it): it
/// would be replaced at the end of the run. No file, or an empty one, is fine.
pub fn refuse_foreign(what: &str, path: &Path) -> Result<(), StateFileError> {
    // Missing, a directory, or unreadable: said when it is used.
    let Ok(text) = read_bounded(path) else {
        return Ok(());
    };
    match text.map(|text| recognise(&text)) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) | Err(why) => Err(StateFileError::NotOurs {
            what: what.into(),
            path: path.to_path_buf(),
            why,
        }),
    }
}

/// The file's bytes, or why it is too large to be a limits file.
fn read_bounded(path: &Path) -> std::io::Result<Result<Vec<u8>, String>> {
    let len = fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        return Ok(Err(format!(
            "it holds {} MB, more than any limits file",
            len / (1024 * 1024)
        )));
    }
    fs::read(path).map(Ok)
}

/// Reads `bytes` as a limits file: ours (or empty), ours but damaged, or
/// not ours at all (why not).
fn recognise(bytes: &[u8]) -> Result<Contents, String> {
    if bytes.trim_ascii().is_empty() {
        return Ok(Contents::Ours(Book::default()));
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Err("it is not JSON".into());
    };
    let Value::Object(object) = value else {
        return Err("it is JSON, but not an object".into());
    };
    let earlier_version = object.len() == 1 && object.get("entries").is_some_and(Value::is_object);
    match object.get("format") {
        Some(Value::String(format)) if format == FORMAT => {}
        Some(Value::String(format)) if format.starts_with(FORMAT_NAME) => {
            return Err(format!(
                "it is in the format {format:?}, of another version of this program"
            ));
        }
        Some(_) => return Err("its \"format\" is not a limits file's".into()),
        None if earlier_version => {}
        None => {
            return Err(format!(
                "it is a JSON object without the \"format\": \"{FORMAT}\" of one"
            ));
        }
    }
    match serde_json::from_value::<Book>(Value::Object(object)) {
        Ok(book) => Ok(Contents::Ours(book)),
        Err(error) => Ok(Contents::Damaged(error.to_string())),
    }
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
            lock_wait: LOCK_WAIT,
            stop: None,
        }
    }

    /// The same file, whose wait for the lock a forced stop of `shutdown`
    /// (a second Ctrl-C) ends at once.
    pub fn stopped_by(mut self, shutdown: &Shutdown) -> StateFile {
        self.stop = Some(shutdown.clone());
        self
    }

    /// The same file, waiting at most `wait` for another process's lock.
    pub fn with_lock_wait(mut self, wait: Duration) -> StateFile {
        self.lock_wait = wait;
        self
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
        let lock_file = Arc::new(self.lock_file()?);
        let forced = || self.stop.as_ref().is_some_and(Shutdown::is_forced);
        let _held = locks::lock_within(&lock_file, self.lock_wait, forced).map_err(|why| {
            StateFileError::Locked {
                path: self.path.clone(),
                why,
            }
        })?;
        let mut book = self.read()?;
        // A file of the version before the marker is written with it.
        book.format = FORMAT.into();
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

    /// The whole file; a missing file is an empty book, and so is a
    /// damaged one of ours (said in one line: it is only a cache). A file
    /// that is not a limits file is an error: it is never replaced.
    fn read(&self) -> Result<Book, StateFileError> {
        let bytes = match read_bounded(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Book::default()),
            Err(e) => return Err(self.io("read")(e)),
        };
        match bytes.and_then(|bytes| recognise(&bytes)) {
            Ok(Contents::Ours(book)) => Ok(book),
            Ok(Contents::Damaged(error)) => {
                common::terminal::diagnostic(format_args!(
                    "the limits file {} is damaged ({error}): starting afresh; it is rewritten at the end of the run",
                    self.path.display()
                ));
                Ok(Book::default())
            }
            Err(why) => Err(StateFileError::NotOurs {
                what: "the limits file".into(),
                path: self.path.clone(),
                why,
            }),
        }
    }

    /// The lock file (see [`lock_path_of`]).
    pub fn lock_path(&self) -> PathBuf {
        lock_path_of(&self.path)
    }

    /// The file the lock is taken on (created if need be).
    fn lock_file(&self) -> Result<File, StateFileError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(self.io("create the directory of"))?;
        }
        let lock_path = self.lock_path();
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
    ///
    /// The file renamed over is the one the name leads to: a symbolic link
    /// to the limits file stays a link to the new file.
    fn write(&self, book: &Book) -> Result<(), StateFileError> {
        let target = paths::canonical(&self.path);
        let temp = sibling(&target, &format!(".{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(book).unwrap_or_default();
        let written = File::create(&temp).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(error) = written.and_then(|()| fs::rename(&temp, &target)) {
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
    fn a_damaged_file_of_ours_is_a_fresh_start_not_a_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("limits.json");
        fs::write(&path, format!("{{\"format\":\"{FORMAT}\",\"entries\":5}}")).expect("written");
        let state = StateFile::new(path.clone(), "p", "u", "m");
        assert_eq!(state.load().expect("fresh"), Entry::default());
        state.update(|e| e.sent_ms.push(5)).expect("rewritten");
        assert_eq!(state.load().expect("read").sent_ms, [5]);
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains(FORMAT), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_limits_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("questions.txt");
        for text in [
            "Why is the sky blue?\nWhat is rust?\n",
            "{not json",
            "[1, 2]",
            "{\"entries\": {}, \"name\": \"mine\"}",
            "{\"settings\": {\"theme\": \"dark\"}}",
            "{\"format\": \"gemini-tutorial limits, version 9\", \"entries\": {}}",
        ] {
            fs::write(&path, text).expect("written");
            let state = StateFile::new(path.clone(), "p", "u", "m");
            let error = state.load().expect_err(text);
            assert!(matches!(error, StateFileError::NotOurs { .. }), "{error}");
            let line = error.to_string();
            assert!(
                line.contains("is not a limits file") && !line.contains('\n'),
                "{line}"
            );
            assert!(state.update(|e| e.sent_ms.push(1)).is_err());
            assert!(refuse_foreign("--limits-file", &path).is_err());
            assert_eq!(fs::read_to_string(&path).expect("read"), text, "untouched");
        }
        fs::write(&path, "").expect("written");
        assert!(
            refuse_foreign("--limits-file", &path).is_ok(),
            "empty: nothing to lose"
        );
        assert!(refuse_foreign("--limits-file", &dir.path().join("new.json")).is_ok());
    }

    #[test]
    fn a_file_of_the_version_before_the_marker_is_read_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("limits.json");
        let state = StateFile::new(path.clone(), "p", "u", "m");
        let old = format!(
            "{{\"entries\": {{\"{}\": {{\"learned\": [], \"sent_ms\": [7]}}}}}}",
            state.key
        );
        fs::write(&path, old).expect("written");
        assert!(refuse_foreign("GEMINI_LIMITS_FILE", &path).is_ok());
        assert_eq!(state.load().expect("read").sent_ms, [7]);
        state.update(|e| e.sent_ms.push(8)).expect("written");
        assert_eq!(state.load().expect("read").sent_ms, [7, 8]);
        assert!(fs::read_to_string(&path).expect("read").contains(FORMAT));
    }

    #[test]
    fn a_lock_held_elsewhere_is_waited_for_a_bounded_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("limits.json");
        let state = StateFile::new(path, "p", "u", "m").with_lock_wait(Duration::from_millis(50));
        state.update(|e| e.sent_ms.push(1)).expect("written");
        let holder = Arc::new(state.lock_file().expect("opened"));
        let held = locks::try_lock(&holder).expect("lockable").expect("free");
        let error = state.update(|e| e.sent_ms.push(2)).expect_err("locked");
        assert!(matches!(error, StateFileError::Locked { .. }), "{error}");
        drop(held);
        drop(holder);
        state.update(|e| e.sent_ms.push(2)).expect("free again");
        assert_eq!(state.load().expect("read").sent_ms, [1, 2]);
    }

    #[cfg(unix)]
    #[test]
    fn every_name_of_one_limits_file_shares_its_lock_and_a_link_stays_a_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("limits.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).expect("a symlink");
        fs::create_dir(dir.path().join("a")).expect("a dir");
        let names = [
            path.clone(),
            link.clone(),
            dir.path().join("a/../limits.json"),
        ];
        let locks: Vec<PathBuf> = names
            .iter()
            .map(|name| StateFile::new(name.clone(), "p", "u", "m").lock_path())
            .collect();
        assert!(locks.iter().all(|lock| *lock == locks[0]), "{locks:?}");
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let state = StateFile::new(names[w as usize].clone(), "p", "u", "m");
                std::thread::spawn(move || {
                    for i in 0..20 {
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
        let state = StateFile::new(link.clone(), "p", "u", "m");
        assert_eq!(state.load().expect("read").sent_ms.len(), 60);
        assert!(
            fs::symlink_metadata(&link)
                .expect("there")
                .file_type()
                .is_symlink()
        );
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
