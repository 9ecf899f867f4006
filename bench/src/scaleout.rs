//! Section 7: one quota shared by several processes, through Redis.
//!
//! Gemini counts its quota per project and model, not per program. Four
//! copies of bulk, each with step 4's limiter of its own, each admit the full limit:
//! together they send four times too much. With `--redis` they share one set
//! of books. The emulator enforces a strict sliding window (20 requests per
//! second, so a case takes seconds), and we count what reached it: the 429s,
//! the most arrivals in any window, and the share of the limit over the run.
//!
//! It needs Debian's `redis-server`; the bench starts its own on a free
//! loopback port (and says so and skips the section when it is missing).

use std::time::{Duration, Instant};

use anyhow::bail;
use emulator::limits::most_in_any_window;
use emulator::{Latency, Settings};
use futures_util::future::join_all;
use testkit::StepCommand;
use testkit::redis::RedisServer;

use crate::binaries::Binaries;
use crate::paid::share_of_limit;
use crate::plan::Plan;
use crate::table::{self, Table, median};

/// The quota the emulator enforces: 20 requests in any trailing second.
const LIMIT: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);
/// Requests in all, whatever the number of processes.
const TOTAL: u32 = 80;

/// Runs the section.
pub async fn run(plan: &Plan, bins: &Binaries) -> anyhow::Result<Table> {
    let Some(bulk) = &bins.bulk else {
        bail!("the bulk binary is not built");
    };
    let mut table = Table::new(
        "Scaling out: four processes, one quota (Redis)",
        format!(
            "emulator: at most {LIMIT} requests in any {} s (strict sliding window), 20-30 ms latency; {TOTAL} requests in all, split over the processes; bulk with `--rpm {LIMIT} --window 1s`; median of {} run(s), a fresh emulator each.",
            WINDOW.as_secs(),
            plan.runs
        ),
        &[
            "run",
            "429s at the server",
            "most arrivals in any window",
            "share of the limit over the run",
            "wall",
        ],
    );
    let Some(redis) = RedisServer::start() else {
        table
            .note("Skipped: redis-server is not installed (Debian: apt-get install redis-server).");
        return Ok(table);
    };
    let cases = [
        ("1 process, local limiter", 1, false),
        ("4 processes, each its own local limiter", 4, false),
        ("4 processes sharing one quota (`--redis`)", 4, true),
    ];
    for (name, processes, shared) in cases {
        let mut refused = Vec::new();
        let mut peak = Vec::new();
        let mut share = Vec::new();
        let mut wall = Vec::new();
        for run in 0..plan.runs {
            eprintln!("bench: scale-out, {name} (run {}/{})", run + 1, plan.runs);
            let figures = one_case(bulk, processes, shared.then(|| redis.url())).await?;
            refused.push(figures.refused as f64);
            peak.push(figures.peak as f64);
            share.push(figures.share);
            wall.push(figures.wall.as_secs_f64());
        }
        let most = median(&peak);
        table.row(vec![
            name.into(),
            table::count(median(&refused)),
            format!(
                "{} ({})",
                table::count(most),
                table::percent(most / f64::from(LIMIT))
            ),
            table::percent(median(&share)),
            table::secs(median(&wall)),
        ]);
    }
    table.note(
        "Share of the limit over the run = requests answered per window, from the first arrival to the last plus one window. With a 1 s window the limiter's 250 ms minimum margin caps it near 84%; at the real 60 s window the margin costs 2%.",
    );
    Ok(table)
}

/// What the server saw in one case.
struct Figures {
    refused: usize,
    /// The most arrivals in any window (429s included: a strict window
    /// counts what it sees).
    peak: usize,
    share: f64,
    wall: Duration,
}

/// Runs `processes` copies of bulk at once against a fresh emulator.
async fn one_case(
    bulk: &std::path::Path,
    processes: u32,
    redis: Option<String>,
) -> anyhow::Result<Figures> {
    let server = emulator::start(Settings {
        rpm: Some(LIMIT),
        window: WINDOW,
        latency: Latency {
            base: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await?;
    let requests = (TOTAL / processes).to_string();
    let started = Instant::now();
    let runs = (0..processes).map(|_| {
        let mut command = StepCommand::new(bulk).against(&server).args([
            "-n",
            &requests,
            "--rpm",
            &LIMIT.to_string(),
            "--tpm",
            "0",
            "--rpd",
            "0",
            "--window",
            "1s",
            "--max-retries",
            "0",
            "--json",
        ]);
        if let Some(url) = &redis {
            command = command.args(["--redis", url]);
        }
        command.run()
    });
    join_all(runs).await;
    let wall = started.elapsed();
    let arrivals = server.stats().generates();
    let times: Vec<Duration> = arrivals.iter().map(|a| a.at).collect();
    let answered: Vec<Duration> = arrivals
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.at)
        .collect();
    Ok(Figures {
        refused: arrivals.iter().filter(|a| a.status == 429).count(),
        peak: most_in_any_window(&times, WINDOW),
        share: share_of_limit(&answered, LIMIT, WINDOW),
        wall,
    })
}
