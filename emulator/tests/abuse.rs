//! Hostile and heavy traffic: malformed HTTP, oversized and invalid bodies, thousands of
//! connections, and a keep-alive soak whose server-side state must stay bounded.

mod support;

use std::time::Duration;

use emulator::Settings;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` on a fresh connection and reads until the server closes it (or 10 s).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn malformed_http_gets_400_and_the_server_keeps_serving() {
    let emu = start(Settings::instant()).await;
    for garbage in [
        &b"GARBAGE / HTTP/9.9\r\n\r\n"[..],
        b"POST /v1beta/models HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    ] {
        let response = raw_exchange(emu.addr(), garbage).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response:?}");
    }
    let ok = raw_exchange(
        emu.addr(),
        b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\nx-goog-api-key: k\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn oversized_bodies_are_refused_without_being_read() {
    let emu = start(Settings {
        max_body_bytes: 1024,
        ..Settings::instant()
    })
    .await;
    // Declares 1 GB and sends a dozen bytes: answered at once, from the header alone.
    let response = raw_exchange(
        emu.addr(),
        b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n\
          x-goog-api-key: k\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{\"contents\":",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Request payload size exceeds the limit: 1024 bytes."));

    // A chunked body with no length is cut off as soon as it passes the limit.
    let big = vec![b' '; 4096];
    let reply = post_raw(
        &emu,
        "v1beta",
        "gemini-2.5-flash:generateContent",
        Some("k"),
        big,
    )
    .await;
    assert_eq!(reply.status, 400);
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:countTokens",
        emu.base_url()
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 100])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client()
        .post(url)
        .header("x-goog-api-key", "k")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("exceeds the limit"));
    // Still serving.
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
}

#[tokio::test]
async fn invalid_utf8_is_400_not_a_panic() {
    let emu = start(Settings::instant()).await;
    for body in [
        b"{\"contents\":[{\"parts\":[{\"text\":\"\xff\xfe\xfd\"}]}]}".to_vec(),
        b"\xc3\x28".to_vec(),
        vec![0u8; 10],
    ] {
        for action in [
            "generateContent",
            "countTokens",
            "streamGenerateContent?alt=sse",
        ] {
            let reply = post_raw(
                &emu,
                "v1beta",
                &format!("gemini-2.5-flash:{action}"),
                Some("k"),
                body.clone(),
            )
            .await;
            assert_eq!(reply.status, 400, "{}", reply.text);
            assert_eq!(reply.json()["error"]["status"], "INVALID_ARGUMENT");
        }
    }
    // Invalid UTF-8 in the path and in the key header.
    let path_reply = raw_exchange(
        emu.addr(),
        b"GET /v1beta/models/%ff%fe HTTP/1.1\r\nHost: x\r\nx-goog-api-key: k\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(path_reply.starts_with("HTTP/1.1 4"), "{path_reply}");
    let key_reply = raw_exchange(
        emu.addr(),
        b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(key_reply.starts_with("HTTP/1.1 4"), "{key_reply}");
    assert_eq!(get(&emu, "v1beta", "models").await.status, 200);
}

/// The open-file limit of this process, from /proc (Linux), if known.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_connections_are_all_served() {
    // Each connection costs two descriptors here (client and server side).
    let wanted = 2_000;
    let connections = match open_file_limit() {
        Some(limit) if limit < 2 * wanted + 200 => (limit.saturating_sub(200)) / 2,
        _ => wanted,
    };
    let emu = start(Settings::instant()).await;
    let addr = emu.addr();
    let body = r#"{"contents":[{"parts":[{"text":"hello"}]}]}"#;
    let request = format!(
        "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n\
         x-goog-api-key: k\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let request: std::sync::Arc<[u8]> = request.into_bytes().into();
    // Open every connection first, so they are all held at the same time.
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        streams.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let request = request.clone();
            tokio::spawn(async move {
                stream.write_all(&request).await?;
                let mut response = Vec::new();
                let read = stream.read_to_end(&mut response);
                tokio::time::timeout(Duration::from_secs(60), read).await??;
                Ok::<bool, std::io::Error>(response.starts_with(b"HTTP/1.1 200"))
            })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        if matches!(task.await, Ok(Ok(true))) {
            served += 1;
        }
    }
    assert_eq!(served, connections);
    assert_eq!(emu.stats().arrivals.len(), connections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_soak_keeps_state_bounded() {
    // A short window and a generous limit, so the quota logs are used and must be pruned.
    let emu = start(Settings {
        rpm: Some(100_000),
        tpm: Some(10_000_000),
        rpd: Some(0),
        window: Duration::from_millis(200),
        ..Settings::instant()
    })
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:generateContent",
        emu.base_url()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while tokio::time::Instant::now() < deadline {
                    let response = client
                        .post(&url)
                        .header("x-goog-api-key", "soak")
                        .json(&prompt_body("hello"))
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(response.status(), 200);
                    let _ = response.bytes().await.expect("body");
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    assert!(total > 100, "only {total} requests in the soak");
    // Everything older than 200 ms has been pruned: nowhere near one entry per request.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let state = emu.tracked_state();
    assert_eq!(
        (state.quota_buckets, state.quota_entries),
        (0, 0),
        "{state:?}"
    );
    assert_eq!(state.arrivals as u64, total);
    assert_eq!(emu.stats().in_flight, 0);
}
