//! Secrets kept out of everything printed: the API key in what servers send, passwords in URLs.
//!
//! Two kinds of secret can reach a terminal, a log or a `--json` line.
//!
//! The client's own key can come back inside what a server or a proxy sends:
//! an error page quoting the request headers, a `quotaId`, even an answer.
//! [`Redactor`] takes every secret it knows out of every such text, so that
//! the printers (terminal, `--json`, `--output`, logs) need not remember to.
//!
//! A URL the user gives can carry a password: `https://ann:pass@proxy`
//! (`GOOGLE_GEMINI_BASE_URL`, `HTTPS_PROXY`), `redis://:pass@db` or
//! `redis+unix:///sock?pass=...` (`--redis`). [`redact_url`] shows such a URL
//! without it, [`url_secrets`] lists every form in which it may come back
//! (as written, percent-decoded, and as the `Authorization: Basic` value the
//! HTTP stack builds from it) for a `Redactor`, and [`parse_url`] refuses a
//! URL whose password a parser would misread, saying how to write it.
//!
//! # Where the password ends
//!
//! A URL parser ends the authority at the first `/`, `?` or `#` and takes the
//! user information to the last `@` before that. So a password typed with a
//! raw `/`, `?` or `#` (any base64 secret can hold a `/`) is read as
//! something else: `redis://u:ab/cd@db` is host `u` with port `ab` (an
//! error), and `https://u:12/cd@h` is host `u`, port 12 and the path `/cd@h`
//! (no error, and half the password in the path). Whatever a parser makes of
//! it, the person meant everything from `://` to the last `@` as user name
//! and password, so that is what is hidden when the text is printed. Only
//! text is looked at, never a parse, which is why the same function serves
//! a URL that does not parse, the very case in which a message quotes it.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;
use url::Url;

use crate::error::{ApiError, Error};
use crate::escaped::Needles;

/// What a secret found in a server's text is replaced with.
pub const REDACTED: &str = "[redacted]";

/// What the user information and the password parameters of a printed URL become.
pub const HIDDEN: &str = "***";

/// The fix for a URL whose user name or password a parser misreads.
pub const PERCENT_ENCODE: &str = "if the user name or password holds any of / ? # @ : %, write them percent-encoded (%2F %3F %23 %40 %3A %25)";

/// `text` (a URL, or what should have been one) fit to print: the user
/// information (`user:pass@`) and the value of a `pass`/`password` query
/// parameter become `***`.
///
/// The user information runs from `://` (or the start, without a scheme) to
/// the last `@`, wherever a URL parser would end it (see the module doc), so
/// no part of a password with a raw `/ ? # @ :` is printed. Text without a
/// password comes back unchanged.
pub fn redact_url(text: &str) -> String {
    let mut spans = password_param_spans(text);
    spans.extend(userinfo_span(text));
    spans.sort_by_key(|span| span.start);
    let mut hidden: Vec<Range<usize>> = Vec::new();
    for span in spans {
        match hidden.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => hidden.push(span),
        }
    }
    let mut shown = String::with_capacity(text.len());
    let mut shown_to = 0;
    for span in hidden {
        shown.push_str(&text[shown_to..span.start]);
        shown.push_str(HIDDEN);
        shown_to = span.end;
    }
    shown.push_str(&text[shown_to..]);
    shown
}

/// The user information of `text` as the person meant it (from `://`, or
/// the start, to the last `@`), whatever a URL parser would make of it;
/// `None` without an `@`.
pub fn userinfo(text: &str) -> Option<&str> {
    userinfo_span(text).map(|span| &text[span])
}

/// Parses a URL that may carry a user name and password, refusing one whose
/// password a parser would misread.
///
/// The error is the reason only, one line, never the URL: the caller quotes
/// the URL through [`redact_url`] and names the variable or option. When the
/// text has user information, the reason ends with [`PERCENT_ENCODE`].
pub fn parse_url(text: &str) -> Result<Url, String> {
    let text = text.trim();
    let with_fix = |why: String| {
        if userinfo(text).is_some() {
            format!("{why}; {PERCENT_ENCODE}")
        } else {
            why
        }
    };
    let url = Url::parse(text).map_err(|e| with_fix(e.to_string()))?;
    if misread_userinfo(&url) {
        return Err(with_fix(MISREAD.to_string()));
    }
    Ok(url)
}

/// Why [`misread_userinfo`] refuses a URL.
pub const MISREAD: &str =
    "an @ comes after the host, so part of a user name or password was read as the address";

