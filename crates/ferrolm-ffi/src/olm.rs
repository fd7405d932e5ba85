//! Olm: accounts and the device-to-device double ratchet (`m.olm.v1.curve25519-aes-sha2`).
//!
//! An [`Account`] holds a device's identity, one-time and fallback keys. The initiator claims
//! one of the other device's one-time keys and calls [`Account::create_outbound_session`]; its
//! first messages are pre-key messages, from which the receiver creates its side with
//! [`Account::create_inbound_session`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrolm::olm::{
    self as core, DecodeError, DecryptionError, MessageType as CoreMessageType, OlmMessage as CoreOlmMessage,
    PreKeyMessage, SessionCreationError,
};
use ferrolm::types::{Curve25519PublicKey, KeyId};

use crate::SessionVersion;
use crate::convert::{KeyParseError, curve25519_key, len32, lock};
use crate::pickle::{FerrolmPickleError, ferrolm_key, libolm_key};

/// Why an Olm operation failed. Decryption failures leave the session unchanged.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmOlmError {
    /// A key or message is not valid base64.
    #[error("the key or message is not valid base64")]
    InvalidBase64,
    /// A key has the wrong length.
    #[error("the key is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The length the key must have (32).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// The message's version byte is neither v1's nor v2's.
    #[error("the message is neither a v1 nor a v2 Olm message (unknown version)")]
    UnknownMessageVersion {
        /// The version byte found.
        version: u8,
    },
    /// A message type other than 0 (pre-key) or 1 (normal), from [`olm_message_from_parts`]
    /// or [`message_type_from_int`].
    #[error("unknown Olm message type {message_type}: 0 is a pre-key message, 1 a normal message")]
    UnknownMessageType {
        /// The type that was given.
        message_type: u32,
    },
    /// The message cannot be decoded: empty, truncated, a missing field, a key field of the
    /// wrong length, or an encoding the format never uses.
    #[error("the message is malformed: {reason}")]
    Malformed {
        /// What is wrong, in words.
        reason: String,
    },
    /// The message's session version is not the session's (or, creating a session from a
    /// pre-key message, not the one asked for).
    #[error("the message is a {got} message, but the session is {expected}")]
    VersionMismatch {
        /// The session's version (or the one asked for).
        expected: SessionVersion,
        /// The message's version.
        got: SessionVersion,
    },
    /// The MAC does not match: the message was altered, or belongs to another session.
    #[error("the message's MAC does not match: it was altered, or is not for this session")]
    InvalidMac,
    /// The MAC matched but the plaintext padding is invalid (a broken sender).
    #[error("the message decrypted to invalid padding (a broken sender)")]
    InvalidPadding,
    /// The message's key is gone: it was already decrypted (a replay), or skipped too long ago.
    #[error("no key for message {index} of its chain: a replay, or skipped too long ago")]
    MissingMessageKey {
        /// The message's index in its chain.
        index: u64,
    },
    /// The message is too far ahead in its chain.
    #[error("the message is {gap} messages ahead in its chain, more than the {max} allowed")]
    TooBigMessageGap {
        /// How far ahead the message is.
        gap: u64,
        /// The limit.
        max: u64,
    },
    /// The message starts a new ratchet chain before this side has replied, which the
    /// protocol does not allow.
    #[error("the message uses a new ratchet key before this side has replied")]
    UnexpectedRatchetKey,
    /// One of the other side's keys is of small order (the exchange would not be secret).
    #[error("a key of the other side is of small order (non-contributory): the exchange would not be secret")]
    NonContributoryKey,
    /// The pre-key message names another identity key than the event's sender key.
    #[error("the pre-key message is from identity key {got}, not the expected {expected}")]
    MismatchedIdentityKey {
        /// The identity key the caller expected (base64).
        expected: String,
        /// The identity key in the message (base64).
        got: String,
    },
    /// The pre-key message used a one-time key this account does not hold (already used,
    /// evicted, or never ours).
    #[error("this account holds no one-time or fallback key {key}: already used, or never ours")]
    MissingOneTimeKey {
        /// The one-time key the message names (base64).
        key: String,
    },
}

