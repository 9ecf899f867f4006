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

/// The JSON lines of a file a run wrote (a journal): every whole line that
/// parses, in file order; a torn last line is left out, as a resumed run
/// leaves it out. A missing file has none.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
