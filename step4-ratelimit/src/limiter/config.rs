//! [`Limits`]: what a limiter enforces, and the reasoning behind the defaults.

use tokio::time::Duration;

/// The limits to enforce together, and the windows they are counted over.
///
/// Each limit is optional: `None` or `Some(0)` means unlimited, the same
/// convention as the emulator's settings. All of them apply at once; a request
/// goes only when every limited dimension has room for it.
///
/// ```
/// use std::time::Duration;
/// use step4_ratelimit::limiter::Limits;
///
/// // gemini-2.5-flash on the free tier: 10 RPM, 250k TPM, 250 RPD.
/// let limits = Limits::new(10, 250_000, 250).with_max_in_flight(8);
/// assert_eq!(limits.window, Duration::from_secs(60));
/// assert_eq!(limits.margin_or_default(), Duration::from_millis(1200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests per `window` (RPM for a 60 s window).
    pub rpm: Option<u32>,
    /// Input tokens per `window` (TPM for a 60 s window).
    pub tpm: Option<u32>,
    /// Requests per `day` (RPD).
    pub rpd: Option<u32>,
    /// The window RPM and TPM are counted over. 60 s for the real API; tests
    /// use shorter ones.
    pub window: Duration,
    /// The window RPD is counted over. 24 h for the real API.
    pub day: Duration,
    /// How long past its window a slot stays in use, to cover the trip from
    /// us to the server. `None` picks [`Limits::margin_or_default`].
    pub margin: Option<Duration>,
    /// At most this many requests in flight at once (held permits). `None`
    /// or `Some(0)` means no cap.
    pub max_in_flight: Option<usize>,
}

impl Default for Limits {
    /// No limits at all, a 60 s window, a 24 h day, the default margin.
    fn default() -> Limits {
        Limits {
            rpm: None,
            tpm: None,
            rpd: None,
            window: Limits::WINDOW,
            day: Limits::DAY,
            margin: None,
            max_in_flight: None,
        }
    }
}

impl Limits {
    /// The window of the per-minute limits.
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// The window of the per-day limit.
    pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    /// The smallest default margin, whatever the window: comfortably above
    /// the 40 to 85 ms measured between admission and arrival.
    pub const MIN_MARGIN: Duration = Duration::from_millis(250);

    /// Requests per minute, input tokens per minute and requests per day,
    /// with 0 meaning unlimited (the shape of the emulator's `Quota`).
    pub fn new(rpm: u32, tpm: u32, rpd: u32) -> Limits {
        Limits {
            rpm: Some(rpm),
            tpm: Some(tpm),
            rpd: Some(rpd),
            ..Limits::default()
        }
    }

    /// The same limits counted over another window (RPM and TPM).
    pub fn with_window(mut self, window: Duration) -> Limits {
        self.window = window;
        self
    }

    /// The same limits with another day length (RPD).
    pub fn with_day(mut self, day: Duration) -> Limits {
        self.day = day;
        self
    }

    /// The same limits with an explicit margin (zero is allowed: it trusts
    /// that requests arrive the instant they are admitted).
    pub fn with_margin(mut self, margin: Duration) -> Limits {
        self.margin = Some(margin);
        self
    }

    /// The same limits with a cap on requests in flight.
    pub fn with_max_in_flight(mut self, max: usize) -> Limits {
        self.max_in_flight = Some(max);
        self
    }

    /// The margin in force: the configured one, or 2% of the window but at
    /// least [`Limits::MIN_MARGIN`].
    ///
    /// Why 2%: the margin must cover the gap between our stamp and the
    /// server's, which is tens of milliseconds, more when a burst opens many
    /// TLS connections at once. For a one-minute window 2% is 1.2 s, over ten
    /// times the worst gap measured, and costs 2% of throughput (each slot is
    /// busy 61.2 s instead of 60 s). For short windows the floor keeps it
    /// safe at the price of a larger share.
    pub fn margin_or_default(&self) -> Duration {
        self.margin
            .unwrap_or_else(|| (self.window / 50).max(Limits::MIN_MARGIN))
    }

    /// Requests per window, if limited.
    pub(crate) fn rpm_limit(&self) -> Option<u32> {
        self.rpm.filter(|&n| n > 0)
    }

    /// Input tokens per window, if limited.
    pub(crate) fn tpm_limit(&self) -> Option<u32> {
        self.tpm.filter(|&n| n > 0)
    }

    /// Requests per day, if limited.
    pub(crate) fn rpd_limit(&self) -> Option<u32> {
        self.rpd.filter(|&n| n > 0)
    }

    /// The in-flight cap, if any.
    pub(crate) fn in_flight_limit(&self) -> Option<usize> {
        self.max_in_flight.filter(|&n| n > 0)
    }
}
