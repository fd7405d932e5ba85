//! Dehydrated devices (MSC3814, `org.matrix.msc3814.v2`): an account stored encrypted on the
//! server, so that it can receive to-device messages while the user has no device logged in.
//!
//! The format is vodozemac's, so a dehydrated device moves between ferrolm and vodozemac
//! (matrix-sdk-crypto) in both directions. The plaintext is a big-endian binary layout:
//!
//! ```text
//! version (u32 = 1) ‖ Curve25519 identity secret (32) ‖ Ed25519 seed (32)
//!   ‖ one-time key count (u32) ‖ each one-time secret key (32)
//!   ‖ has fallback key (u8 0|1) ‖ [fallback secret key (32)]
//! ```
//!
//! encrypted with ChaCha20-Poly1305 under the caller's 32-byte key and a random 96-bit nonce;
//! the ciphertext (with its tag) and the nonce are unpadded base64. Sessions are not kept (a
//! dehydrated device must be a new account), key ids are not kept (a rehydrated account's keys
//! are renumbered from 0 and marked published), and neither is a previous fallback key.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::{Account, OneTimeKey};
use crate::codec::{PickleReader, PickleWriter};
use crate::types::{Curve25519Keypair, Curve25519SecretKey, Ed25519Keypair, KeyId, base64_decode, base64_encode};

/// The version of the plaintext layout.
pub const DEHYDRATED_DEVICE_PICKLE_VERSION: u32 = 1;

/// A dehydrated device's encrypted account, as the `device_data` of MSC3814 carries it:
/// `device_pickle` and `nonce`, both unpadded base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DehydratedDevicePickle {
    /// The encrypted account (`device_pickle`).
    pub ciphertext: String,
    /// The 12-byte nonce.
    pub nonce: String,
}

/// Why an account could not be dehydrated or rehydrated. No variant carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DehydratedDeviceError {
    /// The account's Ed25519 key has no seed (an account imported from a libolm pickle keeps
    /// only the expanded key): the format cannot hold it.
    #[error("the account's Ed25519 key has no seed (imported from libolm): it cannot be dehydrated")]
    NoSeed,
    /// The ciphertext or the nonce is not base64.
    #[error("the {0} is not valid base64")]
    Base64(&'static str),
    /// The nonce is not 12 bytes.
    #[error("the nonce is {0} bytes, not 12")]
    InvalidNonce(usize),
    /// The ciphertext does not decrypt under the key: the wrong key or altered data.
    #[error("the dehydrated device does not decrypt: wrong key or altered data")]
    Decryption,
    /// The plaintext is of a version this library does not read.
    #[error("unsupported dehydrated device pickle version {0}")]
    UnsupportedVersion(u32),
    /// The plaintext is truncated or has trailing bytes.
    #[error("the dehydrated device's account is malformed")]
    Malformed,
}

impl Account {
    /// The account as a dehydrated device, encrypted under `key`, with a nonce from the
    /// operating system.
    ///
    /// ```
    /// use ferrolm::olm::Account;
    /// let mut account = Account::new();
    /// account.generate_one_time_keys(10);
    /// account.generate_fallback_key();
    /// let key = [7u8; 32];
    /// let pickle = account.to_dehydrated_device(&key)?;
    /// let back = Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &key)?;
    /// assert_eq!(back.identity_keys(), account.identity_keys());
    /// assert_eq!(back.stored_one_time_key_count(), 10);
    /// # Ok::<(), ferrolm::olm::DehydratedDeviceError>(())
    /// ```
    pub fn to_dehydrated_device(&self, key: &[u8; 32]) -> Result<DehydratedDevicePickle, DehydratedDeviceError> {
        self.to_dehydrated_device_inner(key, &mut crate::rng::os_rng())
    }

    /// [`Account::to_dehydrated_device`] with the caller's randomness: 12 bytes of nonce.
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn to_dehydrated_device_with_rng(
        &self,
        key: &[u8; 32],
        rng: &mut impl CryptoRngCore,
    ) -> Result<DehydratedDevicePickle, DehydratedDeviceError> {
        self.to_dehydrated_device_inner(key, rng)
    }

