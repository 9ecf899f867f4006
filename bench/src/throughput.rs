//! Section 2: how many requests per second our client pushes, next to bare reqwest, on both wires.
//!
//! With the emulator's latency at zero, the only cost left is the stack's own work:
//! building the request, the wire on loopback, the emulator writing its answer, and the
//! client reading and parsing it. Three clients send the same POST (same URL, header and
//! body bytes) to the same in-process emulator:
//!
//! - **ours**: `common::Client::generate_content`, as the steps call it: the answer read
//!   within its size cap, checked for echoed secrets, typed into `GenerateContentResponse`;
//! - **bare reqwest + serde**: `reqwest` and `.json::<GenerateContentResponse>()`, what a
//!   user of bare reqwest writes: the anchor, the same work with nothing of ours around it;
//! - **bare reqwest, no parsing**: the body read and dropped: the ceiling of the stack, so
//!   `ours / no parsing` also counts the parse itself.
//!
//! Each runs on plain HTTP/1.1 and on HTTPS with HTTP/2 (the real API's wire), at several
//! levels of requests in flight. Over HTTP/2 the bare clients are one `reqwest::Client` per
//! 100 in flight (a connection carries 100 streams; ours opens its lanes itself), each told
//! the server speaks HTTP/2 so that it opens exactly one connection.
//!
//! Client and emulator share the same cores, so every rate is "client + server"; ratios are
//! what compare clients. The three are measured in turn, in a rotating order, round after
//! round, and each ratio is the median of the per-round ratios, so a burst of someone
//! else's work on a shared machine hits all of them alike. CPU per request ([`crate::cpu`])
//! is beside each rate: it is what a busy machine blurs least.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::cli::{DEFAULT_MODEL, DEFAULT_PROMPT};
use common::client::{Client, ClientConfig};
use common::config::ApiKey;
use common::trust::TlsRoots;
use common::{GenerateContentRequest, GenerateContentResponse};

use crate::plan::Plan;
use crate::table::{self, Table, median};

/// Requests in flight that one bare `reqwest::Client` carries over HTTP/2 (one connection).
const STREAMS_PER_CLIENT: usize = 100;

/// One way of sending the tutorial's request.
#[derive(Clone)]
enum Sender {
    /// Our client.
    Ours(Client),
    /// Plain reqwest clients (worker `w` uses client `w / 100`) posting the same bytes.
    Bare {
        clients: Arc<[reqwest::Client]>,
        url: Arc<str>,
        body: Arc<[u8]>,
        /// Whether the answer is typed (`.json::<GenerateContentResponse>()`) or dropped.
        parse: bool,
    },
}

impl Sender {
    /// Sends one request as worker `worker` and checks that it succeeded.
    async fn send(&self, worker: usize, request: &GenerateContentRequest) -> anyhow::Result<()> {
        match self {
            Sender::Ours(client) => {
                client.generate_content(DEFAULT_MODEL, request).await?;
            }
            Sender::Bare {
                clients,
                url,
                body,
                parse,
            } => {
                let http = &clients[(worker / STREAMS_PER_CLIENT) % clients.len()];
                let response = http
                    .post(&**url)
                    .header("x-goog-api-key", "bench-key")
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await?;
                let status = response.status();
                if !status.is_success() {
                    bail!("the emulator answered {status}");
                }
                if *parse {
                    response.json::<GenerateContentResponse>().await?;
                } else {
                    response.bytes().await?;
                }
            }
        }
        Ok(())
    }
}

/// The wires the section runs on.
#[derive(Debug, Clone, Copy)]
enum Wire {
    Http1,
    Http2,
}

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::Http1 => "HTTP/1.1",
            Wire::Http2 => "HTTPS + HTTP/2",
        }
    }
}

/// Runs the section.
pub async fn run(plan: &Plan) -> anyhow::Result<Table> {
    let mut table = Table::new(
        "Raw client throughput (no emulator latency), ours next to bare reqwest",
        format!(
            "emulator: no latency, no quota, no faults, in-process on loopback, client and emulator on the same cores; plain HTTP/1.1, and HTTPS with HTTP/2 (at most {} streams per connection); {} requests per measurement; requests per second and CPU per request (client + emulator), medians of {} round(s), each round measuring the three clients in turn.",
            emulator::Settings::default().max_streams,
            plan.throughput_requests,
            plan.throughput_rounds
        ),
        &[
            "wire",
            "in flight",
            "ours (req/s)",
            "bare reqwest + serde (req/s)",
            "bare reqwest, no parsing (req/s)",
            "ours / bare + serde",
            "ours / no parsing",
            "CPU per request: ours / + serde / no parsing",
        ],
    );
    let request = GenerateContentRequest::from_prompt(DEFAULT_PROMPT);
    for wire in [Wire::Http1, Wire::Http2] {
        let mut settings = emulator::Settings::instant();
        settings.tls = matches!(wire, Wire::Http2);
        let server = emulator::start(settings).await?;
        let ours = Sender::Ours(our_client_for(&server)?);
        for &concurrency in &plan.concurrency {
            eprintln!(
                "bench: throughput on {} at {concurrency} in flight",
                wire.name()
            );
            let senders = [
                ours.clone(),
                bare_sender(&server, &request, concurrency, true)?,
                bare_sender(&server, &request, concurrency, false)?,
            ];
            let figures = measure(plan, &senders, &request, concurrency).await?;
            table.row(vec![
                wire.name().into(),
                concurrency.to_string(),
                table::count(figures.rates[0]),
                table::count(figures.rates[1]),
                table::count(figures.rates[2]),
                table::percent(figures.ratios[0]),
                table::percent(figures.ratios[1]),
                figures
                    .cpu
                    .iter()
                    .map(|cpu| format!("{} µs", table::num(*cpu, 1)))
                    .collect::<Vec<_>>()
                    .join(" / "),
            ]);
        }
        server.shutdown().await;
    }
    table.note("Bare reqwest + serde is the anchor: the same request and the same typed answer, with nothing of ours around it. Ours adds the size cap, the deadline, the check for echoed secrets, the connection lanes and the error classification. No parsing is the stack's ceiling: its gap to + serde is what typing the answer itself costs.");
    table.note(format!("Over HTTPS the bare clients are one `reqwest::Client` per {STREAMS_PER_CLIENT} in flight, told the server speaks HTTP/2 (so each opens exactly one connection, as our lanes do); over HTTP/1.1 reqwest opens one connection per request in flight either way."));
    table.note("CPU per request counts this whole process (client and emulator): the emulator's share is the same for the three, so the differences are the clients'. It is what a busy, shared machine blurs least; rates can move by several percent between runs.");
    Ok(table)
}

