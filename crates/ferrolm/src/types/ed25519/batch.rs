//! Strict Ed25519 verification of many signatures made with one key, computed faster.
//!
//! [`ed25519_dalek::VerifyingKey::verify_strict`] accepts a signature `(R, s)` on a message `M`
//! under a key `A` exactly when `s` is canonical (`s < ℓ`), `R` and `A` decode to points of
//! more than small order, and the canonical encoding of `R' = [s]B − [k]A`, with
//! `k = SHA-512(R ‖ A ‖ M) mod ℓ`, is the byte string `R`. This module computes the same `R'`
//! for every signature of a batch, and accepts a signature when `R'` encodes to `R` and is not
//! of small order; the caller re-checks every signature this module does not accept with
//! `verify_strict` itself. Nothing is randomized and nothing is cofactored: the group element
//! is the one `verify_strict` computes, and the comparison is the one it makes.
//!
//! The saving is in how `[s]B − [k]A` is computed. `verify_strict` runs a double-and-add over
//! 253 bits for every signature. Here the key is the same for the whole batch, so both bases
//! are fixed: a Lim–Lee comb (the scalar's bits in 22 rows of 12, and tables of every sum of
//! 11 row bases) needs 11 doublings, shared by the two bases, and 24 additions per base. The
//! tables of `B` are built once per process (about 15 M instructions, 480 KiB); those of `−A`
//! once per batch. The points of all signatures are converted to affine coordinates with a
//! single field inversion (Montgomery's trick).
//!
//! The field arithmetic is fiat-crypto's, generated from a machine-checked proof; the point
//! formulas are the extended twisted Edwards formulas of Hisil, Wong, Carter and Dawson
//! (2008) for `a = −1`, which are complete on edwards25519 (`a` is a square and `d` is not): they have no
//! exceptional cases, so points with a small-order component and the identity need no special
//! handling.

use std::sync::OnceLock;

use curve25519_dalek::constants::{ED25519_BASEPOINT_COMPRESSED, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use fiat_crypto::curve25519_64 as fiat;
use sha2::{Digest, Sha512};

use super::{Ed25519PublicKey, Ed25519Signature};

/// The distance between two rows of a comb, in bits: the number of columns.
const SPACING: usize = 12;
/// The number of rows: `SPACING * TEETH >= 256`.
const TEETH: usize = 22;
const _: () = assert!(SPACING * TEETH >= 256);
/// The base point's comb: two tables of 11 rows (2 × 2,048 points, 480 KiB, built once).
const BASE_GROUPS: &[usize] = &[11, 11];
/// A key's comb for a large batch: the same layout, about 14 M instructions to build (35
/// strict verifications).
const LARGE_KEY_GROUPS: &[usize] = &[11, 11];
/// A key's comb for a smaller batch: four tables of 6, 6, 5 and 5 rows (192 points), two
/// more additions per column.
const SMALL_KEY_GROUPS: &[usize] = &[6, 6, 5, 5];
/// From this many signatures on, the key gets [`LARGE_KEY_GROUPS`]: the 24 additions per
/// signature it saves then outweigh building 4,096 points instead of 192.
const LARGE_KEY_FROM: usize = 320;
/// Below this many signatures, preparing the key's tables (about 1.2 M instructions, three
/// strict verifications) costs more than it saves: the caller verifies each one strictly.
pub(super) const MIN_ITEMS: usize = 8;

/// A field element modulo `2^255 − 19` within fiat-crypto's tight bounds: the output of a
/// multiplication or a carry, the input of an addition.
#[derive(Clone, Copy)]
struct Fe(fiat::fiat_25519_tight_field_element);

/// A field element within fiat-crypto's loose bounds: the output of an addition, a
/// subtraction or a negation, the input of a multiplication.
#[derive(Clone, Copy)]
struct Loose(fiat::fiat_25519_loose_field_element);

impl Fe {
    /// The element `bytes mod p`, ignoring the top bit (as point decoding does).
    fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut masked = *bytes;
        masked[31] &= 0x7f;
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_from_bytes(&mut out, &masked);
        Self(out)
    }

    fn from_u64(value: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&value.to_le_bytes());
        Self::from_bytes(&bytes)
    }

    fn one() -> Self {
        Self::from_u64(1)
    }

    /// The canonical (fully reduced) little-endian encoding.
    fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        fiat::fiat_25519_to_bytes(&mut out, &self.0);
        out
    }

    #[inline]
    fn relax(self) -> Loose {
        let mut out = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_relax(&mut out, &self.0);
        Loose(out)
    }

    #[inline]
    fn add(self, other: Self) -> Loose {
        let mut out = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_add(&mut out, &self.0, &other.0);
        Loose(out)
    }

    #[inline]
    fn sub(self, other: Self) -> Loose {
        let mut out = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_sub(&mut out, &self.0, &other.0);
        Loose(out)
    }

    #[inline]
    fn neg(self) -> Loose {
        let mut out = fiat::fiat_25519_loose_field_element([0; 5]);
        fiat::fiat_25519_opp(&mut out, &self.0);
        Loose(out)
    }

    #[inline]
    fn mul(self, other: Self) -> Self {
        self.relax().mul(other.relax())
    }

    #[inline]
    fn square(self) -> Self {
        self.relax().square()
    }

    fn equals(self, other: Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }

    fn is_negative(self) -> bool {
        self.to_bytes()[0] & 1 == 1
    }

    /// `self^exponent` for a public exponent (little-endian bytes), with a 4-bit window.
    fn pow(self, exponent: &[u8; 32]) -> Self {
        let mut powers = [Self::one(); 16];
        let mut power = Self::one();
        for slot in powers.iter_mut() {
            *slot = power;
            power = power.mul(self);
        }
        let mut acc = Self::one();
        for byte in exponent.iter().rev() {
            for nibble in [byte >> 4, byte & 0x0f] {
                for _ in 0..4 {
                    acc = acc.square();
                }
                if let Some(factor) = powers.get(usize::from(nibble)) {
                    acc = acc.mul(*factor);
                }
            }
        }
        acc
    }

    /// `1 / self` (`self^(p − 2)`); zero for zero.
    fn invert(self) -> Self {
        let mut exponent = [0xff; 32];
        exponent[0] = 0xeb;
        exponent[31] = 0x7f;
        self.pow(&exponent)
    }
}

