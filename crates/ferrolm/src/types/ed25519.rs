//! Ed25519 keys and signatures.

use ed25519_dalek::{Signature, SigningKey, VerifyingKey, hazmat::ExpandedSecretKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::{KeyError, SignatureError, base64_decode, base64_encode, to_array};

mod batch;

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

/// Verifies many signatures made with one key, faster than one by one, with exactly the
/// verdicts of [`Ed25519PublicKey::verify`] (strict verification).
///
/// Returns one verdict per item, in order; each item's verdict depends only on that item. For
/// [`batch::MIN_ITEMS`] items or more, [`batch`] computes for each signature the very point strict
/// verification computes, `[s]B − [k]A`, from precomputed tables of the two fixed bases, and
/// accepts a signature when that point encodes to its `R` and is not of small order; every
/// signature it does not accept is verified strictly on its own. See SECURITY.md
/// ("Batched signature verification") for the argument.
pub(crate) fn verify_batch(key: &Ed25519PublicKey, items: &[(&[u8], &Ed25519Signature)]) -> Vec<bool> {
    if key.0.is_weak() {
        // Strict verification refuses every signature of a small-order key.
        return vec![false; items.len()];
    }
    let fast = if items.len() >= batch::MIN_ITEMS { batch::verify(key, items) } else { None };
    let fast = fast.unwrap_or_else(|| vec![false; items.len()]);
    items
        .iter()
        .zip(fast)
        .map(|((message, signature), accepted)| accepted || key.verify(message, signature).is_ok())
        .collect()
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
        // The fast path decides all of them.
        let all: Vec<(&[u8], &Ed25519Signature)> = messages.iter().map(|m| m.as_slice()).zip(&signatures).collect();
        assert_eq!(batch::verify(&pair.public_key(), &all), Some(vec![true; 40]));
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
            assert_eq!(batch::verify(&pair.public_key(), &items), Some(vec![true, false]));
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

    /// Raw Ed25519 signing with any scalar `a`, nonce `r`, public key bytes and torsion
    /// added to `R`: what a malicious key holder can produce.
    fn raw_sign(
        a: &Scalar,
        public: &[u8; 32],
        r: &Scalar,
        r_torsion: &EdwardsPoint,
        message: &[u8],
    ) -> Ed25519Signature {
        let r_point = (EdwardsPoint::mul_base(r) + r_torsion).compress();
        let mut hash = Sha512::new();
        hash.update(r_point.as_bytes());
        hash.update(public);
        hash.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        let s = r + k * a;
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(r_point.as_bytes());
        bytes[32..].copy_from_slice(s.as_bytes());
        Ed25519Signature::from_bytes(&bytes)
    }

    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use proptest::prelude::*;

    fn strict(key: &Ed25519PublicKey, items: &[(&[u8], &Ed25519Signature)]) -> Vec<bool> {
        items.iter().map(|(m, s)| key.verify(m, s).is_ok()).collect()
    }

    /// A key with an order-8 component: about one signature in 8 passes strict verification
    /// (those whose `k` is a multiple of 8), and the batch agrees on every one.
    #[test]
    fn torsioned_keys_get_strict_verdicts_in_batches() {
        let a = Scalar::from_bytes_mod_order([5; 32]);
        let public = (EdwardsPoint::mul_base(&a) + EIGHT_TORSION[1]).compress().to_bytes();
        let key = Ed25519PublicKey::from_bytes(&public).unwrap();
        let messages: Vec<Vec<u8>> = (0..64u32).map(|i| format!("message {i}").into_bytes()).collect();
        let signatures: Vec<Ed25519Signature> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| raw_sign(&a, &public, &Scalar::from(i as u64 + 1000), &EdwardsPoint::default(), m))
            .collect();
        let items: Vec<(&[u8], &Ed25519Signature)> = messages.iter().map(|m| m.as_slice()).zip(&signatures).collect();
        let expected = strict(&key, &items);
        let accepted = expected.iter().filter(|ok| **ok).count();
        assert!((1..40).contains(&accepted), "{accepted} of 64 pass strict verification");
        assert_eq!(verify_batch(&key, &items), expected);
        assert_eq!(batch::verify(&key, &items), Some(expected));
    }

    /// Signatures whose `R` carries a small-order component satisfy the cofactored equation
    /// but not strict verification; the batch refuses each of them, alone or in company.
    #[test]
    fn torsioned_nonces_are_refused_in_batches() {
        let pair = Ed25519Keypair::from_seed(&[3; 32]);
        let expanded = pair.secret_key().to_expanded();
        let mut a_bytes = [0u8; 32];
        a_bytes.copy_from_slice(&expanded[..32]);
        let a = Scalar::from_bytes_mod_order(a_bytes);
        let public = *pair.public_key().as_bytes();
        let mut signatures = Vec::new();
        for (i, t) in EIGHT_TORSION.iter().enumerate() {
            signatures.push(raw_sign(&a, &public, &Scalar::from(i as u64 + 7), t, b"m"));
        }
        let items: Vec<(&[u8], &Ed25519Signature)> = signatures.iter().map(|s| (b"m".as_slice(), s)).collect();
        let expected: Vec<bool> = (0..8).map(|i| i == 0).collect();
        assert_eq!(strict(&pair.public_key(), &items), expected);
        assert_eq!(verify_batch(&pair.public_key(), &items), expected);
    }

    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Genuine,
        TorsionedNonce(usize),
        Foreign,
        BitFlip(usize),
        NonCanonicalS,
        SmallOrderR(usize),
        NonCanonicalR(u8),
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            4 => Just(Kind::Genuine),
            2 => (1usize..8).prop_map(Kind::TorsionedNonce),
            1 => Just(Kind::Foreign),
            1 => (0usize..512).prop_map(Kind::BitFlip),
            1 => Just(Kind::NonCanonicalS),
            1 => (0usize..8).prop_map(Kind::SmallOrderR),
            1 => (0u8..19).prop_map(Kind::NonCanonicalR),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Batches mixing genuine, forged and malformed signatures, under a clean key or a key
        /// with a small-order component, get exactly the strict verdicts, item by item; and the
        /// fast path alone never accepts what strict verification refuses.
        #[test]
        fn batches_give_the_strict_verdict_on_every_item(
            kinds in proptest::collection::vec(kind(), 2..24), key_torsion in 0usize..8, seed: u64,
        ) {
            let a = Scalar::from(seed | 1) * Scalar::from_bytes_mod_order([0x42; 32]);
            let public = (EdwardsPoint::mul_base(&a) + EIGHT_TORSION[key_torsion]).compress().to_bytes();
            let key = Ed25519PublicKey::from_bytes(&public).unwrap();
            let other = Ed25519Keypair::from_seed(&[9; 32]);
            let messages: Vec<Vec<u8>> = (0..kinds.len()).map(|i| format!("{seed} {i}").into_bytes()).collect();
            let none = EdwardsPoint::default();
            let signatures: Vec<Ed25519Signature> = kinds.iter().zip(&messages).enumerate().map(|(i, (kind, m))| {
                let r = Scalar::from(seed.wrapping_add(i as u64) | 1 << 40);
                let genuine = raw_sign(&a, &public, &r, &none, m);
                match *kind {
                    Kind::Genuine => genuine,
                    Kind::TorsionedNonce(t) => raw_sign(&a, &public, &r, &EIGHT_TORSION[t], m),
                    Kind::Foreign => other.sign(m),
                    Kind::BitFlip(bit) => {
                        let mut bytes = genuine.to_bytes();
                        bytes[bit / 8] ^= 1 << (bit % 8);
                        Ed25519Signature::from_bytes(&bytes)
                    }
                    Kind::NonCanonicalS => {
                        let mut bytes = genuine.to_bytes();
                        let l = hex::<32>("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
                        let mut carry = 0u16;
                        for j in 0..32 {
                            let sum = u16::from(bytes[32 + j]) + u16::from(l[j]) + carry;
                            bytes[32 + j] = sum as u8;
                            carry = sum >> 8;
                        }
                        Ed25519Signature::from_bytes(&bytes)
                    }
                    Kind::SmallOrderR(t) => {
                        let mut bytes = [0u8; 64];
                        bytes[..32].copy_from_slice(EIGHT_TORSION[t].compress().as_bytes());
                        Ed25519Signature::from_bytes(&bytes)
                    }
                    Kind::NonCanonicalR(offset) => {
                        let mut bytes = genuine.to_bytes();
                        bytes[..32].fill(0xff);
                        bytes[0] = 0xed + offset;
                        bytes[31] = 0x7f;
                        Ed25519Signature::from_bytes(&bytes)
                    }
                }
            }).collect();
            let items: Vec<(&[u8], &Ed25519Signature)> = messages.iter().map(|m| m.as_slice()).zip(&signatures).collect();
            let expected = strict(&key, &items);
            prop_assert_eq!(verify_batch(&key, &items), expected.clone());
            if let Some(fast) = batch::verify(&key, &items) {
                for (fast, strict) in fast.iter().zip(&expected) {
                    prop_assert!(!fast || *strict);
                }
                if key_torsion == 0 {
                    // On a clean key the fast path decides every genuine signature itself.
                    for (fast, kind) in fast.iter().zip(&kinds) {
                        if matches!(kind, Kind::Genuine) {
                            prop_assert!(*fast);
                        }
                    }
                }
            } else {
                prop_assert!(false, "the key was refused");
            }
        }
    }
}
