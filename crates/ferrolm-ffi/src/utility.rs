//! Helpers every client needs beside the protocol objects: Ed25519 signature checks (device
//! keys, cross-signing) and Matrix's unpadded base64.

use ferrolm::types::{self, Ed25519PublicKey, Ed25519Signature, KeyError as CoreKeyError};

use crate::convert::len32;

/// Why a key, signature or base64 input given to the utility functions was refused.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmUtilityError {
    /// The input is not valid base64.
    #[error("the input is not valid base64")]
    InvalidBase64,
    /// The key or signature has the wrong length.
    #[error("the key or signature is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The length the key or signature must have.
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// The bytes are not a valid Ed25519 point (or are a weak, small-order point).
    #[error("the bytes are not a valid Ed25519 public key")]
    InvalidEd25519Key,
    /// A Diffie-Hellman exchange with the key would be non-contributory (small order).
    #[error("the key is of small order (non-contributory)")]
    NonContributoryKey,
    /// The signature does not verify.
    #[error("the Ed25519 signature does not verify")]
    InvalidSignature,
}

#[uniffi::export]
impl FerrolmUtilityError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<CoreKeyError> for FerrolmUtilityError {
    fn from(error: CoreKeyError) -> Self {
        match error {
            CoreKeyError::Base64(_) => Self::InvalidBase64,
            CoreKeyError::InvalidLength { expected, got } => {
                Self::InvalidKeyLength { expected: len32(expected), got: len32(got) }
            }
            CoreKeyError::InvalidEd25519Key => Self::InvalidEd25519Key,
            CoreKeyError::NonContributory => Self::NonContributoryKey,
        }
    }
}

/// Checks an Ed25519 `signature` (base64) of `message` by `public_key` (base64).
#[uniffi::export]
pub fn ed25519_verify(public_key: String, message: Vec<u8>, signature: String) -> Result<(), FerrolmUtilityError> {
    let key = Ed25519PublicKey::from_base64(&public_key)?;
    let signature = Ed25519Signature::from_base64(&signature)?;
    key.verify(&message, &signature).map_err(|_| FerrolmUtilityError::InvalidSignature)
}

/// Encodes bytes as unpadded base64 (Matrix's encoding), in constant time.
#[uniffi::export]
pub fn base64_encode(bytes: Vec<u8>) -> String {
    types::base64_encode(bytes)
}

/// Decodes padded or unpadded base64, in constant time.
#[uniffi::export]
pub fn base64_decode(input: String) -> Result<Vec<u8>, FerrolmUtilityError> {
    types::base64_decode(input).map_err(|_| FerrolmUtilityError::InvalidBase64)
}