impl Loose {
    #[inline]
    fn carry(self) -> Fe {
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_carry(&mut out, &self.0);
        Fe(out)
    }

    #[inline]
    fn mul(self, other: Self) -> Fe {
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_carry_mul(&mut out, &self.0, &other.0);
        Fe(out)
    }

    #[inline]
    fn square(self) -> Fe {
        let mut out = fiat::fiat_25519_tight_field_element([0; 5]);
        fiat::fiat_25519_carry_square(&mut out, &self.0);
        Fe(out)
    }
}

/// The curve constants, derived rather than transcribed: `d = −121665/121666` and
/// `√−1 = 2^((p−1)/4)` (2 is not a square modulo p, since p ≡ 5 mod 8).
struct Constants {
    d: Fe,
    d2: Loose,
    sqrt_minus_one: Fe,
}

impl Constants {
    fn new() -> Self {
        let d = Fe::from_u64(121_665).neg().mul(Fe::from_u64(121_666).invert().relax());
        let mut quarter = [0xff; 32];
        quarter[0] = 0xfb;
        quarter[31] = 0x1f;
        Self { d, d2: d.add(d), sqrt_minus_one: Fe::from_u64(2).pow(&quarter) }
    }
}

/// A point in extended coordinates `(X : Y : Z : T)`, `x = X/Z`, `y = Y/Z`, `xy = T/Z`.
#[derive(Clone, Copy)]
struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// A point in projective coordinates `(X : Y : Z)`: what a doubling needs.
#[derive(Clone, Copy)]
struct Projective {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Projective {
    /// `2P` in extended coordinates (dbl-2008-hwcd, `a = −1`).
    fn double(&self) -> Point {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz = self.z.square();
        let zz2 = zz.add(zz).carry();
        let x_plus_y_squared = self.x.add(self.y).square();
        let yy_plus_xx = yy.add(xx);
        let yy_minus_xx = yy.sub(xx);
        let e = x_plus_y_squared.sub(yy_plus_xx.carry());
        let f = zz2.sub(yy_minus_xx.carry());
        Point { x: e.mul(f), y: yy_plus_xx.mul(yy_minus_xx), z: yy_minus_xx.mul(f), t: e.mul(yy_plus_xx) }
    }
}

/// An affine point prepared for mixed addition: `(y + x, y − x, 2dxy)`.
#[derive(Clone, Copy)]
struct Niels {
    y_plus_x: Loose,
    y_minus_x: Loose,
    xy2d: Loose,
}

impl Point {
    fn identity() -> Self {
        Self { x: Fe::from_u64(0), y: Fe::one(), z: Fe::one(), t: Fe::from_u64(0) }
    }

