//! Every endpoint, under both /v1beta and /v1, compared with the shapes of the real captures.

mod support;

use std::time::Duration;

use emulator::{Latency, Settings};
use futures_util::StreamExt;
use serde_json::json;
use support::*;

const VERSIONS: [&str; 2] = ["v1beta", "v1"];

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn generate_content_has_the_shape_of_the_thinking_fixture() {
    let emu = start(Settings::instant()).await;
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": BIRDS}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": true}}
    });
    for version in VERSIONS {
        let reply = post(&emu, version, "gemini-flash-latest:generateContent", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.content_type, "application/json; charset=UTF-8");
        assert_eq!(reply.headers["server"], "scaffolding on HTTPServer2");
        assert!(reply.text.ends_with("}\n"));
        // Same keys in the same order as fixtures/unary-success-thinking-reply-thought-summary.json.
        assert_eq!(
            key_sequence(&reply.text),
            keys(&[
                "candidates",
                "content",
                "parts",
                "text",
                "thought",
                "text",
                "role",
                "finishReason",
                "index",
                "usageMetadata",
                "promptTokenCount",
                "candidatesTokenCount",
                "totalTokenCount",
                "promptTokensDetails",
                "modality",
                "tokenCount",
                "thoughtsTokenCount",
                "modelVersion",
                "responseId",
            ])
        );
        let json = reply.json();
        let usage = &json["usageMetadata"];
        let total = usage["promptTokenCount"].as_u64().unwrap()
            + usage["candidatesTokenCount"].as_u64().unwrap()
            + usage["thoughtsTokenCount"].as_u64().unwrap();
        assert_eq!(usage["totalTokenCount"].as_u64(), Some(total));
        assert_eq!(json["modelVersion"], "gemini-2.5-flash");
        assert_eq!(json["responseId"].as_str().map(str::len), Some(23));
        assert!(
            json["candidates"][0]["content"]["parts"][1]["text"]
                .as_str()
                .unwrap()
                .contains("migrat")
        );
    }
}

