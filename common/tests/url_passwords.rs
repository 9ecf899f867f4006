//! Passwords in URLs are never printed, whatever characters they hold.
//!
//! A password can hold any of `/ ? # @ :` (every base64 secret can hold a
//! `/`), typed raw or percent-encoded. A URL parser ends the user information
//! at a raw `/`, `?` or `#`, so such a URL does not say what the user meant;
//! whatever it says, no part of the password may reach a message, and the
//! message must say what to fix. Checked here through the real paths, for
//! the base URL (`GOOGLE_GEMINI_BASE_URL`: config parsing, client building, a
//! server echoing the `Authorization` header) and the proxy variables
//! (`HTTPS_PROXY`...: the check and the client's redactor), in `Display`,
//! `Debug` and a `--json`-style line. Redis URLs are tested with their
//! limiter (`bulk/src/redis`), a proxy end to end with step 1
//! (`step1-hello/tests/hostile.rs`).

use std::time::Duration;

use base64::Engine as _;
use common::client::{Client, ClientConfig};
use common::config::{ApiKey, Config};
use common::error::Error;
use common::redact::{REDACTED, Redactor};
use common::types::GenerateContentRequest;
use testkit::hostile::{self, KEY, Mode};
use url::Url;

/// The two halves of every test password, distinctive enough to search for.
const LEFT: &str = "Hunter7Left";
const RIGHT: &str = "Hunter7Right";

/// A password as typed in a URL, and whether a URL parser reads it as the
/// user meant (it does not when a raw `/`, `?` or `#` ends the user
/// information early).
struct Password {
    typed: String,
    parses: bool,
}

/// Every character that breaks a URL, raw and percent-encoded (either case),
/// between the two halves; one that starts with digits (`ann:31337/...`
/// parses as the host `ann` on port 31337), and a base64 secret.
fn passwords() -> Vec<Password> {
    let raw = ["/", "?", "#", "@", ":"];
    let encoded = ["%2F", "%3F", "%23", "%40", "%3A", "%2f", "%3a", "%25"];
    let mut all: Vec<Password> = raw
        .iter()
        .map(|sep| Password {
            typed: format!("{LEFT}{sep}{RIGHT}"),
            parses: matches!(*sep, "@" | ":"),
        })
        .collect();
    all.extend(encoded.iter().map(|sep| Password {
        typed: format!("{LEFT}{sep}{RIGHT}"),
        parses: true,
    }));
    all.push(Password {
        typed: format!("31337/{RIGHT}"),
        parses: false,
    });
    all.push(Password {
        typed: format!("{LEFT}+/{RIGHT}=="),
        parses: false,
    });
    all
}

/// The pieces of `password` none of which may be printed.
fn pieces(password: &str) -> Vec<&'static str> {
    [LEFT, RIGHT, "31337"]
        .into_iter()
        .filter(|piece| password.contains(piece))
        .collect()
}

/// Asserts that no piece of `password` is in `text`.
fn assert_secret_free(text: &str, password: &str) {
    for piece in pieces(password) {
        assert!(
            !text.contains(piece),
            "{piece:?} of the password {password:?} is printed: {text}"
        );
    }
}

/// Asserts that an error's line, its `Debug` and a JSON line holding it
/// (what `--json` prints) carry no piece of `password`, and that it is one line.
fn assert_error_secret_free(error: &Error, password: &str) {
    let line = error.to_string();
    let json = serde_json::json!({ "ok": false, "error": line }).to_string();
    for text in [&line, &format!("{error:?}"), &json] {
        assert_secret_free(text, password);
    }
    assert!(!line.contains('\n'), "{line}");
}

/// The configuration read from a map holding only this base URL.
fn config_with_base_url(url: &str) -> common::Result<Config> {
    Config::from_lookup(|name| (name == "GOOGLE_GEMINI_BASE_URL").then(|| url.to_string()))
}

fn client_config(base_url: Url) -> ClientConfig {
    ClientConfig {
        base_url,
        api_key: ApiKey::new(KEY),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(30),
    }
}

/// The `Authorization: Basic` value the HTTP stack sends for `user` and `password` (decoded).
fn basic(user: &str, password: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{decoded}"))
}

