//! The output: markdown tables, medians, and numbers formatted for people.
//!
//! Every section of the bench ends as one [`Table`] printed on stdout, so the
//! whole output pastes into the README as it is. Figures are medians of
//! several runs ([`median`]): on a shared 2-core machine a single run can be
//! off by a scheduler hiccup, and the median ignores one bad run where a mean
//! would not.

use std::fmt;

/// A markdown table: a title line, a header row, rows, and notes under it.
#[derive(Debug, Clone)]
pub struct Table {
    /// Printed as a `###` heading above the table.
    pub title: String,
    /// One line under the heading: what was measured and how.
    pub setup: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(title: impl Into<String>, setup: impl Into<String>, headers: &[&str]) -> Table {
        Table {
            title: title.into(),
            setup: setup.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra ones are kept.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a line printed under the table (what a figure means, what was skipped).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "### {}\n", self.title)?;
        if !self.setup.is_empty() {
            writeln!(f, "{}\n", self.setup)?;
        }
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let line = |cells: &[String]| {
            let padded: Vec<&str> = (0..columns)
                .map(|i| cells.get(i).map_or("", String::as_str))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        writeln!(f, "{}", line(&self.headers))?;
        writeln!(f, "|{}", "---|".repeat(columns))?;
        for row in &self.rows {
            writeln!(f, "{}", line(row))?;
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
            for note in &self.notes {
                writeln!(f, "- {note}")?;
            }
        }
        Ok(())
    }
}

/// The median of some measurements (the mean of the middle two for an even
/// count); `NaN` for none, which prints as "n/a".
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Seconds with two decimals ("1.03 s"), or "n/a".
pub fn secs(value: f64) -> String {
    if value.is_nan() {
        "n/a".into()
    } else {
        format!("{value:.2} s")
    }
}

/// A plain number with `decimals` decimals, or "n/a".
pub fn num(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "n/a".into()
    } else {
        format!("{value:.decimals$}")
    }
}

/// A ratio such as "4.2×", or "n/a".
pub fn times(value: f64) -> String {
    if value.is_nan() || value.is_infinite() {
        "n/a".into()
    } else {
        format!("{value:.1}×")
    }
}

/// A share as a percentage ("97.1 %"), or "n/a".
pub fn percent(value: f64) -> String {
    if value.is_nan() {
        "n/a".into()
    } else {
        format!("{:.1} %", value * 100.0)
    }
}

/// A whole number with thousands separators ("12,345").
pub fn count(value: f64) -> String {
    if value.is_nan() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", value.round().abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ignore_one_outlier() {
        assert_eq!(median(&[1.0, 100.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(f64::NAN), "n/a");
    }

    #[test]
    fn tables_are_markdown() {
        let mut table = Table::new("T", "setup", &["a", "b"]);
        table.row(vec!["1".into(), "2".into()]);
        table.note("why");
        let text = table.to_string();
        assert!(text.contains("| a | b |\n|---|---|\n| 1 | 2 |"));
        assert!(text.contains("- why"));
    }
}
