//! A small Gemini client: generate (unary and streamed), count tokens, list and get models;
//! any other endpoint of the host (Batch Mode, files) through [`Client::raw`] (`client/raw.rs`).
//!
//! It speaks the REST API directly with reqwest (docs/wire.md#endpoints and #authentication): the URL is
//! `{base_url}/{api_version}/models/{model}:{method}`, and the key travels in
//! the `x-goog-api-key` header, never in the URL, because query strings end up
//! in proxy and server logs. The header value is marked sensitive so that
//! hyper and any debug output of the request leave it out, and our own
//! `tracing` events record the method, model, status and latency only.
//!
//! Connections: over HTTPS the client keeps as many HTTP/2 connections as the requests in
//! flight need, 100 streams each ([`crate::pool`]), and trusts what the system trusts
//! ([`crate::trust`]). Proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and
//! `NO_PROXY` (reqwest reads them; [`crate::proxy`] checks them first and keeps their
//! passwords secret), and an HTTPS request goes through the proxy as a tunnel.
//!
//! Every call has a deadline ([`ClientConfig::timeout`]) that covers the
//! whole exchange, a streamed body included: a server trickling one byte a
//! second cannot stretch a request past it.
//!
//! What comes back is untrusted. A response is read up to a size no real
//! answer of the model reaches ([`response_limit`]), one error body up to
//! [`ERROR_BODY_LIMIT`]; past that the request fails and the process lives
//! on. And every text that came from the network passes through the
//! client's [`Redactor`] before a caller sees it, so a proxy that echoes the
//! request headers cannot get the key printed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{ApiKey, PLACEHOLDER_KEY};
use crate::error::{Error, Result, condense};
use crate::payload;
use crate::pool::{LaneGuard, Pool};
use crate::redact::{MISREAD, PERCENT_ENCODE, Redactor, misread_userinfo, redact_url, url_secrets};
use crate::route::Route;
use crate::sse::SseDecoder;
use crate::trust::{TlsRoots, client_tls, untrusted_hint};
use crate::types::{
    CountTokensRequest, CountTokensResponse, GenerateContentRequest, GenerateContentResponse,
    ListModelsResponse, Model,
};

mod raw;
pub use raw::{RawRequest, RawResponse};

/// The header the SDKs send the key in (PY `_api_client.py`, JS `_node_auth.ts`).
const API_KEY_HEADER: &str = "x-goog-api-key";

/// A guard against a server that hands out page tokens forever.
const MAX_MODEL_PAGES: usize = 1000;

/// A guard against a model list that never ends (Google lists a few dozen).
const MAX_MODELS: usize = 10_000;

/// How much of an error body is read: a real one is a few kilobytes; the
/// rest of a larger one would only be cut from the message anyway.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The output limit assumed before the model is known: the largest of
/// today's Gemini models (`outputTokenLimit` 65536).
const DEFAULT_OUTPUT_TOKENS: u32 = 65_536;

/// The most output tokens believed from a model description: four times the
/// largest real limit, so a server cannot talk the cap up without bound.
const MAX_OUTPUT_TOKENS: u32 = 262_144;

/// Bytes of response allowed per output token. A token is about four
/// characters; escaping, multi-byte text, several candidates, thought
/// summaries and every streamed chunk's repeated metadata are the headroom.
const BYTES_PER_TOKEN: usize = 128;

/// The smallest cap, for models with a small output limit (and the model list).
const MIN_RESPONSE_LIMIT: usize = 4 * 1024 * 1024;

/// The largest response accepted for a model whose `outputTokenLimit` is
/// `output_tokens` (`None`: not known yet).
///
/// 65536 tokens give 8 MiB, some thirty times the text of the longest
/// possible answer (65536 tokens of about 4 bytes); the believed limit is
/// capped, so the result never passes 32 MiB. It bounds a unary body and one
/// streamed event; a whole stream may bring four times as much.
pub fn response_limit(output_tokens: Option<u32>) -> usize {
    let tokens = output_tokens
        .unwrap_or(DEFAULT_OUTPUT_TOKENS)
        .min(MAX_OUTPUT_TOKENS);
    (tokens as usize)
        .saturating_mul(BYTES_PER_TOKEN)
        .max(MIN_RESPONSE_LIMIT)
}

