//! A batch run: the unanswered prompts through Batch Mode jobs, their
//! answers into the journal, and nothing paid for twice.
//!
//! ```text
//!   1. jobs an earlier run left unfinished (the ledger's open intents):
//!        find each on the server (by name, or by listing its display name),
//!        follow it to its end, write its answers
//!   2. round 0: the prompts still unanswered, as one job (or several: a
//!      2 GB file, or a job over the enqueued-token quota, is cut)
//!        name it, write the intent to the ledger, upload (if a file), create
//!        follow it: batchStats on the bar, a line per state change
//!        its results, joined by key, into the journal, once per prompt
//!   3. rounds 1..=--batch-retries: the lines that failed for the server's
//!      reasons (and the prompts of a FAILED job), in a new job
//!   4. the report: every prompt answered, failed (with its error, in the
//!      journal) or not done (with why: a job CANCELLED or EXPIRED, Ctrl-C)
//! ```
//!
//! Ctrl-C leaves the jobs running on the server: the same command collects
//! their results later, `--cancel-batch` cancels them. A job that ends
//! EXPIRED or CANCELLED leaves its prompts to the next run (it sends them in
//! a new job) and says so in the report; never silently.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use common::{
    Error,
    error::ApiError,
    outcome::{Answer, Attempt, AttemptStatus, Ended, Outcome},
    report::{Report, Summary},
    shutdown::Shutdown,
};
use indicatif::ProgressDrawTarget;
use tokio::time::Instant;

use crate::{
    batch::{
        api::BatchApi,
        error::BatchError,
        ledger::{Entry, Ledger},
        progress::{Figures, Progress},
        results::{self, LineResult},
        submit::{self, Chunk, Input, Keys},
        wire::{Operation, State, Stats, Status, resource_id},
    },
    bill::Meter,
    journal::{self, Journal},
    prices::Mode,
    prompts::Prompts,
    runner::units::seconds,
};

/// The first wait between two looks at the jobs; it doubles up to `--batch-poll`.
const FIRST_POLL: Duration = Duration::from_secs(1);

/// How long a create may take to reach the server: an intent younger than
/// this whose job is not listed is looked for again before it is given up.
const SETTLE: Duration = Duration::from_secs(10);

/// How many times in a row the batch quota may be full before the run
/// gives the rest up (each wait is the server's `retryDelay`).
const MAX_FULL_WAITS: u32 = 10;

/// How many failed looks in a row at one job end the run.
const MAX_POLL_ERRORS: u32 = 10;

/// What a batch run needs to know.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// The model.
    pub model: String,
    /// The longest wait between two looks at the jobs (`--batch-poll`).
    pub poll: Duration,
    /// How many times failed lines go again (`--batch-retries`).
    pub retries: u32,
    /// Inline while the create body is at most this (`--batch-inline-max`).
    pub inline_max: u64,
    /// The journal's identity (its canonical path), part of every job's name.
    pub journal_id: String,
    /// Whether the progress bar is drawn.
    pub draw_bar: bool,
    /// Whether the jobs run on the built-in emulator, which stops with the
    /// run (and its jobs with it).
    pub offline: bool,
    /// The run's one way to stop.
    pub shutdown: Shutdown,
}

/// A job being followed.
#[derive(Debug)]
struct Job {
    display_name: String,
    /// `batches/<id>`.
    name: String,
    /// Its prompts.
    members: Vec<usize>,
    /// When it was created, in the run's time (0 for an earlier run's).
    sent: Duration,
    /// Whether an earlier run created it.
    earlier: bool,
    /// The uploaded input, deleted once the job ended.
    input_file: Option<String>,
    figures: Figures,
    /// Failed looks in a row.
    errors: u32,
}

/// What a create call came to.
enum Created {
    /// A job.
    Job(Job),
    /// The batch quota is full (429): `limit` is the enqueued-token limit
    /// the server named, if it did, and `delay` when to try again.
    Full { limit: Option<u64>, delay: Duration },
}

/// One prompt's story in this run.
#[derive(Debug, Default)]
struct Line {
    attempts: Vec<Attempt>,
    /// Its last failure, and whether a new job may succeed.
    failure: Option<(Error, bool)>,
    /// Why it is left to a later run (a job cancelled, expired, left running).
    stranded: Option<String>,
}

