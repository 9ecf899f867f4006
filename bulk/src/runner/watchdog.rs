//! The watchdog: a run never waits longer than one window without a line
//! on stderr that says what it waits for, and until when.
//!
//! A paced run can go quiet for a long time for good reasons: a full
//! window, the server's `retryDelay`, our own daily limit. From the outside
//! each looks like a hung program. The runner's monitor asks the
//! [`Watchdog`] ten times a second whether the queue has gone silent for
//! longer than a window would explain, and prints the line it returns.

use std::time::Duration;

use crate::pace::Stats;
use tokio::time::Instant;

use super::{daily, units::seconds};

/// Makes sure a run never waits longer than one window without a line on
/// stderr saying what it waits for and until when.
pub struct Watchdog {
    /// The last time something happened: an admission, or a line.
    last_news: Instant,
    /// Admissions counted then.
    admitted: u64,
}

impl Watchdog {
    /// A watchdog whose silence starts `now`.
    pub fn new(now: Instant) -> Watchdog {
        Watchdog {
            last_news: now,
            admitted: 0,
        }
    }

    /// The line to print, if requests have waited a whole window with no news.
    pub fn check(&mut self, stats: &Stats, waiting: usize, now: Instant) -> Option<String> {
        if stats.admitted != self.admitted || waiting == 0 || stats.stopped.is_some() {
            self.admitted = stats.admitted;
            self.last_news = now;
            return None;
        }
        // A full window is the normal wait (plus the margin, plus a tick):
        // only a longer silence needs a line.
        let normal =
            stats.limits.window + stats.limits.margin_or_default() + Duration::from_secs(1);
        if now.saturating_duration_since(self.last_news) < normal {
            return None;
        }
        self.last_news = now;
        Some(waiting_line(stats, waiting, now))
    }
}

/// What `waiting` requests are waiting for, and until when, in one line.
fn waiting_line(stats: &Stats, waiting: usize, now: Instant) -> String {
    if let Some(until) = stats.paused_until {
        let left = until.saturating_duration_since(now);
        return format!(
            "still waiting: {waiting} requests wait for the server's retryDelay, until {} (in {})",
            daily::clock_in(left),
            daily::human(left)
        );
    }
    let usage = &stats.usage;
    let limits = &stats.limits;
    if let Some(rpd) = limits
        .rpd
        .filter(|&n| n > 0 && usage.day_requests >= u64::from(n))
    {
        return format!(
            "still waiting: {waiting} requests wait for the daily limit ({} of {rpd} requests per day used); it frees as the day's first requests age out; Ctrl-C stops the run",
            usage.day_requests
        );
    }
    format!(
        "still waiting: {waiting} requests wait for room in the limiter's window ({} of {} requests, {} of {} tokens per {}); Ctrl-C stops the run",
        usage.requests,
        limits.rpm.unwrap_or(0),
        usage.tokens,
        limits.tpm.unwrap_or(0),
        seconds(limits.window)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::{Limits, Usage};

    #[test]
    fn a_long_wait_gets_a_line_that_says_what_for_and_until_when() {
        let start = Instant::now();
        let mut stats = Stats {
            limits: Limits::default()
                .with_rpm(2)
                .with_rpd(2)
                .with_window(Duration::from_secs(10)),
            waiting: 1,
            admitted: 2,
            total_wait: Duration::ZERO,
            usage: Usage {
                requests: 0,
                tokens: 0,
                day_requests: 2,
            },
            paused_until: None,
            stopped: None,
            wakeups: 0,
            day_full_until: None,
        };
        let mut watch = Watchdog::new(start);
        assert_eq!(watch.check(&stats, 1, start), None, "an admission is news");
        let normal = start + Duration::from_secs(11);
        assert_eq!(watch.check(&stats, 1, normal), None, "a window is normal");
        let line = watch
            .check(&stats, 1, start + Duration::from_secs(12))
            .expect("a line after more than a window");
        assert!(line.contains("daily limit (2 of 2"), "{line}");
        stats.paused_until = Some(start + Duration::from_secs(100));
        let line = watch
            .check(&stats, 1, start + Duration::from_secs(24))
            .expect("another line a window later");
        assert!(
            line.contains("retryDelay, until ") && line.contains("UTC"),
            "{line}"
        );
        assert_eq!(
            watch.check(&stats, 0, start + Duration::from_secs(99)),
            None
        );
    }
}
