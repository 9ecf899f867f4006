//! Which answers of an earlier run still answer this run's prompts, after
//! the prompts file was edited.
//!
//! The journal names each answer by the prompt's id and a fingerprint of its
//! text. Prompts files change between runs, and every change must leave the
//! user a way on that does not pay again for an answer already held:
//!
//! * **Same id, same text**: the answer stands, the prompt is not sent.
//! * **Same id, another text, never answered** (it failed, say "can never
//!   fit ... shorten the prompt", and was shortened): it is simply sent; there
//!   was nothing to keep. One line names these.
//! * **Same text, another id**: the answer followed its prompt. In a plain
//!   text file the id is the line number, so removing or inserting one line
//!   moves every line after it; a JSONL id may be renamed. Such an answer is
//!   matched by its text, not sent again, and filed again under its new id
//!   (see [`crate::journal`]). Only answers no current prompt claims by id are
//!   matched this way, so prompts sent several times on purpose (the same
//!   text under several ids) keep their own answers.
//! * **Same id, another text, answered**: the prompt was edited after it was
//!   answered. Sending it again would pay again, so it is not done silently:
//!   the run stops before sending anything and names these ids, and
//!   `--resend-changed` sends them (and only them) again.
//! * **An answer to a text no current prompt has** (its line was removed):
//!   it stays in the file, unused, and one line says how many.
//!
//! [`Matcher`] takes the journal's rows one by one (the journal may be far
//! larger than memory should hold: only the answers that lost their id are
//! kept) and says what stands in a [`Reconciled`].

use std::collections::{HashMap, HashSet, VecDeque};

use crate::prompts::Prompts;

/// How many ids a message lists before "and N more".
const LISTED: usize = 5;

/// One row of an earlier run, as the matcher needs it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id, as compact JSON (`"p7"`, `7`).
    pub key: String,
    /// The fingerprint of the prompt it answered (`None`: unreadable).
    pub hash: Option<u64>,
    /// Whether it holds an answer.
    pub ok: bool,
    /// The line it came from, if it says.
    pub line: Option<u64>,
    /// Where the row starts in the journal, to file it again.
    pub offset: u64,
}

/// An answer that followed its prompt to another id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The prompt it answers now.
    pub index: usize,
    /// Where it was filed, as a message names it (`line 3`, `id "p3"`).
    pub from: String,
    /// Where its row starts in the journal.
    pub offset: u64,
}

/// What the journal's rows say about this run's prompts.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// For each prompt, whether an answer to its text is held.
    pub done: Vec<bool>,
    /// Rows whose id is one of the prompts', or whose answer followed its
    /// prompt: zero means the journal belongs to other prompts.
    pub known: usize,
    /// Answers matched by their text to a prompt under another id.
    pub moved: Vec<Moved>,
    /// Prompts answered under their id for a text they no longer have.
    pub changed: Vec<usize>,
    /// Prompts that failed under their id with another text, never answered.
    pub edited_failed: Vec<usize>,
    /// Answers to texts no prompt has now, as messages name them.
    pub removed: Vec<String>,
}

/// An answer that lost its id: its prompt's text changed, or the id is gone.
#[derive(Debug)]
struct Candidate {
    /// The prompt that has its id now, if one does.
    owner: Option<usize>,
    /// Its id, as a message names it.
    name: String,
    hash: u64,
    offset: u64,
    claimed: bool,
}

/// Reads the rows of a journal against the prompts of a run.
pub struct Matcher<'a> {
    prompts: &'a Prompts,
    index_of: HashMap<String, usize>,
    done: Vec<bool>,
    known: usize,
    candidates: Vec<Candidate>,
    failed_under_another_text: HashSet<usize>,
}

