//! A job's input: which prompts, under which keys and which display name,
//! sent inline or as an uploaded JSONL file.
//!
//! * **Keys.** Each request of a job carries a key, echoed beside its
//!   answer, since results do not come back in input order (docs/wire.md#batch-mode).
//!   The key is the prompt's own id: a string id as it is, a numeric id (or
//!   a line number) as its digits. Two ids that would be the same key are
//!   refused before anything is sent.
//! * **Names.** A job's display name is `bulk-<set>-<n>`: `<set>` a hash of
//!   the journal's identity, the model and the set of prompts (their keys
//!   and fingerprints), `<n>` the how-many-th job for that set. It is chosen,
//!   and written to the ledger, before the create call: that is how a job is
//!   found again after a crash (see [`crate::batch::ledger`]).
//! * **Inline or file.** The requests go inline in the create call while its
//!   body stays under `--batch-inline-max` (the API takes 20 MB); beyond, as
//!   a JSONL file (`{"key": ..., "request": {...}}` per line), uploaded first.
//!   The file is never held whole: its size is measured in one pass over the
//!   prompts, and its bytes made again, chunk by chunk, as they are sent.
//! * **Size.** A file may hold 2 GB; a larger set is cut into several jobs.

use std::collections::HashMap;

use common::{Error, GenerateContentRequest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    batch::{
        api::{Chunks, UPLOAD_CHUNK},
        error::BatchError,
    },
    prompts::Prompts,
};

/// The most bytes of requests put in one job's file (the API takes 2 GB):
/// a prompt's bytes are estimated high, so a file stays under it.
pub const FILE_MAX: u64 = 1_900_000_000;

/// The batch key of every prompt, and the prompt of every key.
#[derive(Debug)]
pub struct Keys {
    of: Vec<String>,
    index: HashMap<String, usize>,
}

impl Keys {
    /// The keys of `prompts`; two ids with one key are an error.
    pub fn new(prompts: &Prompts) -> Result<Keys, BatchError> {
        let mut of = Vec::with_capacity(prompts.len());
        let mut index = HashMap::with_capacity(prompts.len());
        for i in 0..prompts.len() {
            let key = batch_key(&prompts.id(i));
            if let Some(first) = index.insert(key.clone(), i) {
                return Err(BatchError::SameKey {
                    first: prompts.key(first),
                    second: prompts.key(i),
                    key,
                });
            }
            of.push(key);
        }
        Ok(Keys { of, index })
    }

    /// Prompt `index`'s key.
    pub fn key(&self, index: usize) -> &str {
        &self.of[index]
    }

    /// The prompt whose key is `key`.
    pub fn index(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
}

/// A prompt id as a job's key: a string as it is, a number as its digits.
fn batch_key(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Some prompts to send as one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The prompts (indices into the prompts).
    pub indices: Vec<usize>,
    /// Their estimated input tokens (what the enqueued-token quota counts).
    pub tokens: u64,
}

impl Chunk {
    /// The prompts `indices` as one job.
    pub fn of(prompts: &Prompts, indices: Vec<usize>) -> Chunk {
        let tokens = indices.iter().map(|&i| u64::from(prompts.tokens(i))).sum();
        Chunk { indices, tokens }
    }

