//! The daily quota: when it comes back (midnight Pacific time), and the
//! lines that say it is spent.
//!
//! Requests per day reset at midnight in California (docs/wire.md#rate-limits), whatever
//! the user's own time zone. When a per-day 429 carries a `retryDelay`, that
//! is the server's word and we use it; when it does not, we work the reset
//! out here. Pacific time is UTC-8 in winter and UTC-7 from the second Sunday
//! of March to the first Sunday of November (US rules since 2007). A dozen
//! lines of calendar arithmetic are cheaper than a time-zone database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Error;

/// The reason given to the limiter when the day's quota is spent: its
/// waiters (and, with `--redis`, every process sharing the quota) end with it.
pub const DAILY_QUOTA: &str = "the daily quota is spent";

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// The line printed when the server says the daily quota is spent: which
/// quota, and when it resets (`resume_in`).
pub fn spent_line(error: &Error, resume_in: Duration) -> String {
    let quota = error.api().and_then(|api| api.quota.as_ref());
    let what = quota
        .map(|q| {
            let limit = q.value.as_deref().map(|v| format!(", limit {v} per day"));
            let model = q.model.as_deref().map(|m| format!(" for {m}"));
            format!(
                " ({}{}{})",
                q.quota_id,
                limit.unwrap_or_default(),
                model.unwrap_or_default()
            )
        })
        .unwrap_or_default();
    format!(
        "daily quota spent{what}: no more requests until it resets in {} (at {}); the requests not yet sent are reported as not done",
        human(resume_in),
        clock_in(resume_in),
    )
}

/// The line printed when an earlier run was refused for the day, and the
/// day is not over yet: nothing is sent.
pub fn spent_earlier_line(model: &str, resume_in: Duration) -> String {
    format!(
        "the daily quota of {model} is spent (an earlier run was refused for the day): nothing is sent; it resets in {} (at {}); the requests are reported as not done; --forget-limits forgets this",
        human(resume_in),
        clock_in(resume_in),
    )
}

/// The line printed when our own count of the day reaches `rpd` (from
/// `source`, if known) with `waiting` requests still queued.
pub fn reached_line(rpd: u32, source: Option<&str>, waiting: usize, resume_in: Duration) -> String {
    let source = source.map(|s| format!(" ({s})")).unwrap_or_default();
    format!(
        "daily quota reached by our own count: {rpd} requests per day{source} are spent; no more requests until it resets in {} (at {}); the {waiting} requests still waiting are reported as not done",
        human(resume_in),
        clock_in(resume_in),
    )
}

/// How long from now until midnight Pacific time.
pub fn until_midnight_pacific() -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    until_midnight_pacific_from(now)
}

/// How long from `unix_seconds` (UTC) until the next midnight Pacific time.
pub fn until_midnight_pacific_from(unix_seconds: i64) -> Duration {
    let local = unix_seconds + pacific_offset(unix_seconds);
    Duration::from_secs((DAY - local.rem_euclid(DAY)) as u64)
}

/// Pacific time's offset from UTC at `unix_seconds`: -7 h in daylight saving
/// time, -8 h otherwise.
fn pacific_offset(unix_seconds: i64) -> i64 {
    let (year, _, _) = civil_from_days(unix_seconds.div_euclid(DAY));
    // Daylight saving time starts at 2:00 PST (10:00 UTC) on the second
    // Sunday of March and ends at 2:00 PDT (9:00 UTC) on the first Sunday of
    // November.
    let starts = (nth_sunday(year, 3, 2) * DAY) + 10 * HOUR;
    let ends = (nth_sunday(year, 11, 1) * DAY) + 9 * HOUR;
    if (starts..ends).contains(&unix_seconds) {
        -7 * HOUR
    } else {
        -8 * HOUR
    }
}

/// The day number (days since 1970-01-01) of the `n`th Sunday of a month.
fn nth_sunday(year: i64, month: i64, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    // 1970-01-01 was a Thursday: day 0 is weekday 4 (Sunday = 0).
    let weekday = (first + 4).rem_euclid(7);
    first + (7 - weekday) % 7 + 7 * (n - 1)
}

/// Days since 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The wall-clock time `delay` from now, as `HH:MM:SS UTC` (with the date
/// when it is not today): the "until when" of a wait.
pub fn clock_in(delay: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = now.saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX / 2));
    clock(at, now)
}

/// `at` (unix seconds) as `HH:MM:SS UTC`, with the date if not `now`'s day.
fn clock(at: i64, now: i64) -> String {
    let secs = at.rem_euclid(DAY);
    let time = format!(
        "{:02}:{:02}:{:02} UTC",
        secs / HOUR,
        (secs % HOUR) / 60,
        secs % 60
    );
    if at.div_euclid(DAY) == now.div_euclid(DAY) {
        time
    } else {
        let (y, m, d) = civil_from_days(at.div_euclid(DAY));
        format!("{y}-{m:02}-{d:02} {time}")
    }
}

