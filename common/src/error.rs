//! Everything that can go wrong when talking to Gemini, as one enum.
//!
//! Two ideas shape this file. First, an error keeps what the server said: the
//! HTTP status, the `google.rpc` status name, the message, and the parsed
//! `details` that matter to a caller (`RetryInfo.retryDelay`, the
//! `QuotaFailure` violation, `ErrorInfo.reason`). A rate limiter needs the
//! retry delay and whether the quota was per minute or per day; a person needs
//! to know which environment variable to fix. Second, every variant prints as
//! ONE line that says what to do next, because these lines end up in progress
//! output and logs where a multi-line message breaks the layout.
//!
//! The error envelope is `{"error":{"code","message","status","details"}}`
//! (docs/wire.md#errors). Odd shapes are handled too: a body that is not JSON (a proxy's
//! HTML page), an array-wrapped envelope, the JS SDK's double-encoded message,
//! and the 2024 quota format that put the quota in `ErrorInfo.metadata`.
//!
//! `Error` is `Clone` (transport errors are kept as text) so an outcome can be
//! stored in a report and shared between tasks.
//!
//! What the network sends is untrusted, and this file is where it becomes
//! text we print. Every text field is condensed to one line and bounded; the
//! client passes each error through its [`Redactor`](crate::redact::Redactor) so no
//! secret it knows comes back out. And a `retryDelay` is only honoured up to
//! [`max_retry_delay`]: past it the request fails with
//! [`Error::RetryDelayTooLong`] instead of waiting for years (or overflowing a
//! clock).

use std::time::Duration;

use serde_json::Value;

use crate::proto_duration::parse_proto_duration;
use crate::quota::QuotaKind;

/// The crate's result type: `Error` unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The environment variables that hold a key, for messages that tell people what to set.
pub(crate) const KEY_VARS: &str = "GOOGLE_API_KEY or GEMINI_API_KEY";

/// How much of an undecodable body an error keeps: enough to recognise it, short enough for one line.
pub(crate) const SNIPPET_CHARS: usize = 160;

/// The longest `retryDelay` honoured for a per-minute (or unnamed) quota.
///
/// Google's observed delays are under a minute (a per-minute window frees
/// within one); an hour is sixty times that, yet short enough that a proxy's
/// nonsense cannot park a run, or every process sharing a Redis pause, for long.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);

/// The longest `retryDelay` honoured for a per-day quota: it resets at
/// midnight Pacific, at most a day away (25 hours on the day clocks go back).
pub const MAX_DAILY_RETRY_DELAY: Duration = Duration::from_secs(25 * 60 * 60);

