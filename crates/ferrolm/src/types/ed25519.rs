//! Ed25519 keys and signatures.

use ed25519_dalek::{Signature, SigningKey, VerifyingKey, hazmat::ExpandedSecretKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::{KeyError, SignatureError, base64_decode, base64_encode, to_array};

/// An Ed25519 public key: a device's fingerprint key or a cross-signing key.
///
/// Parsing refuses byte strings that are not points on the curve; verification is strict
/// (RFC 8032 with canonical encodings, small-order keys and `R` refused).
///
/// ```
/// use ferrolm::types::Ed25519Keypair;
/// let pair = Ed25519Keypair::new();
/// let signature = pair.sign(b"message");
/// pair.public_key().verify(b"message", &signature)?;
/// assert!(pair.public_key().verify(b"other", &signature).is_err());
/// # Ok::<(), ferrolm::types::SignatureError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519PublicKey(VerifyingKey);

impl Ed25519PublicKey {
    /// The length of an Ed25519 public key in bytes.
    pub const LENGTH: usize = 32;

    /// Reads a public key from its 32-byte compressed encoding.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes).map(Self).map_err(|_| KeyError::InvalidEd25519Key)
    }

    /// Reads a public key from a slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::from_bytes(&to_array(bytes)?)
    }

    /// Reads a public key from unpadded base64.
    pub fn from_base64(input: &str) -> Result<Self, KeyError> {
        Self::from_slice(&base64_decode(input)?)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key as unpadded base64.
    pub fn to_base64(&self) -> String {
        base64_encode(self.0.as_bytes())
    }

    /// Verifies `signature` over `message` strictly (see the type's documentation).
    pub fn verify(&self, message: &[u8], signature: &Ed25519Signature) -> Result<(), SignatureError> {
        self.0.verify_strict(message, &signature.0).map_err(|_| SignatureError)
    }
}

impl core::fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Ed25519PublicKey({})", self.to_base64())
    }
}

impl core::fmt::Display for Ed25519PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519Signature(Signature);

impl Ed25519Signature {
    /// The length of a signature in bytes.
    pub const LENGTH: usize = 64;

    /// Wraps 64 bytes as a signature (checked only when verified).
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        Self(Signature::from_bytes(bytes))
    }

    /// Reads a signature from a slice, which must be exactly 64 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::from_bytes(&to_array(bytes)?))
    }

    /// Reads a signature from unpadded base64.
    pub fn from_base64(input: &str) -> Result<Self, KeyError> {
        Self::from_slice(&base64_decode(input)?)
    }

    /// The signature's 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }

    /// The signature as unpadded base64.
    pub fn to_base64(&self) -> String {
        base64_encode(self.0.to_bytes())
    }
}

impl core::fmt::Debug for Ed25519Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Ed25519Signature({})", self.to_base64())
    }
}

/// An Ed25519 secret key: either a 32-byte seed (RFC 8032) or, for keys imported from libolm
/// pickles, the 64-byte expanded form libolm stores (clamped scalar ‖ hash prefix).
///
/// Zeroized on drop; `Debug` is redacted. The key lives in a heap block of its own, so moving
/// it copies a pointer, never the secret.
pub struct Ed25519SecretKey(SecretInner);

enum SecretInner {
    Seed(Box<SigningKey>),
    Expanded(Box<ExpandedKey>),
}

/// libolm's expanded form and the signing key made from it (both zeroized on drop).
struct ExpandedKey {
    bytes: Zeroizing<[u8; 64]>,
    key: ExpandedSecretKey,
}

