//! Property tests: the SSE decoder and the response types hold up under any input shape.
//!
//! 1. The decoder yields the same events however the byte stream is split
//!    into chunks: the network may cut anywhere, including inside a
//!    multi-byte UTF-8 character or between the `\r` and `\n` of a line end.
//! 2. Responses and error envelopes with unknown fields added at random
//!    nesting points parse to the same value as without them: the API adds
//!    fields all the time, and a client must not care.

use std::path::{Path, PathBuf};

use common::error::ApiError;
use common::sse::{SseDecoder, decode_all};
use common::types::GenerateContentResponse;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// Decodes `body` fed in pieces cut at `cuts` (positions taken modulo the length).
fn decode_in_chunks(body: &[u8], cuts: &[Index]) -> Result<Vec<String>, common::sse::SseError> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    for pair in points.windows(2) {
        events.extend(decoder.push(&body[pair[0]..pair[1]])?);
    }
    events.extend(decoder.finish()?);
    Ok(events)
}

/// The streamed fixtures, read once per test.
fn stream_fixtures() -> Vec<Vec<u8>> {
    fixture_files("txt")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Fixture files with this extension, outside the js-genai recordings.
fn fixture_files(ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("js-genai-recordings") {
                walk(&path, ext, out);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        ext,
        &mut out,
    );
    out.sort();
    out
}

/// One generated event: a payload with arbitrary text (non-ASCII included) and a separator.
fn event() -> impl Strategy<Value = (String, &'static str)> {
    let text = any::<String>();
    let separator = prop_oneof![Just("\r\n\r\n"), Just("\n\n"), Just("\r\r")];
    (text, separator).prop_map(|(text, sep)| (json!({"t": text}).to_string(), sep))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn generated_events_survive_any_split(
        events in prop::collection::vec(event(), 0..8),
        bare_error in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let mut body = String::new();
        let mut expected: Vec<String> = Vec::new();
        for (payload, sep) in &events {
            body.push_str(&format!("data: {payload}{sep}"));
            expected.push(payload.clone());
        }
        if bare_error {
            let error = json!({"error": {"code": 503, "message": "a } and a \" inside", "status": "UNAVAILABLE"}});
            let pretty = serde_json::to_string_pretty(&error).unwrap();
            body.push_str(&pretty);
            body.push('\n');
            expected.push(pretty);
        }
        prop_assert_eq!(decode_in_chunks(body.as_bytes(), &cuts).unwrap(), expected);
    }

    #[test]
    fn fixtures_decode_the_same_however_split(cuts in prop::collection::vec(any::<Index>(), 1..24)) {
        for body in stream_fixtures() {
            prop_assert_eq!(decode_in_chunks(&body, &cuts), decode_all(&body));
        }
    }

    #[test]
    fn unknown_fields_change_nothing(
        inserts in prop::collection::vec((any::<Index>(), "[a-z]{1,8}", junk()), 1..6),
    ) {
        for (original, kind) in sample_bodies() {
            let mut noisy = original.clone();
            for (at, name, value) in &inserts {
                insert_at_random_object(&mut noisy, at, &format!("zzUnknown_{name}"), value.clone());
            }
            match kind {
                Kind::Response => {
                    let clean: GenerateContentResponse = serde_json::from_value(original).unwrap();
                    let parsed: GenerateContentResponse = serde_json::from_value(noisy).unwrap();
                    prop_assert_eq!(parsed, clean);
                }
                Kind::Error => {
                    let clean = ApiError::from_body(Some(429), original.to_string().as_bytes());
                    let parsed = ApiError::from_body(Some(429), noisy.to_string().as_bytes());
                    prop_assert_eq!(parsed, clean);
                }
            }
        }
    }
}

/// Whether a sample body is a response or an error envelope.
#[derive(Clone, Copy)]
enum Kind {
    Response,
    Error,
}

/// Every unary JSON fixture that is a response or an error, plus every streamed chunk.
fn sample_bodies() -> Vec<(Value, Kind)> {
    let mut out = Vec::new();
    for path in fixture_files("json") {
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if value.get("error").is_some() {
            out.push((value, Kind::Error));
        } else if value.get("candidates").is_some() || value.get("promptFeedback").is_some() {
            out.push((value, Kind::Response));
        }
    }
    for body in stream_fixtures() {
        for event in decode_all(&body).unwrap() {
            let value: Value = serde_json::from_str(&event).unwrap();
            let kind = if value.get("error").is_some() {
                Kind::Error
            } else {
                Kind::Response
            };
            out.push((value, kind));
        }
    }
    out
}

/// Random JSON to add: scalars, and a nested object that looks like real data.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z ]{0,12}".prop_map(Value::String),
        Just(json!({"parts": [{"text": "x"}], "finishReason": "STOP", "nested": {"a": [1, 2]}})),
    ]
}

/// Inserts `name: value` into one of the objects of `root`, chosen by `at`.
fn insert_at_random_object(root: &mut Value, at: &Index, name: &str, value: Value) {
    let mut count = 0;
    count_objects(root, &mut count);
    let mut target = at.index(count);
    visit_objects(root, &mut target, &mut |map| {
        map.insert(name.to_string(), value.clone());
    });
}

/// Counts the objects in a JSON tree.
fn count_objects(value: &Value, count: &mut usize) {
    match value {
        Value::Object(map) => {
            *count += 1;
            map.values().for_each(|v| count_objects(v, count));
        }
        Value::Array(items) => items.iter().for_each(|v| count_objects(v, count)),
        _ => {}
    }
}

/// Calls `f` on the `target`-th object in pre-order.
fn visit_objects(
    value: &mut Value,
    target: &mut usize,
    f: &mut dyn FnMut(&mut Map<String, Value>),
) {
    match value {
        Value::Object(map) => {
            if *target == 0 {
                f(map);
                *target = usize::MAX;
                return;
            }
            *target = target.saturating_sub(1);
            for v in map.values_mut() {
                visit_objects(v, target, f);
            }
        }
        Value::Array(items) => {
            for v in items {
                visit_objects(v, target, f);
            }
        }
        _ => {}
    }
}
