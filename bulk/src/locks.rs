//! The locks that keep two runs from writing one file: taken on the file
//! itself, and never waited on without end.
//!
//! A lock taken on a *name* (`answers.jsonl.lock`) guards that name only: a
//! second run that reaches the same file through a symbolic link, a hard
//! link or `a/../answers.jsonl` takes another lock, and both runs send the
//! same prompts. So the lock is an advisory lock (`flock`, `LockFileEx`,
//! through `fd-lock`) on the open file: whatever name led to it, the file is
//! the same, and so is the lock. The system releases it when the file is
//! closed, however the process ends (`kill -9` included), so a stale lock
//! cannot block the next run.
//!
//! A wait for a lock is the other danger: a run that waited on a lock held
//! by itself (two handles on one file) would wait for ever, and neither
//! Ctrl-C nor SIGTERM could end a wait that blocks the thread. So there are
//! two ways to lock here, neither of which can hang: [`try_lock`] takes the
//! lock now or says who has it (the journal: one run at a time), and
//! [`lock_within`] tries again for a bounded time, giving up early when the
//! caller's `stop` says so (the limits file: a few milliseconds' work by
//! whoever holds it).

use std::{fs::File, io, sync::Arc, time::Duration};

use fd_lock::RwLock;

/// How often [`lock_within`] tries again.
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// An exclusive lock, held until this is dropped and every handle on the
/// file is closed.
#[derive(Debug)]
pub struct Held {
    _lock: RwLock<Arc<File>>,
}

/// Why [`lock_within`] has no lock.
#[derive(Debug, thiserror::Error)]
pub enum Unlocked {
    /// Someone else held it the whole time.
    #[error("still locked by another process after {} s", .0.as_secs_f64())]
    Busy(Duration),
    /// The caller asked to stop waiting (a second Ctrl-C, say).
    #[error("the wait for it was cut short by the stop")]
    Stopped,
    /// The system could not lock it at all.
    #[error("cannot lock it: {0}")]
    Io(io::Error),
}

/// Takes an exclusive lock on `file` now: `Ok(None)` if another handle
/// holds it (another run, or this one through another name).
pub fn try_lock(file: &Arc<File>) -> io::Result<Option<Held>> {
    let mut lock = RwLock::new(file.clone());
    match lock.try_write() {
        // Not unlocked when the guard goes: closing the file releases the
        // lock, so the lock lives as long as the file is open.
        Ok(guard) => std::mem::forget(guard),
        Err(error) if is_held_elsewhere(&error) => return Ok(None),
        Err(error) => return Err(error),
    }
    Ok(Some(Held { _lock: lock }))
}

/// Takes an exclusive lock on `file`, trying again until `within` has
/// passed, or sooner if `stop` says to give up. Blocks the thread meanwhile
/// (the work under such a lock is a read and a rename).
pub fn lock_within(
    file: &Arc<File>,
    within: Duration,
    stop: impl Fn() -> bool,
) -> Result<Held, Unlocked> {
    let started = std::time::Instant::now();
    loop {
        if let Some(held) = try_lock(file).map_err(Unlocked::Io)? {
            return Ok(held);
        }
        if stop() {
            return Err(Unlocked::Stopped);
        }
        if started.elapsed() >= within {
            return Err(Unlocked::Busy(within));
        }
        std::thread::sleep(RETRY_EVERY.min(within));
    }
}

/// Whether a failed lock means "someone holds it" (rather than "this file
/// cannot be locked").
fn is_held_elsewhere(error: &io::Error) -> bool {
    // ERROR_LOCK_VIOLATION, what LockFileEx says on Windows.
    error.kind() == io::ErrorKind::WouldBlock || (cfg!(windows) && error.raw_os_error() == Some(33))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Arc<File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("opened");
        Arc::new(file)
    }

    #[test]
    fn a_second_handle_on_the_file_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("out.jsonl");
        let first = open(&path);
        let held = try_lock(&first).expect("lockable").expect("free");
        // The same file through another name is the same lock.
        let again = open(&dir.path().join("./out.jsonl"));
        assert!(try_lock(&again).expect("lockable").is_none());
        drop(held);
        drop(first);
        assert!(try_lock(&again).expect("lockable").is_some());
    }

    #[test]
    fn a_wait_for_a_lock_is_bounded_and_can_be_stopped() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("limits.json.lock");
        let holder = open(&path);
        let _held = try_lock(&holder).expect("lockable").expect("free");
        let waiter = open(&path);
        let waited = lock_within(&waiter, Duration::from_millis(50), || false);
        assert!(matches!(waited, Err(Unlocked::Busy(_))), "{waited:?}");
        let stopped = lock_within(&waiter, Duration::from_secs(3600), || true);
        assert!(matches!(stopped, Err(Unlocked::Stopped)), "{stopped:?}");
    }
}
