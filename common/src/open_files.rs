//! The operating system's limit on open files, raised at start.
//!
//! Every connection in flight is an open file descriptor. Many systems start
//! a process with a soft limit of 1024 (and a hard limit far above): a batch
//! that keeps more connections open than that fails with "Too many open
//! files" (EMFILE), which [`Error::OutOfFiles`](crate::Error::OutOfFiles)
//! names as such. A process may raise its own soft limit up to the hard one
//! without privileges, so the steps do that first thing, as servers
//! commonly do. The `rlimit` crate wraps the `getrlimit`/`setrlimit` calls
//! in a safe API (this workspace forbids `unsafe`).

/// Raises the soft limit on open files to the hard limit, where the OS allows.
///
/// Returns the limit now in force, or `None` where there is no such limit
/// or it could not be read. A refusal is not an error: the run goes on with
/// the limit it had, and an EMFILE, if it comes, says what it is.
pub fn raise_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => {
                tracing::debug!(limit, "open files limit");
                Some(limit)
            }
            Err(error) => {
                tracing::debug!(%error, "could not raise the open files limit");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let raised = super::raise_limit().expect("unix has a limit on open files");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        assert_eq!(soft, raised);
        assert!(soft <= hard);
        // On Linux nothing else caps it below the hard limit.
        if cfg!(target_os = "linux") {
            assert_eq!(soft, hard);
        }
    }
}
