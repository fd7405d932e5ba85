//! The Megolm ratchet (libolm's `megolm.c`, in the specification's terms).
//!
//! Four 32-byte parts `R0..R3` and a 32-bit counter `i`. Part `j` changes every `2^(8(3-j))`
//! steps; when it changes, every lower part is re-derived from it, with
//! `H_x(A) = HMAC-SHA-256(key = A, data = [x])`:
//!
//! ```text
//! R(i,0) = H_0(R(i-1,0))              if i ≡ 0 mod 2^24,  else R(i-1,0)
//! R(i,1) = H_1(R(i-1,0)) if 2^24 | i, H_1(R(i-1,1)) if 2^16 | i, else R(i-1,1)
//! R(i,2) = H_2(R(i-1,0)) if 2^24 | i, H_2(R(i-1,1)) if 2^16 | i, H_2(R(i-1,2)) if 2^8 | i, …
//! R(i,3) = H_3(the highest part that changed)
//! ```
//!
//! Advancing from `i` to any later index costs at most 255 hashes per part, so jumping to
//! index 2^32 - 1 is cheap.

use hmac::Mac;
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::crypto::hmac;

/// The length of the ratchet state in bytes (four parts).
pub(crate) const RATCHET_LENGTH: usize = 128;
const PARTS: usize = 4;
const PART_LENGTH: usize = 32;

#[derive(Clone)]
pub(crate) struct Ratchet {
    /// In a heap block of its own, zeroized before it is freed: moving a ratchet (or a session
    /// or key that holds one) copies a pointer, never the secret.
    parts: Box<Zeroizing<[[u8; PART_LENGTH]; PARTS]>>,
    counter: u32,
}

impl Ratchet {
    pub(crate) fn from_bytes(bytes: &[u8; RATCHET_LENGTH], counter: u32) -> Self {
        let mut parts = Box::new(Zeroizing::new([[0u8; PART_LENGTH]; PARTS]));
        for (part, chunk) in parts.iter_mut().zip(bytes.chunks_exact(PART_LENGTH)) {
            part.copy_from_slice(chunk);
        }
        Self { parts, counter }
    }

    /// The 128 ratchet bytes, in a buffer that zeroizes itself.
    pub(crate) fn to_bytes(&self) -> zeroize::Zeroizing<[u8; RATCHET_LENGTH]> {
        let mut bytes = zeroize::Zeroizing::new([0u8; RATCHET_LENGTH]);
        for (chunk, part) in bytes.chunks_exact_mut(PART_LENGTH).zip(self.parts.iter()) {
            chunk.copy_from_slice(part);
        }
        bytes
    }

    pub(crate) fn index(&self) -> u32 {
        self.counter
    }

    /// `R_to = H_to(R_from)`.
    fn rehash(&mut self, from: usize, to: usize) {
        let Some(source) = self.parts.get(from) else { return };
        let mut mac = hmac(source);
        mac.update(&[to as u8]);
        if let Some(target) = self.parts.get_mut(to) {
            *target = mac.finalize().into_bytes().into();
        }
    }

    /// One step forward (libolm's `megolm_advance`).
    pub(crate) fn advance(&mut self) {
        self.counter = self.counter.wrapping_add(1);
        // The highest part whose period divides the new counter changes, with all below it.
        let mut h = 0;
        let mut mask: u32 = 0x00FF_FFFF;
        while h < PARTS && self.counter & mask != 0 {
            h += 1;
            mask >>= 8;
        }
        for i in (h..PARTS).rev() {
            self.rehash(h, i);
        }
    }

