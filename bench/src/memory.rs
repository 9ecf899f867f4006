//! Section 4: what a step costs in memory, with thousands of requests queued.
//!
//! Each program runs as a child process, so its memory is its own: the
//! emulator it talks to lives in the bench's process, and counting it would
//! be wrong. We sample `/proc/<pid>/status` while it runs; `VmHWM` is the
//! kernel's high-water mark of resident memory, so a sample taken after the
//! peak still sees the peak.
//!
//! - **Step 4** with many requests queued behind a low rate limit: its
//!   memory once everything is queued (when it has stopped growing), then it
//!   is killed; the same with one request as the baseline.
//! - **bulk with a prompts file** (`--prompts FILE --output FILE`), the
//!   same queue on step 4's limiter: the file is indexed, not held, and each
//!   prompt is read back only when it is sent, so this row should stay close
//!   to step 4's.
//! - **Step 4's limiter alone** with as many waiters, in a child process of
//!   the bench itself (`--child-queue N`): the limiter's share of those
//!   figures (and the only figure if neither binary is there).
//!
//! Every row subtracts the same program's peak with one request, so "per
//! request" is what one more request costs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use testkit::StepCommand;

use crate::binaries::{Binaries, Memory, SAMPLE_EVERY, memory_of, trusting};
use crate::plan::{self, Plan};
use crate::table::{self, Table, median};

/// Runs the section.
pub async fn run(plan: &Plan, bins: &Binaries) -> anyhow::Result<Table> {
    let settings = plan::fixed_latency(plan.latency);
    let mut table = Table::new(
        "Memory (peak resident set of the program's own process)",
        format!(
            "{}; the emulator runs in the bench's process, each program in its own; per request = (peak − the same program's peak with 1 request) / requests; median of {} run(s).",
            plan::describe(&settings),
            plan.runs
        ),
        &[
            "program",
            "requests",
            "peak RSS",
            "baseline (1 request)",
            "per request",
        ],
    );
    let mut add = |name: &str, n: u32, (base, peak): (f64, f64)| {
        table.row(vec![
            name.into(),
            table::count(f64::from(n)),
            mib(peak),
            mib(base),
            kib((peak - base) / f64::from(n)),
        ]);
    };
    let queued = plan.memory_queued;
    if let Some(step4) = &bins.step4 {
        add(
            "step 4, queued behind `--rpm 1`",
            queued,
            queued_peaks(plan, "step 4", step4, Source::Repeat).await?,
        );
    }
    if let Some(bulk) = &bins.bulk {
        add(
            "bulk, a prompts file queued behind `--rpm 1`, with `--output`",
            queued,
            queued_peaks(plan, "bulk", bulk, Source::File).await?,
        );
    }
    add(
        "step 4's `Limiter` alone: `acquire` futures waiting",
        queued,
        limiter_queued(plan).await?,
    );
    if bins.step4.is_none() {
        table.note(
            "step 4's binary (with its runner) was not found: no step 4 row, only its limiter's.",
        );
    }
    if bins.bulk.is_none() {
        table.note("bulk's binary was not found: no row for a prompts file.");
    }
    table.note("Step 4 and bulk hold one future per request (the whole request's state machine) while the request waits. The last row is the limiter's share of that: a child process of the bench (`bench --child-queue N`) with N `acquire` futures queued on one limiter. Step 3 with every request in flight at once is in the section that sets it next to bare reqwest.");
    Ok(table)
}

