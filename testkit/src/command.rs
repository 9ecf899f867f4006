//! A step's binary run as a learner runs it: clean environment, arguments, stdout read back.
//!
//! [`StepCommand`] prepares the binary with none of the developer's own
//! Gemini settings, [`RunningStep`] is one started in the background (to
//! signal, freeze or cut off), and [`StepOutput`] is what it printed, with
//! the checks every test makes of it: the `--json` summary adds up, an
//! error is one line, the key was never printed.

use std::{
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::wait::wait_until;

/// The key the tests send: recognisable, so a test can search output for it.
pub const TEST_KEY: &str = "test-key-7f3a9c-do-not-print";

/// A distinctive piece of [`TEST_KEY`]: a key cut or re-encoded in some log
/// line would still show this.
pub const TEST_KEY_FRAGMENT: &str = "7f3a9c";

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
            "GOOGLE_GENAI_API_VERSION",
            "GEMINI_RATELIMIT_REDIS",
            "RUST_LOG",
            "RUST_BACKTRACE",
        ] {
            command.env_remove(var);
        }
        // Step 4 remembers nothing unless a test gives it a limits file.
        command.env("GEMINI_LIMITS_FILE", "off");
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

    /// Removes an environment variable the step would inherit (a proxy or
    /// `SSL_CERT_FILE` of the machine running the tests, say).
    pub fn env_remove(mut self, key: &str) -> StepCommand {
        self.command.env_remove(key);
        self
    }

    /// Runs the step in `dir` (to give it a `.env` file, say).
    pub fn in_dir(mut self, dir: &Path) -> StepCommand {
        self.command.current_dir(dir);
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

    /// Starts the step without waiting for it, its output captured.
    pub fn spawn(self) -> RunningStep {
        let mut command = self.command;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        RunningStep {
            child: command.spawn().expect("the step's binary started"),
        }
    }

    /// Runs the step to the end on a blocking thread, so the emulator keeps
    /// serving on the test's runtime meanwhile.
    pub async fn run(self) -> StepOutput {
        let mut command = self.command;
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the blocking task ran")
            .expect("the step's binary started");
        StepOutput::from(output)
    }
}

/// A step started with [`StepCommand::spawn`]: signal it, then wait for it.
pub struct RunningStep {
    child: Child,
}