#[uniffi::export]
impl FerrolmOlmError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<KeyParseError> for FerrolmOlmError {
    fn from(error: KeyParseError) -> Self {
        match error {
            KeyParseError::Base64 => Self::InvalidBase64,
            KeyParseError::Length { expected, got } => Self::InvalidKeyLength { expected, got },
        }
    }
}

impl From<DecodeError> for FerrolmOlmError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Base64 => Self::InvalidBase64,
            DecodeError::UnknownVersion(version) => Self::UnknownMessageVersion { version },
            DecodeError::UnknownMessageType(message_type) => {
                Self::UnknownMessageType { message_type: u32::try_from(message_type).unwrap_or(u32::MAX) }
            }
            DecodeError::Empty
            | DecodeError::TooShort(_)
            | DecodeError::MissingField(_)
            | DecodeError::InvalidKeyLength { .. }
            | DecodeError::Malformed(_) => Self::Malformed { reason: error.to_string() },
        }
    }
}

impl From<DecryptionError> for FerrolmOlmError {
    fn from(error: DecryptionError) -> Self {
        match error {
            DecryptionError::VersionMismatch { expected, got } => Self::VersionMismatch {
                expected: SessionVersion::from_message_version(expected),
                got: SessionVersion::from_message_version(got),
            },
            DecryptionError::InvalidMac => Self::InvalidMac,
            DecryptionError::InvalidPadding => Self::InvalidPadding,
            DecryptionError::MissingMessageKey(index) => Self::MissingMessageKey { index },
            DecryptionError::TooBigMessageGap { gap, max } => Self::TooBigMessageGap { gap, max },
            DecryptionError::UnexpectedRatchetKey => Self::UnexpectedRatchetKey,
            DecryptionError::NonContributoryKey => Self::NonContributoryKey,
        }
    }
}

impl From<SessionCreationError> for FerrolmOlmError {
    fn from(error: SessionCreationError) -> Self {
        match error {
            SessionCreationError::MismatchedIdentityKey { expected, got } => {
                Self::MismatchedIdentityKey { expected: expected.to_base64(), got: got.to_base64() }
            }
            SessionCreationError::MissingOneTimeKey(key) => Self::MissingOneTimeKey { key: key.to_base64() },
            SessionCreationError::MismatchedSessionConfig { expected, got } => {
                Self::VersionMismatch { expected: expected.into(), got: got.into() }
            }
            SessionCreationError::NonContributoryKey => Self::NonContributoryKey,
            SessionCreationError::Decryption(error) => error.into(),
        }
    }
}

/// The type of an Olm message, as carried in `m.room.encrypted` to-device events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum MessageType {
    /// Type 0: a pre-key message (the initiator's messages until it hears back).
    PreKey,
    /// Type 1: a normal message.
    Normal,
}

impl From<CoreMessageType> for MessageType {
    fn from(message_type: CoreMessageType) -> Self {
        match message_type {
            CoreMessageType::PreKey => Self::PreKey,
            CoreMessageType::Normal => Self::Normal,
        }
    }
}

impl From<MessageType> for CoreMessageType {
    fn from(message_type: MessageType) -> Self {
        match message_type {
            MessageType::PreKey => Self::PreKey,
            MessageType::Normal => Self::Normal,
        }
    }
}

/// An Olm message: its type and its base64 body (the `type` and `body` of a to-device
/// event's ciphertext entry).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OlmMessage {
    /// Pre-key or normal.
    pub message_type: MessageType,
    /// The encoded message in unpadded base64.
    pub body: String,
}

impl From<&CoreOlmMessage> for OlmMessage {
    fn from(message: &CoreOlmMessage) -> Self {
        let (message_type, body) = message.to_parts();
        Self { message_type: message_type.into(), body }
    }
}

