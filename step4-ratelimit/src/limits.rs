//! [`Limits`]: what the limiter enforces, and over which windows.
//!
//! The command line ([`crate::options`]) fills it from the model's free tier
//! or `--rpm`, `--tpm` and `--rpd`; the [`limiter`](crate::limiter) keeps to
//! it.

use std::time::Duration;

/// The limits to enforce together, and the windows they are counted over.
///
/// Each limit is optional, and `None` is the one way to say "no limit": the
/// builders store the command line's 0 as `None`, and the limiter reads a
/// `Some(0)` set by hand as `None` too ([`Limits::normalised`]).
///
/// ```
/// use std::time::Duration;
/// use step4_ratelimit::limiter::Limits;
///
/// // gemini-2.5-flash on the free tier: 10 RPM, 250k TPM, 250 RPD.
/// let limits = Limits::default().with_rpm(10).with_tpm(250_000).with_rpd(250);
/// assert_eq!(limits.rpm, Some(10));
/// assert_eq!(Limits::default().with_tpm(0).tpm, None);
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
    /// The window RPM and TPM are counted over: 60 s on the real API.
    pub window: Duration,
    /// The window RPD is counted over: 24 h on the real API.
    pub day: Duration,
    /// How long past its window a slot stays taken, to cover the trip from us
    /// to the server; `None` picks [`Limits::margin_or_default`].
    pub margin: Option<Duration>,
    /// At most this many requests in flight (permits held); `None`: no cap.
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

    /// The same limits with `rpm` requests per window; 0 is no limit.
    pub fn with_rpm(mut self, rpm: u32) -> Limits {
        self.rpm = limit(rpm);
        self
    }

    /// The same limits with `tpm` input tokens per window; 0 is no limit.
    pub fn with_tpm(mut self, tpm: u32) -> Limits {
        self.tpm = limit(tpm);
        self
    }

    /// The same limits with `rpd` requests per day; 0 is no limit.
    pub fn with_rpd(mut self, rpd: u32) -> Limits {
        self.rpd = limit(rpd);
        self
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

    /// The same limits with an explicit margin (zero trusts that requests
    /// arrive the instant they are admitted).
    pub fn with_margin(mut self, margin: Duration) -> Limits {
        self.margin = Some(margin);
        self
    }

    /// The same limits with a cap on requests in flight; 0 is no cap.
    pub fn with_max_in_flight(mut self, max: usize) -> Limits {
        self.max_in_flight = limit(max);
        self
    }

    /// The margin in force: the one given, or 2% of the window but at least
    /// [`Limits::MIN_MARGIN`].
    ///
    /// Why 2%: the margin must cover the gap between our stamp and the
    /// server's, tens of milliseconds, more when a burst opens many TLS
    /// connections at once. For a minute, 2% is 1.2 s, over ten times the
    /// worst gap measured, and costs 2% of throughput (each slot is busy
    /// 61.2 s instead of 60 s). For short windows the floor keeps it safe at
    /// the price of a larger share.
    pub fn margin_or_default(&self) -> Duration {
        self.margin
            .unwrap_or_else(|| (self.window / 50).max(Limits::MIN_MARGIN))
    }

    /// The same limits with every `Some(0)` read as `None`, so that the code
    /// behind a limiter has one case to handle.
    pub fn normalised(self) -> Limits {
        Limits {
            rpm: self.rpm.and_then(limit),
            tpm: self.tpm.and_then(limit),
            rpd: self.rpd.and_then(limit),
            max_in_flight: self.max_in_flight.and_then(limit),
            ..self
        }
    }
}

/// `n` as a limit: 0, the outside world's "no limit", is `None`.
pub(crate) fn limit<N: PartialEq + Default>(n: N) -> Option<N> {
    (n != N::default()).then_some(n)
}