/// How to reach the API.
///
/// `Debug` shows the base URL without its password (and the key as `ApiKey(<redacted>)`).
#[derive(Clone)]
pub struct ClientConfig {
    /// Scheme, host, port and optional path prefix, without the version (`https://generativelanguage.googleapis.com`).
    pub base_url: Url,
    /// The key; `None` sends no key header (the server answers 403).
    pub api_key: Option<ApiKey>,
    /// `v1beta` (the SDKs' default) or `v1`.
    pub api_version: String,
    /// Deadline of one whole call, a streamed body included.
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &redact_url(self.base_url.as_str()))
            .field("api_key", &self.api_key)
            .field("api_version", &self.api_version)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A stream of response chunks, as [`Client::stream_generate_content`] returns it.
///
/// Boxed so that it has a name a caller can store, and `Unpin` so that
/// `stream.next().await` works without pinning.
pub type ResponseStream = Pin<Box<dyn Stream<Item = Result<GenerateContentResponse>> + Send>>;

/// A handle to the Gemini API. Cheap to clone; clones share one connection pool.
///
/// It is `Clone` with an `Arc` inside because a batch sends many requests
/// from many tasks: each task takes its own clone, and all of them reuse the
/// same pool of TCP/TLS connections (and HTTP/2 streams) instead of opening
/// a new connection, with its handshakes, for every request.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The per-call deadline: [`ClientConfig::timeout`], or another one
    /// given to [`Client::with_timeout`].
    timeout: Duration,
}

/// What the clones share.
struct Inner {
    /// The connections ("lanes"), each a reqwest client; see [`crate::pool`].
    pool: Pool,
    /// `base_url` with the version segment appended: every endpoint is below it.
    root: Url,
    /// The key as a ready, sensitive header value.
    key: Option<HeaderValue>,
    config: ClientConfig,
    /// Takes the key out of whatever the server sends back.
    redactor: Redactor,
    /// The server, and the proxy in between: whom a failure is blamed on.
    route: Route,
    /// The largest `outputTokenLimit` of a model this client has looked up (0: none yet).
    output_tokens: AtomicU32,
    /// A response cap set by the user (0: derived from the model).
    max_response: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `config` prints its key as ApiKey(<redacted>); the header value is
        // not printed at all; a password in the base URL is scrubbed.
        let config = ClientConfig {
            timeout: self.timeout,
            ..self.inner.config.clone()
        };
        let config = self.redactor().text(&format!("{config:?}"));
        write!(f, "Client {{ config: {config}, .. }}")
    }
}

impl Client {
    /// Builds a client that trusts what the system trusts (see [`crate::trust`]). Fails on a
    /// base URL that is not http(s), an API version that is not a plain path segment, a key
    /// that cannot be sent in a header, or an unreadable `SSL_CERT_FILE`.
    pub fn new(config: ClientConfig) -> Result<Client> {
        Client::with_roots(config, TlsRoots::System)
    }

