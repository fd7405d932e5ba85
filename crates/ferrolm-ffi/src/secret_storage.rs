//! Secret storage (`m.secret_storage.v1.aes-hmac-sha2`): secrets encrypted in account data
//! under a secret storage key, and the recovery keys users write down.

use std::sync::Arc;

use ferrolm::secret_storage::{self as core, RecoveryKeyError, SecretStorageError as CoreSecretStorageError};
use ferrolm::zeroize::Zeroizing;

use crate::convert::{len32, secret_array};

/// Why a secret could not be decrypted or a key not restored.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmSecretStorageError {
    /// The raw key is not 32 bytes long.
    #[error("the key is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The length the key must have (32).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// A field of an encrypted secret or key check is not valid base64.
    #[error("the {field} is not valid base64")]
    InvalidBase64 {
        /// Which field: "IV", "ciphertext" or "MAC".
        field: String,
    },
    /// The IV is not 16 bytes or the MAC not 32.
    #[error("the {field} is {got} bytes long, not {expected}")]
    InvalidLength {
        /// Which field: "IV" or "MAC".
        field: String,
        /// Its length.
        got: u32,
        /// The length it must have.
        expected: u32,
    },
    /// The MAC does not match: the wrong key, the wrong secret name, or altered data (or, for
    /// a key check, a key other than the one the check was made with).
    #[error("the MAC does not match: wrong key, wrong secret name, or altered data")]
    InvalidMac,
    /// The recovery key holds a character outside the base58 alphabet (0, O, I and l are not).
    #[error("'{character}' is not a base58 character")]
    InvalidRecoveryKeyCharacter {
        /// The character.
        character: String,
    },
    /// The recovery key decodes to the wrong number of bytes (characters missing or extra).
    #[error("the recovery key decodes to {got} bytes, not 35")]
    InvalidRecoveryKeyLength {
        /// The decoded length.
        got: u32,
    },
    /// The recovery key does not start with the recovery key prefix.
    #[error("the recovery key does not start with the expected prefix")]
    InvalidRecoveryKeyPrefix,
    /// The recovery key's parity byte does not match: a character was mistyped.
    #[error("the recovery key's parity check failed: a character is mistyped")]
    InvalidRecoveryKeyParity,
    /// The input is far longer than any recovery key: refused before decoding.
    #[error("the input is {got} bytes long: far longer than a recovery key")]
    RecoveryKeyTooLong {
        /// The input's length in bytes.
        got: u32,
    },
    /// A passphrase key description asks for a key length other than 256 bits.
    #[error("unsupported passphrase key length of {bits} bits (only 256 is usable)")]
    UnsupportedKeyBits {
        /// The `bits` asked for.
        bits: u32,
    },
    /// A passphrase key description asks for zero or too many PBKDF2 iterations.
    #[error("unsupported PBKDF2 iteration count {iterations}")]
    InvalidIterations {
        /// The iteration count asked for.
        iterations: u32,
    },
}

#[uniffi::export]
impl FerrolmSecretStorageError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<CoreSecretStorageError> for FerrolmSecretStorageError {
    fn from(error: CoreSecretStorageError) -> Self {
        match error {
            CoreSecretStorageError::Base64(field) => Self::InvalidBase64 { field: field.to_owned() },
            CoreSecretStorageError::InvalidLength { field, len, expected } => {
                Self::InvalidLength { field: field.to_owned(), got: len32(len), expected: len32(expected) }
            }
            CoreSecretStorageError::Mac => Self::InvalidMac,
            CoreSecretStorageError::InvalidIterations(iterations) => Self::InvalidIterations { iterations },
            CoreSecretStorageError::UnsupportedKeyBits(bits) => Self::UnsupportedKeyBits { bits },
        }
    }
}

impl From<RecoveryKeyError> for FerrolmSecretStorageError {
    fn from(error: RecoveryKeyError) -> Self {
        match error {
            RecoveryKeyError::InvalidCharacter(character) => {
                Self::InvalidRecoveryKeyCharacter { character: character.to_string() }
            }
            RecoveryKeyError::InvalidLength(got) => Self::InvalidRecoveryKeyLength { got: len32(got) },
            RecoveryKeyError::TooLong(got) => Self::RecoveryKeyTooLong { got: len32(got) },
            RecoveryKeyError::InvalidPrefix => Self::InvalidRecoveryKeyPrefix,
            RecoveryKeyError::InvalidParity => Self::InvalidRecoveryKeyParity,
        }
    }
}

