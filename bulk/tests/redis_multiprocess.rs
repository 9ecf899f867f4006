//! Scaling out, end to end: several processes of the `bulk` binary, one
//! emulator, one Redis, one quota.
//!
//! The emulator enforces a strict 1 s window of 20 requests and records
//! every arrival with its status, so it is the judge: with `--redis`, four
//! processes running side by side must together get zero 429s and never
//! put more than the limit into one window. Without Redis each process
//! would run at the full limit on its own, and together at four times it
//! (the bench's scale-out section measures both).
//!
//! Skipped with a note when `redis-server` is not installed, unless `CI` is
//! set (see `testkit::redis`).

use std::time::Duration;

use emulator::limits::most_in_any_window;
use emulator::{Arrival, Emulator, Latency, Settings};
use futures_util::future::join_all;
use testkit::redis::RedisServer;
use testkit::{StepCommand, StepOutput, pacing::count};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");
const MS: Duration = Duration::from_millis(1);
/// The quota the emulator enforces: 20 requests in any trailing second.
const LIMIT: u32 = 20;
const WINDOW: Duration = Duration::from_secs(1);

/// An emulator enforcing [`LIMIT`] per [`WINDOW`] (requests only), with a
/// 20-30 ms latency.
async fn emulator() -> Emulator {
    emulator::start(Settings {
        rpm: Some(LIMIT),
        window: WINDOW,
        latency: Latency {
            base: 20 * MS,
            jitter: 10 * MS,
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await
    .expect("the emulator starts")
}

/// Runs `processes` copies of bulk at once against `server`, each
/// sending `requests`, sharing `redis` if given. Returns their outputs.
async fn run(
    server: &Emulator,
    redis: Option<&RedisServer>,
    processes: usize,
    requests: u32,
) -> Vec<StepOutput> {
    let runs = (0..processes).map(|_| {
        let mut command = StepCommand::new(BULK).against(server).args([
            "-n",
            &requests.to_string(),
            "--rpm",
            &LIMIT.to_string(),
            "--tpm",
            "0",
            "--rpd",
            "0",
            "--window",
            "1s",
            "--json",
        ]);
        if let Some(redis) = redis {
            command = command.args(["--redis", &redis.url()]);
        }
        command.run()
    });
    join_all(runs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_one_quota_with_zero_429s() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = emulator().await;

    let outputs = run(&server, Some(&redis), 4, 20).await;

    for out in &outputs {
        assert!(out.status.success(), "{}", out.all());
        let summary = out.summary();
        assert_eq!(count(&summary, "succeeded"), 20, "{summary}");
        assert_eq!(count(&summary, "rate_limited"), 0, "{summary}");
        // Waiting for the others is not "none had to wait" (the first
        // process may really have had a window to itself).
        let all = out.all();
        let waited_nothing = [
            "waited in the limiter: 0.0 s",
            "waited in the limiter: 0.1 s",
        ];
        assert!(
            !all.contains("none had to wait") || waited_nothing.iter().any(|w| all.contains(w)),
            "{all}"
        );
    }
    // 80 requests in four windows of 20: whoever shared a window with
    // another process reports the pace of both, not its own alone.
    assert!(
        outputs.iter().any(|out| out.all().contains(
            "combined pace: "
        ) && out.all().contains("requests of all the processes sharing the quota (20 of them this run's requests)")),
        "{}",
        outputs.iter().map(StepOutput::all).collect::<Vec<_>>().join("\n")
    );
    let arrivals = server.stats().generates();
    assert_eq!(arrivals.len(), 80, "one attempt each");
    let refused: Vec<&Arrival> = arrivals.iter().filter(|a| a.status != 200).collect();
    assert!(refused.is_empty(), "the server refused {refused:?}");
    // The strict window's own rule, on the server's clock: never more than
    // the limit in any trailing window. (Speed is the bench's to measure.)
    let times: Vec<Duration> = arrivals.iter().map(|a| a.at).collect();
    let peak = most_in_any_window(&times, WINDOW);
    assert!(
        peak <= LIMIT as usize,
        "{peak} arrivals in one window, over the limit of {LIMIT}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_exits_before_any_request() {
    let server = emulator().await;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");

    let out = StepCommand::new(BULK)
        .against(&server)
        .env("GEMINI_RATELIMIT_REDIS", &url)
        .args(["-n", "3", "--json"])
        .run()
        .await;

    assert_eq!(out.code(), Some(1), "{}", out.all());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert!(errors[0].contains(&url), "{}", errors[0]);
    assert!(
        server.stats().arrivals.is_empty(),
        "nothing reached the server: {:?}",
        server.stats().arrivals
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_spent_in_redis_ends_the_next_run_with_a_line_instead_of_a_wait() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = emulator().await;
    let run_once = |n: &'static str| {
        StepCommand::new(BULK)
            .against(&server)
            .args(["-n", n, "--rpd", "2", "--json", "--redis", &redis.url()])
            .run()
    };
    let first = run_once("2").await;
    assert_eq!(count(&first.summary(), "succeeded"), 2, "{}", first.all());
    // The day's two are spent, in Redis: the next process says so and ends.
    let second = run_once("2").await;
    let summary = second.summary();
    assert_eq!(count(&summary, "not_done"), 2, "{}", second.all());
    let lines: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| l.contains("daily quota reached"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", second.stderr);
    assert!(lines[0].contains("resets in"), "{}", lines[0]);
    assert_eq!(server.stats().generates().len(), 2);
}
