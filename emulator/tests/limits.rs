//! The sliding-window quotas over HTTP: exactly `limit` requests pass, the next one gets the
//! real 429 with a retry delay equal to the true time until the window frees, and a retry after
//! that delay passes. Windows are short (2 s) so the tests stay quick; the exact arithmetic is
//! tested on explicit instants in `limits.rs`.

mod support;

use std::time::Duration;

use emulator::Settings;
use support::*;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(2);
const GENERATE: &str = "gemini-2.5-flash:generateContent";

fn limited(rpm: u32, tpm: u32, rpd: u32) -> Settings {
    Settings {
        rpm: Some(rpm),
        tpm: Some(tpm),
        rpd: Some(rpd),
        window: WINDOW,
        day: WINDOW,
        ..Settings::instant()
    }
}

async fn generate(emu: &emulator::Emulator, prompt: &str) -> Reply {
    post(emu, "v1beta", GENERATE, &prompt_body(prompt)).await
}

/// Checks a 429 body and returns its retry delay.
fn check_429(reply: &Reply, quota_id: &str, limit: u32) -> Duration {
    assert_eq!(reply.status, 429, "{}", reply.text);
    let json = reply.json();
    assert_eq!(json["error"]["status"], "RESOURCE_EXHAUSTED");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(
        "You exceeded your current quota, please check your plan and billing details."
    ));
    assert!(message.contains(&format!(
        ", limit: {limit}, model: gemini-2.5-flash\nPlease retry in "
    )));
    assert!(message.ends_with("s."));
    let types: Vec<&str> = json["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["@type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "type.googleapis.com/google.rpc.Help",
            "type.googleapis.com/google.rpc.QuotaFailure",
            "type.googleapis.com/google.rpc.RetryInfo",
        ]
    );
    let violation = &json["error"]["details"][1]["violations"][0];
    assert_eq!(violation["quotaDimensions"]["location"], "global");
    assert_eq!(violation["quotaDimensions"]["model"], "gemini-2.5-flash");
    let (id, value, delay) = quota_details(&json);
    assert_eq!(id, quota_id);
    assert_eq!(value, limit.to_string());
    delay
}

/// The delay must be the time from the rejection to the moment the oldest needed entry
/// (admitted no earlier than `first_sent`) leaves the window: between
/// `WINDOW - (rejected_at - first_sent)` and `WINDOW`, plus the 1 ms rounding up.
fn check_delay(delay: Duration, first_sent: Instant, rejected_at: Instant) {
    let lower = WINDOW.saturating_sub(rejected_at - first_sent);
    assert!(
        delay + Duration::from_millis(1) >= lower,
        "{delay:?} < {lower:?}"
    );
    assert!(
        delay <= WINDOW + Duration::from_millis(1),
        "{delay:?} > window"
    );
}

#[tokio::test]
async fn rpm_holds_at_the_boundary_and_the_retry_delay_is_true() {
    let emu = start(limited(3, 0, 0)).await;
    let first_sent = Instant::now();
    for _ in 0..3 {
        assert_eq!(generate(&emu, "hello").await.status, 200);
    }
    let rejected = generate(&emu, "hello").await;
    let rejected_at = Instant::now();
    let delay = check_429(
        &rejected,
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        3,
    );
    check_delay(delay, first_sent, rejected_at);
    // Not rate limited: countTokens and models.
    assert_eq!(
        post(
            &emu,
            "v1beta",
            "gemini-2.5-flash:countTokens",
            &prompt_body("x")
        )
        .await
        .status,
        200
    );
    assert_eq!(get(&emu, "v1beta", "models").await.status, 200);
    // Another model has its own bucket.
    assert_eq!(
        post(
            &emu,
            "v1beta",
            "gemini-2.5-pro:generateContent",
            &prompt_body("x")
        )
        .await
        .status,
        200
    );
    tokio::time::sleep(delay).await;
    assert_eq!(
        generate(&emu, "hello").await.status,
        200,
        "a retry after retryDelay passes"
    );
}

