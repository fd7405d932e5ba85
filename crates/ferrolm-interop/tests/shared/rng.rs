//! The seeded generator every randomized interop test uses, shared by the test binaries
//! (`#[path]`-included, so not every binary uses every method).
#![allow(dead_code)]

/// SplitMix64: small, seeded, good enough to drive tests reproducibly.
#[derive(Clone, Debug)]
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// A uniformly chosen element (`items` not empty).
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The seed for a randomized test: `FERROLM_INTEROP_SEED` if set, otherwise fresh. Printed,
/// so a failure can be replayed (`FERROLM_INTEROP_SEED=<seed> cargo test -p ferrolm-interop`).
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("FERROLM_INTEROP_SEED") {
        Ok(value) => value.trim().parse().expect("FERROLM_INTEROP_SEED is a u64"),
        Err(_) => rand_core::RngCore::next_u64(&mut rand_core::OsRng),
    };
    eprintln!("{test}: seed {seed} (replay with FERROLM_INTEROP_SEED={seed})");
    seed
}
