//! An SVG picture of a run: one row per request, one bar per attempt.
//!
//! A timeline shows the tutorial's lessons at a glance: step 2's bars form a
//! staircase (each request waits for the one before), step 3's stand side by
//! side (all in flight at once), and step 4's come in blocks, one per rate
//! limit window, with no red. SVG is plain text, so we write it by hand: a
//! few dozen lines beat a plotting dependency, and the output is easy to test.

use std::{fmt::Write as _, path::Path, time::Duration};

use crate::outcome::{AttemptStatus, Outcome};

/// What to draw besides the bars.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A title above the picture.
    pub title: Option<String>,
    /// The rate limit's window, shaded in alternate bands (step 4).
    pub window: Option<Duration>,
}

const WIDTH: f64 = 900.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 40.0;
const MAX_PLOT_HEIGHT: f64 = 600.0;

/// Renders the outcomes as an SVG document.
pub fn render(outcomes: &[Outcome], options: &Options) -> String {
    let rows = outcomes.len().max(1) as f64;
    let row = (MAX_PLOT_HEIGHT / rows).clamp(0.5, 18.0);
    let plot_height = row * rows;
    let height = TOP + plot_height + BOTTOM;
    let last_answer = outcomes
        .iter()
        .flat_map(|o| &o.attempts)
        .map(|a| a.answered)
        .max()
        .unwrap_or_default()
        .max(Duration::from_millis(1));
    // The axis ends on a round tick past the last answer, so every bar can
    // be read against a labelled time.
    let step = tick_step(last_answer.as_secs_f64());
    let end = Duration::from_secs_f64((last_answer.as_secs_f64() / step).ceil() * step);
    let scale = (WIDTH - LEFT - RIGHT) / end.as_secs_f64();
    let x = |t: Duration| LEFT + t.as_secs_f64() * scale;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    if let Some(title) = &options.title {
        let _ = writeln!(svg, r#"<text x="{LEFT}" y="20">{}</text>"#, escape(title));
    }
    if let Some(window) = options.window.filter(|w| !w.is_zero()) {
        let mut start = Duration::ZERO;
        let mut shaded = false;
        while start < end {
            let stop = (start + window).min(end);
            if shaded {
                let _ = writeln!(
                    svg,
                    r##"<rect class="window" x="{:.1}" y="{TOP}" width="{:.1}" height="{plot_height:.1}" fill="#eef2ff"/>"##,
                    x(start),
                    x(stop) - x(start)
                );
            }
            shaded = !shaded;
            start += window;
        }
    }
    let label_every = outcomes.len().div_ceil(10).max(1);
    for (row_index, outcome) in outcomes.iter().enumerate() {
        let y = TOP + row_index as f64 * row;
        // #1, then every `label_every`-th request: #1, #2, #4, ... #20.
        if row_index == 0 || (row_index + 1) % label_every == 0 {
            let _ = writeln!(
                svg,
                r#"<text class="row" x="{:.0}" y="{:.1}" text-anchor="end" font-size="10">#{}</text>"#,
                LEFT - 6.0,
                y + (row * 0.8).max(0.5) / 2.0 + 3.5,
                outcome.index + 1
            );
        }
        for attempt in &outcome.attempts {
            let width = (x(attempt.answered) - x(attempt.sent)).max(1.0);
            let _ = writeln!(
                svg,
                r#"<rect class="{}" x="{:.1}" y="{y:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>#{} {:.3}-{:.3} s {}</title></rect>"#,
                class(attempt.status),
                x(attempt.sent),
                (row * 0.8).max(0.5),
                colour(attempt.status),
                outcome.index + 1,
                attempt.sent.as_secs_f64(),
                attempt.answered.as_secs_f64(),
                class(attempt.status),
            );
        }
    }
    axis(&mut svg, end, step, TOP + plot_height, x);
    legend(&mut svg, height);
    svg.push_str("</svg>\n");
    svg
}

/// Writes the picture to `path`.
pub fn write(path: &Path, outcomes: &[Outcome], options: &Options) -> std::io::Result<()> {
    std::fs::write(path, render(outcomes, options))
}

fn class(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Ok => "ok",
        AttemptStatus::RateLimited => "rate-limited",
        AttemptStatus::Failed => "failed",
    }
}

