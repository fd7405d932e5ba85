//! Olm: the double ratchet that encrypts device-to-device (to-device) messages
//! (`m.olm.v1.curve25519-aes-sha2`).
//!
//! An [`Account`] holds a device's long-term identity keys and its one-time and fallback
//! keys. Two accounts establish a [`Session`] with a triple Diffie-Hellman exchange: the
//! initiator claims one of the other device's one-time keys and sends [`PreKeyMessage`]s
//! until the other side answers; the receiver creates its session from the first pre-key
//! message. See the [crate documentation](crate) for a complete example.

mod account;
mod messages;
mod ratchet;
mod session;

pub use account::{
    Account, ConsumedKey, DEHYDRATED_DEVICE_PICKLE_VERSION, DehydratedDeviceError, DehydratedDevicePickle,
    IdentityKeys, InboundCreationResult, MAX_STORED_ONE_TIME_KEYS, OneTimeKeyGenerationResult,
    RECOMMENDED_ONE_TIME_KEY_COUNT, SessionCreationError,
};
pub use messages::{DecodeError, Message, MessageType, OlmMessage, PreKeyMessage};
pub use session::{MAX_MESSAGE_GAP, MAX_RECEIVER_CHAINS, MAX_SKIPPED_MESSAGE_KEYS, Session};

use crate::types::{Curve25519PublicKey, base64_decode, base64_encode};

/// The message format of a session.
///
/// - [`SessionConfig::version_1`]: libolm's format, an 8-byte truncated MAC (message version
///   byte 3). Every Matrix client speaks it; use it.
/// - [`SessionConfig::version_2`]: the full 32-byte MAC (version byte 4), as vodozemac's
///   experimental configuration. libolm cannot read it.
///
/// The initiator chooses; the receiver says which version it expects
/// ([`Account::create_inbound_session`]) and refuses a pre-key message of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionConfig(ConfigVersion);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
enum ConfigVersion {
    #[default]
    V1 = 1,
    V2 = 2,
}

impl SessionConfig {
    /// libolm's format (8-byte MAC).
    pub const fn version_1() -> Self {
        Self(ConfigVersion::V1)
    }

    /// The full-MAC format (32-byte MAC).
    pub const fn version_2() -> Self {
        Self(ConfigVersion::V2)
    }

    /// 1 or 2.
    pub const fn version(self) -> u8 {
        self.0 as u8
    }

    pub(crate) fn from_version(version: u8) -> Option<Self> {
        match version {
            1 => Some(Self::version_1()),
            2 => Some(Self::version_2()),
            _ => None,
        }
    }
}

/// The id of an Olm session, the same on both sides: SHA-256 of the three keys that created it
/// (the initiator's identity key ‖ its base key ‖ the receiver's one-time key), as libolm
/// computes it. It appears as unpadded base64 at the JSON and FFI edges.
///
/// ```
/// use ferrolm::olm::{SessionId, SessionIdError};
/// let id = SessionId::from_base64("DI3cq7ifvlwBjPtl2GHr4TLJeCz0XVuRbrEKOaIVmvk")?;
/// assert_eq!(id.to_base64(), "DI3cq7ifvlwBjPtl2GHr4TLJeCz0XVuRbrEKOaIVmvk");
/// assert_eq!(id.to_string(), id.to_base64());
/// assert_eq!(format!("{id:?}"), "SessionId(DI3cq7ifvlwBjPtl2GHr4TLJeCz0XVuRbrEKOaIVmvk)");
/// assert_eq!(SessionId::from_base64("AAAA"), Err(SessionIdError::InvalidLength(3)));
/// # Ok::<(), SessionIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// The length of a session id in bytes.
    pub const LENGTH: usize = 32;

    /// Wraps the 32 bytes of a SHA-256 digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as unpadded base64 (as libolm and Matrix write it).
    pub fn to_base64(&self) -> String {
        base64_encode(self.0)
    }

    /// Reads an id from base64 (unpadded or padded); it must decode to 32 bytes.
    pub fn from_base64(input: &str) -> Result<Self, SessionIdError> {
        let bytes = base64_decode(input).map_err(|_| SessionIdError::Base64)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map(Self).map_err(|_| SessionIdError::InvalidLength(bytes.len()))
    }
}

impl core::fmt::Display for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl core::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SessionId({})", self.to_base64())
    }
}

impl core::str::FromStr for SessionId {
    type Err = SessionIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::from_base64(input)
    }
}

/// Why a string is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionIdError {
    /// The input is not valid base64.
    #[error("the session id is not valid base64")]
    Base64,
    /// The input decodes to the wrong number of bytes.
    #[error("the session id decodes to {0} bytes, not 32")]
    InvalidLength(usize),
}

/// The three public keys a session is created from; they identify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKeys {
    /// The initiator's Curve25519 identity key.
    pub identity_key: Curve25519PublicKey,
    /// The initiator's ephemeral base key.
    pub base_key: Curve25519PublicKey,
    /// The receiver's one-time (or fallback) key that was claimed.
    pub one_time_key: Curve25519PublicKey,
}

/// Why a message did not decrypt. The session is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptionError {
    /// The message's version byte does not match the session's configuration.
    #[error("the message has version {got}, but this session uses version {expected}")]
    VersionMismatch {
        /// The version this session's messages carry.
        expected: u8,
        /// The version the message carries.
        got: u8,
    },
    /// The MAC does not match: the message was altered, or belongs to another session.
    #[error("the message's MAC does not match")]
    InvalidMac,
    /// The MAC matched but the plaintext padding is invalid (a broken sender).
    #[error("the message's padding is invalid")]
    InvalidPadding,
    /// The message's key is no longer available: it was already decrypted (a replay), or it
    /// was skipped too long ago.
    #[error("no message key for chain index {0}: already used, or too old")]
    MissingMessageKey(u64),
    /// The message is too far ahead in its chain.
    #[error("the message is {gap} messages ahead of the chain, more than the {max} allowed")]
    TooBigMessageGap {
        /// How far ahead the message is.
        gap: u64,
        /// The limit ([`MAX_MESSAGE_GAP`]).
        max: u64,
    },
    /// The message starts a new receiving chain before we have answered the previous one,
    /// which the protocol does not allow (libolm refuses it too).
    #[error("the message uses a new ratchet key before we have replied")]
    UnexpectedRatchetKey,
    /// The message's ratchet key is of small order.
    #[error("the message's ratchet key is of small order")]
    NonContributoryKey,
}