impl TryFrom<&OlmMessage> for CoreOlmMessage {
    type Error = FerrolmOlmError;

    fn try_from(message: &OlmMessage) -> Result<Self, FerrolmOlmError> {
        Ok(Self::from_parts(message.message_type.into(), &message.body)?)
    }
}

/// The message type of an integer as Matrix JSON carries it (`"type": 0` or `1`); any other
/// integer is `UnknownMessageType`.
#[uniffi::export]
pub fn message_type_from_int(message_type: u32) -> Result<MessageType, FerrolmOlmError> {
    Ok(CoreMessageType::try_from(u64::from(message_type))?.into())
}

/// The integer Matrix JSON carries for a message type: 0 (pre-key) or 1 (normal).
#[uniffi::export]
pub fn message_type_to_int(message_type: MessageType) -> u32 {
    CoreMessageType::from(message_type) as u32
}

/// An Olm message from the `type` (an integer, as in Matrix JSON) and `body` of a to-device
/// event's ciphertext entry. Both are checked: an unknown type is `UnknownMessageType`, a body
/// that does not decode is `InvalidBase64`, `UnknownMessageVersion` or `Malformed`.
#[uniffi::export]
pub fn olm_message_from_parts(message_type: u32, body: String) -> Result<OlmMessage, FerrolmOlmError> {
    let message = CoreOlmMessage::from_parts(CoreMessageType::try_from(u64::from(message_type))?, &body)?;
    Ok(OlmMessage::from(&message))
}

/// A device's two identity keys, as published in its device keys (base64).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct IdentityKeys {
    /// The Ed25519 fingerprint key (`ed25519:DEVICEID`).
    pub ed25519: String,
    /// The Curve25519 identity key (`curve25519:DEVICEID`).
    pub curve25519: String,
}

/// What [`Account::generate_one_time_keys`] changed (public keys in base64).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OneTimeKeyGenerationResult {
    /// The new keys.
    pub created: Vec<String>,
    /// Old keys evicted to stay within the account's limit; forget their uploads.
    pub removed: Vec<String>,
}

/// The three public keys a session was created from (base64); they identify it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionKeys {
    /// The initiator's Curve25519 identity key.
    pub identity_key: String,
    /// The initiator's ephemeral base key.
    pub base_key: String,
    /// The receiver's one-time (or fallback) key that was claimed.
    pub one_time_key: String,
}

/// A session created from a pre-key message, with that message's plaintext and the account
/// key it used.
#[derive(uniffi::Record)]
pub struct InboundCreationResult {
    /// The new session.
    pub session: Arc<Session>,
    /// The decrypted first message.
    pub plaintext: Vec<u8>,
    /// The account's key the session was made with: a store updates that key's row (deletes a
    /// one-time key) in the same transaction that saves the session and the account.
    pub consumed_key: ConsumedKey,
}

/// Which of the account's keys a pre-key message used; `key_id` is the key id in base64, as
/// [`Account::one_time_keys`] and [`Account::fallback_key`] name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ConsumedKey {
    /// A one-time key, now removed from the account.
    OneTime {
        /// The key's id (base64).
        key_id: String,
    },
    /// The current fallback key, which stays (a fallback key may be used more than once).
    Fallback {
        /// The key's id (base64).
        key_id: String,
    },
    /// The previous fallback key, which stays until [`Account::forget_fallback_key`].
    PreviousFallback {
        /// The key's id (base64).
        key_id: String,
    },
}

impl From<core::ConsumedKey> for ConsumedKey {
    fn from(key: core::ConsumedKey) -> Self {
        match key {
            core::ConsumedKey::OneTime(id) => Self::OneTime { key_id: id.to_base64() },
            core::ConsumedKey::Fallback(id) => Self::Fallback { key_id: id.to_base64() },
            core::ConsumedKey::PreviousFallback(id) => Self::PreviousFallback { key_id: id.to_base64() },
        }
    }
}

