//! bulk against a hostile server (`testkit::hostile`) and
//! with secrets in its Redis URL.
//!
//! The key must appear in no output (stdout, stderr, `--output`) whatever a
//! server echoes; an absurd `retryDelay` must fail its request with a clear
//! reason instead of panicking or waiting; a Redis password must appear
//! neither in `--help` nor in any message; and a shared pause is bounded
//! however long a server asked for.

use std::time::Duration;

use bulk::pace::{Limits, RateLimit};
use bulk::redis::{RedisLimiter, Scope};
use testkit::hostile::{self, KEY, Mode};
use testkit::redis::RedisServer;
use testkit::{ScratchDir, StepCommand, StepOutput};
use tokio::time::{Instant, timeout};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

/// A password that must never be printed.
const PASSWORD: &str = "hunter2-redis-pw";

/// bulk against a fresh hostile server in `mode`: two requests, `--json`,
/// answers to `--output`, no pacing, fast retries. Returns the output and
/// what was written to the file.
async fn run(mode: Mode) -> (StepOutput, String) {
    let addr = hostile::start(mode).await;
    let dir = ScratchDir::new("hostile");
    let output = dir.path().join("answers.jsonl");
    let out = StepCommand::new(BULK)
        .env("GOOGLE_GEMINI_BASE_URL", &hostile::base_url(addr))
        .env("GOOGLE_API_KEY", KEY)
        .args([
            "-n", "2", "--json", "--rpm", "0", "--tpm", "0", "--rpd", "0",
        ])
        .args(["--backoff", "10ms", "--max-retries", "1", "--output"])
        .args([output.to_str().expect("UTF-8")])
        .run()
        .await;
    let written = std::fs::read_to_string(&output).unwrap_or_default();
    (out, written)
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_headers_never_print_the_key_anywhere() {
    for mode in [
        Mode::EchoStatus(400),
        Mode::EchoStatus(403),
        Mode::EchoHtml502,
        Mode::EchoQuota429,
        Mode::EchoMalformed,
        Mode::EchoModelVersion,
    ] {
        let (out, written) = run(mode.clone()).await;
        out.assert_no_panic();
        let everything = format!("{}{written}", out.all());
        assert!(
            !everything.contains(KEY),
            "{mode:?}: the key leaked\n{}\n--- output\n{written}",
            out.dump()
        );
        assert!(
            everything.contains("[redacted]"),
            "{mode:?}\n{}",
            out.dump()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_retry_delays_fail_clearly_and_the_run_ends() {
    for delay in ["9223372036854775807s", "999999999s"] {
        let (out, written) = run(Mode::RetryDelay(delay)).await;
        out.assert_no_panic();
        assert_eq!(out.code(), Some(1), "{delay}\n{}", out.dump());
        let summary = out.summary();
        assert_eq!(summary["failed"], 2, "{delay}\n{}", out.dump());
        let errors = out.errors();
        assert_eq!(errors.len(), 2, "{}", out.dump());
        assert!(errors.iter().all(|e| e.contains("given up")), "{errors:?}");
        assert_eq!(written.lines().count(), 2, "both rows written: {written}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_password_is_not_in_help() {
    for url in [
        format!("redis://:{PASSWORD}@127.0.0.1:1"),
        format!("redis+unix:///nowhere/redis.sock?pass={PASSWORD}"),
    ] {
        let out = StepCommand::new(BULK)
            .env("GEMINI_RATELIMIT_REDIS", &url)
            .args(["--help"])
            .run()
            .await;
        assert_eq!(out.code(), Some(0), "{}", out.dump());
        assert!(
            out.stdout.contains("GEMINI_RATELIMIT_REDIS"),
            "{}",
            out.dump()
        );
        assert!(!out.all().contains(PASSWORD), "{}", out.dump());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_password_is_in_no_message() {
    for url in [
        format!("redis://:{PASSWORD}@127.0.0.1:1"),
        format!("redis+unix:///nowhere/redis.sock?pass={PASSWORD}"),
        format!("redis+unix:///nowhere/redis.sock?db=x&password={PASSWORD}"),
    ] {
        let server = emulator::start(emulator::Settings::instant())
            .await
            .expect("emulator starts");
        let out = StepCommand::new(BULK)
            .against(&server)
            .args(["-n", "1", "--redis", &url])
            .run()
            .await;
        out.assert_no_panic();
        assert_eq!(out.code(), Some(1), "{}", out.dump());
        assert!(out.stderr.contains("Redis"), "{}", out.dump());
        assert!(!out.all().contains(PASSWORD), "{url}\n{}", out.dump());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_pause_is_bounded_however_long_it_was_asked_for() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limits = Limits::default().with_rpm(10);
    let scope = Scope::new("test-key", "gemini-2.5-flash");
    let limiter = RedisLimiter::connect(&redis.url(), scope.clone(), limits)
        .await
        .expect("connected");
    limiter.pause_until(Instant::now() + Duration::from_secs(999_999_999));
    let mut conn = redis::Client::open(redis.url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    // The pause reaches Redis in the background: wait until it has landed.
    let ttl = timeout(Duration::from_secs(15), async {
        loop {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(scope.key("pause"))
                .query_async(&mut conn)
                .await
                .expect("PTTL");
            if ttl != -2 {
                return ttl;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the pause reached Redis in time");
    let most = common::error::MAX_RETRY_DELAY.as_millis() as i64;
    assert!(ttl > 0 && ttl <= most, "PTTL {ttl} > {most}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_is_not_in_the_start_up_line_nor_when_redis_is_lost() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mut conn = redis::Client::open(redis.url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query_async(&mut conn)
        .await
        .expect("a password is set");
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port());

    // The start-up line names the Redis, without its password.
    let server = emulator::start(emulator::Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(BULK)
        .against(&server)
        .args(["-n", "1", "--redis", &url])
        .run()
        .await;
    assert_eq!(out.code(), Some(0), "{}", out.dump());
    assert!(
        out.stderr
            .contains("Sharing the rate limits through Redis (redis://***@"),
        "{}",
        out.dump()
    );
    assert!(!out.all().contains(PASSWORD), "{}", out.dump());

    // Losing Redis mid-run: the reason every later request carries has no password.
    let limiter = RedisLimiter::connect(&url, Scope::new("k", "m"), Limits::default().with_rpm(10))
        .await
        .expect("connected with the password");
    assert!(!format!("{limiter:?}").contains(PASSWORD));
    drop(limiter.acquire(1).await.expect("admitted"));
    redis.kill();
    let error = tokio::time::timeout(Duration::from_secs(30), limiter.acquire(1))
        .await
        .expect("no hang")
        .expect_err("Redis is gone");
    let text = format!("{error} {error:?}");
    assert!(text.contains("lost the shared rate limiter"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}
