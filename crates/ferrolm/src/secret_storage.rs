//! Secret storage (`m.secret_storage.v1.aes-hmac-sha2`): secrets such as cross-signing keys
//! and the backup key, encrypted in account data under a secret storage key, and the
//! recovery keys users write down.
//!
//! For a secret named `name` (its account data type, e.g. `m.cross_signing.master`):
//! `HKDF-SHA-256(salt = 32 zero bytes, key, info = name, 64)` gives an AES-256 key and an
//! HMAC-SHA-256 key; the secret is encrypted with AES-256-CTR under a random IV (bit 63
//! cleared) and the ciphertext MACed. A key description proves which key it belongs to with a
//! *key check*: 32 zero bytes encrypted under the name `""`.
//!
//! ```
//! use ferrolm::secret_storage::SecretStorageKey;
//! let key = SecretStorageKey::new();
//! let encrypted = key.encrypt("m.cross_signing.master", b"seed bytes");
//! assert_eq!(key.decrypt("m.cross_signing.master", &encrypted)?.as_slice(), b"seed bytes");
//!
//! // The recovery key the user writes down, and back.
//! let written = key.to_recovery_key();
//! let restored = SecretStorageKey::from_recovery_key(&written)?;
//! let check = key.key_check();
//! restored.verify_key_check(&check)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use aes::Aes256;
use aes::cipher::{KeyIvInit, StreamCipher};
use rand_core::CryptoRngCore;
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::crypto::{ct_eq, hkdf, hmac_sha256};
use crate::types::{base64_decode, base64_encode};

/// Why a secret could not be decrypted or a key not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretStorageError {
    /// A field of the encrypted secret is not valid base64.
    #[error("the {0} is not valid base64")]
    Base64(&'static str),
    /// The IV is not 16 bytes or the MAC not 32.
    #[error("the {field} is {len} bytes long, not {expected}")]
    InvalidLength {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// The MAC does not match: the wrong key, the wrong secret name, or altered data.
    #[error("the MAC does not match: wrong key, wrong secret name, or altered data")]
    Mac,
    /// A passphrase key description asks for zero iterations, or more than
    /// [`MAX_PASSPHRASE_ITERATIONS`].
    #[error("unsupported PBKDF2 iteration count {0}")]
    InvalidIterations(u32),
    /// A passphrase key description asks for a key length (`bits`) other than 256: the
    /// `m.secret_storage.v1.aes-hmac-sha2` algorithm needs a 256-bit key.
    #[error("unsupported passphrase key length of {0} bits (only 256 is usable)")]
    UnsupportedKeyBits(u32),
}

/// The most PBKDF2 iterations a passphrase key description may ask for. Key descriptions come
/// from account data the server controls, and each iteration costs the client time: twenty
/// times the 500,000 clients use.
pub const MAX_PASSPHRASE_ITERATIONS: u32 = 10_000_000;

/// Why a recovery key was refused. Each check has its own variant, so the user can be told
/// what is wrong with what they typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryKeyError {
    /// A character is not in the base58 alphabet (0, O, I and l are not).
    #[error("'{0}' is not a base58 character (recovery keys never contain 0, O, I or l)")]
    InvalidCharacter(char),
    /// The key decodes to the wrong number of bytes (too few or too many characters).
    #[error("the recovery key decodes to {0} bytes, not 35: characters are missing or extra")]
    InvalidLength(usize),
    /// The input is far longer than any recovery key (48 characters, 59 with the spaces
    /// between groups): refused before decoding, which takes time quadratic in the length.
    #[error("the input is {0} bytes long: far longer than a recovery key")]
    TooLong(usize),
    /// The key does not start with the recovery key prefix 0x8B 0x01.
    #[error("the recovery key does not start with the expected prefix")]
    InvalidPrefix,
    /// The parity byte does not match: a character was mistyped.
    #[error("the recovery key's parity check failed: a character is mistyped")]
    InvalidParity,
}

/// The longest input [`SecretStorageKey::from_recovery_key`] decodes, in bytes: twice a
/// recovery key with a space between every two characters, and some surrounding whitespace.
pub const MAX_RECOVERY_KEY_INPUT: usize = 256;

/// A 32-byte secret storage key. Zeroized on drop; `Debug` redacted. The key lives in a heap
/// block of its own, so moving it copies a pointer, never the key.
#[derive(Clone)]
pub struct SecretStorageKey(Box<Zeroizing<[u8; 32]>>);

/// An encrypted secret as stored in account data: `{"iv", "ciphertext", "mac"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedSecret {
    /// The AES-CTR initial counter block.
    pub iv: [u8; 16],
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
    /// HMAC-SHA-256 of the ciphertext.
    pub mac: [u8; 32],
}

