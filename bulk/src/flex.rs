//! Flex: the same synchronous requests at half price, slower and sheddable.
//!
//! A request with `serviceTier: "flex"` (docs/wire.md#flex-and-priority)
//! costs half the standard price and is served on spare capacity: it may
//! take minutes (Google's target is 1 to 15), and it may be refused when
//! there is none, a "shed" request. So `--mode flex` is the ordinary runner
//! with three differences:
//!
//! * each attempt names the tier ([`TierPlan::at`]);
//! * the client waits [`FLEX_TIMEOUT`] for an answer unless `--timeout`
//!   says otherwise: the standard 2 minutes would give up on half of them;
//! * a shed request is a 429 without quota details, which the retry policy
//!   already retries with backoff (it is not a quota: no `retryDelay` to
//!   wait, nothing to learn) and the limiter refunds.
//!
//! Someone who prefers speed to price after a while says
//! `--fallback standard --fallback-after 30m`: from then on, every attempt
//! (a retry of a shed request included) goes at the standard price. The
//! bill prices each answer at the tier that served it.

use std::time::Duration;

use common::{
    Error,
    types::{ServiceTier, UsageMetadata},
};

use crate::prices::Mode;

/// The per-request timeout of a flex run without `--timeout`: the end of
/// Google's 1-to-15-minute latency target.
pub const FLEX_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Which tier each attempt of a synchronous run goes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierPlan {
    /// The tier of the first attempts.
    pub first: Mode,
    /// Another tier, from some time into the run on.
    pub fallback: Option<(Mode, Duration)>,
}

impl TierPlan {
    /// Every attempt at the standard price.
    pub fn standard() -> TierPlan {
        TierPlan {
            first: Mode::Standard,
            fallback: None,
        }
    }

    /// The tier of an attempt made `elapsed` into the run.
    pub fn at(&self, elapsed: Duration) -> Mode {
        match self.fallback {
            Some((mode, after)) if elapsed >= after => mode,
            _ => self.first,
        }
    }
}

impl Default for TierPlan {
    fn default() -> TierPlan {
        TierPlan::standard()
    }
}

/// What goes in the request's `serviceTier` for `mode`: nothing for the
/// standard tier (the API's default, and what every client sends), `flex`
/// for flex.
pub fn service_tier(mode: Mode) -> Option<ServiceTier> {
    match mode {
        Mode::Flex => Some(ServiceTier::Flex),
        Mode::Standard | Mode::Batch => None,
    }
}

/// The tier that served an answer: the one the response names, if it does,
/// else the one the request asked for.
pub fn served(sent: Mode, usage: &UsageMetadata) -> Mode {
    match usage
        .service_tier
        .as_ref()
        .map(|t| t.as_str().to_ascii_lowercase())
    {
        Some(tier) if tier == "flex" => Mode::Flex,
        Some(tier) if tier == "standard" => Mode::Standard,
        _ => sent,
    }
}

/// Whether `error`, the answer to an attempt sent at `tier`, is a shed flex
/// request: a 429 with neither a quota named nor a delay to wait
/// (docs/wire.md#flex-and-priority), which says there was no spare
/// capacity, not that a limit was passed.
pub fn is_shed(tier: Mode, error: &Error) -> bool {
    tier == Mode::Flex
        && error.is_rate_limited()
        && error
            .api()
            .is_some_and(|api| api.quota.is_none() && api.retry_delay.is_none())
}

/// The summary's line about shed requests, if there were any.
pub fn shed_line(shed: usize) -> Option<String> {
    (shed > 0).then(|| {
        format!(
            "the server shed {shed} flex attempt(s) (no spare capacity: a 429 with no quota named), retried with backoff; --fallback standard --fallback-after DURATION trades the discount for speed"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_starts_at_its_time() {
        let plan = TierPlan {
            first: Mode::Flex,
            fallback: Some((Mode::Standard, Duration::from_secs(60))),
        };
        assert_eq!(plan.at(Duration::from_secs(59)), Mode::Flex);
        assert_eq!(plan.at(Duration::from_secs(60)), Mode::Standard);
        assert_eq!(TierPlan::standard().at(Duration::MAX), Mode::Standard);
        assert_eq!(service_tier(Mode::Flex), Some(ServiceTier::Flex));
        assert_eq!(service_tier(Mode::Standard), None);
    }

    #[test]
    fn a_shed_is_a_flex_429_without_a_quota() {
        let shed = Error::from(common::error::ApiError::from_body(
            Some(429),
            br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Resource has been exhausted (e.g. check quota)."}}"#,
        ));
        assert!(is_shed(Mode::Flex, &shed));
        assert!(!is_shed(Mode::Standard, &shed));
        let quota = Error::from(common::error::ApiError::from_body(
            Some(429),
            br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Quota exceeded. Please retry in 20s.","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"20s"}]}}"#,
        ));
        assert!(!is_shed(Mode::Flex, &quota));
        assert_eq!(shed_line(0), None);
        assert!(shed_line(2).is_some_and(|l| l.contains("shed 2 flex")));
    }

    #[test]
    fn the_response_says_which_tier_served_it() {
        let mut usage = UsageMetadata::default();
        assert_eq!(served(Mode::Flex, &usage), Mode::Flex);
        usage.service_tier = Some(ServiceTier::Standard);
        assert_eq!(served(Mode::Flex, &usage), Mode::Standard);
        usage.service_tier = Some(ServiceTier::from("FLEX"));
        assert_eq!(served(Mode::Standard, &usage), Mode::Flex);
    }
}
