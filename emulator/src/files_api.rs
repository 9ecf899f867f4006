//! The HTTP side of the Files API: the resumable upload, `files` get, list and delete, and the
//! download of generated files.
//!
//! The upload speaks Google's resumable protocol as the SDKs use it (docs/wire.md#files): a
//! `start` request with the API key gets an `X-Goog-Upload-URL` pointing back at this server;
//! the chunks go there with no key (the upload id in the URL is the credential), each answered
//! with `x-goog-upload-status` -- `active` while more may come, `final` once the file is made
//! or the session is over. Every answer carries that header, errors included, because the SDK
//! retries any answer without it.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::files::{Command, FileResource, NewFile, Progress, Source, UploadError};
use crate::http::{
    answer_json, authenticate, checked, error_response, json_response, method_not_found, page_size,
    page_token, parse_page_token, query_param, read_body, respond, split_id, valid_version,
};
use crate::request::{self, field};
use crate::state::{ServerState, lock};
use crate::wire;

type AppState = Arc<ServerState>;

/// The upload granularity the SDK's 8 MiB chunks match, announced at start.
const CHUNK_GRANULARITY: &str = "8388608";
/// The largest start body read (a File with a display name).
const MAX_START_BODY: usize = 64 * 1024;

/// `scheme://authority` of this server as the client reached it: the request's authority (the
/// `Host` header, or `:authority` over HTTP/2) when it is a valid one, else the bound address.
fn base_url(shared: &ServerState, request: &axum::http::request::Parts) -> String {
    let scheme = if shared.settings.tls { "https" } else { "http" };
    let authority = request
        .uri
        .authority()
        .map(Authority::as_str)
        .or_else(|| {
            request
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .and_then(|text| Authority::from_str(text).ok())
        .map_or_else(|| shared.addr.to_string(), |a| a.as_str().to_string());
    format!("{scheme}://{authority}")
}

/// `POST /upload/{version}/files`: a `start`, or (with `?upload_id=`) a chunk.
pub(crate) async fn upload(
    State(shared): State<AppState>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let started = Instant::now();
    let query = query.as_deref();
    if let Some(upload_id) = query_param(query, "upload_id") {
        let arrival = shared.arrive("", "uploadChunk");
        let response = receive_chunk(&shared, &upload_id, request, started).await;
        shared.finish(arrival, response.status().as_u16());
        return response;
    }
    let arrival = shared.arrive("", "createFile");
    let response = match start_upload(&shared, &version, query, request).await {
        Ok(url) => {
            let mut response = respond(200, "text/plain; charset=utf-8", Body::empty(), started);
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&url) {
                headers.insert("x-goog-upload-url", value.clone());
                headers.insert("x-goog-upload-control-url", value);
            }
            headers.insert("x-goog-upload-status", HeaderValue::from_static("active"));
            headers.insert(
                "x-goog-upload-chunk-granularity",
                HeaderValue::from_static(CHUNK_GRANULARITY),
            );
            response
        }
        Err(error) => error_response(&error, false, started),
    };
    shared.finish(arrival, response.status().as_u16());
    response
}

/// Opens a session; returns the upload URL.
async fn start_upload(
    shared: &AppState,
    version: &str,
    query: Option<&str>,
    request: Request,
) -> Result<String, ApiError> {
    let (parts, body) = request.into_parts();
    if !valid_version(version) {
        return Err(ApiError::method_not_found());
    }
    let project = authenticate(shared, &parts.headers, query)?;
    let headers = &parts.headers;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
    };
    if !header("x-goog-upload-protocol").eq_ignore_ascii_case("resumable") {
        return Err(ApiError::invalid_argument(
            "The emulator takes resumable uploads only: send X-Goog-Upload-Protocol: resumable.",
        ));
    }
    if !header("x-goog-upload-command").eq_ignore_ascii_case("start") {
        return Err(ApiError::invalid_argument(
            "A new upload starts with X-Goog-Upload-Command: start.",
        ));
    }
    let bytes = read_body(body, headers, MAX_START_BODY).await?;
    let object = request::decode(&bytes)?;
    let file = match field(&object, "file", "file") {
        None => serde_json::Map::new(),
        Some(Value::Object(file)) => file.clone(),
        Some(other) => {
            return Err(ApiError::invalid_value(
                "file",
                "type.googleapis.com/google.ai.generativelanguage.v1beta.File",
                other,
            ));
        }
    };
    let text = |camel: &str, snake: &str| {
        field(&file, camel, snake)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let declared = match header("x-goog-upload-header-content-length") {
        "" => field(&file, "sizeBytes", "size_bytes").and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }),
        text => text.parse::<u64>().ok(),
    }
    .ok_or_else(|| {
        ApiError::invalid_argument(
            "The upload's size is missing or not a number: send \
             X-Goog-Upload-Header-Content-Length.",
        )
    })?;
    let mime_type = match header("x-goog-upload-header-content-type") {
        "" => text("mimeType", "mime_type").unwrap_or_default(),
        mime => mime.to_string(),
    };
    let new = NewFile {
        name: text("name", "name"),
        display_name: text("displayName", "display_name").unwrap_or_default(),
        mime_type,
        size: declared,
    };
    let upload_id = lock(&shared.files).start_upload(project, new, Instant::now())?;
    Ok(format!(
        "{}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable",
        base_url(shared, &parts)
    ))
}

