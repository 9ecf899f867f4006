//! The notes under a run's summary: what the limiter enforced and where
//! each limit came from, how long requests waited in it, how close to the
//! limit the run went, and why the server still said 429 if it did.
//!
//! The summary's own lines (answered, failed, latency, rate) are the shared
//! report's ([`common::report::Summary`]); these notes are what a paced run
//! adds, worked out once the run has ended from the limiter's [`Stats`] and
//! the run's [`Pace`].

use std::time::Duration;
use step4_ratelimit::pace::describe;

use crate::pace::{Limits, Stats};
use common::report::Summary;
use tokio::time::Instant;

use super::{
    daily::DAILY_QUOTA,
    learn::Source,
    units::{seconds, times},
};

/// The first and last admission of a run, and how many there were.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pace {
    /// When the first admission went.
    pub first: Option<Instant>,
    /// When the last admission went.
    pub last: Option<Instant>,
    /// How many admissions the server counted (refused ones are refunded).
    pub count: u64,
    /// The lowest and highest admission id this run was given.
    pub ids: Option<(u64, u64)>,
    /// Whether the ids number the admissions of every process sharing the
    /// quota (`--redis`), not only this run's.
    pub shared: bool,
    /// With a shared quota: the other processes' requests already in the
    /// window when this run's first request went.
    pub before: u64,
}

impl Pace {
    /// Counts an admission that went `at` with admission id `id`.
    pub fn admitted(&mut self, at: Instant, id: u64) {
        self.first = Some(self.first.map_or(at, |first| first.min(at)));
        self.last = Some(self.last.map_or(at, |last| last.max(at)));
        self.count += 1;
        self.ids = Some(
            self.ids
                .map_or((id, id), |(low, high)| (low.min(id), high.max(id))),
        );
    }

