//! SAS (`m.sas.v1`): the short authentication string of interactive device verification.
//!
//! Both devices exchange ephemeral Curve25519 keys; each derives bytes from the shared secret
//! with HKDF-SHA-256 and an info string naming both sides and the transaction, and shows them
//! as 7 emoji or 3 numbers. When the users confirm a match, each side MACs the keys it
//! verifies; the other checks the MACs.
//!
//! This module is the cryptography only. The info strings (built from user ids, device ids,
//! keys and the transaction id, as the Matrix specification says) and the state machine of the
//! verification live in the layer above.
//!
//! ```
//! use ferrolm::sas::Sas;
//! let alice = Sas::new();
//! let bob = Sas::new();
//! let (alice_key, bob_key) = (alice.public_key(), bob.public_key());
//! let alice = alice.diffie_hellman(bob_key)?;
//! let bob = bob.diffie_hellman(alice_key)?;
//!
//! let info = "MATRIX_KEY_VERIFICATION_SAS|…both users, devices, keys, transaction…";
//! assert_eq!(alice.bytes(info).emoji_indices(), bob.bytes(info).emoji_indices());
//!
//! let mac = alice.calculate_mac("ed25519-key-base64", "MATRIX_KEY_VERIFICATION_MAC|…");
//! bob.verify_mac("ed25519-key-base64", "MATRIX_KEY_VERIFICATION_MAC|…", &mac)?;
//! # Ok::<(), ferrolm::sas::SasError>(())
//! ```

use hmac::Mac as _;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::crypto::{ct_eq, hkdf, hmac};
use crate::types::{Curve25519PublicKey, Curve25519SecretKey, base64_decode, base64_encode};

/// Why a SAS step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    /// The other side's key is of small order: the exchange would not be secret.
    #[error("the other side's key is of small order (non-contributory)")]
    NonContributoryKey,
    /// The MAC does not match: the keys differ from what the other side saw, or an attacker
    /// is in the middle.
    #[error("the MAC does not match")]
    InvalidMac,
    /// The MAC is not valid base64 or not 32 bytes long.
    #[error("the MAC is malformed")]
    MalformedMac,
}

/// Our side of a SAS exchange before the other side's key is known.
pub struct Sas {
    secret: Curve25519SecretKey,
    public: Curve25519PublicKey,
}

impl Sas {
    /// A new ephemeral key pair.
    pub fn new() -> Self {
        Self::new_inner(&mut crate::rng::os_rng())
    }

    /// [`Sas::new`] with the caller's randomness: 32 bytes (libolm's `olm_create_sas`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn new_with_rng(rng: &mut impl CryptoRngCore) -> Self {
        Self::new_inner(rng)
    }

    fn new_inner(rng: &mut impl CryptoRngCore) -> Self {
        let secret = Curve25519SecretKey::generate(rng);
        let public = secret.public_key();
        Self { secret, public }
    }

    /// Our ephemeral public key, sent in `m.key.verification.key`.
    pub fn public_key(&self) -> Curve25519PublicKey {
        self.public
    }

    /// Completes the exchange with the other side's public key. A key of small order is
    /// refused. Consumes the ephemeral secret: each SAS key is used once.
    pub fn diffie_hellman(self, their_public_key: Curve25519PublicKey) -> Result<EstablishedSas, SasError> {
        // The only way the exchange fails is a small-order key.
        let shared = self.secret.diffie_hellman(&their_public_key).map_err(|_| SasError::NonContributoryKey)?;
        Ok(EstablishedSas {
            shared: Box::new(Zeroizing::new(*shared.as_bytes())),
            our_public_key: self.public,
            their_public_key,
        })
    }
}

impl Default for Sas {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Sas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sas").field("public_key", &self.public).finish_non_exhaustive()
    }
}

/// A SAS exchange with the shared secret established.
pub struct EstablishedSas {
    /// Boxed, so that moving the value never copies the secret.
    shared: Box<Zeroizing<[u8; 32]>>,
    our_public_key: Curve25519PublicKey,
    their_public_key: Curve25519PublicKey,
}

impl EstablishedSas {
    /// Our ephemeral public key.
    pub fn our_public_key(&self) -> Curve25519PublicKey {
        self.our_public_key
    }

    /// The other side's ephemeral public key.
    pub fn their_public_key(&self) -> Curve25519PublicKey {
        self.their_public_key
    }

    /// The 6 bytes shown to the user: `HKDF(salt = 0, shared secret, info, 6)`.
    pub fn bytes(&self, info: &str) -> SasBytes {
        SasBytes(*hkdf::<6>(&[], self.shared.as_slice(), info.as_bytes()))
    }

