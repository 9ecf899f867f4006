//! Fault injection over HTTP: rates, determinism, and what each fault looks like on the wire.

mod support;

use std::time::Duration;

use emulator::{Faults, Settings};
use support::*;

fn with_faults(faults: Faults, seed: u64) -> Settings {
    Settings {
        faults,
        seed,
        ..Settings::instant()
    }
}

/// Sends `n` unary requests one after another; returns their statuses (0 = no response).
async fn statuses(emu: &emulator::Emulator, n: usize) -> Vec<u16> {
    let client = client();
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:generateContent",
        emu.base_url()
    );
    let body = prompt_body("hello").to_string();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = client
            .post(&url)
            .header("x-goog-api-key", "k")
            .body(body.clone())
            .send()
            .await;
        out.push(match sent {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        });
    }
    out
}

#[tokio::test]
async fn fault_rates_match_with_a_fixed_seed_and_repeat() {
    let faults = Faults {
        fail_503: 0.1,
        fail_500: 0.05,
        ..Faults::default()
    };
    let emu = start(with_faults(faults.clone(), 42)).await;
    let first = statuses(&emu, 1000).await;
    let overloaded = first.iter().filter(|s| **s == 503).count();
    let internal = first.iter().filter(|s| **s == 500).count();
    assert!((60..=140).contains(&overloaded), "{overloaded} 503s");
    assert!((20..=80).contains(&internal), "{internal} 500s");
    assert_eq!(
        overloaded + internal + first.iter().filter(|s| **s == 200).count(),
        1000
    );

    // Same seed, same order: the same requests fail. Another seed: a different pattern.
    let again = start(with_faults(faults.clone(), 42)).await;
    assert_eq!(statuses(&again, 200).await, first[..200]);
    let other = start(with_faults(faults, 43)).await;
    assert_ne!(statuses(&other, 200).await, first[..200]);
}

#[tokio::test]
async fn error_faults_have_the_real_bodies() {
    let emu = start(with_faults(
        Faults {
            fail_503: 1.0,
            ..Faults::default()
        },
        1,
    ))
    .await;
    let reply = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:generateContent",
        &prompt_body("x"),
    )
    .await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.text,
        "{\n  \"error\": {\n    \"code\": 503,\n    \"message\": \"The model is overloaded. Please try again later.\",\n    \"status\": \"UNAVAILABLE\"\n  }\n}\n"
    );
    let emu = start(with_faults(
        Faults {
            fail_500: 1.0,
            ..Faults::default()
        },
        1,
    ))
    .await;
    let reply = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
        &prompt_body("x"),
    )
    .await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.content_type, "text/event-stream");
    assert_eq!(reply.json()["error"]["status"], "INTERNAL");
}

#[tokio::test]
async fn odd_bodies_are_valid_and_varied() {
    let emu = start(with_faults(
        Faults {
            odd_bodies: 1.0,
            ..Faults::default()
        },
        5,
    ))
    .await;
    let (mut no_parts, mut extra, mut unknown_reason, mut blocked) = (0, 0, 0, 0);
    for _ in 0..60 {
        let reply = post(
            &emu,
            "v1beta",
            "gemini-2.5-flash:generateContent",
            &prompt_body(BIRDS),
        )
        .await;
        assert_eq!(reply.status, 200);
        let json = reply.json();
        match json.get("candidates") {
            None => {
                assert_eq!(json["promptFeedback"]["blockReason"], "SAFETY");
                blocked += 1;
            }
            Some(candidates) => {
                let candidate = &candidates[0];
                if candidate["content"].get("parts").is_none() {
                    assert_eq!(candidate["finishReason"], "MAX_TOKENS");
                    assert_eq!(candidate["content"]["role"], "model");
                    no_parts += 1;
                } else if candidate["finishReason"] == "NEW_REASON_2027" {
                    unknown_reason += 1;
                } else {
                    assert!(json.get("turnToken").is_some());
                    extra += 1;
                }
            }
        }
    }
    assert!(no_parts > 0 && extra > 0 && unknown_reason > 0 && blocked > 0);
    // Streams show the same oddities; a blocked prompt is a single event.
    let stream = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
        &prompt_body(BIRDS),
    )
    .await;
    assert_eq!(stream.status, 200);
    assert!(!sse_events(&stream.text).is_empty());
}

#[tokio::test]
async fn broken_streams_end_with_an_error_object_or_an_abort() {
    let emu = start(with_faults(
        Faults {
            broken_stream: 1.0,
            ..Faults::default()
        },
        9,
    ))
    .await;
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        emu.base_url()
    );
    let (mut error_objects, mut aborts) = (0, 0);
    for _ in 0..20 {
        let response = client()
            .post(&url)
            .header("x-goog-api-key", "k")
            .json(&prompt_body(BIRDS))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        match response.text().await {
            Ok(text) => {
                assert!(!text.contains("finishReason"), "the stream never finishes");
                let error_at = text
                    .find("{\n  \"error\": {")
                    .expect("an error object in the stream");
                assert!(text[error_at..].contains("\"status\": \"UNAVAILABLE\""));
                assert!(text[..error_at].is_empty() || text[..error_at].ends_with("\r\n\r\n"));
                error_objects += 1;
            }
            Err(_) => aborts += 1,
        }
    }
    assert!(
        error_objects > 0 && aborts > 0,
        "{error_objects} error objects, {aborts} aborts"
    );
    // Unary calls are not affected by this fault.
    assert_eq!(
        post(
            &emu,
            "v1beta",
            "gemini-2.5-flash:generateContent",
            &prompt_body("x")
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn close_drops_the_connection_without_a_response() {
    let emu = start(with_faults(
        Faults {
            close: 1.0,
            ..Faults::default()
        },
        1,
    ))
    .await;
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:generateContent",
        emu.base_url()
    );
    let result = client()
        .post(&url)
        .header("x-goog-api-key", "k")
        .json(&prompt_body("x"))
        .send()
        .await;
    let error = result.expect_err("no response");
    assert!(!error.is_timeout());
    assert_eq!(emu.stats().arrivals[0].status, 0);
    assert_eq!(emu.stats().in_flight, 0);
}

#[tokio::test]
async fn hang_never_answers_and_shutdown_still_completes() {
    let emu = start(with_faults(
        Faults {
            hang: 1.0,
            ..Faults::default()
        },
        1,
    ))
    .await;
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:generateContent",
        emu.base_url()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client
        .post(&url)
        .header("x-goog-api-key", "k")
        .json(&prompt_body("x"))
        .send()
        .await
        .expect_err("no answer");
    assert!(error.is_timeout());
    // A second one is still hanging when we shut down; shutdown must not wait for it forever.
    let pending = tokio::spawn({
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-goog-api-key", "k")
                .json(&prompt_body("x"))
                .send()
                .await
        }
    });
    while emu.stats().in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), emu.shutdown())
        .await
        .expect("shutdown completes");
    assert!(pending.await.unwrap().is_err());
}