fn colour(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Ok => "#3b82f6",
        AttemptStatus::RateLimited => "#dc2626",
        AttemptStatus::Failed => "#f59e0b",
    }
}

/// A time axis with about ten round ticks.
fn axis(svg: &mut String, end: Duration, step: f64, y: f64, x: impl Fn(Duration) -> f64) {
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="black"/>"#,
        WIDTH - RIGHT
    );
    let mut t = 0.0;
    while t <= end.as_secs_f64() + 1e-9 {
        let px = x(Duration::from_secs_f64(t));
        let _ = writeln!(
            svg,
            r#"<line x1="{px:.1}" y1="{y:.1}" x2="{px:.1}" y2="{:.1}" stroke="black"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y + 4.0,
            y + 18.0,
            format_seconds(t)
        );
        t += step;
    }
}

fn legend(svg: &mut String, height: f64) {
    let y = height - 8.0;
    for (i, status) in [
        AttemptStatus::Ok,
        AttemptStatus::RateLimited,
        AttemptStatus::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let x = LEFT + 150.0 * i as f64 + 250.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{:.0}" width="10" height="10" fill="{}"/><text x="{:.0}" y="{y:.0}">{}</text>"#,
            y - 9.0,
            colour(status),
            x + 14.0,
            match status {
                AttemptStatus::Ok => "answered",
                AttemptStatus::RateLimited => "429 rate limited",
                AttemptStatus::Failed => "error",
            }
        );
    }
    let _ = writeln!(svg, r#"<text x="{LEFT}" y="{y:.0}">time (s) →</text>"#);
}

/// A round tick spacing (1, 2 or 5 times a power of ten) giving about ten ticks.
fn tick_step(span: f64) -> f64 {
    let raw = (span / 10.0).max(1e-3);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn format_seconds(t: f64) -> String {
    if (t - t.round()).abs() < 1e-9 {
        format!("{t:.0}")
    } else {
        format!("{t:.1}")
    }
}

/// Escapes the characters XML gives meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Attempt, Ended};

    fn outcome(index: usize, attempts: &[(u64, u64, AttemptStatus)]) -> Outcome {
        Outcome {
            index,
            attempts: attempts
                .iter()
                .map(|&(sent, answered, status)| Attempt {
                    sent: Duration::from_millis(sent),
                    answered: Duration::from_millis(answered),
                    status,
                })
                .collect(),
            ended: Ended::NotDone("test".into()),
        }
    }

    #[test]
    fn one_bar_per_attempt_coloured_by_status() {
        let outcomes = vec![
            outcome(0, &[(0, 1000, AttemptStatus::Ok)]),
            outcome(
                1,
                &[
                    (0, 50, AttemptStatus::RateLimited),
                    (2000, 3200, AttemptStatus::Ok),
                ],
            ),
            outcome(2, &[]),
        ];
        let svg = render(&outcomes, &Options::default());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="ok""#).count(), 2);
        assert_eq!(svg.matches(r#"class="rate-limited""#).count(), 1);
        assert_eq!(svg.matches(r#"class="failed""#).count(), 0);
        assert!(svg.contains(r#"#2 2.000-3.200 s ok"#));
        // Rows are labelled, and the axis runs to a round tick past the end.
        assert_eq!(svg.matches(r#"class="row""#).count(), 3);
        assert!(svg.contains(">3.5</text>"), "the axis reaches 3.5 s: {svg}");
    }

    #[test]
    fn windows_are_shaded_in_alternate_bands() {
        let outcomes = vec![outcome(0, &[(0, 4500, AttemptStatus::Ok)])];
        let options = Options {
            title: Some("a <b> & c".into()),
            window: Some(Duration::from_secs(1)),
        };
        let svg = render(&outcomes, &options);
        // Windows 0-1, 1-2, ..., 4-4.5: bands 1-2 and 3-4 are shaded.
        assert_eq!(svg.matches(r#"class="window""#).count(), 2);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0), 1.0);
        assert_eq!(tick_step(64.0), 10.0);
        assert_eq!(tick_step(0.3), 0.05);
    }

    #[test]
    fn an_empty_run_still_renders() {
        let svg = render(&[], &Options::default());
        assert!(svg.contains("</svg>"));
    }
}