impl EncryptedSecret {
    /// Reads the three base64 fields (padded or not).
    pub fn from_base64(iv: &str, ciphertext: &str, mac: &str) -> Result<Self, SecretStorageError> {
        let iv = fixed::<16>("IV", iv)?;
        let ciphertext = base64_decode(ciphertext).map_err(|_| SecretStorageError::Base64("ciphertext"))?;
        let mac = fixed::<32>("MAC", mac)?;
        Ok(Self { iv, ciphertext, mac })
    }

    /// The three fields as unpadded base64: (iv, ciphertext, mac).
    pub fn to_base64(&self) -> (String, String, String) {
        (base64_encode(self.iv), base64_encode(&self.ciphertext), base64_encode(self.mac))
    }
}

/// The `iv` and `mac` a key description carries to identify its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// The IV the check was made with.
    pub iv: [u8; 16],
    /// The MAC of 32 encrypted zero bytes under the name `""`.
    pub mac: [u8; 32],
}

impl KeyCheck {
    /// Reads a key description's `iv` and `mac`.
    pub fn from_base64(iv: &str, mac: &str) -> Result<Self, SecretStorageError> {
        Ok(Self { iv: fixed::<16>("IV", iv)?, mac: fixed::<32>("MAC", mac)? })
    }

    /// The `iv` and `mac` as unpadded base64.
    pub fn to_base64(&self) -> (String, String) {
        (base64_encode(self.iv), base64_encode(self.mac))
    }
}

fn fixed<const N: usize>(field: &'static str, input: &str) -> Result<[u8; N], SecretStorageError> {
    let bytes = base64_decode(input).map_err(|_| SecretStorageError::Base64(field))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| SecretStorageError::InvalidLength {
        field,
        len: bytes.len(),
        expected: N,
    })
}

impl SecretStorageKey {
    /// A new random key.
    pub fn new() -> Self {
        Self::new_inner(&mut crate::rng::os_rng())
    }

    fn new_inner(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self::from_secret(key)
    }