impl Ed25519SecretKey {
    /// A secret key from a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SecretInner::Seed(Box::new(SigningKey::from_bytes(seed))))
    }

    /// A secret key from libolm's 64-byte expanded form.
    pub fn from_expanded(bytes: &[u8; 64]) -> Self {
        Self(SecretInner::Expanded(Box::new(ExpandedKey {
            bytes: Zeroizing::new(*bytes),
            key: ExpandedSecretKey::from_bytes(bytes),
        })))
    }

    /// The seed, when the key was made from one.
    pub fn seed(&self) -> Option<Zeroizing<[u8; 32]>> {
        match &self.0 {
            SecretInner::Seed(key) => Some(Zeroizing::new(key.to_bytes())),
            SecretInner::Expanded(_) => None,
        }
    }

    /// The 64-byte expanded form libolm stores: the clamped scalar then the hash prefix.
    pub fn to_expanded(&self) -> Zeroizing<[u8; 64]> {
        match &self.0 {
            SecretInner::Seed(key) => {
                let digest = Sha512::digest(key.as_bytes());
                let mut bytes = Zeroizing::new([0u8; 64]);
                let array: &mut [u8; 64] = &mut bytes;
                array.copy_from_slice(&digest);
                array[0] &= 248;
                array[31] &= 63;
                array[31] |= 64;
                bytes
            }
            SecretInner::Expanded(expanded) => expanded.bytes.clone(),
        }
    }

    /// Computes the public key (a scalar multiplication).
    pub fn public_key(&self) -> Ed25519PublicKey {
        match &self.0 {
            SecretInner::Seed(key) => Ed25519PublicKey(key.verifying_key()),
            SecretInner::Expanded(expanded) => Ed25519PublicKey(VerifyingKey::from(&expanded.key)),
        }
    }

    fn sign(&self, message: &[u8], public: &Ed25519PublicKey) -> Ed25519Signature {
        match &self.0 {
            SecretInner::Seed(key) => {
                use ed25519_dalek::Signer;
                Ed25519Signature(key.sign(message))
            }
            SecretInner::Expanded(expanded) => {
                Ed25519Signature(ed25519_dalek::hazmat::raw_sign::<Sha512>(&expanded.key, message, &public.0))
            }
        }
    }
}

impl Clone for Ed25519SecretKey {
    fn clone(&self) -> Self {
        match &self.0 {
            SecretInner::Seed(key) => Self(SecretInner::Seed(key.clone())),
            SecretInner::Expanded(expanded) => Self::from_expanded(&expanded.bytes),
        }
    }
}

impl core::fmt::Debug for Ed25519SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Ed25519SecretKey(<redacted>)")
    }
}

/// An Ed25519 secret key with its public key, ready to sign.
///
/// ```
/// use ferrolm::types::Ed25519Keypair;
/// let pair = Ed25519Keypair::from_seed(&[7; 32]);
/// let signature = pair.sign(b"{}");
/// assert!(pair.public_key().verify(b"{}", &signature).is_ok());
/// assert!(!format!("{pair:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct Ed25519Keypair {
    secret: Ed25519SecretKey,
    public: Ed25519PublicKey,
}

impl Ed25519Keypair {
    /// A new random key pair from the operating system's generator.
    pub fn new() -> Self {
        Self::generate(&mut crate::rng::os_rng())
    }

    /// A new key pair from a 32-byte seed drawn from `rng` (libolm's layout).
    pub(crate) fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The key pair of a 32-byte seed (as libolm's `olm_pk_signing` and RFC 8032 use it).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let secret = Ed25519SecretKey::from_seed(seed);
        let public = secret.public_key();
        Self { secret, public }
    }

    /// Rebuilds a key pair from a secret key, computing the public key.
    pub fn from_secret(secret: Ed25519SecretKey) -> Self {
        let public = secret.public_key();
        Self { secret, public }
    }

    /// Rebuilds a key pair from a pickle, refusing one whose stored public key is not the
    /// secret's. A wrong public key is not merely wrong: Ed25519 signing hashes the public key
    /// but derives its nonce without it, so signing one message under two public keys would
    /// reveal the secret scalar. Costs nothing for seed keys (the public key is derived with
    /// the seed); one scalar multiplication for libolm's expanded keys.
    pub(crate) fn from_pickled(secret: Ed25519SecretKey, public: Ed25519PublicKey) -> Option<Self> {
        (secret.public_key() == public).then_some(Self { secret, public })
    }

