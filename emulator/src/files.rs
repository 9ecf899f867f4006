//! The Files API's store: files uploaded with the resumable protocol, and the results files
//! batch jobs generate.
//!
//! An upload is a session: its start declares the size, MIME type and display name and gets an
//! upload id; chunks then arrive at increasing offsets, and the last one finalizes the file
//! (docs/wire.md#files). The store checks the offsets, the declared size and the limits, and
//! keeps what was received; the HTTP side (`files_api`) only reads headers and writes them back.
//!
//! Everything is bounded: the size of one file, the bytes kept at once (uploads in progress
//! reserve their declared size when they start), the number of files and of open sessions.
//! Files live for `file_lifetime` and are then gone, as on the real API; an unfinished upload
//! session lasts a week. The store keeps files in memory.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::seeds::{lowercase_id, mix};
use crate::settings::Batch;
use crate::timestamps::WallClock;

/// Upload sessions open at once; starting one more forgets the oldest (an abandoned upload).
pub const MAX_UPLOAD_SESSIONS: usize = 100;
/// How long an unfinished upload session stays open (*assumed*: a week, as Google's resumable
/// uploads are documented to last).
const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The longest display name accepted (the SDK documents 512 characters).
const MAX_DISPLAY_NAME: usize = 512;
/// The longest MIME type accepted.
const MAX_MIME_TYPE: usize = 255;
/// Characters in a generated file id, like `p1mds9fl15bs`.
const FILE_ID_LEN: usize = 12;
/// Characters in an upload id.
const UPLOAD_ID_LEN: usize = 48;
/// The prefix of the files batch jobs generate (`files/batch-<job id>`), kept for them.
pub const GENERATED_PREFIX: &str = "batch-";

/// Where a file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Uploaded by a client.
    Uploaded,
    /// Written by the service (a batch job's results); only these can be downloaded.
    Generated,
}

impl Source {
    fn wire_name(self) -> &'static str {
        match self {
            Source::Uploaded => "UPLOADED",
            Source::Generated => "GENERATED",
        }
    }
}

/// One stored file.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// The id, without `files/`.
    pub id: String,
    /// The project (a hash of the API key) that owns it.
    pub project: u64,
    /// `displayName` (may be empty).
    pub display_name: String,
    /// `mimeType`, as declared.
    pub mime_type: String,
    /// The bytes.
    pub data: Bytes,
    /// SHA-256 of the bytes, as the wire carries it.
    pub sha256: String,
    /// When it was created.
    pub created: Instant,
    /// Uploaded or generated.
    pub source: Source,
    /// Creation order, for stable list pages.
    seq: u64,
}

/// What a new upload declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewFile {
    /// A name the client chose (`files/my-id`), if any.
    pub name: Option<String>,
    /// `displayName`.
    pub display_name: String,
    /// The MIME type.
    pub mime_type: String,
    /// The size the client will send.
    pub size: u64,
}

/// One `X-Goog-Upload-Command`: a comma-separated list of `upload`, `finalize` and `query`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The body is data at `X-Goog-Upload-Offset`.
    pub upload: bool,
    /// Nothing follows: make the file.
    pub finalize: bool,
    /// Report how much was received.
    pub query: bool,
}

impl Command {
    /// Reads the header; `None` for an empty or unknown command.
    pub fn parse(text: &str) -> Option<Command> {
        let mut command = Command::default();
        for word in text.split(',').map(str::trim) {
            match word.to_ascii_lowercase().as_str() {
                "upload" => command.upload = true,
                "finalize" => command.finalize = true,
                "query" => command.query = true,
                _ => return None,
            }
        }
        (command != Command::default()).then_some(command)
    }
}

/// Where an upload stands after a chunk.
#[derive(Clone, Debug)]
pub enum Progress {
    /// More may come (`x-goog-upload-status: active`); this many bytes are in.
    Active {
        /// Bytes received so far.
        received: u64,
    },
    /// The file is made (`final`).
    Final(StoredFile),
}

