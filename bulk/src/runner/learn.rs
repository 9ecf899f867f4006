//! Learning the real limits from the server, and remembering them.
//!
//! Every 429 says what the limit is: `QuotaFailure.violations[].quotaId`
//! names the dimension and the window
//! (`GenerateRequestsPerMinutePerProjectPerModel-FreeTier`, `...PerDay...`,
//! `GenerateContentInputTokensPerModelPerMinute-FreeTier`) and `quotaValue`
//! is the limit itself. A table of limits goes stale (Google changes the
//! free tier without notice, and a paid project's limits are far higher), so
//! the [`Learner`] adopts what the server said at once, for the rest of the
//! run, with one line on stderr:
//!
//! * a learned limit replaces a table's figure, up or down;
//! * it lowers a limit the user gave (`--rpm`, `--tpm`, `--rpd`), but never
//!   raises one: those are ceilings, for sharing a quota on purpose;
//! * a malformed violation, or one without a `quotaValue`, teaches nothing:
//!   the runner just obeys the `retryDelay`, as before.
//!
//! It also keeps the books the next run needs (see [`crate::state_file`]): the
//! limits learned, when each request the server counted was sent, and a
//! per-day stop. The next run starts from them: at the learned limits, with
//! the requests an earlier run sent still counting in its windows, and, when
//! the day is spent, without sending anything.

use std::{
    sync::Mutex,
    time::{Duration, SystemTime},
};

use common::{Error, quota::QuotaKind};

use super::daily;
use crate::pace::{Limits, RateLimit};
use crate::state_file::{self, Entry, Learned, StateFile};

/// Where a limit in force came from, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Given on the command line (`--rpm`, `--tpm`, `--rpd`).
    Configured,
    /// A tier's table (`free`, `tier1`, ...).
    Table(&'static str),
    /// Named by the server in a 429 during this run.
    Learned,
    /// Named by the server in an earlier run, read from the state file.
    Remembered,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Configured => write!(f, "configured"),
            Source::Table("free") => write!(f, "free-tier table"),
            Source::Table(tier) => write!(f, "{tier} table"),
            Source::Learned => write!(f, "learned from the server"),
            Source::Remembered => write!(f, "remembered"),
        }
    }
}

fn index(which: QuotaKind) -> usize {
    match which {
        QuotaKind::Rpm => 0,
        QuotaKind::Tpm => 1,
        QuotaKind::Rpd => 2,
    }
}

fn name(which: QuotaKind) -> &'static str {
    match which {
        QuotaKind::Rpm => "rpm",
        QuotaKind::Tpm => "tpm",
        QuotaKind::Rpd => "rpd",
    }
}

fn from_name(name: &str) -> Option<QuotaKind> {
    match name {
        "rpm" => Some(QuotaKind::Rpm),
        "tpm" => Some(QuotaKind::Tpm),
        "rpd" => Some(QuotaKind::Rpd),
        _ => None,
    }
}

fn current(limits: &Limits, which: QuotaKind) -> u32 {
    match which {
        QuotaKind::Rpm => limits.rpm,
        QuotaKind::Tpm => limits.tpm,
        QuotaKind::Rpd => limits.rpd,
    }
    .unwrap_or(0)
}

/// The field of `limits` that holds `which`.
fn slot(limits: &mut Limits, which: QuotaKind) -> &mut Option<u32> {
    match which {
        QuotaKind::Rpm => &mut limits.rpm,
        QuotaKind::Tpm => &mut limits.tpm,
        QuotaKind::Rpd => &mut limits.rpd,
    }
}

/// The lessons that can be adopted. A limit of 0 would read as "no limit"
/// and switch pacing off: a hand-edited file or a bad Redis hash must never
/// do that (a real quotaValue "0" is a fatal error, never remembered).
fn usable(
    lessons: impl IntoIterator<Item = (QuotaKind, u32)>,
) -> impl Iterator<Item = (QuotaKind, u32)> {
    lessons.into_iter().filter(|&(_, value)| value > 0)
}