/// Bytes as "12.3 MiB".
pub(crate) fn mib(bytes: f64) -> String {
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

/// Where the queued prompts come from.
#[derive(Clone, Copy)]
enum Source {
    /// `-n N`: one prompt, N times.
    Repeat,
    /// `--prompts FILE` of N distinct lines (about 100 bytes each), with
    /// `--output` (the journal) as a bulk run has it.
    File,
}

/// The arguments that give a program `n` prompts from `source` (files in `dir`).
fn prompts_args(source: Source, n: u32, dir: &Path) -> anyhow::Result<Vec<String>> {
    match source {
        Source::Repeat => Ok(vec!["-n".into(), n.to_string()]),
        Source::File => {
            let prompts = dir.join(format!("prompts-{n}.jsonl"));
            let text: String = (1..=n)
                .map(|i| {
                    format!(
                        "{{\"id\": \"q{i}\", \"prompt\": \"Question {i}: in two sentences, why do some birds migrate south in the winter?\"}}\n"
                    )
                })
                .collect();
            std::fs::write(&prompts, text).context("cannot write the prompts file")?;
            let output = dir.join(format!("answers-{n}.jsonl"));
            // A fresh journal each time: an old one would make this a resume.
            let _ = std::fs::remove_file(&output);
            Ok(vec![
                "--prompts".into(),
                prompts.display().to_string(),
                "--output".into(),
                output.display().to_string(),
            ])
        }
    }
}

/// Peak RSS of `program` (step 4 or bulk, called `name`) with one request
/// (baseline) and with `plan.memory_queued` requests queued, medians in bytes.
///
/// The program runs with `--rpm 1` (and no token or daily limit) against an
/// emulator with the same limit, so one request goes and every other one
/// waits in its limiter's queue for hours. Once its memory has not grown for
/// a while, everything is queued: we read it and kill the program.
async fn queued_peaks(
    plan: &Plan,
    name: &str,
    program: &Path,
    source: Source,
) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let mut settings = plan::fixed_latency(plan.latency);
    settings.rpm = Some(1);
    // A fresh emulator for each program: the one request a minute that the
    // last one spent would otherwise still count, and this one would wait for it.
    let start = |n: u32| {
        let settings = settings.clone();
        let dir = dir.path().to_path_buf();
        async move {
            let server = emulator::start(settings).await?;
            let mut command = trusting(StepCommand::new(program).against(&server), &server)?
                .args(prompts_args(source, n, &dir)?)
                .args(["--rpm", "1", "--tpm", "0", "--rpd", "0"])
                .into_command();
            command.stdout(Stdio::null()).stderr(Stdio::null());
            let child = command
                .spawn()
                .with_context(|| format!("cannot start {name}"))?;
            anyhow::Ok((server, child))
        }
    };
    let (mut bases, mut peaks) = (Vec::new(), Vec::new());
    for run in 1..=plan.runs {
        eprintln!(
            "bench: memory of {name} with {} queued (run {run}/{})",
            plan.memory_queued, plan.runs
        );
        let (server, child) = start(1).await?;
        let (base, ok) = tokio::task::spawn_blocking(move || watch_to_the_end(child)).await??;
        if !ok {
            bail!("{name} with 1 request did not succeed");
        }
        bases.push(base.peak as f64);
        server.shutdown().await;
        let (server, child) = start(plan.memory_queued).await?;
        let loaded = tokio::task::spawn_blocking(move || until_settled(child)).await??;
        peaks.push(loaded.peak as f64);
        server.shutdown().await;
    }
    Ok((median(&bases), median(&peaks)))
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

/// Peak RSS of a child process holding one waiter (baseline) and
/// `plan.memory_queued` waiters in step 4's limiter, medians in bytes.
async fn limiter_queued(plan: &Plan) -> anyhow::Result<(f64, f64)> {
    let queued = plan.memory_queued;
    let (mut bases, mut peaks) = (Vec::new(), Vec::new());
    for run in 1..=plan.runs {
        eprintln!(
            "bench: memory of the limiter with {queued} waiters (run {run}/{})",
            plan.runs
        );
        bases.push(child_with_waiters(1).await?.peak as f64);
        peaks.push(child_with_waiters(queued).await?.peak as f64);
    }
    Ok((median(&bases), median(&peaks)))
}

/// Starts `bench --child-queue count`, waits for it to say everyone is
/// queued, reads its memory and kills it.
async fn child_with_waiters(count: u32) -> anyhow::Result<Memory> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child-queue", &count.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the bench's child")?;
    let stdout = child.stdout.take().context("no stdout")?;
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let memory = memory_of(child.id());
        let _ = child.kill();
        let _ = child.wait();
        memory.context("the child ended before it was measured")
    })
    .await?
}

/// The child side of [`limiter_queued`]: one request admitted, then `count`
/// `acquire` futures waiting on a limiter that admits one request a minute;
/// says "queued" and waits to be killed.
///
/// The futures are polled by one `join_all` rather than spawned as tasks, so
/// what is measured is the limiter's waiters and the futures themselves, not
/// the runtime's per-task overhead.
pub async fn child_queue(count: usize) -> anyhow::Result<()> {
    use step4_ratelimit::limiter::{Limiter, Limits};
    let limiter = Limiter::new(Limits::default().with_rpm(1));
    // The minute's one request: everyone after it waits.
    let _first = limiter.acquire(0).await?;
    let all = futures_util::future::join_all((0..count).map(|_| limiter.acquire(0)));
    let report = async {
        while limiter.queued() < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("queued {count}");
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = all => anyhow::bail!("the waiters were admitted: the limit was not in force"),
        () = report => Ok(()),
    }
}
