//! A deterministic token estimate, good enough to look like Gemini's and exactly consistent
//! with itself.
//!
//! Gemini's tokenizer is not public, so the emulator counts like this: a run of letters costs
//! one token per started 7 letters (most English words are one token), every digit is a token
//! (Gemini splits numbers into digits), every other visible character (punctuation, symbols,
//! CJK ideographs, emoji) is a token, and whitespace is free. "why is the sky blue?" comes out
//! at 6, as in the real recording for gemini-2.0-flash.
//!
//! The count is *additive* over [`pieces`]: splitting a text into pieces and adding the pieces'
//! counts gives [`count`] of the whole. That is what lets the emulator cut an answer at
//! `maxOutputTokens`, or into stream chunks, and still report totals that add up.
//!
//! A request's `promptTokenCount` (and `countTokens`' `totalTokens`) is the sum of [`count`]
//! over every text part of `contents` and `systemInstruction`, so for a one-prompt request it
//! equals `count(prompt)`.

/// Letters per token in a run of letters.
const LETTERS_PER_TOKEN: u32 = 7;

/// Character classes of the estimate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Letter,
    /// A character that is a token of its own (digit, punctuation, CJK, emoji).
    Single,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_alphabetic() && (c as u32) < 0x2E80 {
        Class::Letter
    } else {
        Class::Single
    }
}

/// The estimated number of tokens in `text`.
pub fn count(text: &str) -> u32 {
    pieces(text).iter().map(|p| p.tokens).sum()
}

/// A slice of text and its token count. Leading whitespace belongs to the piece it precedes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The text of the piece.
    pub text: &'a str,
    /// Its tokens (0 only for trailing whitespace).
    pub tokens: u32,
}

/// Splits `text` into pieces: optional whitespace, then one letter run or one single-token
/// character. Concatenating the pieces gives back `text`.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some(&(_, c)) = chars.peek() {
        // Leading whitespace.
        if class(c) == Class::Space {
            chars.next();
            continue;
        }
        let (_, first) = chars.next().unwrap_or((0, c));
        let tokens = if class(first) == Class::Letter {
            let mut letters: u32 = 1;
            while let Some(&(_, next)) = chars.peek() {
                if class(next) != Class::Letter {
                    break;
                }
                letters += 1;
                chars.next();
            }
            letters.div_ceil(LETTERS_PER_TOKEN)
        } else {
            1
        };
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        out.push(Piece {
            text: &text[start..end],
            tokens,
        });
        start = end;
    }
    if start < text.len() {
        out.push(Piece {
            text: &text[start..],
            tokens: 0,
        });
    }
    out
}

/// The longest prefix of `text` that fits in `budget` tokens, and its token count.
pub fn truncate(text: &str, budget: u32) -> (&str, u32) {
    let mut used = 0;
    let mut end = 0;
    for piece in pieces(text) {
        if used + piece.tokens > budget {
            break;
        }
        used += piece.tokens;
        end += piece.text.len();
    }
    (&text[..end], used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_look_like_gemini() {
        assert_eq!(count("why is the sky blue?"), 6);
        assert_eq!(count("The quick brown fox jumps over the lazy dog."), 10);
        assert_eq!(count("Why do some birds migrate?"), 6);
        assert_eq!(count(""), 0);
        assert_eq!(count("   "), 0);
        assert_eq!(count("2025"), 4);
        assert_eq!(count("internationalization"), 3);
        assert_eq!(count("日本語"), 3);
    }

    #[test]
    fn pieces_are_additive_and_lossless() {
        let text = "  Hello, world! It's 42 degrees\n\n**Bold** ünïcödé 🎉 end ";
        let parts = pieces(text);
        let joined: String = parts.iter().map(|p| p.text).collect();
        assert_eq!(joined, text);
        assert_eq!(parts.iter().map(|p| p.tokens).sum::<u32>(), count(text));
    }

    #[test]
    fn truncate_respects_the_budget() {
        let text = "one two three four five";
        assert_eq!(truncate(text, 2), ("one two", 2));
        assert_eq!(truncate(text, 0), ("", 0));
        assert_eq!(truncate(text, 99), (text, 5));
    }
}