/// Everything that can fail in `common`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No API key, and the base URL points at a real (non-local) server.
    #[error(
        "no API key: set {KEY_VARS} (in the environment or a .env file), or unset GOOGLE_GEMINI_BASE_URL to run offline on the built-in emulator"
    )]
    MissingKey,

    /// The configuration cannot work (bad base URL, unreadable .env, unusable key...).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The server answered with an error (a non-2xx status, or an error object inside a stream).
    ///
    /// Boxed because `ApiError` keeps a lot (message, quota, reason): inline it
    /// would make every `Result<_, Error>` ~200 bytes, on every success path too.
    /// `Error::from(api)` builds it; `error.api()` reads it.
    #[error(transparent)]
    Api(Box<ApiError>),

    /// The model is not on this server (`models.get` said 404), with the
    /// names it does serve, closest to the one asked for first (see
    /// [`closest_models`](crate::suggest::closest_models)). The server's 404 lists none, and the built-in
    /// emulator is gone once the run ends, so the error line itself must.
    #[error("{api}; this server's models, closest first: {}", .closest.join(", "))]
    UnknownModel {
        /// The server's 404.
        api: Box<ApiError>,
        /// Model ids (without `models/`), at most [`MODELS_IN_A_404`](crate::suggest::MODELS_IN_A_404).
        closest: Vec<String>,
    },

    /// The TCP connection could not be made (refused, DNS failure, unreachable network).
    #[error(
        "cannot reach {host}: {detail}; check your network connection and the base URL (GOOGLE_GEMINI_BASE_URL)"
    )]
    Connect {
        /// The host we tried to reach.
        host: String,
        /// What the transport said, on one line.
        detail: String,
    },

    /// The connection to the proxy the environment names failed (refused,
    /// unknown host, or the proxy refused the tunnel): the proxy's fault,
    /// not the server's or the base URL's.
    #[error(
        "cannot reach {host} through the proxy {proxy} ({var}): {detail}; check that the proxy is up and its address right, or unset {var} (NO_PROXY lists the hosts that go direct)"
    )]
    Proxy {
        /// The variable that named the proxy (`HTTPS_PROXY`, ...).
        var: String,
        /// The proxy's URL, without its password.
        proxy: String,
        /// The server the request was for.
        host: String,
        /// What the transport said, on one line.
        detail: String,
    },

    /// No answer within the configured per-request timeout.
    #[error("no answer within {}s; the server is slow or unreachable: retry, or raise --timeout", .0.as_secs_f64())]
    Timeout(Duration),

    /// The TLS handshake failed (certificate, protocol).
    #[error(
        "TLS error talking to {host}: {detail}; check the base URL and any proxy that intercepts HTTPS"
    )]
    Tls {
        /// The host we tried to reach.
        host: String,
        /// What the transport said, on one line.
        detail: String,
    },

    /// Any other transport failure (connection reset or closed mid-request...).
    #[error("network error: {0}; retry the request")]
    Transport(String),

    /// The server answered 2xx but the body is not what the API documents.
    #[error("could not decode the {what}: {detail} (body starts: {snippet:?})")]
    Decode {
        /// What we were decoding ("generateContent response", ...).
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
        /// The first characters of the body, so the odd answer can be recognised.
        snippet: String,
    },

    /// The server refused the prompt itself (HTTP 200 with `promptFeedback.blockReason` and no answer).
    ///
    /// The response parses fine; callers that want a blocked prompt to count
    /// as a failure (the steps' reports do) turn it into this variant.
    #[error("the prompt was blocked ({reason}); rephrase it or adjust safetySettings")]
    Blocked {
        /// The `blockReason` (`SAFETY`, `PROHIBITED_CONTENT`, ...).
        reason: String,
    },

    /// A streamed answer stopped before it was complete (cut mid-event, connection lost).
    #[error("the response stream broke: {0}; retry the request")]
    Stream(String),

    /// The server asked for a wait longer than any Gemini quota needs ([`max_retry_delay`]).
    ///
    /// Such a `retryDelay` comes from a proxy or a broken server, not from a
    /// quota: waiting it out would park the run, so the request fails instead.
    /// The API error is kept for its text; [`Error::api`] does not return it,
    /// so no caller mistakes it for a rate limit to wait out.
    #[error("{api}; a retryDelay of {}s is longer than the {}s any Gemini quota asks for, so this request is given up (check any proxy between you and the API)", .delay.as_secs(), .ceiling.as_secs())]
    RetryDelayTooLong {
        /// What the server said.
        api: Box<ApiError>,
        /// The delay it asked for.
        delay: Duration,
        /// The most this client waits for that kind of quota.
        ceiling: Duration,
    },

    /// The response was larger than any real answer of the model can be.
    ///
    /// The cap follows the model's output limit with ample headroom
    /// ([`crate::client::response_limit`]); a body past it comes from a broken
    /// server or proxy, and reading on would only exhaust memory.
    #[error(
        "the {what} was larger than {limit} bytes, more than any answer of this model can be; the server or a proxy is misbehaving (raise the cap with --max-response-mib if you expect such answers)"
    )]
    TooLarge {
        /// What we were reading ("generateContent response", "stream event", ...).
        what: &'static str,
        /// The cap, in bytes.
        limit: usize,
    },

    /// The process has no file descriptors left for another connection (EMFILE).
    #[error(
        "too many open files: the process reached its limit on open connections ({0}); send fewer requests at once or raise the limit (ulimit -n), then retry"
    )]
    OutOfFiles(String),
}

impl From<ApiError> for Error {
    /// An API error, or [`Error::RetryDelayTooLong`] when its delay is past the ceiling.
    fn from(api: ApiError) -> Error {
        let ceiling = max_retry_delay(&api);
        match api.retry_delay {
            Some(delay) if delay > ceiling => Error::RetryDelayTooLong {
                api: Box::new(api),
                delay,
                ceiling,
            },
            _ => Error::Api(Box::new(api)),
        }
    }
}

/// The longest wait honoured for this error: a day for a per-day quota, an hour otherwise.
pub fn max_retry_delay(api: &ApiError) -> Duration {
    if api.quota.as_ref().is_some_and(QuotaViolation::is_per_day) {
        MAX_DAILY_RETRY_DELAY
    } else {
        MAX_RETRY_DELAY
    }
}