/// The prompts' books: what is answered, failed or stranded, kept apart
/// from the calls so that results can be written while they are read.
struct Book<'a> {
    prompts: &'a Prompts,
    journal: Arc<Journal>,
    report: Report,
    meter: Arc<Meter>,
    /// Whether each prompt has its answer in the journal.
    done: Vec<bool>,
    /// Each prompt of this run, and its place in the report.
    position: HashMap<usize, usize>,
    lines: HashMap<usize, Line>,
}

/// A batch run.
pub struct BatchRun<'a> {
    api: BatchApi,
    keys: Keys,
    ledger: Ledger,
    options: BatchOptions,
    book: Book<'a>,
    progress: Progress,
    notes: Vec<String>,
}

impl<'a> BatchRun<'a> {
    /// A run of `prompts` into `journal` (whose prompts `done` already have
    /// an answer), reporting into `report` and counting tokens with `meter`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: BatchApi,
        prompts: &'a Prompts,
        journal: Arc<Journal>,
        done: Vec<bool>,
        ledger: Ledger,
        report: Report,
        meter: Arc<Meter>,
        options: BatchOptions,
    ) -> Result<BatchRun<'a>, BatchError> {
        // The report's own bar counts written answers; this run's bar shows
        // the jobs' counters instead.
        report.bar().set_draw_target(ProgressDrawTarget::hidden());
        Ok(BatchRun {
            api,
            keys: Keys::new(prompts)?,
            ledger,
            progress: Progress::new(options.draw_bar),
            options,
            book: Book {
                prompts,
                journal,
                report,
                meter,
                done,
                position: HashMap::new(),
                lines: HashMap::new(),
            },
            notes: Vec::new(),
        })
    }

    /// Sends the prompts `todo` (indices into the prompts, none answered
    /// yet), follows their jobs, and adds the run up.
    pub async fn run(mut self, todo: &[usize]) -> Result<Summary, BatchError> {
        self.book.position = todo.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        let result = self.send(todo).await;
        self.progress.finish();
        result?;
        self.book.write_failures()?;
        let reason = if self.stopped() {
            self.options.shutdown.not_sent()
        } else {
            "not sent".to_string()
        };
        let mut summary = self.book.report.finish(&reason);
        // The time is the service's turnaround: no speed-up to claim.
        summary.paced = true;
        summary.notes.splice(0..0, self.notes);
        Ok(summary)
    }

    /// Steps 1 to 3 of the module's outline.
    async fn send(&mut self, todo: &[usize]) -> Result<(), BatchError> {
        self.follow_earlier().await?;
        for round in 0..=self.options.retries {
            if self.stopped() {
                break;
            }
            let left = self.book.left(todo);
            if left.is_empty() {
                break;
            }
            if round > 0 {
                self.progress.say(format_args!(
                    "sending again, in a new job, the {} prompt(s) whose lines failed (retry {round} of {})",
                    left.len(),
                    self.options.retries
                ));
            }
            let chunks = submit::chunks(self.book.prompts, &left);
            self.follow(Vec::new(), chunks.into()).await?;
        }
        Ok(())
    }

    /// Finds and follows the jobs an earlier run intended and did not see
    /// to their end, before anything new is created.
    async fn follow_earlier(&mut self) -> Result<(), BatchError> {
        let open = self.ledger.open_entries();
        if open.is_empty() {
            return Ok(());
        }
        self.progress.say(format_args!(
            "{} batch job(s) of an earlier run are not finished (ledger {}): following them first, nothing is created twice",
            open.len(),
            self.ledger.path().display()
        ));
        let mut jobs = Vec::new();
        for entry in open {
            let Some(found) = self.locate(&entry).await? else {
                // Stopped while looking: the intent stays open for the next run.
                continue;
            };
            if found.is_empty() {
                self.ledger
                    .closed(&entry.display_name, entry.job.as_deref(), "NOT_FOUND")?;
                self.progress.say(format_args!(
                    "no job named {} is on the server (it was never created, or was deleted): its prompts go in a new job",
                    entry.display_name
                ));
                continue;
            }
            for operation in found {
                jobs.push(self.earlier_job(&entry, &operation));
            }
        }
        self.follow(jobs, VecDeque::new()).await
    }

    /// The jobs of an intent: by the name written down, else by listing the
    /// project's jobs with its display name (an intent whose create never
    /// answered, or whose answer was never written). A young intent is
    /// looked for twice, in case its create is still on its way. `None` if
    /// the run was stopped before it could tell.
    async fn locate(&mut self, entry: &Entry) -> Result<Option<Vec<Operation>>, BatchError> {
        let api_error = |what: String| move |source| BatchError::Api { what, source };
        if let Some(job) = &entry.job {
            return match self.api.get(job).await {
                Ok(operation) => Ok(Some(vec![operation])),
                Err(error) if status_of(&error) == Some(404) => Ok(Some(Vec::new())),
                Err(error) => Err(api_error(format!("look up the batch job {job}"))(error)),
            };
        }
        let find = |api: BatchApi, name: String| async move { api.find(&name).await };
        let what = format!("look for the batch job named {}", entry.display_name);
        let mut found = find(self.api.clone(), entry.display_name.clone())
            .await
            .map_err(api_error(what.clone()))?;
        let age = Duration::from_secs(now_secs().saturating_sub(entry.at));
        if found.is_empty() && age < SETTLE {
            let wait = SETTLE - age;
            self.progress.say(format_args!(
                "no job named {} yet: looking again in {}, in case its create is still on its way",
                entry.display_name,
                seconds(wait)
            ));
            if !self.sleep(wait).await {
                return Ok(None);
            }
            found = find(self.api.clone(), entry.display_name.clone())
                .await
                .map_err(api_error(what))?;
        }
        if let Some(first) = found.first() {
            self.ledger.created(&entry.display_name, &first.name)?;
        }
        if found.len() > 1 {
            self.progress.say(format_args!(
                "{} jobs are named {}: following every one (each answer is written once)",
                found.len(),
                entry.display_name
            ));
        }
        Ok(Some(found))
    }

    /// A job of an earlier run, found on the server. Its answers are used
    /// only for the prompts still as they were when it was created: a
    /// prompt edited since goes in a new job.
    fn earlier_job(&mut self, entry: &Entry, operation: &Operation) -> Job {
        let prompts = self.book.prompts;
        let mut changed = 0usize;
        let members: Vec<usize> = entry
            .keys
            .iter()
            .enumerate()
            .filter_map(|(n, key)| {
                let index = self.keys.index(key)?;
                let same = entry
                    .hashes
                    .get(n)
                    .is_some_and(|hash| *hash == fingerprint(prompts, index));
                changed += usize::from(!same);
                same.then_some(index)
            })
            .collect();
        if changed > 0 {
            let line = format!(
                "{changed} prompt(s) of {} changed since it was created (or are no longer in the prompts file): their answers from it are not used",
                operation.name
            );
            self.progress.say(&line);
            self.notes.push(line);
        }
        self.progress.say(format_args!(
            "following {} ({}): {} prompt(s), {}",
            operation.name,
            entry.display_name,
            members.len(),
            operation.state().name()
        ));
        Job {
            display_name: entry.display_name.clone(),
            name: operation.name.clone(),
            figures: Figures {
                requests: members.len() as u64,
                stats: operation.metadata.batch_stats,
                state: operation.state(),
            },
            members,
            sent: Duration::ZERO,
            earlier: true,
            input_file: None,
            errors: 0,
        }
    }

    /// Creates the jobs of `queue` and follows them, with `active`, to their
    /// end (or until the run is stopped).
    async fn follow(
        &mut self,
        mut active: Vec<Job>,
        mut queue: VecDeque<Chunk>,
    ) -> Result<(), BatchError> {
        let mut interval = FIRST_POLL.min(self.options.poll);
        let mut not_before: Option<Instant> = None;
        let mut full_waits = 0u32;
        loop {
            if self.stopped() {
                self.leave_running(&active);
                return Ok(());
            }
            while not_before.is_none_or(|t| Instant::now() >= t) && !self.stopped() {
                let Some(chunk) = queue.pop_front() else {
                    break;
                };
                let created = match self.create(&chunk).await {
                    Ok(created) => created,
                    Err(error) => {
                        self.abandon(&active);
                        return Err(error);
                    }
                };
                match created {
                    Created::Job(job) => {
                        active.push(job);
                        full_waits = 0;
                    }
                    Created::Full { limit, delay } => {
                        let too_big = limit.is_some_and(|limit| chunk.tokens > limit);
                        if let (true, Some((a, b))) = (
                            too_big || active.is_empty(),
                            chunk.halves(self.book.prompts),
                        ) {
                            self.progress.say(format_args!(
                                "the batch quota is full for a job of {} prompts (429): cutting it in two jobs of {} and {}",
                                chunk.indices.len(),
                                a.indices.len(),
                                b.indices.len()
                            ));
                            queue.push_front(b);
                            queue.push_front(a);
                            continue;
                        }
                        full_waits += 1;
                        if full_waits > MAX_FULL_WAITS {
                            self.give_up(std::iter::once(chunk).chain(queue.drain(..)));
                            break;
                        }
                        self.progress.say(format_args!(
                            "the batch quota is full (429): the next job is created in {}, or when one of this run's jobs ends",
                            seconds(delay)
                        ));
                        queue.push_front(chunk);
                        not_before = Some(Instant::now() + delay);
                        break;
                    }
                }
            }
            if active.is_empty() && queue.is_empty() {
                return Ok(());
            }
            let wait = match (active.is_empty(), not_before) {
                (true, Some(at)) => at.saturating_duration_since(Instant::now()),
                _ => interval,
            };
            if !self.sleep(wait).await {
                continue;
            }
            let ended = self.look_at(&mut active).await?;
            if ended {
                // A job of ours ended: its enqueued tokens are free again.
                not_before = None;
            }
            interval = (interval * 2).min(self.options.poll);
        }
    }

    /// Looks at every job once; finishes those that ended. Returns whether one did.
    async fn look_at(&mut self, active: &mut Vec<Job>) -> Result<bool, BatchError> {
        let mut ended = false;
        let mut still = Vec::new();
        let mut jobs = std::mem::take(active).into_iter();
        while let Some(mut job) = jobs.next() {
            match self.api.get(&job.name).await {
                Ok(operation) => {
                    job.errors = 0;
                    self.update(&mut job, &operation);
                    if operation.state().is_done() {
                        self.finish_job(job, operation).await?;
                        ended = true;
                    } else {
                        still.push(job);
                    }
                }
                Err(error) if status_of(&error) == Some(404) => {
                    self.gone(&job)?;
                    ended = true;
                }
                Err(error) if error.is_fatal() || job.errors + 1 >= MAX_POLL_ERRORS => {
                    let what = format!("follow the batch job {}", job.name);
                    still.push(job);
                    still.extend(jobs);
                    self.abandon(&still);
                    return Err(BatchError::Api {
                        what,
                        source: error,
                    });
                }
                Err(error) => {
                    job.errors += 1;
                    self.progress.say(format_args!(
                        "cannot look at {} now ({error}); trying again",
                        job.name
                    ));
                    still.push(job);
                }
            }
        }
        *active = still;
        let figures: Vec<Figures> = active.iter().map(|job| job.figures.clone()).collect();
        self.progress.show(&figures);
        Ok(ended)
    }

    /// Takes a job's new state and counters; a line when the state changed.
    fn update(&self, job: &mut Job, operation: &Operation) {
        let state = operation.state();
        let stats = operation.metadata.batch_stats;
        if state != job.figures.state && !state.is_done() {
            self.progress.say(format_args!(
                "{}: {}, {} of {} done",
                job.name,
                state.name(),
                stats.done(job.figures.requests),
                job.figures.requests
            ));
        }
        job.figures.state = state;
        job.figures.stats = stats;
    }

    /// Names a job, writes the intent, uploads its input if it goes as a
    /// file, and creates it.
    async fn create(&mut self, chunk: &Chunk) -> Result<Created, BatchError> {
        let model = self.options.model.clone();
        let prompts = self.book.prompts;
        let set = submit::set_hash(&self.options.journal_id, &model, prompts, &self.keys, chunk);
        let attempt = self.ledger.next_attempt(&set);
        let display_name = submit::display_name(&set, attempt);
        let count = chunk.indices.len();
        let (body, input_file, how) = match submit::input(
            prompts,
            &self.keys,
            chunk,
            &display_name,
            self.options.inline_max,
        )? {
            Input::Inline(body) => {
                let how = format!("inline ({} bytes)", body.len());
                (body, None, how)
            }
            Input::File(mut jsonl) => {
                let size = jsonl.size();
                let file = self
                        .api
                        .upload(&display_name, size, &mut jsonl)
                        .await
                        .map_err(|source| BatchError::Api {
                            what: format!(
                                "upload the requests of a batch job ({count} prompts, {size} bytes as JSONL)"
                            ),
                            source,
                        })?;
                let how = format!("as the uploaded file {file} ({size} bytes)");
                (BatchApi::file_body(&display_name, &file), Some(file), how)
            }
        };
        let keys = chunk
            .indices
            .iter()
            .map(|&i| self.keys.key(i).to_string())
            .collect();
        let hashes = chunk
            .indices
            .iter()
            .map(|&i| fingerprint(prompts, i))
            .collect();
        // Written and synced before the create: a death from here on leaves
        // the name the next run looks for.
        self.ledger
            .intend(&display_name, &set, attempt, &model, keys, hashes)?;
        let sent = self.book.report.elapsed();
        match self.api.create(&model, body).await {
            Ok(operation) => {
                self.ledger.created(&display_name, &operation.name)?;
                if resource_id(&operation.name, "batches").is_none() {
                    return Err(BatchError::Api {
                        what: format!("follow the batch job {display_name}"),
                        source: Error::Transport(format!(
                            "the server named it {:?}, not batches/<id>",
                            crate::batch::wire::short(&operation.name, 80)
                        )),
                    });
                }
                self.progress.say(format_args!(
                    "created {} ({display_name}): {count} prompt(s) on {model}, sent {how}; Batch Mode's target is 24 hours, usually much less",
                    operation.name
                ));
                Ok(Created::Job(Job {
                    display_name,
                    name: operation.name.clone(),
                    members: chunk.indices.clone(),
                    sent,
                    earlier: false,
                    input_file,
                    figures: Figures {
                        requests: count as u64,
                        stats: operation.metadata.batch_stats,
                        state: operation.state(),
                    },
                    errors: 0,
                }))
            }
            Err(error) if status_of(&error).is_some_and(|s| (400..500).contains(&s)) => {
                // Refused: no job exists, nothing to look for next time.
                self.ledger.closed(&display_name, None, "REFUSED")?;
                if let Some(file) = &input_file {
                    let _ = self.api.delete_file(file).await;
                }
                if error.is_rate_limited() && !error.is_fatal() {
                    let limit = error
                        .api()
                        .and_then(|api| api.quota.as_ref())
                        .and_then(|quota| quota.value.as_deref())
                        .and_then(|value| value.trim().parse().ok());
                    let delay = error.retry_delay().unwrap_or(self.options.poll);
                    return Ok(Created::Full { limit, delay });
                }
                Err(BatchError::Api {
                    what: format!("create a batch job of {count} prompts"),
                    source: error,
                })
            }
            Err(error) => Err(BatchError::Api {
                what: format!(
                    "create the batch job {display_name} (it may exist all the same: the next run looks for it by that name before it creates anything)"
                ),
                source: error,
            }),
        }
    }

    /// A job ended: its results into the journal, its failures into the
    /// books, and the ledger closed for it.
    async fn finish_job(&mut self, job: Job, operation: Operation) -> Result<(), BatchError> {
        let state = operation.state();
        let members: HashSet<usize> = job.members.iter().copied().collect();
        let mut answered = 0usize;
        let mut with_a_line = HashSet::new();
        if state == State::Succeeded {
            let book = &mut self.book;
            let sent = job.sent;
            let oddities = results::read(
                &self.api,
                &operation,
                &self.keys,
                &members,
                |index, result| {
                    with_a_line.insert(index);
                    answered += usize::from(book.take(index, result, sent)?);
                    Ok(())
                },
            )
            .await?;
            if let Some(line) = oddities.line(&job.name) {
                self.progress.say(&line);
                self.notes.push(line);
            }
        }
        let unanswered: Vec<usize> = job
            .members
            .iter()
            .copied()
            .filter(|&i| !self.book.done[i])
            .collect();
        match &state {
            State::Succeeded => {
                let no_line = Error::from(api_error(&Status {
                    code: 13,
                    message: format!("the results of {} have no line for this prompt", job.name),
                }));
                for &i in &unanswered {
                    if !with_a_line.contains(&i) {
                        self.book.fail(i, no_line.clone(), true, job.sent);
                    }
                }
            }
            State::Failed => {
                let why = operation
                    .error
                    .as_ref()
                    .map(Status::line)
                    .unwrap_or_else(|| "no reason given".into());
                let error = Error::from(api_error(&Status {
                    code: 13,
                    message: format!("its batch job {} ended FAILED ({why})", job.name),
                }));
                for &i in &unanswered {
                    self.book.fail(i, error.clone(), true, job.sent);
                }
            }
            _ => {
                for &i in &unanswered {
                    if job.earlier {
                        // A job the user left behind, now over: this run sends its prompts anew.
                        let error = Error::from(api_error(&Status {
                            code: 10,
                            message: format!("its batch job {} ended {}", job.name, state.name()),
                        }));
                        self.book.fail(i, error, true, job.sent);
                    } else {
                        self.book.strand(
                            i,
                            format!(
                                "its batch job {} ended {}: run the same command again to send it in a new job",
                                job.name,
                                state.name()
                            ),
                        );
                    }
                }
            }
        }
        self.ledger
            .closed(&job.display_name, Some(&job.name), state.name())?;
        if let Some(file) = &job.input_file {
            let _ = self.api.delete_file(file).await;
        }
        let why = operation.error.as_ref().map(Status::line);
        let line = ended_line(&job, &state, why, answered, unanswered.len());
        self.progress.say(&line);
        if !matches!(state, State::Succeeded) || !unanswered.is_empty() {
            self.notes.push(line);
        }
        Ok(())
    }

    /// A job that is no longer on the server (deleted): its prompts go again.
    fn gone(&mut self, job: &Job) -> Result<(), BatchError> {
        self.ledger
            .closed(&job.display_name, Some(&job.name), "NOT_FOUND")?;
        let error = Error::from(api_error(&Status {
            code: 5,
            message: format!("its batch job {} is gone from the server", job.name),
        }));
        for &i in &job.members {
            if !self.book.done[i] {
                self.book.fail(i, error.clone(), true, job.sent);
            }
        }
        let line = format!(
            "{} ({}) is gone from the server (deleted?): its unanswered prompts go in a new job",
            job.name, job.display_name
        );
        self.progress.say(&line);
        self.notes.push(line);
        Ok(())
    }

    /// The run stops with `active` still running on the server: say how to
    /// collect their results, and how to cancel them.
    fn leave_running(&mut self, active: &[Job]) {
        if self.options.offline {
            self.end_with_the_emulator(active);
            return;
        }
        let command = journal::command_line();
        for job in active {
            let left = job.members.iter().filter(|&&i| !self.book.done[i]).count();
            for &i in &job.members {
                if !self.book.done[i] {
                    self.book.strand(
                        i,
                        format!(
                            "stopped: its batch job {} keeps running on the server",
                            job.name
                        ),
                    );
                }
            }
            let cancel_url = format!(
                "{}/{}",
                self.api.shown_base_url().trim_end_matches('/'),
                self.api
                    .batch_path(&job.name, Some("cancel"))
                    .unwrap_or_default()
            );
            self.notes.push(format!(
                "{} ({}) keeps running on the server with {left} unanswered prompt(s): run the same command again to collect its results: {command}",
                job.name, job.display_name
            ));
            self.notes.push(format!(
                "to cancel it instead: {command} --cancel-batch (or: curl -X POST -H \"x-goog-api-key: $GEMINI_API_KEY\" {cancel_url})"
            ));
        }
    }

    /// The run fails with `active` still running: says at once (the
    /// summary will not) how to collect or cancel them.
    fn abandon(&mut self, active: &[Job]) {
        let before = self.notes.len();
        self.leave_running(active);
        for note in &self.notes[before..] {
            self.progress.say(note);
        }
    }

    /// The run stops on the built-in emulator: its jobs stop with it, so
    /// they are closed in the ledger, and their prompts left to the next run.
    fn end_with_the_emulator(&mut self, active: &[Job]) {
        for job in active {
            let _ = self
                .ledger
                .closed(&job.display_name, Some(&job.name), "EMULATOR_STOPPED");
            for &i in &job.members {
                if !self.book.done[i] {
                    self.book.strand(
                        i,
                        format!(
                            "stopped: its batch job {} ends with the built-in emulator",
                            job.name
                        ),
                    );
                }
            }
        }
        if !active.is_empty() {
            self.notes.push(format!(
                "the built-in emulator stops with this run, and its {} batch job(s) with it (nothing was billed): run the same command again to send their prompts anew",
                active.len()
            ));
        }
    }

    /// Chunks that could not be sent (the quota stayed full): left to a later run.
    fn give_up(&mut self, chunks: impl Iterator<Item = Chunk>) {
        let mut count = 0;
        for chunk in chunks {
            for i in chunk.indices {
                count += 1;
                self.book.strand(
                    i,
                    "not sent: the batch quota stayed full; run the same command again later"
                        .into(),
                );
            }
        }
        self.notes.push(format!(
            "{count} prompt(s) not sent: the batch quota (enqueued tokens or jobs) stayed full through {MAX_FULL_WAITS} waits; run the same command again later"
        ));
    }

    /// Whether the run is stopped (Ctrl-C, SIGTERM).
    fn stopped(&self) -> bool {
        self.options.shutdown.is_requested()
    }

    /// Sleeps `wait`; false if the run was stopped first.
    async fn sleep(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            _ = self.options.shutdown.requested() => false,
        }
    }
}

