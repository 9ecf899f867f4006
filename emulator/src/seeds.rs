//! Reproducible randomness: one generator per item, and the resource ids drawn from it.
//!
//! Every random choice in the emulator (latency jitter, faults, answers, batch ids, the order
//! of a results file) comes from a small generator seeded from `Settings::seed` mixed with the
//! item's number, so a run with the same seed and the same order of requests is the same run.

use rand::Rng;
use rand::rngs::SmallRng;

/// Lowercase letters and digits: the characters of batch and file ids on the real API.
const LOWERCASE_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Mixes the seed with an item's number (splitmix64), so neighbouring items get unrelated
/// generators.
pub fn mix(seed: u64, number: u64) -> u64 {
    let mut z = seed ^ number.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` lowercase letters and digits, like `p1mds9fl15bs` (a file) or the 36 characters of a
/// batch id.
pub fn lowercase_id(rng: &mut SmallRng, len: usize) -> String {
    (0..len)
        .map(|_| {
            let index = rng.random_range(0..LOWERCASE_ALPHANUMERIC.len());
            char::from(LOWERCASE_ALPHANUMERIC[index])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_lowercase_alphanumerics_and_repeat_with_the_seed() {
        let id = lowercase_id(&mut SmallRng::seed_from_u64(mix(7, 1)), 36);
        assert_eq!(id.len(), 36);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(
            id,
            lowercase_id(&mut SmallRng::seed_from_u64(mix(7, 1)), 36)
        );
        assert_ne!(mix(7, 1), mix(7, 2));
    }
}