/// A refused chunk: the error, and whether the session is still open (`active`) or over
/// (`final`), which the answer's `x-goog-upload-status` says.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadError {
    /// The error body.
    pub error: ApiError,
    /// True when the session is gone.
    pub session_over: bool,
    /// Bytes received, when the session is still open (so the client can resume).
    pub received: Option<u64>,
}

impl UploadError {
    fn over(error: ApiError) -> UploadError {
        UploadError {
            error,
            session_over: true,
            received: None,
        }
    }
}

/// An upload in progress.
#[derive(Debug)]
struct Session {
    project: u64,
    file_id: String,
    display_name: String,
    mime_type: String,
    declared: u64,
    received: Vec<u8>,
    started: Instant,
}

/// The store: files, open upload sessions, and the bytes they hold.
pub struct FileStore {
    limits: Batch,
    files: HashMap<String, StoredFile>,
    sessions: HashMap<String, Session>,
    /// Bytes of files plus the declared sizes of open sessions.
    stored_bytes: u64,
    /// File ids: from the seed, so a run repeats.
    rng: SmallRng,
    /// Upload ids: the only credential of an upload (its chunks carry no key), so drawn from
    /// a per-process random seed, never from the configured one.
    upload_rng: SmallRng,
    next_seq: u64,
}

impl FileStore {
    /// An empty store with these limits; ids are drawn from `seed`.
    pub fn new(limits: Batch, seed: u64) -> FileStore {
        FileStore {
            limits,
            files: HashMap::new(),
            sessions: HashMap::new(),
            stored_bytes: 0,
            rng: SmallRng::seed_from_u64(mix(seed, 0xf11e)),
            upload_rng: SmallRng::seed_from_u64(unpredictable_seed()),
            next_seq: 0,
        }
    }

    /// Opens an upload session for `project`; returns the upload id.
    pub fn start_upload(
        &mut self,
        project: u64,
        file: NewFile,
        now: Instant,
    ) -> Result<String, ApiError> {
        self.expire(now);
        check_text("displayName", &file.display_name, MAX_DISPLAY_NAME)?;
        check_text("mimeType", &file.mime_type, MAX_MIME_TYPE)?;
        if file.mime_type.is_empty() {
            return Err(ApiError::invalid_argument(
                "The upload has no MIME type: send X-Goog-Upload-Header-Content-Type.",
            ));
        }
        if file.size > self.limits.max_file_bytes {
            return Err(ApiError::payload_too_large(
                usize::try_from(self.limits.max_file_bytes).unwrap_or(usize::MAX),
            ));
        }
        let file_id = match &file.name {
            Some(name) => self.claim_name(name)?,
            None => self.new_file_id(),
        };
        if self.files.len() + self.sessions.len() >= self.limits.max_files {
            return Err(ApiError::storage_exhausted(self.limits.max_stored_bytes));
        }
        if self.sessions.len() >= MAX_UPLOAD_SESSIONS {
            self.forget_oldest_session();
        }
        if self.stored_bytes.saturating_add(file.size) > self.limits.max_stored_bytes {
            return Err(ApiError::storage_exhausted(self.limits.max_stored_bytes));
        }
        self.stored_bytes += file.size;
        let upload_id = lowercase_id(&mut self.upload_rng, UPLOAD_ID_LEN);
        self.sessions.insert(
            upload_id.clone(),
            Session {
                project,
                file_id,
                display_name: file.display_name,
                mime_type: file.mime_type,
                declared: file.size,
                received: Vec::new(),
                started: now,
            },
        );
        Ok(upload_id)
    }

    /// The bytes an open session still expects, or `None` if there is no such session.
    pub fn remaining(&self, upload_id: &str) -> Option<u64> {
        self.sessions
            .get(upload_id)
            .map(|s| s.declared - s.received.len() as u64)
    }

    /// Ends a session without making a file (a chunk that could not be read, say).
    pub fn abandon(&mut self, upload_id: &str) {
        if let Some(session) = self.sessions.remove(upload_id) {
            self.stored_bytes = self.stored_bytes.saturating_sub(session.declared);
        }
    }

