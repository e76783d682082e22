//! Randomness for the choker and the picker: the thread's RNG, or a seeded
//! one (tests and reproducible simulations). A torrent keeps a pointer's
//! worth rather than its own ChaCha state (~330 bytes each for its choker
//! and its picker: ~3 MiB over 5,000 torrents).

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// The thread's RNG (seeded from the OS), or one seeded by the caller.
#[derive(Debug, Default)]
pub(crate) enum Random {
    /// `rand::thread_rng()`, taken at each draw.
    #[default]
    Thread,
    /// Fixed by a seed.
    Seeded(Box<StdRng>),
}

impl Random {
    /// Draws fixed by `seed`.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self::Seeded(Box::new(StdRng::seed_from_u64(seed)))
    }
}

impl RngCore for Random {
    fn next_u32(&mut self) -> u32 {
        match self {
            Self::Thread => rand::thread_rng().next_u32(),
            Self::Seeded(rng) => rng.next_u32(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        match self {
            Self::Thread => rand::thread_rng().next_u64(),
            Self::Seeded(rng) => rng.next_u64(),
        }
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match self {
            Self::Thread => rand::thread_rng().fill_bytes(dest),
            Self::Seeded(rng) => rng.fill_bytes(dest),
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        match self {
            Self::Thread => rand::thread_rng().try_fill_bytes(dest),
            Self::Seeded(rng) => rng.try_fill_bytes(dest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_random_repeats_and_the_thread_one_draws() {
        let (mut a, mut b) = (Random::seeded(7), Random::seeded(7));
        let draws: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        assert_eq!(draws, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut thread = Random::default();
        let mut buf = [0u8; 32];
        thread.fill_bytes(&mut buf);
        // 32 zero bytes from a working RNG: a 2^-256 chance.
        assert_ne!(buf, [0u8; 32]);
        assert_eq!(std::mem::size_of::<Random>(), std::mem::size_of::<usize>());
    }
}