impl Book<'_> {
    /// The prompts of `todo` that a new job should hold: unanswered, not
    /// left to a later run, and not failed for a reason a new job keeps.
    fn left(&self, todo: &[usize]) -> Vec<usize> {
        todo.iter()
            .copied()
            .filter(|&i| !self.done[i])
            .filter(|i| {
                self.lines.get(i).is_none_or(|line| {
                    line.stranded.is_none() && line.failure.as_ref().is_none_or(|(_, again)| *again)
                })
            })
            .collect()
    }

    /// One result of a job sent at `sent`; true if it was an answer, written.
    fn take(
        &mut self,
        index: usize,
        result: LineResult,
        sent: Duration,
    ) -> Result<bool, BatchError> {
        if self.done[index] || !self.position.contains_key(&index) {
            return Ok(false);
        }
        let error = match result {
            LineResult::Response(response) => match Answer::from_response(*response) {
                Ok(answer) => {
                    self.answered(index, answer, sent)?;
                    return Ok(true);
                }
                // A blocked prompt: sending it again gives the same answer.
                Err(error) => (error, false),
            },
            LineResult::Error(status) => (Error::from(api_error(&status)), status.is_retryable()),
        };
        self.fail(index, error.0, error.1, sent);
        Ok(false)
    }

    /// An answer: counted for the bill, written to the journal, reported.
    fn answered(&mut self, index: usize, answer: Answer, sent: Duration) -> Result<(), BatchError> {
        self.meter.add(Mode::Batch, &answer.usage);
        let attempt = self.attempt(sent, AttemptStatus::Ok);
        let line = self.lines.entry(index).or_default();
        line.attempts.push(attempt);
        line.failure = None;
        let outcome = Outcome {
            index: self.position[&index],
            attempts: line.attempts.clone(),
            ended: Ended::Answered(answer),
        };
        let input = self.prompts.load(index)?.input;
        self.journal
            .append(self.prompts, index, &outcome, Some(&input))
            .map_err(|error| BatchError::WriteFailed {
                line: error.to_string(),
                command: journal::command_line(),
            })?;
        self.done[index] = true;
        self.report.record(outcome);
        Ok(())
    }

    /// A failure of prompt `index` in a job sent at `sent`; `again` if a new
    /// job may succeed.
    fn fail(&mut self, index: usize, error: Error, again: bool, sent: Duration) {
        if !self.position.contains_key(&index) {
            return;
        }
        let status = if error.is_rate_limited() {
            AttemptStatus::RateLimited
        } else {
            AttemptStatus::Failed
        };
        let attempt = self.attempt(sent, status);
        let line = self.lines.entry(index).or_default();
        line.attempts.push(attempt);
        line.failure = Some((error, again));
    }

    /// Prompt `index` is left to a later run, for `reason`.
    fn strand(&mut self, index: usize, reason: String) {
        if self.position.contains_key(&index) {
            self.lines.entry(index).or_default().stranded = Some(reason);
        }
    }

    /// An attempt of a job sent at `sent`, answered now.
    fn attempt(&self, sent: Duration, status: AttemptStatus) -> Attempt {
        Attempt {
            sent,
            answered: self.report.elapsed(),
            status,
        }
    }

    /// The end of the run: every prompt not answered is reported once, the
    /// failed ones with their error (and a row in the journal), the others
    /// as not done, with why.
    fn write_failures(&mut self) -> Result<(), BatchError> {
        let mut positions: Vec<(usize, usize)> =
            self.position.iter().map(|(&i, &p)| (i, p)).collect();
        positions.sort_unstable_by_key(|&(_, p)| p);
        for (index, position) in positions {
            if self.done[index] {
                continue;
            }
            let Some(line) = self.lines.remove(&index) else {
                continue;
            };
            let outcome = match (line.stranded, line.failure) {
                (Some(reason), _) => Outcome {
                    index: position,
                    attempts: line.attempts,
                    ended: Ended::NotDone(reason),
                },
                (None, Some((error, _))) => Outcome {
                    index: position,
                    attempts: line.attempts,
                    ended: Ended::Failed(error),
                },
                (None, None) => continue,
            };
            if matches!(outcome.ended, Ended::Failed(_)) {
                let input = self.prompts.load(index).map(|l| l.input).ok();
                self.journal
                    .append(self.prompts, index, &outcome, input.as_ref())
                    .map_err(|error| BatchError::WriteFailed {
                        line: error.to_string(),
                        command: journal::command_line(),
                    })?;
            }
            self.report.record(outcome);
        }
        Ok(())
    }
}

