//! What every handler shares: the API key check, query strings, bounded body reads, page
//! tokens, and responses with the headers Google's front end sends.
//!
//! Its own module so that the handlers of each part of the API (`routes` for models and
//! generation, `batch_api`, `files_api`) use one copy of these and not each other.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::state::ServerState;

/// The content type of every JSON body.
pub(crate) const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// The content type of a server-sent event stream.
pub(crate) const EVENT_STREAM: &str = "text/event-stream";
/// List page size when none (or a non-positive one) is asked for, and the maximum.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The API versions served; both carry the same paths.
pub(crate) fn valid_version(version: &str) -> bool {
    version == "v1beta" || version == "v1"
}

/// `{id}` or `{id}:action` (a batch's `:cancel`, a file's `:download`), split at the first `:`.
pub(crate) fn split_id(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once(':') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    }
}

/// The version and key checks every batch and files handler starts with; then finished jobs'
/// results are published, so what the handler reads is up to date. Returns the project and now.
pub(crate) fn checked(
    shared: &ServerState,
    version: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(u64, Instant), ApiError> {
    if !valid_version(version) {
        return Err(ApiError::method_not_found());
    }
    let project = authenticate(shared, headers, query)?;
    let now = Instant::now();
    shared.publish_results(now);
    Ok((project, now))
}

/// A path no method answers (the 404 the real API sends), recorded as `method`.
pub(crate) fn method_not_found(shared: &ServerState, method: &str) -> Response {
    let arrival = shared.arrive("", method);
    shared.finish(arrival, 404);
    error_response(&ApiError::method_not_found(), false, Instant::now())
}

/// Runs one batch or files handler: records the arrival, checks the version and the key
/// ([`checked`]), and answers the JSON `body` returns ([`crate::wire::pretty`]), or its error.
/// Bytes, not a value: a batch's Operation borrows the job, so it is written under the lock.
pub(crate) fn answer_json(
    shared: &ServerState,
    method: &str,
    version: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: impl FnOnce(u64, Instant) -> Result<Bytes, ApiError>,
) -> Response {
    let started = Instant::now();
    let arrival = shared.arrive("", method);
    let result =
        checked(shared, version, query, headers).and_then(|(project, now)| body(project, now));
    let response = match result {
        Ok(json) => respond(200, JSON_UTF8, Body::from(json), started),
        Err(error) => error_response(&error, false, started),
    };
    shared.finish(arrival, response.status().as_u16());
    response
}

/// The first value of `name` in a raw query string (`+` and `%XX` decoded,
/// an invalid escape kept as it is).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Checks the API key (header first, then `?key=`) and returns the caller's project: a hash of
/// the key (one key stands for one project here). The key is only compared, never kept.
pub(crate) fn authenticate(
    shared: &ServerState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<u64, ApiError> {
    let from_header = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    let key = from_header
        .filter(|k| !k.is_empty())
        .or_else(|| query_param(query, "key").filter(|k| !k.is_empty()))
        .ok_or_else(ApiError::missing_key)?;
    if let Some(expected) = &shared.settings.key {
        if &key != expected {
            return Err(ApiError::invalid_key());
        }
    }
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    Ok(hasher.finish())
}

/// Adds the headers Google's front end sends on every response.
fn google_headers(headers: &mut HeaderMap, started: Instant) {
    let elapsed = started.elapsed().as_millis();
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("scaffolding on HTTPServer2"),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Origin, X-Origin, Referer"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    headers.insert("x-xss-protection", HeaderValue::from_static("0"));
    if let Ok(timing) = HeaderValue::from_str(&format!("gfet4t7; dur={elapsed}")) {
        headers.insert("server-timing", timing);
    }
}

/// A response with Google's headers.
pub(crate) fn respond(
    status: u16,
    content_type: &'static str,
    body: Body,
    started: Instant,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    google_headers(headers, started);
    response
}

/// A pretty JSON body with status 200.
pub(crate) fn json_response<T: serde::Serialize>(value: &T, started: Instant) -> Response {
    respond(
        200,
        JSON_UTF8,
        Body::from(crate::wire::pretty(value)),
        started,
    )
}

/// An error body. On streaming calls the content type stays `text/event-stream` and the body is
/// the plain pretty JSON, with no `data:` prefix (docs/wire.md#streaming).
pub(crate) fn error_response(error: &ApiError, streaming: bool, started: Instant) -> Response {
    let content_type = if streaming { EVENT_STREAM } else { JSON_UTF8 };
    respond(
        error.code,
        content_type,
        Body::from(error.to_body()),
        started,
    )
}

/// Reads the body, refusing anything over the limit without buffering it: the declared
/// Content-Length is checked first, and the running total while reading.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        // A body cut short is a body that ends mid-JSON.
        let chunk = chunk.map_err(|_| ApiError::invalid_json("Unexpected end of string."))?;
        if buffer.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// `pageSize` from the query: the default when absent or not positive, at most the maximum.
pub(crate) fn page_size(query: Option<&str>) -> usize {
    query_param(query, "pageSize")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_PAGE_SIZE, |n| {
            usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE)
        })
}

/// Page tokens are opaque to clients; here they encode a position (an offset, or the sequence
/// number of the last item served).
pub(crate) fn page_token(position: u64) -> String {
    format!("Cg{position:x}Eg")
}

/// The position in a `pageToken`: `Ok(None)` for no token, an error for one the server did not
/// issue.
pub(crate) fn parse_page_token(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    match query_param(query, "pageToken").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(token) => token
            .strip_prefix("Cg")
            .and_then(|rest| rest.strip_suffix("Eg"))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(Some)
            .ok_or_else(ApiError::invalid_page_token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q = Some("alt=sse&key=a%2Bb+c&pageSize=2&flag");
        assert_eq!(query_param(q, "alt").as_deref(), Some("sse"));
        assert_eq!(query_param(q, "key").as_deref(), Some("a+b c"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(
            query_param(Some("key=%zz%4"), "key").as_deref(),
            Some("%zz%4")
        );
    }

    #[test]
    fn page_tokens_round_trip() {
        let query = format!("pageToken={}", page_token(3));
        assert_eq!(parse_page_token(Some(&query)), Ok(Some(3)));
        assert_eq!(parse_page_token(None), Ok(None));
        assert!(parse_page_token(Some("pageToken=bogus")).is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some("pageSize=-3")), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some("pageSize=2")), 2);
        assert_eq!(page_size(Some("pageSize=99999999999")), MAX_PAGE_SIZE);
    }
}