impl Error {
    /// The API error, when the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(api) | Error::UnknownModel { api, .. } => Some(api.as_ref()),
            _ => None,
        }
    }

    /// True for HTTP 429 (`RESOURCE_EXHAUSTED`): a quota was exceeded.
    pub fn is_rate_limited(&self) -> bool {
        self.api().is_some_and(|api| api.http_status == 429)
    }

    /// How long the server asked us to wait (`RetryInfo.retryDelay`), if it said.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.api().and_then(|api| api.retry_delay)
    }

    /// True when the same request may succeed if sent again later.
    ///
    /// These are the statuses python-genai retries (408, 429, 500, 502, 503,
    /// 504, docs/wire.md#retries-in-googles-python-sdk) plus timeouts, dropped connections and broken streams.
    /// A per-day 429 is retryable in this sense too, but only after the daily
    /// reset: check [`QuotaViolation::is_per_day`] before waiting for it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(api) => matches!(api.http_status, 408 | 429 | 500 | 502 | 503 | 504),
            Error::Timeout(_) | Error::Transport(_) | Error::Stream(_) | Error::OutOfFiles(_) => {
                true
            }
            _ => false,
        }
    }

    /// True when every other request would fail the same way, so a batch should stop.
    ///
    /// A bad or missing key, a refused permission, an unknown model, a
    /// configuration mistake or an unreachable host do not fix themselves.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Api(api) => {
                matches!(api.http_status, 401 | 403 | 404)
                    || api.is_invalid_key()
                    || api.is_model_unavailable()
            }
            Error::MissingKey
            | Error::Config(_)
            | Error::UnknownModel { .. }
            | Error::Connect { .. }
            | Error::Proxy { .. }
            | Error::Tls { .. } => true,
            _ => false,
        }
    }

    /// Builds a [`Error::Decode`] keeping a short, one-line snippet of the body.
    pub(crate) fn decode(what: &'static str, detail: impl ToString, body: &[u8]) -> Error {
        Error::Decode {
            what,
            detail: detail.to_string(),
            snippet: snippet(body),
        }
    }
}

/// What the server said when it refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (for an error inside a 200 stream: the envelope's `code`).
    pub http_status: u16,
    /// The `google.rpc.Code` name: `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ...
    pub status: String,
    /// The server's message, verbatim (it may contain newlines; `Display` condenses it).
    pub message: String,
    /// `RetryInfo.retryDelay`, or the "Please retry in Ns" of the message.
    pub retry_delay: Option<Duration>,
    /// The quota that was exceeded (`QuotaFailure`, or the 2024 `ErrorInfo` metadata).
    pub quota: Option<QuotaViolation>,
    /// `ErrorInfo.reason`, for example `API_KEY_INVALID` or `SERVICE_DISABLED`.
    pub reason: Option<String>,
}

/// One exceeded quota, from `google.rpc.QuotaFailure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaViolation {
    /// For example `GenerateRequestsPerMinutePerProjectPerModel-FreeTier`.
    pub quota_id: String,
    /// For example `generativelanguage.googleapis.com/generate_content_free_tier_requests`.
    pub metric: String,
    /// The `model` quota dimension, when present.
    pub model: Option<String>,
    /// The limit, as the server sends it (a string such as `"250000"`).
    pub value: Option<String>,
    /// True when a field had the wrong shape (`quotaDimensions` that is not an
    /// object, a `quotaValue` that is not a string): nothing should be learned from it.
    pub malformed: bool,
}

/// What a quota violation teaches about the limit: which of the three
/// limits it is, and the limit itself (`quotaValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lesson {
    /// Requests per minute, input tokens per minute, or requests per day.
    pub kind: QuotaKind,
    /// The limit the server named. 0 means the model is not available at all.
    pub limit: u32,
}

impl QuotaViolation {
    /// True for a per-day quota: waiting a minute will not help, the reset is at midnight Pacific.
    pub fn is_per_day(&self) -> bool {
        self.quota_id.contains("PerDay")
    }

    /// True for a token quota (TPM) rather than a request quota (RPM/RPD).
    pub fn is_tokens(&self) -> bool {
        self.quota_id.contains("Token") || self.metric.contains("token")
    }

