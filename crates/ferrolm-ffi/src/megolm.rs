//! Megolm: the group ratchet that encrypts room messages (`m.megolm.v1.aes-sha2`).
//!
//! The sender owns a [`GroupSession`] and shares its session key with each member over Olm
//! (`m.room_key`); each member creates an [`InboundGroupSession`] from it. Messages, session
//! keys and exported keys cross the FFI as base64.

use std::sync::{Arc, Mutex};

use ferrolm::megolm::{
    self as core, DecodeError, DecryptionError, ExportedSessionKey, MegolmMessage, SessionKey,
    SessionOrdering as CoreSessionOrdering,
};
use ferrolm::zeroize::Zeroizing;

use crate::SessionVersion;
use crate::convert::lock;
use crate::pickle::{FerrolmPickleError, ferrolm_key, libolm_key};

/// Why a Megolm operation failed. Decryption failures leave the session unchanged.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmMegolmError {
    /// A message or key is not valid base64.
    #[error("the message or key is not valid base64")]
    InvalidBase64,
    /// A session key or exported key has the wrong length.
    #[error("the key is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The format's length.
        expected: u32,
        /// The input's length.
        got: u32,
    },
    /// The version byte of a message or key is not one this library reads.
    #[error("the message or key has a format version ferrolm does not read")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The message cannot be decoded: empty, truncated, a missing field, an index beyond
    /// 32 bits, or an encoding the format never uses.
    #[error("the message or key is malformed: {reason}")]
    Malformed {
        /// What is wrong, in words.
        reason: String,
    },
    /// The Ed25519 key inside a session key is not a valid point.
    #[error("the session key's Ed25519 key is not a valid point")]
    InvalidSigningKey,
    /// The signature of a session key, or of a message, does not verify: forged or altered.
    #[error("the signature does not verify: forged or altered, or from another session")]
    InvalidSignature,
    /// The message's MAC does not match (a signed message with a wrong MAC: a broken sender).
    #[error("the message's MAC does not match (a broken sender)")]
    InvalidMac,
    /// The MAC matched but the padding is invalid (a broken sender).
    #[error("the message decrypted to invalid padding (a broken sender)")]
    InvalidPadding,
    /// The message's session version is not the session's. A session key carries no version,
    /// so this shows only when the first message arrives: create the session with the version
    /// its sender uses (v1 for every Matrix client).
    #[error("the message is a {got} message, but the session is {expected}")]
    VersionMismatch {
        /// The session's version.
        expected: SessionVersion,
        /// The message's version.
        got: SessionVersion,
    },
    /// The message, or the index asked of `export_at`, precedes the first index this session
    /// knows.
    #[error("index {requested} is before this session's first known index {first_known}")]
    UnknownMessageIndex {
        /// The session's first known index.
        first_known: u32,
        /// The message's index, or the index asked for.
        requested: u32,
    },
}

#[uniffi::export]
impl FerrolmMegolmError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<DecodeError> for FerrolmMegolmError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Base64 => Self::InvalidBase64,
            DecodeError::UnknownVersion(version) => Self::UnknownVersion { version },
            DecodeError::InvalidLength { expected, got } => {
                Self::InvalidKeyLength { expected: crate::convert::len32(expected), got: crate::convert::len32(got) }
            }
            DecodeError::InvalidSigningKey => Self::InvalidSigningKey,
            DecodeError::InvalidSignature => Self::InvalidSignature,
            DecodeError::Empty
            | DecodeError::TooShort(_)
            | DecodeError::MissingField(_)
            | DecodeError::InvalidIndex(_)
            | DecodeError::Malformed(_) => Self::Malformed { reason: error.to_string() },
        }
    }
}

impl From<DecryptionError> for FerrolmMegolmError {
    fn from(error: DecryptionError) -> Self {
        match error {
            DecryptionError::VersionMismatch { expected, got } => Self::VersionMismatch {
                expected: SessionVersion::from_message_version(expected),
                got: SessionVersion::from_message_version(got),
            },
            DecryptionError::InvalidSignature => Self::InvalidSignature,
            DecryptionError::InvalidMac => Self::InvalidMac,
            DecryptionError::InvalidPadding => Self::InvalidPadding,
            DecryptionError::UnknownMessageIndex { first_known, requested } => {
                Self::UnknownMessageIndex { first_known, requested }
            }
        }
    }
}

