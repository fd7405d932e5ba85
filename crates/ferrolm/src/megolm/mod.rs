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
//!
//! let message = outbound.encrypt(b"Hello, room");
//! let decrypted = inbound.decrypt(&message)?;
//! assert_eq!(decrypted.plaintext, b"Hello, room");
//! assert_eq!(decrypted.message_index, 0);
//! assert_eq!(inbound.session_id(), outbound.session_id());
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedMessage {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The message's index in the ratchet. The same index seen with two different event ids
    /// is a replay; the layer above must check.
    pub message_index: u32,
}

/// Why a Megolm message did not decrypt. The session is unchanged after any of these.
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
