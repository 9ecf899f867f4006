//! Configuration from the environment, read the way Google's SDKs read it.
//!
//! - The key comes from `GOOGLE_API_KEY`, else `GEMINI_API_KEY`; when both are
//!   set `GOOGLE_API_KEY` wins and we say so (PY `get_env_api_key()`, JS
//!   `getApiKeyFromEnv()`). An empty value counts as unset. Surrounding
//!   whitespace is trimmed, as PY does, because a pasted key often ends in a newline.
//! - `GOOGLE_GEMINI_BASE_URL` replaces `https://generativelanguage.googleapis.com`
//!   (it points the steps at a local emulator); `GOOGLE_GENAI_API_VERSION`
//!   replaces `v1beta`.
//! - A `.env` file in the working directory or a parent fills in variables
//!   the real environment does not set. It is read with dotenvy's iterator
//!   and never written into the process environment: in Rust 2024
//!   `set_var` is `unsafe` (other threads may be reading the environment),
//!   and keeping the two layers apart is also what makes this testable.
//!
//! Reading is separated from the process: [`Config::from_lookup`] takes any
//! `Fn(&str) -> Option<String>`, so tests pass a map instead of mutating the
//! environment. Messages meant for the user (which key won, a key about to
//! travel in clear) are collected in [`Config::notices`];
//! [`Config::from_env`] prints them to stderr, one line each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use url::{Host, Url};

use crate::error::{Error, Result};
use crate::redact::{parse_url, redact_url};

/// Where the real Gemini API lives.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The API version the SDKs default to (docs/wire.md#endpoints).
pub const DEFAULT_API_VERSION: &str = "v1beta";

/// The key sent to a local server when no key is configured (any non-empty
/// key is accepted there; see [`connect`](mod@crate::connect)). Public, so the client
/// does not treat it as a secret.
pub const PLACEHOLDER_KEY: &str = "emulator";

/// The variables read, in one place so messages and tests agree.
pub mod vars {
    /// The preferred key variable.
    pub const GOOGLE_API_KEY: &str = "GOOGLE_API_KEY";
    /// The fallback key variable.
    pub const GEMINI_API_KEY: &str = "GEMINI_API_KEY";
    /// Overrides the base URL.
    pub const BASE_URL: &str = "GOOGLE_GEMINI_BASE_URL";
    /// Overrides the API version.
    pub const API_VERSION: &str = "GOOGLE_GENAI_API_VERSION";
}

/// An API key. It is a secret: `Debug` prints `ApiKey(<redacted>)` and there is no `Display`.
///
/// The only way to the text is [`ApiKey::expose`], named so that every use is
/// easy to find and to review.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; `None` when it is empty after trimming (empty counts as unset).
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let key = key.into();
        let trimmed = key.trim();
        (!trimmed.is_empty()).then(|| ApiKey(trimmed.to_string()))
    }

    /// The key itself, for the one place that must send it (the request header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What the environment says about how to reach Gemini.
///
/// `Debug` shows the key as `ApiKey(<redacted>)` and the base URL without its password.
#[derive(Clone)]
pub struct Config {
    /// The key, if one was set.
    pub api_key: Option<ApiKey>,
    /// Which variable the key came from (`GOOGLE_API_KEY` or `GEMINI_API_KEY`).
    pub key_source: Option<&'static str>,
    /// The base URL from `GOOGLE_GEMINI_BASE_URL`; `None` means the real API.
    pub base_url: Option<Url>,
    /// The API version (`v1beta` unless `GOOGLE_GENAI_API_VERSION` says otherwise).
    pub api_version: String,
    /// The `.env` file that was read, if any.
    pub dotenv: Option<PathBuf>,
    /// One-line messages for the user (printed by [`Config::from_env`]).
    pub notices: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base_url = self.base_url.as_ref().map(|url| redact_url(url.as_str()));
        f.debug_struct("Config")
            .field("api_key", &self.api_key)
            .field("key_source", &self.key_source)
            .field("base_url", &base_url)
            .field("api_version", &self.api_version)
            .field("dotenv", &self.dotenv)
            .field("notices", &self.notices)
            .finish()
    }
}

