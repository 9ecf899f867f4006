//! Section 4: what a step costs in memory, with thousands of requests at once.
//!
//! Each program runs as a child process, so its memory is its own: the
//! emulator it talks to lives in the bench's process, and counting it would
//! be wrong. We sample `/proc/<pid>/status` while it runs; `VmHWM` is the
//! kernel's high-water mark of resident memory, so a sample taken after the
//! peak still sees the peak.
//!
//! - **Step 3** with N requests in flight at once: its peak, and the same for
//!   N = 1 as the baseline (the runtime, the client, the code), so the
//!   difference over N is the cost of one request in flight.
//! - **Step 4** with many requests queued behind a low rate limit: its
//!   resident memory once everything is queued (when memory has stopped
//!   growing), then it is killed. If step 4's binary is not there, the
//!   limiter alone is measured with as many waiters, in a child process of
//!   the bench itself (`--child-queue N`), and the table says so.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::testing::StepCommand;

use crate::binaries::{Binaries, Memory, SAMPLE_EVERY, memory_of};
use crate::plan::{self, Plan};
use crate::table::{self, Table, median};

/// Runs the section.
pub async fn run(plan: &Plan, bins: &Binaries) -> anyhow::Result<Table> {
    let settings = plan::fixed_latency(plan.latency);
    let server = emulator::start(settings.clone()).await?;
    let mut table = Table::new(
        "Memory (peak resident set of the step's own process)",
        format!(
            "{}; the emulator runs in the bench's process, the step in its own; median of {} run(s).",
            plan::describe(&settings),
            plan.runs
        ),
        &["program", "requests", "peak RSS", "per request"],
    );
    if let Some(step3) = &bins.step3 {
        let base = step3_peak(plan, step3, &server, 1).await?;
        let n = plan.memory_in_flight;
        let peak = step3_peak(plan, step3, &server, n).await?;
        table.row(vec![
            "step 3, baseline".into(),
            "1".into(),
            mib(base),
            String::new(),
        ]);
        table.row(vec![
            "step 3, all in flight at once".into(),
            table::count(f64::from(n)),
            mib(peak),
            kib((peak - base) / f64::from(n)),
        ]);
    } else {
        table.note("step 3's binary was not found: no step 3 rows.");
    }
    drop(server);
    let queued = plan.memory_queued;
    let (name, resident) = match &bins.step4 {
        Some(step4) => (
            "step 4, queued behind --rpm 1",
            step4_queued(plan, step4).await?,
        ),
        None => {
            table.note("step 4's binary (with its runner) was not found: the row measures step 4's `Limiter` alone with that many waiters, in a child process of the bench (`bench --child-queue N`), not the whole step 4 program.");
            (
                "step 4's `Limiter` alone, waiters",
                limiter_queued(plan).await?,
            )
        }
    };
    table.row(vec![
        name.into(),
        table::count(f64::from(queued)),
        mib(resident),
        kib(resident / f64::from(queued)),
    ]);
    table.note("Per request = (peak − baseline) / requests for step 3; resident / requests for step 4 (its baseline included, so an upper bound).");
    Ok(table)
}

