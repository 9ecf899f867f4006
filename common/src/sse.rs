//! An incremental decoder for the `streamGenerateContent?alt=sse` body.
//!
//! Gemini writes each chunk as `data: <one JSON object>` followed by a blank
//! line (`\r\n\r\n` on the wire; `\n\n` and `\r\r` are accepted as JS does),
//! with no `event:`/`id:` lines and no `[DONE]` sentinel: the stream ends when
//! the body ends (docs/wire.md#streaming). An error after the 200 has started arrives as a
//! JSON `{"error":...}` object, sometimes pretty-printed over many lines with
//! no `data:` prefix; like python-genai we collect such lines until their
//! braces balance (here string-aware, so a `}` inside a message does not
//! confuse it).
//!
//! The decoder is byte-oriented on purpose: the network splits the body
//! anywhere, including inside a multi-byte UTF-8 character or between the
//! `\r` and `\n` of a line ending. We only ever cut on ASCII line-ending
//! bytes, so a line is decoded as UTF-8 only once it is complete. It owns no
//! I/O, which is what lets the property tests feed it every possible split.
//!
//! A server can also send a line that never ends. [`SseDecoder::with_limit`]
//! bounds what the decoder holds for one event (its pending line, `data:`
//! lines and bare JSON): past the limit the stream fails with
//! [`SseError::TooLarge`] instead of growing until memory runs out.

/// What went wrong while decoding an SSE body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// The body ended in the middle of an event (cut connection, server crash).
    #[error("the body ended in the middle of an event ({0})")]
    Truncated(&'static str),
    /// A line was not valid UTF-8.
    #[error("a line of the stream is not valid UTF-8")]
    InvalidUtf8,
    /// One event grew past the decoder's limit (a line that never ends, say).
    #[error("one event of the stream is larger than {0} bytes")]
    TooLarge(usize),
}

/// Turns body bytes, in chunks of any size, into complete event payloads.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the line being received (no line ending seen yet).
    line: Vec<u8>,
    /// The `data:` lines of the current event, joined by `\n` as SSE specifies.
    data: Option<String>,
    /// A bare JSON object (an error body) being collected line by line.
    raw: RawJson,
    /// The most bytes one event may hold; `None`: no limit.
    limit: Option<usize>,
}

/// Brace-balancing state for a JSON object written without `data:`.
#[derive(Debug, Default)]
struct RawJson {
    text: String,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl SseDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// A decoder that fails once one event holds more than `limit` bytes.
    pub fn with_limit(limit: usize) -> SseDecoder {
        SseDecoder {
            limit: Some(limit),
            ..SseDecoder::default()
        }
    }

    /// Feeds the next bytes; returns the payloads they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let out = self.push_unchecked(bytes)?;
        self.check_size()?;
        Ok(out)
    }

    /// Fails when the event being collected is past the limit.
    ///
    /// Checked after each chunk, so the decoder holds at most the limit plus
    /// one network chunk.
    fn check_size(&self) -> Result<(), SseError> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let held =
            self.line.len() + self.data.as_ref().map_or(0, String::len) + self.raw.text.len();
        if held > limit {
            return Err(SseError::TooLarge(limit));
        }
        Ok(())
    }

    /// [`push`](Self::push) without the size check.
    fn push_unchecked(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut out = Vec::new();
        let mut rest = bytes;
        // A `\r` ended the previous chunk: its line is complete, and a `\n`
        // starting this chunk is the second half of that `\r\n`.
        if self.line.last() == Some(&b'\r') && !rest.is_empty() {
            self.line.pop();
            self.end_line(&mut out)?;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let width = match (rest[pos], rest.get(pos + 1)) {
                (b'\r', Some(b'\n')) => 2,
                // A `\r` at the very end: wait for the next chunk to tell
                // `\r\n` from a lone `\r` (remembered as the line's last byte).
                (b'\r', None) => {
                    self.line.push(b'\r');
                    return Ok(out);
                }
                _ => 1,
            };
            self.end_line(&mut out)?;
            rest = &rest[pos + width..];
        }
        self.line.extend_from_slice(rest);
        Ok(out)
    }

    /// Ends the body. Returns a final payload, or an error if an event was cut short.
    ///
    /// A body must end on a line boundary: a cut connection that stops in
    /// the middle of a `data:` line or of an error object must be reported,
    /// not mistaken for the end of the answer (JS's "Incomplete JSON segment").
    /// A last `data:` line that is complete but lacks the blank line after it
    /// is delivered.
    pub fn finish(&mut self) -> Result<Option<String>, SseError> {
        let mut out = Vec::new();
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
            self.end_line(&mut out)?;
        }
        if self.line.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(SseError::Truncated("a line was cut off"));
        }
        if self.raw.depth > 0 {
            return Err(SseError::Truncated("an error object was cut off"));
        }
        // Complete `data:` lines not followed by a blank line: the payload is
        // whole (only the separator is missing, as in one Firebase fixture),
        // so it is delivered rather than dropped.
        out.extend(self.data.take());
        Ok(out.pop())
    }

    /// Handles one complete line (without its line ending).
    fn end_line(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        let bytes = std::mem::take(&mut self.line);
        let line = String::from_utf8(bytes).map_err(|_| SseError::InvalidUtf8)?;
        if self.raw.depth > 0 {
            self.raw_line(&line, out);
        } else if line.is_empty() {
            // Blank line: dispatch the event, if it had data.
            out.extend(self.data.take());
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        } else if is_sse_field(&line) {
            // `event:`, `id:`, `retry:` and `:comments` carry nothing we use.
        } else if !line.trim().is_empty() {
            // A bare JSON body: whatever data was pending is complete.
            out.extend(self.data.take());
            self.raw_line(&line, out);
        }
        Ok(())
    }

    /// Adds a line to the bare JSON object; emits it once its braces balance.
    fn raw_line(&mut self, line: &str, out: &mut Vec<String>) {
        let raw = &mut self.raw;
        for c in line.chars() {
            match c {
                _ if raw.escaped => raw.escaped = false,
                '\\' if raw.in_string => raw.escaped = true,
                '"' => raw.in_string = !raw.in_string,
                '{' if !raw.in_string => raw.depth += 1,
                '}' if !raw.in_string => raw.depth = raw.depth.saturating_sub(1),
                _ => {}
            }
        }
        raw.text.push_str(line);
        raw.text.push('\n');
        if raw.depth == 0 {
            let text = std::mem::take(&mut raw.text);
            raw.in_string = false;
            raw.escaped = false;
            out.push(text.trim_end().to_string());
        }
    }
}

