//! The Flex and Priority tiers over HTTP: `serviceTier` accepted in both spellings and any
//! case, reported back in `usageMetadata.serviceTier`, refused when unknown; Flex requests shed
//! on the configured pattern with a 429 that is not a quota 429.

mod support;

use emulator::{Flex, Settings};
use serde_json::{Value, json};
use support::*;

const GENERATE: &str = "gemini-2.5-flash:generateContent";

fn with_tier(field: &str, tier: &str) -> Value {
    let mut body = prompt_body(BIRDS);
    body[field] = json!(tier);
    body
}

#[tokio::test]
async fn the_tier_is_read_in_both_spellings_and_reported_back() {
    let emu = start(Settings::instant()).await;
    for (field, tier, reported) in [
        ("serviceTier", "flex", "flex"),
        ("service_tier", "FLEX", "flex"),
        ("serviceTier", "priority", "priority"),
        ("serviceTier", "standard", "standard"),
    ] {
        let reply = post(&emu, "v1beta", GENERATE, &with_tier(field, tier)).await;
        assert_eq!(reply.status, 200, "{field}={tier}: {}", reply.text);
        let body = reply.json();
        assert_eq!(
            body["usageMetadata"]["serviceTier"], reported,
            "{field}={tier}"
        );
        assert!(!response_text(&body).is_empty());
    }
    let untiered = post(&emu, "v1beta", GENERATE, &prompt_body(BIRDS))
        .await
        .json();
    assert!(untiered["usageMetadata"].get("serviceTier").is_none());

    let stream = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
        &with_tier("serviceTier", "flex"),
    )
    .await;
    let events = sse_events(&stream.text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["usageMetadata"]["serviceTier"], "flex");
}

#[tokio::test]
async fn an_unknown_tier_is_a_400() {
    let emu = start(Settings::instant()).await;
    let reply = post(&emu, "v1beta", GENERATE, &with_tier("serviceTier", "turbo")).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let error = &reply.json()["error"];
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    assert_eq!(
        error["message"],
        "Invalid value at 'service_tier' \
         (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentRequest.ServiceTier), \"turbo\""
    );
}

#[tokio::test]
async fn every_nth_flex_request_is_shed_with_a_capacity_429() {
    let emu = start(Settings {
        flex: Flex {
            shed_every: 2,
            ..Flex::default()
        },
        ..Settings::instant()
    })
    .await;
    let flex = with_tier("serviceTier", "flex");
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(post(&emu, "v1beta", GENERATE, &flex).await);
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 200, 429]);
    let error = &replies[1].json()["error"];
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        error["message"],
        "Resource has been exhausted (e.g. check quota)."
    );
    assert!(
        error.get("details").is_none(),
        "no QuotaFailure: not a quota 429"
    );
    // Standard requests are never shed.
    for _ in 0..4 {
        assert_eq!(
            post(&emu, "v1beta", GENERATE, &prompt_body(BIRDS))
                .await
                .status,
            200
        );
    }
}