    /// Applies one chunk request to a session.
    pub fn receive(
        &mut self,
        upload_id: &str,
        command: Command,
        offset: Option<u64>,
        chunk: Bytes,
        now: Instant,
    ) -> Result<Progress, UploadError> {
        self.expire(now);
        let Some(session) = self.sessions.get_mut(upload_id) else {
            return Err(UploadError::over(ApiError::entity_not_found()));
        };
        let received = session.received.len() as u64;
        if command.query {
            return Ok(Progress::Active { received });
        }
        if command.upload {
            let still_open = |error| UploadError {
                error,
                session_over: false,
                received: Some(received),
            };
            let Some(offset) = offset else {
                return Err(still_open(ApiError::invalid_argument(
                    "An upload command needs X-Goog-Upload-Offset.",
                )));
            };
            if offset != received {
                return Err(still_open(ApiError::invalid_argument(format!(
                    "Invalid X-Goog-Upload-Offset {offset}: {received} bytes were received so \
                     far; send the next chunk at that offset."
                ))));
            }
            if received + chunk.len() as u64 > session.declared {
                let declared = session.declared;
                self.abandon(upload_id);
                return Err(UploadError::over(ApiError::invalid_argument(format!(
                    "The upload is longer than the {declared} bytes it declared \
                     (X-Goog-Upload-Header-Content-Length)."
                ))));
            }
            session.received.extend_from_slice(&chunk);
        }
        if !command.finalize {
            return Ok(Progress::Active {
                received: session.received.len() as u64,
            });
        }
        let received = session.received.len() as u64;
        if received != session.declared {
            let declared = session.declared;
            self.abandon(upload_id);
            return Err(UploadError::over(ApiError::invalid_argument(format!(
                "The upload was finalized after {received} bytes; it declared {declared} \
                 (X-Goog-Upload-Header-Content-Length)."
            ))));
        }
        let Some(session) = self.sessions.remove(upload_id) else {
            return Err(UploadError::over(ApiError::entity_not_found()));
        };
        let file = self.make_file(
            session.file_id,
            session.project,
            session.display_name,
            session.mime_type,
            Bytes::from(session.received),
            Source::Uploaded,
            now,
        );
        // The reservation made at start becomes the file's own bytes.
        self.files.insert(file.id.clone(), file.clone());
        Ok(Progress::Final(file))
    }

    /// Stores a generated file (a batch job's results) under `id`. Its bytes count toward the
    /// stored total but are never refused: the service wrote them, the client did not ask.
    pub fn insert_generated(
        &mut self,
        project: u64,
        id: String,
        mime_type: &str,
        data: Bytes,
        now: Instant,
    ) {
        self.expire(now);
        if let Some(old) = self.files.remove(&id) {
            self.stored_bytes = self.stored_bytes.saturating_sub(old.data.len() as u64);
        }
        self.stored_bytes += data.len() as u64;
        let file = self.make_file(
            id,
            project,
            String::new(),
            mime_type.to_string(),
            data,
            Source::Generated,
            now,
        );
        self.files.insert(file.id.clone(), file);
    }

    /// The file `id` of `project`, if it exists and has not expired.
    pub fn get(&mut self, project: u64, id: &str, now: Instant) -> Option<&StoredFile> {
        self.expire(now);
        self.files.get(id).filter(|f| f.project == project)
    }

    /// Deletes the file `id` of `project`; false if there was none.
    pub fn delete(&mut self, project: u64, id: &str, now: Instant) -> bool {
        self.expire(now);
        if self.files.get(id).is_none_or(|f| f.project != project) {
            return false;
        }
        if let Some(file) = self.files.remove(id) {
            self.stored_bytes = self.stored_bytes.saturating_sub(file.data.len() as u64);
        }
        true
    }

    /// One page of `project`'s files, newest first, after the sequence number `after` (from
    /// the previous page); the sequence number to continue from, if more follow.
    pub fn list(
        &mut self,
        project: u64,
        after: Option<u64>,
        size: usize,
        now: Instant,
    ) -> (Vec<StoredFile>, Option<u64>) {
        self.expire(now);
        let mut mine: Vec<&StoredFile> = self
            .files
            .values()
            .filter(|f| f.project == project && after.is_none_or(|seq| f.seq < seq))
            .collect();
        mine.sort_by_key(|f| std::cmp::Reverse(f.seq));
        let more = mine.len() > size;
        let page: Vec<StoredFile> = mine.into_iter().take(size).cloned().collect();
        let next = more.then(|| page.last().map(|f| f.seq)).flatten();
        (page, next)
    }

