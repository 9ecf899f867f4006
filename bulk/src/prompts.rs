//! The prompts of a run: N copies of `--prompt`, or one per line of `--prompts FILE`.
//!
//! Real batch jobs do not send the same question a hundred times: they have a
//! file of inputs. `--prompts` reads one prompt per line, and also accepts
//! JSON lines with a `"prompt"` field (what most data tools export), so
//! that a prompt can hold newlines. The two can be mixed; blank lines are
//! skipped.
//!
//! A JSON line may carry an `"id"` (a string or a number) and any other
//! fields: the id names the prompt in the `--output` journal, so the answers
//! join back to the user's own records and a stopped run knows what is left;
//! the other fields are echoed in the prompt's output row. A line without an
//! id is named by its line number (from 1, blank lines counted). Two lines
//! with the same id are an error before anything is sent.
//!
//! The file is checked whole before anything is sent (a typo in its name, or
//! a broken line 4,000, is one clear error line instead of a run that stops
//! halfway), but it is *indexed*, not held: each prompt is an offset into the
//! file, its id and a few numbers, about fifty bytes however long the prompt.
//! The text is read again only when the request is about to go, so a file of
//! a million prompts costs megabytes, not its size plus a copy per request.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};
use step4_ratelimit::estimate_tokens;

use serde_json::{Map, Value};

/// What Windows editors put before the first character of a UTF-8 file.
const BOM: char = '\u{feff}';

/// What to send, request by request.
#[derive(Debug)]
pub enum Prompts {
    /// The same prompt `n` times (`--prompt` and `-n`); request `i` is named `i + 1`.
    Repeat {
        /// The prompt.
        prompt: String,
        /// How many times to send it.
        n: usize,
        /// The prompt's [`fingerprint`].
        hash: u64,
    },
    /// One request per prompt of a file, in its order (`--prompts FILE`).
    File(PromptFile),
}

/// An indexed prompts file: where each prompt is, not the prompts themselves.
#[derive(Debug)]
pub struct PromptFile {
    path: PathBuf,
    file: File,
    entries: Vec<Entry>,
}

/// One prompt of the file: about fifty bytes, whatever the prompt's length.
#[derive(Debug)]
struct Entry {
    /// Where its line starts in the file, and how long it is (bytes).
    offset: u64,
    len: u32,
    /// Its line number, from 1.
    line: u32,
    /// The estimated input tokens, for the limiter (see [`estimate_tokens`]).
    tokens: u32,
    /// The prompt's [`fingerprint`], to match a journal row to its prompt.
    hash: u64,
    /// The id as compact JSON text (`"a-7"`, `7`): the key of the journal.
    key: Box<str>,
    /// Whether the line gave its id (else the id is its line number).
    named: bool,
}

/// One prompt read back from the file, about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The text to send.
    pub prompt: String,
    /// The line's other fields (not `prompt`, not `id`), echoed in its output row.
    pub input: Map<String, Value>,
}

/// Why the prompts file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptsError {
    /// The file could not be read (missing, a directory, ...).
    #[error("cannot read the prompts file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line is not usable (not UTF-8, bad JSON, no prompt, a bad id, ...).
    #[error("{}, line {line}: {problem}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// Two lines name their prompt the same.
    #[error("{}: lines {first} and {second} have the same id {id}: give each prompt its own id", path.display())]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// The id, as JSON.
        id: String,
        /// The earlier line.
        first: usize,
        /// The later line.
        second: usize,
    },
    /// The file holds no prompt at all.
    #[error("the prompts file {} has no prompts (only blank lines)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file changed under the run: the line is not what was indexed.
    #[error("the prompts file {} changed during the run (line {line}): let a run finish before editing its prompts", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
    },
}

/// A short, stable fingerprint of a prompt (64-bit FNV-1a).
///
/// It only has to tell "the same prompt" from "another prompt" when a
/// journal is matched to a prompts file; it is no secret and no checksum
/// against an attacker, and unlike std's hasher it never changes between
/// Rust releases, so a journal written today still matches next year.
pub fn fingerprint(prompt: &str) -> u64 {
    prompt.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What one non-blank line holds.
struct Parsed {
    prompt: String,
    id: Option<Value>,
    input: Map<String, Value>,
}

/// Parses one line of a prompts file (trimmed, its BOM removed): a plain
/// prompt, or a JSON object with a `"prompt"` string.
///
/// A line that starts with `{` must be such an object: reading a malformed
/// JSON line as a plain prompt would send the model a fragment of JSON
/// without a word of warning.
fn parse_line(line: &str) -> Result<Parsed, String> {
    if !line.starts_with('{') {
        return Ok(Parsed {
            prompt: line.to_string(),
            id: None,
            input: Map::new(),
        });
    }
    let mut object: Map<String, Value> = serde_json::from_str(line)
        .map_err(|e| format!("a line starting with {{ must be a JSON object ({e})"))?;
    let prompt = match object.remove("prompt") {
        Some(Value::String(prompt)) if !prompt.trim().is_empty() => prompt,
        Some(Value::String(_)) => return Err("the \"prompt\" field is empty".into()),
        _ => return Err("no \"prompt\" string field in this JSON line".into()),
    };
    let id = match object.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id),
        Some(_) => return Err("the \"id\" must be a string or a number".into()),
    };
    Ok(Parsed {
        prompt,
        id,
        input: object,
    })
}