fn key_map(keys: std::collections::BTreeMap<KeyId, Curve25519PublicKey>) -> HashMap<String, String> {
    keys.into_iter().map(|(id, key)| (id.to_base64(), key.to_base64())).collect()
}

/// A device's Olm account: its identity keys, one-time keys and fallback key.
#[derive(uniffi::Object)]
pub struct Account {
    inner: Mutex<core::Account>,
}

impl Account {
    fn wrap(account: core::Account) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(account) })
    }
}

#[uniffi::export]
impl Account {
    /// A new account with fresh identity keys.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Self::wrap(core::Account::new())
    }

    /// Restores an account from [`Account::pickle`]'s output, under the same 32-byte key.
    #[uniffi::constructor]
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::Account::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores an account from a libolm pickle (versions 2 to 4), under libolm's pickle key.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::Account::from_libolm_pickle(&pickle, &libolm_key(pickle_key))?))
    }

    /// Both identity keys.
    pub fn identity_keys(&self) -> IdentityKeys {
        let keys = lock(&self.inner).identity_keys();
        IdentityKeys { ed25519: keys.ed25519.to_base64(), curve25519: keys.curve25519.to_base64() }
    }

    /// The Ed25519 fingerprint key (base64).
    pub fn ed25519_key(&self) -> String {
        lock(&self.inner).ed25519_key().to_base64()
    }

    /// The Curve25519 identity key (base64).
    pub fn curve25519_key(&self) -> String {
        lock(&self.inner).curve25519_key().to_base64()
    }

    /// Signs `message` (canonical JSON, typically) with the Ed25519 fingerprint key; the
    /// signature in base64.
    pub fn sign(&self, message: Vec<u8>) -> String {
        lock(&self.inner).sign(&message).to_base64()
    }

    /// How many one-time keys to keep uploaded on the homeserver.
    pub fn max_number_of_one_time_keys(&self) -> u32 {
        len32(lock(&self.inner).max_number_of_one_time_keys())
    }

    /// How many one-time keys the account holds, published or not.
    pub fn stored_one_time_key_count(&self) -> u32 {
        len32(lock(&self.inner).stored_one_time_key_count())
    }

    /// Generates `count` one-time keys; the oldest are evicted past the account's limit.
    pub fn generate_one_time_keys(&self, count: u32) -> OneTimeKeyGenerationResult {
        let result = lock(&self.inner).generate_one_time_keys(count as usize);
        OneTimeKeyGenerationResult {
            created: result.created.iter().map(Curve25519PublicKey::to_base64).collect(),
            removed: result.removed.iter().map(Curve25519PublicKey::to_base64).collect(),
        }
    }

    /// The one-time keys not yet marked as published: key id (base64, as `/keys/upload`
    /// writes it) to public key (base64).
    pub fn one_time_keys(&self) -> HashMap<String, String> {
        key_map(lock(&self.inner).one_time_keys())
    }

    /// Generates a new fallback key. The current one becomes the previous one; the previous
    /// one is forgotten and returned (base64), if there was one.
    pub fn generate_fallback_key(&self) -> Option<String> {
        lock(&self.inner).generate_fallback_key().map(|key| key.to_base64())
    }

    /// The current fallback key if it is not yet published: key id to public key (base64).
    pub fn fallback_key(&self) -> HashMap<String, String> {
        key_map(lock(&self.inner).fallback_key())
    }

    /// Forgets the previous fallback key; whether there was one.
    pub fn forget_fallback_key(&self) -> bool {
        lock(&self.inner).forget_fallback_key()
    }

    /// Marks every one-time key and the current fallback key as published.
    pub fn mark_keys_as_published(&self) {
        lock(&self.inner).mark_keys_as_published();
    }

    /// Creates a session to the device with `identity_key`, using one of its one-time (or
    /// fallback) keys claimed from the server (both base64). `version` defaults to v1.
    #[uniffi::method(default(version = None))]
    pub fn create_outbound_session(
        &self,
        identity_key: String,
        one_time_key: String,
        version: Option<SessionVersion>,
    ) -> Result<Arc<Session>, FerrolmOlmError> {
        let identity_key = curve25519_key(&identity_key)?;
        let one_time_key = curve25519_key(&one_time_key)?;
        let config = SessionVersion::or_default(version).into();
        let session = lock(&self.inner).create_outbound_session(config, identity_key, one_time_key)?;
        Ok(Session::wrap(session))
    }

    /// Creates the session a pre-key message (its base64 body) opens, and decrypts the
    /// message. `identity_key` is the sender key of the event that carried it. The one-time
    /// key used is removed only once the message has decrypted (fallback keys stay); the
    /// result says which key it was.
    ///
    /// `version` is the session version the caller expects (default v1, what every Matrix
    /// client sends): a pre-key message of the other version is refused with
    /// `VersionMismatch` before anything is decrypted or any key is used.
    #[uniffi::method(default(version = None))]
    pub fn create_inbound_session(
        &self,
        identity_key: String,
        pre_key_message: String,
        version: Option<SessionVersion>,
    ) -> Result<InboundCreationResult, FerrolmOlmError> {
        let identity_key = curve25519_key(&identity_key)?;
        let message = PreKeyMessage::from_base64(&pre_key_message)?;
        let config = SessionVersion::or_default(version).into();
        let result = lock(&self.inner).create_inbound_session(config, identity_key, &message)?;
        Ok(InboundCreationResult {
            session: Session::wrap(result.session),
            plaintext: result.plaintext,
            consumed_key: result.consumed_key.into(),
        })
    }

    /// Encrypts the account into ferrolm's pickle format under a 32-byte key.
    pub fn pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        let key = ferrolm_key(pickle_key)?;
        Ok(lock(&self.inner).pickle(&key))
    }

    /// Encrypts the account into libolm's pickle format, readable by libolm and vodozemac.
    pub fn to_libolm_pickle(&self, pickle_key: Vec<u8>) -> Result<String, FerrolmPickleError> {
        Ok(lock(&self.inner).to_libolm_pickle(&libolm_key(pickle_key))?)
    }
}