/// "batches/x: SUCCEEDED: 990 answered, 10 failed".
fn ended_line(
    job: &Job,
    state: &State,
    why: Option<String>,
    answered: usize,
    unanswered: usize,
) -> String {
    let stats: Stats = job.figures.stats;
    let mut line = format!("{} ({}): {}", job.name, job.display_name, state.name());
    if let Some(why) = why {
        line += &format!(" ({why})");
    }
    match state {
        State::Succeeded => {
            line += &format!(": {answered} answered");
            if unanswered > 0 {
                line += &format!(", {unanswered} without an answer");
            }
        }
        _ => {
            line += &format!(
                " with {} of {} done: no results; {unanswered} prompt(s) without an answer",
                stats.done(job.figures.requests),
                job.figures.requests
            );
            if *state != State::Failed && !job.earlier {
                line += " (run the same command again to send them in a new job)";
            }
        }
    }
    line
}

/// A request's `google.rpc.Status` as the API error it is.
fn api_error(status: &Status) -> ApiError {
    let (http_status, name) = match status.code {
        3 => (400, "INVALID_ARGUMENT"),
        4 => (504, "DEADLINE_EXCEEDED"),
        5 => (404, "NOT_FOUND"),
        7 => (403, "PERMISSION_DENIED"),
        8 => (429, "RESOURCE_EXHAUSTED"),
        10 => (409, "ABORTED"),
        14 => (503, "UNAVAILABLE"),
        _ => (500, "INTERNAL"),
    };
    ApiError {
        http_status,
        status: name.to_string(),
        message: crate::batch::wire::short(&status.message, 300),
        retry_delay: None,
        quota: None,
        reason: None,
    }
}

/// The HTTP status of an API error.
fn status_of(error: &Error) -> Option<u16> {
    error.api().map(|api| api.http_status)
}

/// Prompt `index`'s fingerprint as the ledger writes it.
fn fingerprint(prompts: &Prompts, index: usize) -> String {
    format!("{:016x}", prompts.hash(index))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_error_keeps_its_meaning() {
        let error = Error::from(api_error(&Status {
            code: 14,
            message: "The model is overloaded.".into(),
        }));
        assert_eq!(status_of(&error), Some(503));
        assert!(error.to_string().contains("overloaded"), "{error}");
        let error = Error::from(api_error(&Status {
            code: 8,
            message: "exhausted".into(),
        }));
        assert!(error.is_rate_limited());
    }
}
