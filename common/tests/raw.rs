//! `Client::raw`, the call any endpoint of the API's host goes through (Batch
//! Mode, the Files API): the key in the header only and only when asked,
//! paths that cannot leave their resource, answers capped and scrubbed,
//! whole or line by line.

use std::time::Duration;

use common::client::{Client, ClientConfig, RawRequest};
use common::config::ApiKey;
use common::error::Error;
use emulator::Settings;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

const KEY: &str = "raw-test-key-5be1d";

fn client_for(base: &str) -> Client {
    Client::new(ClientConfig {
        base_url: Url::parse(base).unwrap(),
        api_key: ApiKey::new(KEY),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

#[tokio::test]
async fn batch_calls_reach_the_emulator_with_the_key_in_the_header() {
    let emu = emulator::start(Settings::instant()).await.unwrap();
    let client = client_for(&emu.base_url());
    assert_eq!(client.api_path("batches"), "v1beta/batches");

    let body = json!({"batch": {"displayName": "raw", "inputConfig": {"requests": {"requests": [
        {"request": {"contents": [{"parts": [{"text": "Why is the sky blue?"}]}]}, "metadata": {"key": "a"}}
    ]}}}});
    let create = RawRequest::post(client.api_path("models/gemini-2.5-flash:batchGenerateContent"))
        .json(&body)
        .unwrap();
    let operation: Value = client
        .raw(create)
        .await
        .unwrap()
        .json(1 << 20)
        .await
        .unwrap();
    let name = operation["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("batches/"), "{operation}");

    let list = RawRequest::get(client.api_path("batches")).query("pageSize", "10");
    let page: Value = client.raw(list).await.unwrap().json(1 << 20).await.unwrap();
    assert_eq!(page["operations"][0]["name"], name.as_str());

    // Without the key the server refuses, as for any call.
    let keyless = RawRequest::get(client.api_path("batches")).without_key();
    let error = client.raw(keyless).await.unwrap_err();
    assert_eq!(error.api().map(|api| api.http_status), Some(403), "{error}");
}

#[tokio::test]
async fn a_path_that_climbs_out_of_its_resource_is_refused_before_sending() {
    let client = client_for("http://127.0.0.1:9");
    for path in ["v1beta/../models", "v1beta//files", "v1beta/./x", ""] {
        let error = client.raw(RawRequest::get(path)).await.unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{path}: {error}");
    }
}

/// A server that answers one request with `body` and an `x-echo` header
/// holding the request's key, and sends back the request's head.
async fn echo_server(body: &'static [u8]) -> (String, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-echo: key={KEY}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.write_all(body).await.unwrap();
        let _ = tx.send(head);
    });
    (base, rx)
}

#[tokio::test]
async fn a_body_is_read_line_by_line_scrubbed_and_capped() {
    static BODY: &[u8] =
        b"{\"key\":\"a\"}\r\n\n{\"echo\":\"raw-test-key-5be1d\"}\nlast without newline";
    let (base, head) = echo_server(BODY).await;
    let client = client_for(&base);
    let mut answer = client
        .raw(RawRequest::get("download/v1beta/files/x:download").query("alt", "media"))
        .await
        .unwrap();
    assert_eq!(answer.header("x-echo").as_deref(), Some("key=[redacted]"));
    let mut lines = Vec::new();
    while let Some(line) = answer.next_line(1024).await.unwrap() {
        lines.push(String::from_utf8(line).unwrap());
    }
    assert_eq!(
        lines,
        [
            "{\"key\":\"a\"}",
            "",
            "{\"echo\":\"[redacted]\"}",
            "last without newline"
        ]
    );
    let head = head.await.unwrap();
    assert!(
        head.starts_with("GET /download/v1beta/files/x:download?alt=media "),
        "{head}"
    );
    assert!(
        head.to_lowercase()
            .contains(&format!("x-goog-api-key: {KEY}")),
        "{head}"
    );
    assert_eq!(head.matches(KEY).count(), 1, "only in the header: {head}");

    let (base, _) = echo_server(b"0123456789\nabc").await;
    let mut answer = client_for(&base).raw(RawRequest::get("x")).await.unwrap();
    let error = answer.next_line(4).await.unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error}");
    let (base, _) = echo_server(b"0123456789").await;
    let answer = client_for(&base).raw(RawRequest::get("x")).await.unwrap();
    assert!(matches!(answer.bytes(5).await, Err(Error::TooLarge { .. })));
}

#[tokio::test]
async fn an_operation_keeps_its_own_error_field_as_a_document() {
    static BODY: &[u8] =
        br#"{"name":"batches/x","done":true,"error":{"code":13,"message":"failed"}}"#;
    let (base, _) = echo_server(BODY).await;
    let operation: Value = client_for(&base)
        .raw(RawRequest::get("v1beta/batches/x"))
        .await
        .unwrap()
        .document(1024)
        .await
        .unwrap();
    assert_eq!(operation["error"]["code"], 13);
    // Read as an ordinary answer, an `error` object is the call's error.
    let (base, _) = echo_server(BODY).await;
    let call: Result<Value, Error> = client_for(&base)
        .raw(RawRequest::get("v1beta/batches/x"))
        .await
        .unwrap()
        .json(1024)
        .await;
    assert!(call.is_err());
}
