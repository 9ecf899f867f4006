//! [`Window`]: what one limit admitted, and when each admission stops
//! counting. An entry weighs 1 (a request) or its input tokens (TPM). All are
//! held for the same time, so they expire in the order they came: expiring
//! is popping from the front, and "when is there room?" a walk from the front
//! that stops as soon as enough frees.

use std::collections::VecDeque;

use tokio::time::{Duration, Instant};

/// One admission, as a window remembers it.
#[derive(Debug)]
struct Entry {
    /// The admission's id, so that a permit can find its entry to settle it.
    /// Ids grow in admission order, so the log is sorted by id.
    id: u64,
    /// When this entry stops counting: admission + window + margin.
    until: Instant,
    /// What it weighs: 1 request, or its input tokens.
    units: u64,
}

/// A sliding-window log for one limit.
#[derive(Debug)]
pub(crate) struct Window {
    /// At most this many units may count at once.
    limit: u64,
    /// How long an entry counts: the window plus the margin.
    hold: Duration,
    /// The sum of `units` over `log`, kept so that checking room is O(1).
    used: u64,
    /// Entries still counting, oldest first.
    log: VecDeque<Entry>,
}

impl Window {
    /// An empty window that allows `limit` units within any `hold`.
    pub fn new(limit: u32, hold: Duration) -> Window {
        Window {
            limit: u64::from(limit),
            hold,
            used: 0,
            log: VecDeque::new(),
        }
    }

    /// Changes the limit; what is counted stays counted.
    pub fn set_limit(&mut self, limit: u32) {
        self.limit = u64::from(limit);
    }

    /// The units counting right now (call [`Window::expire`] first).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Forgets the entries that stopped counting at or before `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.log.front().filter(|entry| entry.until <= now) {
            self.used = self.used.saturating_sub(entry.units);
            self.log.pop_front();
        }
    }

    /// The earliest instant, not before `now`, at which `units` more fit
    /// (after [`Window::expire`] with the same `now`): `now` if they fit,
    /// else when the entry that frees the last of the excess expires.
    pub fn ready_at(&self, units: u64, now: Instant) -> Instant {
        let wanted = self.used.saturating_add(units);
        if wanted <= self.limit {
            return now;
        }
        let mut excess = wanted - self.limit;
        for entry in &self.log {
            if entry.units >= excess {
                return entry.until;
            }
            excess -= entry.units;
        }
        self.log.back().map_or(now, |entry| entry.until)
    }

    /// Counts admission `id`, of `units`, made at `at` (admissions come in
    /// order, so the log stays in expiry order).
    pub fn record(&mut self, id: u64, units: u64, at: Instant) {
        self.log.push_back(Entry {
            id,
            until: later(at, self.hold),
            units,
        });
        self.used = self.used.saturating_add(units);
    }

    /// Changes what admission `id` weighs, if it still counts (a binary
    /// search: the log is sorted by id); true if that freed room.
    pub fn reweigh(&mut self, id: u64, units: u64) -> bool {
        let Ok(index) = self.log.binary_search_by_key(&id, |entry| entry.id) else {
            return false; // Already expired: it no longer counts anyway.
        };
        let old = std::mem::replace(&mut self.log[index].units, units);
        self.used = self.used.saturating_sub(old).saturating_add(units);
        units < old
    }
}

/// `now + duration`, or thirty years on if that would overflow (a window of
/// `Duration::MAX` means "never expires", not a panic).
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 60 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn room_comes_back_oldest_first() {
        let t0 = Instant::now();
        let mut window = Window::new(10, 10 * SEC);
        window.record(1, 4, t0);
        window.record(2, 4, t0 + SEC);
        window.record(3, 2, t0 + 2 * SEC);

        // Full: 3 more units need the first entry (4 units) to expire.
        assert_eq!(window.ready_at(3, t0 + 2 * SEC), t0 + 10 * SEC);
        // 5 more need the first two.
        assert_eq!(window.ready_at(5, t0 + 2 * SEC), t0 + 11 * SEC);

        window.expire(t0 + 10 * SEC);
        assert_eq!(window.used(), 6);
        assert_eq!(window.ready_at(4, t0 + 10 * SEC), t0 + 10 * SEC);
    }

    #[test]
    fn reweigh_finds_live_entries_only() {
        let t0 = Instant::now();
        let mut window = Window::new(100, 10 * SEC);
        window.record(7, 50, t0);
        window.record(9, 30, t0);
        assert!(window.reweigh(9, 10));
        assert_eq!(window.used(), 60);
        assert!(!window.reweigh(7, 70));
        assert_eq!(window.used(), 80);
        assert!(!window.reweigh(8, 0), "no such entry");
        assert_eq!(window.used(), 80);
    }

    #[test]
    fn a_window_of_forever_does_not_overflow() {
        let t0 = Instant::now();
        let mut window = Window::new(1, Duration::MAX);
        window.record(1, 1, t0);
        assert!(window.ready_at(1, t0) > t0 + 365 * 24 * 3600 * SEC);
    }
}
