//! Every recorded body in `tests/fixtures/` parses, and says what it should.
//!
//! The fixtures are real server output (see `tests/fixtures/SOURCES.md`). The
//! test walks the folder, so a fixture added later is covered without
//! touching this file; a file of a kind it does not know fails the walk, so
//! nothing is skipped silently. Beyond "it parses", a few checks per kind
//! make sure parsing did not just produce an empty value (unknown fields are
//! ignored, so a body of the wrong kind would otherwise "parse" too).

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::error::ApiError;
use common::sse::decode_all;
use common::types::{
    BlockReason, CountTokensResponse, FinishReason, GenerateContentRequest,
    GenerateContentResponse, ListModelsResponse, Model,
};
use serde_json::Value;

/// The fixture folder.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// All files below `dir`, sorted, so failures are reported in a stable order.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Reads a fixture by its path below the folder.
fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

/// What a JSON body turned out to be.
#[derive(Debug)]
enum Parsed {
    Response(GenerateContentResponse),
    Error(ApiError),
    Models(ListModelsResponse),
    Model(Model),
    Count(CountTokensResponse),
}

/// Parses one unary JSON body as whatever it is, checking it is not an empty shell.
fn parse_body(bytes: &[u8], http_status: Option<u16>) -> Parsed {
    let value: Value = serde_json::from_slice(bytes).unwrap();
    if let Some(error) = value.get("error") {
        let api = ApiError::from_body(http_status, bytes);
        assert_eq!(Some(u64::from(api.http_status)), error["code"].as_u64());
        assert_eq!(Some(api.status.as_str()), error["status"].as_str());
        assert!(!api.message.is_empty());
        assert!(!api.to_string().contains('\n'), "Display is one line");
        return Parsed::Error(api);
    }
    if value.get("models").is_some() {
        let list: ListModelsResponse = serde_json::from_value(value).unwrap();
        assert!(list.models.iter().all(|m| m.name.starts_with("models/")));
        return Parsed::Models(list);
    }
    if value.get("totalTokens").is_some() {
        let count: CountTokensResponse = serde_json::from_value(value).unwrap();
        assert!(count.total_tokens > 0);
        return Parsed::Count(count);
    }
    if value["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("models/"))
    {
        let model: Model = serde_json::from_value(value).unwrap();
        assert!(model.input_token_limit.is_some());
        return Parsed::Model(model);
    }
    let response: GenerateContentResponse = serde_json::from_value(value).unwrap();
    assert!(
        !response.candidates.is_empty() || response.prompt_feedback.is_some(),
        "a response with neither candidates nor feedback: {response:?}"
    );
    Parsed::Response(response)
}

/// Parses an SSE body into its chunks (an in-stream error object becomes an `ApiError`).
fn parse_stream(bytes: &[u8]) -> Vec<Parsed> {
    let events = decode_all(bytes).unwrap();
    assert!(!events.is_empty());
    events
        .iter()
        .map(|e| parse_body(e.as_bytes(), None))
        .collect()
}

/// Parses a js-genai recording: the requests must round-trip, the responses parse.
fn check_recording(bytes: &[u8]) -> usize {
    let recording: Value = serde_json::from_slice(bytes).unwrap();
    let mut checked = 0;
    for interaction in recording["interactions"].as_array().unwrap() {
        for body in interaction["request"]["bodySegments"].as_array().unwrap() {
            let request: GenerateContentRequest = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(
                &serde_json::to_value(&request).unwrap(),
                body,
                "request round-trip"
            );
        }
        let response = &interaction["response"];
        let status = response["statusCode"].as_u64().map(|s| s as u16);
        for body in response["bodySegments"].as_array().unwrap() {
            let parsed = parse_body(body.to_string().as_bytes(), status);
            if status == Some(200) {
                assert!(!matches!(parsed, Parsed::Error(_)));
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_fixture_parses() {
    let mut seen = 0;
    for path in walk(&dir()) {
        let name = path.strip_prefix(dir()).unwrap().display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("md") => continue,
            Some("txt") => seen += parse_stream(&bytes).len(),
            Some("json") if name.starts_with("js-genai-recordings") => {
                seen += check_recording(&bytes)
            }
            Some("json") => {
                parse_body(&bytes, None);
                seen += 1;
            }
            _ => panic!("{name}: unknown kind of fixture; teach this test how to read it"),
        }
    }
    assert!(
        seen > 80,
        "only {seen} bodies found: is the fixture folder there?"
    );
}

/// The text of a streamed answer: the chunks' deltas, joined.
fn streamed_text(name: &str) -> (String, Vec<GenerateContentResponse>) {
    let chunks: Vec<GenerateContentResponse> = parse_stream(&read(name))
        .into_iter()
        .map(|p| match p {
            Parsed::Response(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    (chunks.iter().map(|c| c.text()).collect(), chunks)
}

#[test]
fn streamed_reply_joins_its_deltas() {
    let (text, chunks) = streamed_text("streaming-success-basic-reply-short.txt");
    assert_eq!(text, "The capital of Wyoming is **Cheyenne**.\n");
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2].finish_reason(), Some(&FinishReason::Stop));
    assert_eq!(chunks[2].usage().candidates_token_count, 10);
}

#[test]
fn thought_summaries_are_not_answer_text() {
    let (_, chunks) = streamed_text("streaming-success-thinking-reply-thought-summary.txt");
    assert!(chunks.iter().any(|c| !c.thoughts().is_empty()));
    let Parsed::Response(unary) = parse_body(
        &read("unary-success-thinking-reply-thought-summary.json"),
        None,
    ) else {
        panic!("not a response")
    };
    assert_eq!(unary.text(), "Mountain View");
    assert!(unary.thoughts().starts_with("**Thinking About"));
    let usage = unary.usage();
    assert_eq!(
        (
            usage.prompt_token_count,
            usage.candidates_token_count,
            usage.thoughts_token_count,
            usage.total_token_count
        ),
        (14, 2, 24, 40)
    );
}

#[test]
fn blocked_prompts_are_an_outcome() {
    let (text, chunks) = streamed_text("streaming-failure-prompt-blocked-safety.txt");
    assert_eq!(text, "");
    assert_eq!(chunks[0].blocked(), Some(&BlockReason::Safety));
    let Parsed::Response(r) = parse_body(
        &read("vertexai/unary-failure-prompt-blocked-safety.json"),
        None,
    ) else {
        panic!("not a response")
    };
    assert_eq!(r.blocked(), Some(&BlockReason::Safety));
    assert!(r.candidates.is_empty());
}

#[test]
fn candidates_without_parts_or_content_are_valid() {
    let Parsed::Response(r) = parse_body(
        &read("reconstructed/200-max-tokens-no-parts-vertex.json"),
        None,
    ) else {
        panic!("not a response")
    };
    assert_eq!(r.text(), "");
    assert_eq!(r.finish_reason(), Some(&FinishReason::MaxTokens));
    let Parsed::Response(r) = parse_body(&read("unary-failure-with-message-no-content.json"), None)
    else {
        panic!("not a response")
    };
    assert_eq!(r.finish_reason(), Some(&FinishReason::Other));
    assert!(r.candidates[0].finish_message.is_some());
    let (_, chunks) = streamed_text("streaming-failure-recitation-no-content.txt");
    assert_eq!(
        chunks.last().unwrap().finish_reason(),
        Some(&FinishReason::Recitation)
    );
}

#[test]
fn error_mid_stream_is_the_last_event() {
    let parsed = parse_stream(&read("vertexai/streaming-failure-error-mid-stream.txt"));
    assert_eq!(parsed.len(), 3);
    let Parsed::Error(api) = &parsed[2] else {
        panic!("{:?}", parsed[2])
    };
    assert_eq!((api.http_status, api.status.as_str()), (499, "CANCELLED"));
}

#[test]
fn models_and_token_counts() {
    let Parsed::Models(list) =
        parse_body(&read("reconstructed/200-models-list-excerpt.json"), None)
    else {
        panic!("not a models list")
    };
    assert_eq!(list.models.len(), 5);
    assert_eq!(list.next_page_token, None);
    assert_eq!(list.models[0].id(), "gemini-2.5-flash");
    let Parsed::Model(model) = parse_body(
        &read("reconstructed/200-models-get-gemini-2.5-flash.json"),
        None,
    ) else {
        panic!("not a model")
    };
    assert_eq!(
        (model.output_token_limit, model.thinking),
        (Some(65536), Some(true))
    );
    let recording: Value = serde_json::from_slice(&read(
        "js-genai-recordings/Client_Tests_countTokens_ML_Dev_should_count_tokens_with_specified_parameters.json",
    ))
    .unwrap();
    let body = &recording["interactions"][0]["response"]["bodySegments"][0];
    let Parsed::Count(count) = parse_body(body.to_string().as_bytes(), Some(200)) else {
        panic!("not a count")
    };
    assert_eq!(count.total_tokens, 11);
}

/// Parses an error fixture.
fn api_error(name: &str, status: u16) -> ApiError {
    ApiError::from_body(Some(status), &read(name))
}

#[test]
fn error_details_are_parsed() {
    let key = api_error("unary-failure-api-key.json", 400);
    assert_eq!(key.reason.as_deref(), Some("API_KEY_INVALID"));
    assert!(key.to_string().contains("GOOGLE_API_KEY"));

    let disabled = api_error("unary-failure-generativelanguage-api-not-enabled.json", 403);
    assert_eq!(disabled.reason.as_deref(), Some("SERVICE_DISABLED"));

    let tpm = api_error(
        "reconstructed/429-quota-freetier-tpm-retryinfo-2025-06.json",
        429,
    );
    assert_eq!(tpm.retry_delay, Some(Duration::from_secs(26)));
    let quota = tpm.quota.as_ref().unwrap();
    assert_eq!(
        quota.quota_id,
        "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    );
    assert_eq!(quota.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(quota.value.as_deref(), Some("250000"));
    assert!(!quota.is_per_day() && quota.is_tokens());
    assert!(tpm.to_string().contains("retry in 26.0s"), "{tpm}");

    let rpd = api_error("reconstructed/429-quota-freetier-rpd-2026-03.json", 429);
    assert!(rpd.quota.as_ref().unwrap().is_per_day());
    assert_eq!(rpd.retry_delay, Some(Duration::from_secs(39)));
    assert!(rpd.to_string().contains("daily quota"), "{rpd}");
    assert!(!rpd.to_string().contains('\n'));

    let legacy = api_error("vertexai/unary-failure-quota-exceeded.json", 429);
    assert_eq!(legacy.reason.as_deref(), Some("RATE_LIMIT_EXCEEDED"));
    assert_eq!(
        legacy.quota.unwrap().quota_id,
        "GenerateContentRequestsPerMinutePerProjectPerRegion"
    );

    let overloaded = api_error("reconstructed/503-model-overloaded.json", 503);
    assert!(overloaded.to_string().contains("overloaded"));
    let not_found = api_error("unary-failure-unknown-model.json", 404);
    assert!(not_found.to_string().contains("--model"));
}
