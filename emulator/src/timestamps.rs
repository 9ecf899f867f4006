//! Timestamps as Google's JSON writes them, and the wall clock that follows tokio's.
//!
//! Resources (batch jobs, files) carry RFC 3339 times in UTC with nine fractional digits
//! (`"2025-12-10T18:27:01.407650525Z"`, as in a captured batch operation; docs/wire.md#batch-mode).
//! The emulator measures every delay on tokio's clock, which tests can pause and step; a
//! [`WallClock`] turns such an instant into a calendar time, so the times a client reads move
//! exactly as the emulator's own timers do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use tokio::time::Instant;

/// The calendar time at one tokio instant, to date every later instant from.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    at: Instant,
    wall: SystemTime,
}

impl WallClock {
    /// Pairs tokio's now with the system's now.
    pub fn now() -> WallClock {
        WallClock {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The calendar time of `instant` (instants before the pairing are dated at it).
    pub fn wall_time(&self, instant: Instant) -> SystemTime {
        let since = instant.saturating_duration_since(self.at);
        self.wall.checked_add(since).unwrap_or(self.wall)
    }

    /// `instant` as an RFC 3339 timestamp.
    pub fn rfc3339(&self, instant: Instant) -> String {
        rfc3339(self.wall_time(instant))
    }
}

/// `2025-12-10T18:27:01.407650525Z`: UTC, always nine fractional digits.
pub fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let nanos = i128::try_from(since_epoch.as_nanos()).unwrap_or(0);
    let date =
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        date.hour(),
        date.minute(),
        date.second(),
        date.nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_nine_fractional_digits_in_utc() {
        let time = UNIX_EPOCH + Duration::new(1_765_391_221, 407_650_525);
        assert_eq!(rfc3339(time), "2025-12-10T18:27:01.407650525Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wall_clock_follows_tokio() {
        let clock = WallClock::now();
        let later = Instant::now() + Duration::from_secs(90);
        let gap = clock
            .wall_time(later)
            .duration_since(clock.wall_time(Instant::now()))
            .unwrap();
        assert_eq!(gap, Duration::from_secs(90));
    }
}
