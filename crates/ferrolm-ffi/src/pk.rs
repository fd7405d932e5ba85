//! Public-key encryption for server-side key backups (`m.megolm_backup.v1.curve25519-aes-sha2`)
//! and Ed25519 signing keys from a seed (cross-signing), as libolm's `olm_pk_*` API.
//!
//! The backup scheme keeps libolm's MAC defect on purpose (the MAC covers an empty input), so
//! it is unauthenticated encryption: treat room keys restored from a backup as unverified.
//! See the core's `ferrolm::pk` and SECURITY.md.

use std::sync::Arc;

use ferrolm::pk::{self as core, PkError as CorePkError};
use ferrolm::zeroize::Zeroizing;

use crate::convert::{KeyParseError, curve25519_key, secret_array};
use crate::pickle::{FerrolmPickleError, ferrolm_key, libolm_key};

/// Why a PK operation failed.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmPkError {
    /// A field or key is not valid base64.
    #[error("the {field} is not valid base64")]
    InvalidBase64 {
        /// Which: "ciphertext", "MAC", "ephemeral key" or "public key".
        field: String,
    },
    /// A key (public, ephemeral, secret or seed) has the wrong length.
    #[error("the key is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The length the key must have (32).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// The MAC is not 8 bytes long.
    #[error("the MAC is {got} bytes long, not {expected}")]
    InvalidMacLength {
        /// The length the MAC must have (8).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// A key is of small order (non-contributory): refused.
    #[error("the key is of small order (non-contributory): refused")]
    NonContributoryKey,
    /// The MAC does not match: the message was made for another backup key.
    #[error("the MAC does not match: the message is for another backup key")]
    InvalidMac,
    /// The ciphertext decrypted to invalid padding (corrupted ciphertext).
    #[error("the ciphertext decrypted to invalid padding (corrupted ciphertext)")]
    InvalidPadding,
}

#[uniffi::export]
impl FerrolmPkError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<CorePkError> for FerrolmPkError {
    fn from(error: CorePkError) -> Self {
        match error {
            CorePkError::Base64(field) => Self::InvalidBase64 { field: field.to_owned() },
            CorePkError::InvalidKeyLength(got) => {
                Self::InvalidKeyLength { expected: 32, got: crate::convert::len32(got) }
            }
            CorePkError::InvalidMacLength(got) => {
                Self::InvalidMacLength { expected: 8, got: crate::convert::len32(got) }
            }
            CorePkError::NonContributoryKey => Self::NonContributoryKey,
            CorePkError::InvalidMac => Self::InvalidMac,
            CorePkError::InvalidPadding => Self::InvalidPadding,
        }
    }
}

impl From<KeyParseError> for FerrolmPkError {
    fn from(error: KeyParseError) -> Self {
        match error {
            KeyParseError::Base64 => Self::InvalidBase64 { field: "public key".to_owned() },
            KeyParseError::Length { expected, got } => Self::InvalidKeyLength { expected, got },
        }
    }
}

/// An encrypted backup message: the three unpadded-base64 fields of `session_data`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PkMessage {
    /// The AES-256-CBC ciphertext.
    pub ciphertext: String,
    /// libolm's 8-byte MAC.
    pub mac: String,
    /// The sender's ephemeral Curve25519 key.
    pub ephemeral_key: String,
}

/// The outcome for one message of [`PkDecryption::decrypt_many`]. `Debug` prints the plaintext's
/// length, not the plaintext (a backed-up room key).
#[derive(Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PkBatchDecryption {
    /// The message decrypted.
    Decrypted {
        /// The plaintext (for a backup: the session's JSON).
        plaintext: Vec<u8>,
    },
    /// The message did not decode or decrypt; the others are unaffected.
    Failed {
        /// Why.
        error: FerrolmPkError,
    },
}

impl std::fmt::Debug for PkBatchDecryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decrypted { plaintext } => f
                .debug_struct("Decrypted")
                .field("plaintext", &format_args!("<{} bytes, redacted>", plaintext.len()))
                .finish(),
            Self::Failed { error } => f.debug_struct("Failed").field("error", error).finish(),
        }
    }
}

impl From<core::PkMessage> for PkMessage {
    fn from(message: core::PkMessage) -> Self {
        let (ciphertext, mac, ephemeral_key) = message.to_base64();
        Self { ciphertext, mac, ephemeral_key }
    }
}

/// Encrypts to a backup's public key.
#[derive(uniffi::Object)]
pub struct PkEncryption {
    inner: core::PkEncryption,
}

#[uniffi::export]
impl PkEncryption {
    /// Encryption to `public_key` (base64: the backup's `auth_data.public_key`). A key of
    /// small order is refused.
    #[uniffi::constructor]
    pub fn from_key(public_key: String) -> Result<Arc<Self>, FerrolmPkError> {
        Ok(Arc::new(Self { inner: core::PkEncryption::from_key(curve25519_key(&public_key)?)? }))
    }

    /// The recipient's public key (base64).
    pub fn public_key(&self) -> String {
        self.inner.recipient().to_base64()
    }

