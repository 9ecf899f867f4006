//! Helpers shared by the integration tests: start an emulator, call it, read bodies.
#![allow(dead_code)]

use std::time::Duration;

use emulator::{Emulator, Settings};
use serde_json::Value;

/// The tutorial prompt.
pub const BIRDS: &str = "Why do some birds migrate?";

/// Starts an emulator with `settings` on 127.0.0.1:0.
pub async fn start(settings: Settings) -> Emulator {
    emulator::start(settings).await.expect("emulator starts")
}

/// A client with a timeout, so a broken test fails instead of hanging.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A one-prompt request body.
pub fn prompt_body(prompt: &str) -> Value {
    serde_json::json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})
}

/// A finished response: status, content type, body text.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// POSTs `body` to `{base}/{version}/models/{path}` with the key header.
pub async fn post(emu: &Emulator, version: &str, path: &str, body: &Value) -> Reply {
    post_raw(
        emu,
        version,
        path,
        Some("test-key"),
        body.to_string().into_bytes(),
    )
    .await
}

/// POSTs raw bytes, with an optional key header.
pub async fn post_raw(
    emu: &Emulator,
    version: &str,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let url = format!("{}/{version}/models/{path}", emu.base_url());
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("x-goog-api-key", key);
    }
    finish(request.send().await.expect("request sent")).await
}

/// GETs `{base}/{version}/{path}` with the key header.
pub async fn get(emu: &Emulator, version: &str, path: &str) -> Reply {
    let url = format!("{}/{version}/{path}", emu.base_url());
    let response = client()
        .get(url)
        .header("x-goog-api-key", "test-key")
        .send()
        .await
        .expect("sent");
    finish(response).await
}

async fn finish(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.expect("body");
    Reply {
        status,
        content_type,
        headers,
        text,
    }
}

/// Every `"key": ` of a JSON text, in order of appearance: the shape of a body, including
/// field order, which `serde_json::Value` would lose.
pub fn key_sequence(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // Scan a string, honouring escapes.
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            if bytes.get(j + 1) == Some(&b':') {
                keys.push(text[start..j].to_string());
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    keys
}

/// Splits an SSE body into its JSON payloads, checking the exact framing.
pub fn sse_events(text: &str) -> Vec<String> {
    assert!(
        text.ends_with("\r\n\r\n"),
        "SSE body must end with CRLF CRLF: {text:?}"
    );
    text.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without data prefix: {e:?}"))
                .to_string()
        })
        .collect()
}

/// The 429 details: (quotaId, quotaValue, retryDelay as a Duration).
pub fn quota_details(body: &Value) -> (String, String, Duration) {
    let details = body["error"]["details"].as_array().expect("details");
    let violation = &details[1]["violations"][0];
    let delay = details[2]["retryDelay"].as_str().expect("retryDelay");
    let seconds: f64 = delay
        .strip_suffix('s')
        .expect("ends in s")
        .parse()
        .expect("number");
    (
        violation["quotaId"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        violation["quotaValue"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Duration::from_secs_f64(seconds),
    )
}
