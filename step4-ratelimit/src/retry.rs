//! When to retry a failed request, and how long to wait first.
//!
//! Not every error deserves a second try, and not every wait is ours to
//! choose. The decision table, in the order it is checked:
//!
//! | the error | what we do |
//! |---|---|
//! | would fail every request (bad key, unknown model: [`stops_the_run`]) | stop the run with one line |
//! | 429 on a **per-day** quota | stop: nothing will pass before the daily reset |
//! | any other, once `max_retries` retries are spent | give up: the request failed |
//! | 429 with `RetryInfo.retryDelay` | wait exactly what the server said, then retry |
//! | 429 without a delay, 500, 502, 503, 504, 408, timeout, broken connection | exponential backoff with full jitter, then retry |
//! | anything else (400, a blocked prompt, an undecodable body) | give up: sending it again gives the same answer |
//!
//! Why listen to `retryDelay`: the server knows when its window frees a slot,
//! we can only guess. Google's own Python SDK ignores it (it backs off 1, 2,
//! 4, 8 s plus jitter, docs/wire.md#retries-in-googles-python-sdk); after a per-minute 429 that means
//! several retries that are certain to fail, each of which counts against
//! the quota again.
//!
//! Why full jitter: when a 503 says the model is overloaded, many clients
//! got it at the same moment. If they all wait 1 s, 2 s, 4 s, they all come
//! back at the same moment too. Full jitter waits a random time between zero
//! and the exponential cap (`random(0, min(cap, base * 2^retry))`), which
//! spreads the retries over the whole interval: the "Exponential Backoff
//! and Jitter" analysis on the AWS architecture blog found it finishes the
//! work with the fewest calls. Google's SDK adds up to 1 s of jitter to the
//! full exponential delay instead; our `base` and `cap` are its defaults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Error, run::stops_the_run};
use rand::{Rng, SeedableRng, rngs::SmallRng};

/// How a runner retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (4: five attempts in all, like Google's
    /// `HttpRetryOptions`). 0 never retries.
    pub max_retries: u32,
    /// The backoff cap of the first retry; it doubles with each retry.
    pub base: Duration,
    /// The largest backoff cap, however many retries.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// Google's SDK defaults: 5 attempts, 1 s doubling up to 60 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 4,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The server said how long to wait: wait that long, then retry.
    RetryAfter(Duration),
    /// Back off for a random time (see [`RetryPolicy::backoff`]), then retry.
    Backoff,
    /// The request failed for good; the run goes on.
    GiveUp,
    /// The day's quota is spent: stop starting requests until the reset.
    StopForTheDay,
    /// Every request would fail this way: stop the run.
    StopTheRun,
}

impl RetryPolicy {
    /// What to do after `error`, when `retries` retries were already made.
    pub fn decide(&self, error: &Error, retries: u32) -> Decision {
        if stops_the_run(error) {
            return Decision::StopTheRun;
        }
        let quota = error.api().and_then(|api| api.quota.as_ref());
        if error.is_rate_limited() && quota.is_some_and(|q| q.is_per_day()) {
            return Decision::StopForTheDay;
        }
        if retries >= self.max_retries {
            return Decision::GiveUp;
        }
        if let (true, Some(delay)) = (error.is_rate_limited(), error.retry_delay()) {
            return Decision::RetryAfter(delay);
        }
        // A refused connection in the middle of a run: the server was there
        // when the run started, so it may well come back.
        if error.is_retryable() || matches!(error, Error::Connect { .. }) {
            return Decision::Backoff;
        }
        Decision::GiveUp
    }

