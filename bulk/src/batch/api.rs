//! The Batch Mode and Files API calls bulk makes, built on [`Client::raw`].
//!
//! Each is one small function with the path, the body and the cap on the
//! answer that the call needs (docs/wire.md#batch-mode, #files):
//!
//! | call | wire |
//! |---|---|
//! | [`BatchApi::create`] | `POST {v}/models/{model}:batchGenerateContent` |
//! | [`BatchApi::get`] | `GET {v}/batches/{id}` |
//! | [`BatchApi::find`] | `GET {v}/batches?pageSize=&pageToken=`, every page |
//! | [`BatchApi::cancel`] | `POST {v}/batches/{id}:cancel` |
//! | [`BatchApi::upload`] | `POST upload/{v}/files` (resumable: start, then 8 MiB chunks) |
//! | [`BatchApi::results`] | `GET download/{v}/files/{id}:download?alt=media` |
//! | [`BatchApi::delete_file`] | `DELETE {v}/files/{id}` |
//!
//! The key goes in the header of every call but the upload's chunks (the
//! session's URL is their credential, as in Google's SDKs), and every answer
//! is capped and scrubbed by the client.

use std::time::Duration;

use common::{
    Client, Error,
    client::{RawRequest, RawResponse},
};
use serde_json::json;

use crate::batch::wire::{Operation, Page, Uploaded, resource_id, short};

/// The largest operation read: a finished inline job carries every answer.
pub const OPERATION_LIMIT: usize = 1024 * 1024 * 1024;
/// The largest page of `batches.list` read (a list carries no answers).
const PAGE_LIMIT: usize = 16 * 1024 * 1024;
/// The most pages of `batches.list` followed (100 jobs each).
const MAX_PAGES: usize = 1000;
/// Jobs asked for per page.
const PAGE_SIZE: &str = "100";
/// The size of an upload's chunks: Google's SDKs send 8 MiB.
pub const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// The largest small answer read (an upload's File, a cancel's `{}`).
const SMALL_LIMIT: usize = 1024 * 1024;
/// The deadline of one upload chunk or of a results download: far longer
/// than a request's, since they move megabytes to gigabytes.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Where an upload's bytes come from, chunk by chunk.
pub trait Chunks {
    /// The next chunk of at most [`UPLOAD_CHUNK`] bytes; `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error>;
}

/// The batch and files endpoints of one client.
#[derive(Debug, Clone)]
pub struct BatchApi {
    client: Client,
}

impl BatchApi {
    /// The calls, made with `client`.
    pub fn new(client: Client) -> BatchApi {
        BatchApi { client }
    }

    /// The client's base URL without a password: for the commands bulk prints.
    pub fn shown_base_url(&self) -> String {
        common::redact::redact_url(self.client.base_url().as_str())
    }

    /// The path of `batches/{id}[:action]` under the API version.
    pub fn batch_path(&self, name: &str, action: Option<&str>) -> Result<String, Error> {
        let id = resource_id(name, "batches").ok_or_else(|| bad_name(name))?;
        let action = action.map(|a| format!(":{a}")).unwrap_or_default();
        Ok(self.client.api_path(&format!("batches/{id}{action}")))
    }

    /// Creates a job on `model` from `body`, the whole create request
    /// (`{"batch": {...}}`, built by the caller).
    pub async fn create(&self, model: &str, body: Vec<u8>) -> Result<Operation, Error> {
        let path = self
            .client
            .api_path(&format!("models/{model}:batchGenerateContent"));
        let request = RawRequest::post(path)
            .bytes(body, "application/json")
            .timeout(TRANSFER_TIMEOUT.min(self.client.timeout() * 10))
            .what("batch operation");
        self.client.raw(request).await?.document(SMALL_LIMIT).await
    }