    fn from_secret(key: Zeroizing<[u8; 32]>) -> Self {
        Self(Box::new(key))
    }

    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(Zeroizing::new(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of a passphrase (`m.pbkdf2`): PBKDF2-HMAC-SHA-512 with the key description's
    /// salt and iterations, 256 bits. Zero iterations, or more than
    /// [`MAX_PASSPHRASE_ITERATIONS`], are refused: the description is untrusted input.
    pub fn from_passphrase(passphrase: &str, salt: &str, iterations: u32) -> Result<Self, SecretStorageError> {
        Self::from_passphrase_description(passphrase, salt, iterations, None)
    }

    /// As [`Self::from_passphrase`], honouring the key description's optional `bits` field:
    /// absent means 256, as the specification says; any other value than 256 is refused,
    /// since the secret storage algorithm needs exactly a 256-bit key.
    ///
    /// ```
    /// use ferrolm::secret_storage::{SecretStorageError, SecretStorageKey};
    /// let key = SecretStorageKey::from_passphrase_description("correct horse", "salt", 10, Some(256))?;
    /// assert_eq!(key.as_bytes(), SecretStorageKey::from_passphrase("correct horse", "salt", 10)?.as_bytes());
    /// assert_eq!(
    ///     SecretStorageKey::from_passphrase_description("correct horse", "salt", 10, Some(128)).err(),
    ///     Some(SecretStorageError::UnsupportedKeyBits(128))
    /// );
    /// # Ok::<(), SecretStorageError>(())
    /// ```
    pub fn from_passphrase_description(
        passphrase: &str,
        salt: &str,
        iterations: u32,
        bits: Option<u32>,
    ) -> Result<Self, SecretStorageError> {
        if let Some(bits) = bits.filter(|&bits| bits != 256) {
            return Err(SecretStorageError::UnsupportedKeyBits(bits));
        }
        if iterations == 0 || iterations > MAX_PASSPHRASE_ITERATIONS {
            return Err(SecretStorageError::InvalidIterations(iterations));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<Sha512>(passphrase.as_bytes(), salt.as_bytes(), iterations, key.as_mut());
        Ok(Self::from_secret(key))
    }

    /// Restores a key from a recovery key as the user typed it (spaces ignored).
    pub fn from_recovery_key(recovery_key: &str) -> Result<Self, RecoveryKeyError> {
        if recovery_key.len() > MAX_RECOVERY_KEY_INPUT {
            return Err(RecoveryKeyError::TooLong(recovery_key.len()));
        }
        let bytes = base58_decode(recovery_key)?;
        if bytes.len() != RECOVERY_KEY_LENGTH {
            return Err(RecoveryKeyError::InvalidLength(bytes.len()));
        }
        let (body, parity) = bytes.split_at(RECOVERY_KEY_LENGTH - 1);
        if body.get(..2) != Some(&RECOVERY_KEY_PREFIX[..]) {
            return Err(RecoveryKeyError::InvalidPrefix);
        }
        if parity != [body.iter().fold(0u8, |acc, b| acc ^ b)] {
            return Err(RecoveryKeyError::InvalidParity);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(body.get(2..).unwrap_or_default());
        Ok(Self::from_secret(key))
    }

    /// The recovery key to show the user: `0x8B 0x01 ‖ key ‖ parity` in base58, in groups of
    /// four characters.
    pub fn to_recovery_key(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(RECOVERY_KEY_LENGTH));
        bytes.extend_from_slice(&RECOVERY_KEY_PREFIX);
        bytes.extend_from_slice(self.as_bytes());
        let parity = bytes.iter().fold(0u8, |acc, b| acc ^ b);
        bytes.push(parity);
        let encoded = base58_encode(&bytes);
        let mut grouped = Zeroizing::new(String::with_capacity(encoded.len() * 5 / 4));
        for (i, c) in encoded.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        grouped
    }

    fn keys(&self, name: &str) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        let okm = hkdf::<64>(&[0; 32], self.as_bytes(), name.as_bytes());
        let (mut aes, mut mac) = (Zeroizing::new([0u8; 32]), Zeroizing::new([0u8; 32]));
        let (a, m) = okm.split_at(32);
        aes.copy_from_slice(a);
        mac.copy_from_slice(m);
        (aes, mac)
    }

    /// Encrypts the secret `name` under a random IV.
    pub fn encrypt(&self, name: &str, secret: &[u8]) -> EncryptedSecret {
        self.encrypt_inner(name, secret, &mut crate::rng::os_rng())
    }

    /// [`SecretStorageKey::encrypt`] with the caller's randomness: 16 bytes of IV.
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn encrypt_with_rng(&self, name: &str, secret: &[u8], rng: &mut impl CryptoRngCore) -> EncryptedSecret {
        self.encrypt_inner(name, secret, rng)
    }

    fn encrypt_inner(&self, name: &str, secret: &[u8], rng: &mut impl CryptoRngCore) -> EncryptedSecret {
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv);
        iv[8] &= 0x7f; // bit 63 cleared, as the specification says
        self.encrypt_with_iv(name, secret, iv)
    }

    fn encrypt_with_iv(&self, name: &str, secret: &[u8], iv: [u8; 16]) -> EncryptedSecret {
        let (aes, mac_key) = self.keys(name);
        let mut ciphertext = secret.to_vec();
        ctr::Ctr128BE::<Aes256>::new(aes.as_ref().into(), &iv.into()).apply_keystream(&mut ciphertext);
        let mac = hmac_sha256(mac_key.as_ref(), &ciphertext);
        EncryptedSecret { iv, ciphertext, mac }
    }

    /// Decrypts the secret `name`; the MAC is checked (in constant time) first.
    pub fn decrypt(&self, name: &str, secret: &EncryptedSecret) -> Result<Zeroizing<Vec<u8>>, SecretStorageError> {
        let (aes, mac_key) = self.keys(name);
        if !ct_eq(&hmac_sha256(mac_key.as_ref(), &secret.ciphertext), &secret.mac) {
            return Err(SecretStorageError::Mac);
        }
        let mut plaintext = Zeroizing::new(secret.ciphertext.clone());
        ctr::Ctr128BE::<Aes256>::new(aes.as_ref().into(), &secret.iv.into()).apply_keystream(&mut plaintext);
        Ok(plaintext)
    }

    /// A new key check for this key's description.
    pub fn key_check(&self) -> KeyCheck {
        let encrypted = self.encrypt("", &[0; 32]);
        KeyCheck { iv: encrypted.iv, mac: encrypted.mac }
    }

    /// Checks that this key is the one a key description's check was made with.
    pub fn verify_key_check(&self, check: &KeyCheck) -> Result<(), SecretStorageError> {
        let expected = self.encrypt_with_iv("", &[0; 32], check.iv);
        if ct_eq(&expected.mac, &check.mac) { Ok(()) } else { Err(SecretStorageError::Mac) }
    }
}

impl Default for SecretStorageKey {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for SecretStorageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretStorageKey(<redacted>)")
    }
}