/// One side of an Olm session between two devices.
#[derive(uniffi::Object)]
pub struct Session {
    inner: Mutex<core::Session>,
}

impl Session {
    fn wrap(session: core::Session) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(session) })
    }
}

#[uniffi::export]
impl Session {
    /// Restores a session from [`Session::pickle`]'s output, under the same 32-byte key.
    #[uniffi::constructor]
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::Session::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores a session from a libolm pickle, under libolm's pickle key.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, FerrolmPickleError> {
        Ok(Self::wrap(core::Session::from_libolm_pickle(&pickle, &libolm_key(pickle_key))?))
    }

    /// The session id: the same on both sides.
    pub fn session_id(&self) -> String {
        lock(&self.inner).session_id().to_base64()
    }

    /// The three keys that created the session.
    pub fn session_keys(&self) -> SessionKeys {
        let keys = lock(&self.inner).session_keys();
        SessionKeys {
            identity_key: keys.identity_key.to_base64(),
            base_key: keys.base_key.to_base64(),
            one_time_key: keys.one_time_key.to_base64(),
        }
    }

    /// The session's message format.
    pub fn version(&self) -> SessionVersion {
        lock(&self.inner).config().into()
    }

    /// Whether a message from the other side has been decrypted. Until then, encryption
    /// produces pre-key messages.
    pub fn has_received_message(&self) -> bool {
        lock(&self.inner).has_received_message()
    }

    /// Whether a pre-key message (its base64 body) belongs to this session. Use it to find the
    /// existing session for an incoming pre-key message before creating a new one.
    pub fn matches(&self, pre_key_message: String) -> Result<bool, FerrolmOlmError> {
        let message = PreKeyMessage::from_base64(&pre_key_message)?;
        Ok(lock(&self.inner).matches(&message))
    }

    /// Encrypts `plaintext`.
    pub fn encrypt(&self, plaintext: Vec<u8>) -> OlmMessage {
        OlmMessage::from(&lock(&self.inner).encrypt(&plaintext))
    }

    /// Decrypts a message from the other side. On any error the session is unchanged.
    pub fn decrypt(&self, message: OlmMessage) -> Result<Vec<u8>, FerrolmOlmError> {
        let message = CoreOlmMessage::try_from(&message)?;
        Ok(lock(&self.inner).decrypt(&message)?)
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
        assert_eq!(FerrolmOlmError::from(DecryptionError::InvalidMac), FerrolmOlmError::InvalidMac);
        assert_eq!(FerrolmOlmError::from(DecryptionError::InvalidPadding), FerrolmOlmError::InvalidPadding);
        assert_eq!(
            FerrolmOlmError::from(DecryptionError::MissingMessageKey(7)),
            FerrolmOlmError::MissingMessageKey { index: 7 }
        );
        assert_eq!(
            FerrolmOlmError::from(DecryptionError::TooBigMessageGap { gap: 3000, max: 2000 }),
            FerrolmOlmError::TooBigMessageGap { gap: 3000, max: 2000 }
        );
        assert_eq!(FerrolmOlmError::from(DecryptionError::UnexpectedRatchetKey), FerrolmOlmError::UnexpectedRatchetKey);
        assert_eq!(FerrolmOlmError::from(DecryptionError::NonContributoryKey), FerrolmOlmError::NonContributoryKey);
        assert_eq!(
            FerrolmOlmError::from(DecryptionError::VersionMismatch { expected: 3, got: 4 }),
            FerrolmOlmError::VersionMismatch { expected: SessionVersion::V1, got: SessionVersion::V2 }
        );
        assert_eq!(
            FerrolmOlmError::from(DecodeError::UnknownMessageType(7)),
            FerrolmOlmError::UnknownMessageType { message_type: 7 }
        );
        assert_eq!(
            FerrolmOlmError::from(SessionCreationError::Decryption(DecryptionError::InvalidMac)),
            FerrolmOlmError::InvalidMac
        );
        assert_eq!(FerrolmOlmError::from(DecodeError::Base64), FerrolmOlmError::InvalidBase64);
        assert_eq!(
            FerrolmOlmError::from(DecodeError::UnknownVersion(9)),
            FerrolmOlmError::UnknownMessageVersion { version: 9 }
        );
        assert_eq!(
            FerrolmOlmError::from(DecodeError::TooShort(2)),
            FerrolmOlmError::Malformed { reason: "the message is too short (2 bytes)".into() }
        );
        assert_eq!(
            FerrolmOlmError::from(KeyParseError::Length { expected: 32, got: 1 }),
            FerrolmOlmError::InvalidKeyLength { expected: 32, got: 1 }
        );
    }

    #[test]
    fn message_types_convert_both_ways() {
        for t in [MessageType::PreKey, MessageType::Normal] {
            assert_eq!(MessageType::from(CoreMessageType::from(t)), t);
            assert_eq!(message_type_from_int(message_type_to_int(t)), Ok(t));
        }
        assert_eq!(message_type_to_int(MessageType::PreKey), 0);
        assert_eq!(message_type_to_int(MessageType::Normal), 1);
        assert_eq!(message_type_from_int(2), Err(FerrolmOlmError::UnknownMessageType { message_type: 2 }));
        assert_eq!(
            message_type_from_int(u32::MAX),
            Err(FerrolmOlmError::UnknownMessageType { message_type: u32::MAX })
        );
    }

    #[test]
    fn messages_name_versions_not_wire_bytes() {
        let error = FerrolmOlmError::from(DecryptionError::VersionMismatch { expected: 4, got: 3 });
        assert_eq!(error.describe(), "the message is a v1 message, but the session is v2");
        let unknown = FerrolmOlmError::from(DecodeError::UnknownVersion(9)).describe();
        assert!(!unknown.contains('9'), "{unknown}");
    }
}