    /// Decodes a point as curve25519-dalek does: `y` is taken modulo p (so the few
    /// non-canonical encodings of `y` decode), `x` is the square root of
    /// `(y² − 1)/(dy² + 1)` whose sign is the top bit (negating zero leaves zero).
    fn decompress(bytes: &[u8; 32], constants: &Constants) -> Option<Self> {
        let y = Fe::from_bytes(bytes);
        let yy = y.square();
        let u = yy.sub(Fe::one()).carry();
        let v = constants.d.mul(yy).add(Fe::one()).carry();
        let v3 = v.square().mul(v);
        let v7 = v3.square().mul(v);
        let mut exponent = [0xff; 32];
        exponent[0] = 0xfd;
        exponent[31] = 0x0f;
        let mut x = u.mul(v3).mul(u.mul(v7).pow(&exponent));
        let check = v.mul(x.square());
        if check.equals(u) {
        } else if check.equals(u.neg().carry()) {
            x = x.mul(constants.sqrt_minus_one);
        } else {
            return None;
        }
        if x.is_negative() != (bytes[31] >> 7 == 1) {
            x = x.neg().carry();
        }
        Some(Self { x, y, z: Fe::one(), t: x.mul(y) })
    }

    fn projective(&self) -> Projective {
        Projective { x: self.x, y: self.y, z: self.z }
    }

    fn double(&self) -> Self {
        self.projective().double()
    }

    /// `P + Q` for an affine `Q` (madd-2008-hwcd-3, `a = −1`, `k = 2d`): the factors of
    /// the result, `(E, F, G, H)` with `X = EF`, `Y = GH`, `Z = FG`, `T = EH`.
    #[inline]
    fn add_factors(&self, q: &Niels) -> [Loose; 4] {
        let b = self.y.add(self.x).mul(q.y_plus_x);
        let a = self.y.sub(self.x).mul(q.y_minus_x);
        let c = self.t.relax().mul(q.xy2d);
        let d = self.z.add(self.z).carry();
        [b.sub(a), d.sub(c), d.add(c), b.add(a)]
    }

    fn add(&self, q: &Niels) -> Self {
        let [e, f, g, h] = self.add_factors(q);
        Self { x: e.mul(f), y: g.mul(h), z: f.mul(g), t: e.mul(h) }
    }

    /// `P + Q` without `T`, when a doubling comes next.
    fn add_projective(&self, q: &Niels) -> Projective {
        let [e, f, g, h] = self.add_factors(q);
        Projective { x: e.mul(f), y: g.mul(h), z: f.mul(g) }
    }

    fn to_niels(self, z_inverse: Fe, constants: &Constants) -> Niels {
        let x = self.x.mul(z_inverse);
        let y = self.y.mul(z_inverse);
        Niels { y_plus_x: y.add(x), y_minus_x: y.sub(x), xy2d: x.mul(y).relax().mul(constants.d2).relax() }
    }

