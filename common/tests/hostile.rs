//! The client against a hostile server: one that echoes the request headers
//! (the API key among them) into what it answers, sends absurd `retryDelay`s,
//! endless or trickling bodies.
//!
//! The promises: the key appears in no error's `Display` or `Debug` and in
//! no parsed response; an absurd delay is a clear error, not a panic or a
//! wait; an endless body or SSE line fails that request at the size cap; a
//! trickling body fails at the whole-request deadline. Timings are never
//! asserted, only which error came back.

use std::time::Duration;

use common::client::{Client, ClientConfig};
use common::config::ApiKey;
use common::error::Error;
use common::redact::REDACTED;
use common::types::GenerateContentRequest;
use futures_util::StreamExt;
use testkit::hostile::{self, KEY, Mode};
use url::Url;

const MODEL: &str = "gemini-flash-latest";

/// A client for the hostile server in `mode`, with the test key and `timeout`.
async fn client(mode: Mode, timeout: Duration) -> Client {
    let addr = hostile::start(mode).await;
    Client::new(ClientConfig {
        base_url: Url::parse(&hostile::base_url(addr)).unwrap(),
        api_key: ApiKey::new(KEY),
        api_version: "v1beta".into(),
        timeout,
    })
    .unwrap()
}

/// One `generateContent` call to a server in `mode`.
async fn generate(
    mode: Mode,
    timeout: Duration,
) -> common::Result<common::GenerateContentResponse> {
    client(mode, timeout)
        .await
        .generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
}

/// Asserts the key is in neither the error's line nor its `Debug`, and that it was redacted.
fn assert_scrubbed(error: &Error) {
    let (line, debug) = (error.to_string(), format!("{error:?}"));
    assert!(
        !line.contains(KEY) && !debug.contains(KEY),
        "{line}\n{debug}"
    );
    assert!(
        line.contains(REDACTED),
        "the echo should show as redacted: {line}"
    );
}

#[tokio::test]
async fn echoed_headers_never_bring_the_key_back() {
    for mode in [
        Mode::EchoStatus(400),
        Mode::EchoStatus(403),
        Mode::EchoHtml502,
        Mode::EchoQuota429,
        Mode::EchoMalformed,
    ] {
        let error = generate(mode.clone(), Duration::from_secs(30))
            .await
            .expect_err("the server refused");
        assert_scrubbed(&error);
        if let Mode::EchoQuota429 = mode {
            let quota = error
                .api()
                .and_then(|api| api.quota.clone())
                .expect("quota");
            assert_eq!(quota.quota_id, format!("PerMinute-{REDACTED}"));
        }
    }
}

#[tokio::test]
async fn an_answer_or_model_version_that_echoes_the_key_is_scrubbed() {
    let response = generate(Mode::EchoModelVersion, Duration::from_secs(30))
        .await
        .expect("a well-formed answer");
    assert_eq!(response.model_version.as_deref(), Some(REDACTED));
    assert_eq!(response.text(), REDACTED);
    assert!(!format!("{response:?}").contains(KEY));

    let client = client(Mode::EchoStream, Duration::from_secs(30)).await;
    let mut stream = client
        .stream_generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
        .expect("the stream starts");
    let chunk = stream.next().await.expect("one chunk").expect("it parses");
    assert_eq!(chunk.text(), REDACTED);
    assert_eq!(chunk.model_version.as_deref(), Some(REDACTED));
}

