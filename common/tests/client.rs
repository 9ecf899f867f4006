//! The client against the real emulator on 127.0.0.1:0: every call, every error kind, streaming.
//!
//! Each test starts its own emulator with exactly the settings it needs
//! (`Settings::instant()` plus one knob), so tests are independent and fast.
//! Assertions are about behaviour (which variant, which details, what
//! arrived at the server), never about how long something took.

use std::time::Duration;

use common::client::{Client, ClientConfig};
use common::config::{ApiKey, Config};
use common::connect::{ConnectOptions, connect_with};
use common::error::Error;
use common::types::{FinishReason, GenerateContentRequest, GenerationConfig, ThinkingConfig};
use emulator::{Emulator, Faults, Latency, Settings};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

const MODEL: &str = "gemini-2.5-flash";
const PROMPT: &str = "Why do some birds migrate?";

/// Starts an emulator with `settings`.
async fn emulator(settings: Settings) -> Emulator {
    emulator::start(settings).await.unwrap()
}

/// A client for `base` with `key` and a generous timeout (tests that time out set their own).
fn client_for(base: &str, key: Option<&str>, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        base_url: Url::parse(base).unwrap(),
        api_key: key.and_then(ApiKey::new),
        api_version: "v1beta".into(),
        timeout,
    })
    .unwrap()
}

/// A client for an emulator, with a key it accepts.
fn client(emu: &Emulator) -> Client {
    client_for(&emu.base_url(), Some("test-key"), Duration::from_secs(30))
}

fn prompt() -> GenerateContentRequest {
    GenerateContentRequest::from_prompt(PROMPT)
}

/// Settings with one fault always on.
fn always(faults: Faults) -> Settings {
    Settings {
        faults,
        ..Settings::instant()
    }
}