    /// Encrypts `plaintext` under a fresh ephemeral key.
    pub fn encrypt(&self, plaintext: Vec<u8>) -> PkMessage {
        self.inner.encrypt(&plaintext).into()
    }
}

/// A backup's private key: decrypts what [`PkEncryption`] encrypted to its public key.
#[derive(uniffi::Object)]
pub struct PkDecryption {
    inner: core::PkDecryption,
}

impl PkDecryption {
    fn wrap(inner: core::PkDecryption) -> Arc<Self> {
        Arc::new(Self { inner })
    }
}

#[uniffi::export]
impl PkDecryption {
    /// A new random key.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Self::wrap(core::PkDecryption::new())
    }

    /// The key from its 32 secret bytes (what a backup recovery key decodes to).
    #[uniffi::constructor]
    pub fn from_bytes(secret_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPkError> {
        let secret_key = Zeroizing::new(secret_key);
        let bytes = secret_array::<32>(&secret_key)
            .map_err(|(expected, got)| FerrolmPkError::InvalidKeyLength { expected, got })?;
        Ok(Self::wrap(core::PkDecryption::from_bytes(&bytes)))
    }

    /// Restores a key from [`PkDecryption::pickle`]'s output, under the same 32-byte key.
    #[uniffi::constructor]
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::PkDecryption::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores a key from libolm's `PkDecryption` pickle.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::PkDecryption::from_libolm_pickle(&pickle, &libolm_key(pickle_key))?))
    }

    /// The 32 secret bytes. Secret.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }

    /// The public key (base64), published in the backup's `auth_data`.
    pub fn public_key(&self) -> String {
        self.inner.public_key().to_base64()
    }

    /// Decrypts one message: checks the (libolm) MAC, then decrypts.
    pub fn decrypt(&self, message: PkMessage) -> Result<Vec<u8>, FerrolmPkError> {
        let message = core::PkMessage::from_base64(&message.ciphertext, &message.mac, &message.ephemeral_key)?;
        Ok(self.inner.decrypt(&message)?)
    }

    /// Decrypts many messages (restoring a whole backup) on every core; one result per
    /// message, in the input order; a bad message fails alone. On a single-threaded runtime
    /// (WebAssembly) it decrypts one by one.
    pub fn decrypt_many(&self, messages: Vec<PkMessage>) -> Vec<PkBatchDecryption> {
        // Decoded messages move into `valid`; `decoded` keeps each one's place (or its error).
        let mut valid = Vec::with_capacity(messages.len());
        let decoded: Vec<Result<(), FerrolmPkError>> = messages
            .iter()
            .map(|m| {
                core::PkMessage::from_base64(&m.ciphertext, &m.mac, &m.ephemeral_key)
                    .map(|m| valid.push(m))
                    .map_err(FerrolmPkError::from)
            })
            .collect();
        let mut results = self.inner.decrypt_many(&valid).into_iter();
        decoded
            .into_iter()
            .map(|decoded| match decoded {
                Err(error) => PkBatchDecryption::Failed { error },
                Ok(()) => match results.next() {
                    Some(Ok(plaintext)) => PkBatchDecryption::Decrypted { plaintext },
                    Some(Err(error)) => PkBatchDecryption::Failed { error: error.into() },
                    // The core returns one result per message; this arm is never taken.
                    None => PkBatchDecryption::Failed { error: FerrolmPkError::InvalidMac },
                },
            })
            .collect()
    }

    /// Encrypts the key into ferrolm's pickle format under a 32-byte key.
    pub fn pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        Ok(self.inner.pickle(&ferrolm_key(pickle_key)?))
    }

    /// Encrypts the key into libolm's `PkDecryption` pickle format.
    pub fn to_libolm_pickle(&self, pickle_key: Vec<u8>) -> String {
        self.inner.to_libolm_pickle(&libolm_key(pickle_key))
    }
}

/// An Ed25519 signing key from a 32-byte seed, as cross-signing keys are made.
#[derive(uniffi::Object)]
pub struct PkSigning {
    inner: core::PkSigning,
}

#[uniffi::export]
impl PkSigning {
    /// A new random key.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self { inner: core::PkSigning::new() })
    }

    /// The key of a 32-byte seed.
    #[uniffi::constructor]
    pub fn from_seed(seed: Vec<u8>) -> Result<Arc<Self>, FerrolmPkError> {
        let seed = Zeroizing::new(seed);
        let bytes =
            secret_array::<32>(&seed).map_err(|(expected, got)| FerrolmPkError::InvalidKeyLength { expected, got })?;
        Ok(Arc::new(Self { inner: core::PkSigning::from_seed(&bytes) }))
    }

    /// The 32-byte seed (what secret storage keeps for cross-signing keys). Secret.
    pub fn seed(&self) -> Vec<u8> {
        self.inner.seed().to_vec()
    }

    /// The public key (base64).
    pub fn public_key(&self) -> String {
        self.inner.public_key().to_base64()
    }

    /// Signs `message`; the signature in base64.
    pub fn sign(&self, message: Vec<u8>) -> String {
        self.inner.sign(&message).to_base64()
    }
}