/// A line's text without its line ending, BOM and surrounding blanks.
fn clean(line: &str) -> &str {
    line.trim_start_matches(BOM).trim()
}

impl Prompts {
    /// `--prompt` sent `n` times, or the prompts of `file` when given.
    pub fn from_args(prompt: &str, n: u32, file: Option<&Path>) -> Result<Prompts, PromptsError> {
        match file {
            Some(path) => Prompts::read(path),
            None => Ok(Prompts::Repeat {
                prompt: prompt.to_string(),
                n: n as usize,
                hash: fingerprint(prompt),
            }),
        }
    }

    /// Indexes a prompts file (see the module documentation for its format).
    pub fn read(path: &Path) -> Result<Prompts, PromptsError> {
        PromptFile::index(path).map(Prompts::File)
    }

    /// How many requests: N.
    pub fn len(&self) -> usize {
        match self {
            Prompts::Repeat { n, .. } => *n,
            Prompts::File(file) => file.entries.len(),
        }
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prompts file, if the prompts come from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Prompts::Repeat { .. } => None,
            Prompts::File(file) => Some(&file.path),
        }
    }

    /// The id of prompt `index` as compact JSON text: the journal's key.
    pub fn key(&self, index: usize) -> String {
        match self {
            Prompts::Repeat { .. } => (index + 1).to_string(),
            Prompts::File(file) => file.entries[index].key.to_string(),
        }
    }

    /// The id of prompt `index`, as it goes in its output row.
    pub fn id(&self, index: usize) -> Value {
        serde_json::from_str(&self.key(index)).unwrap_or(Value::Null)
    }

    /// The line of prompt `index` in its file (the request number with `-n`).
    pub fn line(&self, index: usize) -> usize {
        match self {
            Prompts::Repeat { .. } => index + 1,
            Prompts::File(file) => file.entries[index].line as usize,
        }
    }

    /// Prompt `index` as a message names it: `line 7` when its id is its
    /// line number, `id "a-7" (line 7)` when the line gave one, `request 7`
    /// with `-n`.
    pub fn describe(&self, index: usize) -> String {
        match self {
            Prompts::Repeat { .. } => format!("request {}", index + 1),
            Prompts::File(file) => {
                let entry = &file.entries[index];
                if entry.named {
                    format!("id {} (line {})", entry.key, entry.line)
                } else {
                    format!("line {}", entry.line)
                }
            }
        }
    }

    /// The [`fingerprint`] of prompt `index`.
    pub fn hash(&self, index: usize) -> u64 {
        match self {
            Prompts::Repeat { hash, .. } => *hash,
            Prompts::File(file) => file.entries[index].hash,
        }
    }

    /// The estimated input tokens of prompt `index`, known without reading it.
    pub fn tokens(&self, index: usize) -> u32 {
        match self {
            Prompts::Repeat { prompt, .. } => estimate_tokens(prompt),
            Prompts::File(file) => file.entries[index].tokens,
        }
    }

    /// Reads prompt `index` back, to send it.
    pub fn load(&self, index: usize) -> Result<Loaded, PromptsError> {
        match self {
            Prompts::Repeat { prompt, .. } => Ok(Loaded {
                prompt: prompt.clone(),
                input: Map::new(),
            }),
            Prompts::File(file) => file.load(index),
        }
    }
}

