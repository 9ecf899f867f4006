//! A small hostile HTTP/1.1 server for the tests: what a misbehaving server
//! or proxy can do to a client, on 127.0.0.1 on an ephemeral port.
//!
//! `GET` (the model lookup every step does first) gets a plausible model;
//! every `POST` gets the [`Mode`]'s answer. Each connection serves one
//! request and closes, which keeps the raw HTTP here trivial. Named as an
//! `HTTP_PROXY` for a plain-http base URL it is a hostile proxy: the request
//! comes to it whole, `Proxy-Authorization` header included, and the echo
//! modes send that back too.
//!
//! Shared by the client's tests (`common`) and the steps': each asserts that
//! what it prints never carries a secret that the server echoed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fake API key for the tests: long and distinctive, as a real one is.
pub const KEY: &str = "AIzaSyHostileEchoTest-7f3a9c0123456789";

/// What the server answers to a `POST`.
#[derive(Clone, Debug)]
pub enum Mode {
    /// A JSON error envelope with this status whose message is the request's headers.
    EchoStatus(u16),
    /// A 502 HTML page quoting the request's headers, as a proxy might.
    EchoHtml502,
    /// A per-minute 429 whose `quotaId` and message carry the key.
    EchoQuota429,
    /// A 200 whose body is not JSON and starts with the headers.
    EchoMalformed,
    /// A well-formed 200 whose `modelVersion` and answer are the key.
    EchoModelVersion,
    /// A 200 stream whose one chunk's text is the key.
    EchoStream,
    /// A 200 answer and a stream chunk whose text and `modelVersion` are the key written
    /// with a JSON escape for every character (`\u0041\u0049...`), which parse to the key.
    EchoEscaped,
    /// A 429 whose message and `quotaId` carry the key, JSON-escaped and percent-encoded.
    EchoEscapedQuota429,
    /// A 429 with this `retryDelay`.
    RetryDelay(&'static str),
    /// A 200 body that never ends.
    EndlessBody,
    /// A 200 SSE body whose first line never ends.
    EndlessSseLine,
    /// A 200 body (announced as 10000 bytes) sent one byte a second.
    Trickle,
}

/// Starts the server; it runs until the test's runtime ends.
pub async fn start(mode: Mode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, mode.clone()));
        }
    });
    addr
}

/// The base URL of a server at `addr`.
pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Reads one request and answers it; errors (the client hung up) end the connection.
async fn serve(mut socket: TcpStream, mode: Mode) {
    let Some((head, _body)) = read_request(&mut socket).await else {
        return;
    };
    let _ = if head.starts_with("GET ") {
        respond(&mut socket, 200, "application/json", MODEL.as_bytes()).await
    } else {
        answer(&mut socket, &mode, &head).await
    };
}

/// The model every `GET` returns.
const MODEL: &str = r#"{"name":"models/gemini-flash-latest","version":"2.5","displayName":"Gemini Flash Latest","inputTokenLimit":1048576,"outputTokenLimit":65536,"supportedGenerationMethods":["generateContent","countTokens"]}"#;

/// Writes the mode's answer to a `POST` whose header block is `head`.
async fn answer(socket: &mut TcpStream, mode: &Mode, head: &str) -> std::io::Result<()> {
    let echoed = serde_json::to_string(head).expect("a string encodes");
    match mode {
        Mode::EchoStatus(code) => {
            let body = format!(
                r#"{{"error":{{"code":{code},"message":{echoed},"status":"INVALID_ARGUMENT"}}}}"#
            );
            respond(socket, *code, "application/json", body.as_bytes()).await
        }
        Mode::EchoHtml502 => {
            let body =
                format!("<html><body><h1>502 Bad Gateway</h1><pre>{head}</pre></body></html>");
            respond(socket, 502, "text/html", body.as_bytes()).await
        }
        Mode::EchoQuota429 => {
            let body = format!(
                r#"{{"error":{{"code":429,"message":{echoed},"status":"RESOURCE_EXHAUSTED","details":[
                {{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"m","quotaId":"PerMinute-{KEY}","quotaValue":"{KEY}"}}]}},
                {{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}}]}}}}"#
            );
            respond(socket, 429, "application/json", body.as_bytes()).await
        }
        Mode::EchoMalformed => {
            let body = format!("{{\"candidates\": [ {head}");
            respond(socket, 200, "application/json", body.as_bytes()).await
        }
        Mode::EchoModelVersion => {
            let body = answer_json(KEY, KEY);
            respond(socket, 200, "application/json", body.as_bytes()).await
        }
        Mode::EchoStream => {
            let body = format!("data: {}\r\n\r\n", answer_json(KEY, KEY));
            respond(socket, 200, "text/event-stream", body.as_bytes()).await
        }
        Mode::EchoEscaped => {
            let escaped = json_escaped(KEY);
            let body = answer_json("@", "@").replace('@', &escaped);
            if head.contains("alt=sse") {
                let event = format!("data: {body}\r\n\r\n");
                respond(socket, 200, "text/event-stream", event.as_bytes()).await
            } else {
                respond(socket, 200, "application/json", body.as_bytes()).await
            }
        }
        Mode::EchoEscapedQuota429 => {
            let (escaped, encoded) = (json_escaped(KEY), percent_encoded(KEY));
            let body = format!(
                r#"{{"error":{{"code":429,"message":"key={encoded} or {escaped}","status":"RESOURCE_EXHAUSTED","details":[
                {{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"m","quotaId":"PerMinute-{escaped}"}}]}},
                {{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}}]}}}}"#
            );
            respond(socket, 429, "application/json", body.as_bytes()).await
        }
        Mode::RetryDelay(delay) => {
            let body = format!(
                r#"{{"error":{{"code":429,"message":"Resource exhausted.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
            );
            respond(socket, 429, "application/json", body.as_bytes()).await
        }
        Mode::EndlessBody => endless(socket, "application/json", b"{\"candidates\":[").await,
        Mode::EndlessSseLine => endless(socket, "text/event-stream", b"data: {\"x\":\"").await,
        Mode::Trickle => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000\r\nconnection: close\r\n\r\n";
            socket.write_all(head.as_bytes()).await?;
            loop {
                socket.write_all(b" ").await?;
                socket.flush().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// `text` with every character written as a JSON `\uXXXX` escape (ASCII text).
fn json_escaped(text: &str) -> String {
    text.chars()
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect()
}

/// `text` with every byte written as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A plausible `generateContent` response with this text and `modelVersion`.
fn answer_json(text: &str, model_version: &str) -> String {
    serde_json::json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 3, "totalTokenCount": 9},
        "modelVersion": model_version,
        "responseId": "hostile"
    })
    .to_string()
}

/// Sends a complete response and closes.
async fn respond(
    socket: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.shutdown().await
}

/// Sends `start` and then the letter `x` until the client hangs up.
async fn endless(socket: &mut TcpStream, content_type: &str, start: &[u8]) -> std::io::Result<()> {
    let head =
        format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(start).await?;
    let block = vec![b'x'; 64 * 1024];
    loop {
        socket.write_all(&block).await?;
    }
}

/// Reads a request's header block and its `content-length` body.
async fn read_request(socket: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || data.len() > 1 << 20 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = data[end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some((head, body))
}
