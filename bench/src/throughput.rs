//! Section 2: how many requests per second our client can push, next to the ceiling.
//!
//! With the emulator's latency at zero, the only cost left is the stack's own
//! work: building the request, HTTP/1.1 on loopback, the emulator writing its
//! answer, and our client reading and parsing it. Three measurements, all in
//! this process against the same in-process emulator:
//!
//! - **ours**: `common::Client::generate_content`, answers parsed into
//!   `GenerateContentResponse` exactly as the steps do;
//! - **bare reqwest**: the same POST (same URL, header and body bytes) on a
//!   plain `reqwest::Client`, reading the body and parsing nothing: the
//!   ceiling of this stack, so `ours / bare` is our overhead;
//! - **emulator capacity**: bare reqwest with many more requests in flight,
//!   to show the emulator is not what limits the first two.
//!
//! Client and emulator share the same two cores, so every figure here is
//! "client + server" throughput; the ratio is what compares clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::GenerateContentRequest;
use common::cli::{DEFAULT_MODEL, DEFAULT_PROMPT};
use common::client::{Client, ClientConfig};
use common::config::ApiKey;

use crate::plan::{self, Plan};
use crate::table::{self, Table, median};

/// One way of sending the tutorial's request.
#[derive(Clone)]
enum Sender {
    /// Our client, with parsing.
    Ours(Client),
    /// A plain reqwest POST of the same bytes, without parsing.
    Bare {
        http: reqwest::Client,
        url: Arc<str>,
        body: Arc<[u8]>,
    },
}

impl Sender {
    /// Sends one request and checks that it succeeded.
    async fn send(&self, request: &GenerateContentRequest) -> anyhow::Result<()> {
        match self {
            Sender::Ours(client) => {
                client.generate_content(DEFAULT_MODEL, request).await?;
            }
            Sender::Bare { http, url, body } => {
                let response = http
                    .post(&**url)
                    .header("x-goog-api-key", "bench-key")
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                if !status.is_success() {
                    bail!("the emulator answered {status}");
                }
            }
        }
        Ok(())
    }
}

/// Runs the section.
pub async fn run(plan: &Plan) -> anyhow::Result<Table> {
    let settings = emulator::Settings::instant();
    let server = emulator::start(settings.clone()).await?;
    let request = GenerateContentRequest::from_prompt(DEFAULT_PROMPT);
    let ours = Sender::Ours(our_client(&server.base_url())?);
    let bare = bare_sender(&server.base_url(), &request)?;
    let mut table = Table::new(
        "Raw client throughput (no emulator latency)",
        format!(
            "{}; in-process, HTTP/1.1 on loopback, client and emulator on the same cores; {} requests per measurement; requests per second, median of {} run(s).",
            plan::describe(&settings),
            plan.throughput_requests,
            plan.runs
        ),
        &[
            "in flight",
            "ours: common::Client (req/s)",
            "bare reqwest, no parsing (req/s)",
            "ours / bare (median of per-run ratios)",
        ],
    );
    for &concurrency in &plan.concurrency {
        eprintln!("bench: throughput at {concurrency} in flight");
        let pair = rates(plan, &ours, &bare, &request, concurrency).await?;
        table.row(vec![
            concurrency.to_string(),
            table::count(pair.ours),
            table::count(pair.bare),
            table::percent(pair.ratio),
        ]);
    }
    eprintln!(
        "bench: emulator capacity at {} in flight",
        plan.capacity_concurrency
    );
    let capacity = rate(plan, &bare, &request, plan.capacity_concurrency).await?;
    table.row(vec![
        format!("{} (emulator capacity)", plan.capacity_concurrency),
        String::new(),
        table::count(capacity),
        String::new(),
    ]);
    table.note("Bare reqwest posts the same URL, header and body bytes and reads the whole answer, but parses nothing: the ceiling of reqwest + emulator on this machine.");
    table.note("The emulator capacity row is that ceiling with many more requests in flight: when it is near the best figure above, the emulator and the client are sharing the cores, not one waiting for the other.");
    server.shutdown().await;
    Ok(table)
}

/// Our client, configured as `connect` would for this emulator.
pub(crate) fn our_client(base_url: &str) -> anyhow::Result<Client> {
    Ok(Client::new(ClientConfig {
        base_url: url::Url::parse(base_url)?,
        api_key: ApiKey::new("bench-key"),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(60),
    })?)
}

/// A plain reqwest client with the request body serialised once.
fn bare_sender(base_url: &str, request: &GenerateContentRequest) -> anyhow::Result<Sender> {
    Ok(Sender::Bare {
        http: reqwest::Client::builder().build()?,
        url: format!("{base_url}/v1beta/models/{DEFAULT_MODEL}:generateContent").into(),
        body: serde_json::to_vec(request)
            .context("cannot serialise the request")?
            .into(),
    })
}

/// Medians of `plan.runs` paired measurements of two senders.
#[derive(Debug, Clone, Copy)]
struct Pair {
    /// Requests per second of the first sender.
    ours: f64,
    /// Requests per second of the second.
    bare: f64,
    /// The median of the per-run ratios `ours / bare`.
    ratio: f64,
}

/// Measures `ours` and `bare` in turns, `plan.runs` times each, and takes medians.
///
/// In turns, and in alternating order, because the machine is shared: a
/// burst of someone else's work then hits both senders alike, instead of
/// whichever happened to run during it, and the per-run ratio stays fair.
async fn rates(
    plan: &Plan,
    ours: &Sender,
    bare: &Sender,
    request: &GenerateContentRequest,
    concurrency: usize,
) -> anyhow::Result<Pair> {
    // Warm up: open the connections this level needs, so the first run does
    // not pay for handshakes the others skip.
    for sender in [ours, bare] {
        drive(sender, request, concurrency, concurrency).await?;
    }
    let per_second = |elapsed: Duration| plan.throughput_requests as f64 / elapsed.as_secs_f64();
    let (mut ours_rates, mut bare_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..plan.runs {
        let (first, second) = if run % 2 == 0 {
            (ours, bare)
        } else {
            (bare, ours)
        };
        let a = per_second(drive(first, request, concurrency, plan.throughput_requests).await?);
        let b = per_second(drive(second, request, concurrency, plan.throughput_requests).await?);
        let (o, r) = if run % 2 == 0 { (a, b) } else { (b, a) };
        ours_rates.push(o);
        bare_rates.push(r);
        ratios.push(o / r);
    }
    Ok(Pair {
        ours: median(&ours_rates),
        bare: median(&bare_rates),
        ratio: median(&ratios),
    })
}

/// The median requests per second of one sender, after a warm-up.
async fn rate(
    plan: &Plan,
    sender: &Sender,
    request: &GenerateContentRequest,
    concurrency: usize,
) -> anyhow::Result<f64> {
    drive(sender, request, concurrency, concurrency).await?;
    let mut rates = Vec::new();
    for _ in 0..plan.runs {
        let elapsed = drive(sender, request, concurrency, plan.throughput_requests).await?;
        rates.push(plan.throughput_requests as f64 / elapsed.as_secs_f64());
    }
    Ok(median(&rates))
}

/// Sends `total` requests with `concurrency` of them in flight at any time,
/// and returns how long it took.
///
/// `concurrency` worker tasks take request numbers from a shared counter
/// until none are left: each keeps exactly one request in flight, and the
/// tasks spread over the runtime's worker threads.
async fn drive(
    sender: &Sender,
    request: &GenerateContentRequest,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request.clone());
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (sender, request, next) = (sender.clone(), request.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    sender.send(&request).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await.context("a worker panicked")??;
    }
    Ok(started.elapsed())
}
