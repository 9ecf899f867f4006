//! The summary's notes on pacing: what the limiter kept to, how long the
//! requests waited for it, and how close to the limit the run went.
//!
//! The figures come from the turns the requests took (one per permit, timed
//! by [`common::run::Tries::turn`]), not from counters inside the limiter.

use std::time::Duration;

use common::run::Turns;

use crate::limiter::Limits;

/// The notes under a step 4 summary.
pub fn notes(limits: &Limits, limited: bool, turns: &Turns) -> Vec<String> {
    if !limited {
        return vec![
            "no limiter (--no-limit): every request went at once, and each 429 paused them all until its retryDelay".into(),
        ];
    }
    let mut notes = vec![describe(limits)];
    if turns.count > 0 {
        let wait = turns.waited.as_secs_f64();
        let average = wait / turns.count as f64;
        notes.push(format!(
            "waited in the limiter: {wait:.1} s in all, {average:.1} s per attempt on average"
        ));
    }
    notes.extend(pace(limits, turns));
    notes
}

/// What the limiter kept to, in one line.
pub fn describe(limits: &Limits) -> String {
    let window = seconds(limits.window);
    let mut parts = Vec::new();
    match (limits.rpm, limits.tpm) {
        (Some(rpm), Some(tpm)) => parts.push(format!(
            "{rpm} requests and {tpm} input tokens per {window}"
        )),
        (Some(rpm), None) => parts.push(format!("{rpm} requests per {window}")),
        (None, Some(tpm)) => parts.push(format!("{tpm} input tokens per {window}")),
        (None, None) => {}
    }
    if let Some(rpd) = limits.rpd {
        parts.push(format!("{rpd} requests per day"));
    }
    if let Some(n) = limits.max_in_flight {
        parts.push(format!("at most {n} in flight"));
    }
    if parts.is_empty() {
        return "limiter: no limits (all set to 0)".into();
    }
    format!(
        "limiter: {} (each slot held {} past its window, for the trip to the server)",
        parts.join(", "),
        seconds(limits.margin_or_default())
    )
}

/// How the run's pace compares with the request limit, as a share of it.
///
/// The fastest any client may go against a strict window of `rpm`: `rpm` at
/// once, then `rpm` more each window, so turn number `count` can come no
/// earlier than `ceil(count / rpm) - 1` windows after the first. That over
/// the time the turns really took is the share of the limit reached (the
/// margin costs about 2%).
fn pace(limits: &Limits, turns: &Turns) -> Option<String> {
    let rpm = u64::from(limits.rpm?);
    let (first, last) = (turns.first?, turns.last?);
    let (count, window) = (turns.count, seconds(limits.window));
    if count <= rpm {
        return Some(format!(
            "all {count} attempts fit in one window of {rpm} per {window}"
        ));
    }
    let ideal = limits.window.as_secs_f64() * (count.div_ceil(rpm) - 1) as f64;
    let actual = last.saturating_sub(first).as_secs_f64();
    if actual <= 0.0 {
        return None;
    }
    Some(format!(
        "pace: {:.1}% of the limit of {rpm} per {window}: {count} attempts went in {actual:.1} s from the first to the last, the limit allows {ideal:.1} s at the earliest",
        (ideal / actual).min(1.0) * 100.0,
    ))
}

/// `60 s`, `1.5 s`, `250 ms`: a duration as the summary says it.
pub fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        return format!("{} ms", duration.as_millis());
    }
    let s = duration.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn limits_are_described_in_words() {
        let limits = Limits::default()
            .with_rpm(10)
            .with_tpm(250_000)
            .with_rpd(250)
            .with_max_in_flight(4);
        assert_eq!(
            describe(&limits),
            "limiter: 10 requests and 250000 input tokens per 60 s, 250 requests per day, at most 4 in flight (each slot held 1.2 s past its window, for the trip to the server)"
        );
        let short = Limits::default().with_rpm(5).with_window(SEC / 2);
        assert!(describe(&short).starts_with("limiter: 5 requests per 500 ms"));
    }

    #[test]
    fn the_pace_is_a_share_of_the_limit() {
        let limits = Limits::default().with_rpm(10).with_window(10 * SEC);
        // 30 turns at 10 per 10 s: the best is 20 s from the first to the
        // last; 20.5 s (two margins of 250 ms) is 97.6% of the limit.
        let turns = Turns {
            count: 30,
            waited: 300 * SEC,
            first: Some(SEC),
            last: Some(SEC + Duration::from_millis(20_500)),
        };
        let notes = notes(&limits, true, &turns);
        assert_eq!(
            notes[1],
            "waited in the limiter: 300.0 s in all, 10.0 s per attempt on average"
        );
        assert!(
            notes[2].starts_with("pace: 97.6% of the limit of 10 per 10 s"),
            "{}",
            notes[2]
        );
        let one_window = Turns { count: 10, ..turns };
        assert_eq!(
            pace(&limits, &one_window).as_deref(),
            Some("all 10 attempts fit in one window of 10 per 10 s")
        );
        assert!(super::notes(&limits, false, &turns)[0].starts_with("no limiter"));
    }
}