/// Our client, configured as `connect` would for this emulator (trusting its CA over HTTPS).
pub(crate) fn our_client_for(server: &emulator::Emulator) -> anyhow::Result<Client> {
    let roots = match server.ca_pem() {
        Some(pem) => TlsRoots::Only(pem.to_string()),
        None => TlsRoots::System,
    };
    Ok(Client::with_roots(config(&server.base_url())?, roots)?)
}

/// Our client for a plain-HTTP server at `base_url`.
pub(crate) fn our_client(base_url: &str) -> anyhow::Result<Client> {
    Ok(Client::new(config(base_url)?)?)
}

/// How the bench's clients reach a server.
fn config(base_url: &str) -> anyhow::Result<ClientConfig> {
    Ok(ClientConfig {
        base_url: url::Url::parse(base_url)?,
        api_key: ApiKey::new("bench-key"),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(60),
    })
}

/// Bare reqwest clients for `concurrency` requests in flight, with the body serialised once.
fn bare_sender(
    server: &emulator::Emulator,
    request: &GenerateContentRequest,
    concurrency: usize,
    parse: bool,
) -> anyhow::Result<Sender> {
    let clients = (0..concurrency.div_ceil(STREAMS_PER_CLIENT))
        .map(|_| bare_client(server))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Sender::Bare {
        clients: clients.into(),
        url: format!(
            "{}/v1beta/models/{DEFAULT_MODEL}:generateContent",
            server.base_url()
        )
        .into(),
        body: serde_json::to_vec(request)
            .context("cannot serialise the request")?
            .into(),
        parse,
    })
}

/// A default reqwest client; over HTTPS it trusts the emulator's CA and speaks HTTP/2 from
/// the start.
pub(crate) fn bare_client(server: &emulator::Emulator) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = server.ca_pem() {
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?)
            .http2_prior_knowledge();
    }
    Ok(builder.build()?)
}

/// The medians of one level: rates (req/s) and CPU per request (µs) of the three senders,
/// and the ratios of ours to each bare sender.
struct Figures {
    rates: [f64; 3],
    cpu: [f64; 3],
    ratios: [f64; 2],
}

/// Measures the senders in turn, `plan.throughput_rounds` times, in a rotating order.
async fn measure(
    plan: &Plan,
    senders: &[Sender; 3],
    request: &GenerateContentRequest,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    // Warm up: open the connections this level needs, so the first round does not pay
    // for handshakes the others skip.
    for sender in senders {
        drive(sender, request, concurrency, concurrency.max(100)).await?;
    }
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 2] = Default::default();
    for round in 0..plan.throughput_rounds {
        let mut this_round = [0.0; 3];
        for turn in 0..senders.len() {
            let which = (round + turn) % senders.len();
            let cpu_before = crate::cpu::used();
            let elapsed = drive(
                &senders[which],
                request,
                concurrency,
                plan.throughput_requests,
            )
            .await?;
            let cpu_used = crate::cpu::used()
                .zip(cpu_before)
                .map_or(f64::NAN, |(after, before)| {
                    after.saturating_sub(before).as_secs_f64()
                });
            let requests = plan.throughput_requests as f64;
            this_round[which] = requests / elapsed.as_secs_f64();
            rates[which].push(this_round[which]);
            cpu[which].push(cpu_used / requests * 1e6);
        }
        ratios[0].push(this_round[0] / this_round[1]);
        ratios[1].push(this_round[0] / this_round[2]);
    }
    Ok(Figures {
        rates: rates.each_ref().map(|r| median(r)),
        cpu: cpu.each_ref().map(|c| median(c)),
        ratios: ratios.each_ref().map(|r| median(r)),
    })
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
        .map(|worker| {
            let (sender, request, next) = (sender.clone(), request.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    sender.send(worker, &request).await?;
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