    /// An admission the server refused and we refunded: it did not use the
    /// limit, so it does not count in the pace either.
    pub fn refunded(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// With a shared quota: how many admissions every process made from this
    /// run's first to its last, this run's included, plus those already in
    /// the window at the first (taken as sent then: the pace errs high, and
    /// is capped at 100%). `None` when the quota is not shared, or the ids
    /// cannot tell (Redis lost its counter when the quota sat idle longer
    /// than a window).
    fn combined(&self) -> Option<u64> {
        let (low, high) = self.ids.filter(|_| self.shared)?;
        let all = high.checked_sub(low)? + 1 + self.before;
        (all > self.count).then_some(all)
    }
}

/// The notes under the summary: what the limiter enforced, how long
/// requests waited in it, how close to the limit the run went, and why the
/// server still said 429 if it did.
pub fn notes(
    stats: &Stats,
    pace: &Pace,
    summary: &Summary,
    paced: bool,
    sources: Option<[Source; 3]>,
) -> Vec<String> {
    if !paced {
        let mut notes = vec!["no limiter (--no-limit): every request was sent at once".to_string()];
        if summary.rate_limited > 0 {
            notes.push(format!(
                "the server answered 429 {}: run without --no-limit to stay under the limit",
                times(summary.rate_limited)
            ));
        }
        return notes;
    }
    let mut notes = vec![describe(&stats.limits)];
    if let Some(sources) = sources {
        notes.push(describe_sources(&stats.limits, sources));
    }
    notes.extend(waited(stats, summary));
    notes.extend(pace_against_limit(
        &stats.limits,
        pace,
        summary,
        stats.total_wait,
    ));
    let learned = sources.is_some_and(|s| s.contains(&Source::Learned));
    let day_spent = stats.stopped.as_deref() == Some(DAILY_QUOTA);
    if summary.rate_limited > 0 && day_spent {
        notes.push(format!(
            "the server answered 429 {}: the day's quota is spent (the daily line above says until when)",
            times(summary.rate_limited)
        ));
    } else if summary.rate_limited > 0 && learned {
        notes.push(format!(
            "the server answered 429 {} before the limiter learned its limits (see \"limits in force\"); the next run starts from them",
            times(summary.rate_limited)
        ));
    } else if summary.rate_limited > 0 {
        notes.push(earlier_requests_line(summary.rate_limited, pace.shared));
    }
    notes
}

/// The server said 429 although the limiter kept to the limits in force
/// and no 429 named a lower one (it would have been learned). The likely
/// cause: the server's window already held requests from before this run,
/// which the limiter could not know about.
fn earlier_requests_line(rate_limited: usize, shared: bool) -> String {
    let (others, advice) = if shared {
        (
            "a program not using this Redis, or an earlier run",
            "Wait a minute between runs on the free tier",
        )
    } else {
        (
            "another program using the same key, or an earlier step or run",
            "Wait a minute between runs on the free tier, and let programs that run together share one quota with --redis",
        )
    };
    format!(
        "the server answered 429 {} although the limiter kept to its limits: its window most likely held requests this run did not send ({others}); the limiter waited as the server asked. {advice}; if it happens every time, the project's limits are lower: set --rpm/--tpm/--rpd (and --window)",
        times(rate_limited)
    )
}

/// How long admissions waited in the limiter, named for what was counted:
/// requests when every request went once, admissions when retries went too.
fn waited(stats: &Stats, summary: &Summary) -> Option<String> {
    if stats.admitted == 0 {
        return None;
    }
    let wait = stats.total_wait.as_secs_f64();
    let average = wait / stats.admitted as f64;
    if summary.retries == 0 {
        return Some(format!(
            "waited in the limiter: {wait:.1} s in all, {average:.1} s per request on average"
        ));
    }
    Some(format!(
        "waited in the limiter: {wait:.1} s in all over {} attempts ({} included), {average:.1} s per attempt on average",
        stats.admitted,
        match summary.retries {
            1 => "1 retry".to_string(),
            n => format!("{n} retries"),
        }
    ))
}

/// Where each limit in force came from, in one line.
fn describe_sources(limits: &Limits, sources: [Source; 3]) -> String {
    let parts: Vec<String> = [
        ("RPM", limits.rpm, sources[0]),
        ("TPM", limits.tpm, sources[1]),
        ("RPD", limits.rpd, sources[2]),
    ]
    .iter()
    .map(|(name, value, source)| match value {
        Some(n) => format!("{name} {n} ({source})"),
        None => format!("{name} unlimited ({source})"),
    })
    .collect();
    format!("limits in force: {}", parts.join(", "))
}

/// How the run's pace compares with the request limit, as a share of it
/// (the summary's first line already gives the rate).
///
/// The fastest any client may go against a strict window of `rpm`: the first
/// `rpm` requests at once, then `rpm` more each window, so admission number
/// `count` can go no earlier than `(ceil(count / rpm) - 1)` windows after the
/// first. Dividing that by when our last admission really went says what
/// share of the allowed rate we reached (the margin costs about 2%).
///
/// When the quota is shared through Redis, what counts is every process's
/// admissions: the admission ids number them all, so the ids of our first
/// and last admission say how many went in between, ours and the others'.
fn pace_against_limit(
    limits: &Limits,
    pace: &Pace,
    summary: &Summary,
    waited: Duration,
) -> Option<String> {
    let rpm = limits.rpm?;
    let (first, last) = (pace.first?, pace.last?);
    // Refused attempts are not counted (they were refunded), retried ones
    // are: the count is of requests only when each went once.
    let noun = if summary.retries == 0 || pace.count == (summary.succeeded + summary.failed) as u64
    {
        "requests"
    } else {
        "attempts"
    };
    let combined = pace.combined();
    let (count, whose) = match combined {
        Some(all) => (
            all,
            format!(
                "{all} requests of all the processes sharing the quota ({} of them this run's {noun})",
                pace.count
            ),
        ),
        None => (pace.count, format!("{} {noun}", pace.count)),
    };
    let window = seconds(limits.window);
    if count <= u64::from(rpm) {
        // Fitting in one window is not the same as not waiting: the window
        // may have held requests from before this run, or the server paused.
        let why = if waited < Duration::from_millis(100) {
            "none had to wait for the limit"
        } else if pace.shared {
            "the wait was for other processes' requests in the window, or for the server's retryDelay"
        } else {
            "the wait was for requests sent before this run, still in the window, or for the server's retryDelay"
        };
        return Some(format!(
            "all {whose} fit in one window of {rpm} per {window}: {why}"
        ));
    }
    let windows = count.div_ceil(u64::from(rpm)) - 1;
    let ideal = limits.window.as_secs_f64() * windows as f64;
    let actual = last.saturating_duration_since(first).as_secs_f64();
    if actual <= 0.0 {
        return None;
    }
    let share = (ideal / actual).min(1.0);
    let label = if combined.is_some() {
        "combined pace"
    } else {
        "pace"
    };
    Some(format!(
        "{label}: {:.1}% of the limit of {rpm} per {window}: {whose} went in {actual:.1} s from the first to the last, the limit allows {ideal:.1} s at the earliest",
        share * 100.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary of `requests` requests with `retries` retries and
    /// `rate_limited` 429s.
    fn summary(requests: usize, retries: usize, rate_limited: usize) -> Summary {
        Summary {
            requests,
            succeeded: requests,
            empty_answers: 0,
            failed: 0,
            rate_limited,
            retries,
            elapsed_s: 68.2,
            throughput_rpm: 17.6,
            latency_ms: common::report::Latency::default(),
            not_done: 0,
            sum_of_latencies_s: 0.0,
            notes: Vec::new(),
            paced: true,
            extra: serde_json::Map::new(),
        }
    }

    fn stats(limits: Limits, admitted: u64, total_wait: Duration) -> Stats {
        Stats {
            limits,
            waiting: 0,
            admitted,
            total_wait,
            usage: crate::pace::Usage::default(),
            paused_until: None,
            stopped: None,
            wakeups: 0,
            day_full_until: None,
        }
    }

    #[test]
    fn the_pace_keeps_the_first_and_last_admission_and_refunds_refusals() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.admitted(start + Duration::from_secs(2), 7);
        pace.admitted(start, 3);
        pace.admitted(start + Duration::from_secs(1), 5);
        pace.refunded();
        assert_eq!(pace.first, Some(start));
        assert_eq!(pace.last, Some(start + Duration::from_secs(2)));
        assert_eq!((pace.count, pace.ids), (2, Some((3, 7))));
    }

    #[test]
    fn pace_compares_the_last_admission_with_the_earliest_allowed() {
        let limits = Limits::default().with_rpm(10);
        let start = Instant::now();
        let pace = Pace {
            first: Some(start),
            last: Some(start + Duration::from_millis(61_200)),
            count: 20,
            ids: Some((1, 20)),
            shared: false,
            before: 0,
        };
        let wait = Duration::from_secs(612);
        let line = pace_against_limit(&limits, &pace, &summary(20, 0, 0), wait).expect("a line");
        assert_eq!(
            line,
            "pace: 98.0% of the limit of 10 per 60 s: 20 requests went in 61.2 s from the first to the last, the limit allows 60.0 s at the earliest"
        );
        assert!(!line.contains("req/min"), "one rate, the summary's: {line}");
        // 12 requests, 8 of them sent twice (a 503, say): 20 counted attempts.
        let with_retries = pace_against_limit(&limits, &pace, &summary(12, 8, 0), wait);
        assert!(with_retries.expect("a line").contains("20 attempts went"));
        assert_eq!(
            pace_against_limit(&Limits::default(), &pace, &summary(20, 0, 0), wait),
            None
        );
    }

    #[test]
    fn one_window_says_none_waited_only_when_none_did() {
        let limits = Limits::default().with_rpm(10);
        let start = Instant::now();
        let few = Pace {
            first: Some(start),
            last: Some(start + Duration::from_millis(50)),
            count: 7,
            ids: Some((1, 7)),
            shared: false,
            before: 0,
        };
        let quick = pace_against_limit(&limits, &few, &summary(7, 0, 0), Duration::ZERO);
        assert_eq!(
            quick.as_deref(),
            Some("all 7 requests fit in one window of 10 per 60 s: none had to wait for the limit")
        );
        let slow = pace_against_limit(&limits, &few, &summary(7, 0, 0), Duration::from_secs(300))
            .expect("a line");
        assert!(!slow.contains("none had to wait"), "{slow}");
        assert!(slow.contains("requests sent before this run"), "{slow}");
    }

    #[test]
    fn a_shared_quota_reports_the_combined_pace_of_every_process() {
        // Three processes, 10 each, one budget of 10 per 10 s: this run's
        // ids 5..=29 span 25 admissions, 10 of them its own.
        let limits = Limits::default()
            .with_rpm(10)
            .with_window(Duration::from_secs(10));
        let start = Instant::now();
        let pace = Pace {
            first: Some(start),
            last: Some(start + Duration::from_millis(20_500)),
            count: 10,
            ids: Some((5, 29)),
            shared: true,
            before: 0,
        };
        let wait = Duration::from_secs(120);
        let line = pace_against_limit(&limits, &pace, &summary(10, 0, 0), wait).expect("a line");
        assert_eq!(
            line,
            "combined pace: 97.6% of the limit of 10 per 10 s: 25 requests of all the processes sharing the quota (10 of them this run's requests) went in 20.5 s from the first to the last, the limit allows 20.0 s at the earliest"
        );
        // A run that found 7 of the others' requests in the window counts
        // them: its ids 8..=21 and those 7 are 21 requests in three windows.
        let late = Pace {
            ids: Some((8, 21)),
            before: 7,
            ..pace
        };
        let line = pace_against_limit(&limits, &late, &summary(10, 0, 0), wait).expect("a line");
        assert!(
            line.starts_with("combined pace: 97.6% of the limit of 10 per 10 s: 21 requests"),
            "{line}"
        );
        // Alone on the quota, the same run reads as its own pace.
        let alone = Pace {
            ids: Some((1, 10)),
            ..pace
        };
        let line = pace_against_limit(&limits, &alone, &summary(10, 0, 0), wait).expect("a line");
        assert!(
            line.starts_with("all 10 requests fit in one window"),
            "{line}"
        );
        // The notes never claim nobody waited when the limiter says it did.
        let stats = stats(limits, 10, wait);
        let notes = notes(&stats, &pace, &summary(10, 0, 0), true, None);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("waited in the limiter: 120.0 s"))
        );
        assert!(
            !notes.iter().any(|n| n.contains("none had to wait")),
            "{notes:?}"
        );
    }

