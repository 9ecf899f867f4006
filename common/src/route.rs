//! Where a request really goes, so that a failure is blamed on the right
//! thing.
//!
//! A failed connection says little by itself: "connection refused" may be
//! the server's port, or a proxy's the request never got past; "invalid
//! HTTP version parsed" is what the HTTP stack makes of a TLS server's
//! answer to plain HTTP. A user told "check the base URL" when the proxy is
//! down, or "retry the request" when the URL says `http://` to a server that
//! speaks HTTPS, looks in the wrong place. So the client keeps its [`Route`]
//! (the server, and the proxy from the environment, if the HTTP stack sends
//! the requests through one: [`crate::proxy::in_use`]) and [`Route::explain`]
//! turns the errors whose cause it can tell into the line that names it.

use url::Url;

use crate::error::Error;
use crate::redact::redact_url;

/// The way from the client to its server.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The server, as `host` or `host:port`.
    host: String,
    /// The base URL, fit to print.
    base: String,
    /// `http` or `https`.
    scheme: String,
    /// The proxy in between: its variable, and its URL fit to print.
    proxy: Option<(&'static str, String)>,
}

impl Route {
    /// The route to `base`, through the proxy the environment names, if any.
    pub(crate) fn new(base: &Url) -> Route {
        Route::with_proxy(
            base,
            crate::proxy::in_use(base, |name| std::env::var(name).ok()),
        )
    }

    fn with_proxy(base: &Url, proxy: Option<(&'static str, String)>) -> Route {
        let host = match (base.host_str(), base.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => redact_url(base.as_str()),
        };
        Route {
            host,
            base: redact_url(base.as_str()),
            scheme: base.scheme().to_string(),
            proxy,
        }
    }

    /// The server, as `host` or `host:port`.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The error a transport failure (`detail`, on one line; `is_connect`
    /// if the connection itself failed) really is, when its cause can be
    /// told: the proxy, or a base URL whose scheme the server does not
    /// speak. `None` otherwise.
    pub(crate) fn explain(&self, detail: &str, is_connect: bool) -> Option<Error> {
        if let Some((var, proxy)) = &self.proxy {
            // The connection is the proxy's: the server is only reached
            // through it (its tunnel refused, too, is the proxy's word).
            return is_connect.then(|| Error::Proxy {
                var: var.to_string(),
                proxy: proxy.clone(),
                host: self.host.clone(),
                detail: detail.to_string(),
            });
        }
        let lower = detail.to_ascii_lowercase();
        let https = self.base.replacen("http://", "https://", 1);
        if self.scheme == "http" && lower.contains("invalid http version") {
            return Some(Error::Config(format!(
                "the base URL {} is plain HTTP, but this server speaks HTTPS: use {https} (GOOGLE_GEMINI_BASE_URL)",
                self.base
            )));
        }
        let plain = self.base.replacen("https://", "http://", 1);
        if self.scheme == "https" && lower.contains("invalidcontenttype") {
            return Some(Error::Config(format!(
                "the base URL {} is HTTPS, but this server speaks plain HTTP: if it is a local server, use {plain} (GOOGLE_GEMINI_BASE_URL); else check the address",
                self.base
            )));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(base: &str, proxy: Option<(&'static str, &str)>) -> Route {
        let base = Url::parse(base).unwrap();
        Route::with_proxy(&base, proxy.map(|(var, url)| (var, url.to_string())))
    }

    #[test]
    fn a_failed_connection_through_a_proxy_is_the_proxy_s() {
        let through = route(
            "https://generativelanguage.googleapis.com",
            Some(("HTTPS_PROXY", "http://***@127.0.0.1:9")),
        );
        let error = through.explain("tcp connect error: Connection refused", true);
        let line = error.expect("the proxy's").to_string();
        assert!(
            line.contains("through the proxy http://***@127.0.0.1:9 (HTTPS_PROXY)")
                && line.contains("unset HTTPS_PROXY"),
            "{line}"
        );
        assert!(!line.contains("GOOGLE_GEMINI_BASE_URL"), "{line}");
        assert!(through.explain("connection reset", false).is_none());
    }

    #[test]
    fn a_scheme_the_server_does_not_speak_says_which_it_does() {
        let plain = route("http://127.0.0.1:8443/", None);
        let line = plain
            .explain(
                "client error (SendRequest): invalid HTTP version parsed",
                false,
            )
            .expect("explained")
            .to_string();
        assert!(
            line.contains("this server speaks HTTPS: use https://127.0.0.1:8443/"),
            "{line}"
        );
        let tls = route("https://127.0.0.1:8080/", None);
        let line = tls
            .explain("received corrupt message of type InvalidContentType", true)
            .expect("explained")
            .to_string();
        assert!(line.contains("speaks plain HTTP"), "{line}");
        assert!(plain.explain("connection refused", true).is_none());
    }
}