    /// Builds a client that trusts the given roots (the built-in emulator's CA).
    ///
    /// Also fails on a proxy variable (`HTTPS_PROXY`...) whose password the HTTP stack would
    /// misread and silently skip (see [`crate::proxy`]).
    pub fn with_roots(config: ClientConfig, roots: TlsRoots) -> Result<Client> {
        let root = endpoint_root(&config.base_url, &config.api_version)?;
        let key = config.api_key.as_ref().map(key_header).transpose()?;
        // Read from where reqwest reads them, at the moment it does (when a lane is built).
        let proxy_secrets = crate::proxy::secrets(|name| std::env::var(name).ok())?;
        // rustls (ring) is the only TLS backend compiled in (no OpenSSL): the
        // configuration is built here and shared by every connection.
        let pool = Pool::new(
            &config.base_url,
            client_tls(&roots)?,
            concat!("gemini-tutorial-common/", env!("CARGO_PKG_VERSION")),
        )?;
        let redactor = secrets_of(&config, proxy_secrets);
        let route = Route::new(&config.base_url);
        let timeout = config.timeout;
        let inner = Inner {
            pool,
            root,
            key,
            config,
            redactor,
            route,
            output_tokens: AtomicU32::new(0),
            max_response: AtomicUsize::new(0),
        };
        Ok(Client {
            inner: Arc::new(inner),
            timeout,
        })
    }

