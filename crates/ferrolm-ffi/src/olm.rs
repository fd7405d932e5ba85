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
use crate::pickle::{PickleError, ferrolm_key, libolm_key};

/// Why an Olm operation failed. Decryption failures leave the session unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum OlmError {
    /// A key or message is not valid base64.
    #[error("invalid base64")]
    InvalidBase64,
    /// A key has the wrong length.
    #[error("invalid key length: expected {expected} bytes, got {got}")]
    InvalidKeyLength {
        /// The length the key must have (32).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// The message's version byte is not one this library speaks.
    #[error("unsupported message version {version}")]
    UnknownMessageVersion {
        /// The version byte found.
        version: u8,
    },
    /// The message cannot be decoded: empty, truncated, a missing field, a key field of the
    /// wrong length, or an encoding the format never uses.
    #[error("malformed message: {reason}")]
    Malformed {
        /// What is wrong, in words.
        reason: String,
    },
    /// The message's version does not match the session's configuration.
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
    /// The message's key is gone: it was already decrypted (a replay), or skipped too long ago.
    #[error("no message key for chain index {index}: already used, or too old")]
    MissingMessageKey {
        /// The message's index in its chain.
        index: u64,
    },
    /// The message is too far ahead in its chain.
    #[error("the message is {gap} messages ahead of the chain, more than the {max} allowed")]
    TooBigMessageGap {
        /// How far ahead the message is.
        gap: u64,
        /// The limit.
        max: u64,
    },
    /// The message starts a new ratchet chain before this side has replied, which the
    /// protocol does not allow.
    #[error("the message uses a new ratchet key before we have replied")]
    UnexpectedRatchetKey,
    /// One of the other side's keys is of small order (the exchange would not be secret).
    #[error("a key of the other side is of small order (non-contributory)")]
    NonContributoryKey,
    /// The pre-key message names another identity key than the event's sender key.
    #[error("the pre-key message's identity key {got} is not the expected {expected}")]
    MismatchedIdentityKey {
        /// The identity key the caller expected (base64).
        expected: String,
        /// The identity key in the message (base64).
        got: String,
    },
    /// The pre-key message used a one-time key this account does not hold (already used,
    /// evicted, or never ours).
    #[error("no one-time or fallback key {key} in this account")]
    MissingOneTimeKey {
        /// The one-time key the message names (base64).
        key: String,
    },
}

impl From<KeyParseError> for OlmError {
    fn from(error: KeyParseError) -> Self {
        match error {
            KeyParseError::Base64 => Self::InvalidBase64,
            KeyParseError::Length { expected, got } => Self::InvalidKeyLength { expected, got },
        }
    }
}

impl From<DecodeError> for OlmError {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::Base64 => Self::InvalidBase64,
            DecodeError::UnknownVersion(version) => Self::UnknownMessageVersion { version },
            DecodeError::Empty
            | DecodeError::TooShort(_)
            | DecodeError::MissingField(_)
            | DecodeError::InvalidKeyLength { .. }
            | DecodeError::Malformed(_)
            | DecodeError::UnknownMessageType(_) => Self::Malformed { reason: error.to_string() },
        }
    }
}

impl From<DecryptionError> for OlmError {
    fn from(error: DecryptionError) -> Self {
        match error {
            DecryptionError::VersionMismatch { expected, got } => Self::VersionMismatch { expected, got },
            DecryptionError::InvalidMac => Self::InvalidMac,
            DecryptionError::InvalidPadding => Self::InvalidPadding,
            DecryptionError::MissingMessageKey(index) => Self::MissingMessageKey { index },
            DecryptionError::TooBigMessageGap { gap, max } => Self::TooBigMessageGap { gap, max },
            DecryptionError::UnexpectedRatchetKey => Self::UnexpectedRatchetKey,
            DecryptionError::NonContributoryKey => Self::NonContributoryKey,
        }
    }
}

