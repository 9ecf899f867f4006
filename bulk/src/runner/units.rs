//! Durations and counts the way the runner's lines say them: `60 s`,
//! `250 ms`, `once`, `5 times`.
//!
//! The progress bar, the watchdog and the summary's notes all speak of the
//! limiter's window and of how often the server said 429; one spelling for
//! all of them, step 4's among them, keeps the lines comparable.

pub use step4_ratelimit::pace::seconds;

/// `once`, `twice`, `5 times`.
pub fn times(n: usize) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_and_counts_read_like_speech() {
        assert_eq!(seconds(Duration::from_secs(60)), "60 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
        assert_eq!(times(1), "once");
        assert_eq!(times(2), "twice");
        assert_eq!(times(7), "7 times");
    }
}
