//! The library half of the reliability suite: what the steps'
//! end-to-end tests rely on, checked at the level where it is decided.
//!
//! - TLS is rustls with the webpki roots: no OpenSSL anywhere in the build.
//! - Every type that holds the key redacts it in `Debug`.
//! - One client survives its server going away and coming back on the same
//!   port, and the error in between does not stop a run.
//! - Plain `http://` to anything but this machine is warned about.

use std::time::Duration;

use common::{
    GenerateContentRequest,
    client::{Client, ClientConfig},
    config::{ApiKey, Config},
    connect::{ConnectOptions, connect_with},
    error::{ApiError, Error},
    run,
};
use emulator::Settings;
use testkit::{TEST_KEY, TEST_KEY_FRAGMENT};
use url::Url;

const MODEL: &str = "gemini-2.5-flash";

/// A lookup for `Config::from_lookup` from name/value pairs.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn tls_is_rustls_with_webpki_roots_and_no_openssl() {
    // The lock file is the whole dependency graph: simpler and sturdier
    // than running `cargo tree` from a test.
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    let packages: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    for present in ["rustls", "webpki-roots", "hyper-rustls"] {
        assert!(
            packages.contains(&present),
            "{present} should be in the build"
        );
    }
    for absent in ["openssl", "openssl-sys", "native-tls", "hyper-tls"] {
        assert!(
            !packages.contains(&absent),
            "{absent} must not be in the build"
        );
    }
}

#[tokio::test]
async fn every_type_holding_the_key_redacts_it() {
    let config = Config::from_lookup(env(&[
        ("GOOGLE_API_KEY", TEST_KEY),
        ("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9"),
    ]))
    .expect("a valid configuration");
    let client_config = ClientConfig {
        base_url: config.effective_base_url(),
        api_key: config.api_key.clone(),
        api_version: config.api_version.clone(),
        timeout: Duration::from_secs(1),
    };
    let client = Client::new(client_config.clone()).expect("a client");
    let session = connect_with(&config, ConnectOptions::default())
        .await
        .expect("a session (nothing is sent yet)");
    let settings = Settings {
        key: Some(TEST_KEY.into()),
        ..Settings::instant()
    };
    let shown = [
        format!("{:?}", ApiKey::new(TEST_KEY).expect("a key")),
        format!("{config:?}"),
        format!("{client_config:?}"),
        format!("{client:?}"),
        format!("{session:?}"),
        format!("{settings:?}"),
    ];
    for text in shown {
        assert!(!text.contains(TEST_KEY_FRAGMENT), "{text}");
    }
}

#[tokio::test]
async fn one_client_survives_its_server_restarting_on_the_same_port() {
    let first = testkit::start_restartable(Settings::instant()).await;
    let addr = first.addr();
    let client = Client::new(ClientConfig {
        base_url: Url::parse(&first.base_url()).expect("a URL"),
        api_key: ApiKey::new(TEST_KEY),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(10),
    })
    .expect("a client");
    let request = GenerateContentRequest::from_prompt("Why do some birds migrate?");
    client
        .generate_content(MODEL, &request)
        .await
        .expect("answered");

    // Gone: the pooled connection is dead and nothing listens.
    first.shutdown().await;
    let error = client
        .generate_content(MODEL, &request)
        .await
        .expect_err("nobody is listening");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        !run::stops_the_run(&error),
        "mid-run, a refused connection is one failure, not the end: {error}"
    );

    // Back, on the same port: the same client (and pool) carries on.
    let second = testkit::restart_on(addr, Settings::instant()).await;
    client
        .generate_content(MODEL, &request)
        .await
        .expect("answered by the new server");
    assert_eq!(second.stats().arrivals.len(), 1);
}

#[test]
fn only_errors_that_would_fail_every_request_stop_a_run() {
    let invalid_key = Error::from(ApiError::from_body(
        Some(400),
        br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
    ));
    let overloaded = Error::from(ApiError::from_body(
        Some(503),
        br#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
    ));
    assert!(run::stops_the_run(&invalid_key), "{invalid_key}");
    for goes_on in [
        overloaded,
        Error::Timeout(Duration::from_secs(1)),
        Error::Transport("connection closed".into()),
        Error::Stream("cut".into()),
        Error::Blocked {
            reason: "SAFETY".into(),
        },
    ] {
        assert!(!run::stops_the_run(&goes_on), "{goes_on}");
    }
}

#[test]
fn plain_http_to_anything_but_this_machine_is_warned_about() {
    for remote in [
        "http://10.0.0.8:8080",
        "http://[2001:db8::1]:80",
        "http://gemini.example.invalid",
        "http://127.0.0.1.example.invalid",
    ] {
        let config = Config::from_lookup(env(&[
            ("GOOGLE_GEMINI_BASE_URL", remote),
            ("GOOGLE_API_KEY", TEST_KEY),
        ]))
        .expect("valid");
        assert_eq!(config.notices.len(), 1, "{remote}");
        assert!(config.notices[0].contains("unencrypted"), "{remote}");
        assert!(!config.notices[0].contains(TEST_KEY_FRAGMENT));
    }
    for local in [
        "http://127.0.0.1:8080",
        "http://127.1.2.3:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "https://10.0.0.8",
    ] {
        let config = Config::from_lookup(env(&[
            ("GOOGLE_GEMINI_BASE_URL", local),
            ("GOOGLE_API_KEY", TEST_KEY),
        ]))
        .expect("valid");
        assert!(config.notices.is_empty(), "{local}: {:?}", config.notices);
    }
}