    /// The longest backoff before retry number `retry` (0 for the first):
    /// `min(cap, base * 2^retry)`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random backoff before retry number `retry`, anywhere between zero
    /// and [`RetryPolicy::backoff_cap`] ("full jitter").
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        self.backoff_cap(retry).mul_f64(rng.random::<f64>())
    }

    /// [`RetryPolicy::backoff`] with randomness of its own: a generator
    /// seeded from the clock and a counter, so that no two calls, in one
    /// process or in many, draw alike (which is the point of jitter).
    pub fn full_jitter(&self, retry: u32) -> Duration {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let seed = nanos ^ u64::from(std::process::id()).rotate_left(32) ^ call.rotate_left(48);
        self.backoff(retry, &mut SmallRng::seed_from_u64(seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::error::{ApiError, QuotaViolation};

    fn api(status: u16, delay: Option<u64>, quota_id: Option<&str>) -> Error {
        Error::from(ApiError {
            http_status: status,
            status: "X".into(),
            message: "m".into(),
            retry_delay: delay.map(Duration::from_secs),
            quota: quota_id.map(|id| QuotaViolation {
                quota_id: id.into(),
                metric: "generate_content_free_tier_requests".into(),
                model: None,
                value: Some("10".into()),
                malformed: false,
            }),
            reason: None,
        })
    }

    const PER_MINUTE: &str = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier";
    const PER_DAY: &str = "GenerateRequestsPerDayPerProjectPerModel-FreeTier";

    #[test]
    fn the_decision_table() {
        let policy = RetryPolicy::default();
        let cases = [
            (
                api(429, Some(26), Some(PER_MINUTE)),
                Decision::RetryAfter(Duration::from_secs(26)),
            ),
            (api(429, None, Some(PER_MINUTE)), Decision::Backoff),
            (api(429, Some(3600), Some(PER_DAY)), Decision::StopForTheDay),
            (api(503, None, None), Decision::Backoff),
            (api(500, None, None), Decision::Backoff),
            (api(504, None, None), Decision::Backoff),
            (api(408, None, None), Decision::Backoff),
            (Error::Timeout(Duration::from_secs(1)), Decision::Backoff),
            (Error::Transport("reset".into()), Decision::Backoff),
            (
                Error::Connect {
                    host: "h".into(),
                    detail: "refused".into(),
                },
                Decision::Backoff,
            ),
            (api(400, None, None), Decision::GiveUp),
            (
                Error::Blocked {
                    reason: "SAFETY".into(),
                },
                Decision::GiveUp,
            ),
            (api(403, None, None), Decision::StopTheRun),
            (api(404, None, None), Decision::StopTheRun),
            (Error::MissingKey, Decision::StopTheRun),
        ];
        for (error, expected) in cases {
            assert_eq!(policy.decide(&error, 0), expected, "{error}");
        }
    }

    #[test]
    fn retries_run_out_but_stops_do_not_wait_for_them() {
        let policy = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let overloaded = api(503, None, None);
        assert_eq!(policy.decide(&overloaded, 1), Decision::Backoff);
        assert_eq!(policy.decide(&overloaded, 2), Decision::GiveUp);
        let per_minute = api(429, Some(5), Some(PER_MINUTE));
        assert_eq!(policy.decide(&per_minute, 2), Decision::GiveUp);
        // The daily quota and fatal errors stop whatever the count.
        assert_eq!(
            policy.decide(&api(429, None, Some(PER_DAY)), 2),
            Decision::StopForTheDay
        );
        assert_eq!(
            policy.decide(&api(404, None, None), 2),
            Decision::StopTheRun
        );
        let never = RetryPolicy {
            max_retries: 0,
            ..policy
        };
        assert_eq!(never.decide(&overloaded, 0), Decision::GiveUp);
    }

    #[test]
    fn backoff_caps_double_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let caps: Vec<u64> = (0..8).map(|r| policy.backoff_cap(r).as_secs()).collect();
        assert_eq!(caps, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy.backoff_cap(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_cap_and_spreads() {
        let policy = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(7);
        for retry in 0..10 {
            let cap = policy.backoff_cap(retry);
            let waits: Vec<Duration> = (0..2000).map(|_| policy.backoff(retry, &mut rng)).collect();
            assert!(
                waits.iter().all(|w| *w <= cap),
                "retry {retry}: above {cap:?}"
            );
            // Full jitter covers the whole interval, not just its top: some
            // waits fall in the lowest tenth and some in the highest.
            assert!(
                waits.iter().any(|w| *w < cap / 10),
                "retry {retry}: none low"
            );
            assert!(
                waits.iter().any(|w| *w > cap.mul_f64(0.9)),
                "retry {retry}: none high"
            );
        }
    }
}