    /// Cut in two halves (a job over the enqueued-token quota); `None` for one prompt.
    pub fn halves(&self, prompts: &Prompts) -> Option<(Chunk, Chunk)> {
        if self.indices.len() < 2 {
            return None;
        }
        let (a, b) = self.indices.split_at(self.indices.len() / 2);
        Some((
            Chunk::of(prompts, a.to_vec()),
            Chunk::of(prompts, b.to_vec()),
        ))
    }
}

/// Cuts `indices` into jobs whose files stay under [`FILE_MAX`].
pub fn chunks(prompts: &Prompts, indices: &[usize]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0u64;
    for &i in indices {
        // A token is about three characters, a character at most four bytes;
        // the line's key and wrapping are well under 200 more.
        let estimate = u64::from(prompts.tokens(i)) * 12 + 200;
        if !current.is_empty() && bytes + estimate > FILE_MAX {
            out.push(Chunk::of(prompts, std::mem::take(&mut current)));
            bytes = 0;
        }
        current.push(i);
        bytes += estimate;
    }
    if !current.is_empty() {
        out.push(Chunk::of(prompts, current));
    }
    out
}

/// The hash of a set of prompts for one journal and model: the `<set>` of
/// a display name. The same prompts (keys and texts), journal and model give
/// the same hash, in any order.
pub fn set_hash(
    journal: &str,
    model: &str,
    prompts: &Prompts,
    keys: &Keys,
    chunk: &Chunk,
) -> String {
    let mut members: Vec<(&str, u64)> = chunk
        .indices
        .iter()
        .map(|&i| (keys.key(i), prompts.hash(i)))
        .collect();
    members.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(b"bulk batch set\0");
    hasher.update(journal.as_bytes());
    hasher.update(b"\0");
    hasher.update(model.as_bytes());
    for (key, hash) in members {
        hasher.update(b"\0");
        hasher.update(key.as_bytes());
        hasher.update(b"\0");
        hasher.update(hash.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `bulk-<set>-<attempt>`.
pub fn display_name(set: &str, attempt: u32) -> String {
    format!("bulk-{set}-{attempt}")
}

/// A job's input, ready to send.
pub enum Input<'a> {
    /// The whole create body, requests inline.
    Inline(Vec<u8>),
    /// A JSONL file to upload first, made as it is sent.
    File(Jsonl<'a>),
}

/// The request of prompt `index`, as JSON bytes.
fn request_bytes(prompts: &Prompts, index: usize) -> Result<Vec<u8>, BatchError> {
    let loaded = prompts.load(index)?;
    let request = GenerateContentRequest::from_prompt(&loaded.prompt);
    Ok(serde_json::to_vec(&request).unwrap_or_default())
}

/// The input of `chunk`: inline while the create body stays within
/// `inline_max` bytes, else a file.
pub fn input<'a>(
    prompts: &'a Prompts,
    keys: &'a Keys,
    chunk: &'a Chunk,
    display_name: &str,
    inline_max: u64,
) -> Result<Input<'a>, BatchError> {
    let head = serde_json::to_vec(&json!({"batch": {
        "displayName": display_name,
        "inputConfig": {"requests": {"requests": []}},
    }}))
    .unwrap_or_default();
    // The body is the head with the items where its `[]` is.
    let open = head
        .windows(2)
        .position(|w| w == b"[]")
        .map_or(0, |p| p + 1);
    let mut body = head[..open].to_vec();
    let mut inline = inline_max > 0;
    for (n, &i) in chunk.indices.iter().enumerate() {
        if !inline {
            break;
        }
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"request\":");
        body.extend_from_slice(&request_bytes(prompts, i)?);
        body.extend_from_slice(b",\"metadata\":");
        body.extend_from_slice(
            &serde_json::to_vec(&json!({"key": keys.key(i)})).unwrap_or_default(),
        );
        body.push(b'}');
        inline = (body.len() + head.len() - open) as u64 <= inline_max;
    }
    if inline {
        body.extend_from_slice(&head[open..]);
        return Ok(Input::Inline(body));
    }
    Jsonl::new(prompts, keys, chunk).map(Input::File)
}

/// A job's requests as a JSONL file, made line by line as it is uploaded.
pub struct Jsonl<'a> {
    prompts: &'a Prompts,
    keys: &'a Keys,
    chunk: &'a Chunk,
    /// The next prompt (a position in the chunk).
    next: usize,
    /// Bytes made but not handed out yet.
    buffer: Vec<u8>,
    /// The file's size, measured before the upload.
    size: u64,
}