    /// True when the server named a limit of 0: the model is not available
    /// to this project at all (not on its tier), so no wait will help.
    pub fn is_unavailable(&self) -> bool {
        !self.malformed && self.value.as_deref().map(str::trim) == Some("0")
    }

    /// What this violation says about the limit, if it says it clearly.
    ///
    /// The dimension and the window come from `quotaId` and `quotaMetric`
    /// only (`GenerateRequestsPerMinutePerProjectPerModel-FreeTier`,
    /// `GenerateContentInputTokensPerModelPerMinute-FreeTier`, `...PerDay...`),
    /// never from the length of `retryDelay`: a per-day 429 can carry a
    /// delay of half a minute. `None` for anything unclear: a malformed
    /// violation, a missing or non-numeric `quotaValue`, a quota we do not
    /// pace (tokens per day), or a name we cannot classify.
    pub fn lesson(&self) -> Option<Lesson> {
        if self.malformed {
            return None;
        }
        let limit: u32 = self.value.as_deref()?.trim().parse().ok()?;
        let id = self.quota_id.as_str();
        let per_day = if id.contains("PerDay") {
            true
        } else if id.contains("PerMinute") {
            false
        } else {
            return None;
        };
        let requests = id.contains("Request") || self.metric.ends_with("requests");
        let kind = match (self.is_tokens(), requests, per_day) {
            (true, _, false) => QuotaKind::Tpm,
            // Tokens per day: not a pace this client keeps.
            (true, _, true) => return None,
            (false, true, false) => QuotaKind::Rpm,
            (false, true, true) => QuotaKind::Rpd,
            (false, false, _) => return None,
        };
        Some(Lesson { kind, limit })
    }
}

