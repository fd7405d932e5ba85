//! Ids of one-time and fallback keys.

use super::base64_encode;

/// The id of a one-time or fallback key, as libolm numbers them (1, 2, 3, …).
///
/// In `/keys/upload` a key id appears base64-encoded, as libolm does it: the base64 of the id's
/// four big-endian bytes (`AAAAAQ` for key 1).
///
/// ```
/// use ferrolm::types::KeyId;
/// assert_eq!(KeyId::from(1).to_base64(), "AAAAAQ");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub(crate) u32);

impl KeyId {
    /// The id's number.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// The id as it appears in key upload JSON: base64 of four big-endian bytes.
    pub fn to_base64(self) -> String {
        base64_encode(self.0.to_be_bytes())
    }
}

impl From<u32> for KeyId {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

impl core::fmt::Display for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_base64())
    }
}
