//! "Did you mean": the models a server serves, closest to a name that it does not.
//!
//! A 404 from `models.get` lists nothing, and the built-in emulator is gone
//! once the run ends, so the error line itself names the models that are
//! there, a typo's intended model first.

use crate::error::condense;

/// How many model names a 404 line lists at most: the closest ones.
pub const MODELS_IN_A_404: usize = 8;

/// The names of `available` closest to `asked` (by edit distance, ties in
/// the server's order), at most [`MODELS_IN_A_404`]: a typo such as
/// `gemini-flash-lates` puts `gemini-flash-latest` first. `models/` prefixes
/// are dropped, as `--model` takes the bare id.
pub fn closest_models<'a>(
    asked: &str,
    available: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    fn bare(name: &str) -> &str {
        name.strip_prefix("models/").unwrap_or(name)
    }
    let asked = bare(asked);
    let mut ranked: Vec<(usize, &str)> = available
        .into_iter()
        .map(bare)
        .map(|name| (edit_distance(asked, name), name))
        .collect();
    ranked.sort_by_key(|&(distance, _)| distance);
    ranked
        .into_iter()
        .take(MODELS_IN_A_404)
        .map(|(_, name)| condense(name))
        .collect()
}

/// Levenshtein distance over chars, with one row of memory. Names from the
/// network are bounded first, so a hostile list costs little.
fn edit_distance(a: &str, b: &str) -> usize {
    const MAX_CHARS: usize = 128;
    let a: Vec<char> = a.chars().take(MAX_CHARS).collect();
    let b: Vec<char> = b.chars().take(MAX_CHARS).collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_puts_the_intended_model_first() {
        let list = [
            "models/gemini-2.5-flash",
            "models/gemini-2.5-pro",
            "models/gemini-flash-latest",
            "models/gemini-flash-lite-latest",
        ];
        let closest = closest_models("gemini-flash-lates", list);
        assert_eq!(closest[0], "gemini-flash-latest");
        assert_eq!(closest.len(), 4);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let many: Vec<String> = (0..50).map(|i| format!("models/m-{i}")).collect();
        let closest = closest_models("m-7", many.iter().map(String::as_str));
        assert_eq!(closest.len(), MODELS_IN_A_404);
        assert_eq!(closest[0], "m-7");
    }
}