/// A decrypted Megolm message. `Debug` prints the plaintext's length, not the plaintext.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct DecryptedMessage {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The message's index in the ratchet. The same index seen under two different event ids
    /// is a replay: the caller must check.
    pub message_index: u32,
}

impl std::fmt::Debug for DecryptedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedMessage")
            .field("plaintext", &format_args!("<{} bytes, redacted>", self.plaintext.len()))
            .field("message_index", &self.message_index)
            .finish()
    }
}

impl From<core::DecryptedMessage> for DecryptedMessage {
    fn from(message: core::DecryptedMessage) -> Self {
        Self { plaintext: message.plaintext, message_index: message.message_index }
    }
}

/// The outcome for one message of [`InboundGroupSession::decrypt_batch`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum BatchDecryption {
    /// The message decrypted.
    Decrypted {
        /// The plaintext and index.
        message: DecryptedMessage,
    },
    /// The message did not decode or decrypt; the others are unaffected.
    Failed {
        /// Why.
        error: FerrolmMegolmError,
    },
}

/// How two inbound sessions with the same session id relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
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

impl From<CoreSessionOrdering> for SessionOrdering {
    fn from(ordering: CoreSessionOrdering) -> Self {
        match ordering {
            CoreSessionOrdering::Equal => Self::Equal,
            CoreSessionOrdering::Better => Self::Better,
            CoreSessionOrdering::Worse => Self::Worse,
            CoreSessionOrdering::Unconnected => Self::Unconnected,
        }
    }
}

/// The secret base64 of a session key, copied out of its self-wiping buffer for the FFI.
fn reveal(secret: Zeroizing<String>) -> String {
    secret.as_str().to_owned()
}

/// An outbound Megolm session: the sender's ratchet and signing key for a room.
#[derive(uniffi::Object)]
pub struct GroupSession {
    inner: Mutex<core::GroupSession>,
}

impl GroupSession {
    fn wrap(session: core::GroupSession) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(session) })
    }
}

#[uniffi::export]
impl GroupSession {
    /// A new session with a random ratchet and signing key. `version` defaults to v1.
    #[uniffi::constructor(default(version = None))]
    pub fn new(version: Option<SessionVersion>) -> Arc<Self> {
        Self::wrap(core::GroupSession::new(SessionVersion::or_default(version).into()))
    }

    /// Restores a session from [`GroupSession::pickle`]'s output, under the same 32-byte key.
    #[uniffi::constructor]
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::GroupSession::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores a session from libolm's outbound group session pickle.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::GroupSession::from_libolm_pickle(&pickle, &libolm_key(pickle_key))?))
    }

    /// The session id: the signing key in base64.
    pub fn session_id(&self) -> String {
        lock(&self.inner).session_id().to_base64()
    }

    /// The index the next message will have.
    pub fn message_index(&self) -> u32 {
        lock(&self.inner).message_index()
    }

    /// The session's message format.
    pub fn version(&self) -> SessionVersion {
        lock(&self.inner).config().into()
    }

    /// The signed session key at the current index (base64), for `m.room_key`. Secret.
    pub fn session_key(&self) -> String {
        reveal(lock(&self.inner).session_key().to_base64())
    }

    /// Encrypts `plaintext` and advances the ratchet; the message in base64.
    pub fn encrypt(&self, plaintext: Vec<u8>) -> String {
        lock(&self.inner).encrypt(&plaintext).to_base64()
    }

    /// Encrypts the session into ferrolm's pickle format under a 32-byte key.
    pub fn pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        let key = ferrolm_key(pickle_key)?;
        Ok(lock(&self.inner).pickle(&key))
    }

    /// Encrypts the session into libolm's pickle format (version 1 sessions only).
    pub fn to_libolm_pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        Ok(lock(&self.inner).to_libolm_pickle(&libolm_key(pickle_key))?)
    }
}

/// An inbound Megolm session: decrypts one sender's room messages.
#[derive(uniffi::Object)]
pub struct InboundGroupSession {
    inner: Mutex<core::InboundGroupSession>,
}

