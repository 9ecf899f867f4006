//! A throwaway directory for a test's files (a `.env`, a prompts file, a journal).

use std::path::{Path, PathBuf};

/// A directory under the system temp dir, removed when dropped (tempfile
/// is not a dependency of the steps, and this is all they need).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates a fresh, empty directory named after `name`.
    pub fn new(name: &str) -> ScratchDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "gemini-tutorial-test-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the scratch directory is created");
        ScratchDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