impl From<SessionCreationError> for OlmError {
    fn from(error: SessionCreationError) -> Self {
        match error {
            SessionCreationError::MismatchedIdentityKey { expected, got } => {
                Self::MismatchedIdentityKey { expected: expected.to_base64(), got: got.to_base64() }
            }
            SessionCreationError::MissingOneTimeKey(key) => Self::MissingOneTimeKey { key: key.to_base64() },
            // As the other version errors here, in message version bytes (3 for version 1, 4 for 2).
            SessionCreationError::MismatchedSessionConfig { expected, got } => {
                let wire = |config: core::SessionConfig| if config == core::SessionConfig::version_2() { 4 } else { 3 };
                Self::VersionMismatch { expected: wire(expected), got: wire(got) }
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
    type Error = OlmError;

    fn try_from(message: &OlmMessage) -> Result<Self, OlmError> {
        Ok(Self::from_parts(message.message_type.into(), &message.body)?)
    }
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

/// A session created from a pre-key message, with that message's plaintext.
#[derive(uniffi::Record)]
pub struct InboundCreationResult {
    /// The new session.
    pub session: Arc<Session>,
    /// The decrypted first message.
    pub plaintext: Vec<u8>,
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
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, PickleError> {
        Ok(Self::wrap(core::Account::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores an account from a libolm pickle (versions 2 to 4), under libolm's pickle key.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, PickleError> {
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
    /// fallback) keys claimed from the server (both base64).
    pub fn create_outbound_session(
        &self,
        identity_key: String,
        one_time_key: String,
        version: SessionVersion,
    ) -> Result<Arc<Session>, OlmError> {
        let identity_key = curve25519_key(&identity_key)?;
        let one_time_key = curve25519_key(&one_time_key)?;
        let session = lock(&self.inner).create_outbound_session(version.into(), identity_key, one_time_key)?;
        Ok(Session::wrap(session))
    }

    /// Creates the session a pre-key message (its base64 body) opens, and decrypts the
    /// message. `identity_key` is the sender key of the event that carried it. The one-time
    /// key used is removed only once the message has decrypted.
    pub fn create_inbound_session(
        &self,
        identity_key: String,
        pre_key_message: String,
    ) -> Result<InboundCreationResult, OlmError> {
        let identity_key = curve25519_key(&identity_key)?;
        let message = PreKeyMessage::from_base64(&pre_key_message)?;
        // The binding does not yet take the expected version: it accepts the message's own, as
        // before. (The core refuses a mismatch; the FFI's signature is the binding layer's.)
        let config = match message.message().version() {
            4 => core::SessionConfig::version_2(),
            _ => core::SessionConfig::version_1(),
        };
        let result = lock(&self.inner).create_inbound_session(config, identity_key, &message)?;
        Ok(InboundCreationResult { session: Session::wrap(result.session), plaintext: result.plaintext })
    }

    /// Encrypts the account into ferrolm's pickle format under a 32-byte key.
    pub fn pickle(&self, pickle_key: Vec<u8>) -> Result<String, PickleError> {
        let key = ferrolm_key(pickle_key)?;
        Ok(lock(&self.inner).pickle(&key))
    }

    /// Encrypts the account into libolm's pickle format, readable by libolm and vodozemac.
    pub fn to_libolm_pickle(&self, pickle_key: Vec<u8>) -> Result<String, PickleError> {
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
    pub fn from_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, PickleError> {
        Ok(Self::wrap(core::Session::from_pickle(&pickle, &ferrolm_key(pickle_key)?)?))
    }

    /// Restores a session from a libolm pickle, under libolm's pickle key.
    #[uniffi::constructor]
    pub fn from_libolm_pickle(pickle: String, pickle_key: Vec<u8>) -> Result<Arc<Self>, PickleError> {
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
    pub fn matches(&self, pre_key_message: String) -> Result<bool, OlmError> {
        let message = PreKeyMessage::from_base64(&pre_key_message)?;
        Ok(lock(&self.inner).matches(&message))
    }

    /// Encrypts `plaintext`.
    pub fn encrypt(&self, plaintext: Vec<u8>) -> OlmMessage {
        OlmMessage::from(&lock(&self.inner).encrypt(&plaintext))
    }

    /// Decrypts a message from the other side. On any error the session is unchanged.
    pub fn decrypt(&self, message: OlmMessage) -> Result<Vec<u8>, OlmError> {
        let message = CoreOlmMessage::try_from(&message)?;
        Ok(lock(&self.inner).decrypt(&message)?)
    }

    /// Encrypts the session into ferrolm's pickle format under a 32-byte key.
    pub fn pickle(&self, pickle_key: Vec<u8>) -> Result<String, PickleError> {
        let key = ferrolm_key(pickle_key)?;
        Ok(lock(&self.inner).pickle(&key))
    }

    /// Encrypts the session into libolm's pickle format (version 1 sessions only).
    pub fn to_libolm_pickle(&self, pickle_key: Vec<u8>) -> Result<String, PickleError> {
        Ok(lock(&self.inner).to_libolm_pickle(&libolm_key(pickle_key))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_keeps_its_distinction() {
        assert_eq!(OlmError::from(DecryptionError::InvalidMac), OlmError::InvalidMac);
        assert_eq!(OlmError::from(DecryptionError::InvalidPadding), OlmError::InvalidPadding);
        assert_eq!(OlmError::from(DecryptionError::MissingMessageKey(7)), OlmError::MissingMessageKey { index: 7 });
        assert_eq!(
            OlmError::from(DecryptionError::TooBigMessageGap { gap: 3000, max: 2000 }),
            OlmError::TooBigMessageGap { gap: 3000, max: 2000 }
        );
        assert_eq!(OlmError::from(DecryptionError::UnexpectedRatchetKey), OlmError::UnexpectedRatchetKey);
        assert_eq!(OlmError::from(DecryptionError::NonContributoryKey), OlmError::NonContributoryKey);
        assert_eq!(
            OlmError::from(DecryptionError::VersionMismatch { expected: 3, got: 4 }),
            OlmError::VersionMismatch { expected: 3, got: 4 }
        );
        assert_eq!(OlmError::from(SessionCreationError::Decryption(DecryptionError::InvalidMac)), OlmError::InvalidMac);
        assert_eq!(OlmError::from(DecodeError::Base64), OlmError::InvalidBase64);
        assert_eq!(OlmError::from(DecodeError::UnknownVersion(9)), OlmError::UnknownMessageVersion { version: 9 });
        assert_eq!(
            OlmError::from(DecodeError::TooShort(2)),
            OlmError::Malformed { reason: "the message is too short (2 bytes)".into() }
        );
        assert_eq!(
            OlmError::from(KeyParseError::Length { expected: 32, got: 1 }),
            OlmError::InvalidKeyLength { expected: 32, got: 1 }
        );
    }

    #[test]
    fn message_types_convert_both_ways() {
        for t in [MessageType::PreKey, MessageType::Normal] {
            assert_eq!(MessageType::from(CoreMessageType::from(t)), t);
        }
    }
}
