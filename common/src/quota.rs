//! The free tier's limits, per model: what step 4 paces itself to by default.
//!
//! The table itself is the emulator's model catalogue (the emulator enforces
//! exactly these figures offline), so the client's idea of the limits and the
//! emulator's can never drift apart. Google changes the real figures from
//! time to time and shows a project's own limits in AI Studio; step 4's
//! `--rpm`, `--tpm` and `--rpd` override them.

pub use emulator::catalog::Quota;

/// One of the three limits a Gemini quota sets per project and model. The
/// limiter counts them, a 429 names one of them, the state file remembers
/// them: one type for all three jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Requests per minute (RPM).
    Rpm,
    /// Input tokens per minute (TPM).
    Tpm,
    /// Requests per day (RPD).
    Rpd,
}

/// A usage tier of the Gemini API: what a project's limits depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// No billing account: the free tier (the emulator's table).
    Free,
    /// A billing account linked to the project.
    Tier1,
    /// $250 spent in all, and 30 days since the first payment.
    Tier2,
    /// $1,000 spent in all, and 30 days since the first payment.
    Tier3,
}

impl Tier {
    /// The name used on the command line and in messages (`free`, `tier1`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Tier1 => "tier1",
            Tier::Tier2 => "tier2",
            Tier::Tier3 => "tier3",
        }
    }
}

/// Where the paid-tier figures come from, and when they were read.
///
/// Google publishes them on its rate-limits page and changes them without
/// notice; a project's own limits are on <https://aistudio.google.com/rate-limit>.
/// That is why step 4 treats any table as a first guess and learns the real
/// limits from the server's 429s.
pub const PAID_TIER_SOURCES: &str = "\
gemini-2.5-flash (and gemini-flash-latest): Google's answer on discuss.ai.google.dev/t/reached-the-rate-limit-again/104465, \
quoting https://ai.google.dev/gemini-api/docs/rate-limits, read 2026-11-30; \
gemini-2.5-flash-lite tier 1: the same page as quoted by eonsr.com (Free vs Tier-1), read 2026-11-30; \
gemini-2.5-pro, and flash-lite tiers 2 and 3: https://ai.google.dev/gemini-api/docs/rate-limits as published in the second half of 2025 (not re-read since)";

/// A paid tier's row: requests per minute, input tokens per minute, requests
/// per day (0: no published limit).
const fn row(rpm: u32, tpm: u32, rpd: u32) -> Quota {
    Quota { rpm, tpm, rpd }
}

/// The quota of `model` on `tier`, if we have a figure for it. See
/// [`PAID_TIER_SOURCES`] for where each figure comes from; an RPD of 0
/// means Google publishes none for that tier.
pub fn for_tier(model: &str, tier: Tier) -> Option<Quota> {
    let free = free_tier(model)?;
    if tier == Tier::Free {
        return Some(free);
    }
    let id = emulator::catalog::find(model)?.model_version;
    let quota = match (id, tier) {
        // ai.google.dev rate-limits page, via Google's forum answer (2.5 Flash by tier).
        ("gemini-2.5-flash", Tier::Tier1) => row(1_000, 1_000_000, 10_000),
        ("gemini-2.5-flash", Tier::Tier2) => row(2_000, 3_000_000, 100_000),
        ("gemini-2.5-flash", Tier::Tier3) => row(10_000, 8_000_000, 0),
        // ai.google.dev rate-limits page (2025).
        ("gemini-2.5-pro", Tier::Tier1) => row(150, 2_000_000, 10_000),
        ("gemini-2.5-pro", Tier::Tier2) => row(1_000, 5_000_000, 50_000),
        ("gemini-2.5-pro", Tier::Tier3) => row(2_000, 8_000_000, 0),
        ("gemini-2.5-flash-lite", Tier::Tier1) => row(4_000, 4_000_000, 0),
        ("gemini-2.5-flash-lite", Tier::Tier2) => row(10_000, 10_000_000, 0),
        ("gemini-2.5-flash-lite", Tier::Tier3) => row(30_000, 30_000_000, 0),
        _ => return None,
    };
    Some(quota)
}

/// The model `model` names: itself, or the model an alias such as
/// `gemini-flash-latest` points at (what prices and limits are listed
/// under); `None` for a model not in the catalogue.
pub fn target_model(model: &str) -> Option<&'static str> {
    emulator::catalog::find(model).map(|info| info.model_version)
}

/// The free-tier quota of `model` (`gemini-flash-latest` or `models/...`),
/// if it is a model we know.
pub fn free_tier(model: &str) -> Option<Quota> {
    emulator::catalog::find(model).map(|info| info.free_tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every model we know the free tier of, as `(id, quota)`, in catalogue order.
    fn known() -> impl Iterator<Item = (&'static str, Quota)> {
        emulator::catalog::all()
            .iter()
            .map(|info| (info.id, info.free_tier))
    }

    #[test]
    fn the_tutorial_model_has_the_course_free_tier() {
        // The course hit 429 at 10 requests per minute on gemini-flash-latest.
        let quota = free_tier("gemini-flash-latest").expect("known model");
        assert_eq!(quota.rpm, 10);
        assert_eq!(free_tier("models/gemini-flash-latest"), Some(quota));
        assert_eq!(free_tier("gemini-0.1-nope"), None);
        assert_eq!(
            target_model("gemini-flash-latest"),
            Some("gemini-2.5-flash")
        );
        assert_eq!(
            target_model("models/gemini-2.5-pro"),
            Some("gemini-2.5-pro")
        );
        assert!(known().count() >= 4);
    }

    #[test]
    fn paid_tiers_are_known_for_the_listed_models() {
        let tier1 = for_tier("gemini-flash-latest", Tier::Tier1).expect("listed");
        assert_eq!(
            (tier1.rpm, tier1.tpm, tier1.rpd),
            (1_000, 1_000_000, 10_000)
        );
        assert_eq!(
            for_tier("gemini-2.5-pro", Tier::Free),
            free_tier("gemini-2.5-pro")
        );
        for tier in [Tier::Tier1, Tier::Tier2, Tier::Tier3] {
            for (model, free) in known() {
                if model.starts_with("gemini-2.0") {
                    // No paid figure read for the deprecated 2.0 models:
                    // step 4 then asks for --rpm rather than guess.
                    assert_eq!(for_tier(model, tier), None, "{model} {tier:?}");
                    continue;
                }
                let paid = for_tier(model, tier).expect("every 2.5 model and alias");
                assert!(paid.rpm > free.rpm, "{model} {tier:?}");
            }
        }
    }
}