/// True when a parsed URL has an `@` after its host where no address has
/// one (in the path, the fragment or a query parameter's name): the sign of
/// a password typed with a raw `/`, `?` or `#` and cut short there
/// (`https://u:12/cd@h` is host `u`, port 12, path `/cd@h`). An `@` in a
/// query parameter's value (`?pass=a@b`) is a value like any other.
pub fn misread_userinfo(url: &Url) -> bool {
    let in_a_name = |query: &str| {
        query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|name| name.contains('@'))
        })
    };
    url.path().contains('@')
        || url
            .fragment()
            .is_some_and(|fragment| fragment.contains('@'))
        || url.query().is_some_and(in_a_name)
}

/// Every form in which the secrets of the URL `text` may come back in a
/// message, for a [`Redactor`]: the password (or a lone `token@`) as written
/// and percent-decoded, as a URL parser re-encodes it, the value of a
/// `pass`/`password` query parameter likewise, and the `Authorization: Basic`
/// value (base64 of `user:password`) that the HTTP stack sends for them.
pub fn url_secrets(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |secret: &str| {
        for form in [secret.to_string(), percent_decode(secret)] {
            if !form.is_empty() && !found.contains(&form) {
                found.push(form);
            }
        }
    };
    if let Some(userinfo) = userinfo(text) {
        // `user:pass`, or a lone token (`https://TOKEN@host`), which is the secret.
        let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
        add(password);
        let credentials = if userinfo.contains(':') {
            format!("{}:{}", percent_decode(user), percent_decode(password))
        } else {
            format!("{}:", percent_decode(userinfo))
        };
        add(&base64::engine::general_purpose::STANDARD.encode(credentials));
    }
    if let Some(password) = Url::parse(text.trim())
        .ok()
        .as_ref()
        .and_then(Url::password)
    {
        add(password);
    }
    for span in password_param_spans(text) {
        add(&text[span]);
    }
    found
}

/// The bytes of `text` that are user information as the person meant it:
/// from after `://` (or the start) to the last `@`.
fn userinfo_span(text: &str) -> Option<Range<usize>> {
    let start = text.find("://").map_or(0, |scheme_end| scheme_end + 3);
    let at = start + text[start..].rfind('@')?;
    Some(start..at)
}

/// The bytes of `text` that are the values of `pass`/`password` query
/// parameters (`redis+unix:///sock?pass=...`), each to the next `&`.
fn password_param_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    for (at, _) in text.match_indices(['?', '&']) {
        let pair = &text[at + 1..];
        let Some(equals) = pair.find('=') else {
            continue;
        };
        if !is_password_param(&percent_decode(&pair[..equals])) {
            continue;
        }
        let start = at + 1 + equals + 1;
        let end = text[start..]
            .find('&')
            .map_or(text.len(), |end| start + end);
        spans.push(start..end);
    }
    spans
}

/// A query parameter that holds a password (`pass` is Redis's, `password` a common spelling).
fn is_password_param(name: &str) -> bool {
    name.eq_ignore_ascii_case("pass") || name.eq_ignore_ascii_case("password")
}

/// Decodes `%XX` escapes (lossily: it serves to recognise a secret in a message, not to use it).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Takes known secrets out of text that came from the network.
///
/// The client knows its key, so it can make sure the key never travels back
/// out through what a server said: every error it returns and every response
/// it parses goes through its `Redactor` first, and each occurrence of a
/// secret becomes [`REDACTED`]. That is the one place to get it right, instead
/// of every printer (terminal, `--json`, `--output`, logs) remembering to.
///
/// A secret is found however it was written: as itself, with JSON escapes
/// (`\u0041Iza...`, `\/`), percent-encoded (`%41Iza...`), or any mix of them
/// (see the `escaped` module). [`Redactor::is_clean`] answers on raw bytes
/// whether a body could hold one at all, so that a clean answer (nearly all of
/// them) is parsed once, straight into its type.
///
/// `Debug` shows how many secrets it holds, never them.
#[derive(Clone)]
pub struct Redactor {
    secrets: Arc<Needles>,
    count: usize,
}

impl Default for Redactor {
    /// A redactor with no secret: it changes nothing.
    fn default() -> Redactor {
        Redactor::new(Vec::<String>::new())
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.count)
    }
}