/// One chunk request on an open session.
async fn receive_chunk(
    shared: &AppState,
    upload_id: &str,
    request: Request,
    started: Instant,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let command = headers
        .get("x-goog-upload-command")
        .and_then(|v| v.to_str().ok())
        .and_then(Command::parse);
    let Some(command) = command else {
        let error = ApiError::invalid_argument(
            "X-Goog-Upload-Command must be upload, finalize, \"upload, finalize\" or query.",
        );
        return upload_error(
            &UploadError {
                error,
                session_over: false,
                received: None,
            },
            started,
        );
    };
    let offset = headers
        .get("x-goog-upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(remaining) = lock(&shared.files).remaining(upload_id) else {
        return upload_error(
            &UploadError {
                error: ApiError::entity_not_found(),
                session_over: true,
                received: None,
            },
            started,
        );
    };
    let limit = usize::try_from(remaining).unwrap_or(usize::MAX);
    let chunk = match read_body(body, headers, limit).await {
        Ok(chunk) => chunk,
        Err(_) => {
            lock(&shared.files).abandon(upload_id);
            let error = ApiError::invalid_argument(format!(
                "The chunk is longer than the {remaining} bytes the upload still expects \
                 (X-Goog-Upload-Header-Content-Length); the upload is cancelled."
            ));
            return upload_error(
                &UploadError {
                    error,
                    session_over: true,
                    received: None,
                },
                started,
            );
        }
    };
    let base = base_url(shared, &parts);
    let result = lock(&shared.files).receive(upload_id, command, offset, chunk, Instant::now());
    match result {
        Ok(Progress::Active { received }) => {
            let mut response = respond(200, "text/plain; charset=utf-8", Body::empty(), started);
            let headers = response.headers_mut();
            headers.insert("x-goog-upload-status", HeaderValue::from_static("active"));
            headers.insert("x-goog-upload-size-received", HeaderValue::from(received));
            response
        }
        Ok(Progress::Final(file)) => {
            let version = version_of(parts.uri.path());
            let resource = FileResource::of(
                &file,
                &shared.clock,
                shared.settings.batch.file_lifetime,
                &base,
                version,
            );
            let mut response = json_response(&Created { file: resource }, started);
            response
                .headers_mut()
                .insert("x-goog-upload-status", HeaderValue::from_static("final"));
            response
        }
        Err(error) => upload_error(&error, started),
    }
}

/// `{"file": {...}}`, the final chunk's answer.
#[derive(Serialize)]
struct Created {
    file: FileResource,
}

/// `v1beta` from `/upload/v1beta/files`.
fn version_of(path: &str) -> &str {
    path.split('/')
        .find(|segment| valid_version(segment))
        .unwrap_or("v1beta")
}

/// An error answer of the upload protocol: the error body with `x-goog-upload-status`.
fn upload_error(error: &UploadError, started: Instant) -> Response {
    let mut response = error_response(&error.error, false, started);
    let status = if error.session_over {
        "final"
    } else {
        "active"
    };
    let headers = response.headers_mut();
    headers.insert("x-goog-upload-status", HeaderValue::from_static(status));
    if let Some(received) = error.received {
        headers.insert("x-goog-upload-size-received", HeaderValue::from(received));
    }
    response
}