    /// The canonical encoding, given `1/Z`.
    fn encode(&self, z_inverse: Fe) -> [u8; 32] {
        let x = self.x.mul(z_inverse);
        let mut bytes = self.y.mul(z_inverse).to_bytes();
        bytes[31] |= u8::from(x.is_negative()) << 7;
        bytes
    }
}

/// `1/zᵢ` for every `zᵢ` with one inversion (Montgomery's trick). A zero input, which the
/// complete formulas never produce, would only make every output zero.
fn batch_invert(zs: &[Fe]) -> Vec<Fe> {
    let mut prefixes = Vec::with_capacity(zs.len());
    let mut acc = Fe::one();
    for z in zs {
        prefixes.push(acc);
        acc = acc.mul(*z);
    }
    let mut inverse = acc.invert();
    let mut out = vec![Fe::one(); zs.len()];
    for ((slot, prefix), z) in out.iter_mut().zip(&prefixes).zip(zs).rev() {
        *slot = inverse.mul(*prefix);
        inverse = inverse.mul(*z);
    }
    out
}

fn to_niels(points: &[Point], constants: &Constants) -> Vec<Niels> {
    let zs: Vec<Fe> = points.iter().map(|p| p.z).collect();
    points.iter().zip(batch_invert(&zs)).map(|(p, z_inverse)| p.to_niels(z_inverse, constants)).collect()
}

/// One table of a comb: every sum of the bases of `teeth` consecutive rows from `first`.
struct Group {
    first: usize,
    teeth: usize,
    table: Vec<Niels>,
}

/// A Lim–Lee comb for one base `P`: row `j` has base `[2^(12j)]P`, and a scalar's column `c`
/// (bits `c, c + 12, c + 24, …`) selects a sum of row bases from each group's table.
struct Comb {
    groups: Vec<Group>,
}

impl Comb {
    /// A comb for `base` whose 22 rows are split into consecutive groups of the given sizes
    /// (which add up to 22): a group costs one addition per column and a table of
    /// `2^teeth` points.
    fn new(base: &Point, group_sizes: &[usize], constants: &Constants) -> Self {
        let mut rows = Vec::with_capacity(TEETH);
        let mut row = *base;
        for j in 0..TEETH {
            rows.push(row);
            if j + 1 < TEETH {
                for _ in 0..SPACING {
                    row = row.double();
                }
            }
        }
        let rows = to_niels(&rows, constants);
        let mut groups = Vec::with_capacity(group_sizes.len());
        let mut first = 0;
        for &teeth in group_sizes {
            let mut sums = Vec::with_capacity(1 << teeth);
            sums.push(Point::identity());
            for index in 1usize..(1 << teeth) {
                let top = (usize::BITS - 1 - index.leading_zeros()) as usize;
                let (Some(rest), Some(row)) = (sums.get(index & !(1 << top)), rows.get(first + top)) else {
                    break;
                };
                let sum = rest.add(row);
                sums.push(sum);
            }
            groups.push(Group { first, teeth, table: to_niels(&sums, constants) });
            first += teeth;
        }
        Self { groups }
    }
}

/// A scalar cut into its comb rows: row `j` holds bits `12j .. 12j + 12`.
fn rows(scalar: &Scalar) -> [u16; TEETH] {
    let bytes = scalar.as_bytes();
    let mut rows = [0u16; TEETH];
    for (j, row) in rows.iter_mut().enumerate() {
        // The 12 bits from bit 12j start at byte 3j/2, on a byte boundary for even j and
        // half-way into it for odd j.
        let start = SPACING * j / 8;
        let low = bytes.get(start).copied().unwrap_or(0);
        let high = bytes.get(start + 1).copied().unwrap_or(0);
        let pair = u16::from(low) | u16::from(high) << 8;
        *row = if j % 2 == 0 { pair & 0x0fff } else { pair >> 4 };
    }
    rows
}

/// The table index of column `c` for a group: bit `c` of each of the group's rows.
fn column(rows: &[u16; TEETH], c: usize, group: &Group) -> usize {
    rows.iter().skip(group.first).take(group.teeth).rev().fold(0, |index, row| index << 1 | usize::from((row >> c) & 1))
}

/// `[s]P + [k]Q` from the combs of `P` and `Q`: for each column from the top, add the
/// selected table points, then double (except after the last column).
fn double_base(p: &Comb, s: &Scalar, q: &Comb, k: &Scalar) -> Point {
    let (s, k) = (rows(s), rows(k));
    let mut acc = Point::identity();
    for c in (0..SPACING).rev() {
        // Each selected point is added when the next one is found, so that the last one of
        // the column can skip computing T (the doubling that follows does not need it).
        let mut pending: Option<&Niels> = None;
        for (comb, scalar) in [(p, &s), (q, &k)] {
            for group in &comb.groups {
                let index = column(scalar, c, group);
                if index == 0 {
                    continue;
                }
                if let Some(point) = pending {
                    acc = acc.add(point);
                }
                pending = group.table.get(index);
            }
        }
        if c == 0 {
            if let Some(point) = pending {
                acc = acc.add(point);
            }
        } else {
            let before_doubling = match pending {
                Some(point) => acc.add_projective(point),
                None => acc.projective(),
            };
            acc = before_doubling.double();
        }
    }
    acc
}

/// What every batch shares: the constants, the comb of the base point, and the encodings of
/// the eight points of small order.
struct Shared {
    constants: Constants,
    base: Comb,
    small_order: [[u8; 32]; 8],
}

fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<Shared>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let constants = Constants::new();
            let base = Point::decompress(ED25519_BASEPOINT_COMPRESSED.as_bytes(), &constants)?;
            let base = Comb::new(&base, BASE_GROUPS, &constants);
            let small_order = EIGHT_TORSION.map(|point| point.compress().to_bytes());
            Some(Shared { constants, base, small_order })
        })
        .as_ref()
}

