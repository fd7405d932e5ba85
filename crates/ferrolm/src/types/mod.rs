//! Key types, signatures, key ids and base64.
//!
//! Keys are newtypes with byte and unpadded-base64 conversions. Secret keys zeroize on drop,
//! their `Debug` output is redacted, and their base64 goes through a constant-time codec.

mod base64;
mod curve25519;
mod ed25519;
mod key_id;

pub(crate) use self::base64::base64_decode_secret;
pub use self::base64::{Base64DecodeError, base64_decode, base64_encode};
pub(crate) use curve25519::{Curve25519Keypair, SharedSecret};
pub use curve25519::{Curve25519PublicKey, Curve25519SecretKey};
pub(crate) use ed25519::verify_batch;
pub use ed25519::{Ed25519Keypair, Ed25519PublicKey, Ed25519SecretKey, Ed25519Signature};
pub use key_id::KeyId;

/// Errors from building a key or signature out of bytes or base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The input was not valid base64.
    #[error("invalid base64: {0}")]
    Base64(#[from] Base64DecodeError),
    /// The input had the wrong length.
    #[error("invalid key length: expected {expected} bytes, got {got}")]
    InvalidLength {
        /// The length the key type needs.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// The bytes are not a valid Ed25519 point (or are a weak, small-order point).
    #[error("invalid Ed25519 public key")]
    InvalidEd25519Key,
    /// A Diffie-Hellman exchange gave the all-zero shared secret: the other key is of small
    /// order and contributes nothing. Such keys are refused.
    #[error("the Diffie-Hellman result is non-contributory (the other key has small order)")]
    NonContributory,
}

/// An Ed25519 signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Ed25519 signature is invalid")]
pub struct SignatureError;

/// Copies a slice into a fixed-size array, or reports the length mismatch.
pub(crate) fn to_array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], KeyError> {
    <[u8; N]>::try_from(bytes).map_err(|_| KeyError::InvalidLength { expected: N, got: bytes.len() })
}