    /// The base URL requests go to (without the version segment).
    pub fn base_url(&self) -> &Url {
        &self.inner.config.base_url
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same client, its connections shared, with another per-call
    /// deadline: a Flex answer may take minutes where a standard one takes
    /// seconds, and both go through one pool.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            inner: self.inner.clone(),
            timeout,
        }
    }

    /// Sets the largest response accepted, in bytes, instead of the cap
    /// derived from the model's output limit ([`response_limit`]).
    pub fn set_max_response(&self, bytes: usize) {
        self.inner.max_response.store(bytes, Ordering::Relaxed);
    }

    /// The largest response (or streamed event) this client reads now.
    pub fn max_response(&self) -> usize {
        match self.inner.max_response.load(Ordering::Relaxed) {
            0 => {
                let known = self.inner.output_tokens.load(Ordering::Relaxed);
                response_limit((known > 0).then_some(known))
            }
            bytes => bytes,
        }
    }

    /// What the client takes out of every text from the network (the key).
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// How many connection lanes are open now: over HTTP/2, about one per 100 requests in
    /// flight (see [`crate::pool`]); over HTTP/1.1, always 1.
    pub fn connections(&self) -> usize {
        self.inner.pool.lanes()
    }

    /// `POST models/{model}:generateContent`: one whole answer.
    pub async fn generate_content(
        &self,
        model: &str,
        req: &GenerateContentRequest,
    ) -> Result<GenerateContentResponse> {
        let url = self.model_url(model, Some("generateContent"))?;
        let body = encode(req)?;
        self.unary(
            Method::POST,
            url,
            model,
            Some(body),
            "generateContent response",
        )
        .await
    }

    /// `POST models/{model}:streamGenerateContent?alt=sse`: the answer in chunks, each as it arrives.
    ///
    /// Returns once the response headers are in; an error status (bad key,
    /// unknown model, 429) is returned here, with its details. Each chunk
    /// holds only the new text. An `{"error":...}` written into the stream
    /// becomes an `Err` item, as does a body cut in the middle of an event;
    /// the stream ends after an error.
    pub async fn stream_generate_content(
        &self,
        model: &str,
        req: &GenerateContentRequest,
    ) -> Result<ResponseStream> {
        let mut url = self.model_url(model, Some("streamGenerateContent"))?;
        url.query_pairs_mut().append_pair("alt", "sse");
        let body = encode(req)?;
        let timeout = self.timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let answered = match self.prepare(Method::POST, url, Some(body)) {
            Ok(prepared) => self.answer(prepared, model, deadline).await,
            Err(e) => Err(e),
        };
        let (response, lane) = answered.map_err(|e| self.redactor().error(e))?;
        let limit = self.max_response();
        let chunks = ChunkStream {
            _lane: lane,
            body: Box::pin(response.bytes_stream()),
            decoder: SseDecoder::with_limit(limit),
            ready: VecDeque::new(),
            done: false,
            timeout,
            deadline,
            received: 0,
            limit: limit.saturating_mul(STREAM_LIMIT_FACTOR),
            redactor: self.redactor().clone(),
        };
        Ok(Box::pin(futures_util::stream::unfold(
            chunks,
            |mut chunks| async move { chunks.next_chunk().await.map(|item| (item, chunks)) },
        )))
    }

    /// `POST models/{model}:countTokens` with the request's `contents` (the only key the Developer API accepts).
    pub async fn count_tokens(
        &self,
        model: &str,
        req: &GenerateContentRequest,
    ) -> Result<CountTokensResponse> {
        let url = self.model_url(model, Some("countTokens"))?;
        let body = encode(&CountTokensRequest {
            contents: req.contents.clone(),
        })?;
        self.unary(Method::POST, url, model, Some(body), "countTokens response")
            .await
    }

    /// `GET models`, following `nextPageToken` until the last page (server's page size).
    pub async fn list_models(&self) -> Result<Vec<Model>> {
        self.list_models_with(None).await
    }

    /// Like [`list_models`](Self::list_models), asking for pages of `page_size` models.
    pub async fn list_models_paged(&self, page_size: u32) -> Result<Vec<Model>> {
        self.list_models_with(Some(page_size)).await
    }

    /// Follows the page tokens; stops on a missing, empty or repeated token.
    async fn list_models_with(&self, page_size: Option<u32>) -> Result<Vec<Model>> {
        let mut models = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let page = self.list_models_page(page_size, token.as_deref()).await?;
            models.extend(page.models);
            if models.len() > MAX_MODELS {
                return Err(Error::decode(
                    "models list",
                    format!("more than {MAX_MODELS} models"),
                    b"",
                ));
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(models),
            }
        }
        Err(Error::decode(
            "models list",
            format!("still more pages after {MAX_MODEL_PAGES}"),
            b"",
        ))
    }

    /// `GET models?pageSize=&pageToken=`: one page of the model list.
    pub async fn list_models_page(
        &self,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<ListModelsResponse> {
        let mut url = self.model_url("", None)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(size) = page_size {
                query.append_pair("pageSize", &size.to_string());
            }
            if let Some(token) = page_token {
                query.append_pair("pageToken", token);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.unary(Method::GET, url, "-", None, "models list").await
    }

    /// `GET models/{model}`: one model's description (404 if unknown).
    ///
    /// Its `outputTokenLimit` is remembered: it sets how large a response
    /// this client accepts from then on ([`Client::max_response`]).
    pub async fn get_model(&self, model: &str) -> Result<Model> {
        let url = self.model_url(model, None)?;
        let found: Model = self.unary(Method::GET, url, model, None, "model").await?;
        if let Some(tokens) = found.output_token_limit {
            self.inner
                .output_tokens
                .fetch_max(tokens.min(MAX_OUTPUT_TOKENS), Ordering::Relaxed);
        }
        Ok(found)
    }

    /// The URL of `models/{model}[:{method}]`, or of `models` when `model` is empty.
    ///
    /// The model is pushed as one path segment, so a stray `/`, `?` or `#` is
    /// percent-encoded instead of changing the request.
    pub fn model_url(&self, model: &str, method: Option<&str>) -> Result<Url> {
        let mut url = self.inner.root.clone();
        let id = model.trim().strip_prefix("models/").unwrap_or(model.trim());
        {
            // The root was checked to be a base URL in `Client::new`.
            let mut path = url
                .path_segments_mut()
                .map_err(|_| Error::Config("the base URL cannot take a path".into()))?;
            path.push("models");
            match (id.is_empty(), method) {
                (true, None) => {}
                (true, Some(_)) => return Err(Error::Config("the model name is empty".into())),
                (false, None) => {
                    path.push(id);
                }
                (false, Some(method)) => {
                    path.push(&format!("{id}:{method}"));
                }
            }
        }
        Ok(url)
    }

    /// One request with a JSON answer, under the deadline.
    ///
    /// Not an `async fn`: the request is prepared here, when the caller's future first runs,
    /// and only what must live across `.await` goes into the future that is returned (see
    /// [`Prepared`]). A batch holds one such future per request in flight, ten thousand at
    /// once in step 3, so its size is memory.
    fn unary<'a, T: DeserializeOwned + 'a>(
        &'a self,
        method: Method,
        url: Url,
        model: &'a str,
        body: Option<Vec<u8>>,
        what: &'static str,
    ) -> impl Future<Output = Result<T>> + 'a {
        let prepared = self.prepare(method, url, body);
        async move {
            let deadline = tokio::time::Instant::now() + self.timeout();
            let result = match prepared {
                Ok(prepared) => self.read_answer(prepared, model, deadline, what).await,
                Err(e) => Err(e),
            };
            result.map_err(|e| self.redactor().error(e))
        }
    }

    /// The rest of [`Client::unary`]: the response by `deadline`, its body within the cap,
    /// typed.
    async fn read_answer<T: DeserializeOwned>(
        &self,
        prepared: Prepared<impl Future<Output = reqwest::Result<reqwest::Response>>>,
        model: &str,
        deadline: tokio::time::Instant,
        what: &'static str,
    ) -> Result<T> {
        let timeout = self.timeout();
        let (response, lane) = self.answer(prepared, model, deadline).await?;
        let limit = self.max_response();
        let bytes = match tokio::time::timeout_at(deadline, read_capped(response, limit)).await {
            Err(_) => return Err(Error::Timeout(timeout)),
            Ok(Err(e)) => return Err(transport_error(e, &self.inner.route, timeout)),
            Ok(Ok(Capped::Over(_))) => return Err(Error::TooLarge { what, limit }),
            Ok(Ok(Capped::Whole(bytes))) => bytes,
        };
        drop(lane);
        payload::parse(&bytes, what, self.redactor())
    }

    /// Takes a lane and builds the request on it (nothing leaves until it is awaited).
    fn prepare(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Prepared<impl Future<Output = reqwest::Result<reqwest::Response>> + use<>>> {
        let lane = self.inner.pool.acquire()?;
        let mut request = lane.http().request(method.clone(), url);
        if let Some(key) = &self.inner.key {
            request = request.header(API_KEY_HEADER, key.clone());
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        Ok(Prepared {
            response: request.send(),
            lane,
            method,
            started: Instant::now(),
        })
    }

    /// Waits, until `deadline`, for the response to a prepared request: the response if its
    /// status is a success, else the API error. The lane stays taken until the returned guard
    /// is dropped, after the body.
    async fn answer(
        &self,
        prepared: Prepared<impl Future<Output = reqwest::Result<reqwest::Response>>>,
        model: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(reqwest::Response, LaneGuard)> {
        let timeout = self.timeout();
        let Prepared {
            response,
            lane,
            method,
            started,
        } = prepared;
        let result = tokio::time::timeout_at(deadline, response).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let response = match result {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                tracing::debug!(%method, model, status = "transport error", latency_ms, "gemini request");
                return Err(transport_error(e, &self.inner.route, timeout));
            }
            Err(_) => {
                tracing::debug!(%method, model, status = "timeout", latency_ms, "gemini request");
                return Err(Error::Timeout(timeout));
            }
        };
        self.inner.pool.saw_version(response.version());
        let status = response.status();
        tracing::debug!(%method, model, status = status.as_u16(), latency_ms, "gemini request");
        if status.is_success() {
            return Ok((response, lane));
        }
        // Boxed: the refusal's state lives on the heap only when there is one, instead of
        // in every request's future.
        Err(Box::pin(self.refusal(response, deadline)).await)
    }

    /// The API error of a response with an error status. An error body is small; only its
    /// start is read, and a failure to read it still leaves the status.
    async fn refusal(&self, response: reqwest::Response, deadline: tokio::time::Instant) -> Error {
        let status = response.status();
        let body = match tokio::time::timeout_at(deadline, read_capped(response, ERROR_BODY_LIMIT))
            .await
        {
            Err(_) => return Error::Timeout(self.timeout()),
            Ok(Ok(Capped::Whole(body) | Capped::Over(body))) => body,
            Ok(Err(_)) => Vec::new(),
        };
        payload::api_error(Some(status.as_u16()), &body, self.redactor())
    }
}

/// A request built on its lane, not yet sent: reqwest's future for the response (nothing
/// leaves before it is first polled), the lane it holds, and what its log line names.
///
/// Small on purpose (the URL, headers and body are inside reqwest's boxed future): it is
/// what every request in flight keeps until its answer is in.
struct Prepared<F> {
    response: F,
    lane: LaneGuard,
    method: Method,
    started: Instant,
}

/// The endpoint root: `base_url` + `/{version}`, keeping any path prefix of the base.
///
/// The base URL is quoted without its password (it is a `Url` the caller built, not
/// necessarily one that went through [`crate::config::parse_base_url`]).
fn endpoint_root(base: &Url, version: &str) -> Result<Url> {
    let shown = redact_url(base.as_str());
    if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
        return Err(Error::Config(format!(
            "the base URL {shown} is not an http(s) server address"
        )));
    }
    if misread_userinfo(base) {
        return Err(Error::Config(format!(
            "the base URL {shown} cannot be used: {MISREAD}; {PERCENT_ENCODE}"
        )));
    }
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::Config(format!(
            "{version:?} is not an API version (expected v1beta or v1)"
        )));
    }
    let mut root = base.clone();
    root.set_query(None);
    root.set_fragment(None);
    root.path_segments_mut()
        .map_err(|_| Error::Config(format!("the base URL {shown} cannot take a path")))?
        .pop_if_empty()
        .push(version);
    Ok(root)
}

