//! An SVG picture of a run: one row per request, one bar per attempt.
//!
//! A timeline shows the tutorial's lessons at a glance: step 2's bars form a
//! staircase (each request waits for the one before), step 3's stand side by
//! side (all in flight at once), and step 4's come in blocks, one per rate
//! limit window, with no red. SVG is plain text, so we write it by hand: a
//! few dozen lines beat a plotting dependency, and the output is easy to test.
//!
//! `--timeline FILE` replaces FILE, so it had better be a picture this
//! program drew: a slip of the hand (`--timeline questions.txt`) must not turn
//! someone's prompts into an SVG. The picture says it is ours
//! (`data-drawn-by`), and [`refuse_foreign`] refuses, before the run sends
//! anything and again before it writes, a file that holds anything else.

use std::{
    fmt::Write as _,
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

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

/// The attribute that says a picture is ours, on its `<svg>` element.
const DRAWN_BY: &str = r#"data-drawn-by="gemini-tutorial timeline""#;

/// How every picture of ours starts, this version's and the one before it
/// (which had no [`DRAWN_BY`]: it is known by its exact first line).
const SVG_START: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" "#;
const EARLIER_START: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="900" height=""#;
const EARLIER_END: &str = r#"font-family="sans-serif" font-size="12">"#;

/// A `--timeline` path that holds something this program did not draw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--timeline {} holds something else than a timeline this program drew: it is left as it is; give --timeline a new file name (or delete that file)",
    path.display()
)]
pub struct NotATimeline {
    /// The path given.
    pub path: PathBuf,
}

/// Refuses a `--timeline` path that holds something else than a picture of
/// ours: writing it would destroy it. A path with nothing there, an empty
/// file and something that is not a regular file (`/dev/null`) are fine.
pub fn refuse_foreign(path: &Path) -> Result<(), NotATimeline> {
    let not_ours = || NotATimeline {
        path: path.to_path_buf(),
    };
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    // The first line says it; a picture's first line is under 300 bytes.
    let mut start = Vec::new();
    let read = std::fs::File::open(path).and_then(|file| file.take(1024).read_to_end(&mut start));
    if read.is_err() {
        // Unreadable: the write will say why, and it replaces nothing.
        return Ok(());
    }
    let first = String::from_utf8_lossy(&start);
    let first = first.lines().next().unwrap_or_default();
    let ours = first.starts_with(SVG_START) && first.contains(DRAWN_BY);
    let earlier = first.starts_with(EARLIER_START) && first.ends_with(EARLIER_END);
    if start.trim_ascii().is_empty() || ours || earlier {
        Ok(())
    } else {
        Err(not_ours())
    }
}

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
        r#"<svg xmlns="http://www.w3.org/2000/svg" {DRAWN_BY} width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
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
    let label_every = label_every(row);
    let bar_height = (row * 0.8).max(0.5);
    for (row_index, outcome) in outcomes.iter().enumerate() {
        let y = TOP + row_index as f64 * row;
        let number = outcome.index + 1;
        if number % label_every == 0 || (number == 1 && label_every > 2) {
            let _ = writeln!(
                svg,
                r#"<text class="row" x="{:.0}" y="{:.1}" text-anchor="end" font-size="10">#{number}</text>"#,
                LEFT - 6.0,
                y + bar_height / 2.0 + 3.5,
            );
        }
        for attempt in &outcome.attempts {
            bar(&mut svg, attempt, number, y, bar_height, &x);
        }
    }
    axis(&mut svg, end, step, TOP + plot_height, x);
    legend(&mut svg, height);
    svg.push_str("</svg>\n");
    svg
}

/// The smallest of 1, 2, 5, 10, 20, 50 ... rows between two labels that
/// leaves a 10-pixel label room to breathe: every row while rows are tall,
/// then #10, #20, #30 ... -- steps a reader counts in without thinking.
fn label_every(row: f64) -> usize {
    const LABEL_HEIGHT: f64 = 12.0;
    let mut magnitude = 1;
    loop {
        for step in [1, 2, 5] {
            let every = step * magnitude;
            if every as f64 * row >= LABEL_HEIGHT || every >= 1_000_000 {
                return every;
            }
        }
        magnitude *= 10;
    }
}

/// The narrowest a refused or failed attempt is drawn: such an answer takes
/// milliseconds, which at the scale of a minute is a hairline no one sees.
const MIN_ERROR_WIDTH: f64 = 6.0;

