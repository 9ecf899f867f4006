//! [`Permit`]: proof that a request was admitted, and the way to report what
//! it really cost.
//!
//! We charge a request's input tokens when we admit it, but we only know the
//! exact count when the response arrives (`usageMetadata.promptTokenCount`).
//! The permit carries the estimate from `acquire` to that moment, so
//! `permit.settle(actual)` can correct the books: give tokens back if we
//! guessed high, charge the difference if we guessed low.

use std::fmt;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Duration, Instant};

/// Where a permit reports its real token count: the limiter that issued it.
///
/// This is the part of [`RateLimit`](super::RateLimit) that lives on the
/// permit. A limiter shared through Redis implements it by sending the
/// correction to Redis (from a spawned task if it must not block).
pub trait Settle: Send + Sync {
    /// Admission `id` was charged `charged` input tokens and really used
    /// `actual`. Must be cheap and must not block.
    fn settle(&self, id: u64, charged: u32, actual: u32);

    /// Admission `id` was refused by the server (a 429), which therefore did
    /// not count it: give its slots back. The default keeps them, the safe
    /// choice for a limiter that cannot undo a charge.
    fn refund(&self, id: u64) {
        let _ = id;
    }
}

/// An admitted request.
///
/// Hold it while the request is in flight: if the limiter caps requests in
/// flight, dropping the permit frees that slot. When the response arrives,
/// call [`Permit::settle`] with the prompt token count the server reported.
/// A permit dropped without settling keeps its estimate charged, the safe
/// choice when a request failed and we cannot tell what the server counted.
///
/// The window slot itself is *not* returned on drop: the server counted the
/// request when it arrived, and it keeps counting until the window has passed,
/// whatever happens to the response.
#[must_use = "the permit is how the request's real token count is reported"]
pub struct Permit {
    /// The admission's id, unique within its limiter.
    id: u64,
    /// Input tokens charged at admission (the caller's estimate).
    tokens: u32,
    /// When the limiter let the request go.
    admitted_at: Instant,
    /// How long `acquire` waited.
    waited: Duration,
    /// Who to tell the real token count.
    ledger: Arc<dyn Settle>,
    /// The in-flight slot, if the limiter caps requests in flight. Only read by `Debug`:
    /// it is held so that dropping the permit releases it.
    slot: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// A permit for admission `id`. Used by [`RateLimit`](super::RateLimit)
    /// implementations; callers get permits from `acquire`.
    pub fn new(
        ledger: Arc<dyn Settle>,
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
            ledger,
            slot,
        }
    }

    /// The admission's id. Ids grow in admission order, so they also tell the
    /// order requests were admitted in.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The input tokens charged at admission.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    /// When the limiter let the request go: the instant its slots started
    /// counting.
    pub fn admitted_at(&self) -> Instant {
        self.admitted_at
    }

    /// How long `acquire` waited before admitting the request.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Reports the real input token count and gives the permit up.
    ///
    /// If `actual_tokens` is below the estimate, the difference is returned
    /// to the tokens-per-window budget at once (a waiter may go now); if it is
    /// above, the difference is charged, for the rest of this admission's
    /// window.
    pub fn settle(self, actual_tokens: u32) {
        if actual_tokens != self.tokens {
            self.ledger.settle(self.id, self.tokens, actual_tokens);
        }
    }
}

impl Permit {
    /// The server refused the request (429) and so did not count it: give
    /// its slots back to the limiter. The server's `retryDelay` already says
    /// when to try again; holding the slot as well would make the retry wait
    /// a second window.
    pub fn refund(self) {
        self.ledger.refund(self.id);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("id", &self.id)
            .field("tokens", &self.tokens)
            .field("admitted_at", &self.admitted_at)
            .field("waited", &self.waited)
            .field("holds_slot", &self.slot.is_some())
            .finish()
    }
}
