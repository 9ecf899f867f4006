//! Finding a secret in text however it was escaped: as written, JSON-escaped, percent-encoded.
//!
//! A server that echoes the key can write it in more than one way. In JSON, any character
//! may be a `\uXXXX` escape (`\u0041Iza...` is `AIza...` once parsed) and `/` may be `\/`;
//! in a URL or a form, any byte may be `%XX`. A search for the key as written would miss
//! every such copy, and the parsed text would then carry it out. [`Needles`] finds a
//! secret in which every character is written as itself, as a JSON escape, or as `%XX`
//! (each hex digit, and the `%`, written either way too), in any mix.
//!
//! Most bodies hold no escape that could spell a secret: an answer's `\n` and `\"` stand
//! for characters no key contains. [`Needles`] checks that first, on the raw bytes, and
//! then a plain substring search (`memchr::memmem`, vectorised) is exact. Only text in
//! which an escape or a `%XX` stands for a character of a secret pays for the character by
//! character search.

use std::ops::Range;

use memchr::memmem;

/// The secrets to look for, ready to be searched for quickly.
pub(crate) struct Needles {
    needles: Vec<Needle>,
    /// Every byte that occurs in a secret (its UTF-8 encoding).
    bytes: [bool; 256],
}

/// One secret and its substring searcher.
struct Needle {
    secret: Box<[u8]>,
    finder: memmem::Finder<'static>,
}

impl Needles {
    /// Searchers for these secrets (none empty).
    pub(crate) fn new(secrets: &[String]) -> Needles {
        let mut bytes = [false; 256];
        for byte in secrets.iter().flat_map(|s| s.bytes()) {
            bytes[usize::from(byte)] = true;
        }
        Needles {
            needles: secrets
                .iter()
                .map(|secret| Needle {
                    secret: secret.as_bytes().into(),
                    finder: memmem::Finder::new(secret.as_bytes()).into_owned(),
                })
                .collect(),
            bytes,
        }
    }

    /// Whether `hay` holds no secret in any form.
    pub(crate) fn absent(&self, hay: &[u8]) -> bool {
        if self.needles.is_empty() {
            return true;
        }
        if self.only_plain_forms(hay) {
            self.needles.iter().all(|n| n.finder.find(hay).is_none())
        } else {
            self.needles
                .iter()
                .all(|n| n.find_escaped(hay, 0).is_none())
        }
    }

    /// Every stretch of `hay` that spells a secret, in order, overlapping ones merged.
    pub(crate) fn find_all(&self, hay: &[u8]) -> Vec<Range<usize>> {
        if self.needles.is_empty() {
            return Vec::new();
        }
        let plain = self.only_plain_forms(hay);
        let mut found: Vec<Range<usize>> = Vec::new();
        for needle in &self.needles {
            let mut from = 0;
            while from < hay.len() {
                let next = if plain {
                    needle
                        .finder
                        .find(&hay[from..])
                        .map(|at| from + at..from + at + needle.secret.len())
                } else {
                    needle.find_escaped(hay, from)
                };
                let Some(range) = next else { break };
                from = range.start + 1;
                found.push(range);
            }
        }
        merge(found)
    }

    /// True when no JSON escape in `hay` stands for a character of a secret (or for `%`),
    /// and no `%XX` for one of its bytes: then a secret can only be there as written.
    ///
    /// Every backslash is tried as the start of an escape, also the second of an escaped
    /// `\\`: a wrong reading can only make this return false, and cost a slower search.
    fn only_plain_forms(&self, hay: &[u8]) -> bool {
        let spells_a_secret = |c: char| c == '%' || self.holds_char(c);
        let escape_spells = memchr::memchr_iter(b'\\', hay)
            .filter_map(|at| json_escape(hay, at))
            .any(|(c, _)| spells_a_secret(c));
        if escape_spells {
            return false;
        }
        !memchr::memchr_iter(b'%', hay)
            .filter_map(|at| percent_byte(hay, at + 1))
            .any(|(byte, _)| self.bytes[usize::from(byte)])
    }