/// The key as a header value, marked sensitive so it is never printed by the HTTP stack.
///
/// Only visible ASCII is accepted. `HeaderValue` itself would take a space
/// or the bytes of `é`, and the server would then answer with a confusing
/// 403 "unregistered callers"; no real key contains such characters, so a
/// key that does is a copy-paste accident, and saying so up front is clearer.
fn key_header(key: &ApiKey) -> Result<HeaderValue> {
    let invalid = || {
        Error::Config(format!(
            "the API key (from {}) contains characters that cannot be sent in an HTTP header",
            crate::error::KEY_VARS
        ))
    };
    if !key.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    let mut value = HeaderValue::from_str(key.expose()).map_err(|_| invalid())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Serializes a request body.
fn encode<T: serde::Serialize>(req: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(req).map_err(|e| Error::Config(format!("cannot encode the request: {e}")))
}

/// Every secret the client knows, for its [`Redactor`]: the key, the
/// password of the base URL (an authenticating reverse proxy's, say) and
/// those of the proxy variables, each in every form it can come back in
/// ([`url_secrets`]: as written, decoded, and as the `Basic` header value the
/// HTTP stack sends for it).
///
/// The emulator's placeholder key is public (it is in this crate's source)
/// and a common word; taking it out of answers would only garble them.
fn secrets_of(config: &ClientConfig, proxy_secrets: Vec<String>) -> Redactor {
    let key = config
        .api_key
        .as_ref()
        .map(ApiKey::expose)
        .filter(|key| *key != PLACEHOLDER_KEY)
        .map(str::to_string);
    let base_url = url_secrets(config.base_url.as_str());
    Redactor::new(key.into_iter().chain(base_url).chain(proxy_secrets))
}

/// A body read up to a cap.
enum Capped {
    /// The whole body.
    Whole(Vec<u8>),
    /// The body went past the cap: what was read up to it (the rest is left unread).
    Over(Vec<u8>),
}

/// Reads a body chunk by chunk, stopping once it passes `limit` bytes.
///
/// `response.bytes()` would buffer whatever the server sends; an endless
/// body would then grow until the process is killed.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> reqwest::Result<Capped> {
    // Sized for the announced length (within the cap, and no more than a typical answer
    // before any byte has arrived), so a body is not copied as it grows.
    let announced = response.content_length().unwrap_or(0);
    let capacity = usize::try_from(announced)
        .unwrap_or(usize::MAX)
        .min(limit)
        .min(INITIAL_BODY_CAPACITY);
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Over(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(body))
}