#[tokio::test]
async fn a_key_echoed_with_escapes_is_scrubbed_as_well() {
    // Every character a `\uXXXX` escape: the text parses to the key itself.
    let response = generate(Mode::EchoEscaped, Duration::from_secs(30))
        .await
        .expect("a well-formed answer");
    assert_eq!(response.text(), REDACTED);
    assert_eq!(response.model_version.as_deref(), Some(REDACTED));
    assert!(!format!("{response:?}").contains(KEY));

    let client = client(Mode::EchoEscaped, Duration::from_secs(30)).await;
    let mut stream = client
        .stream_generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
        .expect("the stream starts");
    let chunk = stream.next().await.expect("one chunk").expect("it parses");
    assert_eq!(chunk.text(), REDACTED);

    // In an error body, JSON-escaped and percent-encoded.
    let error = generate(Mode::EchoEscapedQuota429, Duration::from_secs(30))
        .await
        .expect_err("the server refused");
    assert_scrubbed(&error);
    let quota = error
        .api()
        .and_then(|api| api.quota.clone())
        .expect("quota");
    assert_eq!(quota.quota_id, format!("PerMinute-{REDACTED}"));
    assert!(!error.to_string().contains("%41%49"), "{error}");
}

#[tokio::test]
async fn absurd_retry_delays_fail_the_request_clearly() {
    for delay in ["9223372036854775807s", "999999999s"] {
        let error = generate(Mode::RetryDelay(delay), Duration::from_secs(30))
            .await
            .expect_err("429");
        assert!(
            matches!(error, Error::RetryDelayTooLong { .. }),
            "{delay}: {error:?}"
        );
        assert!(!error.is_retryable(), "nobody should wait {delay}");
        assert_eq!(error.retry_delay(), None);
        assert!(error.to_string().contains("given up"), "{error}");
    }
    // A sane delay is still honoured.
    let error = generate(Mode::RetryDelay("26s"), Duration::from_secs(30))
        .await
        .expect_err("429");
    assert_eq!(error.retry_delay(), Some(Duration::from_secs(26)));
}

#[tokio::test]
async fn an_endless_body_fails_at_the_cap_and_the_client_lives_on() {
    let client = client(Mode::EndlessBody, Duration::from_secs(60)).await;
    let limit = client.max_response();
    assert_eq!(limit, common::client::response_limit(None));
    let error = client
        .generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
        .expect_err("no answer is endless");
    assert!(
        matches!(error, Error::TooLarge { limit: l, .. } if l == limit),
        "{error:?}"
    );
    assert!(error.to_string().contains("--max-response-mib"), "{error}");
    // The model lookup sets the cap from its output limit; the option overrides it.
    client.get_model(MODEL).await.expect("the model");
    assert_eq!(
        client.max_response(),
        common::client::response_limit(Some(65_536))
    );
    client.set_max_response(1024 * 1024);
    let error = client
        .generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
        .expect_err("still endless");
    assert!(
        matches!(
            error,
            Error::TooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_endless_sse_line_fails_that_stream() {
    let client = client(Mode::EndlessSseLine, Duration::from_secs(60)).await;
    client.set_max_response(1024 * 1024);
    let mut stream = client
        .stream_generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
        .expect("the headers are fine");
    let error = stream
        .next()
        .await
        .expect("an item")
        .expect_err("the line never ends");
    assert!(
        matches!(
            error,
            Error::TooLarge {
                what: "stream event",
                limit: 1_048_576
            }
        ),
        "{error:?}"
    );
    assert!(stream.next().await.is_none(), "nothing follows an error");
}

#[tokio::test]
async fn a_trickling_body_fails_at_the_whole_request_deadline() {
    let timeout = Duration::from_secs(3);
    let error = generate(Mode::Trickle, timeout).await.expect_err("unary");
    assert!(
        matches!(error, Error::Timeout(t) if t == timeout),
        "{error:?}"
    );

    let client = client(Mode::Trickle, timeout).await;
    let mut stream = client
        .stream_generate_content(MODEL, &GenerateContentRequest::from_prompt("hi"))
        .await
        .expect("the headers come at once");
    let error = loop {
        match stream.next().await {
            Some(Err(error)) => break error,
            Some(Ok(_)) => continue,
            None => panic!("the stream ended without the timeout"),
        }
    };
    assert!(
        matches!(error, Error::Timeout(t) if t == timeout),
        "{error:?}"
    );
}