    /// Whether some secret contains `c`.
    fn holds_char(&self, c: char) -> bool {
        match u8::try_from(c) {
            Ok(byte) if c.is_ascii() => self.bytes[usize::from(byte)],
            _ => self
                .needles
                .iter()
                .any(|n| std::str::from_utf8(&n.secret).is_ok_and(|secret| secret.contains(c))),
        }
    }
}

impl Needle {
    /// The first stretch of `hay` from `from` on that spells the secret in any form.
    fn find_escaped(&self, hay: &[u8], from: usize) -> Option<Range<usize>> {
        let first = *self.secret.first()?;
        let hay_from = hay.get(from..)?;
        memchr::memchr3_iter(first, b'\\', b'%', hay_from)
            .map(|at| from + at)
            .find_map(|start| spells(hay, start, &self.secret).map(|end| start..end))
    }
}

/// Where a spelling of `secret` that starts at `at` ends, if there is one.
///
/// Each character of the secret may be written as itself, as a JSON escape, or (each byte)
/// as `%XX`; a backslash or `%` is also tried as itself, so a secret that holds one is
/// found as written too. The search goes back only at a `%`, which secrets rarely hold.
fn spells(hay: &[u8], at: usize, secret: &[u8]) -> Option<usize> {
    if secret.is_empty() {
        return Some(at);
    }
    let byte = *hay.get(at)?;
    let as_itself = (Unit::Byte(byte), 1);
    let escaped = (byte == b'\\')
        .then(|| json_escape(hay, at))
        .flatten()
        .map(|(c, len)| (Unit::Char(c), len));
    [Some(as_itself), escaped]
        .into_iter()
        .flatten()
        .find_map(|(unit, len)| spells_after(hay, at + len, unit, secret))
}

/// Where a spelling of `secret` ends that starts with `unit` (read just before `next`).
fn spells_after(hay: &[u8], next: usize, unit: Unit, secret: &[u8]) -> Option<usize> {
    let mut utf8 = [0; 4];
    let spelled: &[u8] = match &unit {
        Unit::Byte(byte) => std::slice::from_ref(byte),
        Unit::Char(c) => c.encode_utf8(&mut utf8).as_bytes(),
    };
    let as_written = secret
        .strip_prefix(spelled)
        .and_then(|rest| spells(hay, next, rest));
    if as_written.is_some() || spelled != b"%" {
        return as_written;
    }
    let (decoded, more) = percent_byte(hay, next)?;
    let rest = secret.strip_prefix(&[decoded])?;
    spells(hay, next + more, rest)
}

/// One character of escaped text, as read.
enum Unit {
    /// A byte taken as itself.
    Byte(u8),
    /// The character a JSON escape stands for.
    Char(char),
}

/// The byte that the two hex digits at `at` (after a `%`) stand for, and their length;
/// either digit may itself be a JSON escape.
fn percent_byte(hay: &[u8], at: usize) -> Option<(u8, usize)> {
    let (high, high_len) = hex_digit(hay, at)?;
    let (low, low_len) = hex_digit(hay, at + high_len)?;
    Some((high << 4 | low, high_len + low_len))
}

/// The value of the hex digit at `at`, written as itself or as a JSON escape, and its length.
fn hex_digit(hay: &[u8], at: usize) -> Option<(u8, usize)> {
    let (c, len) = match *hay.get(at)? {
        b'\\' => json_escape(hay, at)?,
        byte => (char::from(byte), 1),
    };
    let value = c.to_digit(16)?;
    Some((u8::try_from(value).ok()?, len))
}

/// The JSON escape at `at` (where `hay` has a backslash): the character it stands for and
/// its length; `None` if no escape starts there.
///
/// A `\uD83D\uDE00` pair is one character; a lone surrogate stands for U+FFFD, which no
/// secret a person typed holds.
pub(crate) fn json_escape(hay: &[u8], at: usize) -> Option<(char, usize)> {
    let c = match *hay.get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return unicode_escape(hay, at),
        _ => return None,
    };
    Some((c, 2))
}