    /// `length` bytes of `HKDF(salt = 0, shared secret, info)` (libolm's `olm_sas_generate_bytes`).
    /// `None` above HKDF's limit of 8160 bytes.
    pub fn generate_bytes(&self, info: &str, length: usize) -> Option<Zeroizing<Vec<u8>>> {
        if length > 255 * 32 {
            return None;
        }
        let mut out = Zeroizing::new(vec![0u8; length]);
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, self.shared.as_slice());
        hk.expand(info.as_bytes(), &mut out).ok()?;
        Some(out)
    }

    fn mac_bytes(&self, input: &str, info: &str) -> [u8; 32] {
        let key = hkdf::<32>(&[], self.shared.as_slice(), info.as_bytes());
        let mut mac = hmac(key.as_ref());
        mac.update(input.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The MAC of `input` for method `hkdf-hmac-sha256.v2`: HMAC-SHA-256 keyed with
    /// `HKDF(salt = 0, shared secret, info, 32)` (libolm's `olm_sas_calculate_mac_fixed_base64`).
    pub fn calculate_mac(&self, input: &str, info: &str) -> SasMac {
        SasMac(self.mac_bytes(input, info))
    }

    /// Checks a `hkdf-hmac-sha256.v2` MAC, in constant time.
    pub fn verify_mac(&self, input: &str, info: &str, mac: &SasMac) -> Result<(), SasError> {
        if ct_eq(&self.mac_bytes(input, info), &mac.0) { Ok(()) } else { Err(SasError::InvalidMac) }
    }

    /// The MAC of `input` for the legacy method `hkdf-hmac-sha256`, in the malformed base64
    /// libolm's `olm_sas_calculate_mac` produces (it encodes the MAC in place, overwriting
    /// bytes before reading them). Only for talking to clients that offer nothing newer.
    pub fn calculate_mac_invalid_base64(&self, input: &str, info: &str) -> String {
        libolm_in_place_base64(&self.mac_bytes(input, info))
    }

    /// Checks a legacy `hkdf-hmac-sha256` MAC in libolm's malformed base64, in constant time.
    pub fn verify_mac_invalid_base64(&self, input: &str, info: &str, mac: &str) -> Result<(), SasError> {
        let expected = self.calculate_mac_invalid_base64(input, info);
        if ct_eq(expected.as_bytes(), mac.as_bytes()) { Ok(()) } else { Err(SasError::InvalidMac) }
    }
}

impl core::fmt::Debug for EstablishedSas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EstablishedSas")
            .field("our_public_key", &self.our_public_key)
            .field("their_public_key", &self.their_public_key)
            .finish_non_exhaustive()
    }
}

const BASE64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_char(value: u32) -> u8 {
    // Indexing by a 6-bit value; `get` keeps the lint happy and cannot fail.
    BASE64_ALPHABET.get((value & 0x3f) as usize).copied().unwrap_or(b'A')
}

/// Reproduces libolm's `_olm_encode_base64(mac, 32, mac)`: the 32 MAC bytes sit at the start of
/// a 43-byte buffer that is encoded into itself, so each group of 4 output characters
/// overwrites input bytes that later groups still read.
fn libolm_in_place_base64(mac: &[u8; 32]) -> String {
    let mut buf = [0u8; 43];
    buf[..32].copy_from_slice(mac);
    let read = |buf: &[u8; 43], i: usize| u32::from(buf.get(i).copied().unwrap_or(0));
    for group in 0..10 {
        let (input, output) = (group * 3, group * 4);
        let value = read(&buf, input) << 16 | read(&buf, input + 1) << 8 | read(&buf, input + 2);
        for (offset, shift) in [(3, 0), (2, 6), (1, 12), (0, 18)] {
            if let Some(b) = buf.get_mut(output + offset) {
                *b = base64_char(value >> shift);
            }
        }
    }
    // The last two bytes (30 and 31, already overwritten) become three characters.
    let value = (read(&buf, 30) << 8 | read(&buf, 31)) << 2;
    for (offset, shift) in [(42, 0), (41, 6), (40, 12)] {
        if let Some(b) = buf.get_mut(offset) {
            *b = base64_char(value >> shift);
        }
    }
    buf.iter().map(|&b| char::from(b)).collect()
}

/// The 6 bytes a SAS shows, as emoji indices or decimals.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SasBytes([u8; 6]);

