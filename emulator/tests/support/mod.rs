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

/// Sends `method` to `{base}{path}` (path from the version on, e.g. `/v1beta/batches`) with the
/// key header and an optional JSON body.
pub async fn call(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let mut request = client()
        .request(method, format!("{}{path}", emu.base_url()))
        .header("x-goog-api-key", "test-key");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    finish(request.send().await.expect("request sent")).await
}

/// An inline batch create body: one request per prompt, keyed `k0`, `k1`, ...
pub fn inline_batch(prompts: &[&str]) -> Value {
    let requests: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, prompt)| {
            serde_json::json!({"request": prompt_body(prompt), "metadata": {"key": format!("k{i}")}})
        })
        .collect();
    serde_json::json!({"batch": {"displayName": "test-batch", "inputConfig": {"requests": {"requests": requests}}}})
}

/// POSTs a create body to `models/{model}:batchGenerateContent`.
pub async fn create_batch(emu: &Emulator, model: &str, body: &Value) -> Reply {
    post(
        emu,
        "v1beta",
        &format!("{model}:batchGenerateContent"),
        body,
    )
    .await
}

/// GETs `batches/...` until the operation says `done`, and returns it. Polls every few
/// milliseconds (the emulators of these tests have tiny turnarounds); gives up after a while
/// so a broken emulator fails the test instead of hanging it.
pub async fn wait_done(emu: &Emulator, name: &str) -> Value {
    for _ in 0..2_000 {
        let reply = get(emu, "v1beta", name).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let operation = reply.json();
        if operation["done"] == true {
            return operation;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{name} never finished");
}

/// One JSONL input line: `{"key": key, "request": {...prompt}}`.
pub fn jsonl_line(key: &str, prompt: &str) -> String {
    serde_json::json!({"key": key, "request": prompt_body(prompt)}).to_string()
}

/// Starts a resumable upload of `size` bytes; returns the start reply (its
/// `x-goog-upload-url` header is where the chunks go).
pub async fn start_upload(emu: &Emulator, size: usize, mime: &str) -> Reply {
    let response = client()
        .post(format!("{}/upload/v1beta/files", emu.base_url()))
        .header("x-goog-api-key", "test-key")
        .header("content-type", "application/json")
        .header("x-goog-upload-protocol", "resumable")
        .header("x-goog-upload-command", "start")
        .header("x-goog-upload-header-content-length", size.to_string())
        .header("x-goog-upload-header-content-type", mime)
        .body(serde_json::json!({"file": {"display_name": "test input"}}).to_string())
        .send()
        .await
        .expect("sent");
    finish(response).await
}

/// Sends one chunk to an upload URL, as the SDK does (no key: the URL is the credential).
pub async fn send_chunk(url: &str, command: &str, offset: usize, chunk: &[u8]) -> Reply {
    let response = client()
        .post(url)
        .header("x-goog-upload-command", command)
        .header("x-goog-upload-offset", offset.to_string())
        .body(chunk.to_vec())
        .send()
        .await
        .expect("sent");
    finish(response).await
}

/// Uploads `data` in chunks of `chunk` bytes and returns the final `File`.
pub async fn upload(emu: &Emulator, data: &[u8], chunk: usize) -> Value {
    let start = start_upload(emu, data.len(), "jsonl").await;
    assert_eq!(start.status, 200, "{}", start.text);
    let url = header(&start, "x-goog-upload-url");
    let mut offset = 0;
    loop {
        let end = (offset + chunk).min(data.len());
        let last = end == data.len();
        let command = if last { "upload, finalize" } else { "upload" };
        let reply = send_chunk(&url, command, offset, &data[offset..end]).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if last {
            assert_eq!(header(&reply, "x-goog-upload-status"), "final");
            return reply.json()["file"].clone();
        }
        assert_eq!(header(&reply, "x-goog-upload-status"), "active");
        offset = end;
    }
}

/// A response header as text ("" when absent).
pub fn header(reply: &Reply, name: &str) -> String {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The text of a GenerateContentResponse's first candidate (all parts but thoughts).
pub fn response_text(response: &Value) -> String {
    response["candidates"][0]["content"]["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter(|p| p["thought"] != true)
                .filter_map(|p| p["text"].as_str())
                .collect()
        })
        .unwrap_or_default()
}
