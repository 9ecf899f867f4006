//! [`Permit`]: proof that a request was admitted, and how to report what it
//! really cost. Tokens are charged at admission, estimated; only the response
//! says the real count (`usageMetadata.promptTokenCount`), and
//! `permit.settle(actual)` puts the books right with it.

use std::fmt;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Duration, Instant};

/// Where a permit reports back: the books of the limiter that issued it (a
/// trait, so that this file depends on nothing else in the limiter, and
/// books kept elsewhere, like `bulk`'s in Redis, can issue permits too).
pub trait Settle: Send + Sync {
    /// Admission `id` was charged `charged` input tokens and really used
    /// `actual`. Must be cheap, and must not block.
    fn settle(&self, id: u64, charged: u32, actual: u32);

    /// The server refused admission `id` (a 429), so it did not count: give
    /// its slots back. The default keeps them, the safe choice for books
    /// that cannot undo a charge.
    fn refund(&self, id: u64) {
        let _ = id;
    }
}

/// An admitted request. Hold it while the request is in flight (with a cap
/// on requests in flight, dropping it frees that slot). Its window slots are
/// not given back on drop: the server counts the request until its window
/// has passed, whatever became of the answer; and unsettled, its estimate
/// stays charged, the safe choice when we cannot tell what was counted.
#[must_use = "the permit is how the request's real token count is reported"]
pub struct Permit {
    /// The admission's id: ids grow in admission order.
    id: u64,
    /// Input tokens charged at admission (the caller's estimate).
    tokens: u32,
    /// When the limiter let the request go.
    admitted_at: Instant,
    /// How long `acquire` waited.
    waited: Duration,
    /// Whom to tell the real token count.
    books: Arc<dyn Settle>,
    /// The in-flight slot, if requests in flight are capped: held, not read.
    _slot: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// A permit for admission `id` (limiters make them; callers `acquire`).
    pub fn new(
        books: Arc<dyn Settle>,
        id: u64,
        tokens: u32,
        admitted_at: Instant,
        waited: Duration,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Permit {
        Permit {
            id,
            tokens,
            admitted_at,
            waited,
            books,
            _slot: slot,
        }
    }

    /// The admission's id; ids also tell the order of admission.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The input tokens charged at admission.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    /// When the limiter let the request go: when its slots began to count.
    pub fn admitted_at(&self) -> Instant {
        self.admitted_at
    }

    /// How long `acquire` waited before admitting the request.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Reports the real input token count and gives the permit up: tokens
    /// charged too many go back at once (a waiter may go now); too few are
    /// charged for the rest of this admission's window.
    pub fn settle(self, actual_tokens: u32) {
        if actual_tokens != self.tokens {
            self.books.settle(self.id, self.tokens, actual_tokens);
        }
    }

    /// The server refused the request (429), so it did not count: give its
    /// slots back (its `retryDelay` says when to try again).
    pub fn refund(self) {
        self.books.refund(self.id);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, at) = (self.id, self.admitted_at);
        write!(f, "Permit {{ id: {id}, admitted_at: {at:?}, .. }}")
    }
}