/// The API error of a result that must be one.
fn api_error<T: std::fmt::Debug>(result: Result<T, Error>) -> common::error::ApiError {
    match result {
        Err(Error::Api(api)) => *api,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn generate_count_and_models() {
    let emu = emulator(Settings::instant()).await;
    let c = client(&emu);
    let answer = c.generate_content(MODEL, &prompt()).await.unwrap();
    assert!(!answer.text().is_empty());
    assert_eq!(answer.finish_reason(), Some(&FinishReason::Stop));
    assert!(answer.response_id.is_some());
    let usage = answer.usage();
    assert_eq!(
        usage.total_token_count,
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    );

    // countTokens agrees with the prompt count of a generation.
    let count = c.count_tokens(MODEL, &prompt()).await.unwrap();
    assert_eq!(count.total_tokens, usage.prompt_token_count);

    let model = c.get_model(&format!("models/{MODEL}")).await.unwrap();
    let info = emulator::catalog::find(MODEL).unwrap();
    assert_eq!(model.id(), MODEL);
    assert_eq!(model.input_token_limit, Some(info.input_token_limit));

    let methods: Vec<String> = emu
        .stats()
        .arrivals
        .iter()
        .map(|a| a.method.clone())
        .collect();
    assert_eq!(methods, ["generateContent", "countTokens", "getModel"]);
}

#[tokio::test]
async fn list_models_follows_page_tokens() {
    let emu = emulator(Settings::instant()).await;
    let c = client(&emu);
    let all: Vec<String> = emulator::catalog::all()
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    let mut listed: Vec<String> = c
        .list_models()
        .await
        .unwrap()
        .iter()
        .map(|m| m.id().to_string())
        .collect();
    let mut paged: Vec<String> = c
        .list_models_paged(2)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id().to_string())
        .collect();
    for id in &all {
        assert!(listed.contains(id), "{id} missing from {listed:?}");
    }
    listed.sort();
    paged.sort();
    assert_eq!(listed, paged);
    let pages = emu
        .stats()
        .arrivals
        .iter()
        .filter(|a| a.method == "listModels")
        .count();
    assert_eq!(pages, 1 + listed.len().div_ceil(2));
}

#[tokio::test]
async fn stream_chunks_arrive_while_the_answer_is_still_being_written() {
    // 10 ms per token and chunks of 30-60 tokens: after the first chunk the
    // server has at least several hundred milliseconds of writing left.
    let emu = emulator(Settings {
        latency: Latency {
            per_output_token: Duration::from_millis(10),
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await;
    let no_thinking = prompt().with_generation_config(GenerationConfig {
        thinking_config: Some(ThinkingConfig {
            thinking_budget: Some(0),
            include_thoughts: None,
        }),
        ..GenerationConfig::default()
    });
    let mut stream = client(&emu)
        .stream_generate_content(MODEL, &no_thinking)
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.text().is_empty());
    assert_eq!(
        first.finish_reason(),
        None,
        "the first chunk is not the last"
    );
    assert_eq!(
        emu.stats().in_flight,
        1,
        "the server is still writing the answer"
    );
}

#[tokio::test]
async fn a_whole_stream_ends_with_a_finish_reason() {
    let emu = emulator(Settings::instant()).await;
    let chunks: Vec<_> = client(&emu)
        .stream_generate_content(MODEL, &prompt())
        .await
        .unwrap()
        .collect()
        .await;
    let chunks: Vec<_> = chunks.into_iter().map(Result::unwrap).collect();
    assert!(chunks.len() > 1);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.finish_reason().is_none())
    );
    assert_eq!(
        chunks.last().unwrap().finish_reason(),
        Some(&FinishReason::Stop)
    );
    let text: String = chunks.iter().map(|c| c.text()).collect();
    assert!(text.len() > chunks[0].text().len());
}

#[tokio::test]
async fn invalid_key_is_400_api_key_invalid() {
    let emu = emulator(Settings {
        key: Some("the-right-key".into()),
        ..Settings::instant()
    })
    .await;
    let c = client_for(
        &emu.base_url(),
        Some("a-wrong-key"),
        Duration::from_secs(30),
    );
    let err = c.generate_content(MODEL, &prompt()).await.unwrap_err();
    let api = err.api().unwrap();
    assert_eq!(
        (api.http_status, api.status.as_str()),
        (400, "INVALID_ARGUMENT")
    );
    assert_eq!(api.reason.as_deref(), Some("API_KEY_INVALID"));
    assert!(err.is_fatal() && !err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("GOOGLE_API_KEY") && text.contains("GEMINI_API_KEY"),
        "{text}"
    );
    assert!(!text.contains("a-wrong-key"));
    // The right key works: it was sent.
    let ok = client_for(
        &emu.base_url(),
        Some("the-right-key"),
        Duration::from_secs(30),
    );
    ok.generate_content(MODEL, &prompt()).await.unwrap();
}

#[tokio::test]
async fn missing_key_is_403() {
    let emu = emulator(Settings::instant()).await;
    let c = client_for(&emu.base_url(), None, Duration::from_secs(30));
    let api = api_error(c.generate_content(MODEL, &prompt()).await);
    assert_eq!(
        (api.http_status, api.status.as_str()),
        (403, "PERMISSION_DENIED")
    );
    assert!(Error::from(api).is_fatal());
}

#[tokio::test]
async fn unknown_model_is_404_unary_and_streaming() {
    let emu = emulator(Settings::instant()).await;
    let c = client(&emu);
    let err = c
        .generate_content("gemini-0.1-nope", &prompt())
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().http_status, 404);
    assert!(err.is_fatal());
    assert!(err.to_string().contains("--model"), "{err}");
    let err = c
        .stream_generate_content("gemini-0.1-nope", &prompt())
        .await
        .err()
        .unwrap();
    assert_eq!(err.api().unwrap().status, "NOT_FOUND");
    assert_eq!(
        c.get_model("gemini-0.1-nope")
            .await
            .unwrap_err()
            .api()
            .unwrap()
            .http_status,
        404
    );
}