    fn to_dehydrated_device_inner(
        &self,
        key: &[u8; 32],
        rng: &mut impl CryptoRngCore,
    ) -> Result<DehydratedDevicePickle, DehydratedDeviceError> {
        let plaintext = self.dehydrated_plaintext()?;
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let cipher = ChaCha20Poly1305::new(key.into());
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_slice())
            .map_err(|_| DehydratedDeviceError::Malformed)?;
        Ok(DehydratedDevicePickle { ciphertext: base64_encode(ciphertext), nonce: base64_encode(nonce) })
    }

    fn dehydrated_plaintext(&self) -> Result<Zeroizing<Vec<u8>>, DehydratedDeviceError> {
        let seed = self.signing_key.secret_key().seed().ok_or(DehydratedDeviceError::NoSeed)?;
        let mut w = PickleWriter::with_capacity(4 + 64 + 4 + 32 * self.one_time_keys.len() + 33);
        w.u32(DEHYDRATED_DEVICE_PICKLE_VERSION);
        w.bytes(self.identity_key.secret.to_bytes().as_ref());
        w.bytes(seed.as_ref());
        w.u32(u32::try_from(self.one_time_keys.len()).map_err(|_| DehydratedDeviceError::Malformed)?);
        for key in &self.one_time_keys {
            w.bytes(key.key.secret.to_bytes().as_ref());
        }
        match &self.fallback_key {
            Some(key) => {
                w.bool(true);
                w.bytes(key.key.secret.to_bytes().as_ref());
            }
            None => w.bool(false),
        }
        Ok(w.finish())
    }

    /// The account of a dehydrated device, decrypted with `key` (authenticated first). Its
    /// one-time keys are numbered from 0 and, like its fallback key, marked published.
    pub fn from_dehydrated_device(
        ciphertext: &str,
        nonce: &str,
        key: &[u8; 32],
    ) -> Result<Self, DehydratedDeviceError> {
        let ciphertext = base64_decode(ciphertext).map_err(|_| DehydratedDeviceError::Base64("ciphertext"))?;
        let nonce = base64_decode(nonce).map_err(|_| DehydratedDeviceError::Base64("nonce"))?;
        if nonce.len() != 12 {
            return Err(DehydratedDeviceError::InvalidNonce(nonce.len()));
        }
        let cipher = ChaCha20Poly1305::new(key.into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
                .map_err(|_| DehydratedDeviceError::Decryption)?,
        );
        Self::from_dehydrated_plaintext(&plaintext)
    }

    fn from_dehydrated_plaintext(plaintext: &[u8]) -> Result<Self, DehydratedDeviceError> {
        let malformed = |_| DehydratedDeviceError::Malformed;
        let mut r = PickleReader::new(plaintext);
        let version = r.u32().map_err(malformed)?;
        if version != DEHYDRATED_DEVICE_PICKLE_VERSION {
            return Err(DehydratedDeviceError::UnsupportedVersion(version));
        }
        let curve = r.secret::<32>().map_err(malformed)?;
        let seed = r.secret::<32>().map_err(malformed)?;
        let count = r.u32().map_err(malformed)?;
        let mut one_time_keys = std::collections::VecDeque::new();
        for id in 0..count {
            let secret = r.secret::<32>().map_err(malformed)?;
            let key = Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(&secret));
            one_time_keys.push_back(OneTimeKey { id: KeyId(id), published: true, key });
        }
        let fallback_key = if r.bool().map_err(malformed)? {
            let secret = r.secret::<32>().map_err(malformed)?;
            let key = Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(&secret));
            Some(OneTimeKey { id: KeyId(count), published: true, key })
        } else {
            None
        };
        if !r.is_empty() {
            return Err(DehydratedDeviceError::Malformed);
        }
        Ok(Self {
            signing_key: Ed25519Keypair::from_seed(&seed),
            identity_key: Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(&curve)),
            one_time_keys,
            next_key_id: count.saturating_add(1),
            fallback_key,
            previous_fallback_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        let mut account = Account::new();
        account.generate_one_time_keys(3);
        account.generate_fallback_key();
        account
    }

    #[test]
    fn a_dehydrated_account_keeps_its_keys() {
        let account = account();
        let pickle = account.to_dehydrated_device(&[1; 32]).unwrap();
        let back = Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &[1; 32]).unwrap();
        assert_eq!(back.identity_keys(), account.identity_keys());
        let keys = |a: &Account| a.one_time_keys.iter().map(|k| k.key.public).collect::<Vec<_>>();
        assert_eq!(keys(&back), keys(&account));
        assert_eq!(
            back.fallback_key.as_ref().map(|k| k.key.public),
            account.fallback_key.as_ref().map(|k| k.key.public)
        );
    }

    #[test]
    fn wrong_keys_and_altered_or_malformed_pickles_are_refused() {
        let pickle = account().to_dehydrated_device(&[1; 32]).unwrap();
        let refused = |c: &str, n: &str, k: &[u8; 32]| Account::from_dehydrated_device(c, n, k).err();
        assert_eq!(refused(&pickle.ciphertext, &pickle.nonce, &[2; 32]), Some(DehydratedDeviceError::Decryption));
        let mut bytes = base64_decode(&pickle.ciphertext).unwrap();
        bytes[5] ^= 1;
        assert_eq!(refused(&base64_encode(&bytes), &pickle.nonce, &[1; 32]), Some(DehydratedDeviceError::Decryption));
        assert_eq!(refused(&pickle.ciphertext, "AAAA", &[1; 32]), Some(DehydratedDeviceError::InvalidNonce(3)));
        assert_eq!(refused("!!", &pickle.nonce, &[1; 32]), Some(DehydratedDeviceError::Base64("ciphertext")));
        let plaintext = account().dehydrated_plaintext().unwrap();
        for cut in [0, 3, 40, plaintext.len() - 1] {
            assert_eq!(
                Account::from_dehydrated_plaintext(&plaintext[..cut]).err(),
                Some(DehydratedDeviceError::Malformed),
                "cut at {cut}"
            );
        }
        let mut longer = plaintext.to_vec();
        longer.push(0);
        assert_eq!(Account::from_dehydrated_plaintext(&longer).err(), Some(DehydratedDeviceError::Malformed));
        let mut v2 = plaintext.to_vec();
        v2[3] = 2;
        assert_eq!(Account::from_dehydrated_plaintext(&v2).err(), Some(DehydratedDeviceError::UnsupportedVersion(2)));
        // A huge count with no keys behind it is truncated, not an allocation.
        let mut huge = plaintext[..68].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Account::from_dehydrated_plaintext(&huge).err(), Some(DehydratedDeviceError::Malformed));
    }
}