/// The most room set aside for a body before it arrives: a server's `content-length` is
/// believed only this far, larger bodies grow as they come.
const INITIAL_BODY_CAPACITY: usize = 256 * 1024;

/// Classifies a reqwest error into the variant that tells the user what to
/// do: the proxy's or the base URL's fault when the route can tell (see
/// [`Route::explain`]), else by what failed.
fn transport_error(e: reqwest::Error, route: &Route, timeout: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout(timeout);
    }
    if let Some(detail) = out_of_files(&e) {
        return Error::OutOfFiles(detail);
    }
    let host = route.host().to_string();
    let is_connect = e.is_connect();
    let mut detail = error_chain(&e.without_url());
    if let Some(error) = route.explain(&detail, is_connect) {
        return error;
    }
    let lower = detail.to_ascii_lowercase();
    if ["certificate", "tls", "handshake"]
        .iter()
        .any(|w| lower.contains(w))
    {
        if [
            "unknownissuer",
            "invalid peer certificate",
            "notvalidforname",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            detail = format!("{detail}: {}", untrusted_hint());
        }
        Error::Tls { host, detail }
    } else if is_connect {
        Error::Connect { host, detail }
    } else {
        Error::Transport(detail)
    }
}

/// The OS error behind a failed connection, when it is "too many open files" (EMFILE).
///
/// Said as what it is: "cannot reach 127.0.0.1, check your network" would
/// send the user looking for a network fault that is not there.
fn out_of_files(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            // EMFILE is 24 on Linux, macOS and the BSDs.
            if io.raw_os_error() == Some(24) {
                return Some(io.to_string());
            }
        }
        source = inner.source();
    }
    error_chain(e)
        .contains("Too many open files")
        .then(|| "Too many open files (os error 24)".to_string())
}