    /// The public key.
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.public
    }

    /// The secret key.
    pub fn secret_key(&self) -> &Ed25519SecretKey {
        &self.secret
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Ed25519Signature {
        self.secret.sign(message, &self.public)
    }
}

impl Default for Ed25519Keypair {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Ed25519Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ed25519Keypair").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Verifies many signatures made with one key, faster than one by one.
///
/// Returns one verdict per item, in order. The fast path checks all of them at once with the
/// cofactored batch equation `[8]([−Σzᵢsᵢ]B + Σ[zᵢ]Rᵢ + [Σzᵢkᵢ]A) = 0` for independent random
/// 128-bit `zᵢ`, in a single multi-scalar multiplication: the shared key `A` costs one term
/// rather than one per signature. Each signature must first pass the same checks strict
/// verification makes (canonical `s`, `R` a valid point of more than small order, `A` not
/// weak). If the batch fails, every signature is verified on its own (strictly), so a forged
/// signature is attributed to its own item and the others are unaffected.
///
/// The one case in which the two paths can differ is a signature whose `R` has a small-order
/// component added on purpose: only the holder of the secret key can make one, the cofactored
/// batch accepts it and strict verification does not. It gives no one a forgery.
pub(crate) fn verify_batch(key: &Ed25519PublicKey, items: &[(&[u8], &Ed25519Signature)]) -> Vec<bool> {
    if items.is_empty() {
        return Vec::new();
    }
    if key.0.is_weak() {
        return vec![false; items.len()];
    }
    if items.len() > 1 && batch_equation_holds(key, items) {
        return vec![true; items.len()];
    }
    items.iter().map(|(message, signature)| key.verify(message, signature).is_ok()).collect()
}

fn batch_equation_holds(key: &Ed25519PublicKey, items: &[(&[u8], &Ed25519Signature)]) -> bool {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

    let Some(a_point) = CompressedEdwardsY(*key.as_bytes()).decompress() else { return false };
    let mut randomness = vec![0u8; 16 * items.len()];
    rand_core::RngCore::fill_bytes(&mut crate::rng::os_rng(), &mut randomness);

    let mut scalars = Vec::with_capacity(items.len() + 2);
    let mut points = Vec::with_capacity(items.len() + 2);
    let (mut b_coefficient, mut a_coefficient) = (Scalar::ZERO, Scalar::ZERO);
    for ((message, signature), z_bytes) in items.iter().zip(randomness.chunks_exact(16)) {
        let bytes = signature.to_bytes();
        let (r_bytes, s_bytes) = bytes.split_at(32);
        let (Ok(r_bytes), Ok(s_bytes)) = (<[u8; 32]>::try_from(r_bytes), <[u8; 32]>::try_from(s_bytes)) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else { return false };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else { return false };
        if r.is_small_order() {
            return false;
        }
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(key.as_bytes());
        hash.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        let mut z = [0u8; 32];
        z[..16].copy_from_slice(z_bytes);
        let z = Scalar::from_bytes_mod_order(z);
        b_coefficient -= z * s;
        a_coefficient += z * k;
        scalars.push(z);
        points.push(r);
    }
    scalars.push(b_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.push(a_coefficient);
    points.push(a_point);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    #[test]
    fn rfc8032_test_1() {
        let pair = Ed25519Keypair::from_seed(&hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
        assert_eq!(
            pair.public_key().as_bytes(),
            &hex::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = pair.sign(b"");
        assert_eq!(
            sig.to_bytes(),
            hex::<64>(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        pair.public_key().verify(b"", &sig).unwrap();
    }

    #[test]
    fn expanded_keys_sign_like_their_seed() {
        let pair = Ed25519Keypair::from_seed(&[42; 32]);
        let expanded = Ed25519Keypair::from_secret(Ed25519SecretKey::from_expanded(&pair.secret_key().to_expanded()));
        assert_eq!(expanded.public_key(), pair.public_key());
        // Ed25519 is deterministic: both forms give the same signature.
        assert_eq!(expanded.sign(b"hello").to_bytes(), pair.sign(b"hello").to_bytes());
        assert!(expanded.secret_key().seed().is_none());
        assert_eq!(*expanded.secret_key().to_expanded(), *pair.secret_key().to_expanded());
    }

    #[test]
    fn strict_verification_refuses_malleated_signatures() {
        let pair = Ed25519Keypair::new();
        let sig = pair.sign(b"m").to_bytes();
        // Adding the group order to S gives a non-canonical S that lax verifiers accept.
        let l: [u8; 32] = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut malleated = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(malleated[32 + i]) + u16::from(l[i]) + carry;
            malleated[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert!(pair.public_key().verify(b"m", &Ed25519Signature::from_bytes(&malleated)).is_err());
        // A small-order public key is refused by strict verification.
        let identity =
            Ed25519PublicKey::from_bytes(&hex("0100000000000000000000000000000000000000000000000000000000000000"))
                .unwrap();
        assert!(identity.verify(b"m", &Ed25519Signature::from_bytes(&[0; 64])).is_err());
    }

    #[test]
    fn batch_verification_accepts_valid_batches_and_attributes_forgeries() {
        let pair = Ed25519Keypair::new();
        let messages: Vec<Vec<u8>> = (0..40u32).map(|i| format!("message {i}").into_bytes()).collect();
        let mut signatures: Vec<Ed25519Signature> = messages.iter().map(|m| pair.sign(m)).collect();
        let items = |sigs: &[Ed25519Signature]| -> Vec<bool> {
            let items: Vec<(&[u8], &Ed25519Signature)> = messages.iter().map(|m| m.as_slice()).zip(sigs).collect();
            verify_batch(&pair.public_key(), &items)
        };
        assert!(batch_equation_holds(
            &pair.public_key(),
            &messages.iter().map(|m| m.as_slice()).zip(&signatures).collect::<Vec<_>>()
        ));
        assert_eq!(items(&signatures), vec![true; 40]);
        // One forged signature (another message's) and one with a flipped bit.
        signatures[7] = signatures[8];
        let mut flipped = signatures[30].to_bytes();
        flipped[40] ^= 1;
        signatures[30] = Ed25519Signature::from_bytes(&flipped);
        let verdicts = items(&signatures);
        for (i, ok) in verdicts.iter().enumerate() {
            assert_eq!(*ok, i != 7 && i != 30, "item {i}");
        }
        // Another key's signatures all fail.
        let other = Ed25519Keypair::new();
        let foreign: Vec<Ed25519Signature> = messages.iter().map(|m| other.sign(m)).collect();
        assert_eq!(items(&foreign), vec![false; 40]);
        assert!(verify_batch(&pair.public_key(), &[]).is_empty());
    }

    #[test]
    fn batch_verification_refuses_what_strict_verification_refuses() {
        let pair = Ed25519Keypair::new();
        let good = pair.sign(b"m");
        // Non-canonical s (s + l).
        let l: [u8; 32] = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut bytes = good.to_bytes();
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(bytes[32 + i]) + u16::from(l[i]) + carry;
            bytes[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        let malleated = Ed25519Signature::from_bytes(&bytes);
        // Small-order R (the identity) with s = 0.
        let mut small = [0u8; 64];
        small[0] = 1;
        let small = Ed25519Signature::from_bytes(&small);
        for bad in [malleated, small] {
            let items: Vec<(&[u8], &Ed25519Signature)> = vec![(b"m", &good), (b"m", &bad)];
            assert_eq!(verify_batch(&pair.public_key(), &items), vec![true, false]);
            assert!(!batch_equation_holds(&pair.public_key(), &items));
        }
    }

    #[test]
    fn bad_public_keys_are_typed_errors() {
        // y = 2 is not on the curve.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        assert_eq!(Ed25519PublicKey::from_bytes(&not_on_curve), Err(KeyError::InvalidEd25519Key));
        assert!(matches!(Ed25519PublicKey::from_slice(&[1; 33]), Err(KeyError::InvalidLength { .. })));
    }
}
