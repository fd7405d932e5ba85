//! Curve25519 (X25519) keys.

use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::{KeyError, base64_decode, base64_encode, to_array};

/// A Curve25519 public key: an identity key, a one-time key, a base key or a ratchet key.
///
/// ```
/// use ferrolm::types::Curve25519PublicKey;
/// let key = Curve25519PublicKey::from_base64("3qD0KHH1tiSbk/A7hyz6FOyCY3lfxtv6PmcuYnNWeHE")?;
/// assert_eq!(key.to_base64(), "3qD0KHH1tiSbk/A7hyz6FOyCY3lfxtv6PmcuYnNWeHE");
/// # Ok::<(), ferrolm::types::KeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Curve25519PublicKey([u8; 32]);

impl Curve25519PublicKey {
    /// The length of a Curve25519 public key in bytes.
    pub const LENGTH: usize = 32;

    /// Wraps 32 bytes as a public key. Every 32-byte string is a valid X25519 input; keys of
    /// small order are refused later, when a Diffie-Hellman exchange would use them.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a public key from a slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        Ok(Self(to_array(bytes)?))
    }

    /// Reads a public key from unpadded base64.
    pub fn from_base64(input: &str) -> Result<Self, KeyError> {
        Self::from_slice(&base64_decode(input)?)
    }

    /// The key's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key's bytes, copied.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The key as unpadded base64.
    pub fn to_base64(&self) -> String {
        base64_encode(self.0)
    }

    /// Whether this is one of the points of small order (on the curve or its twist), in any
    /// encoding. A Diffie-Hellman exchange with such a point yields the all-zero secret for
    /// every private key, so these keys contribute nothing and are refused.
    pub fn is_small_order(&self) -> bool {
        let mut canonical = self.0;
        if let Some(top) = canonical.last_mut() {
            *top &= 0x7f; // X25519 ignores the top bit
        }
        small_order_points().contains(&canonical)
    }
}

/// The u-coordinates of every small-order X25519 input with the top bit cleared: the curve's
/// torsion points (from curve25519-dalek's constants), −1 (order 2 on the twist), and the
/// non-canonical encodings p and p + 1 of 0 and 1.
fn small_order_points() -> &'static [[u8; 32]] {
    static POINTS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let mut points: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|p| p.to_montgomery().to_bytes()).collect();
        // p - 1, p, p + 1 with p = 2^255 - 19: low bytes 0xec, 0xed, 0xee, then 0xff…, 0x7f.
        for low in [0xec_u8, 0xed, 0xee] {
            let mut bytes = [0xff_u8; 32];
            bytes[0] = low;
            bytes[31] = 0x7f;
            points.push(bytes);
        }
        points.sort_unstable();
        points.dedup();
        points
    })
}

impl core::fmt::Debug for Curve25519PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Curve25519PublicKey({})", self.to_base64())
    }
}

impl core::fmt::Display for Curve25519PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl From<[u8; 32]> for Curve25519PublicKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// A Curve25519 secret key. Zeroized on drop; its `Debug` output is redacted.
///
/// The key lives in a heap block of its own, zeroized before it is freed, so moving the key
/// (or anything that holds it: an account, a session, a vector of them that grows) copies a
/// pointer, never the secret.
///
/// ```
/// use ferrolm::types::Curve25519SecretKey;
/// let secret = Curve25519SecretKey::new();
/// let public = secret.public_key();
/// assert_eq!(format!("{secret:?}"), "Curve25519SecretKey(<redacted>)");
/// # let _ = public;
/// ```
#[derive(Clone)]
pub struct Curve25519SecretKey(Box<StaticSecret>);

impl Curve25519SecretKey {
    /// A new random secret key from the operating system's generator.
    pub fn new() -> Self {
        Self::generate(&mut crate::rng::os_rng())
    }

