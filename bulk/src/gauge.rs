//! A counter of things in progress, kept right however the work ends.
//!
//! The limiters count their waiters and the runner counts requests in flight
//! and in back-off, for the progress bar and the stats. Async work can end
//! two ways: it finishes, or its future is dropped (a `select!` chose another
//! branch, Ctrl-C cut it off). A guard whose `Drop` decrements covers both,
//! where a decrement at the end of the function would miss the second.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts one unit in progress on `counter` for as long as it lives.
pub struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    /// Adds one to `counter`; dropping the guard takes it off again.
    pub fn enter(counter: &'a AtomicUsize) -> Gauge<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_while_alive_and_stops_when_dropped() {
        let counter = AtomicUsize::new(0);
        let first = Gauge::enter(&counter);
        let second = Gauge::enter(&counter);
        assert_eq!(counter.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        drop(second);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
