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
//! and saying how to write it.

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
/// stack cannot read raw.
fn check(var: &str, value: &str) -> Result<()> {
    match userinfo(value) {
        Some(userinfo) if !userinfo.chars().all(is_userinfo_char) => Err(Error::Config(format!(
            "{var}={:?} is not a proxy URL the HTTP client can read (its user name or password holds a character that must be percent-encoded), so every request would bypass the proxy; {PERCENT_ENCODE}",
            redact_url(value)
        ))),
        _ => Ok(()),
    }
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
    fn no_proxy_no_secrets() {
        assert!(secrets(env(&[])).unwrap().is_empty());
        let plain = secrets(env(&[("HTTPS_PROXY", "http://proxy.corp:3128")]));
        assert!(plain.unwrap().is_empty());
    }
}