/// Bytes as "12.3 MiB".
fn mib(bytes: f64) -> String {
    if bytes.is_nan() {
        return "n/a".into();
    }
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// Bytes as "4.2 KiB".
fn kib(bytes: f64) -> String {
    if bytes.is_nan() {
        return "n/a".into();
    }
    format!("{:.1} KiB", bytes / 1024.0)
}

/// The median peak RSS, in bytes, of step 3 with `-n n`.
async fn step3_peak(
    plan: &Plan,
    step3: &Path,
    server: &emulator::Emulator,
    n: u32,
) -> anyhow::Result<f64> {
    let mut peaks = Vec::new();
    for run in 1..=plan.runs {
        eprintln!("bench: memory of step 3 -n {n} (run {run}/{})", plan.runs);
        let mut command = StepCommand::new(step3)
            .against(server)
            .args(["-n", &n.to_string()])
            .into_command();
        // Step 3 prints one line per answer: nobody reads them here.
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let child = command.spawn().context("cannot start step 3")?;
        let (memory, ok) = tokio::task::spawn_blocking(move || watch_to_the_end(child))
            .await
            .context("the sampling thread panicked")??;
        if !ok {
            bail!("step 3 -n {n} did not succeed");
        }
        peaks.push(memory.peak as f64);
    }
    Ok(median(&peaks))
}

/// Samples a child's memory until it exits; returns the last peak seen and
/// whether it exited successfully.
fn watch_to_the_end(mut child: Child) -> anyhow::Result<(Memory, bool)> {
    let mut seen = Memory::default();
    loop {
        if let Some(memory) = memory_of(child.id()) {
            seen.peak = seen.peak.max(memory.peak);
            seen.now = memory.now;
        }
        if let Some(status) = child.try_wait()? {
            return Ok((seen, status.success()));
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Resident bytes of step 4 with `plan.memory_queued` requests queued.
///
/// Step 4 runs with `--rpm 1` (and no token or daily limit) against an
/// emulator with the same limit, so one request goes and every other one
/// waits in its limiter's queue for hours.
/// Once its memory has not grown for a while, everything is queued: we read
/// it and kill the program.
async fn step4_queued(plan: &Plan, step4: &Path) -> anyhow::Result<f64> {
    let mut settings = plan::fixed_latency(plan.latency);
    settings.rpm = Some(1);
    let server = emulator::start(settings).await?;
    let mut residents = Vec::new();
    for run in 1..=plan.runs {
        eprintln!(
            "bench: memory of step 4 with {} queued (run {run}/{})",
            plan.memory_queued, plan.runs
        );
        let mut command = StepCommand::new(step4)
            .against(&server)
            .args(["-n", &plan.memory_queued.to_string()])
            .args(["--rpm", "1", "--tpm", "0", "--rpd", "0"])
            .into_command();
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let child = command.spawn().context("cannot start step 4")?;
        let memory = tokio::task::spawn_blocking(move || until_settled(child))
            .await
            .context("the sampling thread panicked")??;
        residents.push(memory.now as f64);
    }
    server.shutdown().await;
    Ok(median(&residents))
}

/// Samples a child until its resident memory has not grown for a second,
/// then kills it and returns the last sample.
fn until_settled(mut child: Child) -> anyhow::Result<Memory> {
    const STILL: Duration = Duration::from_secs(1);
    const GIVE_UP: Duration = Duration::from_secs(60);
    let started = Instant::now();
    let mut last = Memory::default();
    let mut grew_at = Instant::now();
    let result = loop {
        if child.try_wait()?.is_some() {
            break Err(anyhow::anyhow!("the program ended before it was measured"));
        }
        if let Some(memory) = memory_of(child.id()) {
            // Growth of less than 1 % is noise, not more waiters arriving.
            if memory.now > last.now + last.now / 100 {
                grew_at = Instant::now();
            }
            last = memory;
        }
        if grew_at.elapsed() >= STILL {
            break Ok(last);
        }
        if started.elapsed() >= GIVE_UP {
            break Err(anyhow::anyhow!("memory still growing after a minute"));
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Resident bytes of a child process holding `plan.memory_queued` waiters in
/// step 4's limiter (the fallback when step 4's binary is not there).
async fn limiter_queued(plan: &Plan) -> anyhow::Result<f64> {
    let me = std::env::current_exe()?;
    let queued = plan.memory_queued;
    let mut residents = Vec::new();
    for run in 1..=plan.runs {
        eprintln!(
            "bench: memory of the limiter with {queued} waiters (run {run}/{})",
            plan.runs
        );
        let mut child = Command::new(&me)
            .args(["--child-queue", &queued.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the bench's child")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let memory = tokio::task::spawn_blocking(move || {
            // The child prints one line once everyone is queued.
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line)?;
            let memory = memory_of(child.id());
            let _ = child.kill();
            let _ = child.wait();
            anyhow::Ok(memory)
        })
        .await??
        .context("the child ended before it was measured")?;
        residents.push(memory.now as f64);
    }
    Ok(median(&residents))
}

/// The child side of [`limiter_queued`]: `count` tasks waiting on one limiter
/// that admits one request a minute; says "queued" and waits to be killed.
pub async fn child_queue(count: usize) -> anyhow::Result<()> {
    use step4_ratelimit::limiter::{Limiter, Limits};
    let limiter = Limiter::new(Limits::new(1, 0, 0));
    let _tasks: Vec<_> = (0..count)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(0).await.map(drop) })
        })
        .collect();
    // One is admitted at once; the others wait.
    while limiter.stats().waiting + 1 < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("queued {count}");
    std::future::pending().await
}
