//! Small conversions shared by the modules: locking, lengths, keys from base64.

use std::sync::{Mutex, MutexGuard, PoisonError};

use ferrolm::types::{Curve25519PublicKey, base64_decode};
use ferrolm::zeroize::Zeroizing;

/// Locks `mutex`. A poisoned lock (a panic while it was held, which the core never does) is
/// recovered rather than propagated: the core's operations leave their state unchanged on
/// error, and a panic must never cross the FFI.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A length for an error field (saturating; lengths never approach 4 GiB in practice).
pub(crate) fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Why a Curve25519 public key given as base64 was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyParseError {
    /// Not base64.
    Base64,
    /// Not 32 bytes.
    Length { expected: u32, got: u32 },
}

/// Reads a Curve25519 public key from (padded or unpadded) base64.
pub(crate) fn curve25519_key(input: &str) -> Result<Curve25519PublicKey, KeyParseError> {
    let bytes = base64_decode(input).map_err(|_| KeyParseError::Base64)?;
    Curve25519PublicKey::from_slice(&bytes)
        .map_err(|_| KeyParseError::Length { expected: Curve25519PublicKey::LENGTH as u32, got: len32(bytes.len()) })
}

/// Copies (secret) bytes into a fixed-size array that zeroizes itself, or reports
/// `(expected, got)` lengths.
pub(crate) fn secret_array<const N: usize>(bytes: &[u8]) -> Result<Zeroizing<[u8; N]>, (u32, u32)> {
    let mut array = Zeroizing::new([0u8; N]);
    if bytes.len() != N {
        return Err((len32(N), len32(bytes.len())));
    }
    array.copy_from_slice(bytes);
    Ok(array)
}