/// The error and its sources on one line, skipping repeats.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = inner.source();
    }
    condense(&parts.join(": "))
}

/// The state of a streamed answer between two polls.
struct ChunkStream {
    /// Holds the request's place on its connection until the stream is done.
    _lane: LaneGuard,
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: SseDecoder,
    /// Payloads decoded but not yet handed out.
    ready: VecDeque<String>,
    /// Set after the body ended or an error was yielded: nothing follows.
    done: bool,
    /// The request's timeout, for the error message.
    timeout: Duration,
    /// When the whole request (headers and every chunk) must be over.
    deadline: tokio::time::Instant,
    /// Body bytes read so far.
    received: usize,
    /// The most body bytes a whole stream may bring.
    limit: usize,
    /// Takes the key out of every chunk and error.
    redactor: Redactor,
}

/// A whole stream may bring this many times the response cap: every chunk
/// repeats its metadata, so a streamed answer is larger than the same
/// answer in one piece.
const STREAM_LIMIT_FACTOR: usize = 4;

impl ChunkStream {
    /// The next chunk, reading the body only when no decoded payload is waiting.
    async fn next_chunk(&mut self) -> Option<Result<GenerateContentResponse>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                let item = payload::parse(event.as_bytes(), "stream chunk", &self.redactor)
                    .map_err(|e| self.redactor.error(e));
                if item.is_err() {
                    self.finish_with_error();
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            let next = tokio::time::timeout_at(self.deadline, self.body.next()).await;
            let decoded = match next {
                Err(_) => Err(Error::Timeout(self.timeout)),
                Ok(Some(Ok(bytes))) => self.take(&bytes),
                Ok(Some(Err(e))) => Err(Error::Stream(format!(
                    "connection lost mid-answer: {}",
                    self.redactor.text(&error_chain(&e.without_url()))
                ))),
                Ok(None) => {
                    self.done = true;
                    self.decoder
                        .finish()
                        .map(|last| last.into_iter().collect())
                        .map_err(stream_error)
                }
            };
            match decoded {
                Ok(payloads) => self.ready.extend(payloads),
                Err(e) => {
                    self.finish_with_error();
                    return Some(Err(e));
                }
            }
        }
    }

    /// Counts and decodes the next piece of the body, within the stream's cap.
    fn take(&mut self, bytes: &[u8]) -> Result<Vec<String>> {
        self.received = self.received.saturating_add(bytes.len());
        if self.received > self.limit {
            return Err(Error::TooLarge {
                what: "streamed response",
                limit: self.limit,
            });
        }
        self.decoder.push(bytes).map_err(stream_error)
    }

    /// After an error nothing more is yielded: the answer is incomplete.
    fn finish_with_error(&mut self) {
        self.done = true;
        self.ready.clear();
    }
}

