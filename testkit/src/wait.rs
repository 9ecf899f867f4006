//! Waiting for something that should happen "soon", without timing it.
//!
//! Machines running the tests are shared and noisy: a test polls for the
//! event it expects and gives up only after a generous [`PATIENCE`], so a
//! slow machine makes a test slower, never red.

use std::time::Duration;

/// How long a test waits for something that should happen "soon" (a
/// request reaching the emulator, a process stopping) before it fails.
/// Generous, because the machine may be busy compiling other crates.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `condition` every 10 ms until it holds; panics after [`PATIENCE`].
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