    /// A new secret key from 32 bytes of the caller's generator (libolm's layout).
    pub(crate) fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        Self::from_bytes(&bytes)
    }

    /// Wraps 32 secret bytes (unclamped, as libolm stores them).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Box::new(StaticSecret::from(*bytes)))
    }

    /// The secret bytes, in a buffer that zeroizes itself.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Computes the public key (a scalar multiplication).
    pub fn public_key(&self) -> Curve25519PublicKey {
        Curve25519PublicKey(PublicKey::from(self.0.as_ref()).to_bytes())
    }

    /// X25519 with the other side's public key; an all-zero (non-contributory) result is refused.
    pub(crate) fn diffie_hellman(&self, theirs: &Curve25519PublicKey) -> Result<SharedSecret, KeyError> {
        let shared = self.0.diffie_hellman(&PublicKey::from(theirs.0));
        if shared.was_contributory() {
            Ok(SharedSecret(Zeroizing::new(shared.to_bytes())))
        } else {
            Err(KeyError::NonContributory)
        }
    }

    /// X25519 without the contributory check, for keys already known not to be of small
    /// order (for such a key the result is never zero: see [`Curve25519PublicKey::is_small_order`]).
    pub(crate) fn diffie_hellman_unchecked(&self, theirs: &Curve25519PublicKey) -> SharedSecret {
        SharedSecret(Zeroizing::new(self.0.diffie_hellman(&PublicKey::from(theirs.0)).to_bytes()))
    }
}

impl Default for Curve25519SecretKey {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Curve25519SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Curve25519SecretKey(<redacted>)")
    }
}

/// The 32-byte output of X25519, zeroized on drop.
pub(crate) struct SharedSecret(Zeroizing<[u8; 32]>);

impl SharedSecret {
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A secret key with its public key computed once and kept beside it, so that using the
/// public key never costs a scalar multiplication.
#[derive(Clone)]
pub(crate) struct Curve25519Keypair {
    pub(crate) secret: Curve25519SecretKey,
    pub(crate) public: Curve25519PublicKey,
}

impl Curve25519Keypair {
    pub(crate) fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self::from_secret(Curve25519SecretKey::generate(rng))
    }

    pub(crate) fn from_secret(secret: Curve25519SecretKey) -> Self {
        let public = secret.public_key();
        Self { secret, public }
    }

    /// Rebuilds a key pair from a trusted (authenticated) pickle without recomputing the
    /// public key.
    pub(crate) fn from_pickled(secret: &[u8; 32], public: [u8; 32]) -> Self {
        Self { secret: Curve25519SecretKey::from_bytes(secret), public: Curve25519PublicKey(public) }
    }
}

impl core::fmt::Debug for Curve25519Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Curve25519Keypair").field("public", &self.public).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_points_are_exactly_the_non_contributory_ones() {
        // Seven distinct encodings, as in libsodium's list.
        assert_eq!(small_order_points().len(), 7);
        let secret = Curve25519SecretKey::new();
        for point in small_order_points() {
            let key = Curve25519PublicKey(*point);
            assert!(key.is_small_order());
            assert_eq!(secret.diffie_hellman(&key).err(), Some(KeyError::NonContributory));
            // The top bit is ignored by X25519, so the same points with it set are refused too.
            let mut high = *point;
            high[31] |= 0x80;
            assert!(Curve25519PublicKey(high).is_small_order());
            assert!(secret.diffie_hellman(&Curve25519PublicKey(high)).is_err());
        }
        let honest = Curve25519SecretKey::new().public_key();
        assert!(!honest.is_small_order());
        assert!(secret.diffie_hellman(&honest).is_ok());
    }

    #[test]
    fn rfc7748_diffie_hellman() {
        // RFC 7748, section 6.1.
        let hex = |s: &str| -> [u8; 32] {
            let v: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
            v.try_into().unwrap()
        };
        let alice =
            Curve25519SecretKey::from_bytes(&hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        let bob =
            Curve25519SecretKey::from_bytes(&hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
        assert_eq!(
            alice.public_key().to_bytes(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public_key().to_bytes(),
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = alice.diffie_hellman(&bob.public_key()).unwrap();
        assert_eq!(*shared.as_bytes(), hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let pair = Curve25519Keypair::generate(&mut crate::rng::os_rng());
        let secret_b64 = base64_encode(*pair.secret.to_bytes());
        let printed = format!("{pair:?} {:?}", pair.secret);
        assert!(!printed.contains(&secret_b64));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        assert_eq!(Curve25519PublicKey::from_slice(&[0; 31]), Err(KeyError::InvalidLength { expected: 32, got: 31 }));
        assert!(matches!(Curve25519PublicKey::from_base64("!!"), Err(KeyError::Base64(_))));
    }
}
