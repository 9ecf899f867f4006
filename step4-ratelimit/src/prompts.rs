//! The prompts of a run: N copies of `--prompt`, or one per line of `--prompts FILE`.
//!
//! Real batch jobs do not send the same question a hundred times: they have a
//! file of inputs. `--prompts` reads one prompt per line, and also accepts
//! JSON lines with a `"prompt"` field (what most data tools export), so
//! that a prompt can hold newlines. The two can be mixed; blank lines are
//! skipped.
//!
//! The file is read whole and checked before anything is sent: a typo in its
//! name, or a broken line 4,000, is one clear error line instead of a run
//! that stops halfway.

use std::path::{Path, PathBuf};

/// What to send, request by request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompts {
    /// The same prompt `n` times (`--prompt` and `-n`).
    Repeat {
        /// The prompt.
        prompt: String,
        /// How many times to send it.
        n: usize,
    },
    /// One request per prompt, in this order (`--prompts FILE`).
    List(Vec<String>),
}

/// Why the prompts file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptsError {
    /// The file could not be read (missing, a directory, not UTF-8, ...).
    #[error("cannot read the prompts file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line starting with `{` is not a JSON object with a `"prompt"` string.
    #[error("{}, line {line}: {problem}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The file holds no prompt at all.
    #[error("the prompts file {} has no prompts (only blank lines)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Prompts {
    /// `--prompt` sent `n` times, or the prompts of `file` when given.
    pub fn from_args(prompt: &str, n: u32, file: Option<&Path>) -> Result<Prompts, PromptsError> {
        match file {
            Some(path) => Prompts::read(path),
            None => Ok(Prompts::Repeat {
                prompt: prompt.to_string(),
                n: n as usize,
            }),
        }
    }

    /// Reads a prompts file (see the module documentation for its format).
    pub fn read(path: &Path) -> Result<Prompts, PromptsError> {
        let text = std::fs::read_to_string(path).map_err(|source| PromptsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Prompts::parse(&text, path)
    }

    /// Parses the text of a prompts file; `path` is only used in errors.
    ///
    /// A line that starts with `{` must be a JSON object with a string
    /// `"prompt"`: reading a malformed JSON line as a plain prompt would send
    /// the model a fragment of JSON without a word of warning.
    pub fn parse(text: &str, path: &Path) -> Result<Prompts, PromptsError> {
        let mut prompts = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if !line.starts_with('{') {
                prompts.push(line.to_string());
                continue;
            }
            let bad = |problem: String| PromptsError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                problem,
            };
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| bad(format!("a line starting with {{ must be JSON ({e})")))?;
            match value.get("prompt").and_then(|p| p.as_str()) {
                Some(prompt) if !prompt.trim().is_empty() => prompts.push(prompt.to_string()),
                Some(_) => return Err(bad("the \"prompt\" field is empty".into())),
                None => return Err(bad("no \"prompt\" string field in this JSON line".into())),
            }
        }
        if prompts.is_empty() {
            return Err(PromptsError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Prompts::List(prompts))
    }

    /// How many requests: N.
    pub fn len(&self) -> usize {
        match self {
            Prompts::Repeat { n, .. } => *n,
            Prompts::List(list) => list.len(),
        }
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prompt of request `index` (an empty string past the end).
    pub fn get(&self, index: usize) -> &str {
        match self {
            Prompts::Repeat { prompt, .. } => prompt,
            Prompts::List(list) => list.get(index).map_or("", String::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Prompts, PromptsError> {
        Prompts::parse(text, Path::new("p.txt"))
    }

    #[test]
    fn lines_and_json_lines_mix_and_blank_lines_are_skipped() {
        let prompts =
            parse("Why?\n\n  {\"prompt\": \"Two\\nlines\", \"id\": 7}\r\n   \nLast one\n")
                .expect("parses");
        assert_eq!(
            prompts,
            Prompts::List(vec!["Why?".into(), "Two\nlines".into(), "Last one".into()])
        );
        assert_eq!(prompts.len(), 3);
        assert_eq!(prompts.get(1), "Two\nlines");
    }

    #[test]
    fn bad_json_lines_name_their_line() {
        let error = parse("ok\n{\"text\": \"no prompt\"}\n").expect_err("no prompt field");
        assert!(error.to_string().starts_with("p.txt, line 2:"), "{error}");
        let error = parse("{not json").expect_err("not JSON");
        assert!(error.to_string().contains("line 1"), "{error}");
        let error = parse("{\"prompt\": \" \"}").expect_err("empty");
        assert!(error.to_string().contains("empty"), "{error}");
    }

    #[test]
    fn an_empty_file_is_an_error() {
        assert!(matches!(parse("\n  \n"), Err(PromptsError::Empty { .. })));
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
        let prompts = Prompts::from_args("Hi", 3, None).expect("no file");
        assert_eq!((prompts.len(), prompts.get(2)), (3, "Hi"));
    }
}