impl std::fmt::Display for ApiError {
    /// One line: what happened, the server's words (condensed), what to do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = format!("{} {}", self.http_status, self.status);
        let message = condense(&self.message);
        if self.is_invalid_key() {
            return write!(
                f,
                "API key not valid ({head}, API_KEY_INVALID): check the key in {KEY_VARS}"
            );
        }
        match self.http_status {
            429 => self.fmt_rate_limited(f, &head),
            401 | 403 => write!(
                f,
                "permission denied ({head}): {message}; check the key in {KEY_VARS} and that the Generative Language API is enabled for its project"
            ),
            404 => write!(
                f,
                "not found ({head}): {message}; choose another model with --model"
            ),
            503 => write!(
                f,
                "the model is overloaded ({head}): {message}; retry in a moment, with backoff"
            ),
            500 | 502 | 504 => write!(f, "server error ({head}): {message}; retry the request"),
            _ => write!(f, "API error ({head}): {message}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// True for a 429 whose quota is 0: the model is not available on this
    /// project's tier, and every request will get the same answer.
    pub fn is_model_unavailable(&self) -> bool {
        self.http_status == 429
            && self
                .quota
                .as_ref()
                .is_some_and(QuotaViolation::is_unavailable)
    }

    /// True when the server rejected the key itself (`ErrorInfo.reason` `API_KEY_INVALID`).
    pub fn is_invalid_key(&self) -> bool {
        self.reason.as_deref() == Some("API_KEY_INVALID")
    }

    /// The 429 line: which quota, and how long to wait.
    fn fmt_rate_limited(&self, f: &mut std::fmt::Formatter<'_>, head: &str) -> std::fmt::Result {
        let wait = match self.retry_delay {
            Some(delay) => format!("retry in {}s", fmt_secs(delay)),
            None => "wait and retry".to_string(),
        };
        let Some(quota) = &self.quota else {
            return write!(f, "rate limited ({head}): {wait}");
        };
        let model = quota
            .model
            .as_deref()
            .map(|m| format!(" for {m}"))
            .unwrap_or_default();
        let limit = quota
            .value
            .as_deref()
            .map(|v| format!(", limit {v}"))
            .unwrap_or_default();
        if quota.is_unavailable() {
            return write!(
                f,
                "the model{model} is not available to this project ({head}, {}, limit 0): choose another model with --model, or enable billing for the project",
                quota.quota_id
            );
        }
        if quota.is_per_day() {
            write!(
                f,
                "daily quota exhausted ({head}, {}{model}{limit}): it resets at midnight Pacific time; wait for the reset or use another model or key",
                quota.quota_id
            )
        } else {
            write!(
                f,
                "rate limited, per-minute quota ({head}, {}{model}{limit}): {wait}",
                quota.quota_id
            )
        }
    }

    /// Parses an error body into an `ApiError`, whatever shape it has.
    ///
    /// `http_status` is the status line's code; `None` for an error object
    /// that arrived inside a 200 stream, where the envelope's `code` is the
    /// only status there is. Never fails: a body that is not an envelope
    /// becomes the message (condensed and shortened).
    pub fn from_body(http_status: Option<u16>, body: &[u8]) -> ApiError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        match parsed.as_ref().and_then(envelope) {
            Some(error) => from_envelope(http_status, error),
            None => {
                let code = http_status.unwrap_or(500);
                ApiError {
                    http_status: code,
                    status: canonical_status(code).to_string(),
                    message: snippet(body),
                    retry_delay: None,
                    quota: None,
                    reason: None,
                }
            }
        }
    }
}

/// Finds the `error` object of an envelope: `{"error":{..}}`, `[{"error":{..}}]`, or `{"error":"text"}`.
fn envelope(value: &Value) -> Option<&Value> {
    match value {
        Value::Array(items) => items.first().and_then(envelope),
        Value::Object(map) => map.get("error").filter(|e| e.is_object() || e.is_string()),
        _ => None,
    }
}

/// Builds the error from the envelope's `error` member.
fn from_envelope(http_status: Option<u16>, error: &Value) -> ApiError {
    if let Value::String(text) = error {
        let code = http_status.unwrap_or(500);
        return bare(code, None, text.clone());
    }
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The JS SDK wraps a non-JSON response as {"error":{"message":"<raw body>",...}}:
    // when the message is itself an envelope, the inner one is what the server said.
    if let Some(inner) = serde_json::from_str::<Value>(message)
        .ok()
        .as_ref()
        .and_then(envelope)
        .filter(|e| e.is_object())
    {
        return from_envelope(http_status.or(code), inner);
    }
    let status = error.get("status").and_then(Value::as_str);
    let mut api = bare(
        http_status.or(code).unwrap_or(500),
        status,
        message.to_string(),
    );
    let details = error.get("details").and_then(Value::as_array);
    for detail in details.into_iter().flatten() {
        api.absorb_detail(detail);
    }
    if api.retry_delay.is_none() {
        api.retry_delay = retry_delay_from_message(&api.message);
    }
    api
}

/// An `ApiError` with no details yet; a non-canonical status (JS's "Too Many Requests") is replaced.
fn bare(code: u16, status: Option<&str>, message: String) -> ApiError {
    let canonical =
        |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    ApiError {
        http_status: code,
        status: status
            .filter(canonical)
            .unwrap_or(canonical_status(code))
            .to_string(),
        message,
        retry_delay: None,
        quota: None,
        reason: None,
    }
}

impl ApiError {
    /// Reads one `details[]` entry, keyed by its `@type`.
    fn absorb_detail(&mut self, detail: &Value) {
        let kind = detail.get("@type").and_then(Value::as_str).unwrap_or("");
        let kind = kind.rsplit('.').next().unwrap_or(kind);
        match kind {
            "RetryInfo" => {
                self.retry_delay = detail
                    .get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(parse_proto_duration);
            }
            "QuotaFailure" => self.absorb_quota_failure(detail),
            "ErrorInfo" => {
                let reason = detail.get("reason").and_then(Value::as_str);
                self.reason = reason.map(str::to_string);
                if self.quota.is_none() {
                    self.quota = legacy_quota(detail);
                }
            }
            _ => {}
        }
    }

    /// Keeps the most telling violation: a per-day one wins, as it outlasts any per-minute wait.
    fn absorb_quota_failure(&mut self, detail: &Value) {
        let violations = detail.get("violations").and_then(Value::as_array);
        let parsed: Vec<QuotaViolation> = violations
            .into_iter()
            .flatten()
            .map(|v| {
                let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
                let dimensions = v.get("quotaDimensions");
                let malformed = dimensions.is_some_and(|d| !d.is_object())
                    || v.get("quotaValue").is_some_and(|q| !q.is_string());
                QuotaViolation {
                    malformed,
                    quota_id: text("quotaId").unwrap_or_default(),
                    metric: text("quotaMetric").unwrap_or_default(),
                    model: v
                        .pointer("/quotaDimensions/model")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    value: text("quotaValue"),
                }
            })
            .collect();
        let best = parsed
            .iter()
            .find(|v| v.is_per_day())
            .or(parsed.first())
            .cloned();
        if best.is_some() {
            self.quota = best;
        }
    }
}

/// The 2024 format: `ErrorInfo{reason:"RATE_LIMIT_EXCEEDED", metadata:{quota_limit, quota_metric, ...}}`.
fn legacy_quota(detail: &Value) -> Option<QuotaViolation> {
    let meta = detail.get("metadata")?;
    let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_string);
    Some(QuotaViolation {
        quota_id: text("quota_limit")?,
        metric: text("quota_metric").unwrap_or_default(),
        model: text("model"),
        value: text("quota_limit_value"),
        malformed: false,
    })
}

