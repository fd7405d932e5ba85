//! Megolm: the group ratchet that encrypts room messages (`m.megolm.v1.aes-sha2`).
//!
//! The sender owns a [`GroupSession`]; it shares the [`SessionKey`] with each recipient over
//! Olm (`m.room_key`), and each recipient creates an [`InboundGroupSession`] from it.
//! Messages are encrypted with keys from the ratchet, MACed, and signed with the session's
//! Ed25519 key; recipients can decrypt every message from the index they were given on.
//!
//! ```
//! use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig};
//!
//! let mut outbound = GroupSession::new(SessionConfig::version_1());
//! let session_key = outbound.session_key(); // sent to each member over Olm
//! let mut inbound = InboundGroupSession::new(&session_key, SessionConfig::version_1());
//! assert_eq!(inbound.session_id(), outbound.session_id());
//!
//! let message = outbound.encrypt(b"Hello, room");
//! let decrypted = inbound.decrypt(&message)?;
//! assert_eq!(decrypted.plaintext, b"Hello, room");
//! assert_eq!(decrypted.message_index, 0);
//! # Ok::<(), ferrolm::megolm::DecryptionError>(())
//! ```

mod group_session;
mod inbound;
mod message;
mod ratchet;
mod session_keys;

pub use group_session::GroupSession;
pub use inbound::InboundGroupSession;
pub use message::{DecodeError, MegolmMessage};
pub use session_keys::{ExportedSessionKey, SessionKey};

/// The message format of a Megolm session.
///
/// - [`SessionConfig::version_1`]: libolm's format, an 8-byte truncated MAC (version byte 3).
/// - [`SessionConfig::version_2`]: the full 32-byte MAC (version byte 4), as vodozemac's
///   experimental configuration. libolm cannot read it.
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

    pub(crate) fn message_version(self) -> u8 {
        match self.0 {
            ConfigVersion::V1 => message::VERSION_TRUNCATED_MAC,
            ConfigVersion::V2 => message::VERSION_FULL_MAC,
        }
    }
}

/// A decrypted Megolm message.
///
/// `Debug` prints the plaintext's length, not the plaintext (a room event can carry keys).
///
/// ```
/// use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig};
/// let mut outbound = GroupSession::new(SessionConfig::version_1());
/// let inbound = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
/// let decrypted = inbound.decrypt_readonly(&outbound.encrypt(b"secret words"))?;
/// assert_eq!(format!("{decrypted:?}"), "DecryptedMessage { plaintext: <12 bytes>, message_index: 0 }");
/// # Ok::<(), ferrolm::megolm::DecryptionError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptedMessage {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The message's index in the ratchet. The same index seen with two different event ids
    /// is a replay; the layer above must check.
    pub message_index: u32,
}

impl core::fmt::Debug for DecryptedMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        struct Length(usize);
        impl core::fmt::Debug for Length {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        f.debug_struct("DecryptedMessage")
            .field("plaintext", &Length(self.plaintext.len()))
            .field("message_index", &self.message_index)
            .finish()
    }
}

/// A Megolm session id: the session's Ed25519 signing key, the `session_id` of `m.room_key`
/// and of every `m.room.encrypted` event the session sends.
///
/// Printed (`Display` and `Debug`) as unpadded base64, the form Matrix events carry; ordered
/// and hashed by its bytes, so it can key a map or a store row.
///
/// ```
/// use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig, SessionId};
/// let session = GroupSession::new(SessionConfig::version_1());
/// let inbound = InboundGroupSession::new(&session.session_key(), SessionConfig::version_1());
/// let id = session.session_id();
/// assert_eq!(inbound.session_id(), id);
/// assert_eq!(SessionId::from_base64(&id.to_base64())?, id);
/// assert_eq!(id.to_string(), id.to_base64());
/// assert_eq!(id.as_bytes(), inbound.signing_key().as_bytes());
/// assert!(SessionId::from_base64("c2hvcnQ").is_err());
/// # Ok::<(), ferrolm::types::KeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// A session id from its 32 bytes. Any 32 bytes are accepted: an id that is not a valid
    /// Ed25519 key is not refused here, it simply names no session.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a session id from unpadded base64 (as events carry it): 32 bytes, or a
    /// [`KeyError`](crate::types::KeyError) for invalid base64 or another length.
    pub fn from_base64(input: &str) -> Result<Self, crate::types::KeyError> {
        let bytes = crate::types::base64_decode(input)?;
        Ok(Self(crate::types::to_array(&bytes)?))
    }

    /// The id's 32 bytes (the signing key's compressed point).
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as unpadded base64.
    pub fn to_base64(&self) -> String {
        crate::types::base64_encode(self.0)
    }
}

impl From<crate::types::Ed25519PublicKey> for SessionId {
    fn from(key: crate::types::Ed25519PublicKey) -> Self {
        Self(*key.as_bytes())
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

/// Why a Megolm message did not decrypt. The session is unchanged after any of these: its
/// cached ratchet moves only for a message that decrypted.
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
    /// The signature is not the session's: the message was forged or altered.
    #[error("the message's signature is invalid")]
    InvalidSignature,
    /// The MAC does not match (a signed message with a wrong MAC: a broken sender).
    #[error("the message's MAC does not match")]
    InvalidMac,
    /// The MAC matched but the padding is invalid (a broken sender).
    #[error("the message's padding is invalid")]
    InvalidPadding,
    /// The message precedes the first index this session can decrypt.
    #[error("the message has index {requested}, before this session's first known index {first_known}")]
    UnknownMessageIndex {
        /// The session's first known index.
        first_known: u32,
        /// The message's index.
        requested: u32,
    },
}

/// How two inbound sessions with the same session id relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionOrdering {
    /// Same ratchet, same first known index.
    Equal,
    /// Same ratchet; this session knows earlier messages.
    Better,
    /// Same ratchet; the other session knows earlier messages.
    Worse,
    /// Not the same ratchet (different keys, or a forged session key): keep them apart.
    Unconnected,
}