impl<'a> Jsonl<'a> {
    /// Measures the file of `chunk` (one pass over its prompts).
    fn new(
        prompts: &'a Prompts,
        keys: &'a Keys,
        chunk: &'a Chunk,
    ) -> Result<Jsonl<'a>, BatchError> {
        let mut size = 0u64;
        for &i in &chunk.indices {
            size += line(prompts, keys, i)?.len() as u64;
        }
        Ok(Jsonl {
            prompts,
            keys,
            chunk,
            next: 0,
            buffer: Vec::new(),
            size,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Prompt `index`'s line: `{"key": ..., "request": {...}}` and a newline.
fn line(prompts: &Prompts, keys: &Keys, index: usize) -> Result<Vec<u8>, BatchError> {
    let mut line = b"{\"key\":".to_vec();
    line.extend_from_slice(&serde_json::to_vec(keys.key(index)).unwrap_or_default());
    line.extend_from_slice(b",\"request\":");
    line.extend_from_slice(&request_bytes(prompts, index)?);
    line.extend_from_slice(b"}\n");
    Ok(line)
}

impl Chunks for Jsonl<'_> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        while self.buffer.len() < UPLOAD_CHUNK && self.next < self.chunk.indices.len() {
            let index = self.chunk.indices[self.next];
            let line =
                line(self.prompts, self.keys, index).map_err(|e| Error::Config(e.to_string()))?;
            self.buffer.extend_from_slice(&line);
            self.next += 1;
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let take = self.buffer.len().min(UPLOAD_CHUNK);
        let rest = self.buffer.split_off(take);
        Ok(Some(std::mem::replace(&mut self.buffer, rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(dir: &std::path::Path, text: &str) -> Prompts {
        let path = dir.join("p.jsonl");
        std::fs::write(&path, text).expect("written");
        Prompts::read(&path).expect("indexes")
    }

    #[test]
    fn keys_are_the_ids_and_a_clash_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(
            dir.path(),
            "{\"prompt\":\"a\",\"id\":\"q1\"}\n{\"prompt\":\"b\",\"id\":7}\nthird\n",
        );
        let keys = Keys::new(&p).expect("distinct");
        assert_eq!((keys.key(0), keys.key(1), keys.key(2)), ("q1", "7", "3"));
        assert_eq!(keys.index("7"), Some(1));
        let p = prompts(
            dir.path(),
            "{\"prompt\":\"a\",\"id\":\"7\"}\n{\"prompt\":\"b\",\"id\":7}\n",
        );
        let error = Keys::new(&p).expect_err("a clash").to_string();
        assert!(error.contains("\"7\" and 7"), "{error}");
    }

    #[test]
    fn a_set_has_one_name_whatever_its_order() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "a\nb\nc\n");
        let keys = Keys::new(&p).expect("distinct");
        let ab = set_hash("j", "m", &p, &keys, &Chunk::of(&p, vec![0, 1]));
        let ba = set_hash("j", "m", &p, &keys, &Chunk::of(&p, vec![1, 0]));
        assert_eq!(ab, ba);
        assert_eq!(ab.len(), 16);
        assert_ne!(
            ab,
            set_hash("j", "m", &p, &keys, &Chunk::of(&p, vec![0, 2]))
        );
        assert_ne!(
            ab,
            set_hash("other journal", "m", &p, &keys, &Chunk::of(&p, vec![0, 1]))
        );
        assert_ne!(
            ab,
            set_hash("j", "m2", &p, &keys, &Chunk::of(&p, vec![0, 1]))
        );
        assert_eq!(display_name(&ab, 2), format!("bulk-{ab}-2"));
    }

    #[test]
    fn requests_go_inline_under_the_limit_and_as_a_file_over_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "{\"prompt\":\"a\",\"id\":\"q1\"}\nsecond\n");
        let keys = Keys::new(&p).expect("distinct");
        let chunk = Chunk::of(&p, vec![0, 1]);
        let Ok(Input::Inline(body)) = input(&p, &keys, &chunk, "bulk-x-1", 20_000_000) else {
            panic!("inline");
        };
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        let items = &body["batch"]["inputConfig"]["requests"]["requests"];
        assert_eq!(items[0]["metadata"]["key"], "q1");
        assert_eq!(
            items[1]["request"]["contents"][0]["parts"][0]["text"],
            "second"
        );
        assert_eq!(body["batch"]["displayName"], "bulk-x-1");

        let Ok(Input::File(mut file)) = input(&p, &keys, &chunk, "bulk-x-1", 100) else {
            panic!("a file");
        };
        let size = file.size();
        let mut bytes = Vec::new();
        while let Some(chunk) = file.next_chunk().expect("made") {
            bytes.extend(chunk);
        }
        assert_eq!(bytes.len() as u64, size, "the size measured first");
        let lines: Vec<Value> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines[1]["key"], "2");
        assert_eq!(lines[0]["request"]["contents"][0]["parts"][0]["text"], "a");
        assert!(matches!(
            input(&p, &keys, &chunk, "n", 0),
            Ok(Input::File(_))
        ));
    }

    #[test]
    fn halves_and_files_cut_a_set_in_jobs() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let p = prompts(dir.path(), "a\nb\nc\n");
        let chunk = Chunk::of(&p, vec![0, 1, 2]);
        let (a, b) = chunk.halves(&p).expect("three prompts");
        assert_eq!((a.indices, b.indices), (vec![0], vec![1, 2]));
        assert!(Chunk::of(&p, vec![0]).halves(&p).is_none());
        assert_eq!(chunks(&p, &[0, 1, 2]), vec![chunk]);
    }
}
