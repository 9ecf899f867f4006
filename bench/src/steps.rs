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
    wire_rows(plan, bins, &server, &mut table).await?;
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

/// The rows that show what the multi-connection client removes, at `plan.wire_batch`: a bare
/// reqwest `Client` (hyper puts all its requests on one HTTP/2 connection, so at most 100 are
/// in flight), and step 3 against the same emulator over plain HTTP/1.1 (one connection per
/// request).
async fn wire_rows(
    plan: &Plan,
    bins: &Binaries,
    server: &emulator::Emulator,
    table: &mut Table,
) -> anyhow::Result<()> {
    let n = plan.wire_batch;
    let latency = plan.latency.as_secs_f64();
    let mut walls = Vec::new();
    for run in 1..=plan.runs {
        eprintln!(
            "bench: one HTTP/2 connection, {n} requests (run {run}/{})",
            plan.runs
        );
        walls.push(one_connection(server, n).await?);
    }
    let one = median(&walls);
    table.row(vec![
        format!("{n}, one HTTP/2 connection (bare reqwest `Client`)"),
        "—".into(),
        table::secs(one),
        table::num(latency / one, 2),
        "—".into(),
    ]);
    if let Some(step3) = &bins.step3 {
        let mut settings = plan::fixed_latency(plan.latency);
        settings.tls = false;
        let plain = emulator::start(settings).await?;
        let wall = median_of(plan.runs, step3, &plain, n, "step 3 over HTTP/1.1").await?;
        plain.shutdown().await;
        table.row(vec![
            format!("{n}, step 3 over plain HTTP/1.1"),
            "—".into(),
            table::secs(wall),
            table::num(latency / wall, 2),
            "—".into(),
        ]);
    }
    table.note("Step 3 keeps one HTTP/2 connection per 100 requests in flight (Google's front end allows 100 streams per connection, as the emulator does here). A single reqwest `Client` keeps one connection however many requests wait, so request 101 waits for a free stream: the one-connection row is that ceiling, about N / 100 latencies.");
    Ok(())
}

/// The wall time of `n` requests sent at once on one bare reqwest `Client` (one connection,
/// warmed first so it is HTTP/2 before the burst).
async fn one_connection(server: &emulator::Emulator, n: u32) -> anyhow::Result<f64> {
    let ca = reqwest::Certificate::from_pem(server.ca_pem().unwrap_or_default().as_bytes())?;
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()?;
    let base = server.base_url();
    let model = format!("{base}/v1beta/models/gemini-2.5-flash");
    let key = testkit::TEST_KEY;
    http.get(&model)
        .header("x-goog-api-key", key)
        .send()
        .await?
        .error_for_status()?;
    let body =
        serde_json::json!({"contents": [{"parts": [{"text": "Why do some birds migrate?"}]}]});
    let url = format!("{model}:generateContent");
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all((0..n).map(|_| async {
        let response = http
            .post(&url)
            .header("x-goog-api-key", key)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        response.bytes().await
    }))
    .await;
    let wall = started.elapsed().as_secs_f64();
    for answer in answers {
        answer?;
    }
    Ok(wall)
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