/// For each signature, whether it passes strict verification, computed as the module
/// documentation says; `false` may also mean "not decided here" (the caller re-checks those
/// with `verify_strict`). `None` if the key could not be prepared (the caller then verifies
/// every signature strictly).
pub(super) fn verify(key: &Ed25519PublicKey, items: &[(&[u8], &Ed25519Signature)]) -> Option<Vec<bool>> {
    let shared = shared()?;
    let constants = &shared.constants;
    let a_bytes = key.as_bytes();
    let a = Point::decompress(a_bytes, constants)?;
    // The key must be the very point verify_strict uses (curve25519-dalek's decoding).
    if a.encode(Fe::one()) != key.0.to_edwards().compress().to_bytes() {
        return None;
    }
    let minus_a = Point { x: a.x.neg().carry(), t: a.t.neg().carry(), ..a };
    let groups = if items.len() >= LARGE_KEY_FROM { LARGE_KEY_GROUPS } else { SMALL_KEY_GROUPS };
    let minus_a = Comb::new(&minus_a, groups, constants);

    let mut points = Vec::with_capacity(items.len());
    for (message, signature) in items {
        let bytes = signature.to_bytes();
        let (r_bytes, s_bytes) = bytes.split_at(32);
        let s_array: [u8; 32] = s_bytes.try_into().ok()?;
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_array)) else {
            points.push(None);
            continue;
        };
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(a_bytes);
        hash.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        points.push(Some(double_base(&shared.base, &s, &minus_a, &k)));
    }

    let zs: Vec<Fe> = points.iter().map(|p| p.map_or(Fe::one(), |p| p.z)).collect();
    let z_inverses = batch_invert(&zs);
    let verdicts = points
        .iter()
        .zip(z_inverses)
        .zip(items)
        .map(|((point, z_inverse), (_, signature))| {
            let Some(point) = point else { return false };
            let encoded = point.encode(z_inverse);
            let r_bytes = &signature.to_bytes()[..32];
            encoded.as_slice() == r_bytes && !shared.small_order.contains(&encoded)
        })
        .collect();
    Some(verdicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use proptest::prelude::*;

    fn constants() -> &'static Constants {
        &shared().unwrap().constants
    }

    fn encode(point: &Point) -> [u8; 32] {
        point.encode(point.z.invert())
    }

    fn mine(point: &EdwardsPoint) -> Point {
        Point::decompress(point.compress().as_bytes(), constants()).unwrap()
    }

    fn scalar(bytes: [u8; 32]) -> Scalar {
        Scalar::from_bytes_mod_order(bytes)
    }

    #[test]
    fn the_derived_constants_are_the_curves() {
        // d, as RFC 8032 gives it.
        let d = hex::<32>("a3785913ca4deb75abd841414d0a700098e879777940c78c73fe6f2bee6c0352");
        assert_eq!(constants().d.to_bytes(), d);
        let minus_one = Fe::from_u64(1).neg().carry();
        assert!(constants().sqrt_minus_one.square().equals(minus_one));
        let seven = Fe::from_u64(7);
        assert!(seven.mul(seven.invert()).equals(Fe::one()));
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    #[test]
    fn small_order_points_and_their_sums_match_dalek() {
        for t in EIGHT_TORSION {
            assert_eq!(encode(&mine(&t)), t.compress().to_bytes());
            for u in EIGHT_TORSION {
                let sum = mine(&t).add(&mine(&u).to_niels(Fe::one(), constants()));
                assert_eq!(encode(&sum), (t + u).compress().to_bytes());
            }
            assert_eq!(encode(&mine(&t).double()), (t + t).compress().to_bytes());
        }
    }

    /// Every non-canonical encoding: `y` in `[p, 2^255)` with either sign, and the two points
    /// with `x = 0` with the sign bit set. Decoding agrees with curve25519-dalek's.
    #[test]
    fn non_canonical_encodings_decode_as_dalek_decodes_them() {
        let mut encodings = Vec::new();
        for offset in 0u8..19 {
            let mut bytes = [0xff; 32];
            bytes[0] = 0xed + offset;
            bytes[31] = 0x7f;
            encodings.push(bytes);
            bytes[31] = 0xff;
            encodings.push(bytes);
        }
        let mut one = [0u8; 32];
        one[0] = 1;
        one[31] = 0x80;
        encodings.push(one);
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        encodings.push(minus_one);
        let mut decoded = 0;
        for bytes in encodings {
            let theirs = CompressedEdwardsY(bytes).decompress();
            let ours = Point::decompress(&bytes, constants());
            assert_eq!(ours.is_some(), theirs.is_some(), "{bytes:02x?}");
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                assert_eq!(encode(&ours), theirs.compress().to_bytes());
                assert_ne!(encode(&ours), bytes, "a canonical encoding in the list");
                decoded += 1;
            }
        }
        assert!(decoded > 4, "the list should exercise some decodable encodings");
    }

    fn comb_of(point: &EdwardsPoint, groups: &[usize]) -> Comb {
        Comb::new(&mine(point), groups, constants())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Decoding random bytes agrees with curve25519-dalek, point for point.
        #[test]
        fn decoding_matches_dalek(bytes: [u8; 32]) {
            let theirs = CompressedEdwardsY(bytes).decompress();
            let ours = Point::decompress(&bytes, constants());
            prop_assert_eq!(ours.is_some(), theirs.is_some());
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                prop_assert_eq!(encode(&ours), theirs.compress().to_bytes());
            }
        }

        /// `[s]P + [k]Q` from the combs equals curve25519-dalek's, for points with and
        /// without a small-order component, both table layouts, and any scalars.
        #[test]
        fn combs_compute_the_double_scalar_product(
            s: [u8; 32], k: [u8; 32], p_seed: [u8; 32], q_seed: [u8; 32], torsion in 0usize..8, one_table: bool,
        ) {
            let p = EdwardsPoint::mul_base(&scalar(p_seed)) + EIGHT_TORSION[torsion];
            let q = EdwardsPoint::mul_base(&scalar(q_seed)) + EIGHT_TORSION[(torsion * 3) % 8];
            let groups = if one_table { LARGE_KEY_GROUPS } else { SMALL_KEY_GROUPS };
            let (s, k) = (scalar(s), scalar(k));
            let ours = double_base(&comb_of(&p, groups), &s, &comb_of(&q, groups), &k);
            prop_assert_eq!(encode(&ours), (p * s + q * k).compress().to_bytes());
        }
    }

    #[test]
    fn combs_handle_the_extreme_scalars() {
        let p = EdwardsPoint::mul_base(&scalar([9; 32])) + EIGHT_TORSION[1];
        let comb = comb_of(&p, SMALL_KEY_GROUPS);
        let base = &shared().unwrap().base;
        for s in [Scalar::ZERO, Scalar::ONE, -Scalar::ONE] {
            for k in [Scalar::ZERO, Scalar::ONE, -Scalar::ONE] {
                let ours = double_base(base, &s, &comb, &k);
                let theirs = EdwardsPoint::mul_base(&s) + p * k;
                assert_eq!(encode(&ours), theirs.compress().to_bytes());
            }
        }
    }

    #[test]
    fn every_comb_layout_covers_the_rows_and_the_scalar() {
        for groups in [BASE_GROUPS, LARGE_KEY_GROUPS, SMALL_KEY_GROUPS] {
            assert_eq!(groups.iter().sum::<usize>(), TEETH);
        }
        // Rows reassemble the scalar.
        let s = scalar([0xa7; 32]) + Scalar::ONE;
        let mut rebuilt = [0u8; 33];
        for (j, row) in rows(&s).iter().enumerate() {
            for bit in 0..SPACING {
                if (row >> bit) & 1 == 1 {
                    let at = SPACING * j + bit;
                    rebuilt[at / 8] |= 1 << (at % 8);
                }
            }
        }
        assert_eq!(&rebuilt[..32], s.as_bytes());
        assert_eq!(rebuilt[32], 0);
    }

    #[test]
    fn batch_inversion_inverts_each_element() {
        let zs: Vec<Fe> = (1..40u64).map(|i| Fe::from_u64(i * 7919)).collect();
        for (z, inverse) in zs.iter().zip(batch_invert(&zs)) {
            assert!(z.mul(inverse).equals(Fe::one()));
        }
        assert!(batch_invert(&[]).is_empty());
    }
}
