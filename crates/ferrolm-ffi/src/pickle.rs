//! The error every pickle and unpickle operation shares, and the pickle key conversion.
//!
//! Every stateful object has two pickle formats (see the core's `ferrolm::pickle`):
//! ferrolm's own (`pickle` / `from_pickle`, under a 32-byte key) for storing state, and
//! libolm's (`to_libolm_pickle` / `from_libolm_pickle`, under a key of any length) for
//! migrating to or from libolm and vodozemac.

use ferrolm::pickle::{PickleError as CorePickleError, PickleKey};
use ferrolm::zeroize::Zeroizing;

use crate::convert::secret_array;

/// Why a pickle could not be written or read. No variant carries secret material.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmPickleError {
    /// The pickle key for ferrolm's format is not 32 bytes long.
    #[error("the pickle key is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The length the key must have (32).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// The pickle is not valid base64.
    #[error("the pickle is not valid base64")]
    InvalidBase64,
    /// The pickle is too short to hold its envelope.
    #[error("the pickle is too short")]
    TooShort,
    /// The pickle's MAC does not match: the wrong pickle key, or a corrupted pickle.
    #[error("the pickle's MAC does not match: wrong pickle key or a corrupted pickle")]
    InvalidMac,
    /// The ciphertext decrypted to invalid padding (after a valid MAC: a broken writer).
    #[error("the pickle's ciphertext has invalid padding")]
    InvalidPadding,
    /// The pickle's format version is not one this library reads.
    #[error("unsupported pickle version {version}")]
    UnknownVersion {
        /// The version found.
        version: u32,
    },
    /// The pickle holds a different kind of object than the one being restored (an account
    /// pickle given to `Session.fromPickle`, say).
    #[error("the pickle holds a {got}, not a {expected}")]
    WrongKind {
        /// The kind being restored.
        expected: String,
        /// The kind the pickle holds.
        got: String,
    },
    /// The decrypted contents are malformed (truncated, trailing bytes, impossible values).
    #[error("the pickle's contents are malformed: {reason}")]
    Corrupted {
        /// What is wrong.
        reason: String,
    },
    /// The state cannot be expressed in libolm's pickle format (a version 2 session, or an
    /// account holding more one-time keys than libolm can).
    #[error("libolm's pickle format cannot hold this state: {reason}")]
    UnsupportedByLibolm {
        /// Why not.
        reason: String,
    },
}

#[uniffi::export]
impl FerrolmPickleError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<CorePickleError> for FerrolmPickleError {
    fn from(error: CorePickleError) -> Self {
        match error {
            CorePickleError::Base64 => Self::InvalidBase64,
            CorePickleError::TooShort => Self::TooShort,
            CorePickleError::Mac => Self::InvalidMac,
            CorePickleError::Padding => Self::InvalidPadding,
            CorePickleError::UnknownVersion(version) => Self::UnknownVersion { version },
            CorePickleError::WrongKind { expected, got } => {
                Self::WrongKind { expected: expected.to_owned(), got: got.to_owned() }
            }
            CorePickleError::Corrupted(reason) => Self::Corrupted { reason: reason.to_owned() },
            CorePickleError::UnsupportedByLibolm(reason) => Self::UnsupportedByLibolm { reason: reason.to_owned() },
        }
    }
}

/// A ferrolm pickle key from the 32 bytes the application keeps (in a platform keystore, say).
/// The copy that crossed the FFI is wiped when it is dropped.
pub(crate) fn ferrolm_key(bytes: Vec<u8>) -> Result<PickleKey, FerrolmPickleError> {
    let bytes = Zeroizing::new(bytes);
    let key =
        secret_array::<32>(&bytes).map_err(|(expected, got)| FerrolmPickleError::InvalidKeyLength { expected, got })?;
    Ok(PickleKey::from_bytes(*key))
}

/// A libolm pickle key (any length), wiped when dropped.
pub(crate) fn libolm_key(bytes: Vec<u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_keeps_its_distinction() {
        assert_eq!(FerrolmPickleError::from(CorePickleError::Padding), FerrolmPickleError::InvalidPadding);
        assert_eq!(
            FerrolmPickleError::from(CorePickleError::UnknownVersion(9)),
            FerrolmPickleError::UnknownVersion { version: 9 }
        );
        assert_eq!(
            FerrolmPickleError::from(CorePickleError::Corrupted("trailing bytes")),
            FerrolmPickleError::Corrupted { reason: "trailing bytes".into() }
        );
    }

    #[test]
    fn ferrolm_pickle_keys_must_be_32_bytes() {
        assert!(ferrolm_key(vec![0; 32]).is_ok());
        assert_eq!(
            ferrolm_key(vec![0; 64]).err(),
            Some(FerrolmPickleError::InvalidKeyLength { expected: 32, got: 64 })
        );
    }
}