    /// Files kept, open sessions, and the bytes they hold.
    pub fn usage(&self) -> (usize, usize, u64) {
        (self.files.len(), self.sessions.len(), self.stored_bytes)
    }

    /// Forgets files older than the file lifetime and sessions older than a week.
    fn expire(&mut self, now: Instant) {
        let lifetime = self.limits.file_lifetime;
        let age = |created: Instant| now.saturating_duration_since(created);
        let mut freed = 0u64;
        self.files.retain(|_, file| {
            let keep = age(file.created) < lifetime;
            if !keep {
                freed += file.data.len() as u64;
            }
            keep
        });
        self.sessions.retain(|_, session| {
            let keep = age(session.started) < SESSION_LIFETIME;
            if !keep {
                freed += session.declared;
            }
            keep
        });
        self.stored_bytes = self.stored_bytes.saturating_sub(freed);
    }

    fn forget_oldest_session(&mut self) {
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.started)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            self.abandon(&id);
        }
    }

    /// A fresh id no file or session uses.
    fn new_file_id(&mut self) -> String {
        loop {
            let id = lowercase_id(&mut self.rng, FILE_ID_LEN);
            if !self.name_taken(&id) {
                return id;
            }
        }
    }

    /// Checks a client-chosen name (`files/my-id` or `my-id`) and returns its id.
    fn claim_name(&self, name: &str) -> Result<String, ApiError> {
        let id = name.strip_prefix("files/").unwrap_or(name);
        let valid = !id.is_empty()
            && id.len() <= 40
            && !id.starts_with('-')
            && !id.ends_with('-')
            && !id.starts_with(GENERATED_PREFIX)
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ApiError::invalid_argument(format!(
                "Invalid file name \"{name}\": an id is 1 to 40 lowercase letters, digits or \
                 dashes, not starting or ending with a dash (and not starting with \
                 \"{GENERATED_PREFIX}\")."
            )));
        }
        if self.name_taken(id) {
            return Err(ApiError::already_exists(&format!("files/{id}")));
        }
        Ok(id.to_string())
    }

    fn name_taken(&self, id: &str) -> bool {
        self.files.contains_key(id) || self.sessions.values().any(|s| s.file_id == id)
    }

    #[allow(clippy::too_many_arguments)]
    fn make_file(
        &mut self,
        id: String,
        project: u64,
        display_name: String,
        mime_type: String,
        data: Bytes,
        source: Source,
        now: Instant,
    ) -> StoredFile {
        self.next_seq += 1;
        StoredFile {
            id,
            project,
            display_name,
            mime_type,
            sha256: sha256_base64(&data),
            data,
            created: now,
            source,
            seq: self.next_seq,
        }
    }
}

/// A seed that differs from process to process: the standard library keys every `RandomState`
/// from the operating system's randomness.
fn unpredictable_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Refuses a text over `max` characters.
fn check_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.chars().count() > max {
        return Err(ApiError::invalid_argument(format!(
            "{field} is longer than {max} characters."
        )));
    }
    Ok(())
}

/// The SHA-256 digest as the File resource carries it: base64 of the lowercase hex digest
/// (*assumed*; the SDK documents only "encoded in base64").
fn sha256_base64(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(hex)
}

/// The `File` resource as the API returns it, fields in the order of the reference.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileResource {
    /// `files/<id>`.
    pub name: String,
    /// Left out when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// The declared MIME type.
    pub mime_type: String,
    /// An int64, so a string.
    pub size_bytes: String,
    /// RFC 3339.
    pub create_time: String,
    /// RFC 3339 (files do not change after they are made).
    pub update_time: String,
    /// `create_time` plus the file lifetime.
    pub expiration_time: String,
    /// Base64 of the lowercase hex SHA-256 digest (*assumed* form).
    pub sha256_hash: String,
    /// Where the file lives: this emulator's own address.
    pub uri: String,
    /// Where a generated file is downloaded from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_uri: Option<String>,
    /// Always `ACTIVE`: the emulator has no processing step.
    pub state: &'static str,
    /// `UPLOADED` or `GENERATED`.
    pub source: &'static str,
}

