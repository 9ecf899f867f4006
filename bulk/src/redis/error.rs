//! What goes wrong with Redis, said in one line without its password.
//!
//! A Redis URL may carry a password (`redis://:secret@host`, or
//! `?password=` in the query); every message that names the URL, and every
//! message the Redis client writes, is scrubbed of it first.

/// `url` with any password replaced by `***`, fit to print.
pub(super) fn redact(url: &str) -> String {
    common::error::redact_url(url)
}

/// The passwords a Redis URL carries (as written and percent-decoded), so
/// that they can be taken out of any message, the Redis client's included.
pub(super) fn url_secrets(url: &str) -> Vec<String> {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut found = Vec::new();
    if let Some(scheme_end) = head.find("://") {
        let rest = &head[scheme_end + 3..];
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            // `user:pass@` or a lone `pass@` (some write the password alone).
            found.push(userinfo.split_once(':').map_or(userinfo, |(_, p)| p));
        }
    }
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=') {
            if common::error::is_password_param(name) {
                found.push(value);
            }
        }
    }
    found
        .into_iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| [s.to_owned(), common::error::percent_decode(s)])
        .collect()
}

/// Why the shared limiter could not be set up, or a call to Redis failed.
///
/// Each message is one line naming the Redis address (never its password),
/// fit to print before exiting.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL {url:?} for the shared rate limiter: {error}")]
    InvalidUrl {
        /// The URL, password removed.
        url: String,
        /// What the Redis client said, password removed. (Part of the message
        /// rather than a `source()`, so that printing the error chain does not
        /// say it twice.)
        error: String,
    },
    /// Redis did not answer at start (or could not run the scripts).
    #[error("cannot reach Redis at {url} for the shared rate limiter: {error}")]
    Unreachable {
        /// The URL, password removed.
        url: String,
        /// What the Redis client said, password removed. (Part of the message
        /// rather than a `source()`, so that printing the error chain does not
        /// say it twice.)
        error: String,
    },
    /// A command failed after connecting.
    #[error("Redis at {url} failed: {error}")]
    Redis {
        /// The URL, password removed.
        url: String,
        /// What the Redis client said, password removed. (Part of the message
        /// rather than a `source()`, so that printing the error chain does not
        /// say it twice.)
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://user:hunter2@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            url_secrets("redis://u:hun%40ter@db?password=x2"),
            ["hun%40ter", "hun@ter", "x2", "x2"]
        );
        assert!(url_secrets("redis://db:6379/0").is_empty());
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("not a url"), "not a url");
    }
}
