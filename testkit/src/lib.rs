//! Helpers for the workspace's tests: run a step's binary against an emulator.
//!
//! A crate of its own (never published, a dev-dependency only), so that no
//! library a learner reads or a binary ships carries test code: the panicking
//! asserts, child-process control and `/proc` reads all live here.
//!
//! Every step is tested the way a learner uses it: as a program, with
//! arguments, reading its stdout. The test starts an [`emulator`] on
//! 127.0.0.1 with the settings it needs, points the binary at it through
//! `GOOGLE_GEMINI_BASE_URL` (exactly as Google's SDKs would be), and reads
//! the `--json` summary from the last line of stdout. The emulator's own
//! statistics then say what really reached the server.
//!
//! - [`command`]: the step's binary ([`StepCommand`]), running ([`RunningStep`]) and
//!   finished ([`StepOutput`], with the checks every test makes).
//! - [`emulators`]: emulators set up for a test (quick, slow, faulty, restartable) and
//!   the counts of what reached them.
//! - [`reliability`]: the reliability suite as scenarios (`assert_*`) each step calls.
//! - [`pacing`]: what step 4 and bulk promise alike about the limiter, as scenarios.
//! - [`hostile`]: a server that misbehaves the way a hostile server or proxy can.
//! - [`redis`]: a throwaway `redis-server`.
//! - [`scratch`]: a throwaway directory.
//! - [`wait`]: waiting for what should happen "soon", without timing it.
//!
//! Everything a test uses is re-exported here, so `testkit::StepCommand` and
//! `testkit::assert_fault_matrix` work as well as their full paths.

pub mod command;
pub mod emulators;
pub mod hostile;
pub mod pacing;
pub mod redis;
pub mod reliability;
pub mod scratch;
pub mod wait;

pub use command::{RunningStep, StepCommand, StepOutput, TEST_KEY, TEST_KEY_FRAGMENT};
pub use emulators::{
    closed_port, faulty, generate_calls, restart_on, slow, start_quick, start_restartable,
};
pub use reliability::*;
pub use scratch::{ScratchDir, json_lines};
pub use wait::{PATIENCE, wait_until};