/// A delay as people say it: "7 h 12 min", "38 s".
pub fn human(delay: Duration) -> String {
    let secs = delay.as_secs();
    match secs {
        0..60 => format!("{:.0} s", delay.as_secs_f64().ceil()),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(year: i64, month: i64, day: i64, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day) * DAY + hour * HOUR + minute * 60
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-1, 0, 59, 10_000, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn dst_boundaries_follow_the_us_rules() {
        // 2025: DST from Sunday 9 March to Sunday 2 November.
        assert_eq!(civil_from_days(nth_sunday(2025, 3, 2)), (2025, 3, 9));
        assert_eq!(civil_from_days(nth_sunday(2025, 11, 1)), (2025, 11, 2));
        assert_eq!(pacific_offset(utc(2025, 1, 15, 12, 0)), -8 * HOUR);
        assert_eq!(pacific_offset(utc(2025, 7, 15, 12, 0)), -7 * HOUR);
        assert_eq!(pacific_offset(utc(2025, 3, 9, 9, 59)), -8 * HOUR);
        assert_eq!(pacific_offset(utc(2025, 3, 9, 10, 0)), -7 * HOUR);
        assert_eq!(pacific_offset(utc(2025, 11, 2, 8, 59)), -7 * HOUR);
        assert_eq!(pacific_offset(utc(2025, 11, 2, 9, 0)), -8 * HOUR);
    }

    #[test]
    fn midnight_pacific_is_found_in_winter_and_summer() {
        // 20:00 UTC in January is 12:00 PST: twelve hours to go.
        let winter = until_midnight_pacific_from(utc(2025, 1, 15, 20, 0));
        assert_eq!(winter, Duration::from_secs(12 * 3600));
        // 06:30 UTC in July is 23:30 PDT the day before: thirty minutes.
        let summer = until_midnight_pacific_from(utc(2025, 7, 15, 6, 30));
        assert_eq!(summer, Duration::from_secs(30 * 60));
        // At midnight exactly, the next reset is a whole day away.
        let midnight = until_midnight_pacific_from(utc(2025, 1, 15, 8, 0));
        assert_eq!(midnight, Duration::from_secs(DAY as u64));
    }

    #[test]
    fn clock_times_carry_the_date_only_on_another_day() {
        let now = utc(2025, 1, 15, 20, 0);
        assert_eq!(clock(now + 90, now), "20:01:30 UTC");
        assert_eq!(clock(now + 5 * HOUR, now), "2025-01-16 01:00:00 UTC");
    }

    #[test]
    fn the_daily_quota_line_says_which_quota_and_when_it_resets() {
        // When it resets is worked out by the runner: the server's delay
        // only when longer than our own reckoning.
        use common::error::{ApiError, QuotaViolation};
        let refusal = Error::from(ApiError {
            http_status: 429,
            status: "RESOURCE_EXHAUSTED".into(),
            message: "You exceeded your current quota".into(),
            retry_delay: Some(Duration::from_secs(30)),
            quota: Some(QuotaViolation {
                quota_id: "GenerateRequestsPerDayPerProjectPerModel-FreeTier".into(),
                metric: "generate_content_free_tier_requests".into(),
                model: Some("gemini-2.5-flash".into()),
                value: Some("250".into()),
                malformed: false,
            }),
            reason: None,
        });
        let line = spent_line(&refusal, Duration::from_secs(3 * 3600 + 60));
        assert!(
            line.starts_with(
                "daily quota spent (GenerateRequestsPerDayPerProjectPerModel-FreeTier, limit 250 per day for gemini-2.5-flash): no more requests until it resets in 3 h 1 min (at "
            ),
            "{line}"
        );
        assert!(line.contains(" UTC)"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn our_own_count_says_where_the_limit_came_from() {
        let line = reached_line(
            2,
            Some("learned from the server"),
            3,
            Duration::from_secs(90),
        );
        assert!(
            line.starts_with("daily quota reached by our own count: 2 requests per day (learned from the server) are spent; no more requests until it resets in 1 min 30 s (at "),
            "{line}"
        );
        assert!(line.ends_with("the 3 requests still waiting are reported as not done"));
        let line = spent_earlier_line("gemini-2.5-flash", Duration::from_secs(60));
        assert!(
            line.starts_with("the daily quota of gemini-2.5-flash is spent"),
            "{line}"
        );
    }

    #[test]
    fn delays_read_like_speech() {
        assert_eq!(human(Duration::from_millis(37_200)), "38 s");
        assert_eq!(human(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(
            human(Duration::from_secs(7 * 3600 + 12 * 60 + 5)),
            "7 h 12 min"
        );
    }
}