impl Config {
    /// Reads the process environment plus a `.env` file from the working
    /// directory or above, and prints the notices to stderr.
    pub fn from_env() -> Result<Config> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Config(format!("cannot read the working directory: {e}")))?;
        let config = Config::from_env_in(&cwd, |name| std::env::var(name).ok())?;
        for notice in &config.notices {
            eprintln!("{notice}");
        }
        Ok(config)
    }

    /// Like [`from_env`](Self::from_env), with the directory and the environment
    /// given (so tests use a tempdir and a map), and without printing.
    ///
    /// The real environment wins over the `.env` file, as dotenvy does.
    pub fn from_env_in(dir: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let dotenv = load_dotenv(dir)?;
        let file_vars = dotenv.as_ref().map(|(_, vars)| vars);
        let mut config = Config::from_lookup(|name| {
            non_empty(env(name)).or_else(|| file_vars.and_then(|v| v.get(name).cloned()))
        })?;
        config.dotenv = dotenv.map(|(path, _)| path);
        Ok(config)
    }

    /// Builds the configuration from any lookup function (no file, no printing).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let get = |name: &str| non_empty(lookup(name));
        let mut notices = Vec::new();
        let google = get(vars::GOOGLE_API_KEY).and_then(ApiKey::new);
        let gemini = get(vars::GEMINI_API_KEY).and_then(ApiKey::new);
        let (api_key, key_source) = match (google, gemini) {
            (Some(key), Some(_)) => {
                notices.push(
                    "Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY."
                        .to_string(),
                );
                (Some(key), Some(vars::GOOGLE_API_KEY))
            }
            (Some(key), None) => (Some(key), Some(vars::GOOGLE_API_KEY)),
            (None, Some(key)) => (Some(key), Some(vars::GEMINI_API_KEY)),
            (None, None) => (None, None),
        };
        let base_url = get(vars::BASE_URL)
            .map(|text| parse_base_url(&text))
            .transpose()?;
        if let Some(url) = base_url.as_ref().filter(|u| sends_in_clear(u)) {
            notices.push(format!(
                "warning: {} is plain http:// to {}: the API key would travel unencrypted; use https://",
                vars::BASE_URL,
                url.host_str().unwrap_or("?")
            ));
        }
        let api_version = match get(vars::API_VERSION) {
            Some(v) if is_version(&v) => v,
            Some(v) => {
                return Err(Error::Config(format!(
                    "{}={v:?} is not an API version (expected v1beta or v1)",
                    vars::API_VERSION
                )));
            }
            None => DEFAULT_API_VERSION.to_string(),
        };
        Ok(Config {
            api_key,
            key_source,
            base_url,
            api_version,
            dotenv: None,
            notices,
        })
    }

    /// The base URL to use: the override, or the real API.
    pub fn effective_base_url(&self) -> Url {
        self.base_url
            .clone()
            .unwrap_or_else(|| Url::parse(DEFAULT_BASE_URL).expect("the default URL is valid"))
    }
}

