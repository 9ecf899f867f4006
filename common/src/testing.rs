//! Helpers for the steps' end-to-end tests: run a step's binary against an emulator.
//!
//! Every step is tested the way a learner uses it: as a program, with
//! arguments, reading its stdout. The test starts an [`emulator`] on
//! 127.0.0.1 with the settings it needs, points the binary at it through
//! `GOOGLE_GEMINI_BASE_URL` (exactly as Google's SDKs would be), and reads
//! the `--json` summary from the last line of stdout. The emulator's own
//! statistics then say what really reached the server.

use std::{
    path::Path,
    process::{Command, ExitStatus, Stdio},
};

/// The key the tests send: recognisable, so a test can search output for it.
pub const TEST_KEY: &str = "test-key-7f3a9c-do-not-print";

/// A step's binary, about to run with a clean environment.
pub struct StepCommand {
    command: Command,
}

impl StepCommand {
    /// Prepares `binary` (use `env!("CARGO_BIN_EXE_<name>")`), with none of
    /// the developer's own Gemini settings leaking in.
    pub fn new(binary: impl AsRef<Path>) -> StepCommand {
        let mut command = Command::new(binary.as_ref());
        for var in [
            "GOOGLE_API_KEY",
            "GEMINI_API_KEY",
            "GOOGLE_GEMINI_BASE_URL",
            "RUST_LOG",
        ] {
            command.env_remove(var);
        }
        // A temporary working directory, so no `.env` of the developer's is found.
        command.current_dir(std::env::temp_dir());
        command.stdin(Stdio::null());
        StepCommand { command }
    }

    /// Points the step at a running emulator, with [`TEST_KEY`] as the key.
    pub fn against(mut self, server: &emulator::Emulator) -> StepCommand {
        self.command
            .env("GOOGLE_GEMINI_BASE_URL", server.base_url())
            .env("GOOGLE_API_KEY", TEST_KEY);
        self
    }

    /// Sets an environment variable for the step.
    pub fn env(mut self, key: &str, value: &str) -> StepCommand {
        self.command.env(key, value);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> StepCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Gives access to the underlying command (to spawn it and signal it, say).
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Runs the step to the end on a blocking thread, so the emulator keeps
    /// serving on the test's runtime meanwhile.
    pub async fn run(self) -> StepOutput {
        let mut command = self.command;
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the blocking task ran")
            .expect("the step's binary started");
        StepOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// What a step printed, and how it exited.
#[derive(Debug)]
pub struct StepOutput {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl StepOutput {
    /// The `--json` summary: the last line of stdout, parsed.
    ///
    /// Panics with the whole output when it is not there, which is what a
    /// failing test should show.
    pub fn summary(&self) -> serde_json::Value {
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "the last stdout line is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The exit code (None if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything the step printed, stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}
