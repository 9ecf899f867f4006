//! Any call on the API's host: the batch, files, upload and download
//! endpoints that [`Client`]'s typed methods do not cover.
//!
//! Batch Mode and the Files API (docs/wire.md#batch-mode, #files) are more
//! endpoints on the same host, with the same key; a tool that uses them
//! (bulk's `--mode batch`) builds its calls on [`Client::raw`], which keeps
//! the promises every other call of the client makes:
//!
//! * the key travels only in the `x-goog-api-key` header, never in a URL,
//!   and only when the request asks for it (an upload session's chunks go
//!   without it, as Google's SDKs send them);
//! * the request goes to the client's own base URL: a path, never a host,
//!   so no answer from the network can send the key elsewhere;
//! * one deadline covers the whole exchange, the body included;
//! * whatever comes back is read up to a cap and passes through the
//!   client's [`Redactor`] before the caller sees it: the body (whole, or
//!   line by line for a results file of any length), the headers, the errors.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::{API_KEY_HEADER, Capped, Client, ERROR_BODY_LIMIT, read_capped, transport_error};
use crate::error::{ApiError, Error, Result};
use crate::pool::LaneGuard;
use crate::redact::Redactor;
use crate::route::Route;

/// The longest header value handed to a caller: an upload URL is a few
/// hundred bytes; anything longer is cut.
const MAX_HEADER_VALUE: usize = 8 * 1024;

/// A call to build and send with [`Client::raw`].
#[derive(Debug, Clone)]
pub struct RawRequest {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, String)>,
    body: Option<(Bytes, &'static str)>,
    with_key: bool,
    timeout: Option<Duration>,
    what: &'static str,
}

