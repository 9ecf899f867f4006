//! Writing to the terminal: results on stdout, diagnostics on stderr.
//!
//! Two promises hold for every line a step writes. A closed stream (the
//! reader of `step2 | head -3` has gone) is never a panic: the line is
//! dropped and the run goes on. And on a terminal, text from the network is
//! shown, not obeyed: its control characters are escaped.

use std::io::{IsTerminal, Write};

/// Writes `text` and a newline to stdout.
///
/// Unlike `println!`, a closed stdout (the reader of `step2 | head -3` has
/// gone) is not a panic: the line is dropped and the run goes on, so every
/// outcome still reaches the summary, the exit code and any `--output` file.
pub fn print_line(text: impl std::fmt::Display) {
    print(format_args!("{text}\n"));
}

/// Writes `text` to stdout, and flushes it so a streamed answer shows up
/// word by word. A closed stdout is ignored, as in [`print_line`].
///
/// On a terminal, control characters other than newline and tab are
/// escaped: model text comes from the network, and an escape sequence in it
/// could retitle, recolour or clear the user's terminal. In a pipe or a file
/// the text is written as it came (and `--json` has no raw control
/// characters to escape: JSON strings carry them as `\u001b`).
pub fn print(text: impl std::fmt::Display) {
    let stdout = std::io::stdout();
    let text = text.to_string();
    let text = if stdout.is_terminal() {
        escape_controls(&text)
    } else {
        text.into()
    };
    let mut out = stdout.lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes one diagnostic line to stderr, escaped as [`print()`] escapes on a
/// terminal. Unlike `eprintln!`, a closed stderr (`step3 2>&1 | head -1`)
/// is not a panic: the line is lost, and whatever was being said goes on.
pub fn diagnostic(text: impl std::fmt::Display) {
    let stderr = std::io::stderr();
    let line = format!("{text}\n");
    let line = if stderr.is_terminal() {
        escape_controls(&line)
    } else {
        line.into()
    };
    let _ = stderr.lock().write_all(line.as_bytes());
}

/// `text` with every control character but newline and tab written as a
/// visible escape (`\u{1b}`), so a terminal shows it instead of obeying it.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let harmful = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(harmful) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if harmful(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_what_a_terminal_would_obey() {
        assert_eq!(escape_controls("plain\ttext\nline"), "plain\ttext\nline");
        assert_eq!(
            escape_controls("\u{1b}]0;owned\u{7}\u{1b}[2Jbirds\r"),
            "\\u{1b}]0;owned\\u{7}\\u{1b}[2Jbirds\\u{d}"
        );
        assert_eq!(
            escape_controls("\u{9b}31m"),
            "\\u{9b}31m",
            "C1 controls too"
        );
    }
}
