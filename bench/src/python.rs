//! Section 5: the seed's own Python solution, as the peer.
//!
//! `bench/python/seed_sequential.py` and `seed_concurrent.py` are the seed
//! tutorial's steps 2 and 3 with Google's `google-genai` SDK (see
//! `bench/python/README.md`). They run against the same emulator, pointed at
//! it the way any `google-genai` program is (`GOOGLE_GEMINI_BASE_URL` and
//! `GOOGLE_API_KEY`), and time themselves the way our steps do: first request
//! to last answer, client construction not counted.
//!
//! The interpreter is `$GEMINI_CONFORMANCE_PYTHON`, else the venv that
//! `.ci/setup` makes (`target/ci-venv/bin/python`), else `python3`, provided
//! `import google.genai` works in it; otherwise the rows are skipped with a
//! note.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::binaries::Binaries;
use crate::plan::{self, Plan};
use crate::steps::{self, Mode, StepTimes};
use crate::table::{self, Table, median};

/// Runs the section; `ours` are the step medians of section 1 (same emulator settings).
pub async fn run(plan: &Plan, bins: &Binaries, ours: &StepTimes) -> anyhow::Result<Table> {
    let settings = plan::fixed_latency(plan.latency);
    let mut table = Table::new(
        "Rust steps vs the seed's Python solution (google-genai)",
        format!(
            "{}, and with no latency in the last row; both sides time first request to last answer; Rust figures from the section above (measured here if it did not run); concurrent rows: median of {} run(s), sequential: {} run(s).",
            plan::describe(&settings),
            plan.runs,
            plan.sequential_runs
        ),
        &["run", "N", "Rust", "Python seed", "Python / Rust"],
    );
    let Some(python) = find_python() else {
        table.note("No Python with google-genai found (set GEMINI_CONFORMANCE_PYTHON, or run `bash .ci/setup`): Python rows skipped.");
        return Ok(table);
    };
    let server = emulator::start(settings).await?;
    let mut cases: Vec<(Mode, u32)> = Vec::new();
    if let Some(&n) = plan.batches.iter().find(|&&n| n <= plan.sequential_max) {
        cases.push((Mode::Sequential, n));
    }
    cases.extend(
        plan.batches
            .iter()
            .filter(|&&n| n <= plan.python_max)
            .map(|&n| (Mode::Concurrent, n)),
    );
    for (mode, n) in cases {
        let script = match mode {
            Mode::Sequential => "seed_sequential.py",
            Mode::Concurrent => "seed_concurrent.py",
        };
        let runs = match mode {
            Mode::Sequential => plan.sequential_runs,
            Mode::Concurrent => plan.runs,
        };
        let theirs = median_of(runs, &python, script, &server, n).await?;
        let rust = match ours.get(&(mode, n)) {
            Some(&t) => t,
            None => rust_time(runs, bins, &server, mode, n).await?,
        };
        table.row(vec![
            format!(
                "{} (L = {})",
                match mode {
                    Mode::Sequential => "sequential: step 2 / seed_sequential.py",
                    Mode::Concurrent => "concurrent: step 3 / seed_concurrent.py",
                },
                plan::ms(plan.latency)
            ),
            n.to_string(),
            table::secs(rust),
            table::secs(theirs),
            table::times(theirs / rust),
        ]);
    }
    server.shutdown().await;
    zero_latency_row(plan, bins, &python, &mut table).await?;
    table.note(format!("Python: {}", python.display()));
    Ok(table)
}

/// A Rust step's median when the steps section did not run (`--only python`).
async fn rust_time(
    runs: usize,
    bins: &Binaries,
    server: &emulator::Emulator,
    mode: Mode,
    n: u32,
) -> anyhow::Result<f64> {
    let (bin, name) = match mode {
        Mode::Sequential => (&bins.step2, "step 2"),
        Mode::Concurrent => (&bins.step3, "step 3"),
    };
    match bin {
        Some(bin) => steps::median_of(runs, bin, server, n, name).await,
        None => Ok(f64::NAN),
    }
}

/// The largest concurrent batch again, with no emulator latency: what is left
/// is each side's own cost per request.
async fn zero_latency_row(
    plan: &Plan,
    bins: &Binaries,
    python: &Path,
    table: &mut Table,
) -> anyhow::Result<()> {
    let largest = plan.batches.iter().filter(|&&n| n <= plan.python_max).max();
    let (Some(step3), Some(&n)) = (&bins.step3, largest) else {
        return Ok(());
    };
    let server = emulator::start(emulator::Settings {
        tls: true,
        ..emulator::Settings::instant()
    })
    .await?;
    let rust = steps::median_of(plan.runs, step3, &server, n, "step 3 (no latency)").await?;
    let theirs = median_of(plan.runs, python, "seed_concurrent.py", &server, n).await?;
    table.row(vec![
        "concurrent, no latency (client + server cost only)".into(),
        n.to_string(),
        table::secs(rust),
        table::secs(theirs),
        table::times(theirs / rust),
    ]);
    server.shutdown().await;
    Ok(())
}

/// The Python to use, if one with `google-genai` is found.
pub fn find_python() -> Option<PathBuf> {
    let venv = std::env::current_exe().ok().and_then(|exe| {
        // target/<profile>/bench -> target/ci-venv/bin/python
        Some(exe.parent()?.parent()?.join("ci-venv/bin/python"))
    });
    std::env::var_os("GEMINI_CONFORMANCE_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(venv)
        .chain([PathBuf::from("python3")])
        .find(|python| has_genai(python))
}

/// Whether `import google.genai` works in this interpreter.
fn has_genai(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import google.genai"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The median `elapsed_s` of `runs` runs of a seed script with N requests.
async fn median_of(
    runs: usize,
    python: &Path,
    script: &str,
    server: &emulator::Emulator,
    n: u32,
) -> anyhow::Result<f64> {
    let mut walls = Vec::new();
    for run in 1..=runs {
        eprintln!("bench: python {script} {n} (run {run}/{runs})");
        walls.push(run_script(python, script, server, n).await?);
    }
    Ok(median(&walls))
}

/// Runs one seed script and returns its `elapsed_s`; a run with failures is an error.
async fn run_script(
    python: &Path,
    script: &str,
    server: &emulator::Emulator,
    n: u32,
) -> anyhow::Result<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let mut command = Command::new(python);
    // The SDK trusts the emulator's CA through SSL_CERT_FILE, as it would a company proxy's.
    if let Some(ca_file) = crate::binaries::ca_file(server)? {
        command
            .env("SSL_CERT_FILE", ca_file)
            .env_remove("SSL_CERT_DIR");
    }
    command
        .arg(&path)
        .arg(n.to_string())
        .env_remove("GEMINI_API_KEY")
        .env("GOOGLE_GEMINI_BASE_URL", server.base_url())
        .env("GOOGLE_API_KEY", testkit::TEST_KEY)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .context("the python thread panicked")?
        .with_context(|| format!("cannot run {}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last).with_context(|| {
        format!(
            "{script} printed no JSON line: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )
    })?;
    if summary["failed"].as_u64() != Some(0) {
        bail!("{script} {n}: some requests failed: {summary}");
    }
    summary["elapsed_s"]
        .as_f64()
        .context("no elapsed_s in the script's output")
}
