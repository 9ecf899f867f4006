//! The files a run names, told apart by what they are, not by how they are
//! spelled.
//!
//! A run reads the prompts file and writes three others: the `--output`
//! journal, the `--timeline` picture and the limits file (from
//! `--limits-file`, `GEMINI_LIMITS_FILE` or the default). A slip on the
//! command line (`--timeline` naming the prompts, `--limits-file` the
//! journal) must never let one of them overwrite another, and neither must a
//! second name for the same file: a symbolic link, a hard link, `a/../b`,
//! `./b`. So files are compared by identity ([`same_file`]): on Unix the
//! device and inode the name leads to, elsewhere (and for a file not created
//! yet) its canonical path, with every link followed ([`canonical`]).
//!
//! [`refuse_overlaps`] compares every file a run writes with every other file
//! it names, before anything is read back or sent, and says which two are one
//! in a line.

use std::path::{Component, Path, PathBuf};

/// How many symbolic links [`canonical`] follows before it gives up (as
/// Linux's `ELOOP` does at 40).
const MAX_LINKS: usize = 40;

/// One file a run names: what it is for, where, and whether the run writes it.
#[derive(Debug, Clone)]
pub struct Named {
    /// What the file is, as the user named it: `--output`, `--prompts`,
    /// `GEMINI_LIMITS_FILE`, ...
    pub what: String,
    /// The path as given.
    pub path: PathBuf,
    /// Whether the run writes it (the prompts file is only read).
    pub writes: bool,
}

impl Named {
    /// A file the run only reads.
    pub fn read(what: impl Into<String>, path: &Path) -> Named {
        Named {
            what: what.into(),
            path: path.to_path_buf(),
            writes: false,
        }
    }

    /// A file the run writes.
    pub fn written(what: impl Into<String>, path: &Path) -> Named {
        Named {
            what: what.into(),
            path: path.to_path_buf(),
            writes: true,
        }
    }
}

/// Two of a run's files are one, and the run would write over one with the other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} {} is the same file as {other_what} {}: one would be written over with the other; give each its own file (nothing was sent)",
    path.display(),
    other.display()
)]
pub struct SameFile {
    /// The file written.
    pub what: String,
    /// Where, as given.
    pub path: PathBuf,
    /// The file it collides with.
    pub other_what: String,
    /// Where, as given.
    pub other: PathBuf,
}

/// Refuses a run in which a file it writes is, through whatever name,
/// another file it names. Files that are not regular files (`/dev/null`, a
/// pipe) are never refused: writing one destroys nothing.
pub fn refuse_overlaps(files: &[Named]) -> Result<(), SameFile> {
    for (i, first) in files.iter().enumerate() {
        for second in &files[i + 1..] {
            if !(first.writes || second.writes) || !same_file(&first.path, &second.path) {
                continue;
            }
            if is_special(&first.path) {
                continue;
            }
            // The one written is named first: it is what would do the harm.
            let (written, other) = if second.writes && !first.writes {
                (second, first)
            } else {
                (first, second)
            };
            return Err(SameFile {
                what: written.what.clone(),
                path: written.path.clone(),
                other_what: other.what.clone(),
                other: other.path.clone(),
            });
        }
    }
    Ok(())
}

/// Whether `path` leads to something other than a regular file or a
/// directory (a device such as `/dev/null`, a pipe).
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Whether two paths lead to one file: the same device and inode on Unix
/// when both exist (hard links included), else the same [`canonical`] path.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return a.dev() == b.dev() && a.ino() == b.ino();
        }
    }
    canonical(a) == canonical(b)
}

/// The one absolute path a file is known by, whether or not it exists yet:
/// every symbolic link followed (a dangling one too: writing through it
/// creates its target), `.` and `..` resolved.
pub fn canonical(path: &Path) -> PathBuf {
    canonical_within(path, MAX_LINKS)
}

fn canonical_within(path: &Path, links: usize) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let absolute = absolute(path);
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return absolute;
    };
    let parent = canonical_within(parent, links);
    let joined = parent.join(name);
    match std::fs::read_link(&joined) {
        // A dangling link: the file it would create is its target's.
        Ok(target) if links > 0 => canonical_within(&parent.join(target), links - 1),
        _ => joined,
    }
}

/// `path` made absolute against the working directory, with `.` and `..`
/// resolved by name (the parts that exist were resolved by the caller).
fn absolute(path: &Path) -> PathBuf {
    let joined = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let mut clean = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_dots_and_spellings_are_the_same_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("out.jsonl");
        std::fs::write(&file, "x").expect("written");
        std::fs::create_dir(dir.path().join("a")).expect("a dir");
        let dots = dir.path().join("a").join("..").join("out.jsonl");
        let dot = dir.path().join(".").join("out.jsonl");
        assert!(same_file(&file, &dots));
        assert!(same_file(&file, &dot));
        #[cfg(unix)]
        {
            let symlink = dir.path().join("link.jsonl");
            std::os::unix::fs::symlink(&file, &symlink).expect("a symlink");
            assert!(same_file(&file, &symlink));
            let hard = dir.path().join("hard.jsonl");
            std::fs::hard_link(&file, &hard).expect("a hard link");
            assert!(same_file(&file, &hard));
            // A dangling link leads to the file writing through it creates.
            let dangling = dir.path().join("dangling.svg");
            std::os::unix::fs::symlink("later.svg", &dangling).expect("a symlink");
            assert!(same_file(&dangling, &dir.path().join("a/../later.svg")));
        }
        assert!(!same_file(&file, &dir.path().join("other.jsonl")));
        // Neither exists yet: the same name is the same file.
        assert!(same_file(
            &dir.path().join("new.svg"),
            &dir.path().join("a/.././new.svg")
        ));
    }

    #[test]
    fn a_written_file_may_be_no_other_file_of_the_run() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let prompts = dir.path().join("q.txt");
        std::fs::write(&prompts, "Why?\n").expect("written");
        let files = [
            Named::read("--prompts", &prompts),
            Named::written("--output", &dir.path().join("out.jsonl")),
            Named::written("--timeline", &dir.path().join("./q.txt")),
        ];
        let error = refuse_overlaps(&files).expect_err("the timeline is the prompts");
        assert_eq!(error.what, "--timeline");
        assert_eq!(error.other_what, "--prompts");
        let line = error.to_string();
        assert!(line.contains("same file as --prompts"), "{line}");
        assert!(refuse_overlaps(&files[..2]).is_ok());
        // Two files only read may be one; /dev/null may be named twice.
        let read_twice = [
            Named::read("--prompts", &prompts),
            Named::read("a copy", &prompts),
        ];
        assert!(refuse_overlaps(&read_twice).is_ok());
        #[cfg(unix)]
        {
            let null = Path::new("/dev/null");
            let sinks = [
                Named::written("--output", null),
                Named::written("--timeline", null),
            ];
            assert!(refuse_overlaps(&sinks).is_ok());
        }
    }
}
