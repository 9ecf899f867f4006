//! The quota: a strict sliding-window log per API key and model, like the free tier.
//!
//! A request is admitted if and only if, counting only *admitted* requests:
//! - requests in the trailing `window`, plus this one, stay within RPM;
//! - prompt tokens in the trailing `window`, plus this request's, stay within TPM;
//! - requests in the trailing `day`, plus this one, stay within RPD.
//!
//! An entry stamped `t` is inside the window at `now` while `now - t < window`, so it frees its
//! slot at exactly `t + window`. A rejection reports the true time until enough entries have
//! aged out for this same request to pass (the latest of the violated quotas), which is what
//! goes into the 429's `RetryInfo`. Rejected requests leave no trace.
//!
//! Logs are pruned on every check and never hold more than the limit's worth of entries
//! (RPM/RPD entries) per bucket; empty buckets are dropped by a periodic sweep, so memory stays
//! bounded however long the emulator runs. Time is passed in, which keeps this module pure and
//! lets tests step through time exactly.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::errors::QuotaKind;

/// How often (in checks) every bucket is swept for expired entries.
const SWEEP_EVERY: u64 = 256;

/// The limits that apply to one request. 0 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests per window.
    pub rpm: u32,
    /// Prompt tokens per window.
    pub tpm: u32,
    /// Requests per day.
    pub rpd: u32,
}

/// The outcome of [`Limiter::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request counts from now on.
    Admitted,
    /// Over at least one limit.
    Rejected {
        /// Each exceeded quota with its limit.
        violations: Vec<(QuotaKind, u32)>,
        /// Time until the same request would be admitted.
        retry_after: Duration,
    },
}

#[derive(Default)]
struct Bucket {
    /// Admitted requests in the trailing window: arrival and prompt tokens.
    minute: VecDeque<(Instant, u32)>,
    /// Sum of the tokens in `minute`.
    minute_tokens: u64,
    /// Admitted requests in the trailing day.
    day: VecDeque<Instant>,
}

impl Bucket {
    fn prune(&mut self, now: Instant, window: Duration, day: Duration) {
        while let Some(&(at, tokens)) = self.minute.front() {
            if now.saturating_duration_since(at) < window {
                break;
            }
            self.minute_tokens -= u64::from(tokens);
            self.minute.pop_front();
        }
        while let Some(&at) = self.day.front() {
            if now.saturating_duration_since(at) < day {
                break;
            }
            self.day.pop_front();
        }
    }

    fn is_empty(&self) -> bool {
        self.minute.is_empty() && self.day.is_empty()
    }
}

/// Per (key, model) sliding-window logs.
pub struct Limiter {
    window: Duration,
    day: Duration,
    buckets: HashMap<(u64, &'static str), Bucket>,
    checks: u64,
}

impl Limiter {
    /// A limiter with the RPM/TPM `window` and the RPD `day`.
    pub fn new(window: Duration, day: Duration) -> Limiter {
        Limiter {
            window,
            day,
            buckets: HashMap::new(),
            checks: 0,
        }
    }

    /// Admits or rejects one request of `tokens` prompt tokens at `now`, and records it if
    /// admitted. `key` identifies the caller (a hash of the API key), `model` the quota bucket.
    pub fn check(
        &mut self,
        key: u64,
        model: &'static str,
        tokens: u32,
        limits: Limits,
        now: Instant,
    ) -> Decision {
        self.checks += 1;
        if self.checks % SWEEP_EVERY == 0 {
            self.sweep(now);
        }
        let (window, day) = (self.window, self.day);
        let bucket = self.buckets.entry((key, model)).or_default();
        bucket.prune(now, window, day);

        let mut violations = Vec::new();
        let mut retry_after = Duration::ZERO;
        let mut note = |kind, limit, frees_at: Option<Instant>| {
            violations.push((kind, limit));
            // A request that could never fit (more tokens than the whole TPM) is told to wait
            // a full window, the longest any entry stays.
            let wait = frees_at.map_or(window, |t| t.saturating_duration_since(now));
            retry_after = retry_after.max(wait);
        };
        if limits.rpm > 0 && bucket.minute.len() >= limits.rpm as usize {
            // Oldest entries leave first; this many must go to make room for one more.
            let must_leave = bucket.minute.len() + 1 - limits.rpm as usize;
            let frees_at = bucket
                .minute
                .get(must_leave - 1)
                .and_then(|(at, _)| at.checked_add(window));
            note(QuotaKind::RequestsPerMinute, limits.rpm, frees_at);
        }
        if limits.tpm > 0 && bucket.minute_tokens + u64::from(tokens) > u64::from(limits.tpm) {
            let frees_at = tokens_free_at(bucket, tokens, limits.tpm, window);
            note(QuotaKind::InputTokensPerMinute, limits.tpm, frees_at);
        }
        if limits.rpd > 0 && bucket.day.len() >= limits.rpd as usize {
            let must_leave = bucket.day.len() + 1 - limits.rpd as usize;
            let frees_at = bucket
                .day
                .get(must_leave - 1)
                .and_then(|at| at.checked_add(day));
            note(QuotaKind::RequestsPerDay, limits.rpd, frees_at);
        }
        if !violations.is_empty() {
            if bucket.is_empty() {
                self.buckets.remove(&(key, model));
            }
            return Decision::Rejected {
                violations,
                retry_after,
            };
        }

        if limits.rpm > 0 || (limits.tpm > 0 && tokens > 0) {
            bucket.minute.push_back((now, tokens));
            bucket.minute_tokens += u64::from(tokens);
        }
        if limits.rpd > 0 {
            bucket.day.push_back(now);
        }
        if bucket.is_empty() {
            self.buckets.remove(&(key, model));
        }
        Decision::Admitted
    }

