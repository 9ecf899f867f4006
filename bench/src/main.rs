//! The benchmarks that put figures behind the tutorial's claims.
//!
//! ```text
//! cargo run --release -p bench              # the full bench, about 7 minutes on 2 cores
//! cargo run --release -p bench -- --quick   # every row, tiny sizes, seconds
//! cargo run --release -p bench -- --pictures docs   # the README's timelines
//! ```
//!
//! It starts the emulator in-process (on 127.0.0.1, never the real API) and
//! prints markdown tables on stdout, one per section, progress on stderr:
//!
//! - [`steps`]: step 2 against step 3 at a latency of 1 s, N = 10 to 10,000;
//! - [`versus`]: step 3 next to bare reqwest doing the same work (one `Client`
//!   per 100 in flight), wall time and peak memory, N = 1,000 and 10,000;
//! - [`throughput`]: our client's requests per second with no latency, next
//!   to bare reqwest with and without typing the answer, on HTTP/1.1 and on
//!   HTTPS + HTTP/2, at 1 to 256 in flight, with CPU per request ([`cpu`]);
//! - [`limiter`]: step 4's limiter against a strict sliding window, next to
//!   `governor`; [`paid`]: the limiter (through bulk) at a paid tier's pace;
//!   [`acquire`]: what one acquire costs;
//! - [`memory`]: peak memory of step 4 and bulk with 100,000 queued;
//! - [`python`]: the seed's Python solution (`google-genai`) as the peer;
//! - [`scaleout`]: one bulk process against four sharing one quota through Redis.
//!
//! The steps (and bulk) are measured as programs: the bench builds their binaries with
//! its own profile and runs them as child processes ([`binaries`]). Every
//! figure is the median of several runs ([`table`]); the sizes are in
//! [`plan`]. `tests/quick.rs` runs `--quick`, so the bench cannot rot.

mod acquire;
mod binaries;
mod cpu;
mod limiter;
mod memory;
mod paid;
mod pictures;
mod plan;
mod python;
mod scaleout;
mod steps;
mod table;
mod throughput;
mod versus;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::binaries::Binaries;
use crate::plan::Plan;

/// Benchmarks of the tutorial's steps against the in-process Gemini emulator.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A small version of every section, in seconds (what the test runs).
    #[arg(long)]
    quick: bool,

    /// Runs per figure; each figure is their median (default: 3, or 1 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=50))]
    runs: Option<u16>,

    /// Only write the README's timelines (step2.svg, step3.svg, step4.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pictures: Option<PathBuf>,

    /// Run only these sections (comma-separated); default: all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,

    /// Do not build the binaries first (use the ones next to the bench's binary).
    #[arg(long)]
    no_build: bool,

    /// Internal: hold N waiters in step 4's limiter and wait to be killed (the memory section's fallback).
    #[arg(long, value_name = "N", hide = true)]
    child_queue: Option<usize>,

    /// Internal: send N requests at once on bare reqwest clients (100 each) to URL, trusting
    /// the CA in the PEM file, print the wall time and exit (step 3's anchor).
    #[arg(long, value_names = ["N", "URL", "CA_FILE"], num_args = 3, hide = true)]
    child_bare: Vec<String>,
}

/// The sections of the bench, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Step 2 against step 3.
    Steps,
    /// Step 3 next to bare reqwest: wall time and peak memory.
    Versus,
    /// Raw client throughput.
    Throughput,
    /// Step 4's limiter against a strict window, next to governor.
    Limiter,
    /// The limiter at a paid tier's pace, through bulk.
    Paid,
    /// The cost of one acquire.
    Acquire,
    /// Peak memory of steps 3 and 4, and of bulk.
    Memory,
    /// The seed's Python solution.
    Python,
    /// Four processes sharing one quota through Redis.
    ScaleOut,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs what the arguments ask for; `Ok(false)` if a section failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    if let Some(count) = args.child_queue {
        memory::child_queue(count).await?;
        return Ok(true);
    }
    if let [n, url, ca_file] = args.child_bare.as_slice() {
        versus::child_bare(n.parse()?, url, ca_file.as_ref()).await?;
        return Ok(true);
    }
    let bins = Binaries::locate(!args.no_build)?;
    if let Some(dir) = &args.pictures {
        pictures::make(dir, &bins).await?;
        return Ok(true);
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full(args.runs.map_or(3, usize::from))
    };
    let plan = Plan {
        runs: args.runs.map_or(plan.runs, usize::from),
        ..plan
    };
    let sections = if args.only.is_empty() {
        vec![
            Section::Steps,
            Section::Versus,
            Section::Throughput,
            Section::Limiter,
            Section::Paid,
            Section::Acquire,
            Section::Memory,
            Section::Python,
            Section::ScaleOut,
        ]
    } else {
        args.only
    };
    bench(&plan, &bins, &sections).await
}

/// The bench: the header, then each section's table as soon as it is done.
///
/// A section that fails prints its error in place of its table and the run
/// goes on, so one broken section does not hide the others' figures.
async fn bench(plan: &Plan, bins: &Binaries, sections: &[Section]) -> anyhow::Result<bool> {
    let started = Instant::now();
    header(plan, bins);
    let mut all_ok = true;
    let mut ours = steps::StepTimes::new();
    for &section in sections {
        let began = Instant::now();
        let result = match section {
            Section::Steps => steps::run(plan, bins).await.map(|(table, times)| {
                ours = times;
                table
            }),
            Section::Versus => versus::run(plan, bins).await,
            Section::Throughput => throughput::run(plan).await,
            Section::Limiter => limiter::run(plan).await,
            Section::Paid => paid::run(plan, bins).await,
            Section::Acquire => acquire::run(plan).await,
            Section::Memory => memory::run(plan, bins).await,
            Section::Python => python::run(plan, bins, &ours).await,
            Section::ScaleOut => scaleout::run(plan, bins).await,
        };
        eprintln!(
            "bench: {section:?} took {:.1} s",
            began.elapsed().as_secs_f64()
        );
        match result {
            Ok(table) => println!("{table}"),
            Err(error) => {
                all_ok = false;
                println!("### {section:?}\n\nFAILED: {error:#}\n");
            }
        }
    }
    println!(
        "Bench finished in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(all_ok)
}

/// What a reader needs to judge the figures: the machine, the runs, the setup.
fn header(plan: &Plan, bins: &Binaries) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let release = !cfg!(debug_assertions);
    let command = format!(
        "cargo run {}-p bench{}",
        if release { "--release " } else { "" },
        if plan.quick { " -- --quick" } else { "" }
    );
    println!(
        "## Benchmarks{}\n",
        if plan.quick { " (--quick)" } else { "" }
    );
    println!(
        "`{command}` on {cores} cores ({} {}), {} build; every figure is the median of {} run(s), except the sequential rows ({} run: N × L by construction). The emulator runs in the bench's process on 127.0.0.1 (never the real API), with no faults; each section says its latency and quota. The programs run as child processes: {}.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        if release { "release" } else { "debug" },
        plan.runs,
        plan.sequential_runs,
        [&bins.step2, &bins.step3, &bins.step4, &bins.bulk]
            .iter()
            .filter_map(|bin| bin.as_ref())
            .filter_map(|bin| bin.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", "),
    );
}