/// What a limit's unit is called, for messages.
fn unit(which: QuotaKind) -> &'static str {
    match which {
        QuotaKind::Rpm | QuotaKind::Rpd => "requests",
        QuotaKind::Tpm => "input tokens",
    }
}

/// What an earlier run left in force, for the planner ([`Learner::in_force`]).
#[derive(Debug, Clone)]
pub struct InForce {
    /// The limits, with what earlier runs learned applied.
    pub limits: Limits,
    /// Requests earlier runs sent today (they count against RPD).
    pub sent_today: u64,
    /// How long a day an earlier run found spent still lasts, if it does.
    pub spent_for: Option<Duration>,
}

/// Learns limits from 429s, remembers them and the day's spend.
pub struct Learner {
    model: String,
    /// Whether each limit was given on the command line (a ceiling).
    explicit: [bool; 3],
    /// Where each limit in force came from.
    sources: Mutex<[Source; 3]>,
    /// The state file, if the run keeps one.
    state: Option<StateFile>,
    /// What the state file held when the run started.
    remembered: Entry,
    /// The limits learned in this run.
    lessons: Mutex<Vec<Learned>>,
    /// When this run's requests that the server counted were sent.
    sent_ms: Mutex<Vec<u64>>,
    /// The day is spent until then (unix ms), once this run found out.
    stopped_until_ms: Mutex<Option<u64>>,
    /// The length of a day: 24 h on the real API, shorter for tests.
    day: Duration,
}

impl Learner {
    /// A learner for `model`. `explicit` says which limits the user gave;
    /// `table` names the tier table the others came from.
    pub fn new(
        model: &str,
        explicit: [bool; 3],
        table: &'static str,
        state: Option<StateFile>,
        remembered: Entry,
        day: Duration,
    ) -> Learner {
        let sources = explicit.map(|given| {
            if given {
                Source::Configured
            } else {
                Source::Table(table)
            }
        });
        Learner {
            model: model.strip_prefix("models/").unwrap_or(model).to_string(),
            explicit,
            sources: Mutex::new(sources),
            state,
            remembered,
            lessons: Mutex::new(Vec::new()),
            sent_ms: Mutex::new(Vec::new()),
            stopped_until_ms: Mutex::new(None),
            day,
        }
    }

    /// Where each limit in force came from, in `rpm`, `tpm`, `rpd` order.
    pub fn sources(&self) -> [Source; 3] {
        *lock(&self.sources)
    }

    /// What to do about a prompt too large for the TPM limit in force: it
    /// depends on where that limit came from. A limit the server named wins
    /// over `--tpm` (a ceiling, never a floor), so "raise --tpm" cannot help
    /// then; the line says where the limit is kept and how to forget it.
    pub fn too_large_hint(&self) -> String {
        let kept_in = || match &self.state {
            Some(state) => format!("remembered in {}", state.path().display()),
            None => "shared through Redis by every process on this quota".into(),
        };
        match self.sources()[index(QuotaKind::Tpm)] {
            Source::Configured => "raise --tpm, or shorten the prompt".into(),
            Source::Table(_) => format!(
                "the limit is the {}'s figure: raise --tpm if your project's limit is higher, or shorten the prompt",
                self.sources()[index(QuotaKind::Tpm)]
            ),
            Source::Learned => format!(
                "the server named this limit for {} in this run, and --tpm cannot raise it: shorten the prompt",
                self.model
            ),
            Source::Remembered => format!(
                "the server named this limit for {} in an earlier run ({}), and --tpm cannot raise it: shorten the prompt, or, if the project's limit has gone up since, forget it with --forget-limits",
                self.model,
                kept_in()
            ),
        }
    }