impl RunningStep {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"INT"` is Ctrl-C; `"STOP"`/`"CONT"` freeze and thaw)
    /// with the `kill` command, so no signal crate is needed.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.id().to_string())
            .status()
            .expect("the kill command runs");
        assert!(status.success(), "kill -{name} {} failed", self.id());
    }

    /// Freezes the process (SIGSTOP) and waits until it really is stopped,
    /// so that what the test does next happens while the step cannot react.
    pub async fn freeze(&self) {
        self.signal("STOP");
        let stat = format!("/proc/{}/stat", self.id());
        if !Path::new(&stat).exists() {
            // No procfs (not Linux): the stop is delivered within moments.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        wait_until("the step to be stopped", || {
            // The state is the field after the parenthesised command name.
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
        })
        .await;
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Closes the reading end of the step's stdout and stderr, as `| head -1`
    /// does once it has its line: every later write of the step fails.
    pub fn close_output(&mut self) {
        drop(self.child.stdout.take());
        drop(self.child.stderr.take());
    }

    /// Waits for the step to exit, on a blocking thread.
    pub async fn wait(self) -> StepOutput {
        let child = self.child;
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("the blocking task ran")
            .expect("the step's output was read");
        StepOutput::from(output)
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

impl From<std::process::Output> for StepOutput {
    fn from(output: std::process::Output) -> StepOutput {
        StepOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl StepOutput {
    /// The `--json` summary: the last line of stdout, parsed.
    ///
    /// Panics with the whole output when it is not there, which is what a
    /// failing test should show.
    pub fn summary(&self) -> serde_json::Value {
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("the last stdout line is not JSON ({e})\n{}", self.dump()))
    }

    /// The exit code (None if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything the step printed, stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Both streams, labelled, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code(),
            self.stdout,
            self.stderr
        )
    }

    /// The per-request `--json` lines (those with a `request` number), in the order printed.
    pub fn results(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|value| value.get("request").is_some())
            .collect()
    }

    /// The error texts of the failed requests.
    pub fn errors(&self) -> Vec<String> {
        self.results()
            .iter()
            .filter_map(|r| r["error"].as_str().map(str::to_string))
            .collect()
    }

    /// Asserts that nothing panicked and no backtrace was offered.
    pub fn assert_no_panic(&self) {
        for sign in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(
                !self.all().contains(sign),
                "{sign:?} in the output\n{}",
                self.dump()
            );
        }
    }

    /// Asserts the promises of a finished `--json` run of `requests`
    /// requests, and returns the summary:
    ///
    /// - no panic;
    /// - exactly one result line per request, indices `0..requests` in order;
    /// - `succeeded + failed + not_done == requests`, matching the lines;
    /// - every failure carries a one-line error;
    /// - exit code 0 if all succeeded, else 1 (130 if `interrupted`).
    pub fn assert_accounted(&self, requests: usize, interrupted: bool) -> Value {
        self.assert_no_panic();
        let summary = self.summary();
        let count = |field: &str| {
            summary[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{field} is not a number\n{}", self.dump()))
                as usize
        };
        let (succeeded, failed, not_done) =
            (count("succeeded"), count("failed"), count("not_done"));
        assert_eq!(count("requests"), requests, "{}", self.dump());
        assert_eq!(succeeded + failed + not_done, requests, "{}", self.dump());

        let results = self.results();
        let indices: Vec<u64> = results
            .iter()
            .filter_map(|r| r["request"].as_u64())
            .collect();
        assert_eq!(
            indices,
            (1..=requests as u64).collect::<Vec<_>>(),
            "one line per request, in order\n{}",
            self.dump()
        );
        let ok = results.iter().filter(|r| r["ok"] == true).count();
        let with_error = results.iter().filter(|r| r["error"].is_string()).count();
        let unfinished = results.iter().filter(|r| r["not_done"].is_string()).count();
        assert_eq!(
            (ok, with_error, unfinished),
            (succeeded, failed, not_done),
            "{}",
            self.dump()
        );
        for error in self.errors() {
            assert!(
                !error.trim().is_empty() && !error.contains('\n'),
                "{error:?}"
            );
        }

        let expected = if interrupted {
            130
        } else if succeeded == requests {
            0
        } else {
            1
        };
        assert_eq!(self.code(), Some(expected), "{}", self.dump());
        summary
    }

    /// Asserts a run that could not go on: exit code 1, one `error:` line
    /// on stderr (besides any `notices` expected before it) containing
    /// `mentions`, and no panic.
    pub fn assert_one_error_line(&self, mentions: &str, notices: usize) {
        self.assert_no_panic();
        assert_eq!(self.code(), Some(1), "{}", self.dump());
        let lines: Vec<&str> = self.stderr.trim_end().lines().collect();
        assert_eq!(lines.len(), notices + 1, "{}", self.dump());
        let last = lines[notices];
        assert!(last.starts_with("error: "), "{}", self.dump());
        assert!(
            last.to_lowercase().contains(&mentions.to_lowercase()),
            "the error line should mention {mentions:?}\n{}",
            self.dump()
        );
    }

    /// Asserts clap's usage error: exit code 2, `error:` first, no panic.
    pub fn assert_usage_error(&self) {
        self.assert_no_panic();
        assert_eq!(self.code(), Some(2), "{}", self.dump());
        assert!(self.stderr.starts_with("error: "), "{}", self.dump());
        assert!(self.stdout.is_empty(), "{}", self.dump());
    }

    /// Asserts that neither [`TEST_KEY`] nor [`TEST_KEY_FRAGMENT`] was printed.
    pub fn assert_no_key(&self) {
        let all = self.all();
        assert!(
            !all.contains(TEST_KEY) && !all.contains(TEST_KEY_FRAGMENT),
            "the key was printed\n{}",
            self.dump()
        );
    }
}