/// `GET /{version}/files/{id}` (the File), or `.../{id}:download?alt=media` (its bytes).
pub(crate) async fn get(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (id, action) = split_id(&rest);
    match action {
        Some("download") => download_file(&shared, &version, id, query.as_deref(), request),
        Some(_) => method_not_found(&shared, "getFile"),
        None => {
            let (parts, _) = request.into_parts();
            let query = query.as_deref();
            answer_json(
                &shared,
                "getFile",
                &version,
                query,
                &parts.headers,
                |project, now| {
                    let mut files = lock(&shared.files);
                    let file = files
                        .get(project, id, now)
                        .ok_or_else(ApiError::entity_not_found)?;
                    let lifetime = shared.settings.batch.file_lifetime;
                    let base = base_url(&shared, &parts);
                    let resource = FileResource::of(file, &shared.clock, lifetime, &base, &version);
                    Ok(wire::pretty(&resource))
                },
            )
        }
    }
}

/// `GET /download/{version}/files/{id}:download?alt=media`.
pub(crate) async fn download(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    match split_id(&rest) {
        (id, Some("download")) => download_file(&shared, &version, id, query.as_deref(), request),
        _ => method_not_found(&shared, "downloadFile"),
    }
}

/// The bytes of a generated file, with its MIME type.
fn download_file(
    shared: &AppState,
    version: &str,
    id: &str,
    query: Option<&str>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let arrival = shared.arrive("", "downloadFile");
    let result = checked(shared, version, query, request.headers()).and_then(|(project, now)| {
        if query_param(query, "alt").as_deref() != Some("media") {
            return Err(ApiError::invalid_argument(
                "A download needs ?alt=media (the bytes, not the File).",
            ));
        }
        let mut files = lock(&shared.files);
        let file = files
            .get(project, id, now)
            .ok_or_else(ApiError::entity_not_found)?;
        if file.source != Source::Generated {
            // Inferred wording; the SDK refuses this itself before asking.
            return Err(ApiError::invalid_argument(format!(
                "Only generated files can be downloaded; files/{id} was uploaded."
            )));
        }
        Ok((file.data.clone(), file.mime_type.clone()))
    });
    let response = match result {
        Ok((data, mime_type)) => {
            let mut response = respond(200, "application/octet-stream", Body::from(data), started);
            if let Ok(value) = HeaderValue::from_str(&mime_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Err(error) => error_response(&error, false, started),
    };
    shared.finish(arrival, response.status().as_u16());
    response
}

/// `DELETE /{version}/files/{id}`: `{}`.
pub(crate) async fn delete(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (id, action) = split_id(&rest);
    let query = query.as_deref();
    answer_json(
        &shared,
        "deleteFile",
        &version,
        query,
        &headers,
        |project, now| {
            if action.is_some() {
                return Err(ApiError::method_not_found());
            }
            if lock(&shared.files).delete(project, id, now) {
                Ok(wire::pretty(&json!({})))
            } else {
                Err(ApiError::entity_not_found())
            }
        },
    )
}

/// `files.list`: newest first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListFiles {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// `GET /{version}/files?pageSize=&pageToken=`.
pub(crate) async fn list(
    State(shared): State<AppState>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let query = query.as_deref();
    let (parts, _) = request.into_parts();
    answer_json(
        &shared,
        "listFiles",
        &version,
        query,
        &parts.headers,
        |project, now| {
            let after = parse_page_token(query)?;
            let (page, next) = lock(&shared.files).list(project, after, page_size(query), now);
            let base = base_url(&shared, &parts);
            let lifetime = shared.settings.batch.file_lifetime;
            Ok(wire::pretty(&ListFiles {
                files: page
                    .iter()
                    .map(|file| FileResource::of(file, &shared.clock, lifetime, &base, &version))
                    .collect(),
                next_page_token: next.map(page_token),
            }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_upload_paths() {
        assert_eq!(version_of("/upload/v1/files"), "v1");
        assert_eq!(version_of("/upload/v1beta/files"), "v1beta");
        assert_eq!(
            split_id("batch-abc:download"),
            ("batch-abc", Some("download"))
        );
    }
}