/// One attempt's bar, with its times in a tooltip; a 429 also gets a "429"
/// beside it when the row is tall enough to read one.
fn bar(
    svg: &mut String,
    attempt: &crate::outcome::Attempt,
    number: usize,
    y: f64,
    height: f64,
    x: &impl Fn(Duration) -> f64,
) {
    let min_width = match attempt.status {
        AttemptStatus::Ok => 1.0,
        AttemptStatus::RateLimited | AttemptStatus::Failed => MIN_ERROR_WIDTH,
    };
    let width = (x(attempt.answered) - x(attempt.sent)).max(min_width);
    let _ = writeln!(
        svg,
        r#"<rect class="{}" x="{:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}" fill="{}"><title>#{number} {:.3}-{:.3} s {}</title></rect>"#,
        class(attempt.status),
        x(attempt.sent),
        colour(attempt.status),
        attempt.sent.as_secs_f64(),
        attempt.answered.as_secs_f64(),
        class(attempt.status),
    );
    if attempt.status == AttemptStatus::RateLimited && height >= 8.0 {
        let _ = writeln!(
            svg,
            r#"<text class="refused" x="{:.1}" y="{:.1}" font-size="9" fill="{}">429</text>"#,
            x(attempt.sent) + width + 2.0,
            y + height / 2.0 + 3.0,
            colour(attempt.status),
        );
    }
}

/// Writes the picture to `path`, unless something else than a picture of
/// ours is there (see [`refuse_foreign`]).
pub fn write(path: &Path, outcomes: &[Outcome], options: &Options) -> std::io::Result<()> {
    refuse_foreign(path).map_err(std::io::Error::other)?;
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
    fn only_a_picture_of_ours_is_written_over() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let outcomes = vec![outcome(0, &[(0, 1000, AttemptStatus::Ok)])];
        let path = dir.path().join("q.txt");
        std::fs::write(&path, "Why is the sky blue?\n").expect("written");
        let error = write(&path, &outcomes, &Options::default()).expect_err("not ours");
        assert!(error.to_string().contains("left as it is"), "{error}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "Why is the sky blue?\n"
        );
        let other_svg = dir.path().join("logo.svg");
        std::fs::write(
            &other_svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"4\"/></svg>",
        )
        .expect("written");
        assert!(refuse_foreign(&other_svg).is_err(), "someone else's SVG");
        // Ours, this version's or the one before, and an empty file: replaced.
        let ours = dir.path().join("run.svg");
        write(&ours, &outcomes, &Options::default()).expect("a new file");
        write(&ours, &outcomes, &Options::default()).expect("ours again");
        let earlier = render(&outcomes, &Options::default()).replace(&format!(" {DRAWN_BY}"), "");
        std::fs::write(&ours, earlier).expect("written");
        assert_eq!(refuse_foreign(&ours), Ok(()));
        std::fs::write(&ours, "").expect("written");
        assert_eq!(refuse_foreign(&ours), Ok(()));
        assert_eq!(refuse_foreign(&dir.path().join("none.svg")), Ok(()));
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

    /// The `#N` labels of a rendered picture, top to bottom.
    fn labels(svg: &str) -> Vec<usize> {
        svg.lines()
            .filter(|l| l.contains(r#"class="row""#))
            .filter_map(|l| l.split(">#").nth(1)?.split('<').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn every_row_is_labelled_while_rows_are_tall_enough() {
        let outcomes: Vec<Outcome> = (0..20)
            .map(|i| outcome(i, &[(0, 7000, AttemptStatus::Ok)]))
            .collect();
        let svg = render(&outcomes, &Options::default());
        assert_eq!(labels(&svg), (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn many_rows_are_labelled_at_round_steps() {
        for (rows, expected_step) in [(100, 2), (300, 10), (1000, 20)] {
            let outcomes: Vec<Outcome> = (0..rows)
                .map(|i| outcome(i, &[(0, 7000, AttemptStatus::Ok)]))
                .collect();
            let found = labels(&render(&outcomes, &Options::default()));
            let mut expected: Vec<usize> = (1..=rows).filter(|n| n % expected_step == 0).collect();
            if expected_step > 2 {
                expected.insert(0, 1);
            }
            assert_eq!(found, expected, "{rows} rows");
        }
    }

    #[test]
    fn a_429_is_visible_at_a_glance() {
        // A 10 ms refusal at 0 s in a one-minute picture: 0.15 px at scale.
        let outcomes = vec![
            outcome(
                0,
                &[
                    (0, 10, AttemptStatus::RateLimited),
                    (52_000, 59_000, AttemptStatus::Ok),
                ],
            ),
            outcome(1, &[(0, 7000, AttemptStatus::Ok)]),
        ];
        let svg = render(&outcomes, &Options::default());
        let refused = svg
            .lines()
            .find(|l| l.contains(r#"class="rate-limited""#))
            .expect("a bar for the 429");
        let width: f64 = refused
            .split(r#"width=""#)
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("a width");
        assert!(width >= MIN_ERROR_WIDTH, "{refused}");
        assert_eq!(svg.matches(r#"class="refused""#).count(), 1, "{svg}");
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