impl<'a> Matcher<'a> {
    /// A matcher for `prompts`, with no row read yet.
    pub fn new(prompts: &'a Prompts) -> Matcher<'a> {
        Matcher {
            prompts,
            index_of: (0..prompts.len()).map(|i| (prompts.key(i), i)).collect(),
            done: vec![false; prompts.len()],
            known: 0,
            candidates: Vec::new(),
            failed_under_another_text: HashSet::new(),
        }
    }

    /// Takes one row into account.
    pub fn row(&mut self, row: Row) {
        let owner = self.index_of.get(&row.key).copied();
        if let Some(index) = owner {
            self.known += 1;
            if row.hash == Some(self.prompts.hash(index)) {
                if row.ok {
                    self.done[index] = true;
                }
                return;
            }
            if !row.ok {
                self.failed_under_another_text.insert(index);
            }
        }
        if let (true, Some(hash)) = (row.ok, row.hash) {
            self.candidates.push(Candidate {
                owner,
                name: row_name(&row),
                hash,
                offset: row.offset,
                claimed: false,
            });
        }
    }

    /// What stands, once every row was read.
    pub fn finish(mut self) -> Reconciled {
        let moved = self.follow_moved_answers();
        let done_texts: HashSet<u64> = (0..self.done.len())
            .filter(|&i| self.done[i])
            .map(|i| self.prompts.hash(i))
            .collect();
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for candidate in self.candidates.iter().filter(|c| !c.claimed) {
            match candidate.owner {
                Some(index) if !self.done[index] => changed.push(index),
                // An answer whose text is still answered is history (the
                // same prompt answered again), not a removal.
                _ if done_texts.contains(&candidate.hash) => {}
                _ => removed.push(candidate.name.clone()),
            }
        }
        changed.sort_unstable();
        changed.dedup();
        removed.sort_unstable();
        removed.dedup();
        let mut edited_failed: Vec<usize> = self
            .failed_under_another_text
            .iter()
            .copied()
            .filter(|&i| !self.done[i] && changed.binary_search(&i).is_err())
            .collect();
        edited_failed.sort_unstable();
        Reconciled {
            known: self.known + moved.len(),
            done: self.done,
            moved,
            changed,
            edited_failed,
            removed,
        }
    }

    /// Gives each prompt without an answer one that lost its id and answers
    /// its very text, if there is one (the latest such).
    fn follow_moved_answers(&mut self) -> Vec<Moved> {
        let mut by_text: HashMap<u64, VecDeque<usize>> = HashMap::new();
        for (at, candidate) in self.candidates.iter().enumerate() {
            by_text.entry(candidate.hash).or_default().push_back(at);
        }
        let mut moved = Vec::new();
        for index in 0..self.done.len() {
            if self.done[index] {
                continue;
            }
            let Some(at) = by_text
                .get_mut(&self.prompts.hash(index))
                .and_then(VecDeque::pop_back)
            else {
                continue;
            };
            let candidate = &mut self.candidates[at];
            candidate.claimed = true;
            self.done[index] = true;
            moved.push(Moved {
                index,
                from: candidate.name.clone(),
                offset: candidate.offset,
            });
        }
        moved
    }
}

impl Reconciled {
    /// How many prompts have their answer.
    pub fn answered(&self) -> usize {
        self.done.iter().filter(|&&done| done).count()
    }

    /// The lines that say what the edits changed, for the user (`file` is
    /// the journal's name). `resent` says whether the changed prompts are
    /// sent again (`--resend-changed`).
    pub fn notes(&self, prompts: &Prompts, file: &str, resent: bool) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.moved.is_empty() {
            let moves: Vec<String> = self
                .moved
                .iter()
                .map(|m| format!("{} is now {}", m.from, prompts.describe(m.index)))
                .collect();
            notes.push(format!(
                "{} answer(s) in {file} followed their prompt to another id or line ({}): matched by the prompt's text, not sent again, filed again under the new id",
                self.moved.len(),
                listed(&moves)
            ));
        }
        if !self.edited_failed.is_empty() {
            notes.push(format!(
                "{} prompt(s) edited since they failed ({}): sent again; no answer was held for them",
                self.edited_failed.len(),
                described(prompts, &self.edited_failed)
            ));
        }
        if resent && !self.changed.is_empty() {
            notes.push(format!(
                "{} prompt(s) changed since they were answered ({}): sent again (--resend-changed); their earlier answers stay in {file}",
                self.changed.len(),
                described(prompts, &self.changed)
            ));
        }
        if !self.removed.is_empty() {
            notes.push(format!(
                "{} earlier answer(s) in {file} answer a prompt text no longer in the prompts ({}): they stay in the file, unused",
                self.removed.len(),
                listed(&self.removed)
            ));
        }
        notes
    }
}

/// The prompts at `indices`, as a message lists them.
pub fn described(prompts: &Prompts, indices: &[usize]) -> String {
    let names: Vec<String> = indices.iter().map(|&i| prompts.describe(i)).collect();
    listed(&names)
}