/// The `\uXXXX` escape at `at`, with a following low surrogate when it is a high one.
fn unicode_escape(hay: &[u8], at: usize) -> Option<(char, usize)> {
    let unit = hex4(hay, at + 2)?;
    if let Some(c) = char::from_u32(unit) {
        return Some((c, 6));
    }
    let low = (0xD800..0xDC00)
        .contains(&unit)
        .then(|| hay.get(at + 6..at + 8))
        .flatten()
        .filter(|next| *next == b"\\u")
        .and_then(|_| hex4(hay, at + 8))
        .filter(|low| (0xDC00..0xE000).contains(low));
    match low {
        Some(low) => {
            let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
            Some((c, 12))
        }
        None => Some((char::REPLACEMENT_CHARACTER, 6)),
    }
}

/// Four hex digits at `at`.
fn hex4(hay: &[u8], at: usize) -> Option<u32> {
    let digits = hay.get(at..at + 4)?;
    digits.iter().try_fold(0, |value, &digit| {
        Some(value << 4 | char::from(digit).to_digit(16)?)
    })
}

/// Sorts ranges and merges those that overlap or touch.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|range| range.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needles(secrets: &[&str]) -> Needles {
        Needles::new(&secrets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// The text of `hay` that `find_all` marks.
    fn found(n: &Needles, hay: &str) -> Vec<String> {
        n.find_all(hay.as_bytes())
            .into_iter()
            .map(|r| hay[r].to_string())
            .collect()
    }

    #[test]
    fn a_secret_is_found_as_written_and_escaped_in_every_way() {
        let n = needles(&["AIza/k-1"]);
        for hay in [
            "x AIza/k-1 y",
            r"x \u0041Iza/k-1 y",
            r"x AIza\/k-1 y",
            r"x \u0041\u0049\u007a\u0061\u002F\u006b\u002d\u0031 y",
            "x %41Iza%2fk-1 y",
            r"x \u0025\u0034\u0031Iza/k-1 y",
            r"x %\u00341Iza/k-1 y",
        ] {
            assert_eq!(found(&n, hay).len(), 1, "{hay}");
            assert!(!n.absent(hay.as_bytes()), "{hay}");
        }
        for hay in [r"x AIza\nk-1 y", "x AIzak-1", r"\u0041Iz", "%4", ""] {
            assert!(found(&n, hay).is_empty(), "{hay}");
            assert!(n.absent(hay.as_bytes()), "{hay}");
        }
    }

    #[test]
    fn escapes_that_spell_no_secret_keep_the_fast_search() {
        let n = needles(&["AIzaKey"]);
        assert!(n.only_plain_forms(br#"{"text":"a\nb \"q\" \u003c 100%25"}"#));
        assert!(!n.only_plain_forms(br"\u0041"));
        assert!(!n.only_plain_forms(b"%4B"));
        assert!(!n.only_plain_forms(br"\u0025"));
    }

    #[test]
    fn a_secret_with_a_backslash_a_percent_or_a_surrogate_pair_is_found() {
        let n = needles(&[r"p\n%41", "k🔑y"]);
        assert_eq!(found(&n, r"a p\n%41 b"), vec![r"p\n%41"]);
        assert_eq!(found(&n, r#"a p\\n%2541 b"#), vec![r#"p\\n%2541"#]);
        assert_eq!(found(&n, r"k\ud83d\udd11y"), vec![r"k\ud83d\udd11y"]);
        assert_eq!(found(&n, "k%F0%9F%94%91y"), vec!["k%F0%9F%94%91y"]);
        assert!(found(&n, r"k\ud83dy").is_empty());
    }

    #[test]
    fn overlapping_copies_are_one_stretch() {
        let n = needles(&["abab", "ba"]);
        assert_eq!(found(&n, "xababab y"), vec!["ababab"]);
    }
}
