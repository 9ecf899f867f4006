//! The proxy the HTTP stack takes from the environment: checked before it is
//! used, and its password kept out of every message.
//!
//! reqwest (through hyper-util) sends requests through the proxy named by
//! `HTTPS_PROXY` (for https:// servers), `HTTP_PROXY` (http://) or
//! `ALL_PROXY`, each read upper case first, then lower case, as curl does;
//! `NO_PROXY` lists the hosts that go direct. A proxy URL can carry a user
//! name and password (`http://ann:pass@proxy.corp:3128`), which the HTTP
//! stack sends as a `Proxy-Authorization: Basic` header: a proxy that echoes
//! the request into its error page would put them in front of the user. So
//! the client's `Redactor` holds them, in every form they can come back in
//! ([`url_secrets`]).
//!
//! The HTTP stack also reads a proxy URL more strictly than a browser would:
//! the user information ends at the first `@` and may hold only letters,
//! digits, `- . _ ~ ! $ & ' ( ) * + , ; = :` and `%XX` escapes. A value it
//! cannot read is skipped without a word, and the requests then go out
//! direct, past the proxy. That is silent harm (traffic that should have gone
//! through the company's proxy, or fails for no visible reason), so
//! [`secrets`] refuses such a value first, quoting it without its password
//! and saying how to write it. The same goes for a value that is not a proxy
//! URL the stack can read at all (`ftp://proxy`, `http://`, a typo with a
//! space): it is checked with the stack's own reader (hyper-util's proxy
//! matcher, which reqwest uses), not a look-alike.
//!
//! When a request fails, [`in_use`] says which proxy it went through, if
//! any, by the same rules (`NO_PROXY` included), so that the message blames
//! the proxy and names its variable rather than the server behind it.

use http::Uri;
use hyper_util::client::proxy::matcher::Matcher;
use url::Url;

use crate::error::{Error, Result};
use crate::redact::{PERCENT_ENCODE, redact_url, url_secrets, userinfo};

/// The variables the HTTP stack reads a proxy from, in the order it reads them.
pub const VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The secrets of every proxy variable that is set (read with `env`), for
/// the client's `Redactor`; an error for a value whose user name or password
/// the HTTP stack would misread.
pub fn secrets(env: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for var in VARS {
        let Some(value) = env(var).filter(|value| !value.trim().is_empty()) else {
            continue;
        };
        check(var, &value)?;
        found.extend(url_secrets(&value));
    }
    Ok(found)
}

/// Refuses a proxy URL whose user information holds a character the HTTP
/// stack cannot read raw, or that the stack cannot read as a proxy at all.
fn check(var: &str, value: &str) -> Result<()> {
    match userinfo(value) {
        Some(userinfo) if !userinfo.chars().all(is_userinfo_char) => Err(Error::Config(format!(
            "{var}={:?} is not a proxy URL the HTTP client can read (its user name or password holds a character that must be percent-encoded), so every request would bypass the proxy; {PERCENT_ENCODE}",
            redact_url(value)
        ))),
        _ if !readable(value) => Err(Error::Config(format!(
            "{var}={:?} is not a proxy URL the HTTP client can read (expected http://host:port, with user:password@ if the proxy needs them), so every request would bypass the proxy; fix it, or unset {var}",
            redact_url(value)
        ))),
        _ => Ok(()),
    }
}

/// Whether the HTTP stack reads `value` as a proxy (it skips one it cannot).
fn readable(value: &str) -> bool {
    let probe = Uri::from_static("http://example.com/");
    Matcher::builder()
        .http(value)
        .build()
        .intercept(&probe)
        .is_some()
}