impl InboundGroupSession {
    fn wrap(session: core::InboundGroupSession) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(session) })
    }

    /// A copy of the state, taken under the lock and released at once, so that two sessions
    /// (or one session and itself) are never locked together.
    fn snapshot(&self) -> core::InboundGroupSession {
        lock(&self.inner).clone()
    }
}

#[uniffi::export]
impl InboundGroupSession {
    /// A session from a signed session key (base64, the `session_key` of `m.room_key`),
    /// whose signature is checked. The session counts as verified.
    ///
    /// `version` defaults to v1, the only one `m.megolm.v1.aes-sha2` uses. A session key does
    /// not say which version its sender encrypts with, so a wrong `version` cannot be refused
    /// here: the first message then fails with `VersionMismatch`, naming both versions.
    #[uniffi::constructor(default(version = None))]
    pub fn new(session_key: String, version: Option<SessionVersion>) -> Result<Arc<Self>, FerrolmMegolmError> {
        let key = SessionKey::from_base64(&Zeroizing::new(session_key))?;
        Ok(Self::wrap(core::InboundGroupSession::new(&key, SessionVersion::or_default(version).into())))
    }

    /// A session from an exported key (base64: forwarded keys, backups, key export files).
    /// There is no signature, so the session is not verified until merged with one that is.
    /// `version` defaults to v1 (as for [`InboundGroupSession::new`]).
    #[uniffi::constructor(default(version = None))]
    pub fn from_exported_key(
        exported_key: String,
        version: Option<SessionVersion>,
    ) -> Result<Arc<Self>, FerrolmMegolmError> {
        let key = ExportedSessionKey::from_base64(&Zeroizing::new(exported_key))?;
        Ok(Self::wrap(core::InboundGroupSession::import(&key, SessionVersion::or_default(version).into())))
    }