/// True for SSE lines other than `data:` that we ignore.
fn is_sse_field(line: &str) -> bool {
    line.starts_with(':')
        || ["event:", "id:", "retry:"]
            .iter()
            .any(|field| line.starts_with(field))
}

/// Decodes a whole body at once (for fixtures and tests).
pub fn decode_all(body: &[u8]) -> Result<Vec<String>, SseError> {
    let mut decoder = SseDecoder::new();
    let mut events = decoder.push(body)?;
    events.extend(decoder.finish()?);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_all_three_separators() {
        for sep in ["\r\n\r\n", "\n\n", "\r\r"] {
            let body = format!("data: {{\"a\":1}}{sep}data: {{\"b\":2}}{sep}");
            assert_eq!(
                decode_all(body.as_bytes()).unwrap(),
                vec!["{\"a\":1}", "{\"b\":2}"],
                "{sep:?}"
            );
        }
    }

    #[test]
    fn crlf_split_between_chunks() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"data: x\r").unwrap().is_empty());
        assert!(d.push(b"\n\r").unwrap().is_empty());
        assert_eq!(d.push(b"\n").unwrap(), vec!["x"]);
        assert_eq!(d.finish().unwrap(), None);
    }

    #[test]
    fn bare_error_object_after_events() {
        let body =
            "data: {\"a\":1}\n\n{\n  \"error\": {\n    \"message\": \"a } in text\"\n  }\n}\n";
        let events = decode_all(body.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        let err: serde_json::Value = serde_json::from_str(&events[1]).unwrap();
        assert_eq!(err["error"]["message"], "a } in text");
    }

    #[test]
    fn ignores_fields_and_comments() {
        let body = ": hi\nevent: message\nid: 3\ndata: x\n\n";
        assert_eq!(decode_all(body.as_bytes()).unwrap(), vec!["x"]);
    }

    #[test]
    fn multi_line_data_is_joined() {
        assert_eq!(decode_all(b"data: a\ndata: b\n\n").unwrap(), vec!["a\nb"]);
    }

    #[test]
    fn truncation_is_an_error() {
        for body in [
            &b"data: {\"a\":1}\r\n\r\ndata: {\"b\""[..],
            b"data: {\"a\":1}",
            b"{\n \"error\": {\n",
        ] {
            assert!(
                matches!(decode_all(body), Err(SseError::Truncated(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn last_complete_line_without_blank_line_is_delivered() {
        assert_eq!(decode_all(b"data: {}\r\n").unwrap(), vec!["{}"]);
        assert_eq!(decode_all(b"data: {}\r").unwrap(), vec!["{}"]);
    }

    #[test]
    fn empty_body_is_fine() {
        assert_eq!(decode_all(b"").unwrap(), Vec::<String>::new());
        assert_eq!(decode_all(b"\r\n").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn an_endless_line_or_event_is_refused_at_the_limit() {
        let mut d = SseDecoder::with_limit(100);
        assert!(d.push(&[b'x'; 60]).is_ok());
        assert_eq!(d.push(&[b'x'; 60]), Err(SseError::TooLarge(100)));
        let mut d = SseDecoder::with_limit(100);
        let line = format!("data: {}\n", "y".repeat(40));
        assert!(d.push(line.as_bytes()).is_ok());
        assert!(d.push(line.as_bytes()).is_ok());
        assert_eq!(d.push(line.as_bytes()), Err(SseError::TooLarge(100)));
        // Events within the limit pass however many there are.
        let mut d = SseDecoder::with_limit(100);
        for _ in 0..1000 {
            assert_eq!(d.push(b"data: {}\n\n").unwrap(), vec!["{}"]);
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        assert_eq!(decode_all(b"data: \xff\n\n"), Err(SseError::InvalidUtf8));
    }
}
