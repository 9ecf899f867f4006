//! Injected faults: the ways the real API misbehaves, on demand and reproducibly.
//!
//! One uniform draw per generate request (from the request's seeded generator) picks at most
//! one fault, by walking the cumulative probabilities in a fixed order. With the same seed and
//! the same request order, the same requests fail the same way.

use rand::Rng;
use rand::rngs::SmallRng;

use crate::settings::{Faults, Flex};

/// An odd but valid 200 body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Odd {
    /// `content: {"role": "model"}` with no parts, `finishReason: MAX_TOKENS` (thinking ate
    /// the budget; python-genai#811).
    NoPartsMaxTokens,
    /// A normal answer with fields no client knows yet.
    UnknownFields,
    /// A finishReason value from the future: `NEW_REASON_2027`.
    UnknownFinishReason,
    /// The prompt is blocked: `promptFeedback.blockReason` and no `candidates`.
    BlockedPrompt,
}

/// How a broken stream breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// Write an `{"error": {...}}` object (503 UNAVAILABLE) into the stream and end it, as the
    /// real server does for errors after the 200 (docs/wire.md#streaming).
    ErrorObject,
    /// Abort the connection mid-body.
    Abort,
}

/// The fault for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    None,
    /// Never answer.
    Hang,
    /// Drop the connection without a response.
    Close,
    /// 503 UNAVAILABLE, model overloaded.
    Overloaded,
    /// 500 INTERNAL.
    Internal,
    /// An odd 200 body.
    Odd(Odd),
    /// Break the stream (streaming calls only).
    BrokenStream(Break),
}

/// Draws the fault of one request. `streaming` tells whether a broken stream is possible; on a
/// unary call that probability band means "no fault", so the other rates do not shift.
pub fn draw(faults: &Faults, streaming: bool, rng: &mut SmallRng) -> Fault {
    if faults.is_none() {
        return Fault::None;
    }
    let roll: f64 = rng.random();
    let bands = [
        (faults.hang, 0),
        (faults.close, 1),
        (faults.fail_503, 2),
        (faults.fail_500, 3),
        (faults.broken_stream, 4),
        (faults.odd_bodies, 5),
    ];
    let mut edge = 0.0;
    for (p, which) in bands {
        edge += p.max(0.0);
        if roll < edge {
            return match which {
                0 => Fault::Hang,
                1 => Fault::Close,
                2 => Fault::Overloaded,
                3 => Fault::Internal,
                4 if streaming => Fault::BrokenStream(if rng.random::<bool>() {
                    Break::ErrorObject
                } else {
                    Break::Abort
                }),
                4 => Fault::None,
                _ => Fault::Odd(match rng.random_range(0..4) {
                    0 => Odd::NoPartsMaxTokens,
                    1 => Odd::UnknownFields,
                    2 => Odd::UnknownFinishReason,
                    _ => Odd::BlockedPrompt,
                }),
            };
        }
    }
    Fault::None
}

/// Whether the `number`th Flex request (counting from 1) is shed: every `shed_every`th one,
/// and otherwise with probability `shed` (drawn only when it can be true, so a run without
/// shedding draws the same numbers as before).
pub fn shed(flex: &Flex, number: u64, rng: &mut SmallRng) -> bool {
    let every = u64::from(flex.shed_every);
    if every > 0 && number % every == 0 {
        return true;
    }
    flex.shed > 0.0 && rng.random::<f64>() < flex.shed
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rates_match_roughly_and_repeat_with_the_seed() {
        let faults = Faults {
            fail_503: 0.1,
            odd_bodies: 0.05,
            ..Faults::default()
        };
        let run = |seed: u64| -> Vec<Fault> {
            (0..1000)
                .map(|i| draw(&faults, false, &mut SmallRng::seed_from_u64(seed ^ i)))
                .collect()
        };
        let first = run(7);
        let overloaded = first.iter().filter(|f| **f == Fault::Overloaded).count();
        let odd = first.iter().filter(|f| matches!(f, Fault::Odd(_))).count();
        assert!((60..=140).contains(&overloaded), "{overloaded}");
        assert!((20..=80).contains(&odd), "{odd}");
        assert_eq!(first, run(7));
        assert_ne!(first, run(8));
    }

    #[test]
    fn every_nth_flex_request_is_shed() {
        let flex = Flex {
            shed_every: 3,
            ..Flex::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let shed: Vec<bool> = (1..=6).map(|n| shed(&flex, n, &mut rng)).collect();
        assert_eq!(shed, [false, false, true, false, false, true]);
        let always = Flex {
            shed: 1.0,
            ..Flex::default()
        };
        assert!(super::shed(&always, 1, &mut rng));
    }

    #[test]
    fn no_faults_draws_nothing() {
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(draw(&Faults::default(), true, &mut rng), Fault::None);
    }
}
