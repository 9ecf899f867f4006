//! The HTTP side of Batch Mode: `models/{model}:batchGenerateContent` (reached through
//! `routes`, which owns the `models/` paths), and `batches` get, list, cancel and delete.
//!
//! Order of checks, as for generateContent: API key, model (404), body (400), then the batch
//! limits (429). Batch requests never touch the interactive quota.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use tokio::time::Instant;

use crate::batch::{self, Input, InputSpec, ListOperations, NewJob, ParsedLine};
use crate::catalog;
use crate::errors::ApiError;
use crate::http::{
    JSON_UTF8, answer_json, authenticate, error_response, page_size, page_token, parse_page_token,
    read_body, respond, split_id,
};
use crate::request;
use crate::state::{ServerState, lock};
use crate::wire;

type AppState = Arc<ServerState>;

/// `POST /{version}/models/{model}:batchGenerateContent`: makes a job and answers with its
/// operation, `PENDING`.
pub(crate) async fn create(
    shared: AppState,
    version: &str,
    model: &str,
    query: Option<&str>,
    request: Request,
) -> Response {
    let started = Instant::now();
    match create_job(&shared, version, model, query, request).await {
        Ok(body) => respond(200, JSON_UTF8, Body::from(body), started),
        Err(error) => error_response(&error, false, started),
    }
}

async fn create_job(
    shared: &AppState,
    version: &str,
    model_name: &str,
    query: Option<&str>,
    request: Request,
) -> Result<Bytes, ApiError> {
    let (parts, body) = request.into_parts();
    let project = authenticate(shared, &parts.headers, query)?;
    let model = catalog::find_in_path(model_name)
        .ok_or_else(|| ApiError::model_not_found(model_name, "batchGenerateContent", version))?;
    let bytes = read_body(body, &parts.headers, shared.settings.max_body_bytes).await?;
    let create = batch::parse_create(&request::decode(&bytes)?)?;
    let (input, lines) = match &create.input {
        InputSpec::Inline(items) => (Input::Inline, batch::parse_inline(items, version)?),
        InputSpec::File(name) => (
            Input::File(name.clone()),
            read_input_file(shared, project, name, version).await?,
        ),
    };
    let prompt_tokens = lines
        .iter()
        .filter_map(|line| line.request.as_ref().ok())
        .map(|request| u64::from(request.prompt_tokens))
        .sum();
    let (number, seed) = {
        let mut jobs = lock(&shared.jobs);
        jobs.admit(project, model, prompt_tokens, Instant::now())?;
        jobs.reserve()
    };
    let faults = shared.settings.faults.clone();
    // Answering thousands of requests is CPU work: keep it off the async workers.
    let lines =
        tokio::task::spawn_blocking(move || batch::answer_lines(lines, model, &faults, seed))
            .await
            .map_err(|_| ApiError::internal())?;
    let new = NewJob {
        project,
        model,
        display_name: create.display_name,
        priority: create.priority,
        input,
        lines,
        prompt_tokens,
        number,
    };
    let jobs = &mut *lock(&shared.jobs);
    let job = jobs.insert(new, Instant::now())?;
    Ok(wire::pretty(&job.operation(
        job.created(),
        &shared.clock,
        true,
    )))
}

/// The requests in an uploaded JSONL file of the caller's project.
async fn read_input_file(
    shared: &AppState,
    project: u64,
    name: &str,
    version: &str,
) -> Result<Vec<ParsedLine>, ApiError> {
    let id = name.strip_prefix("files/").unwrap_or(name);
    let data = {
        let mut files = lock(&shared.files);
        files
            .get(project, id, Instant::now())
            .map(|file| file.data.clone())
            .ok_or_else(ApiError::entity_not_found)?
    };
    let version = version.to_string();
    let lines = tokio::task::spawn_blocking(move || batch::parse_jsonl(&data, &version))
        .await
        .map_err(|_| ApiError::internal())?;
    if lines.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "The input file {name} has no requests: give one JSON object per line, \
             {{\"key\": ..., \"request\": {{...}}}}."
        )));
    }
    Ok(lines)
}

/// `GET /{version}/batches/{id}`.
pub(crate) async fn get(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (id, action) = split_id(&rest);
    answer_json(
        &shared,
        "getBatch",
        &version,
        query.as_deref(),
        &headers,
        |project, now| {
            if action.is_some() {
                return Err(ApiError::method_not_found());
            }
            let jobs = lock(&shared.jobs);
            let job = jobs
                .job(project, id)
                .ok_or_else(ApiError::entity_not_found)?;
            let operation = job.operation(job.progress(now, jobs.settings()), &shared.clock, true);
            Ok(wire::pretty(&operation))
        },
    )
}

/// `GET /{version}/batches?pageSize=&pageToken=`: newest first, without inline results.
pub(crate) async fn list(
    State(shared): State<AppState>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.as_deref();
    answer_json(
        &shared,
        "listBatches",
        &version,
        query,
        &headers,
        |project, now| {
            let after = parse_page_token(query)?;
            let jobs = lock(&shared.jobs);
            let (page, next) = jobs.list(project, after, page_size(query));
            let operations = page
                .into_iter()
                .map(|job| job.operation(job.progress(now, jobs.settings()), &shared.clock, false))
                .collect();
            Ok(wire::pretty(&ListOperations {
                operations,
                next_page_token: next.map(page_token),
            }))
        },
    )
}

/// `POST /{version}/batches/{id}:cancel`: `{}`. Cancelling a finished job changes nothing
/// (*assumed*).
pub(crate) async fn cancel(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (id, action) = split_id(&rest);
    answer_json(
        &shared,
        "cancelBatch",
        &version,
        query.as_deref(),
        &headers,
        |project, now| {
            if action != Some("cancel") {
                return Err(ApiError::method_not_found());
            }
            if lock(&shared.jobs).cancel(project, id, now) {
                Ok(wire::pretty(&json!({})))
            } else {
                Err(ApiError::entity_not_found())
            }
        },
    )
}

/// `DELETE /{version}/batches/{id}`: `{}`; the job is gone (its results file stays).
pub(crate) async fn delete(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (id, action) = split_id(&rest);
    answer_json(
        &shared,
        "deleteBatch",
        &version,
        query.as_deref(),
        &headers,
        |project, _| {
            if action.is_some() {
                return Err(ApiError::method_not_found());
            }
            if lock(&shared.jobs).delete(project, id) {
                Ok(wire::pretty(&json!({})))
            } else {
                Err(ApiError::entity_not_found())
            }
        },
    )
}