#[tokio::test]
async fn rejected_requests_do_not_count() {
    let emu = start(limited(2, 0, 0)).await;
    let first_sent = Instant::now();
    assert_eq!(generate(&emu, "a").await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(generate(&emu, "b").await.status, 200);
    let mut delay = Duration::ZERO;
    for _ in 0..5 {
        let reply = generate(&emu, "c").await;
        delay = check_429(
            &reply,
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            2,
        );
    }
    check_delay(delay, first_sent, Instant::now());
    tokio::time::sleep(delay).await;
    // The first admitted request left; the five rejections took no slot.
    assert_eq!(generate(&emu, "d").await.status, 200);
    // The second admitted request (600 ms later) is still there, with "d": full again.
    assert_eq!(generate(&emu, "e").await.status, 429);
    assert_eq!(
        emu.stats()
            .arrivals
            .iter()
            .filter(|a| a.status == 429)
            .count(),
        6
    );
}

#[tokio::test]
async fn tpm_counts_input_tokens() {
    // "one two three four five" is 5 tokens; 12 allows two such requests, not three.
    let emu = start(limited(0, 12, 0)).await;
    let prompt = "one two three four five";
    assert_eq!(emulator::tokens::count(prompt), 5);
    let first_sent = Instant::now();
    assert_eq!(generate(&emu, prompt).await.status, 200);
    assert_eq!(generate(&emu, prompt).await.status, 200);
    let rejected = generate(&emu, prompt).await;
    let delay = check_429(
        &rejected,
        "GenerateContentInputTokensPerModelPerMinute-FreeTier",
        12,
    );
    check_delay(delay, first_sent, Instant::now());
    let metric = "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count";
    assert!(rejected.text.contains(metric));
    // A smaller prompt still fits in what is left (2 tokens).
    assert_eq!(generate(&emu, "tiny prompt").await.status, 200);
    tokio::time::sleep(delay).await;
    assert_eq!(generate(&emu, prompt).await.status, 200);
}

#[tokio::test]
async fn rpd_uses_the_day_window() {
    let emu = start(Settings {
        day: Duration::from_secs(3),
        window: Duration::from_millis(100),
        ..limited(0, 0, 2)
    })
    .await;
    let first_sent = Instant::now();
    assert_eq!(generate(&emu, "x").await.status, 200);
    assert_eq!(generate(&emu, "x").await.status, 200);
    let rejected = generate(&emu, "x").await;
    let delay = check_429(
        &rejected,
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        2,
    );
    assert!(
        delay > Duration::from_millis(100),
        "the day window, not the minute one"
    );
    assert!(delay <= Duration::from_secs(3) + Duration::from_millis(1));
    assert!(delay + Duration::from_millis(1) + first_sent.elapsed() >= Duration::from_secs(3));
    tokio::time::sleep(delay).await;
    assert_eq!(generate(&emu, "x").await.status, 200);
}

#[tokio::test]
async fn default_settings_use_the_free_tier() {
    // Faithful defaults, minus latency: gemini-2.5-pro allows 5 requests per minute.
    let emu = start(Settings {
        latency: emulator::Latency::ZERO,
        ..Settings::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            post(
                &emu,
                "v1beta",
                "gemini-2.5-pro:generateContent",
                &prompt_body("x")
            )
            .await
            .status,
            200
        );
    }
    let rejected = post(
        &emu,
        "v1beta",
        "gemini-2.5-pro:generateContent",
        &prompt_body("x"),
    )
    .await;
    assert_eq!(rejected.status, 429);
    assert!(rejected.text.contains("limit: 5, model: gemini-2.5-pro"));
    // The alias and its target share one bucket: flash-latest runs gemini-2.5-flash (10 RPM).
    for _ in 0..5 {
        assert_eq!(
            post(
                &emu,
                "v1",
                "gemini-flash-latest:generateContent",
                &prompt_body("x")
            )
            .await
            .status,
            200
        );
        assert_eq!(
            post(
                &emu,
                "v1",
                "gemini-2.5-flash:generateContent",
                &prompt_body("x")
            )
            .await
            .status,
            200
        );
    }
    let shared = post(
        &emu,
        "v1",
        "gemini-flash-latest:generateContent",
        &prompt_body("x"),
    )
    .await;
    assert_eq!(shared.status, 429);
    assert!(shared.text.contains("limit: 10, model: gemini-2.5-flash"));
    // Each key (project) has its own quota.
    let other = post_raw(
        &emu,
        "v1",
        "gemini-2.5-flash:generateContent",
        Some("other-key"),
        prompt_body("x").to_string().into(),
    )
    .await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn streaming_429_is_plain_json_with_the_stream_content_type() {
    let emu = start(limited(1, 0, 0)).await;
    let path = "gemini-2.5-flash:streamGenerateContent?alt=sse";
    assert_eq!(
        post(&emu, "v1beta", path, &prompt_body("x")).await.status,
        200
    );
    let rejected = post(&emu, "v1beta", path, &prompt_body("x")).await;
    assert_eq!(rejected.status, 429);
    assert_eq!(rejected.content_type, "text/event-stream");
    assert!(
        rejected
            .text
            .starts_with("{\n  \"error\": {\n    \"code\": 429,")
    );
    assert!(rejected.text.ends_with("}\n"));
}