    /// Jumps forward to `index` (libolm's `megolm_advance_to`), at most 255 hashes per part.
    /// An `index` below the current one wraps around 2^32, as libolm does; callers that must
    /// not go backwards check first.
    pub(crate) fn advance_to(&mut self, index: u32) {
        for j in 0..PARTS {
            let shift = (PARTS - j - 1) * 8;
            let mask = u32::MAX.checked_shl(shift as u32).unwrap_or(0);
            let mut steps = (index >> shift).wrapping_sub(self.counter >> shift) & 0xff;
            if steps == 0 {
                // Only part 0 can get here with the target below the counter: the index
                // wrapped around, and part 0 must turn a full 256 times.
                if index < self.counter {
                    steps = 0x100;
                } else {
                    continue;
                }
            }
            // All but the last step only move part j itself…
            for _ in 1..steps {
                self.rehash(j, j);
            }
            // …the last also re-derives every part below it.
            for k in (j..PARTS).rev() {
                self.rehash(j, k);
            }
            self.counter = index & mask;
        }
    }
}

impl ConstantTimeEq for Ratchet {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.counter.ct_eq(&other.counter) & self.to_bytes().as_slice().ct_eq(other.to_bytes().as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seeded(counter: u32) -> Ratchet {
        let mut bytes = [0u8; RATCHET_LENGTH];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        Ratchet::from_bytes(&bytes, counter)
    }

    #[test]
    fn advancing_past_each_turnover_matches_single_steps() {
        for start in [0u32, 250, 0xFFFF - 3, 0xFF_FFFF - 2, 0xFFFF_FFFF - 600] {
            let mut stepped = seeded(start);
            let mut jumped = seeded(start);
            for n in 1..=600u32 {
                stepped.advance();
                let mut fresh = seeded(start);
                fresh.advance_to(start.wrapping_add(n));
                assert!(bool::from(stepped.ct_eq(&fresh)), "start {start} n {n}");
            }
            jumped.advance_to(start.wrapping_add(600));
            assert!(bool::from(stepped.ct_eq(&jumped)));
        }
    }

    #[test]
    fn part_zero_changes_only_every_2_pow_24() {
        let mut r = seeded(0);
        let p0 = r.parts[0];
        r.advance_to(0xFF_FFFF);
        assert_eq!(r.parts[0], p0);
        r.advance();
        assert_ne!(r.parts[0], p0);
        assert_eq!(r.index(), 1 << 24);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Advancing by n equals advancing by a and then by n - a, for any split, across
        /// turnovers; and small jumps equal single steps.
        #[test]
        fn jumps_compose(start: u32, n: u32, split: u32, small in 0u32..300) {
            let a = if n == 0 { 0 } else { split % n };
            let mut direct = seeded(start);
            direct.advance_to(start.wrapping_add(n));
            let mut two_jumps = seeded(start);
            two_jumps.advance_to(start.wrapping_add(a));
            two_jumps.advance_to(start.wrapping_add(n));
            prop_assert!(bool::from(direct.ct_eq(&two_jumps)));
            prop_assert_eq!(direct.index(), start.wrapping_add(n));

            let mut stepped = direct.clone();
            for _ in 0..small {
                stepped.advance();
            }
            let mut jumped = direct;
            jumped.advance_to(start.wrapping_add(n).wrapping_add(small));
            prop_assert!(bool::from(stepped.ct_eq(&jumped)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(6))]

        /// Tens of thousands of single steps equal one jump, from a start placed so that the
        /// walk crosses a turnover of part 0 (2^24) or part 1 (2^16), and wraps past 2^32.
        #[test]
        fn many_single_steps_equal_one_jump(block: u32, n in 1u32..70_000, offset: u32, part0 in any::<bool>()) {
            let period: u32 = if part0 { 1 << 24 } else { 1 << 16 };
            let start = (block & !(period - 1)).wrapping_sub(1 + offset % n);
            let mut stepped = seeded(start);
            for _ in 0..n {
                stepped.advance();
            }
            let mut jumped = seeded(start);
            jumped.advance_to(start.wrapping_add(n));
            prop_assert!(bool::from(stepped.ct_eq(&jumped)));
        }
    }
}
