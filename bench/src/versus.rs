//! Section 1b: step 3 next to bare reqwest doing the same work: wall time and peak memory.
//!
//! The steps section says how close step 3 comes to the physical limit (every request in
//! flight at once, wall = one latency); this one says how much of what is left is ours.
//! The anchor is a program with nothing of ours in it: bare reqwest, one `reqwest::Client`
//! per 100 requests in flight (a connection carries 100 streams, and one client keeps one
//! connection), each told the server speaks HTTP/2 so it opens exactly that one connection,
//! all N requests sent at once and every answer read to the end. It is the bench's own
//! binary in a hidden mode (`bench --child-bare N URL CA_FILE`), so each program is a
//! process of its own, measured the same way:
//!
//! - **wall**: first request to last answer, as each program times itself (step 3's
//!   `elapsed_s`; the bare child builds its clients before its clock starts, as step 3
//!   connects and checks the model before its own);
//! - **peak RSS**: the kernel's high-water mark (`VmHWM`), sampled while it runs.
//!
//! The two run in turn, in alternating order, against the same emulator (HTTPS with
//! HTTP/2, 100 streams per connection, a fixed latency), and each figure is a median.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use testkit::StepCommand;

use crate::binaries::{Binaries, Memory, SAMPLE_EVERY, memory_of, trusting};
use crate::plan::{self, Plan};
use crate::table::{self, Table, median};

/// Requests in flight per bare `reqwest::Client` (one HTTP/2 connection each).
const PER_CLIENT: usize = 100;

/// One program's run: its own wall time and its peak memory.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: f64,
    peak: f64,
}

/// Runs the section.
pub async fn run(plan: &Plan, bins: &Binaries) -> anyhow::Result<Table> {
    let settings = plan::fixed_latency(plan.latency);
    let mut table = Table::new(
        "Step 3 next to bare reqwest (same requests, same wire)",
        format!(
            "{}; both as child processes; wall = first request to last answer, as each program times itself; peak RSS = the process's `VmHWM`; medians of {} run(s), the two programs in alternating order.",
            plan::describe(&settings),
            plan.runs
        ),
        &[
            "N",
            "step 3 wall",
            "bare reqwest wall",
            "step 3 / bare (wall)",
            "step 3 peak RSS",
            "bare reqwest peak RSS",
            "step 3 / bare (RSS)",
        ],
    );
    let Some(step3) = &bins.step3 else {
        table.note("step 3's binary was not found: build it with `cargo build --release -p step3-concurrent`.");
        return Ok(table);
    };
    let server = emulator::start(settings).await?;
    let ca_file = crate::binaries::ca_file(&server)?.context("the emulator serves HTTPS")?;
    for &n in &plan.versus_batches {
        let (mut ours, mut bare) = (Vec::new(), Vec::new());
        for run in 0..plan.runs {
            eprintln!(
                "bench: step 3 and bare reqwest at N = {n} (run {}/{})",
                run + 1,
                plan.runs
            );
            let step3_command = trusting(StepCommand::new(step3).against(&server), &server)?
                .args(["-n", &n.to_string(), "--json"])
                .into_command();
            let mut bare_command = Command::new(std::env::current_exe()?);
            bare_command
                .arg("--child-bare")
                .args([n.to_string(), server.base_url()])
                .arg(&ca_file);
            let mut pair = [
                (step3_command, &mut ours, "step 3"),
                (bare_command, &mut bare, "bare reqwest"),
            ];
            if run % 2 == 1 {
                pair.reverse();
            }
            for (command, into, name) in pair {
                let measured = tokio::task::spawn_blocking(move || watch(command))
                    .await
                    .context("the sampling thread panicked")?
                    .with_context(|| format!("{name} at N = {n}"))?;
                into.push(measured);
            }
        }
        let field =
            |runs: &[Run], f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let ratio = |f: fn(&Run) -> f64| {
            median(
                &ours
                    .iter()
                    .zip(&bare)
                    .map(|(o, b)| f(o) / f(b))
                    .collect::<Vec<_>>(),
            )
        };
        table.row(vec![
            table::count(f64::from(n)),
            table::secs(field(&ours, |r| r.wall)),
            table::secs(field(&bare, |r| r.wall)),
            table::percent(ratio(|r| r.wall)),
            crate::memory::mib(field(&ours, |r| r.peak)),
            crate::memory::mib(field(&bare, |r| r.peak)),
            table::percent(ratio(|r| r.peak)),
        ]);
    }
    server.shutdown().await;
    table.note(format!("Bare reqwest: one default `reqwest::Client` per {PER_CLIENT} requests (each with its own TLS configuration, as the builder makes it, trusting the emulator's CA), `http2_prior_knowledge`, every answer read whole and kept until all are in (step 3 keeps each answer's text until it has printed it, in request order). Step 3 prints every answer as a JSON line (`--json`), into a pipe the bench drains."));
    table.note("Ratios are medians of the per-run ratios (each run pairs one step 3 run with one bare run, back to back): below 100 % step 3 is faster, or smaller.");
    Ok(table)
}

/// Runs `command` to its end, sampling its memory, and reads its wall time from the last
/// line of its stdout (a JSON object with `elapsed_s`); an error if it failed.
fn watch(mut command: Command) -> anyhow::Result<Run> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the program")?;
    // Drained as it comes, so a program that prints a line per answer never waits on a
    // full pipe.
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let mut seen = Memory::default();
    let status = loop {
        if let Some(memory) = memory_of(child.id()) {
            seen.peak = seen.peak.max(memory.peak);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let stdout = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reading thread panicked"))??;
    if !status.success() {
        bail!("it did not succeed ({status})");
    }
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(last).context("its last line is not a JSON summary")?;
    let wall = summary["elapsed_s"]
        .as_f64()
        .context("its summary has no elapsed_s")?;
    Ok(Run {
        wall,
        peak: seen.peak as f64,
    })
}

/// The child side (`bench --child-bare N URL CA_FILE`): `n` requests at once over ⌈n/100⌉
/// default reqwest clients trusting the CA in `ca_file`, every answer read to the end; prints
/// `{"elapsed_s": ...}` (first request to last answer) on stdout, or fails if any failed.
pub async fn child_bare(n: usize, base_url: &str, ca_file: &Path) -> anyhow::Result<()> {
    let pem = std::fs::read(ca_file)?;
    let clients = (0..n.div_ceil(PER_CLIENT))
        .map(|_| {
            Ok(reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
                .http2_prior_knowledge()
                .build()?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let url = format!("{base_url}/v1beta/models/gemini-flash-latest:generateContent");
    let body = br#"{"contents":[{"parts":[{"text":"Why do some birds migrate?"}]}]}"#;
    let key = testkit::TEST_KEY;
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..n).map(|i| {
        let (http, url) = (&clients[i / PER_CLIENT], &url);
        async move {
            http.post(url)
                .header("x-goog-api-key", key)
                .header("content-type", "application/json")
                .body(&body[..])
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
        }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    for answer in answers {
        answer?;
    }
    println!("{}", serde_json::json!({ "elapsed_s": elapsed }));
    Ok(())
}