impl RawRequest {
    /// A request of `method` to `path`, relative to the base URL
    /// (`v1beta/batches/abc`, `upload/v1beta/files`), with the key.
    pub fn new(method: Method, path: impl Into<String>) -> RawRequest {
        RawRequest {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            with_key: true,
            timeout: None,
            what: "response",
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::POST, path)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> RawRequest {
        RawRequest::new(Method::DELETE, path)
    }

    /// Adds `name=value` to the query string (never a secret: URLs end up in logs).
    pub fn query(mut self, name: &str, value: &str) -> RawRequest {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> RawRequest {
        self.headers.push((name, value.into()));
        self
    }

    /// A JSON body.
    pub fn json(self, body: &impl serde::Serialize) -> Result<RawRequest> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        Ok(self.bytes(bytes, "application/json"))
    }

    /// A body of raw bytes.
    pub fn bytes(mut self, body: impl Into<Bytes>, content_type: &'static str) -> RawRequest {
        self.body = Some((body.into(), content_type));
        self
    }

    /// Sends no key (an upload session's chunks: the session's URL is their credential).
    pub fn without_key(mut self) -> RawRequest {
        self.with_key = false;
        self
    }

    /// A deadline for this exchange instead of the client's (a large upload or download).
    pub fn timeout(mut self, timeout: Duration) -> RawRequest {
        self.timeout = Some(timeout);
        self
    }

    /// What the answer is, for error messages (`batch operation`, `results file`).
    pub fn what(mut self, what: &'static str) -> RawRequest {
        self.what = what;
        self
    }
}

/// A successful answer of [`Client::raw`], its body not read yet.
pub struct RawResponse {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    /// Bytes read but not handed out yet (the line reader's).
    pending: Vec<u8>,
    ended: bool,
    deadline: tokio::time::Instant,
    timeout: Duration,
    route: Route,
    redactor: Redactor,
    what: &'static str,
    /// Holds the request's place on its connection until the body is read.
    _lane: LaneGuard,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `{version}/{rest}`: the path of an API resource under the client's
    /// API version (`v1beta/batches`).
    pub fn api_path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.inner.config.api_version)
    }

    /// Sends `request` to the client's host and returns the answer once its
    /// headers are in; an error status is returned as the API's error, its
    /// body read up to [`ERROR_BODY_LIMIT`] and scrubbed.
    pub async fn raw(&self, request: RawRequest) -> Result<RawResponse> {
        let timeout = request.timeout.unwrap_or(self.timeout());
        let deadline = tokio::time::Instant::now() + timeout;
        let started = Instant::now();
        let url = self.raw_url(&request)?;
        let lane = self.inner.pool.acquire()?;
        let mut builder = lane.http().request(request.method.clone(), url);
        if let (true, Some(key)) = (request.with_key, &self.inner.key) {
            builder = builder.header(API_KEY_HEADER, key.clone());
        }
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some((body, content_type)) = request.body {
            builder = builder.header(CONTENT_TYPE, content_type).body(body);
        }
        let sent = tokio::time::timeout_at(deadline, builder.send()).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let path = request.path.as_str();
        let response = match sent {
            Err(_) => return Err(Error::Timeout(timeout)),
            Ok(Err(e)) => {
                tracing::debug!(method = %request.method, path, status = "transport error", latency_ms, "gemini request");
                let error = transport_error(e, &self.inner.route, timeout);
                return Err(self.redactor().error(error));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        tracing::debug!(method = %request.method, path, status = status.as_u16(), latency_ms, "gemini request");
        if !status.is_success() {
            let body =
                match tokio::time::timeout_at(deadline, read_capped(response, ERROR_BODY_LIMIT))
                    .await
                {
                    Ok(Ok(Capped::Whole(body) | Capped::Over(body))) => body,
                    _ => Vec::new(),
                };
            let body = self.redactor().body(&body);
            return Err(Error::from(ApiError::from_body(
                Some(status.as_u16()),
                &body,
            )));
        }
        Ok(RawResponse {
            status: status.as_u16(),
            headers: response.headers().clone(),
            body: Box::pin(response.bytes_stream()),
            pending: Vec::new(),
            ended: false,
            deadline,
            timeout,
            route: self.inner.route.clone(),
            redactor: self.redactor().clone(),
            what: request.what,
            _lane: lane,
        })
    }

    /// The base URL with `request`'s path and query: the host is always the
    /// client's own. A path segment that is empty, `.` or `..` is refused, so
    /// that a name from the network cannot climb out of its resource.
    fn raw_url(&self, request: &RawRequest) -> Result<url::Url> {
        let mut url = self.base_url().clone();
        url.set_query(None);
        url.set_fragment(None);
        let segments: Vec<&str> = request.path.split('/').collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(Error::Config(format!(
                "`{}` is not a resource path",
                condensed(&request.path)
            )));
        }
        url.path_segments_mut()
            .map_err(|_| Error::Config("the base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        Ok(url)
    }
}

/// A path shown in a message: at most 200 characters.
fn condensed(path: &str) -> String {
    path.chars().take(200).collect()
}

impl RawResponse {
    /// The HTTP status (a success).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value, scrubbed and cut to a bounded length; `None` when
    /// absent or not text.
    pub fn header(&self, name: &str) -> Option<String> {
        let value = self.headers.get(name)?.to_str().ok()?;
        let value: String = value.chars().take(MAX_HEADER_VALUE).collect();
        Some(self.redactor.text(&value))
    }

    /// The whole body, up to `limit` bytes (past it, [`Error::TooLarge`]), scrubbed.
    pub async fn bytes(mut self, limit: usize) -> Result<Vec<u8>> {
        let mut body = std::mem::take(&mut self.pending);
        while let Some(chunk) = self.next_chunk().await? {
            if chunk.len() > limit.saturating_sub(body.len()) {
                return Err(Error::TooLarge {
                    what: self.what,
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(self.redactor.body(&body).into_owned())
    }

    /// The body parsed as JSON (an `{"error": ...}` in it is the server's
    /// error), every string in it scrubbed; up to `limit` bytes.
    pub async fn json<T: DeserializeOwned>(self, limit: usize) -> Result<T> {
        let (what, redactor) = (self.what, self.redactor.clone());
        let body = self.bytes(limit).await?;
        crate::payload::parse(&body, what, &redactor)
    }

    /// The body parsed as JSON as it is, up to `limit` bytes, scrubbed:
    /// for a long-running operation, whose `error` field is the job's own
    /// failure, not the call's.
    pub async fn document<T: DeserializeOwned>(self, limit: usize) -> Result<T> {
        let what = self.what;
        let body = self.bytes(limit).await?;
        serde_json::from_slice(&body).map_err(|e| Error::decode(what, e, &body))
    }

    /// The next line of the body, without its `\n` (and `\r`), scrubbed;
    /// `None` at the end. A line longer than `max_line` bytes is an error:
    /// a results file of any size is read a line at a time, never whole.
    pub async fn next_line(&mut self, max_line: usize) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                if end > max_line {
                    return Err(Error::TooLarge {
                        what: self.what,
                        limit: max_line,
                    });
                }
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(self.redactor.body(&line).into_owned()));
            }
            if self.pending.len() > max_line {
                return Err(Error::TooLarge {
                    what: self.what,
                    limit: max_line,
                });
            }
            match self.next_chunk().await? {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None if self.pending.is_empty() => return Ok(None),
                None => {
                    let line = std::mem::take(&mut self.pending);
                    return Ok(Some(self.redactor.body(&line).into_owned()));
                }
            }
        }
    }

    /// The next piece of the body, under the exchange's deadline.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.ended {
            return Ok(None);
        }
        match tokio::time::timeout_at(self.deadline, self.body.next()).await {
            Err(_) => Err(Error::Timeout(self.timeout)),
            Ok(None) => {
                self.ended = true;
                Ok(None)
            }
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(e))) => {
                let error = transport_error(e, &self.route, self.timeout);
                Err(self.redactor.error(error))
            }
        }
    }
}
