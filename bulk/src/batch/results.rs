//! A finished job's results, joined to their prompts by key.
//!
//! Results come in an order that is not the input's (users of the real API
//! see it: python-genai#1909, docs/wire.md#batch-mode), so each answer is
//! matched to its prompt by the key it carries, never by position. An inline
//! job's answers are in the operation itself; a file job's are a JSONL file,
//! read a line at a time however large it is. Each prompt of the job is
//! handed over once: a key the job never had, or one seen before, is
//! counted and left out, and a line that is not a result is counted too.

use std::collections::HashSet;

use common::{Error, types::GenerateContentResponse};

use crate::batch::{
    api::BatchApi,
    error::BatchError,
    submit::Keys,
    wire::{Answer, Operation, Status},
};

/// The longest line of a results file read (one answer).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// More lines than the job has requests, past this many, are not read.
const EXTRA_LINES: usize = 1000;

/// One prompt's result.
#[derive(Debug, Clone)]
pub enum LineResult {
    /// The model's answer (a blocked prompt is still a response here).
    Response(Box<GenerateContentResponse>),
    /// Why there is none.
    Error(Status),
}

/// What was odd about a job's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Oddities {
    /// Results whose key is not one of the job's.
    pub unknown_keys: usize,
    /// Results for a prompt already handed over.
    pub duplicates: usize,
    /// Lines that are not a result.
    pub unreadable: usize,
    /// Whether the file held far more lines than the job has requests (the rest was not read).
    pub cut_short: bool,
}

impl Oddities {
    /// One line saying what was odd, if anything was.
    pub fn line(&self, job: &str) -> Option<String> {
        let mut parts = Vec::new();
        if self.unknown_keys > 0 {
            parts.push(format!("{} with a key not in the job", self.unknown_keys));
        }
        if self.duplicates > 0 {
            parts.push(format!("{} for a prompt already answered", self.duplicates));
        }
        if self.unreadable > 0 {
            parts.push(format!("{} unreadable", self.unreadable));
        }
        if self.cut_short {
            parts.push("more lines than requests (the rest was not read)".to_string());
        }
        (!parts.is_empty()).then(|| format!("{job}'s results: {}; left out", parts.join(", ")))
    }
}

/// Hands every result of the finished, succeeded job `operation` whose
/// prompts are `members` to `on`, once per prompt; returns what was odd.
pub async fn read(
    api: &BatchApi,
    operation: &Operation,
    keys: &Keys,
    members: &HashSet<usize>,
    mut on: impl FnMut(usize, LineResult) -> Result<(), BatchError>,
) -> Result<Oddities, BatchError> {
    let mut join = Join {
        keys,
        members,
        seen: HashSet::with_capacity(members.len()),
        oddities: Oddities::default(),
    };
    let output = operation.output();
    if let Some(inline) = output.and_then(|o| o.inlined_responses.as_ref()) {
        for answer in &inline.inlined_responses {
            if let Some((index, result)) = join.take(answer.clone()) {
                on(index, result)?;
            }
        }
        return Ok(join.oddities);
    }
    let Some(file) = output.and_then(|o| o.responses_file.as_deref()) else {
        return Ok(join.oddities);
    };
    let download_error = |source: Error| BatchError::Api {
        what: format!("download the results of {} ({file})", operation.name),
        source,
    };
    let mut body = api.results(file).await.map_err(download_error)?;
    let mut lines = 0usize;
    while let Some(line) = body.next_line(MAX_LINE).await.map_err(download_error)? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        if lines > members.len() + EXTRA_LINES {
            join.oddities.cut_short = true;
            break;
        }
        match serde_json::from_slice::<Answer>(&line) {
            Ok(answer) => {
                if let Some((index, result)) = join.take(answer) {
                    on(index, result)?;
                }
            }
            Err(_) => join.oddities.unreadable += 1,
        }
    }
    Ok(join.oddities)
}

/// The matching of answers to a job's prompts.
struct Join<'a> {
    keys: &'a Keys,
    members: &'a HashSet<usize>,
    seen: HashSet<usize>,
    oddities: Oddities,
}

impl Join<'_> {
    /// The prompt an answer is for and its result, unless it is odd.
    fn take(&mut self, answer: Answer) -> Option<(usize, LineResult)> {
        let index = answer.key().and_then(|key| self.keys.index(&key));
        let Some(index) = index.filter(|i| self.members.contains(i)) else {
            self.oddities.unknown_keys += 1;
            return None;
        };
        if !self.seen.insert(index) {
            self.oddities.duplicates += 1;
            return None;
        }
        let result = match (answer.response, answer.error) {
            (_, Some(status)) => LineResult::Error(status),
            (Some(response), None) => LineResult::Response(Box::new(response)),
            (None, None) => LineResult::Error(Status {
                code: 13,
                message: "the result has neither a response nor an error".into(),
            }),
        };
        Some((index, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::Prompts;

    #[test]
    fn answers_join_by_key_once_each_and_oddities_are_counted() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("p.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\":\"a\",\"id\":\"x\"}\n{\"prompt\":\"b\",\"id\":\"y\"}\nc\n",
        )
        .expect("written");
        let prompts = Prompts::read(&path).expect("indexes");
        let keys = Keys::new(&prompts).expect("distinct");
        let members: HashSet<usize> = [0, 1].into_iter().collect();
        let mut join = Join {
            keys: &keys,
            members: &members,
            seen: HashSet::new(),
            oddities: Oddities::default(),
        };
        let answer = |json: &str| serde_json::from_str::<Answer>(json).expect("an answer");
        // Out of order: y first.
        assert!(matches!(
            join.take(answer(r#"{"key":"y","response":{}}"#)),
            Some((1, LineResult::Response(_)))
        ));
        assert!(matches!(
            join.take(answer(r#"{"metadata":{"key":"x"},"error":{"code":14}}"#)),
            Some((0, LineResult::Error(Status { code: 14, .. })))
        ));
        assert!(join.take(answer(r#"{"key":"y","response":{}}"#)).is_none());
        assert!(
            join.take(answer(r#"{"key":"3","response":{}}"#)).is_none(),
            "not in the job"
        );
        assert!(join.take(answer(r#"{"key":"zz","response":{}}"#)).is_none());
        assert_eq!(
            join.oddities,
            Oddities {
                unknown_keys: 2,
                duplicates: 1,
                ..Oddities::default()
            }
        );
        let line = join.oddities.line("batches/j").expect("odd");
        assert!(line.contains("2 with a key not in the job"), "{line}");
        assert_eq!(Oddities::default().line("j"), None);
    }
}