impl FileResource {
    /// The resource of `file`, with URIs on `base` (`https://127.0.0.1:PORT`) and `version`.
    pub fn of(
        file: &StoredFile,
        clock: &WallClock,
        lifetime: Duration,
        base: &str,
        version: &str,
    ) -> FileResource {
        let created = clock.rfc3339(file.created);
        let expires = file.created.checked_add(lifetime).unwrap_or(file.created);
        FileResource {
            name: format!("files/{}", file.id),
            display_name: file.display_name.clone(),
            mime_type: file.mime_type.clone(),
            size_bytes: file.data.len().to_string(),
            update_time: created.clone(),
            create_time: created,
            expiration_time: clock.rfc3339(expires),
            sha256_hash: file.sha256.clone(),
            uri: format!("{base}/{version}/files/{}", file.id),
            download_uri: (file.source == Source::Generated).then(|| {
                format!(
                    "{base}/download/{version}/files/{}:download?alt=media",
                    file.id
                )
            }),
            state: "ACTIVE",
            source: file.source.wire_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(limits: Batch) -> FileStore {
        FileStore::new(limits, 1)
    }

    fn new_file(size: u64) -> NewFile {
        NewFile {
            name: None,
            display_name: "input".into(),
            mime_type: "jsonl".into(),
            size,
        }
    }

    const UPLOAD: Command = Command {
        upload: true,
        finalize: false,
        query: false,
    };
    const LAST: Command = Command {
        upload: true,
        finalize: true,
        query: false,
    };

    #[test]
    fn commands_parse_like_the_sdk_sends_them() {
        assert_eq!(Command::parse("upload"), Some(UPLOAD));
        assert_eq!(Command::parse("upload, finalize"), Some(LAST));
        assert!(Command::parse("query").unwrap().query);
        assert_eq!(Command::parse("start"), None);
        assert_eq!(Command::parse(""), None);
    }

    #[test]
    fn chunks_at_the_right_offsets_make_a_file() {
        let now = Instant::now();
        let mut files = store(Batch::default());
        let upload = files.start_upload(7, new_file(10), now).unwrap();
        assert_eq!(files.remaining(&upload), Some(10));
        let progress = files
            .receive(&upload, UPLOAD, Some(0), Bytes::from_static(b"hello"), now)
            .unwrap();
        assert!(matches!(progress, Progress::Active { received: 5 }));
        let Progress::Final(file) = files
            .receive(&upload, LAST, Some(5), Bytes::from_static(b"world"), now)
            .unwrap()
        else {
            panic!("not final");
        };
        assert_eq!(&file.data[..], b"helloworld");
        assert_eq!(file.id.len(), FILE_ID_LEN);
        // base64 of the hex SHA-256 of "helloworld" (`printf helloworld | sha256sum`).
        assert_eq!(
            file.sha256,
            "OTM2YTE4NWNhYWEyNjZiYjljYmU5ODFlOWUwNWNiNzhjZDczMmIwYjMyODBlYjk0NDQxMmJiNmY4ZjhmMDdhZg=="
        );
        assert_eq!(files.usage(), (1, 0, 10));
        assert!(files.get(7, &file.id, now).is_some());
        assert!(
            files.get(8, &file.id, now).is_none(),
            "another project's file"
        );
        assert!(files.delete(7, &file.id, now));
        assert_eq!(files.usage(), (0, 0, 0));
    }

    #[test]
    fn a_wrong_offset_is_refused_and_the_session_stays_open() {
        let now = Instant::now();
        let mut files = store(Batch::default());
        let upload = files.start_upload(7, new_file(4), now).unwrap();
        files
            .receive(&upload, UPLOAD, Some(0), Bytes::from_static(b"ab"), now)
            .unwrap();
        let error = files
            .receive(&upload, LAST, Some(3), Bytes::from_static(b"cd"), now)
            .unwrap_err();
        assert_eq!(
            (error.error.code, error.session_over, error.received),
            (400, false, Some(2))
        );
        assert!(matches!(
            files.receive(&upload, LAST, Some(2), Bytes::from_static(b"cd"), now),
            Ok(Progress::Final(_))
        ));
    }

    #[test]
    fn too_much_too_little_or_too_big_ends_the_session() {
        let now = Instant::now();
        let limits = Batch {
            max_file_bytes: 8,
            ..Batch::default()
        };
        let mut files = store(limits);
        assert_eq!(
            files.start_upload(7, new_file(9), now).unwrap_err().code,
            400
        );
        let upload = files.start_upload(7, new_file(4), now).unwrap();
        let error = files
            .receive(&upload, UPLOAD, Some(0), Bytes::from_static(b"abcde"), now)
            .unwrap_err();
        assert!(error.session_over);
        assert_eq!(files.usage(), (0, 0, 0), "the reservation is released");
        let upload = files.start_upload(7, new_file(4), now).unwrap();
        let error = files
            .receive(&upload, LAST, Some(0), Bytes::from_static(b"ab"), now)
            .unwrap_err();
        assert!(error.session_over);
        let unknown = files
            .receive("nope", LAST, Some(0), Bytes::new(), now)
            .unwrap_err();
        assert_eq!((unknown.error.code, unknown.session_over), (404, true));
    }

    #[test]
    fn storage_and_sessions_are_bounded_and_files_expire() {
        let now = Instant::now();
        let limits = Batch {
            max_stored_bytes: 10,
            file_lifetime: Duration::from_secs(60),
            ..Batch::default()
        };
        let mut files = store(limits);
        let first = files.start_upload(7, new_file(6), now).unwrap();
        assert_eq!(
            files.start_upload(7, new_file(6), now).unwrap_err().code,
            429
        );
        files
            .receive(&first, LAST, Some(0), Bytes::from_static(b"abcdef"), now)
            .unwrap();
        let later = now + Duration::from_secs(60);
        assert_eq!(files.usage().0, 1);
        assert!(
            files.start_upload(7, new_file(6), later).is_ok(),
            "the old file expired"
        );
        assert_eq!(files.usage(), (0, 1, 6));
        for _ in 0..MAX_UPLOAD_SESSIONS + 5 {
            files.start_upload(7, new_file(0), later).unwrap();
        }
        assert_eq!(files.usage().1, MAX_UPLOAD_SESSIONS);
    }

    #[test]
    fn chosen_names_are_checked() {
        let now = Instant::now();
        let mut files = store(Batch::default());
        let named = |name: &str| NewFile {
            name: Some(name.into()),
            ..new_file(0)
        };
        let upload = files.start_upload(7, named("files/my-input"), now).unwrap();
        let Ok(Progress::Final(file)) = files.receive(&upload, LAST, Some(0), Bytes::new(), now)
        else {
            panic!("not final");
        };
        assert_eq!(file.id, "my-input");
        assert_eq!(
            files
                .start_upload(7, named("my-input"), now)
                .unwrap_err()
                .code,
            409
        );
        for bad in ["-x", "Upper", "batch-x", "a_b", ""] {
            assert_eq!(
                files.start_upload(7, named(bad), now).unwrap_err().code,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn list_pages_are_stable_newest_first() {
        let now = Instant::now();
        let mut files = store(Batch::default());
        for i in 0..5u8 {
            files.insert_generated(
                7,
                format!("batch-{i}"),
                "application/jsonl",
                Bytes::from(vec![i]),
                now,
            );
        }
        files.insert_generated(
            8,
            "batch-other".into(),
            "application/jsonl",
            Bytes::new(),
            now,
        );
        let (page, next) = files.list(7, None, 2, now);
        assert_eq!(
            page.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["batch-4", "batch-3"]
        );
        let (page, next) = files.list(7, next, 2, now);
        assert_eq!(
            page.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["batch-2", "batch-1"]
        );
        let (page, next) = files.list(7, next, 2, now);
        assert_eq!(
            page.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["batch-0"]
        );
        assert_eq!(next, None);
    }
}