    /// Starts `limiter` from what an earlier run remembered: the limits it
    /// learned, and the requests it sent that still count. Returns the
    /// line to print, if there is anything to say, and the remembered stop,
    /// if the day is still spent (how long until it lifts).
    pub fn prime(&self, limiter: &dyn RateLimit) -> (Option<String>, Option<Duration>) {
        let mut said: Vec<(QuotaKind, String)> = Vec::new();
        // Redis's (shared by every process) after the file's: the latest word.
        let lessons: Vec<(QuotaKind, u32)> = self
            .remembered_lessons()
            .chain(usable(limiter.published_limits()))
            .collect();
        for (which, value) in lessons {
            let limits = limiter.stats().limits;
            if let Some(new) = self.adopt(limiter, &limits, which, value, Source::Remembered) {
                said.retain(|(w, _)| *w != which);
                said.push((which, format!("{new} {} per {}", unit(which), per(which))));
            }
        }
        let mut said: Vec<String> = said.into_iter().map(|(_, line)| line).collect();
        let ages: Vec<Duration> = self.remembered_today().map(state_file::age).collect();
        if !ages.is_empty() {
            limiter.remember(&ages);
            said.push(format!("{} requests already sent today", ages.len()));
        }
        let stop = self.remembered_stop();
        let line = (!said.is_empty()).then(|| {
            let file = self.state.as_ref().map(|s| s.path().display().to_string());
            format!(
                "remembered from earlier runs ({}): {}",
                file.unwrap_or_else(|| "Redis".into()),
                said.join(", ")
            )
        });
        (line, stop)
    }

    /// What `limiter` would start from once what earlier runs remembered is
    /// applied, as [`Learner::prime`] applies it (the file's lessons, then
    /// those shared through Redis, by the rules of [`Learner::learn`]): what
    /// `--mode auto` plans with. Unlike `prime`, it changes nothing.
    pub fn in_force(&self, limiter: &dyn RateLimit) -> InForce {
        let mut limits = limiter.stats().limits;
        let lessons = self
            .remembered_lessons()
            .chain(usable(limiter.published_limits()));
        for (which, value) in lessons {
            let new = self.allowed(current(&limits, which), which, value);
            *slot(&mut limits, which) = Some(new);
        }
        InForce {
            limits,
            sent_today: self.remembered_today().count() as u64,
            spent_for: self.remembered_stop(),
        }
    }