    /// The create request of a job named `display_name` whose requests are
    /// in the uploaded file `file`.
    pub fn file_body(display_name: &str, file: &str) -> Vec<u8> {
        let body = json!({"batch": {
            "displayName": display_name,
            "inputConfig": {"fileName": file},
        }});
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The job `name` (`batches/<id>`), its inline answers included once done.
    pub async fn get(&self, name: &str) -> Result<Operation, Error> {
        let request = RawRequest::get(self.batch_path(name, None)?)
            .timeout(TRANSFER_TIMEOUT)
            .what("batch operation");
        self.client
            .raw(request)
            .await?
            .document(OPERATION_LIMIT)
            .await
    }

    /// Every job of the project named `display_name`, newest first, from
    /// every page of `batches.list`.
    pub async fn find(&self, display_name: &str) -> Result<Vec<Operation>, Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut request = RawRequest::get(self.client.api_path("batches"))
                .query("pageSize", PAGE_SIZE)
                .what("batch list");
            if let Some(token) = &token {
                request = request.query("pageToken", token);
            }
            let page: Page = self.client.raw(request).await?.document(PAGE_LIMIT).await?;
            found.extend(
                page.operations
                    .into_iter()
                    .filter(|op| op.metadata.display_name == display_name),
            );
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(found),
            }
        }
        Err(Error::Config(format!(
            "the batch list still had more pages after {MAX_PAGES}: cannot tell whether {display_name} exists"
        )))
    }

    /// Asks the server to cancel the job `name`.
    pub async fn cancel(&self, name: &str) -> Result<(), Error> {
        let request = RawRequest::post(self.batch_path(name, Some("cancel"))?).what("cancel");
        self.client.raw(request).await?.bytes(SMALL_LIMIT).await?;
        Ok(())
    }

    /// Uploads `size` bytes of JSONL from `chunks` as a file named
    /// `display_name`, with Google's resumable protocol; returns its name
    /// (`files/<id>`).
    pub async fn upload(
        &self,
        display_name: &str,
        size: u64,
        chunks: &mut impl Chunks,
    ) -> Result<String, Error> {
        let start = RawRequest::post(format!("upload/{}", self.client.api_path("files")))
            .header("X-Goog-Upload-Protocol", "resumable")
            .header("X-Goog-Upload-Command", "start")
            .header("X-Goog-Upload-Header-Content-Length", size.to_string())
            .header("X-Goog-Upload-Header-Content-Type", "application/jsonl")
            .json(&json!({"file": {"displayName": display_name}}))?
            .what("upload start");
        let started = self.client.raw(start).await?;
        let session = started
            .header("x-goog-upload-url")
            .ok_or_else(|| upload_error("the start's answer has no X-Goog-Upload-URL"))?;
        let (path, query) = upload_target(&session)?;
        let mut offset = 0u64;
        let mut chunk = chunks.next_chunk()?.unwrap_or_default();
        loop {
            let next = chunks.next_chunk()?;
            let last = next.is_none();
            let command = if last { "upload, finalize" } else { "upload" };
            let length = chunk.len() as u64;
            let mut request = RawRequest::post(path.clone())
                .without_key()
                .header("X-Goog-Upload-Command", command)
                .header("X-Goog-Upload-Offset", offset.to_string())
                .bytes(std::mem::take(&mut chunk), "application/octet-stream")
                .timeout(TRANSFER_TIMEOUT)
                .what("uploaded file");
            for (name, value) in &query {
                request = request.query(name, value);
            }
            let answer = self.client.raw(request).await?;
            let status = answer.header("x-goog-upload-status").unwrap_or_default();
            offset += length;
            match (last, status.as_str()) {
                (false, "active") => chunk = next.unwrap_or_default(),
                (true, "final") => {
                    let uploaded: Uploaded = answer.json(SMALL_LIMIT).await?;
                    if resource_id(&uploaded.file.name, "files").is_none() {
                        return Err(bad_name(&uploaded.file.name));
                    }
                    return Ok(uploaded.file.name);
                }
                (_, other) => {
                    return Err(upload_error(&format!(
                        "the server answered the chunk at byte {offset} with upload status {:?}",
                        short(other, 40)
                    )));
                }
            }
        }
    }

    /// The results file `file` (`files/batch-<id>`), to be read line by line.
    pub async fn results(&self, file: &str) -> Result<RawResponse, Error> {
        let id = resource_id(file, "files").ok_or_else(|| bad_name(file))?;
        let path = format!(
            "download/{}",
            self.client.api_path(&format!("files/{id}:download"))
        );
        let request = RawRequest::get(path)
            .query("alt", "media")
            .timeout(TRANSFER_TIMEOUT)
            .what("results file");
        self.client.raw(request).await
    }

    /// Deletes the file `file` (an uploaded input, once its job ended).
    pub async fn delete_file(&self, file: &str) -> Result<(), Error> {
        let id = resource_id(file, "files").ok_or_else(|| bad_name(file))?;
        let request =
            RawRequest::delete(self.client.api_path(&format!("files/{id}"))).what("file deletion");
        self.client.raw(request).await?.bytes(SMALL_LIMIT).await?;
        Ok(())
    }
}

/// The path (under the client's base URL) and query of an upload session's
/// URL. Only its path and query are kept, as Google's SDKs do: the chunks go
/// to the client's own host whatever host the URL names.
fn upload_target(session: &str) -> Result<(String, Vec<(String, String)>), Error> {
    let url = url::Url::parse(session)
        .map_err(|_| upload_error("the session's X-Goog-Upload-URL is not a URL"))?;
    let path = url.path().trim_start_matches('/').to_string();
    if !path.starts_with("upload/") {
        return Err(upload_error(
            "the session's X-Goog-Upload-URL is not an upload path",
        ));
    }
    let query = url.query_pairs().into_owned().collect();
    Ok((path, query))
}

fn upload_error(what: &str) -> Error {
    Error::Transport(format!("the file upload failed: {what}"))
}

fn bad_name(name: &str) -> Error {
    Error::Transport(format!(
        "the server named a resource {:?}, which is not a plain batch or file name",
        short(name, 80)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_url_keeps_its_path_and_query_not_its_host() {
        let (path, query) = upload_target(
            "https://elsewhere.example/upload/v1beta/files?upload_id=abc&upload_protocol=resumable",
        )
        .expect("an upload URL");
        assert_eq!(path, "upload/v1beta/files");
        assert_eq!(
            query,
            [
                ("upload_id".to_string(), "abc".to_string()),
                ("upload_protocol".to_string(), "resumable".to_string())
            ]
        );
        assert!(upload_target("https://x.example/v1beta/models").is_err());
        assert!(upload_target("not a url").is_err());
    }
}