/// A decoder error as the crate's error.
fn stream_error(e: crate::sse::SseError) -> Error {
    match e {
        crate::sse::SseError::TooLarge(limit) => Error::TooLarge {
            what: "stream event",
            limit,
        },
        e => Error::Stream(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(ClientConfig {
            base_url: Url::parse(base).unwrap(),
            api_key: ApiKey::new("sekrit"),
            api_version: crate::config::DEFAULT_API_VERSION.into(),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[test]
    fn urls_have_the_version_and_no_key() {
        let c = client("http://127.0.0.1:9");
        let url = c
            .model_url("models/gemini-2.5-flash", Some("generateContent"))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            c.model_url("", None).unwrap().as_str(),
            "http://127.0.0.1:9/v1beta/models"
        );
        let prefixed = client("https://proxy.example/gemini/");
        assert_eq!(
            prefixed.model_url("x", None).unwrap().as_str(),
            "https://proxy.example/gemini/v1beta/models/x"
        );
    }

    #[test]
    fn odd_model_names_cannot_escape_their_segment() {
        let c = client("http://127.0.0.1:9");
        let url = c.model_url("a/b?key=x#y", Some("generateContent")).unwrap();
        assert_eq!(
            url.path(),
            "/v1beta/models/a%2Fb%3Fkey=x%23y:generateContent"
        );
        assert_eq!(url.query(), None);
        assert!(c.model_url(" ", Some("generateContent")).is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let text = format!("{:?}", client("http://127.0.0.1:9"));
        assert!(!text.contains("sekrit"), "{text}");
    }

    #[test]
    fn a_proxy_password_in_the_base_url_is_a_secret_too() {
        let c = client("https://ann:p%40ss-w0rd@proxy.example/");
        let text = format!("{c:?}");
        assert!(!text.contains("p%40ss-w0rd"), "{text}");
        // What reqwest sends for it: base64("ann:p@ss-w0rd").
        let echo = "Authorization: Basic YW5uOnBAc3MtdzByZA== p@ss-w0rd p%40ss-w0rd sekrit";
        let clean = c.redactor().text(echo);
        for secret in ["YW5uOnBAc3MtdzByZA==", "p@ss-w0rd", "p%40ss-w0rd", "sekrit"] {
            assert!(!clean.contains(secret), "{clean}");
        }
    }

    #[test]
    fn keys_that_cannot_be_headers_are_config_errors() {
        for bad in ["bad\u{7f}key", "clé-123", "two words", "line\nbreak"] {
            let result = Client::new(ClientConfig {
                base_url: Url::parse("http://127.0.0.1:9").unwrap(),
                api_key: ApiKey::new(bad),
                api_version: "v1beta".into(),
                timeout: Duration::from_secs(1),
            });
            let Err(Error::Config(message)) = result else {
                panic!("{bad:?} should be refused");
            };
            assert!(!message.contains(bad), "{message}");
        }
    }

    #[test]
    fn the_key_header_is_sensitive_so_the_http_stack_never_prints_it() {
        let value = key_header(&ApiKey::new("sekrit-123").unwrap()).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("sekrit"), "{value:?}");
    }
}