    /// Prunes every bucket and forgets the empty ones.
    pub fn sweep(&mut self, now: Instant) {
        let (window, day) = (self.window, self.day);
        self.buckets.retain(|_, bucket| {
            bucket.prune(now, window, day);
            !bucket.is_empty()
        });
    }

    /// Number of (key, model) buckets currently held.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Number of log entries currently held, over all buckets and both windows.
    pub fn entries(&self) -> usize {
        self.buckets
            .values()
            .map(|b| b.minute.len() + b.day.len())
            .sum()
    }
}

/// When enough tokens have left the window for `tokens` more to fit, or `None` if they never
/// can (the request alone is over the limit).
fn tokens_free_at(bucket: &Bucket, tokens: u32, tpm: u32, window: Duration) -> Option<Instant> {
    if tokens > tpm {
        return None;
    }
    let allowed_remaining = u64::from(tpm - tokens);
    let mut remaining = bucket.minute_tokens;
    for &(at, entry_tokens) in &bucket.minute {
        remaining -= u64::from(entry_tokens);
        if remaining <= allowed_remaining {
            return at.checked_add(window);
        }
    }
    None
}

/// The most of `times` (in order) inside any span shorter than `window`:
/// what a strict sliding window would have had to hold. Tests and the bench
/// judge a client's pacing with it, against [`crate::Stats::generates`].
pub fn most_in_any_window(times: &[Duration], window: Duration) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, &at) in times.iter().enumerate() {
        while at - times[start] >= window {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_in_any_window_counts_spans_shorter_than_the_window() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let window = Duration::from_millis(100);
        assert_eq!(most_in_any_window(&ms(&[0, 50, 99, 100, 150]), window), 3);
        assert_eq!(most_in_any_window(&ms(&[0, 100, 200]), window), 1);
        assert_eq!(most_in_any_window(&[], window), 0);
    }

    const WINDOW: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);

    fn limits(rpm: u32, tpm: u32, rpd: u32) -> Limits {
        Limits { rpm, tpm, rpd }
    }

    fn rejected(decision: Decision) -> (Vec<(QuotaKind, u32)>, Duration) {
        match decision {
            Decision::Rejected {
                violations,
                retry_after,
            } => (violations, retry_after),
            Decision::Admitted => panic!("expected a rejection"),
        }
    }

    #[test]
    fn rpm_holds_exactly_at_the_boundary() {
        let mut limiter = Limiter::new(WINDOW, DAY);
        let t0 = Instant::now();
        let l = limits(3, 0, 0);
        for i in 0..3 {
            let at = t0 + Duration::from_secs(i * 10);
            assert_eq!(limiter.check(1, "m", 5, l, at), Decision::Admitted);
        }
        let (violations, retry) =
            rejected(limiter.check(1, "m", 5, l, t0 + Duration::from_secs(25)));
        assert_eq!(violations, vec![(QuotaKind::RequestsPerMinute, 3)]);
        // The first entry (t0) frees its slot at t0 + 60 s.
        assert_eq!(retry, Duration::from_secs(35));
        // One nanosecond early is still too early; exactly on time passes.
        let early = t0 + WINDOW - Duration::from_nanos(1);
        assert!(matches!(
            limiter.check(1, "m", 5, l, early),
            Decision::Rejected { .. }
        ));
        assert_eq!(limiter.check(1, "m", 5, l, t0 + WINDOW), Decision::Admitted);
    }

    #[test]
    fn rejected_requests_do_not_count() {
        let mut limiter = Limiter::new(WINDOW, DAY);
        let t0 = Instant::now();
        let l = limits(1, 0, 0);
        assert_eq!(limiter.check(1, "m", 1, l, t0), Decision::Admitted);
        for i in 1..50 {
            let at = t0 + Duration::from_millis(i * 100);
            assert!(matches!(
                limiter.check(1, "m", 1, l, at),
                Decision::Rejected { .. }
            ));
        }
        assert_eq!(limiter.check(1, "m", 1, l, t0 + WINDOW), Decision::Admitted);
        assert_eq!(limiter.entries(), 1);
    }

    #[test]
    fn tpm_counts_prompt_tokens_and_waits_for_enough_to_leave() {
        let mut limiter = Limiter::new(WINDOW, DAY);
        let t0 = Instant::now();
        let l = limits(0, 100, 0);
        assert_eq!(limiter.check(1, "m", 40, l, t0), Decision::Admitted);
        assert_eq!(
            limiter.check(1, "m", 40, l, t0 + Duration::from_secs(1)),
            Decision::Admitted
        );
        assert_eq!(
            limiter.check(1, "m", 20, l, t0 + Duration::from_secs(2)),
            Decision::Admitted
        );
        let (violations, retry) =
            rejected(limiter.check(1, "m", 50, l, t0 + Duration::from_secs(3)));
        assert_eq!(violations, vec![(QuotaKind::InputTokensPerMinute, 100)]);
        // 100 in the window; 50 more need 50 to leave: the first two entries (t0, t0+1s).
        assert_eq!(retry, Duration::from_secs(58));
        let (_, never) = rejected(limiter.check(1, "m", 101, l, t0 + Duration::from_secs(3)));
        assert_eq!(never, WINDOW);
    }

    #[test]
    fn rpd_uses_the_day_window_and_buckets_are_separate() {
        let mut limiter = Limiter::new(WINDOW, DAY);
        let t0 = Instant::now();
        let l = limits(0, 0, 2);
        assert_eq!(limiter.check(1, "m", 1, l, t0), Decision::Admitted);
        assert_eq!(limiter.check(1, "m", 1, l, t0 + WINDOW), Decision::Admitted);
        let (violations, retry) = rejected(limiter.check(1, "m", 1, l, t0 + 2 * WINDOW));
        assert_eq!(violations, vec![(QuotaKind::RequestsPerDay, 2)]);
        assert_eq!(retry, DAY - 2 * WINDOW);
        // Another key or another model has its own quota.
        assert_eq!(
            limiter.check(2, "m", 1, l, t0 + 2 * WINDOW),
            Decision::Admitted
        );
        assert_eq!(
            limiter.check(1, "n", 1, l, t0 + 2 * WINDOW),
            Decision::Admitted
        );
    }

    #[test]
    fn several_violations_report_the_longest_wait() {
        let mut limiter = Limiter::new(WINDOW, DAY);
        let t0 = Instant::now();
        let l = limits(1, 0, 1);
        assert_eq!(limiter.check(1, "m", 1, l, t0), Decision::Admitted);
        let (violations, retry) = rejected(limiter.check(1, "m", 1, l, t0));
        assert_eq!(violations.len(), 2);
        assert_eq!(retry, DAY);
    }

    #[test]
    fn state_stays_bounded() {
        let mut limiter = Limiter::new(Duration::from_millis(100), Duration::from_secs(1));
        let t0 = Instant::now();
        let l = limits(1_000, 0, 0);
        for i in 0..100_000u64 {
            let at = t0 + Duration::from_micros(i * 50);
            limiter.check(i % 7, "m", 3, l, at);
        }
        assert!(limiter.entries() <= 7 * 1_000);
        limiter.sweep(t0 + Duration::from_secs(60));
        assert_eq!((limiter.buckets(), limiter.entries()), (0, 0));
        // Unlimited quotas record nothing at all.
        limiter.check(1, "m", 3, limits(0, 0, 0), t0);
        assert_eq!(limiter.buckets(), 0);
    }
}
