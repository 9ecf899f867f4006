//! The protobuf `Duration` in JSON, as a server writes it: `"26s"`, `"45.837906927s"`.
//!
//! Gemini's 429s say how long to wait in `RetryInfo.retryDelay`, a
//! `google.protobuf.Duration`, whose JSON form is seconds with up to nine
//! decimals and an `s`. That grammar is the server's, not a person's: what a
//! user types on the command line (`500ms`, `2m`) is
//! [`cli::parse_duration`](crate::cli::parse_duration)'s job, so the two
//! never get mixed up.

use std::time::Duration;

/// Parses a protobuf `Duration` string: `"26s"`, `"45.837906927s"`, `"0.5s"`.
///
/// Returns `None` for anything else (negative, no unit, garbage): a wrong
/// delay is worse than none, because the caller then falls back to backoff.
/// An absurdly long delay parses (saturating at `u64::MAX` seconds); it is
/// [`Error::from`](crate::error::Error::from) that refuses to wait for it.
pub fn parse_proto_duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    // More seconds than a u64 holds is still a (very long) delay, not garbage:
    // it saturates, and the ceiling in `Error::from` turns it away.
    let secs: u64 = whole.parse().unwrap_or(u64::MAX);
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_protobuf_durations() {
        assert_eq!(parse_proto_duration("26s"), Some(Duration::from_secs(26)));
        assert_eq!(
            parse_proto_duration("45.837906927s"),
            Some(Duration::new(45, 837_906_927))
        );
        assert_eq!(
            parse_proto_duration("0.5s"),
            Some(Duration::from_millis(500))
        );
        for bad in [
            "",
            "s",
            "26",
            "-1s",
            "1.2.3s",
            "abc",
            ".5s",
            "1.0000000001s",
            "500ms",
            "2m",
        ] {
            assert_eq!(parse_proto_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn absurd_durations_saturate_instead_of_failing() {
        assert_eq!(
            parse_proto_duration("9223372036854775807s"),
            Some(Duration::from_secs(9_223_372_036_854_775_807))
        );
        assert_eq!(
            parse_proto_duration("99999999999999999999999s"),
            Some(Duration::from_secs(u64::MAX))
        );
    }
}