    /// Restores a session from [`InboundGroupSession::pickle`]'s output, under the same
    /// 32-byte key.
    #[uniffi::constructor]
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::InboundGroupSession::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores a session from libolm's inbound group session pickle.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::InboundGroupSession::from_libolm_pickle(&pickle, &libolm_key(pickle_key))?))
    }

    /// The session id: the sender's signing key in base64.
    pub fn session_id(&self) -> String {
        lock(&self.inner).session_id().to_base64()
    }

    /// The sender session's Ed25519 signing key (base64).
    pub fn signing_key(&self) -> String {
        lock(&self.inner).signing_key().to_base64()
    }

    /// The first message index this session can decrypt.
    pub fn first_known_index(&self) -> u32 {
        lock(&self.inner).first_known_index()
    }

    /// Whether the session comes from a signed session key (directly or by merging).
    pub fn is_verified(&self) -> bool {
        lock(&self.inner).is_verified()
    }

    /// The session's message format.
    pub fn version(&self) -> SessionVersion {
        lock(&self.inner).config().into()
    }

    /// Decrypts a message (base64): checks its signature, then its MAC, then decrypts.
    pub fn decrypt(&self, message: String) -> Result<DecryptedMessage, FerrolmMegolmError> {
        let message = MegolmMessage::from_base64(&message)?;
        Ok(lock(&self.inner).decrypt(&message)?.into())
    }

    /// Decrypts many messages of this session (a timeline being back-filled) faster than one
    /// by one. One result per message, in the input order; a bad message fails alone.
    pub fn decrypt_batch(&self, messages: Vec<String>) -> Vec<BatchDecryption> {
        // Decoded messages move into `valid`; `decoded` keeps each one's place (or its error).
        let mut valid = Vec::with_capacity(messages.len());
        let decoded: Vec<Result<(), FerrolmMegolmError>> = messages
            .iter()
            .map(|m| MegolmMessage::from_base64(m).map(|m| valid.push(m)).map_err(FerrolmMegolmError::from))
            .collect();
        let mut results = lock(&self.inner).decrypt_batch(&valid).into_iter();
        decoded
            .into_iter()
            .map(|decoded| match decoded {
                Err(error) => BatchDecryption::Failed { error },
                Ok(()) => match results.next() {
                    Some(Ok(message)) => BatchDecryption::Decrypted { message: message.into() },
                    Some(Err(error)) => BatchDecryption::Failed { error: error.into() },
                    // The core returns one result per message; this arm is never taken.
                    None => BatchDecryption::Failed { error: FerrolmMegolmError::InvalidSignature },
                },
            })
            .collect()
    }

    /// The exported session key at `index` (base64). An index before the first known index
    /// is `UnknownMessageIndex`.
    pub fn export_at(&self, index: u32) -> Result<String, FerrolmMegolmError> {
        let session = lock(&self.inner);
        let key = session.export_at(index).ok_or(FerrolmMegolmError::UnknownMessageIndex {
            first_known: session.first_known_index(),
            requested: index,
        })?;
        Ok(reveal(key.to_base64()))
    }

    /// The exported session key at the first known index (base64).
    pub fn export_at_first_known_index(&self) -> String {
        reveal(lock(&self.inner).export_at_first_known_index().to_base64())
    }

    /// Forgets every message key before `index`. Returns false, changing nothing, if `index`
    /// is before the first known index.
    pub fn advance_to(&self, index: u32) -> bool {
        lock(&self.inner).advance_to(index)
    }

    /// How this session relates to `other` (another session with the same session id).
    pub fn compare(&self, other: Arc<InboundGroupSession>) -> SessionOrdering {
        let other = other.snapshot();
        lock(&self.inner).compare(&other).into()
    }

    /// Merges two connected sessions into a new one with the earlier first index, verified if
    /// either is. `null`/`nil` if they are not connected.
    pub fn merge(&self, other: Arc<InboundGroupSession>) -> Option<Arc<InboundGroupSession>> {
        let other = other.snapshot();
        lock(&self.inner).merge(&other).map(Self::wrap)
    }

    /// Encrypts the session into ferrolm's pickle format under a 32-byte key.
    pub fn pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        let key = ferrolm_key(pickle_key)?;
        Ok(lock(&self.inner).pickle(&key))
    }

    /// Encrypts the session into libolm's pickle format (version 1 sessions only).
    pub fn to_libolm_pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        Ok(lock(&self.inner).to_libolm_pickle(&libolm_key(pickle_key))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_keeps_its_distinction() {
        assert_eq!(FerrolmMegolmError::from(DecryptionError::InvalidMac), FerrolmMegolmError::InvalidMac);
        assert_eq!(FerrolmMegolmError::from(DecryptionError::InvalidPadding), FerrolmMegolmError::InvalidPadding);
        assert_eq!(FerrolmMegolmError::from(DecryptionError::InvalidSignature), FerrolmMegolmError::InvalidSignature);
        assert_eq!(
            FerrolmMegolmError::from(DecryptionError::UnknownMessageIndex { first_known: 5, requested: 1 }),
            FerrolmMegolmError::UnknownMessageIndex { first_known: 5, requested: 1 }
        );
        assert_eq!(FerrolmMegolmError::from(DecodeError::InvalidSigningKey), FerrolmMegolmError::InvalidSigningKey);
        assert_eq!(
            FerrolmMegolmError::from(DecodeError::InvalidLength { expected: 229, got: 3 }),
            FerrolmMegolmError::InvalidKeyLength { expected: 229, got: 3 }
        );
        assert!(matches!(
            FerrolmMegolmError::from(DecodeError::InvalidIndex(1 << 40)),
            FerrolmMegolmError::Malformed { .. }
        ));
        assert_eq!(
            FerrolmMegolmError::from(DecryptionError::VersionMismatch { expected: 4, got: 3 }),
            FerrolmMegolmError::VersionMismatch { expected: SessionVersion::V2, got: SessionVersion::V1 }
        );
    }

    #[test]
    fn messages_name_versions_not_wire_bytes() {
        let error = FerrolmMegolmError::from(DecryptionError::VersionMismatch { expected: 3, got: 4 });
        assert_eq!(error.describe(), "the message is a v2 message, but the session is v1");
        let unknown = FerrolmMegolmError::from(DecodeError::UnknownVersion(7)).describe();
        assert!(!unknown.contains('7'), "{unknown}");
    }
}