/// An encrypted secret as stored in account data: `{"iv", "ciphertext", "mac"}` (base64).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EncryptedSecret {
    /// The AES-CTR initial counter block (16 bytes).
    pub iv: String,
    /// The ciphertext.
    pub ciphertext: String,
    /// HMAC-SHA-256 of the ciphertext (32 bytes).
    pub mac: String,
}

/// The `iv` and `mac` of a key description, which identify its key (base64).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct KeyCheck {
    /// The IV the check was made with.
    pub iv: String,
    /// The MAC of 32 encrypted zero bytes under the name `""`.
    pub mac: String,
}

/// A 32-byte secret storage key.
#[derive(uniffi::Object)]
pub struct SecretStorageKey {
    inner: core::SecretStorageKey,
}

impl SecretStorageKey {
    fn wrap(inner: core::SecretStorageKey) -> Arc<Self> {
        Arc::new(Self { inner })
    }
}

#[uniffi::export]
impl SecretStorageKey {
    /// A new random key.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Self::wrap(core::SecretStorageKey::new())
    }

    /// Wraps 32 key bytes.
    #[uniffi::constructor]
    pub fn from_bytes(key: Vec<u8>) -> Result<Arc<Self>, FerrolmSecretStorageError> {
        let key = Zeroizing::new(key);
        let bytes = secret_array::<32>(&key)
            .map_err(|(expected, got)| FerrolmSecretStorageError::InvalidKeyLength { expected, got })?;
        Ok(Self::wrap(core::SecretStorageKey::from_bytes(*bytes)))
    }

    /// Restores a key from a recovery key as the user typed it (spaces ignored).
    #[uniffi::constructor]
    pub fn from_recovery_key(recovery_key: String) -> Result<Arc<Self>, FerrolmSecretStorageError> {
        let recovery_key = Zeroizing::new(recovery_key);
        Ok(Self::wrap(core::SecretStorageKey::from_recovery_key(&recovery_key)?))
    }

    /// The key of a passphrase (`m.pbkdf2`), with the key description's salt and iterations
    /// (zero, or more than 10,000,000, are refused: the description is untrusted input).
    #[uniffi::constructor]
    pub fn from_passphrase(
        passphrase: String,
        salt: String,
        iterations: u32,
    ) -> Result<Arc<Self>, FerrolmSecretStorageError> {
        let passphrase = Zeroizing::new(passphrase);
        Ok(Self::wrap(core::SecretStorageKey::from_passphrase(&passphrase, &salt, iterations)?))
    }

    /// The key's 32 bytes. Secret.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.as_bytes().to_vec()
    }

    /// The recovery key to show the user (base58, in groups of four characters). Secret.
    pub fn to_recovery_key(&self) -> String {
        self.inner.to_recovery_key().as_str().to_owned()
    }

    /// Encrypts the secret `name` (its account data type, e.g. `m.cross_signing.master`).
    pub fn encrypt(&self, name: String, secret: Vec<u8>) -> EncryptedSecret {
        let secret = Zeroizing::new(secret);
        let (iv, ciphertext, mac) = self.inner.encrypt(&name, &secret).to_base64();
        EncryptedSecret { iv, ciphertext, mac }
    }

    /// Decrypts the secret `name`; the MAC is checked first.
    pub fn decrypt(&self, name: String, secret: EncryptedSecret) -> Result<Vec<u8>, FerrolmSecretStorageError> {
        let secret = core::EncryptedSecret::from_base64(&secret.iv, &secret.ciphertext, &secret.mac)?;
        Ok(self.inner.decrypt(&name, &secret)?.to_vec())
    }

    /// A new key check for this key's description.
    pub fn key_check(&self) -> KeyCheck {
        let (iv, mac) = self.inner.key_check().to_base64();
        KeyCheck { iv, mac }
    }

    /// Checks that this key is the one a key description's check was made with.
    pub fn verify_key_check(&self, check: KeyCheck) -> Result<(), FerrolmSecretStorageError> {
        let check = core::KeyCheck::from_base64(&check.iv, &check.mac)?;
        Ok(self.inner.verify_key_check(&check)?)
    }
}
