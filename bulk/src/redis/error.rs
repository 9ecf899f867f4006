//! What goes wrong with Redis, said in one line without its password.
//!
//! A Redis URL may carry a password (`redis://:secret@host`, or
//! `?password=` in the query); every message that names the URL, and every
//! message the Redis client writes, is scrubbed of it first, by
//! [`common::redact`], the one place that knows where a URL keeps a secret.

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
    use super::SharedError;
    use crate::redis::{RedisLimiter, Scope};

    /// Two halves of a password, with a special character between them.
    const PIECES: [&str; 2] = ["Hunter7Left", "Hunter7Right"];

    /// A port on 127.0.0.1 where nothing listens.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("an address").port()
    }

    #[tokio::test]
    async fn a_redis_password_is_never_in_a_connect_error() {
        let port = closed_port();
        let raw = ["/", "?", "#", "@", ":"];
        let encoded = ["%2F", "%3F", "%23", "%40", "%3A", "%25"];
        let mut misread = 0;
        for sep in raw.into_iter().chain(encoded) {
            let password = format!("{}{sep}{}", PIECES[0], PIECES[1]);
            for url in [
                format!("redis://:{password}@127.0.0.1:{port}/0"),
                format!("redis://default:{password}@127.0.0.1:{port}"),
                format!("redis+unix:///nonexistent/redis.sock?db=0&pass={password}"),
            ] {
                let limits = step4_ratelimit::limiter::Limits::default().with_rpm(10);
                let scope = Scope::with_project("test", "gemini-2.5-flash");
                let Err(error) = RedisLimiter::connect(&url, scope, limits).await else {
                    panic!("nothing listens at {url}");
                };
                let line = error.to_string();
                for text in [&line, &format!("{error:?}")] {
                    for piece in PIECES {
                        assert!(!text.contains(piece), "{piece} of {url} shown: {text}");
                    }
                }
                assert!(!line.contains('\n'), "{line}");
                // A password that ends the address early (a raw / ? or #)
                // is refused before connecting, with the fix.
                if matches!(sep, "/" | "?" | "#") && !url.contains("?db=0&pass=") {
                    misread += 1;
                    assert!(
                        matches!(error, SharedError::InvalidUrl { .. }),
                        "{url}: {line}"
                    );
                    assert!(line.contains("percent-encoded"), "{line}");
                } else {
                    assert!(
                        matches!(error, SharedError::Unreachable { .. }),
                        "{url}: {line}"
                    );
                }
            }
        }
        assert_eq!(misread, 3 * 2);
    }
}