#[tokio::test]
async fn per_minute_429_has_retry_delay_and_quota() {
    let emu = emulator(Settings {
        rpm: Some(1),
        ..Settings::instant()
    })
    .await;
    let c = client(&emu);
    c.generate_content(MODEL, &prompt()).await.unwrap();
    let err = c.generate_content(MODEL, &prompt()).await.unwrap_err();
    assert!(err.is_rate_limited() && err.is_retryable() && !err.is_fatal());
    let delay = err.retry_delay().expect("RetryInfo.retryDelay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(60),
        "{delay:?}"
    );
    let api = err.api().unwrap();
    assert_eq!(api.status, "RESOURCE_EXHAUSTED");
    let quota = api.quota.as_ref().expect("QuotaFailure");
    assert!(quota.quota_id.contains("PerMinute"), "{quota:?}");
    assert!(!quota.is_per_day());
    assert_eq!(quota.model.as_deref(), Some(MODEL));
    let text = err.to_string();
    assert!(
        text.contains("per-minute") && text.contains("retry in"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn per_day_429_says_so() {
    let emu = emulator(Settings {
        rpd: Some(1),
        ..Settings::instant()
    })
    .await;
    let c = client(&emu);
    c.generate_content(MODEL, &prompt()).await.unwrap();
    let err = c.generate_content(MODEL, &prompt()).await.unwrap_err();
    let quota = err.api().unwrap().quota.clone().expect("QuotaFailure");
    assert!(quota.is_per_day(), "{quota:?}");
    assert!(err.to_string().contains("daily quota"), "{err}");
}

#[tokio::test]
async fn server_errors_500_and_503_are_retryable() {
    let emu = emulator(always(Faults {
        fail_500: 1.0,
        ..Faults::default()
    }))
    .await;
    let err = client(&emu)
        .generate_content(MODEL, &prompt())
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().status, "INTERNAL");
    assert!(err.is_retryable() && !err.is_fatal());

    let emu = emulator(always(Faults {
        fail_503: 1.0,
        ..Faults::default()
    }))
    .await;
    let err = client(&emu)
        .generate_content(MODEL, &prompt())
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().http_status, 503);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("overloaded"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let emu = emulator(always(Faults {
        hang: 1.0,
        ..Faults::default()
    }))
    .await;
    let c = client_for(&emu.base_url(), Some("k"), Duration::from_millis(300));
    let err = c.generate_content(MODEL, &prompt()).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let err = c
        .stream_generate_content(MODEL, &prompt())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn with_timeout_changes_the_deadline_of_the_copy_only() {
    let emu = emulator(always(Faults {
        hang: 1.0,
        ..Faults::default()
    }))
    .await;
    let patient = client_for(&emu.base_url(), Some("k"), Duration::from_secs(3600));
    let hasty = patient.with_timeout(Duration::from_millis(300));
    let err = hasty.generate_content(MODEL, &prompt()).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_millis(300)),
        "{err:?}"
    );
    assert_eq!(patient.timeout(), Duration::from_secs(3600));
    assert!(format!("{hasty:?}").contains("timeout: 300ms"), "{hasty:?}");
}

#[tokio::test]
async fn a_stalled_stream_times_out_between_chunks() {
    // Headers come at once; the first chunk only after a long "thinking" time.
    let emu = emulator(Settings {
        latency: Latency {
            base: Duration::from_secs(600),
            ..Latency::ZERO
        },
        ..Settings::instant()
    })
    .await;
    let c = client_for(&emu.base_url(), Some("k"), Duration::from_millis(300));
    let mut stream = c.stream_generate_content(MODEL, &prompt()).await.unwrap();
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(stream.next().await.is_none(), "nothing follows an error");
}

#[tokio::test]
async fn a_dropped_connection_is_a_retryable_transport_error() {
    let emu = emulator(always(Faults {
        close: 1.0,
        ..Faults::default()
    }))
    .await;
    let err = client(&emu)
        .generate_content(MODEL, &prompt())
        .await
        .unwrap_err();
    assert!(err.is_retryable() && !err.is_fatal(), "{err:?}");
}

#[tokio::test]
async fn broken_streams_end_in_an_error_never_in_silence() {
    let emu = emulator(always(Faults {
        broken_stream: 1.0,
        ..Faults::default()
    }))
    .await;
    let c = client(&emu);
    // The emulator breaks a stream either with an error object or by aborting;
    // several requests see both with the default seed.
    // With no latency the abort can even come before the headers are flushed,
    // which is an error from the call itself.
    let mut mid_stream = 0;
    for _ in 0..8 {
        let stream = match c.stream_generate_content(MODEL, &prompt()).await {
            Ok(stream) => stream,
            Err(err) => {
                assert!(err.is_retryable(), "{err:?}");
                continue;
            }
        };
        let items: Vec<_> = stream.collect().await;
        let (last, before) = items.split_last().unwrap();
        assert!(before.iter().all(Result::is_ok));
        let err = last.as_ref().unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(matches!(err, Error::Api(_) | Error::Stream(_)), "{err:?}");
        mid_stream += 1;
    }
    assert!(mid_stream > 0, "no stream broke after its headers");
}

#[tokio::test]
async fn odd_but_valid_bodies_parse() {
    let emu = emulator(always(Faults {
        odd_bodies: 1.0,
        ..Faults::default()
    }))
    .await;
    let c = client(&emu);
    for _ in 0..12 {
        let r = c.generate_content(MODEL, &prompt()).await.unwrap();
        assert!(
            r.blocked().is_some() || r.finish_reason().is_some(),
            "{r:?}"
        );
        let chunks: Vec<_> = c
            .stream_generate_content(MODEL, &prompt())
            .await
            .unwrap()
            .collect()
            .await;
        assert!(chunks.iter().all(Result::is_ok), "{chunks:?}");
    }
}

#[tokio::test]
async fn connection_refused_says_the_host_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let c = client_for(
        &format!("http://127.0.0.1:{port}"),
        Some("k"),
        Duration::from_secs(30),
    );
    let err = c.generate_content(MODEL, &prompt()).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_fatal());
    let text = err.to_string();
    assert!(
        text.contains("cannot reach") && text.contains("GOOGLE_GEMINI_BASE_URL"),
        "{text}"
    );
}