impl Redactor {
    /// A redactor for these secrets (empty ones are ignored).
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort();
        secrets.dedup();
        Redactor {
            count: secrets.len(),
            secrets: Arc::new(Needles::new(&secrets)),
        }
    }

    /// True when `bytes` cannot hold a secret, written in any form (JSON escapes and
    /// percent-encoding included): what they parse to holds none either.
    pub fn is_clean(&self, bytes: &[u8]) -> bool {
        self.secrets.absent(bytes)
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn text(&self, text: &str) -> String {
        let mut text = text.to_string();
        self.scrub(&mut text);
        text
    }

    /// Replaces every secret in `text`, in place (no allocation when there is none).
    pub fn scrub(&self, text: &mut String) {
        if let Cow::Owned(clean) = self.replace(text.as_bytes()) {
            *text = String::from_utf8(clean)
                .unwrap_or_else(|bad| String::from_utf8_lossy(bad.as_bytes()).into_owned());
        }
    }

    /// Replaces every secret in every string (and object key) of a JSON value.
    ///
    /// For a body that [`Redactor::is_clean`] could not clear: each string is
    /// searched once parsed, so a secret written with JSON escapes is caught whole,
    /// and one written escaped twice (`\\u0041`) as well.
    pub fn json(&self, value: &mut Value) {
        if self.count == 0 {
            return;
        }
        match value {
            Value::String(text) => self.scrub(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.json(item)),
            Value::Object(map) => {
                if map.keys().any(|k| !self.is_clean(k.as_bytes())) {
                    let entries = std::mem::take(map);
                    *map = entries
                        .into_iter()
                        .map(|(k, v)| (self.text(&k), v))
                        .collect();
                }
                map.values_mut().for_each(|item| self.json(item));
            }
            _ => {}
        }
    }

    /// A body with every secret replaced, before any of it is cut into a snippet
    /// (so that no cut can leave half a key behind); borrowed when it holds none.
    pub fn body<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        self.replace(body)
    }

    /// `bytes` with each stretch that spells a secret replaced by [`REDACTED`].
    fn replace<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let found = self.secrets.find_all(bytes);
        if found.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut clean = Vec::with_capacity(bytes.len());
        let mut kept_to = 0;
        for stretch in found {
            clean.extend_from_slice(&bytes[kept_to..stretch.start]);
            clean.extend_from_slice(REDACTED.as_bytes());
            kept_to = stretch.end;
        }
        clean.extend_from_slice(&bytes[kept_to..]);
        Cow::Owned(clean)
    }

    /// The error with every secret taken out of every text it carries.
    pub fn error(&self, mut error: Error) -> Error {
        if self.count == 0 {
            return error;
        }
        match &mut error {
            Error::MissingKey | Error::Timeout(_) | Error::TooLarge { .. } => {}
            Error::Config(text)
            | Error::Transport(text)
            | Error::Stream(text)
            | Error::OutOfFiles(text) => self.scrub(text),
            Error::Api(api) | Error::RetryDelayTooLong { api, .. } => self.api(api),
            Error::UnknownModel { api, closest } => {
                self.api(api);
                closest.iter_mut().for_each(|name| self.scrub(name));
            }
            Error::Connect { host, detail } | Error::Tls { host, detail } => {
                self.scrub(host);
                self.scrub(detail);
            }
            Error::Proxy {
                proxy,
                host,
                detail,
                ..
            } => {
                self.scrub(proxy);
                self.scrub(host);
                self.scrub(detail);
            }
            Error::Decode {
                detail, snippet, ..
            } => {
                self.scrub(detail);
                self.scrub(snippet);
            }
            Error::Blocked { reason } => self.scrub(reason),
        }
        error
    }

    /// Scrubs every text field of an API error.
    fn api(&self, api: &mut ApiError) {
        self.scrub(&mut api.status);
        self.scrub(&mut api.message);
        if let Some(reason) = &mut api.reason {
            self.scrub(reason);
        }
        if let Some(quota) = &mut api.quota {
            self.scrub(&mut quota.quota_id);
            self.scrub(&mut quota.metric);
            for text in [&mut quota.model, &mut quota.value].into_iter().flatten() {
                self.scrub(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{SNIPPET_CHARS, snippet};

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in [
            "redis://127.0.0.1:6379",
            "https://generativelanguage.googleapis.com/",
            "not a url",
            "redis+unix:///run/redis.sock?db=1",
            "",
        ] {
            assert_eq!(redact_url(url), url);
            assert!(url_secrets(url).is_empty(), "{url}");
            assert_eq!(userinfo(url), None);
        }
    }

    #[test]
    fn the_user_information_and_password_parameters_are_hidden() {
        let cases = [
            ("redis://user:hunter2@db:6379/0", "redis://***@db:6379/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "http://:hunter2@h?password=hunter2",
                "http://***@h?password=***",
            ),
            ("https://TOKEN@proxy.example/", "https://***@proxy.example/"),
            // No scheme: everything before the last @ is user information.
            ("ann:hunter2@proxy:3128", "***@proxy:3128"),
            // A raw / ? # or @ in the password: hidden up to the last @.
            ("redis://u:ab/cd@db:6379/0", "redis://***@db:6379/0"),
            ("https://u:12/cd@h/", "https://***@h/"),
            ("redis://u:ab?cd@db", "redis://***@db"),
            ("redis://u:1234#cd@db", "redis://***@db"),
            ("https://u:a@b@c@h", "https://***@h"),
            // An @ in a password parameter hides what comes before it too.
            ("redis://db/0?pass=ab@cd&db=2", "redis://***&db=2"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn url_secrets_hold_every_form_a_password_comes_back_in() {
        let found = url_secrets("redis://u:hun%40ter@db?password=x2%2F");
        for form in ["hun%40ter", "hun@ter", "x2%2F", "x2/"] {
            assert!(found.iter().any(|s| s == form), "{form} in {found:?}");
        }
        // What reqwest and hyper-util send for them: base64("u:hun@ter").
        assert!(found.iter().any(|s| s == "dTpodW5AdGVy"), "{found:?}");
        // A raw @ is re-encoded by a URL parser: both forms are secrets.
        let found = url_secrets("https://ann:p@ss@proxy/");
        for form in ["p@ss", "p%40ss", "YW5uOnBAc3M="] {
            assert!(found.iter().any(|s| s == form), "{form} in {found:?}");
        }
        // A lone token before the @ is the secret; its Basic form ends in ':'.
        let found = url_secrets("https://t0ken@host/");
        assert!(found.iter().any(|s| s == "t0ken"), "{found:?}");
        assert!(found.iter().any(|s| s == "dDBrZW46"), "{found:?}");
    }

    #[test]
    fn parse_url_refuses_a_password_cut_short_and_says_how_to_write_it() {
        for text in [
            "https://ann:ab/cd@h/",
            "https://ann:12/cd@h/",
            "https://ann:12?cd@h/",
            "https://ann:12#cd@h/",
            "https://ann:ab?cd@h/",
            "https://ann:ab#cd@h/",
        ] {
            let why = parse_url(text).expect_err(text);
            assert!(
                why.contains("percent-encoded") && why.contains("%2F"),
                "{why}"
            );
            assert!(!why.contains("cd") && !why.contains("ab"), "{why}");
        }
        for text in [
            "https://ann:ab%2Fcd@h/",
            "https://ann:a@b:c@h/",
            " http://h:1 ",
        ] {
            assert!(parse_url(text).is_ok(), "{text}");
        }
        // Without user information, no advice about passwords.
        let why = parse_url("not a url").unwrap_err();
        assert!(!why.contains("percent"), "{why}");
    }

    #[test]
    fn the_redactor_scrubs_every_text_an_error_or_answer_carries() {
        let key = "AIzaSyD-hostile-proxy-echo-0123456789";
        let redactor = Redactor::new([key, ""]);
        assert!(!format!("{redactor:?}").contains(key));
        let body = format!(
            r#"{{"error":{{"code":429,"message":"x-goog-api-key: {key}","status":"RESOURCE_EXHAUSTED","details":[
            {{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaId":"PerMinute-{key}","quotaMetric":"{key}","quotaValue":"{key}","quotaDimensions":{{"model":"{key}"}}}}]}},
            {{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"{key}"}}]}}}}"#
        );
        let errors = [
            Error::from(ApiError::from_body(Some(429), body.as_bytes())),
            Error::from(ApiError::from_body(
                Some(502),
                format!("<h1>{key}</h1>").as_bytes(),
            )),
            Error::decode("x", key, format!("{{{key}").as_bytes()),
            Error::Transport(key.into()),
            Error::Connect {
                host: key.into(),
                detail: key.into(),
            },
        ];
        for error in errors {
            let clean = redactor.error(error);
            for text in [clean.to_string(), format!("{clean:?}")] {
                assert!(!text.contains(key), "{text}");
            }
            assert!(clean.to_string().contains(REDACTED), "{clean}");
        }
        // A snippet cut from a scrubbed body cannot keep half a key.
        let long = format!("{}{key}", "x".repeat(SNIPPET_CHARS - 5));
        let cut = snippet(&redactor.body(long.as_bytes()));
        assert!(!cut.contains("AIza"), "{cut}");
        // JSON escapes do not hide the key from the parsed-value scrub.
        let escaped = format!(r#"{{"modelVersion":"\u0041{}","{key}":[1]}}"#, &key[1..]);
        let mut value: Value = serde_json::from_str(&escaped).unwrap();
        redactor.json(&mut value);
        assert!(!value.to_string().contains(key), "{value}");
        // Nor do they, or percent-encoding, hide it in text or in a raw body.
        for echo in [
            format!(r"x-goog-api-key: \u0041{}", &key[1..]),
            format!("key=%41%49{}", &key[2..]),
            format!(r"key=%\u00341{}", &key[1..]),
        ] {
            assert!(!redactor.is_clean(echo.as_bytes()), "{echo}");
            assert!(!redactor.text(&echo).contains(&key[2..]), "{echo}");
            let body = redactor.body(echo.as_bytes());
            assert!(
                !String::from_utf8_lossy(&body).contains(&key[2..]),
                "{echo}"
            );
        }
        assert!(redactor.is_clean(br#"{"text":"a\nb \u003c AIza 100%"}"#));
    }
}
