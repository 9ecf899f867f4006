//! When each byte of an answer leaves: the latency model.
//!
//! A generate request first "thinks" for `base + uniform(0, jitter)` plus `per_output_token`
//! for every thought token, then writes its answer at `per_output_token` per token. A unary
//! call answers once everything is done; a stream sends its first chunk after the thinking and
//! that chunk's tokens, then each further chunk after its own tokens. So streaming and unary
//! calls of the same request take the same total time, and the first chunk comes early.
//!
//! A Flex request waits `Flex::latency` more before it starts ([`tier_delay`]): Flex runs on
//! spare capacity, with a latency target of minutes.

use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use crate::request::ServiceTier;
use crate::settings::{Flex, Latency};

/// The time before the model starts writing: base, jitter and thinking.
pub fn thinking_time(latency: &Latency, thought_tokens: u32, rng: &mut SmallRng) -> Duration {
    let jitter = if latency.jitter.is_zero() {
        Duration::ZERO
    } else {
        latency.jitter.mul_f64(rng.random::<f64>())
    };
    latency
        .base
        .saturating_add(jitter)
        .saturating_add(writing_time(latency, thought_tokens))
}

/// The extra wait of a request's tier: `Flex::latency` for Flex, nothing for the others.
pub fn tier_delay(flex: &Flex, tier: ServiceTier) -> Duration {
    match tier {
        ServiceTier::Flex => flex.latency,
        ServiceTier::Standard | ServiceTier::Priority => Duration::ZERO,
    }
}

/// The time to write `tokens` tokens.
pub fn writing_time(latency: &Latency, tokens: u32) -> Duration {
    latency.per_output_token.saturating_mul(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_default_tutorial_request_takes_several_seconds() {
        let latency = Latency::default();
        let mut rng = SmallRng::seed_from_u64(1);
        // Bird answer (389 tokens) plus 294..594 thought tokens.
        let answer = crate::tokens::count(&crate::text::answer("Why do some birds migrate?"));
        for thoughts in [294, 594] {
            let total =
                thinking_time(&latency, thoughts, &mut rng) + writing_time(&latency, answer);
            assert!(
                total >= Duration::from_secs(4) && total <= Duration::from_secs(8),
                "{total:?}"
            );
        }
    }

    #[test]
    fn only_flex_waits_longer() {
        let flex = Flex {
            latency: Duration::from_secs(30),
            ..Flex::default()
        };
        assert_eq!(
            tier_delay(&flex, ServiceTier::Flex),
            Duration::from_secs(30)
        );
        assert_eq!(tier_delay(&flex, ServiceTier::Standard), Duration::ZERO);
        assert_eq!(tier_delay(&flex, ServiceTier::Priority), Duration::ZERO);
    }

    #[test]
    fn zero_latency_is_instant() {
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(thinking_time(&Latency::ZERO, 500, &mut rng), Duration::ZERO);
    }
}