impl SasBytes {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// The first 42 bits as seven 6-bit indices into the specification's emoji table.
    pub fn emoji_indices(&self) -> [u8; 7] {
        let [b0, b1, b2, b3, b4, b5] = self.0;
        [
            b0 >> 2,
            (b0 & 0x03) << 4 | b1 >> 4,
            (b1 & 0x0f) << 2 | b2 >> 6,
            b2 & 0x3f,
            b3 >> 2,
            (b3 & 0x03) << 4 | b4 >> 4,
            (b4 & 0x0f) << 2 | b5 >> 6,
        ]
    }

    /// The first 39 bits as three 13-bit numbers, each plus 1000 (1000–9191).
    pub fn decimals(&self) -> (u16, u16, u16) {
        let [b0, b1, b2, b3, b4, _] = self.0.map(u16::from);
        (
            (b0 << 5 | b1 >> 3) + 1000,
            ((b1 & 0x07) << 10 | b2 << 2 | b3 >> 6) + 1000,
            ((b3 & 0x3f) << 7 | b4 >> 1) + 1000,
        )
    }
}

impl core::fmt::Debug for SasBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SasBytes")
            .field("emoji_indices", &self.emoji_indices())
            .field("decimals", &self.decimals())
            .finish()
    }
}

/// A `hkdf-hmac-sha256.v2` MAC (32 bytes, sent as unpadded base64).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SasMac([u8; 32]);

impl SasMac {
    /// Reads a MAC from base64.
    pub fn from_base64(input: &str) -> Result<Self, SasError> {
        let bytes = base64_decode(input).map_err(|_| SasError::MalformedMac)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map(Self).map_err(|_| SasError::MalformedMac)
    }

    /// The MAC as unpadded base64.
    pub fn to_base64(&self) -> String {
        base64_encode(self.0)
    }

    /// The MAC's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for SasMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SasMac({})", self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_macs_verify() {
        let (a, b) = (Sas::new(), Sas::new());
        let (ak, bk) = (a.public_key(), b.public_key());
        let (a, b) = (a.diffie_hellman(bk).unwrap(), b.diffie_hellman(ak).unwrap());
        assert_eq!(a.bytes("info"), b.bytes("info"));
        assert_ne!(a.bytes("info"), a.bytes("other info"));
        assert_eq!(a.generate_bytes("info", 6).unwrap().as_slice(), a.bytes("info").as_bytes());
        let mac = a.calculate_mac("key", "mac info");
        b.verify_mac("key", "mac info", &SasMac::from_base64(&mac.to_base64()).unwrap()).unwrap();
        assert_eq!(b.verify_mac("key2", "mac info", &mac), Err(SasError::InvalidMac));
        let legacy = a.calculate_mac_invalid_base64("key", "mac info");
        assert_eq!(legacy.len(), 43);
        b.verify_mac_invalid_base64("key", "mac info", &legacy).unwrap();
        assert_eq!(b.verify_mac_invalid_base64("key", "other", &legacy), Err(SasError::InvalidMac));
        assert_eq!(SasMac::from_base64("AAAA"), Err(SasError::MalformedMac));
    }

    #[test]
    fn small_order_keys_are_refused() {
        assert_eq!(
            Sas::new().diffie_hellman(Curve25519PublicKey::from_bytes([0; 32])).unwrap_err(),
            SasError::NonContributoryKey
        );
    }

    #[test]
    fn emoji_and_decimals_take_the_specified_bits() {
        let all_ones = SasBytes([0xff; 6]);
        assert_eq!(all_ones.emoji_indices(), [63; 7]);
        assert_eq!(all_ones.decimals(), (9191, 9191, 9191));
        let zeros = SasBytes([0; 6]);
        assert_eq!(zeros.emoji_indices(), [0; 7]);
        assert_eq!(zeros.decimals(), (1000, 1000, 1000));
        // 0b000001 000010 000011 000100 000101 000110 000111 (42 bits) + padding.
        let counting = SasBytes([0x04, 0x20, 0xc4, 0x14, 0x61, 0xc0]);
        assert_eq!(counting.emoji_indices(), [1, 2, 3, 4, 5, 6, 7]);
        // 13-bit groups 1, 2, 3.
        let numbers = SasBytes([0x00, 0x08, 0x00, 0x80, 0x06, 0x00]);
        assert_eq!(numbers.decimals(), (1001, 1002, 1003));
    }

    #[test]
    fn in_place_base64_differs_from_real_base64_as_libolm_does() {
        let mac = [0u8; 32];
        let weird = libolm_in_place_base64(&mac);
        // The first group is encoded from genuine bytes; later ones read overwritten bytes.
        assert!(weird.starts_with("AAAA"));
        assert_ne!(weird, base64_encode(mac));
    }
}