const RECOVERY_KEY_PREFIX: [u8; 2] = [0x8B, 0x01];
const RECOVERY_KEY_LENGTH: usize = 35;
const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The alphabet index of `c`, found by comparing with every entry so that the time taken does
/// not depend on which character it is.
fn base58_value(c: u8) -> Option<u8> {
    let (mut value, mut found) = (0u8, 0u8);
    for (i, a) in BASE58_ALPHABET.iter().enumerate() {
        let mask = 0u8.wrapping_sub(u8::from(*a == c)); // 0xff when equal
        value |= mask & (i as u8);
        found |= mask;
    }
    (found != 0).then_some(value)
}

/// The alphabet character of a digit (0–57), without a secret-indexed table lookup.
fn base58_char(digit: u8) -> char {
    let mut c = 0u8;
    for (i, a) in BASE58_ALPHABET.iter().enumerate() {
        c |= 0u8.wrapping_sub(u8::from(i as u8 == digit)) & a;
    }
    char::from(c)
}

/// Base58 (Bitcoin's alphabet). The loops run a number of times that depends only on the
/// input's length, never on its value, since recovery keys are secret.
fn base58_encode(bytes: &[u8]) -> Zeroizing<String> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    let mut digits = Zeroizing::new(vec![0u8; bytes.len() * 138 / 100 + 1]);
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut().rev() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
    }
    let significant = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
    let mut out = Zeroizing::new(String::with_capacity(zeros + digits.len() - significant));
    out.extend(core::iter::repeat_n('1', zeros));
    out.extend(digits.get(significant..).unwrap_or_default().iter().map(|&d| base58_char(d)));
    out
}

