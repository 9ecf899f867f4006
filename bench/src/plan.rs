//! What each section measures, in the full run and in `--quick`.
//!
//! All the sizes live here, in one struct, so the two runs can be compared at
//! a glance and the 5-minute budget of the full run can be checked by adding
//! up a few lines. The quick run keeps every row (the test checks them all)
//! but shrinks sizes and latencies until the whole bench takes seconds.

use std::time::Duration;

/// The sizes and settings of one bench run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Whether this is `--quick` (printed in the header).
    pub quick: bool,
    /// Runs per figure; each figure is their median.
    pub runs: usize,
    /// Runs of the sequential rows (step 2 and the Python seed's sequential
    /// script). They take N × latency by construction and vary by well under
    /// 1 %, so one run is honest, and more would spend a third of the budget.
    pub sequential_runs: usize,
    /// The emulator's fixed latency for the steps section and the Python peer.
    pub latency: Duration,
    /// Batch sizes of the steps section (step 3 runs them all).
    pub batches: Vec<u32>,
    /// The batch of the rows that show what the multi-connection client removes: one HTTP/2
    /// connection (bare reqwest), and plain HTTP/1.1.
    pub wire_batch: u32,
    /// The Python seed runs batches up to this size (beyond, its 100-connection pool makes it
    /// N / 100 latencies, minutes at N = 10,000).
    pub python_max: u32,
    /// Step 2 (one request after another) runs only batches up to this size:
    /// beyond it, it would take N × latency, which the budget cannot afford.
    pub sequential_max: u32,
    /// Concurrency levels of the raw client throughput section (on each wire).
    pub concurrency: Vec<usize>,
    /// Requests per throughput measurement.
    pub throughput_requests: usize,
    /// Rounds of the throughput section: each measures every client once, in turn, and a
    /// figure is the median over the rounds (more than `runs`: one measurement is a fraction
    /// of a second, where a burst of someone else's work on a shared machine weighs most).
    pub throughput_rounds: usize,
    /// Batch sizes at which step 3 is set next to bare reqwest (wall time and peak memory).
    pub versus_batches: Vec<u32>,
    /// The paid-tier rows: each a pace bulk is held to (see [`Pace`]).
    pub paid_paces: Vec<Pace>,
    /// The emulator's latency in the paid-tier rows.
    pub paid_latency: Duration,
    /// The rate-limit experiment: requests per window...
    pub limit: u32,
    /// ...the window...
    pub window: Duration,
    /// ...requests submitted at once...
    pub limit_requests: usize,
    /// ...and the emulator's latency meanwhile.
    pub limit_latency: Duration,
    /// Acquires per cost-of-acquire measurement.
    pub acquires: usize,
    /// Tasks sharing the limiter in the contended measurement.
    pub acquire_tasks: usize,
    /// Requests queued at once for step 4's memory.
    pub memory_queued: u32,
}

impl Plan {
    /// The full bench: `cargo run --release -p bench` (about 4 minutes on 2 cores).
    pub fn full(runs: usize) -> Plan {
        Plan {
            quick: false,
            runs,
            sequential_runs: 1,
            latency: Duration::from_secs(1),
            batches: vec![10, 100, 1000, 10_000],
            wire_batch: 1000,
            python_max: 1000,
            sequential_max: 10,
            concurrency: vec![1, 16, 64, 256],
            throughput_requests: 4000,
            throughput_rounds: 7,
            versus_batches: vec![1000, 10_000],
            // 10,000 requests a minute, a paid tier's pace, compressed so that each row takes
            // about half a minute: tenfold (1,000 per 6 s), and fourfold (2,500 per 15 s),
            // where the limiter's safety margin is the 2 % it is at the real 60 s window.
            paid_paces: vec![
                Pace {
                    limit: 1000,
                    window: Duration::from_secs(6),
                    requests: 5000,
                },
                Pace {
                    limit: 2500,
                    window: Duration::from_secs(15),
                    requests: 7500,
                },
            ],
            paid_latency: Duration::from_secs(2),
            limit: 100,
            window: Duration::from_secs(2),
            limit_requests: 350,
            limit_latency: Duration::from_millis(200),
            acquires: 200_000,
            acquire_tasks: 64,
            memory_queued: 100_000,
        }
    }

    /// `--quick`: every row, tiny sizes, one run each; seconds in all.
    pub fn quick() -> Plan {
        Plan {
            quick: true,
            runs: 1,
            sequential_runs: 1,
            latency: Duration::from_millis(200),
            batches: vec![5, 20, 50],
            wire_batch: 50,
            python_max: 50,
            sequential_max: 5,
            concurrency: vec![1, 8],
            throughput_requests: 200,
            throughput_rounds: 1,
            versus_batches: vec![50],
            paid_paces: vec![Pace {
                limit: 20,
                window: Duration::from_secs(1),
                requests: 60,
            }],
            paid_latency: Duration::from_millis(100),
            limit: 10,
            window: Duration::from_millis(500),
            limit_requests: 25,
            limit_latency: Duration::from_millis(20),
            acquires: 5_000,
            acquire_tasks: 8,
            memory_queued: 1_000,
        }
    }
}

/// A rate limit and the requests sent under it (the paid-tier rows).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Requests per window, for the emulator and for bulk alike.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// Requests sent: a whole number of windows' worth, so every window is full.
    pub requests: u32,
}

/// An emulator with a fixed latency and no quota, no faults: what the steps
/// and the Python peer are measured against. Over HTTPS with HTTP/2 and 100
/// streams per connection, the real API's wire.
pub fn fixed_latency(latency: Duration) -> emulator::Settings {
    let mut settings = emulator::Settings::instant();
    settings.tls = true;
    settings.latency = emulator::Latency {
        base: latency,
        ..emulator::Latency::ZERO
    };
    settings
}

/// Describes emulator settings in a few words, for a table's setup line.
pub fn describe(settings: &emulator::Settings) -> String {
    let latency = &settings.latency;
    let mut parts = vec![if latency == &emulator::Latency::ZERO {
        "no latency".to_string()
    } else if latency.jitter.is_zero() && latency.per_output_token.is_zero() {
        format!("latency {} fixed", ms(latency.base))
    } else {
        format!(
            "latency {} + 0-{} jitter + {} per output token",
            ms(latency.base),
            ms(latency.jitter),
            ms(latency.per_output_token)
        )
    }];
    match settings.rpm {
        Some(0) => parts.push("no quota".into()),
        Some(rpm) => parts.push(format!(
            "at most {rpm} requests in any {} (strict sliding window)",
            ms(settings.window)
        )),
        None => parts.push("free-tier quota".into()),
    }
    if settings.faults.is_none() {
        parts.push("no faults".into());
    }
    parts.push(if settings.tls {
        format!(
            "HTTPS with HTTP/2, at most {} streams per connection",
            settings.max_streams
        )
    } else {
        "plain HTTP/1.1".into()
    });
    format!("emulator: {}", parts.join(", "))
}

/// A duration in the unit that reads best ("1 s", "200 ms", "3.5 ms").
pub fn ms(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1e3;
    if millis >= 1000.0 && millis % 1000.0 == 0.0 {
        format!("{} s", millis / 1000.0)
    } else if millis >= 1000.0 {
        format!("{:.2} s", millis / 1000.0)
    } else if millis.fract() == 0.0 {
        format!("{millis} ms")
    } else {
        format!("{millis:.1} ms")
    }
}
