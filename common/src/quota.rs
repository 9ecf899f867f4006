//! The free tier's limits, per model: what step 4 paces itself to by default.
//!
//! The table itself is the emulator's model catalogue (the emulator enforces
//! exactly these figures offline), so the client's idea of the limits and the
//! emulator's can never drift apart. Google changes the real figures from
//! time to time and shows a project's own limits in AI Studio; step 4's
//! `--rpm`, `--tpm` and `--rpd` override them.

pub use emulator::catalog::Quota;

/// The free-tier quota of `model` (`gemini-flash-latest` or `models/...`),
/// if it is a model we know.
pub fn free_tier(model: &str) -> Option<Quota> {
    emulator::catalog::find(model).map(|info| info.free_tier)
}

/// Every model we know the free tier of, as `(id, quota)`, in catalogue order.
pub fn known() -> impl Iterator<Item = (&'static str, Quota)> {
    emulator::catalog::all()
        .iter()
        .map(|info| (info.id, info.free_tier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_model_has_the_course_free_tier() {
        // The course hit 429 at 10 requests per minute on gemini-flash-latest.
        let quota = free_tier("gemini-flash-latest").expect("known model");
        assert_eq!(quota.rpm, 10);
        assert_eq!(free_tier("models/gemini-flash-latest"), Some(quota));
        assert_eq!(free_tier("gemini-0.1-nope"), None);
        assert!(known().count() >= 4);
    }
}
