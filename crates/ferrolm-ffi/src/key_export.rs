//! Key export files: the passphrase-protected files clients exchange room keys in
//! (`-----BEGIN MEGOLM SESSION DATA-----`). The plaintext is the JSON array of exported room
//! keys; these functions encrypt and decrypt bytes and leave the JSON to the caller.

use ferrolm::key_export::{self as core, KeyExportError as CoreKeyExportError};

use crate::convert::len32;

/// Why a key export file could not be written or read.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmKeyExportError {
    /// The `-----BEGIN MEGOLM SESSION DATA-----` line is missing.
    #[error("the file has no BEGIN MEGOLM SESSION DATA line")]
    MissingHeader,
    /// The `-----END MEGOLM SESSION DATA-----` line is missing (a truncated file?).
    #[error("the file has no END MEGOLM SESSION DATA line (truncated?)")]
    MissingFooter,
    /// The armoured body is not valid base64.
    #[error("the file's body is not valid base64")]
    InvalidBase64,
    /// The payload is too short to hold its header and MAC.
    #[error("the file is too short ({len} bytes of payload)")]
    TooShort {
        /// The payload's length.
        len: u32,
    },
    /// The payload's version byte is not 1.
    #[error("unsupported key export version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The PBKDF2 round count is zero or above the limit (10,000,000).
    #[error("unsupported PBKDF2 round count {rounds}")]
    InvalidRounds {
        /// The round count asked for.
        rounds: u32,
    },
    /// The MAC does not match: a wrong passphrase or an altered file (the two cannot be told
    /// apart). Nothing was decrypted.
    #[error("the MAC does not match: wrong passphrase, or the file was altered")]
    InvalidMac,
}

#[uniffi::export]
impl FerrolmKeyExportError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<CoreKeyExportError> for FerrolmKeyExportError {
    fn from(error: CoreKeyExportError) -> Self {
        match error {
            CoreKeyExportError::MissingHeader => Self::MissingHeader,
            CoreKeyExportError::MissingFooter => Self::MissingFooter,
            CoreKeyExportError::Base64 => Self::InvalidBase64,
            CoreKeyExportError::TooShort(len) => Self::TooShort { len: len32(len) },
            CoreKeyExportError::UnknownVersion(version) => Self::UnknownVersion { version },
            CoreKeyExportError::InvalidRounds(rounds) => Self::InvalidRounds { rounds },
            CoreKeyExportError::Mac => Self::InvalidMac,
        }
    }
}

/// The PBKDF2 round count new files should use (500,000, as Element does).
#[uniffi::export]
pub fn key_export_default_rounds() -> u32 {
    core::DEFAULT_ROUNDS
}

/// Encrypts `plaintext` (the JSON array of room keys) into an armoured key export file.
#[uniffi::export]
pub fn key_export_encrypt(
    plaintext: Vec<u8>,
    passphrase: String,
    rounds: u32,
) -> Result<String, FerrolmKeyExportError> {
    Ok(core::encrypt(&plaintext, &passphrase, rounds)?)
}

/// Decrypts an armoured key export file. The MAC is checked before anything is decrypted.
#[uniffi::export]
pub fn key_export_decrypt(file: String, passphrase: String) -> Result<Vec<u8>, FerrolmKeyExportError> {
    Ok(core::decrypt(&file, &passphrase)?.to_vec())
}

/// The PBKDF2 round count a file asks for, without decrypting it (to warn the user how long
/// decryption will take).
#[uniffi::export]
pub fn key_export_rounds(file: String) -> Result<u32, FerrolmKeyExportError> {
    Ok(core::rounds(&file)?)
}
