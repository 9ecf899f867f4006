//! What a batch run shows while its jobs run: a progress bar fed by each
//! job's `batchStats`, and a line on stderr when a job changes state.
//!
//! The bar is drawn only on a terminal and never with `--json` (as every
//! bar of the project); the lines always go to stderr, so a log of a long
//! run says when each job started, ran and ended.

use std::fmt::Display;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::batch::wire::{State, Stats};

/// One job's figures, as the bar adds them up.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Prompts in the job.
    pub requests: u64,
    /// Its last counters.
    pub stats: Stats,
    /// Its last state.
    pub state: State,
}

/// The bar and the lines.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A progress display; `draw` says whether the bar is drawn (a terminal,
    /// no `--json`).
    pub fn new(draw: bool) -> Progress {
        let bar = if draw {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// One line on stderr, above the bar.
    pub fn say(&self, line: impl Display) {
        self.bar
            .suspend(|| common::terminal::diagnostic(format_args!("{line}")));
    }

    /// The bar for the jobs running now.
    pub fn show(&self, jobs: &[Figures]) {
        let requests: u64 = jobs.iter().map(|job| job.requests).sum();
        let done: u64 = jobs.iter().map(|job| job.stats.done(job.requests)).sum();
        let failed: u64 = jobs
            .iter()
            .map(|job| job.stats.failed_request_count.min(job.requests))
            .sum();
        self.bar.set_length(requests);
        self.bar.set_position(done);
        self.bar.set_message(message(jobs, failed));
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// "1 job RUNNING, 3 failed" or "2 jobs: RUNNING, PENDING".
fn message(jobs: &[Figures], failed: u64) -> String {
    let states: Vec<&str> = jobs.iter().map(|job| job.state.name()).collect();
    let mut text = match states.as_slice() {
        [] => "no job running".to_string(),
        [one] => format!("1 job {one}"),
        many => format!("{} jobs: {}", many.len(), many.join(", ")),
    };
    if failed > 0 {
        text += &format!(", {failed} failed");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_states() {
        let job = |state: State, failed: u64| Figures {
            requests: 10,
            stats: Stats {
                request_count: 10,
                failed_request_count: failed,
                ..Stats::default()
            },
            state,
        };
        assert_eq!(message(&[job(State::Running, 0)], 0), "1 job RUNNING");
        assert_eq!(
            message(&[job(State::Running, 0), job(State::Pending, 0)], 3),
            "2 jobs: RUNNING, PENDING, 3 failed"
        );
        let progress = Progress::new(false);
        progress.show(&[job(State::Running, 2)]);
        progress.finish();
    }
}
