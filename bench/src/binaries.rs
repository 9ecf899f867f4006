//! The programs the bench runs (the steps, and the bulk tool), found next to
//! its own binary, and how it runs them.
//!
//! The bench measures the steps *as programs*, the way a learner runs them:
//! `target/release/step3-concurrent -n 1000 --json`, pointed at the emulator
//! through `GOOGLE_GEMINI_BASE_URL`. That is more honest than calling a copy
//! of their logic in-process: the figures include everything the learner's
//! run includes (connecting, checking the model, printing every answer), and
//! the step's memory is its own, not mixed with the emulator's.
//!
//! `cargo run -p bench` builds only the bench, so its first act is to build
//! the binaries with the same profile (a no-op when they are fresh; see
//! [`Binaries::locate`]). `--no-build` skips that, for when cargo is not at
//! hand; a binary that is missing then turns its rows into a note.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use testkit::StepCommand;

/// The binaries, where they were found.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `step2-sequential`.
    pub step2: Option<PathBuf>,
    /// `step3-concurrent`.
    pub step3: Option<PathBuf>,
    /// `step4-ratelimit`, if it builds and has a runner (the lesson's
    /// limiter, for the timeline picture and its memory row).
    pub step4: Option<PathBuf>,
    /// `bulk`, the tool built on step 4's limiter, if it builds (prompts
    /// files, `--output`, `--redis`).
    pub bulk: Option<PathBuf>,
}

/// The packages whose binaries the bench runs, in the order of [`Binaries`].
/// The last two share step 4's library: when it does not build, neither does.
pub const PACKAGES: [&str; 4] = [
    "step2-sequential",
    "step3-concurrent",
    "step4-ratelimit",
    "bulk",
];

impl Binaries {
    /// Finds the binaries next to the bench's own, building them first
    /// unless `build` is false.
    ///
    /// The build uses the bench's own profile (read from the directory it runs
    /// from: `target/release` means `--release`), so a release bench measures
    /// release steps. If step 4 or bulk does not build (it may be mid-change),
    /// steps 2 and 3 are built alone and the other rows say so.
    pub fn locate(build: bool) -> anyhow::Result<Binaries> {
        let dir = std::env::current_exe()
            .context("cannot find the bench's own binary")?
            .parent()
            .map(Path::to_path_buf)
            .context("the bench's binary has no directory")?;
        if build && cargo_build(&dir, &PACKAGES).is_err() {
            eprintln!("bench: step 4 or bulk did not build; building steps 2 and 3 alone");
            if let Err(error) = cargo_build(&dir, &PACKAGES[..2]) {
                eprintln!("bench: {error:#}; using whatever binaries exist");
            }
        }
        let find = |name: &str| {
            let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            path.is_file().then_some(path)
        };
        Ok(Binaries {
            step2: find(PACKAGES[0]),
            step3: find(PACKAGES[1]),
            step4: find(PACKAGES[2]).filter(|path| has_runner(path)),
            bulk: find(PACKAGES[3]),
        })
    }
}

/// Runs `cargo build` for `packages` with the profile of the binaries in `dir`.
fn cargo_build(dir: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--bins");
    match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
        None => bail!("cannot tell the build profile from {}", dir.display()),
    }
    for package in packages {
        command.args(["-p", package]);
    }
    eprintln!("bench: building {} (no-op when fresh)", packages.join(", "));
    let status = command
        .stdin(Stdio::null())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build -p {} failed ({status})", packages.join(" -p "));
    }
    Ok(())
}

/// Whether step 4's binary is the real runner (it takes `--rpm`), not a placeholder.
fn has_runner(path: &Path) -> bool {
    Command::new(path)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("--rpm"))
        .unwrap_or(false)
}

/// What the bench reads from a step's `--json` summary.
#[derive(Debug, Clone, Copy)]
pub struct StepRun {
    /// The step's own wall time: from its first request to its last answer
    /// (connecting and checking the model are not counted).
    pub elapsed_s: f64,
    /// Requests answered.
    pub succeeded: u64,
    /// 429 answers.
    pub rate_limited: u64,
}

/// Runs a step binary against `server` with `args` (plus `--json`) and reads its summary.
///
/// A run in which any request failed is an error: a figure from a run that
/// did not do its work would be a wrong figure.
pub async fn run_step(
    binary: &Path,
    server: &emulator::Emulator,
    args: &[String],
) -> anyhow::Result<StepRun> {
    let output = trusting(StepCommand::new(binary).against(server), server)?
        .args(args)
        .args(["--json"])
        .run()
        .await;
    let last = output.stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last).with_context(|| {
        format!(
            "{} printed no JSON summary (exit {:?}): {}",
            binary.display(),
            output.code(),
            output.stderr.lines().last().unwrap_or_default()
        )
    })?;
    let field = |name: &str| summary[name].as_f64().unwrap_or(f64::NAN);
    let run = StepRun {
        elapsed_s: field("elapsed_s"),
        succeeded: summary["succeeded"].as_u64().unwrap_or(0),
        rate_limited: summary["rate_limited"].as_u64().unwrap_or(0),
    };
    let requests = summary["requests"].as_u64().unwrap_or(0);
    if run.succeeded != requests {
        bail!(
            "{}: only {} of {requests} requests succeeded",
            binary.display(),
            run.succeeded
        );
    }
    Ok(run)
}

/// Points `SSL_CERT_FILE` at the server's CA when it serves HTTPS, as a user of the
/// standalone emulator does (the file is in the temporary directory, named after the port).
pub fn trusting(command: StepCommand, server: &emulator::Emulator) -> anyhow::Result<StepCommand> {
    Ok(match ca_file(server)? {
        Some(path) => command.env("SSL_CERT_FILE", &path.to_string_lossy()),
        None => command,
    })
}

/// Writes the server's CA (if it serves HTTPS) to a file and returns its path.
pub fn ca_file(server: &emulator::Emulator) -> anyhow::Result<Option<PathBuf>> {
    let Some(pem) = server.ca_pem() else {
        return Ok(None);
    };
    let path = std::env::temp_dir().join(format!("bench-emulator-ca-{}.pem", server.addr().port()));
    std::fs::write(&path, pem).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(path))
}

/// Peak and current resident memory of a running process, in bytes, from
/// `/proc/<pid>/status` (`VmHWM` is the kernel's own high-water mark, so a
/// poll that misses the peak moment still sees the peak).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmHWM`: the most the process has had resident.
    pub peak: u64,
    /// `VmRSS`: resident now.
    pub now: u64,
}

/// Reads a process's memory; `None` once it has exited (or off Linux).
pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some(Memory {
        peak: field("VmHWM:")?,
        now: field("VmRSS:")?,
    })
}

/// How often the memory of a child is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);