/// `a, b, c, d, e and 7 more`.
fn listed(names: &[String]) -> String {
    let shown = names[..names.len().min(LISTED)].join(", ");
    match names.len().saturating_sub(LISTED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// A row's id as a message names it: `line 7` when its id was its line
/// number, else `id "p7"`.
fn row_name(row: &Row) -> String {
    match row.line {
        Some(line) if row.key == line.to_string() => format!("line {line}"),
        _ => format!("id {}", row.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::fingerprint;

    fn prompts(text: &str) -> Prompts {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("p.txt");
        std::fs::write(&path, text).expect("written");
        Prompts::read(&path).expect("indexes")
    }

    /// The rows a run answering (or failing) `lines` would have written.
    fn rows(lines: &[(&str, &str, bool)]) -> Vec<Row> {
        lines
            .iter()
            .enumerate()
            .map(|(n, &(key, text, ok))| Row {
                key: key.to_string(),
                hash: Some(fingerprint(text)),
                ok,
                line: key.parse().ok(),
                offset: n as u64 * 100,
            })
            .collect()
    }

    fn reconcile(prompts: &Prompts, rows: Vec<Row>) -> Reconciled {
        let mut matcher = Matcher::new(prompts);
        for row in rows {
            matcher.row(row);
        }
        matcher.finish()
    }

    #[test]
    fn a_failed_prompt_edited_is_sent_again_and_the_rest_stands() {
        let p = prompts("a\nb shorter\nc\n");
        let r = reconcile(
            &p,
            rows(&[
                ("1", "a", true),
                ("2", "b very long", false),
                ("3", "c", true),
            ]),
        );
        assert_eq!(r.done, [true, false, true]);
        assert_eq!((r.edited_failed.as_slice(), r.changed.len()), (&[1][..], 0));
        let notes = r.notes(&p, "out.jsonl", false);
        assert!(
            notes[0].contains("edited since they failed (line 2)"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_removed_line_moves_the_answers_after_it_instead_of_changing_them() {
        let p = prompts("a\nc\nd\n");
        let r = reconcile(
            &p,
            rows(&[
                ("1", "a", true),
                ("2", "b", true),
                ("3", "c", true),
                ("4", "d", true),
            ]),
        );
        assert_eq!(r.done, [true, true, true]);
        assert!(r.changed.is_empty(), "{:?}", r.changed);
        let moved: Vec<(usize, &str)> =
            r.moved.iter().map(|m| (m.index, m.from.as_str())).collect();
        assert_eq!(moved, [(1, "line 3"), (2, "line 4")]);
        assert_eq!(r.removed, ["line 2"]);
        let notes = r.notes(&p, "out.jsonl", false).join("\n");
        assert!(notes.contains("line 3 is now line 2"), "{notes}");
        assert!(
            notes.contains("no longer in the prompts (line 2)"),
            "{notes}"
        );
    }

    #[test]
    fn an_answered_prompt_edited_is_changed_and_named() {
        let p = prompts("a\nB!\nc\n");
        let r = reconcile(
            &p,
            rows(&[("1", "a", true), ("2", "b", true), ("3", "c", true)]),
        );
        assert_eq!(r.done, [true, false, true]);
        assert_eq!(r.changed, [1]);
        assert!(
            r.removed.is_empty(),
            "the old answer is the changed prompt's"
        );
        assert_eq!(described(&p, &r.changed), "line 2");
        // Answered again later: the old answer is history, not a change.
        let mut again = rows(&[("1", "a", true), ("2", "b", true), ("3", "c", true)]);
        again.extend(rows(&[("2", "B!", true)]));
        let r = reconcile(&p, again);
        assert_eq!(r.done, [true, true, true]);
        assert!(r.changed.is_empty());
    }

    #[test]
    fn the_same_text_sent_twice_on_purpose_keeps_its_own_answers() {
        let p = prompts(
            "{\"id\":\"x\",\"prompt\":\"same\"}\n{\"id\":\"y\",\"prompt\":\"same\"}\n{\"id\":\"z\",\"prompt\":\"same\"}\n",
        );
        let r = reconcile(
            &p,
            vec![
                Row {
                    key: "\"x\"".into(),
                    hash: Some(fingerprint("same")),
                    ok: true,
                    line: Some(1),
                    offset: 0,
                },
                Row {
                    key: "\"y\"".into(),
                    hash: Some(fingerprint("same")),
                    ok: true,
                    line: Some(2),
                    offset: 50,
                },
            ],
        );
        // z was never answered: x's and y's answers are theirs, not z's.
        assert_eq!(r.done, [true, true, false]);
        assert!(r.moved.is_empty());
    }

    #[test]
    fn many_ids_are_listed_briefly() {
        let names: Vec<String> = (1..=8).map(|n| format!("line {n}")).collect();
        assert_eq!(
            listed(&names),
            "line 1, line 2, line 3, line 4, line 5 and 3 more"
        );
    }
}