/// The late-2025 429 message ends "Please retry in 39.006833842s." — used when `RetryInfo` is absent.
fn retry_delay_from_message(message: &str) -> Option<Duration> {
    let start = message.find("Please retry in ")? + "Please retry in ".len();
    let rest = &message[start..];
    let end = rest.find('s')?;
    parse_proto_duration(&rest[..=end])
}

/// The `google.rpc.Code` name Google uses for an HTTP status, for bodies that do not say.
pub(crate) fn canonical_status(http: u16) -> &'static str {
    match http {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// Collapses all whitespace (the real 429 message has newlines) so the text fits on one line.
pub(crate) fn condense(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A one-line, bounded excerpt of a body, cut on a character boundary.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = condense(&String::from_utf8_lossy(body));
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Formats a delay as seconds without noise: `26`, `45.8`.
/// Seconds with one decimal, always: a run that prints "60.0s" for one
/// request does not print "60s" for the next.
fn fmt_secs(delay: Duration) -> String {
    format!("{:.1}", delay.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_model_lists_the_closest_models_and_no_url() {
        let api = ApiError::from_body(
            Some(404),
            br#"{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}"#,
        );
        assert!(!api.to_string().contains("GET /v1beta"), "{api}");
        let error = Error::UnknownModel {
            api: Box::new(api),
            closest: vec!["gemini-flash-latest".into(), "gemini-2.5-flash".into()],
        };
        assert!(error.is_fatal());
        assert_eq!(error.api().map(|a| a.http_status), Some(404));
        assert!(
            error
                .to_string()
                .ends_with("closest first: gemini-flash-latest, gemini-2.5-flash"),
            "{error}"
        );
    }

    use super::*;

    #[test]
    fn absurd_retry_delays_parse_and_are_refused_without_overflow() {
        for delay in ["9223372036854775807s", "999999999s", "3601s"] {
            let body = format!(
                r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","message":"slow","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
            );
            let error = Error::from(ApiError::from_body(Some(429), body.as_bytes()));
            assert!(
                matches!(error, Error::RetryDelayTooLong { .. }),
                "{delay}: {error}"
            );
            assert!(!error.is_retryable() && !error.is_rate_limited());
            assert_eq!(error.retry_delay(), None);
            let line = error.to_string();
            assert!(line.contains("given up") && !line.contains('\n'), "{line}");
        }
        // An hour is honoured; a per-day quota may ask for up to a day.
        let within = r#"{"error":{"code":429,"message":"Please retry in 3600s."}}"#;
        let error = Error::from(ApiError::from_body(Some(429), within.as_bytes()));
        assert_eq!(error.retry_delay(), Some(MAX_RETRY_DELAY));
        let daily = r#"{"error":{"code":429,"message":"m","details":[
            {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
            {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"80000s"}]}}"#;
        let error = Error::from(ApiError::from_body(Some(429), daily.as_bytes()));
        assert_eq!(error.retry_delay(), Some(Duration::from_secs(80_000)));
    }

    #[test]
    fn non_json_body_keeps_a_snippet() {
        let api = ApiError::from_body(Some(502), b"<html>\n<body>Bad Gateway</body></html>");
        assert_eq!(api.status, "UNAVAILABLE");
        assert_eq!(api.message, "<html> <body>Bad Gateway</body></html>");
        assert!(Error::from(api).is_retryable());
    }

    #[test]
    fn js_double_encoded_envelope_is_unwrapped() {
        let inner = r#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}}"#;
        let outer = serde_json::json!({"error": {"message": inner, "code": 429, "status": "Too Many Requests"}});
        let api = ApiError::from_body(Some(429), outer.to_string().as_bytes());
        assert_eq!(api.status, "RESOURCE_EXHAUSTED");
        assert_eq!(api.message, "Resource exhausted");
        assert_eq!(api.retry_delay, Some(Duration::from_secs(7)));
    }

    #[test]
    fn non_canonical_status_is_replaced() {
        let body = br#"{"error":{"message":"slow down","code":429,"status":"Too Many Requests"}}"#;
        let api = ApiError::from_body(Some(429), body);
        assert_eq!(api.status, "RESOURCE_EXHAUSTED");
        assert_eq!(api.message, "slow down");
    }

    #[test]
    fn array_wrapped_and_string_errors() {
        let api = ApiError::from_body(
            Some(503),
            br#"[{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}]"#,
        );
        assert_eq!((api.http_status, api.status.as_str()), (503, "UNAVAILABLE"));
        let api = ApiError::from_body(Some(400), br#"{"error":"bad thing"}"#);
        assert_eq!(api.message, "bad thing");
    }

    #[test]
    fn in_stream_error_takes_its_code() {
        let api = ApiError::from_body(
            None,
            br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
        );
        assert_eq!(api.http_status, 503);
        assert!(Error::from(api).is_retryable());
    }

    #[test]
    fn retry_delay_falls_back_to_the_message() {
        let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota.\nPlease retry in 39.006833842s."}}"#;
        let api = ApiError::from_body(Some(429), body);
        assert_eq!(api.retry_delay, Some(Duration::new(39, 6_833_842)));
    }

    #[test]
    fn snippet_is_bounded_and_char_safe() {
        let body = "é".repeat(1000);
        let s = snippet(body.as_bytes());
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
    }

    #[test]
    fn every_display_is_one_line() {
        let errors = [
            Error::MissingKey,
            Error::Config("x".into()),
            Error::Timeout(Duration::from_millis(1500)),
            Error::Connect {
                host: "h".into(),
                detail: "refused".into(),
            },
            Error::Stream("cut".into()),
            Error::from(ApiError::from_body(
                Some(429),
                b"{\"error\":{\"code\":429,\"message\":\"a\\nb\"}}",
            )),
        ];
        for e in errors {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        assert!(Error::MissingKey.to_string().contains("GOOGLE_API_KEY"));
    }

    fn quota_429(violation: &str) -> ApiError {
        let body = format!(
            r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{violation}]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"36s"}}]}}}}"#
        );
        ApiError::from_body(Some(429), body.as_bytes())
    }

    #[test]
    fn quota_lessons_come_from_the_quota_id_not_the_delay() {
        let lesson = |violation: &str| quota_429(violation).quota.and_then(|q| q.lesson());
        let per_minute = r#"{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"5"}"#;
        assert_eq!(
            lesson(per_minute),
            Some(Lesson {
                kind: QuotaKind::Rpm,
                limit: 5
            })
        );
        // A per-day 429 with a 36 s delay is still per day.
        let per_day = r#"{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"model":"gemini-2.5-flash"},"quotaValue":"25"}"#;
        let day = lesson(per_day).expect("a lesson");
        assert_eq!((day.kind, day.limit), (QuotaKind::Rpd, 25));
        let tokens = r#"{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count","quotaId":"GenerateContentInputTokensPerModelPerMinute-FreeTier","quotaValue":"250000"}"#;
        let tpm = lesson(tokens).expect("a lesson");
        assert_eq!((tpm.kind, tpm.limit), (QuotaKind::Tpm, 250_000));
        let tokens_per_day = r#"{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_input_token_count","quotaId":"GenerateContentInputTokensPerModelPerDay-FreeTier","quotaValue":"250000"}"#;
        assert_eq!(lesson(tokens_per_day), None);
        // Malformed or incomplete: nothing learned, nothing crashes.
        let string_dimensions = r#"{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":"model=gemini-2.5-flash","quotaValue":"5"}"#;
        assert_eq!(lesson(string_dimensions), None);
        let no_value = r#"{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{}}"#;
        assert_eq!(lesson(no_value), None);
        let numeric_value =
            r#"{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":5}"#;
        assert_eq!(lesson(numeric_value), None);
        assert!(!quota_429(no_value).is_model_unavailable());
    }

    #[test]
    fn a_quota_of_zero_is_fatal_and_says_so_in_one_line() {
        let zero = r#"{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"model":"gemini-2.5-pro"},"quotaValue":"0"}"#;
        let api = quota_429(zero);
        assert!(api.is_model_unavailable());
        let error = Error::from(api);
        assert!(error.is_fatal());
        let line = error.to_string();
        assert!(
            line.contains("not available") && line.contains("--model"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