fn base58_decode(input: &str) -> Result<Zeroizing<Vec<u8>>, RecoveryKeyError> {
    let mut digits = Zeroizing::new(Vec::with_capacity(input.len()));
    for c in input.chars().filter(|c| !c.is_whitespace()) {
        let value = u8::try_from(c).ok().and_then(base58_value).ok_or(RecoveryKeyError::InvalidCharacter(c))?;
        digits.push(value);
    }
    let zeros = digits.iter().take_while(|&&d| d == 0).count();
    let mut bytes = Zeroizing::new(vec![0u8; digits.len() * 733 / 1000 + 1]);
    for &digit in digits.iter() {
        let mut carry = u32::from(digit);
        for byte in bytes.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = carry as u8;
            carry >>= 8;
        }
    }
    let significant = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let mut out = Zeroizing::new(vec![0u8; zeros]);
    out.extend_from_slice(bytes.get(significant..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn base58_round_trips(bytes: Vec<u8>) {
            let decoded = base58_decode(&base58_encode(&bytes)).unwrap();
            prop_assert_eq!(decoded.as_slice(), bytes.as_slice());
        }

        #[test]
        fn recovery_key_decoding_never_panics(input: String) {
            let _ = SecretStorageKey::from_recovery_key(&input);
        }
    }

    #[test]
    fn base58_known_answers() {
        // Bitcoin's base58 test vectors.
        assert_eq!(base58_encode(b"Hello World!").as_str(), "2NEpo7TZRRrLZSi2U");
        assert_eq!(base58_encode(&[0, 0, 0x28, 0x7f, 0xb4, 0xcd]).as_str(), "11233QC4");
        assert_eq!(base58_decode("11233QC4").unwrap().as_slice(), &[0, 0, 0x28, 0x7f, 0xb4, 0xcd]);
    }

    #[test]
    fn recovery_keys_report_which_check_failed() {
        let key = SecretStorageKey::from_bytes([7; 32]);
        let written = key.to_recovery_key();
        assert!(written.starts_with("Es"), "{}", written.as_str()); // every recovery key does
        assert_eq!(written.split(' ').count(), 12);
        // 48 characters in twelve groups of four.
        assert!(written.split(' ').all(|g| g.len() == 4));
        assert_eq!(SecretStorageKey::from_recovery_key(&written).unwrap().as_bytes(), &[7; 32]);
        assert_eq!(SecretStorageKey::from_recovery_key(&written.replace(' ', "")).unwrap().as_bytes(), &[7; 32]);

        assert_eq!(SecretStorageKey::from_recovery_key("EsT0").err(), Some(RecoveryKeyError::InvalidCharacter('0')));
        assert_eq!(
            SecretStorageKey::from_recovery_key(&written[..20]).err(),
            Some(RecoveryKeyError::InvalidLength(12))
        );
        // Change one character: the parity (or, rarely, the prefix) catches it.
        let mut chars: Vec<char> = written.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(SecretStorageKey::from_recovery_key(&typo).err(), Some(RecoveryKeyError::InvalidParity));
        // Right length and parity, wrong prefix.
        let mut bytes = vec![0x8C, 0x01];
        bytes.extend_from_slice(&[7; 32]);
        bytes.push(bytes.iter().fold(0, |a, b| a ^ b));
        assert_eq!(
            SecretStorageKey::from_recovery_key(&base58_encode(&bytes)).err(),
            Some(RecoveryKeyError::InvalidPrefix)
        );
    }

    #[test]
    fn secrets_round_trip_and_bind_their_name() {
        let key = SecretStorageKey::new();
        let encrypted = key.encrypt("m.megolm_backup.v1", b"backup key");
        assert_eq!(encrypted.iv[8] & 0x80, 0);
        let (iv, ct, mac) = encrypted.to_base64();
        let parsed = EncryptedSecret::from_base64(&iv, &ct, &mac).unwrap();
        assert_eq!(key.decrypt("m.megolm_backup.v1", &parsed).unwrap().as_slice(), b"backup key");
        assert_eq!(key.decrypt("m.cross_signing.master", &parsed), Err(SecretStorageError::Mac));
        assert_eq!(SecretStorageKey::new().decrypt("m.megolm_backup.v1", &parsed), Err(SecretStorageError::Mac));
        let mut flipped = parsed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(key.decrypt("m.megolm_backup.v1", &flipped), Err(SecretStorageError::Mac));
        assert_eq!(
            EncryptedSecret::from_base64("AAAA", &ct, &mac),
            Err(SecretStorageError::InvalidLength { field: "IV", len: 3, expected: 16 })
        );
        assert_eq!(EncryptedSecret::from_base64(&iv, "%", &mac), Err(SecretStorageError::Base64("ciphertext")));

        let check = key.key_check();
        key.verify_key_check(&check).unwrap();
        assert_eq!(SecretStorageKey::new().verify_key_check(&check), Err(SecretStorageError::Mac));
        let (civ, cmac) = check.to_base64();
        assert_eq!(KeyCheck::from_base64(&civ, &cmac).unwrap(), check);
        assert_eq!(format!("{key:?}"), "SecretStorageKey(<redacted>)");
    }

    #[test]
    fn over_long_recovery_keys_are_refused_before_decoding() {
        let key = SecretStorageKey::new();
        let typed = key.to_recovery_key();
        // Generous whitespace is fine...
        let spaced: String = format!("  {}  \n", typed.chars().flat_map(|c| [c, ' ']).collect::<String>());
        assert!(spaced.len() <= MAX_RECOVERY_KEY_INPUT);
        assert_eq!(SecretStorageKey::from_recovery_key(&spaced).unwrap().as_bytes(), key.as_bytes());
        // ...a paste of a megabyte is refused at once, not decoded for minutes.
        let huge = "E".repeat(1_000_000);
        assert_eq!(SecretStorageKey::from_recovery_key(&huge).err(), Some(RecoveryKeyError::TooLong(1_000_000)));
        let just_over = "E".repeat(MAX_RECOVERY_KEY_INPUT + 1);
        assert_eq!(
            SecretStorageKey::from_recovery_key(&just_over).err(),
            Some(RecoveryKeyError::TooLong(MAX_RECOVERY_KEY_INPUT + 1))
        );
    }

    #[test]
    fn passphrase_key_lengths_other_than_256_bits_are_refused() {
        let default = SecretStorageKey::from_passphrase("pass", "salt", 5).unwrap();
        for bits in [None, Some(256)] {
            let key = SecretStorageKey::from_passphrase_description("pass", "salt", 5, bits).unwrap();
            assert_eq!(key.as_bytes(), default.as_bytes());
        }
        for bits in [0, 128, 255, 257, 512, u32::MAX] {
            assert_eq!(
                SecretStorageKey::from_passphrase_description("pass", "salt", 5, Some(bits)).err(),
                Some(SecretStorageError::UnsupportedKeyBits(bits))
            );
        }
    }

    #[test]
    fn passphrase_keys_are_deterministic() {
        let a = SecretStorageKey::from_passphrase("pass", "salt", 1000).unwrap();
        let b = SecretStorageKey::from_passphrase("pass", "salt", 1000).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), SecretStorageKey::from_passphrase("pass", "salt2", 1000).unwrap().as_bytes());
        for bad in [0, MAX_PASSPHRASE_ITERATIONS + 1, u32::MAX] {
            assert_eq!(
                SecretStorageKey::from_passphrase("pass", "salt", bad).err(),
                Some(SecretStorageError::InvalidIterations(bad))
            );
        }
    }
}
