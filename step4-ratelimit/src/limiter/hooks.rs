//! What a tool built on the limiter needs beyond the lesson (`bulk` uses
//! them): retries that go first, a limit learned from the server mid-run,
//! requests an earlier run sent, and figures for a progress line (the bench
//! and the tests read them too). Each is a small window onto the books of
//! [`super`], which does not depend on this file.

use common::quota::QuotaKind;
use tokio::time::{Duration, Instant};

use super::{KINDS, LimitError, Limiter, Permit, Window, hold};
use crate::limits::limit;

impl Limiter {
    /// [`Limiter::acquire`] for a retry: it goes before every request still
    /// waiting, after the retries already waiting (it has waited longest).
    pub async fn acquire_first(&self, tokens: u32) -> Result<Permit, LimitError> {
        self.acquire_in(tokens, true).await
    }

    /// Changes one limit (0 = none) for the rest of the run: what its window
    /// counted keeps counting, and a waiter that now fits goes at once.
    pub fn set_limit(&self, kind: QuotaKind, n: u32) {
        let mut state = self.0.lock();
        let hold = hold(&state.limits, kind);
        let limits = &mut state.limits;
        let field = match kind {
            QuotaKind::Rpm => &mut limits.rpm,
            QuotaKind::Tpm => &mut limits.tpm,
            QuotaKind::Rpd => &mut limits.rpd,
        };
        *field = limit(n);
        let window = &mut state.windows[index(kind)];
        match window {
            Some(window) if n > 0 => window.set_limit(n),
            _ => *window = limit(n).map(|n| Window::new(n, hold)),
        }
        drop(state);
        self.0.wake_driver.notify_one();
    }

    /// Counts requests an earlier run sent, given as how long ago, in the
    /// request windows (call it before the first `acquire`, so that the logs
    /// stay in expiry order). Their tokens are not known, and not counted.
    pub fn remember(&self, ages: &[Duration]) {
        let mut ages = ages.to_vec();
        ages.sort_unstable_by(|a, b| b.cmp(a)); // Oldest first.
        let mut state = self.0.lock();
        let now = Instant::now();
        for age in ages {
            state.admit(0, now.checked_sub(age).unwrap_or(now));
        }
    }

    /// How much of `kind` counts right now (0 when it is not limited), and,
    /// while one more would not fit, when it will.
    pub fn usage(&self, kind: QuotaKind) -> (u64, Option<Instant>) {
        let mut state = self.0.lock();
        let now = Instant::now();
        state.expire(now);
        let Some(window) = &state.windows[index(kind)] else {
            return (0, None);
        };
        let full_until = Some(window.ready_at(1, now)).filter(|&at| at > now);
        (window.used(), full_until)
    }

    /// How many requests wait in the queue (one whose caller left counts
    /// until the driver reaches it).
    pub fn queued(&self) -> usize {
        self.0.lock().queue.len()
    }

    /// How many times the driver woke: once per batch of admissions, not
    /// once per waiter (the tests use it to show there is no herd).
    pub fn wakeups(&self) -> u64 {
        self.0.lock().wakeups
    }
}

/// Where `kind`'s window is in the books.
fn index(kind: QuotaKind) -> usize {
    KINDS.iter().position(|&k| k == kind).unwrap_or(0)
}