    /// The limits the state file holds, in the order they were learned.
    fn remembered_lessons(&self) -> impl Iterator<Item = (QuotaKind, u32)> + '_ {
        let from_file = self
            .remembered
            .learned
            .iter()
            .filter_map(|l| Some((from_name(&l.limit)?, l.value)));
        usable(from_file)
    }

    /// When each request an earlier run sent today was sent (unix ms).
    fn remembered_today(&self) -> impl Iterator<Item = u64> + '_ {
        let start = day_start_ms(state_file::now_ms(), self.day);
        self.remembered
            .sent_ms
            .iter()
            .copied()
            .filter(move |&ms| ms >= start)
    }

    /// How long the day an earlier run found spent still lasts, if it does.
    fn remembered_stop(&self) -> Option<Duration> {
        self.remembered
            .stopped_until_ms
            .map(|until| Duration::from_millis(until.saturating_sub(state_file::now_ms())))
            .filter(|left| !left.is_zero())
    }

    /// Learns from a refused attempt: adopts the limit the server named, if
    /// it named one clearly, and returns the line that says so.
    pub fn learn(&self, error: &Error, limiter: &dyn RateLimit) -> Option<String> {
        let quota = error.api()?.quota.as_ref()?;
        let lesson = quota.lesson().filter(|l| l.limit > 0)?;
        let which = lesson.kind;
        lock(&self.lessons).retain(|l| l.limit != name(which));
        lock(&self.lessons).push(Learned {
            limit: name(which).to_string(),
            value: lesson.limit,
            quota_id: quota.quota_id.clone(),
            learned_at_ms: state_file::now_ms(),
        });
        let limits = limiter.stats().limits;
        let before = current(&limits, which);
        let new = self.adopt(limiter, &limits, which, lesson.limit, Source::Learned)?;
        let was = match (before, self.explicit[index(which)]) {
            (0, _) => "was unlimited".to_string(),
            (n, true) => format!("was {n}, set on the command line"),
            (n, false) => format!("was {n}, from the table"),
        };
        Some(format!(
            "the server says {} allows {} {} per {} ({}): the limiter now keeps to {new} ({was})",
            self.model,
            lesson.limit,
            unit(which),
            per(which),
            quota.quota_id,
        ))
    }

    /// Sets `which` to `value` in the limiter if the rules allow it (never
    /// raising a limit the user gave) and it changes something; returns the
    /// limit now in force if it changed.
    fn adopt(
        &self,
        limiter: &dyn RateLimit,
        limits: &Limits,
        which: QuotaKind,
        value: u32,
        source: Source,
    ) -> Option<u32> {
        let before = current(limits, which);
        let new = self.allowed(before, which, value);
        if new == before || !limiter.set_limit(which, new) {
            return None;
        }
        lock(&self.sources)[index(which)] = source;
        Some(new)
    }

    /// The limit `which` may take when the server names `value` while
    /// `before` is in force: a limit the user gave is a ceiling, lowered but
    /// never raised; any other follows the server.
    fn allowed(&self, before: u32, which: QuotaKind, value: u32) -> u32 {
        if self.explicit[index(which)] && before > 0 {
            before.min(value)
        } else {
            value
        }
    }

    /// The server counted a request sent now.
    pub fn sent(&self) {
        lock(&self.sent_ms).push(state_file::now_ms());
    }

    /// The day is spent for `resume_in`.
    pub fn day_spent(&self, resume_in: Duration) {
        let until = state_file::unix_ms(SystemTime::now() + resume_in);
        *lock(&self.stopped_until_ms) = Some(until);
    }

    /// How long until the day's quota comes back, by our own books: at
    /// midnight Pacific for a 24-hour day; for a shorter (test) day, a day
    /// after the oldest request of this day.
    pub fn day_reset_in(&self) -> Duration {
        if self.day >= Limits::DAY {
            return daily::until_midnight_pacific();
        }
        let now = state_file::now_ms();
        let start = day_start_ms(now, self.day);
        let oldest = self
            .remembered
            .sent_ms
            .iter()
            .chain(lock(&self.sent_ms).iter())
            .copied()
            .filter(|&ms| ms >= start)
            .min()
            .unwrap_or(now);
        let day_ms = u64::try_from(self.day.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(oldest.saturating_add(day_ms).saturating_sub(now))
    }

    /// Writes what this run learned and spent to the state file. Says so in
    /// one line if it cannot; the answers are not lost for that.
    pub fn save(&self) {
        let Some(state) = &self.state else {
            return;
        };
        let lessons = lock(&self.lessons).clone();
        let sent = lock(&self.sent_ms).clone();
        let stopped = *lock(&self.stopped_until_ms);
        let start = day_start_ms(state_file::now_ms(), self.day);
        let saved = state.update(|entry| {
            for lesson in lessons {
                entry.learned.retain(|l| l.limit != lesson.limit);
                entry.learned.push(lesson);
            }
            entry.sent_ms.extend(sent);
            entry.sent_ms.retain(|&ms| ms >= start);
            entry.sent_ms.sort_unstable();
            if stopped.is_some() {
                entry.stopped_until_ms = stopped;
            }
            if entry
                .stopped_until_ms
                .is_some_and(|until| until <= state_file::now_ms())
            {
                entry.stopped_until_ms = None;
            }
        });
        if let Err(error) = saved {
            common::terminal::diagnostic(format_args!(
                "what this run learned is not remembered: {error}"
            ));
        }
    }
}

/// `minute` or `day`, as the server counts it.
fn per(which: QuotaKind) -> &'static str {
    match which {
        QuotaKind::Rpd => "day",
        _ => "minute",
    }
}

/// When the current day began, in unix ms: the last midnight Pacific for a
/// 24-hour day (when the real API resets), else one day ago.
fn day_start_ms(now_ms: u64, day: Duration) -> u64 {
    let since = if day >= Limits::DAY {
        Limits::DAY.saturating_sub(daily::until_midnight_pacific())
    } else {
        day
    };
    now_ms.saturating_sub(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