#[tokio::test]
async fn without_include_thoughts_the_answer_is_the_only_part() {
    let emu = start(Settings::instant()).await;
    let reply = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:generateContent",
        &prompt_body("How do rainbows form?"),
    )
    .await;
    let json = reply.json();
    let parts = json["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].get("thought").is_none());
    assert!(parts[0]["text"].as_str().unwrap().contains("rainbows form"));
    assert!(
        json["usageMetadata"]["thoughtsTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn max_output_tokens_gives_max_tokens() {
    let emu = start(Settings::instant()).await;
    let body = json!({
        "contents": [{"parts": [{"text": BIRDS}]}],
        "generationConfig": {"maxOutputTokens": 30, "thinkingConfig": {"thinkingBudget": 0}}
    });
    let json = post(&emu, "v1", "gemini-2.5-flash:generateContent", &body)
        .await
        .json();
    assert_eq!(json["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(json["usageMetadata"]["candidatesTokenCount"], 30);
    assert!(
        json["usageMetadata"].get("thoughtsTokenCount").is_none(),
        "zero counts are omitted"
    );
}

#[tokio::test]
async fn stream_events_have_the_real_framing_and_shape() {
    let emu = start(Settings::instant()).await;
    let body = json!({
        "contents": [{"parts": [{"text": BIRDS}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": true}}
    });
    for version in VERSIONS {
        let reply = post(
            &emu,
            version,
            "gemini-flash-latest:streamGenerateContent?alt=sse",
            &body,
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, "text/event-stream");
        assert_eq!(reply.headers["content-disposition"], "attachment");
        assert!(reply.headers.get("content-length").is_none());
        let events = sse_events(&reply.text);
        assert!(events.len() > 3, "{} events", events.len());
        // As fixtures/streaming-success-thinking-reply-thought-summary.txt: thought chunk first
        // (no candidatesTokenCount yet), answer deltas, finishReason only on the last.
        assert_eq!(
            key_sequence(&events[0]),
            keys(&[
                "candidates",
                "content",
                "parts",
                "text",
                "thought",
                "role",
                "index",
                "usageMetadata",
                "promptTokenCount",
                "totalTokenCount",
                "promptTokensDetails",
                "modality",
                "tokenCount",
                "thoughtsTokenCount",
                "modelVersion",
                "responseId",
            ])
        );
        assert_eq!(
            key_sequence(events.last().unwrap()),
            keys(&[
                "candidates",
                "content",
                "parts",
                "text",
                "role",
                "finishReason",
                "index",
                "usageMetadata",
                "promptTokenCount",
                "candidatesTokenCount",
                "totalTokenCount",
                "promptTokensDetails",
                "modality",
                "tokenCount",
                "thoughtsTokenCount",
                "modelVersion",
                "responseId",
            ])
        );
        assert!(events[0].starts_with("{\"candidates\": [{\"content\": {\"parts\": [{\"text\": "));
        let parsed: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let id = &parsed[0]["responseId"];
        let mut text = String::new();
        let mut previous = 0;
        for (i, event) in parsed.iter().enumerate() {
            assert_eq!(&event["responseId"], id);
            assert_eq!(event["modelVersion"], "gemini-2.5-flash");
            let finish = event["candidates"][0].get("finishReason");
            assert_eq!(finish.is_some(), i + 1 == parsed.len());
            let count = event["usageMetadata"]["candidatesTokenCount"]
                .as_u64()
                .unwrap_or(0);
            assert!(count >= previous, "candidatesTokenCount grows");
            previous = count;
            if i > 0 {
                text.push_str(
                    event["candidates"][0]["content"]["parts"][0]["text"]
                        .as_str()
                        .unwrap(),
                );
            }
        }
        // The deltas add up to the unary answer.
        let unary = post(
            &emu,
            version,
            "gemini-flash-latest:generateContent",
            &prompt_body(BIRDS),
        )
        .await
        .json();
        assert_eq!(
            unary["candidates"][0]["content"]["parts"][0]["text"].as_str(),
            Some(text.as_str())
        );
        assert_eq!(
            unary["usageMetadata"]["candidatesTokenCount"].as_u64(),
            Some(previous)
        );
    }
}

#[tokio::test]
async fn stream_chunks_arrive_incrementally() {
    let settings = Settings {
        latency: Latency {
            per_output_token: Duration::from_millis(2),
            ..Latency::ZERO
        },
        ..Settings::instant()
    };
    let emu = start(settings).await;
    let body = json!({
        "contents": [{"parts": [{"text": BIRDS}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}
    });
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        emu.base_url()
    );
    let response = client()
        .post(url)
        .header("x-goog-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("a first frame").unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    // The first read holds exactly one event: the rest was not written yet.
    assert_eq!(first.matches("data: ").count(), 1, "{first}");
    assert!(!first.contains("finishReason"));
    let mut frames = 1;
    let mut all = first;
    while let Some(frame) = stream.next().await {
        all.push_str(std::str::from_utf8(&frame.unwrap()).unwrap());
        frames += 1;
    }
    assert!(frames > 2, "{frames} frames");
    assert!(
        sse_events(&all)
            .last()
            .unwrap()
            .contains("\"finishReason\": \"STOP\"")
    );
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let emu = start(Settings::instant()).await;
    let reply = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:streamGenerateContent",
        &prompt_body(BIRDS),
    )
    .await;
    assert_eq!(reply.status, 200);
    let array = reply.json();
    let items = array.as_array().expect("an array");
    assert!(items.len() > 1);
    assert!(items.last().unwrap()["candidates"][0]["finishReason"].is_string());
}

#[tokio::test]
async fn count_tokens_matches_prompt_token_count() {
    let emu = start(Settings::instant()).await;
    let bodies = [
        prompt_body(BIRDS),
        prompt_body("The quick brown fox jumps over the lazy dog."),
        json!({"contents": [
            {"role": "user", "parts": [{"text": "Hello there, model."}]},
            {"role": "model", "parts": [{"text": "Hi! How can I help?"}]},
            {"role": "user", "parts": [{"text": "Tell me about 2025 in 3 words."}, {"text": "Please."}]}
        ]}),
    ];
    for version in VERSIONS {
        for body in &bodies {
            let count = post(&emu, version, "gemini-2.5-flash:countTokens", body).await;
            assert_eq!(count.status, 200);
            assert_eq!(
                key_sequence(&count.text),
                keys(&[
                    "totalTokens",
                    "promptTokensDetails",
                    "modality",
                    "tokenCount"
                ])
            );
            let generated = post(&emu, version, "gemini-2.5-flash:generateContent", body)
                .await
                .json();
            assert_eq!(
                count.json()["totalTokens"],
                generated["usageMetadata"]["promptTokenCount"]
            );
        }
    }
    let single = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:countTokens",
        &prompt_body(BIRDS),
    )
    .await
    .json();
    assert_eq!(
        single["totalTokens"].as_u64(),
        Some(u64::from(emulator::tokens::count(BIRDS)))
    );
}

#[tokio::test]
async fn models_get_and_list_with_paging() {
    let emu = start(Settings::instant()).await;
    // fixtures/reconstructed/200-models-get-gemini-2.5-flash.json
    let model_keys = keys(&[
        "name",
        "version",
        "displayName",
        "description",
        "inputTokenLimit",
        "outputTokenLimit",
        "supportedGenerationMethods",
        "temperature",
        "topP",
        "topK",
        "maxTemperature",
        "thinking",
    ]);
    for version in VERSIONS {
        let one = get(&emu, version, "models/gemini-2.5-flash").await;
        assert_eq!(one.status, 200);
        assert_eq!(key_sequence(&one.text), model_keys);
        assert!(one.text.contains("\"temperature\": 1,\n") && one.text.contains("\"topP\": 0.95,"));
        let prefixed = get(&emu, version, "models/models/gemini-2.5-flash").await;
        assert_eq!(prefixed.status, 404, "a doubled prefix is not a model");

        let all = get(&emu, version, "models").await.json();
        assert_eq!(
            all["models"].as_array().unwrap().len(),
            emulator::catalog::all().len()
        );
        assert!(
            all.get("nextPageToken").is_none(),
            "no token on the last page"
        );

        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(t) => format!("models?pageSize=2&pageToken={t}"),
                None => "models?pageSize=2".to_string(),
            };
            let page = get(&emu, version, &path).await.json();
            let models = page["models"].as_array().unwrap();
            assert!(models.len() <= 2);
            names.extend(
                models
                    .iter()
                    .map(|m| m["name"].as_str().unwrap().to_string()),
            );
            match page.get("nextPageToken").and_then(|t| t.as_str()) {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        let expected: Vec<String> = emulator::catalog::all()
            .iter()
            .map(|m| format!("models/{}", m.id))
            .collect();
        assert_eq!(names, expected);
    }
    assert_eq!(
        get(&emu, "v1beta", "models?pageToken=bogus").await.status,
        400
    );
}

#[tokio::test]
async fn stats_record_arrivals_and_in_flight() {
    let settings = Settings {
        latency: Latency {
            base: Duration::from_millis(150),
            ..Latency::ZERO
        },
        ..Settings::instant()
    };
    let emu = start(settings).await;
    let body = prompt_body("hi");
    let calls = (0..4).map(|_| post(&emu, "v1beta", "gemini-2.5-flash:generateContent", &body));
    let replies = futures_util::future::join_all(calls).await;
    assert!(replies.iter().all(|r| r.status == 200));
    post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:countTokens",
        &prompt_body("hi"),
    )
    .await;
    let stats = emu.stats();
    assert_eq!(stats.arrivals.len(), 5);
    assert_eq!(stats.in_flight, 0);
    assert!(
        stats.max_in_flight >= 2,
        "the four overlapped: {}",
        stats.max_in_flight
    );
    assert!(stats.max_in_flight <= 4);
    let last = stats.arrivals.last().unwrap();
    assert_eq!(
        (last.model.as_str(), last.method.as_str(), last.status),
        ("gemini-2.5-flash", "countTokens", 200)
    );
    assert!(stats.arrivals.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn query_key_works_and_default_bind_is_loopback() {
    let emu = start(Settings::instant()).await;
    assert!(emu.addr().ip().is_loopback());
    assert!(emu.base_url().starts_with("http://127.0.0.1:"));
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash?key=from-query",
        emu.base_url()
    );
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    emu.shutdown().await;
}
