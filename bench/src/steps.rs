//! Section 1: step 2 (one request after another) against step 3 (all at once).
//!
//! Both steps run as programs against an in-process emulator whose every
//! request takes exactly `L` (no jitter, no quota), so the ideal figures are
//! known: step 2 takes N × L, step 3 takes L. Step 3's *concurrency
//! efficiency* is `L / wall`: 1.0 would mean a thousand requests cost no more
//! than one; what it loses is the client's and the server's own work, on two
//! cores shared by both.
//!
//! Step 2 at N = 100 or 1000 would spend 100 or 1000 s waiting by design, so
//! it is run only where affordable and the other rows show N × L, marked as
//! not run.

use std::collections::BTreeMap;

use crate::binaries::{Binaries, run_step};
use crate::plan::{self, Plan};
use crate::table::{self, Table, median};

/// The steps' medians, kept for the Python section: (step, N) -> seconds.
pub type StepTimes = BTreeMap<(Mode, u32), f64>;

/// Which step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Step 2: one after another.
    Sequential,
    /// Step 3: all at once.
    Concurrent,
}

/// Runs the section and returns its table and the medians it measured.
pub async fn run(plan: &Plan, bins: &Binaries) -> anyhow::Result<(Table, StepTimes)> {
    let settings = plan::fixed_latency(plan.latency);
    let latency = plan.latency.as_secs_f64();
    let mut table = Table::new(
        "Step 2 (sequential) vs step 3 (concurrent)",
        format!(
            "L = {}; {}; the step binaries run as child processes; wall = the step's own `elapsed_s` (first request to last answer); step 3: median of {} run(s); step 2: {} run(s) (N × L by construction, it varies by well under 1 %).",
            plan::ms(plan.latency),
            plan::describe(&settings),
            plan.runs,
            plan.sequential_runs
        ),
        &[
            "N",
            "step 2 sequential",
            "step 3 concurrent",
            "efficiency L / wall",
            "speed-up",
        ],
    );
    let mut times = StepTimes::new();
    let server = emulator::start(settings).await?;
    for &n in &plan.batches {
        let sequential = match &bins.step2 {
            Some(bin) if n <= plan.sequential_max => {
                let t = median_of(plan.sequential_runs, bin, &server, n, "step 2").await?;
                times.insert((Mode::Sequential, n), t);
                Some(t)
            }
            _ => None,
        };
        let concurrent = match &bins.step3 {
            Some(bin) => {
                let t = median_of(plan.runs, bin, &server, n, "step 3").await?;
                times.insert((Mode::Concurrent, n), t);
                t
            }
            None => f64::NAN,
        };
        let estimate = f64::from(n) * latency;
        table.row(vec![
            n.to_string(),
            sequential.map_or_else(
                || format!("≈ {} (N × L, not run)", table::secs(estimate)),
                table::secs,
            ),
            table::secs(concurrent),
            table::num(latency / concurrent, 2),
            format!(
                "{}{}",
                if sequential.is_some() { "" } else { "≈ " },
                table::times(sequential.unwrap_or(estimate) / concurrent)
            ),
        ]);
    }
    table.note(format!(
        "Step 2 is run only up to N = {}: beyond that it is N × L by construction (each request waits for the one before; the N = {} row measures exactly that), and would take minutes.",
        plan.sequential_max, plan.sequential_max
    ));
    table.note("Efficiency 1.0 is the physical limit: every request in flight at once, no cost per request.");
    for (name, bin) in [("step 2", &bins.step2), ("step 3", &bins.step3)] {
        if bin.is_none() {
            table.note(format!(
                "{name}'s binary was not found: build it with `cargo build --release --workspace`."
            ));
        }
    }
    server.shutdown().await;
    Ok((table, times))
}

/// The median wall time of `runs` runs of a step with `-n n`.
pub(crate) async fn median_of(
    runs: usize,
    bin: &std::path::Path,
    server: &emulator::Emulator,
    n: u32,
    name: &str,
) -> anyhow::Result<f64> {
    let mut walls = Vec::new();
    for run in 1..=runs {
        eprintln!("bench: {name} -n {n} (run {run}/{runs})");
        let result = run_step(bin, server, &["-n".into(), n.to_string()]).await?;
        walls.push(result.elapsed_s);
    }
    Ok(median(&walls))
}