#[test]
fn a_base_url_password_is_never_in_a_config_error_or_debug() {
    let mut refused = 0;
    for password in passwords() {
        let typed = &password.typed;
        for url in [
            format!("https://ann:{typed}@gemini-proxy.example/"),
            format!("http://:{typed}@127.0.0.1:9"),
            format!("https://ann:{typed}@gemini-proxy.example/gemini/"),
        ] {
            match config_with_base_url(&url) {
                Ok(config) => {
                    assert!(password.parses, "{url} should be refused");
                    assert_secret_free(&format!("{config:?}"), typed);
                    let base_url = config.effective_base_url();
                    assert_secret_free(&format!("{:?}", client_config(base_url.clone())), typed);
                    let client = Client::new(client_config(base_url)).expect("a usable URL");
                    assert_secret_free(&format!("{client:?}"), typed);
                }
                Err(error) => {
                    assert!(!password.parses, "{url}: {error}");
                    refused += 1;
                    assert_error_secret_free(&error, typed);
                    let line = error.to_string();
                    // What to fix: which variable, and how to write the password.
                    for fix in ["GOOGLE_GEMINI_BASE_URL", "percent-encoded", "%2F"] {
                        assert!(line.contains(fix), "{fix} in {line}");
                    }
                    assert!(line.contains("***@"), "{line}");
                }
            }
        }
    }
    assert_eq!(refused, 5 * 3, "raw / ? #, digits then /, and base64");
}

#[test]
fn a_base_url_a_parser_split_wrongly_is_refused_when_the_client_is_built() {
    for password in passwords() {
        let typed = &password.typed;
        let text = format!("https://ann:{typed}@gemini.example/");
        let Ok(url) = Url::parse(&text) else {
            continue;
        };
        // `ann:31337/...@gemini.example` parses as host `ann`, port 31337,
        // the rest of the password in the path.
        let result = Client::new(client_config(url));
        if password.parses {
            assert!(result.is_ok(), "{text}");
            continue;
        }
        let Err(error) = result else {
            panic!("{text} should be refused");
        };
        assert_error_secret_free(&error, typed);
        assert!(error.to_string().contains("percent-encoded"), "{error}");
    }
    // Not http(s): the message quotes the URL, without the password.
    for password in passwords().into_iter().filter(|p| p.parses) {
        let typed = &password.typed;
        let url = Url::parse(&format!("ftp://ann:{typed}@files.example/")).unwrap();
        let error = Client::new(client_config(url)).expect_err("ftp is refused");
        assert_error_secret_free(&error, typed);
        assert!(error.to_string().contains("not an http(s)"), "{error}");
    }
}

#[tokio::test]
async fn a_server_echoing_the_authorization_header_never_prints_the_password() {
    let addr = hostile::start(Mode::EchoStatus(400)).await;
    let request = GenerateContentRequest::from_prompt("hi");
    for password in passwords().into_iter().filter(|p| p.parses) {
        let typed = &password.typed;
        let url = format!("http://ann:{typed}@{addr}");
        let config = config_with_base_url(&url).expect("a usable base URL");
        let client = Client::new(client_config(config.effective_base_url())).unwrap();
        let error = client
            .generate_content("gemini-flash-latest", &request)
            .await
            .expect_err("the server refuses");
        assert_error_secret_free(&error, typed);
        let line = error.to_string();
        // The header was echoed, and its value scrubbed.
        assert!(line.contains(&format!("Basic {REDACTED}")), "{line}");
        assert!(!line.contains(&basic("ann", typed)), "{line}");
        assert!(!line.contains(KEY), "{line}");
    }
}

/// A lookup that finds `value` under `var` only.
fn one_var<'a>(var: &'a str, value: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| (name == var).then(|| value.to_string())
}

#[test]
fn a_proxy_password_is_checked_and_kept_secret() {
    let mut refused = 0;
    for var in common::proxy::VARS {
        for password in passwords() {
            let typed = &password.typed;
            // The HTTP stack takes the user information to the first @: a raw @ breaks it too.
            let readable = password.parses && !typed.contains('@');
            for value in [
                format!("http://ann:{typed}@proxy.corp.example:3128"),
                format!("ann:{typed}@proxy.corp.example:3128"),
            ] {
                match common::proxy::secrets(one_var(var, &value)) {
                    Ok(secrets) => {
                        assert!(readable, "{var}={value} should be refused");
                        let redactor = Redactor::new(secrets);
                        let decoded = percent_encoding::percent_decode_str(typed)
                            .decode_utf8_lossy()
                            .into_owned();
                        let echo = format!(
                            "proxy-authorization: Basic {} ({typed}, {decoded}, {value})",
                            basic("ann", typed)
                        );
                        let clean = redactor.text(&echo);
                        assert_secret_free(&clean, typed);
                        assert!(!clean.contains(&basic("ann", typed)), "{clean}");
                    }
                    Err(error) => {
                        assert!(!readable, "{var}={value}: {error}");
                        refused += 1;
                        assert_error_secret_free(&error, typed);
                        let line = error.to_string();
                        for fix in [var, "percent-encoded", "bypass the proxy"] {
                            assert!(line.contains(fix), "{fix} in {line}");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(refused, 6 * 6 * 2, "raw / ? # @, digits then /, and base64");
}