/// A one-shot HTTP server that records the raw request head and answers a fixed body.
async fn recording_server() -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early");
            received.extend_from_slice(&buf[..n]);
        }
        let body =
            br#"{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body).await.unwrap();
        String::from_utf8_lossy(&received).into_owned()
    });
    (base, task)
}

#[tokio::test]
async fn the_key_travels_in_the_header_and_never_in_the_url() {
    let (base, server) = recording_server().await;
    let key = "sekrit-key-0123";
    let c = client_for(&base, Some(key), Duration::from_secs(30));
    assert_eq!(
        c.generate_content(MODEL, &prompt()).await.unwrap().text(),
        "ok"
    );
    let head = server.await.unwrap();
    let request_line = head.lines().next().unwrap();
    assert_eq!(
        request_line,
        "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains(&format!("x-goog-api-key: {key}")), "{head}");
    assert!(lower.contains("content-type: application/json"));
    assert_eq!(
        head.matches(key).count(),
        1,
        "the key appears once, in its header"
    );
    assert!(!format!("{c:?}").contains(key));
}

#[tokio::test]
async fn connect_without_a_key_starts_the_emulator() {
    let config = Config::from_lookup(|_| None).unwrap();
    let session = connect_with(
        &config,
        ConnectOptions {
            force_emulator: false,
            timeout: Duration::from_secs(30),
            emulator: Settings::instant(),
        },
    )
    .await
    .unwrap();
    assert!(session.is_offline());
    let answer = session
        .client
        .generate_content(MODEL, &prompt())
        .await
        .unwrap();
    assert!(!answer.text().is_empty());
    let arrivals = session.emulator().unwrap().stats().arrivals;
    assert_eq!(arrivals.len(), 1);
    assert_eq!(arrivals[0].status, 200);
    assert!(session.client.base_url().host_str() == Some("127.0.0.1"));
    session.shutdown().await;
}

#[tokio::test]
async fn connect_with_a_local_base_url_and_no_key_uses_that_server() {
    let emu = emulator(Settings::instant()).await;
    let config =
        Config::from_lookup(|name| (name == "GOOGLE_GEMINI_BASE_URL").then(|| emu.base_url()))
            .unwrap();
    let session = connect_with(
        &config,
        ConnectOptions {
            emulator: Settings::instant(),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(!session.is_offline());
    session
        .client
        .generate_content(MODEL, &prompt())
        .await
        .unwrap();
    assert_eq!(emu.stats().arrivals.len(), 1);
}

#[tokio::test]
async fn force_emulator_ignores_the_key() {
    let config =
        Config::from_lookup(|name| (name == "GEMINI_API_KEY").then(|| "real-key".into())).unwrap();
    let session = connect_with(
        &config,
        ConnectOptions {
            force_emulator: true,
            emulator: Settings::instant(),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(session.is_offline());
    assert!(!format!("{session:?}").contains("real-key"));
}
