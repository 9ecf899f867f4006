//! The wire the real API is served on: HTTPS with ALPN `h2` and `http/1.1`, at most
//! `max_streams` concurrent HTTP/2 streams on one connection (a stream past it is refused with
//! `REFUSED_STREAM`), and no half-open connection kept forever.

mod support;

use std::sync::Arc;
use std::time::Duration;

use emulator::{Emulator, Latency, Settings};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// An emulator over HTTPS whose generate requests take `latency`.
async fn https(max_streams: u32, latency: Duration) -> Emulator {
    start(Settings {
        tls: true,
        max_streams,
        latency: Latency {
            base: latency,
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await
}

/// A reqwest client that trusts the emulator's CA.
fn trusting(emu: &Emulator) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().expect("HTTPS").as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
}

#[tokio::test]
async fn https_speaks_http2_and_http1_on_a_certificate_for_localhost() {
    let emu = https(100, Duration::ZERO).await;
    assert!(emu.base_url().starts_with("https://127.0.0.1:"));
    let h2 = trusting(&emu).build().unwrap();
    let h1 = trusting(&emu).http1_only().build().unwrap();
    let by_name = emu.base_url().replace("127.0.0.1", "localhost");
    for (client, base, version) in [
        (&h2, emu.base_url(), reqwest::Version::HTTP_2),
        (&h1, emu.base_url(), reqwest::Version::HTTP_11),
        (&h2, by_name, reqwest::Version::HTTP_2),
    ] {
        let response = client
            .get(format!("{base}/v1beta/models/gemini-flash-latest"))
            .header("x-goog-api-key", "k")
            .send()
            .await
            .expect("the certificate is trusted");
        assert_eq!(
            (response.status().as_u16(), response.version()),
            (200, version)
        );
    }
    // A client that does not trust the CA is turned away.
    let untrusting = reqwest::Client::new();
    let error = untrusting
        .get(format!("{}/v1beta/models", emu.base_url()))
        .send()
        .await
        .expect_err("an unknown CA is not trusted");
    assert!(format!("{error:?}").contains("UnknownIssuer"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_never_carries_more_than_max_streams() {
    // A second of latency: the first ten are all still in flight when the rest arrive, even on
    // busy shared cores (at 300 ms a stall could let one finish first and the peak read 9).
    let emu = https(10, Duration::from_secs(1)).await;
    // One reqwest client that knows the server speaks HTTP/2 = one connection (without prior
    // knowledge, a cold client races one connection per request until ALPN says h2); 30
    // requests at once must queue behind 10 streams.
    let client = trusting(&emu).http2_prior_knowledge().build().unwrap();
    let url = format!(
        "{}/v1beta/models/gemini-2.5-flash:generateContent",
        emu.base_url()
    );
    let requests = (0..30).map(|_| {
        client
            .post(&url)
            .header("x-goog-api-key", "k")
            .json(&prompt_body(BIRDS))
            .send()
    });
    for response in futures_util::future::join_all(requests).await {
        let response = response.expect("answered");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
    }
    let stats = emu.stats();
    assert_eq!(stats.connections, 1, "{stats:?}");
    assert_eq!(stats.max_streams_per_connection, 10, "{stats:?}");
    assert_eq!(stats.max_in_flight, 10, "{stats:?}");
}

/// The HTTP/2 client preface, an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame opening stream `id` with a POST whose body never comes (so it stays open).
fn open_stream(id: u32) -> Vec<u8> {
    let path = b"/v1beta/models/gemini-2.5-flash:generateContent";
    let authority = b"localhost";
    // HPACK: :method POST (static 3), :scheme https (static 7), then :path and :authority as
    // literals with an indexed name (static 4 and 1), no Huffman coding.
    let mut block = vec![0x83, 0x87, 0x04, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x01, authority.len() as u8]);
    block.extend_from_slice(authority);
    let mut frame = (block.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[0x01, 0x04]); // HEADERS, END_HEADERS (no END_STREAM)
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

/// Reads frames until a RST_STREAM or GOAWAY arrives; returns (type, stream, error code).
async fn next_reset(io: &mut (impl AsyncRead + Unpin)) -> (u8, u32, u32) {
    loop {
        let mut header = [0u8; 9];
        io.read_exact(&mut header).await.expect("a frame");
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let kind = header[3];
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await.expect("a payload");
        match kind {
            0x3 => {
                return (
                    kind,
                    stream,
                    u32::from_be_bytes(payload[..4].try_into().unwrap()),
                );
            }
            0x7 => {
                return (
                    kind,
                    stream,
                    u32::from_be_bytes(payload[4..8].try_into().unwrap()),
                );
            }
            _ => {}
        }
    }
}

async fn tls_h2(emu: &Emulator) -> impl AsyncRead + AsyncWrite + Unpin {
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(emu.ca_pem().unwrap().as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(emu.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls
}

#[tokio::test]
async fn a_stream_past_the_limit_is_refused() {
    let emu = https(100, Duration::ZERO).await;
    let mut io = tls_h2(&emu).await;
    io.write_all(PREFACE).await.unwrap();
    // 101 streams opened at once, ignoring the server's SETTINGS, as a careless client would.
    let frames: Vec<u8> = (0..101u32).flat_map(|i| open_stream(2 * i + 1)).collect();
    io.write_all(&frames).await.unwrap();
    let reset = tokio::time::timeout(Duration::from_secs(10), next_reset(&mut io))
        .await
        .expect("the server answers the 101st stream");
    // RST_STREAM (type 3) on stream 201 with REFUSED_STREAM (7): the first 100 stay open.
    assert_eq!(reset, (0x3, 201, 0x7));
    assert_eq!(emu.stats().max_streams_per_connection, 100);
}

/// Reads until the server closes the connection; true if that happened within 10 s.
async fn closed_by_server(io: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut sink))
        .await
        .is_ok()
}

#[tokio::test]
async fn half_open_connections_are_closed_after_the_read_timeout() {
    let settings = Settings {
        read_timeout: Duration::from_millis(300),
        ..Settings::instant()
    };
    let plain = start(settings.clone()).await;
    let tls = start(Settings {
        tls: true,
        ..settings
    })
    .await;

    // Connects and says nothing: plain, and before the TLS handshake.
    for emu in [&plain, &tls] {
        let mut silent = TcpStream::connect(emu.addr()).await.unwrap();
        assert!(closed_by_server(&mut silent).await, "{}", emu.base_url());
    }
    // Half a request head.
    let mut partial = TcpStream::connect(plain.addr()).await.unwrap();
    partial
        .write_all(b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut partial).await);
    // A body that stops half-way.
    let mut stalled = TcpStream::connect(plain.addr()).await.unwrap();
    stalled
        .write_all(
            b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n\
              x-goog-api-key: k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"contents\":",
        )
        .await
        .unwrap();
    assert!(closed_by_server(&mut stalled).await);
    // An idle HTTP/2 connection after its requests are done.
    let mut idle = tls_h2(&tls).await;
    idle.write_all(PREFACE).await.unwrap();
    assert!(closed_by_server(&mut idle).await);

    // And the server still serves.
    let reply = client()
        .get(format!("{}/v1beta/models", plain.base_url()))
        .header("x-goog-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
}
