//! The bench must keep working: run `bench --quick` and check its tables.
//!
//! The assertions are about shape and sanity, never speed (machines are noisy
//! and shared): every section is there with its rows, the numbers parse, and
//! they are physically possible (an efficiency above 1, a 429 from step 4's
//! limiter, or a negative figure would mean the bench measures the wrong
//! thing). The Python rows are checked only when a Python with `google-genai`
//! is available, as the bench itself decides.

use std::process::Command;

/// The bench's stdout from `--quick`, after checking it exited successfully.
fn quick_output() -> String {
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_bench"));
    let mut command = Command::new(bench);
    command.arg("--quick");
    // Under `cargo test --workspace` the binaries it runs (the steps and
    // bulk) were built with the tests, next to the bench's. Then the bench
    // must not run a cargo build of its own: a nested build with another
    // feature set writes a second copy of shared dependencies into the same
    // target directory while this test run is still using it (doctests
    // compiled afterwards then fail to link). Only a lone `cargo test -p
    // bench` lets the bench build them.
    let steps_built = [
        "step2-sequential",
        "step3-concurrent",
        "step4-ratelimit",
        "bulk",
    ]
    .iter()
    .all(|name| {
        bench
            .with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX))
            .is_file()
    });
    if steps_built {
        command.arg("--no-build");
    }
    let output = command.output().expect("the bench binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "bench --quick failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The rows (cells trimmed) of the table under the heading that starts with `title`.
fn table(stdout: &str, title: &str) -> Vec<Vec<String>> {
    let section = stdout
        .split("### ")
        .find(|s| s.starts_with(title))
        .unwrap_or_else(|| panic!("no section {title:?} in\n{stdout}"));
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .skip(1) // the header row
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The first number in a cell ("1,234 req/s" -> 1234.0, "0.96" -> 0.96).
fn number(cell: &str) -> f64 {
    let start = cell
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or_else(|| panic!("no number in {cell:?}"));
    let digits: String = cell[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("bad number in {cell:?}"))
}

/// Finds the row whose first cell starts with `first`.
fn row<'a>(rows: &'a [Vec<String>], first: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r[0].starts_with(first))
        .unwrap_or_else(|| panic!("no row {first:?} in {rows:?}"))
}

#[test]
fn quick_bench_prints_every_section_with_sane_numbers() {
    let out = quick_output();
    assert!(out.contains("cores"), "the header names the core count");

    // Steps: one row per N; step 2 measured at the smallest N only;
    // efficiency is L / wall, so between 0 and 1.
    // Then the two wire rows: one HTTP/2 connection, and plain HTTP/1.1.
    let steps = table(&out, "Step 2 (sequential) vs step 3");
    assert_eq!(steps.len(), 5, "{steps:?}");
    row(&steps, "50, one HTTP/2 connection");
    row(&steps, "50, step 3 over plain HTTP/1.1");
    assert!(!steps[0][1].contains("not run"), "{steps:?}");
    assert!(steps[0][1].ends_with(" s"));
    for r in &steps {
        assert!(number(&r[2]) > 0.0, "{r:?}");
        let efficiency = number(&r[3]);
        assert!(efficiency > 0.0 && efficiency <= 1.0, "{r:?}");
    }
    assert!(steps[1][1].contains("not run") && steps[2][1].contains("not run"));

    // Step 3 next to bare reqwest: one row per N, both programs' wall and peak memory.
    let versus = table(&out, "Step 3 next to bare reqwest");
    assert_eq!(versus.len(), 1, "{versus:?}");
    for cell in &versus[0][1..] {
        assert!(number(cell) > 0.0, "{versus:?}");
    }
    assert!(versus[0][3].ends_with('%') && versus[0][6].ends_with('%'));

    // Throughput: every level on both wires has the three clients, two ratios and the CPU
    // per request of each.
    let throughput = table(&out, "Raw client throughput");
    assert_eq!(throughput.len(), 4, "{throughput:?}");
    for (r, wire) in throughput
        .iter()
        .zip(["HTTP/1.1", "HTTP/1.1", "HTTPS", "HTTPS"])
    {
        assert!(r[0].starts_with(wire), "{r:?}");
        for cell in &r[2..5] {
            assert!(number(cell) > 0.0, "{r:?}");
        }
        assert!(r[5].ends_with('%') && r[6].ends_with('%'), "{r:?}");
        assert_eq!(r[7].matches("µs").count(), 3, "{r:?}");
    }

    // Rate limiting: step 4's limiter never draws a 429 from a strict window
    // it is configured for, and never lets more than the limit into one.
    let limiting = table(&out, "Rate limiting");
    assert_eq!(limiting.len(), 5, "{limiting:?}");
    let ours = row(&limiting, "step 4 `Limiter`, default margin");
    assert_eq!(ours[1], "0 / 0", "{ours:?}");
    assert_eq!(number(&ours[2]), 10.0, "{ours:?}");
    row(&limiting, "governor 0.10 (GCRA), burst 10");
    row(&limiting, "governor 0.10 (GCRA), burst 1");

    // Cost of acquire: a positive figure for both limiters.
    let acquire = table(&out, "Cost of one acquire");
    for name in ["step 4", "governor"] {
        let r = row(&acquire, name);
        assert!(number(&r[1]) > 0.0 && number(&r[2]) > 0.0, "{r:?}");
    }

    // The paid-tier pace: bulk draws no 429 and never puts more than the limit (20 in
    // --quick) into one window.
    let paid = table(&out, "The limiter at a paid tier's pace");
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(number(&paid[0][2]), 0.0, "{paid:?}");
    assert!(number(&paid[0][3]) <= 20.0, "{paid:?}");
    assert!(paid[0][4].ends_with('%'), "{paid:?}");

    // Memory: every program's peak is at least its own baseline (1 request),
    // and the limiter-alone row is always there.
    let memory = table(&out, "Memory");
    assert!(memory.len() >= 2, "{memory:?}");
    row(&memory, "step 4's `Limiter` alone");
    // bulk is built with the bench: its prompts-file row is always there.
    row(&memory, "bulk, a prompts file queued");
    for r in &memory {
        let (peak, base) = (number(&r[2]), number(&r[3]));
        assert!(base > 1.0 && peak >= base, "{r:?}");
    }

    // Python: rows only when the bench found a Python with google-genai.
    let python = table(&out, "Rust steps vs the seed's Python");
    if out.contains("No Python with google-genai found") {
        assert!(python.is_empty());
    } else {
        assert_eq!(python.len(), 5, "{python:?}");
        for r in &python {
            assert!(number(&r[2]) > 0.0 && number(&r[3]) > 0.0, "{r:?}");
        }
    }

    // Scaling out: rows only when redis-server is installed (CI installs
    // it). Four processes sharing Redis draw no 429 and never put more than
    // the limit (20) into one window; four with their own limiters do.
    let scale = table(&out, "Scaling out");
    if out.contains("Skipped: redis-server is not installed") {
        assert!(scale.is_empty());
    } else {
        assert_eq!(scale.len(), 3, "{scale:?}");
        let shared = row(&scale, "4 processes sharing one quota");
        assert_eq!(number(&shared[1]), 0.0, "{shared:?}");
        assert!(number(&shared[2]) <= 20.0, "{shared:?}");
        let alone = row(&scale, "4 processes, each its own");
        assert!(number(&alone[1]) > 0.0, "{alone:?}");
    }
}