impl PromptFile {
    /// Reads the file once, line by line, checking every line and keeping
    /// only where each prompt is.
    fn index(path: &Path) -> Result<PromptFile, PromptsError> {
        let read_error = |source| PromptsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let mut reader = BufReader::new(file.try_clone().map_err(read_error)?);
        let mut entries = Vec::new();
        let mut lines_of: HashMap<Box<str>, u32> = HashMap::new();
        let mut bytes = Vec::new();
        let mut offset = 0u64;
        for number in 1u32.. {
            bytes.clear();
            let read = reader.read_until(b'\n', &mut bytes).map_err(read_error)?;
            if read == 0 {
                break;
            }
            let bad = |problem: String| PromptsError::BadLine {
                path: path.to_path_buf(),
                line: number as usize,
                problem,
            };
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| bad("not UTF-8 text: save the file as UTF-8".into()))?;
            let len = u32::try_from(read).map_err(|_| bad("a line longer than 4 GB".into()))?;
            let start = offset;
            offset += read as u64;
            let line = clean(text);
            if line.is_empty() {
                continue;
            }
            let parsed = parse_line(line).map_err(bad)?;
            let key: Box<str> = match &parsed.id {
                Some(id) => id.to_string().into(),
                None => number.to_string().into(),
            };
            if let Some(first) = lines_of.insert(key.clone(), number) {
                return Err(PromptsError::DuplicateId {
                    path: path.to_path_buf(),
                    id: key.to_string(),
                    first: first as usize,
                    second: number as usize,
                });
            }
            entries.push(Entry {
                offset: start,
                len,
                line: number,
                tokens: estimate_tokens(&parsed.prompt),
                hash: fingerprint(&parsed.prompt),
                key,
                named: parsed.id.is_some(),
            });
        }
        if entries.is_empty() {
            return Err(PromptsError::Empty {
                path: path.to_path_buf(),
            });
        }
        entries.shrink_to_fit();
        Ok(PromptFile {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// Reads prompt `index` from its place in the file, and checks it is
    /// still the prompt that was indexed.
    fn load(&self, index: usize) -> Result<Loaded, PromptsError> {
        let entry = &self.entries[index];
        let changed = || PromptsError::Changed {
            path: self.path.clone(),
            line: entry.line as usize,
        };
        let mut bytes = vec![0; entry.len as usize];
        read_at(&self.file, &mut bytes, entry.offset).map_err(|source| PromptsError::Read {
            path: self.path.clone(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| changed())?;
        let parsed = parse_line(clean(text)).map_err(|_| changed())?;
        if fingerprint(&parsed.prompt) != entry.hash {
            return Err(changed());
        }
        Ok(Loaded {
            prompt: parsed.prompt,
            input: parsed.input,
        })
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, without moving a shared cursor
/// (many requests read the file at once).
#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset` (Windows: `seek_read` loops).
#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> Result<Prompts, PromptsError> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("p.txt");
        std::fs::write(&path, text).expect("written");
        // The file is opened by then: the index outlives the directory on unix.
        Prompts::read(&path)
    }

    fn prompts(p: &Prompts) -> Vec<String> {
        (0..p.len())
            .map(|i| p.load(i).expect("loads").prompt)
            .collect()
    }

    #[test]
    fn the_token_estimate_errs_high_for_english() {
        let prompt = "Why do some birds migrate?";
        assert_eq!(estimate_tokens(prompt), 9);
        assert!(
            estimate_tokens(prompt) >= 26 / 4,
            "at least the 4-characters rule"
        );
        assert_eq!(estimate_tokens(""), 1);
    }

    #[test]
    fn lines_and_json_lines_mix_and_blank_lines_are_skipped() {
        let p = index(
            "Why?\n\n  {\"prompt\": \"Two\\nlines\", \"id\": 7, \"tag\": \"x\"}\r\n   \nLast one",
        )
        .expect("parses");
        assert_eq!(prompts(&p), ["Why?", "Two\nlines", "Last one"]);
        assert_eq!(
            (p.key(0), p.key(1), p.key(2)),
            ("1".into(), "7".into(), "5".into())
        );
        assert_eq!((p.line(1), p.line(2)), (3, 5));
        assert_eq!(p.load(1).expect("loads").input["tag"], "x");
        assert_eq!(p.hash(1), fingerprint("Two\nlines"));
        assert_eq!(p.tokens(0), estimate_tokens("Why?"));
        assert_eq!(
            (p.describe(0), p.describe(1)),
            ("line 1".into(), "id 7 (line 3)".into())
        );
    }

    #[test]
    fn a_bom_is_not_part_of_the_line() {
        let p = index("\u{feff}{\"prompt\": \"Hi\", \"id\": \"a\"}\n").expect("parses");
        assert_eq!(prompts(&p), ["Hi"]);
        assert_eq!(p.id(0), Value::from("a"));
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        let error = index("{\"prompt\":\"a\",\"id\":\"x\"}\nb\n{\"prompt\":\"c\",\"id\":\"x\"}\n")
            .expect_err("duplicate");
        assert!(error.to_string().contains("lines 1 and 3"), "{error}");
        // A line number is an id too.
        let error = index("a\n{\"prompt\":\"b\",\"id\":1}\n").expect_err("duplicate");
        assert!(error.to_string().contains("lines 1 and 2"), "{error}");
    }

    #[test]
    fn bad_lines_name_their_line() {
        let error = index("ok\n{\"text\": \"no prompt\"}\n").expect_err("no prompt field");
        assert!(error.to_string().contains("p.txt, line 2:"), "{error}");
        let error = index("{not json").expect_err("not JSON");
        assert!(error.to_string().contains("line 1"), "{error}");
        let error = index("{\"prompt\": \" \"}").expect_err("empty");
        assert!(error.to_string().contains("empty"), "{error}");
        let error = index("{\"prompt\": \"a\", \"id\": [1]}").expect_err("bad id");
        assert!(error.to_string().contains("\"id\""), "{error}");
    }

    #[test]
    fn an_empty_file_is_an_error() {
        assert!(matches!(index("\n  \n"), Err(PromptsError::Empty { .. })));
    }

    #[test]
    fn a_missing_file_says_which() {
        let error = Prompts::read(Path::new("/nonexistent/prompts.txt")).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/prompts.txt"),
            "{error}"
        );
    }

    #[test]
    fn repeat_is_n_copies() {
        let p = Prompts::from_args("Hi", 3, None).expect("no file");
        assert_eq!(p.len(), 3);
        assert_eq!(p.load(2).expect("loads").prompt, "Hi");
        assert_eq!(p.key(2), "3");
    }
}