/// Empty counts as unset (PY and JS both treat `""` as no key).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Parses `GOOGLE_GEMINI_BASE_URL`, refusing anything that cannot be a server address.
///
/// The message quotes the URL without its password (all of what was meant
/// as user name and password, however a parser split it), and says to
/// percent-encode a password that a parser misreads.
pub fn parse_base_url(text: &str) -> Result<Url> {
    let bad = |why: String| {
        Error::Config(format!(
            "{}={:?} is not a usable base URL ({why}); expected e.g. http://127.0.0.1:8080 or {DEFAULT_BASE_URL}",
            vars::BASE_URL,
            redact_url(text)
        ))
    };
    let url = parse_url(text).map_err(bad)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(bad("no host".to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment".to_string()));
    }
    Ok(url)
}

/// True when the URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// True when a key sent to this URL would cross a network unencrypted.
fn sends_in_clear(url: &Url) -> bool {
    url.scheme() == "http" && !is_loopback(url)
}

/// `v1`, `v1beta`, `v1alpha`...: letters and digits only, so it is safe as a path segment.
fn is_version(text: &str) -> bool {
    text.starts_with('v') && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Finds `.env` in `dir` or a parent and reads it without touching the process environment.
///
/// A file that exists but cannot be read or parsed is an error naming the
/// file and the problem: silently ignoring it would leave the user wondering
/// why their key is not used.
fn load_dotenv(dir: &Path) -> Result<Option<(PathBuf, HashMap<String, String>)>> {
    let Some(path) = dir
        .ancestors()
        .map(|d| d.join(".env"))
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    let unreadable = |e: dotenvy::Error| {
        Error::Config(format!(
            "cannot use {}: {}",
            path.display(),
            dotenv_problem(&e)
        ))
    };
    let mut vars = HashMap::new();
    for item in dotenvy::from_path_iter(&path).map_err(unreadable)? {
        let (name, value) = item.map_err(unreadable)?;
        vars.insert(name, value);
    }
    Ok(Some((path, vars)))
}

/// What is wrong with a `.env` file, without quoting it.
///
/// dotenvy's parse error quotes the whole offending line, and that line is
/// typically `GEMINI_API_KEY=...`: printing it would print the key.
fn dotenv_problem(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(line, index) => {
            let name = line.split('=').next().unwrap_or("").trim();
            let name = if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                name
            } else {
                "?"
            };
            format!(
                "the line setting {name} cannot be parsed (at character {index}; check its quotes); the line is not shown as it may hold a secret"
            )
        }
        other => crate::error::condense(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_bad_base_url_never_quotes_its_password() {
        for text in [
            "ftp://ann:hunter2@proxy/",
            "https://ann:hunter2@/x",
            "http://:hunter2@h?password=hunter2",
        ] {
            let message = parse_base_url(text).unwrap_err().to_string();
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.contains("***"), "{message}");
        }
    }

    #[test]
    fn google_key_wins_and_says_so() {
        let c = Config::from_lookup(lookup(&[("GOOGLE_API_KEY", "g"), ("GEMINI_API_KEY", "m")]))
            .unwrap();
        assert_eq!(c.api_key.unwrap().expose(), "g");
        assert_eq!(c.key_source, Some("GOOGLE_API_KEY"));
        assert_eq!(
            c.notices,
            vec!["Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY."]
        );
    }

    #[test]
    fn gemini_key_alone_and_empty_counts_as_unset() {
        let c = Config::from_lookup(lookup(&[("GOOGLE_API_KEY", ""), ("GEMINI_API_KEY", "m")]))
            .unwrap();
        assert_eq!(c.api_key.unwrap().expose(), "m");
        assert_eq!(c.key_source, Some("GEMINI_API_KEY"));
        assert!(c.notices.is_empty());
        let none = Config::from_lookup(lookup(&[("GOOGLE_API_KEY", "  ")])).unwrap();
        assert!(none.api_key.is_none());
    }

    #[test]
    fn key_is_trimmed_and_redacted() {
        let c = Config::from_lookup(lookup(&[("GEMINI_API_KEY", " sekrit-123\n")])).unwrap();
        assert_eq!(c.api_key.as_ref().unwrap().expose(), "sekrit-123");
        let debug = format!("{c:?}");
        assert!(!debug.contains("sekrit"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn base_url_defaults_and_overrides() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.base_url, None);
        assert_eq!(
            c.effective_base_url().as_str(),
            "https://generativelanguage.googleapis.com/"
        );
        assert_eq!(c.api_version, "v1beta");
        let c = Config::from_lookup(lookup(&[("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")]))
            .unwrap();
        assert_eq!(c.base_url.unwrap().as_str(), "http://127.0.0.1:9/");
        assert!(c.notices.is_empty(), "loopback http is fine");
    }

    #[test]
    fn bad_base_urls_are_one_line_errors() {
        for bad in [
            "not a url",
            "ftp://example.com",
            "127.0.0.1:8080",
            "http://h/?key=x",
        ] {
            let err = Config::from_lookup(lookup(&[("GOOGLE_GEMINI_BASE_URL", bad)])).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Config(_)), "{bad}");
            assert!(
                text.contains("GOOGLE_GEMINI_BASE_URL") && !text.contains('\n'),
                "{text}"
            );
        }
    }

    #[test]
    fn plain_http_to_a_remote_host_warns() {
        let c = Config::from_lookup(lookup(&[(
            "GOOGLE_GEMINI_BASE_URL",
            "http://proxy.example:80",
        )]))
        .unwrap();
        assert_eq!(c.notices.len(), 1);
        assert!(c.notices[0].contains("unencrypted"));
        for local in [
            "http://localhost:1",
            "http://[::1]:1",
            "https://proxy.example",
        ] {
            let c = Config::from_lookup(lookup(&[("GOOGLE_GEMINI_BASE_URL", local)])).unwrap();
            assert!(c.notices.is_empty(), "{local}");
        }
    }

    #[test]
    fn api_version_override_is_validated() {
        let c = Config::from_lookup(lookup(&[("GOOGLE_GENAI_API_VERSION", "v1")])).unwrap();
        assert_eq!(c.api_version, "v1");
        assert!(Config::from_lookup(lookup(&[("GOOGLE_GENAI_API_VERSION", "v1/../x")])).is_err());
    }
}