    #[test]
    fn waits_are_counted_per_request_or_per_attempt_as_they_were() {
        let limits = Limits::default().with_rpm(10);
        let per_request = waited(
            &stats(limits.clone(), 20, Duration::from_secs(612)),
            &summary(20, 0, 0),
        );
        assert_eq!(
            per_request.as_deref(),
            Some("waited in the limiter: 612.0 s in all, 30.6 s per request on average")
        );
        let per_attempt = waited(
            &stats(limits.clone(), 22, Duration::from_secs(44)),
            &summary(12, 10, 0),
        );
        assert_eq!(
            per_attempt.as_deref(),
            Some(
                "waited in the limiter: 44.0 s in all over 22 attempts (10 retries included), 2.0 s per attempt on average"
            )
        );
        let one = waited(
            &stats(limits, 11, Duration::from_secs(11)),
            &summary(10, 1, 1),
        );
        assert!(one.expect("a line").contains("(1 retry included)"));
    }

    #[test]
    fn a_429_at_the_limiters_own_limits_blames_earlier_requests_not_the_limits() {
        let limits = Limits::default().with_rpm(10);
        let stats = stats(limits, 10, Duration::from_secs(55));
        let pace = Pace::default();
        let table = [Source::Table("free"); 3];
        let first = notes(&stats, &pace, &summary(10, 10, 10), true, Some(table));
        let line = first.last().expect("a note");
        assert!(
            line.starts_with("the server answered 429 10 times although the limiter kept to its limits: its window most likely held requests this run did not send (another program using the same key, or an earlier step or run); the limiter waited as the server asked. Wait a minute between runs on the free tier, and let programs that run together share one quota with --redis; if"),
            "{line}"
        );
        assert!(!line.contains("its limits are lower"), "{line}");
        // A spent day is its own reason.
        let day = Stats {
            stopped: Some(DAILY_QUOTA.to_string()),
            ..stats.clone()
        };
        let line = notes(&day, &pace, &summary(10, 0, 8), true, Some(table));
        assert_eq!(
            line.last().map(String::as_str),
            Some(
                "the server answered 429 8 times: the day's quota is spent (the daily line above says until when)"
            )
        );
        // Sharing through Redis, the other processes are no suspects.
        let shared = Pace {
            shared: true,
            ..pace
        };
        let line = notes(&stats, &shared, &summary(10, 10, 10), true, Some(table));
        let line = line.last().expect("a note");
        assert!(
            line.contains("(a program not using this Redis, or an earlier run)"),
            "{line}"
        );
        assert!(!line.contains("with --redis"), "{line}");
        let learned = [
            Source::Learned,
            Source::Table("free"),
            Source::Table("free"),
        ];
        let second = notes(&stats, &pace, &summary(10, 10, 10), true, Some(learned));
        assert!(
            second
                .last()
                .expect("a note")
                .contains("before the limiter learned")
        );
    }
}
