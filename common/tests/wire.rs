//! The client on the real wire: HTTPS, HTTP/2 with 100 streams per connection, and trust.
//!
//! Against the emulator over HTTPS: a second connection opens when 100 requests are in flight
//! on the first (so all of them are in flight at once, which one connection cannot do); a
//! certificate the client does not trust is one line that says to set `SSL_CERT_FILE`; over
//! plain HTTP/1.1 nothing changes.

use std::time::Duration;

use common::trust::TlsRoots;
use common::{Client, ClientConfig, Error, GenerateContentRequest};
use emulator::{Emulator, Settings};
use futures_util::future::join_all;
use url::Url;

const MODEL: &str = "gemini-2.5-flash";

/// An emulator whose generate requests all take `latency`, over HTTPS or not.
async fn emulator(tls: bool, latency: Duration) -> Emulator {
    emulator::start(Settings {
        tls,
        ..testkit::slow(latency)
    })
    .await
    .expect("emulator starts")
}

fn config(emu: &Emulator) -> ClientConfig {
    ClientConfig {
        base_url: Url::parse(&emu.base_url()).unwrap(),
        api_key: common::config::ApiKey::new("k"),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(60),
    }
}

/// A client trusting exactly this emulator's CA, as `common::connect` makes for the built-in one.
fn trusting(emu: &Emulator) -> Client {
    let roots = TlsRoots::Only(emu.ca_pem().expect("HTTPS").to_string());
    Client::with_roots(config(emu), roots).expect("a client")
}

/// Sends `n` generate requests at once; panics unless all succeed.
async fn burst(client: &Client, n: usize) {
    let request = GenerateContentRequest::from_prompt("Why do some birds migrate?");
    let answers = join_all((0..n).map(|_| client.generate_content(MODEL, &request))).await;
    for answer in answers {
        answer.expect("answered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_opens_past_100_requests_in_flight() {
    // 100 in flight: one connection carries them all.
    let emu = emulator(true, Duration::from_millis(500)).await;
    let client = trusting(&emu);
    client.get_model(MODEL).await.expect("the model exists");
    burst(&client, 100).await;
    let stats = emu.stats();
    assert_eq!(
        (stats.connections, stats.max_in_flight, client.connections()),
        (1, 100, 1)
    );

    // 150 in flight: a second connection opens, and every request is in flight at once.
    let emu = emulator(true, Duration::from_millis(500)).await;
    let client = trusting(&emu);
    client.get_model(MODEL).await.expect("the model exists");
    burst(&client, 150).await;
    let stats = emu.stats();
    assert_eq!(
        (stats.connections, stats.max_in_flight, client.connections()),
        (2, 150, 2)
    );
    assert!(stats.max_streams_per_connection <= 100, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_the_connections() {
    let emu = emulator(true, Duration::from_millis(300)).await;
    let client = trusting(&emu);
    client.get_model(MODEL).await.expect("the model exists");
    let request = GenerateContentRequest::from_prompt("Why do some birds migrate?");
    let clones: Vec<Client> = (0..120).map(|_| client.clone()).collect();
    let answers = join_all(clones.iter().map(|c| c.generate_content(MODEL, &request))).await;
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!((emu.stats().connections, client.connections()), (2, 2));
}

#[tokio::test]
async fn an_untrusted_certificate_is_one_line_naming_ssl_cert_file() {
    let emu = emulator(true, Duration::ZERO).await;
    // The system's roots (and whatever SSL_CERT_FILE names here) do not include this fresh CA.
    let client = Client::new(config(&emu)).expect("a client");
    let error = client.get_model(MODEL).await.expect_err("not trusted");
    let line = error.to_string();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(line.contains("SSL_CERT_FILE="), "{line}");
    assert!(
        line.contains("not signed by a CA this client trusts"),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_keeps_one_pool_of_http1_connections() {
    let emu = emulator(false, Duration::from_millis(300)).await;
    let client = Client::new(config(&emu)).expect("a client");
    burst(&client, 150).await;
    let stats = emu.stats();
    // HTTP/1.1: one request per connection at a time, so 150 connections, and one lane.
    assert_eq!((stats.max_in_flight, client.connections()), (150, 1));
    assert_eq!(stats.connections, 150);
    assert_eq!(stats.max_streams_per_connection, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_connection_left_idle_is_closed() {
    let emu = emulator(true, Duration::from_millis(300)).await;
    let client = trusting(&emu);
    client.get_model(MODEL).await.expect("the model exists");
    burst(&client, 150).await;
    assert_eq!(client.connections(), 2);
    // Past the idle limit of an extra lane (10 s), the next request drops it.
    tokio::time::sleep(Duration::from_secs(11)).await;
    burst(&client, 1).await;
    assert_eq!(client.connections(), 1);
    assert_eq!(emu.stats().connections, 2, "no connection was opened again");
}