/// The proxy a request to `base` goes through, as the HTTP stack chooses
/// it from the environment (read with `env`): the variable that named it,
/// and its URL fit to print. `None` when the request goes direct (no proxy
/// for its scheme, `NO_PROXY` lists the host, or a CGI environment).
pub fn in_use(base: &Url, env: impl Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    if env("REQUEST_METHOD").is_some() {
        // The stack ignores proxy variables under CGI (httpoxy).
        return None;
    }
    // Each pair is read upper case first; the first one set is the one used.
    let first = |pair: [&'static str; 2]| {
        pair.into_iter()
            .find_map(|var| env(var).map(|value| (var, value)))
    };
    let scheme_pair = match base.scheme() {
        "https" => ["HTTPS_PROXY", "https_proxy"],
        _ => ["HTTP_PROXY", "http_proxy"],
    };
    let for_scheme = first(scheme_pair);
    let all = first(["ALL_PROXY", "all_proxy"]);
    let value = |named: &Option<(&'static str, String)>| {
        named.as_ref().map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let no = first(["NO_PROXY", "no_proxy"])
        .map(|(_, v)| v)
        .unwrap_or_default();
    let matcher = Matcher::builder()
        .http(value(&for_scheme))
        .https(value(&for_scheme))
        .all(value(&all))
        .no(no)
        .build();
    let host = base.host_str()?;
    let port = base.port_or_known_default()?;
    let target: Uri = format!("{}://{host}:{port}/", base.scheme()).parse().ok()?;
    matcher.intercept(&target)?;
    // The scheme's own variable wins when the stack can read it.
    [for_scheme, all]
        .into_iter()
        .flatten()
        .find(|(_, value)| readable(value))
        .map(|(var, value)| (var, redact_url(&value)))
}

/// A character allowed raw in a URL's user information (RFC 3986 3.2.1:
/// unreserved, sub-delims, `:` and the `%` of an escape).
fn is_userinfo_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:%".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_value_the_stack_cannot_read_as_a_proxy_is_an_error() {
        for bad in [
            "ftp://proxy.corp:21",
            "http://",
            "not a url",
            "http://proxy corp:3128",
        ] {
            let error = secrets(env(&[("HTTPS_PROXY", bad)])).expect_err(bad);
            let line = error.to_string();
            assert!(
                line.contains("HTTPS_PROXY") && line.contains("unset"),
                "{line}"
            );
        }
        for good in [
            "http://proxy.corp:3128",
            "proxy.corp:3128",
            "socks5://127.0.0.1:1080",
        ] {
            assert!(secrets(env(&[("HTTPS_PROXY", good)])).is_ok(), "{good}");
        }
        let error = secrets(env(&[("ALL_PROXY", "gopher://ann:s3cret@proxy")])).expect_err("bad");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn the_proxy_in_use_is_the_one_the_stack_picks() {
        let https = Url::parse("https://generativelanguage.googleapis.com").unwrap();
        let http = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(in_use(&https, env(&[])), None);
        let both = [
            ("https_proxy", "http://ann:pw@a.corp:3128"),
            ("ALL_PROXY", "http://b.corp:3128"),
        ];
        assert_eq!(
            in_use(&https, env(&both)),
            Some(("https_proxy", "http://***@a.corp:3128".to_string()))
        );
        assert_eq!(
            in_use(&http, env(&both)),
            Some(("ALL_PROXY", "http://b.corp:3128".to_string()))
        );
        let bypassed = [
            ("HTTP_PROXY", "http://a.corp:3128"),
            ("NO_PROXY", "127.0.0.1"),
        ];
        assert_eq!(in_use(&http, env(&bypassed)), None);
        let cgi = [
            ("HTTP_PROXY", "http://a.corp:3128"),
            ("REQUEST_METHOD", "GET"),
        ];
        assert_eq!(in_use(&http, env(&cgi)), None);
    }

    #[test]
    fn no_proxy_no_secrets() {
        assert!(secrets(env(&[])).unwrap().is_empty());
        let plain = secrets(env(&[("HTTPS_PROXY", "http://proxy.corp:3128")]));
        assert!(plain.unwrap().is_empty());
    }
}
