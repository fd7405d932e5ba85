//! Olm's wire formats: the normal message and the pre-key message.
//!
//! ```text
//! normal:  version ‖ 0x0A 0x20 ratchet_key ‖ 0x10 varint chain_index ‖ 0x22 varint len ciphertext ‖ mac
//! pre-key: 0x03 ‖ 0x0A 0x20 one_time_key ‖ 0x12 0x20 base_key ‖ 0x1A 0x20 identity_key ‖ 0x22 varint len message
//! ```
//!
//! The version byte of a normal message is 3 for the libolm configuration (8-byte MAC) and 4
//! for version 2 (full 32-byte MAC). Decoders skip unknown fields, as libolm's does, refuse
//! truncated input, and keep the received bytes so the MAC is checked over exactly what was sent.

use sha2::{Digest, Sha256};

use crate::codec::{
    CodecError, FieldReader, FieldValue, varint_len, write_bytes_field, write_varint, write_varint_field,
};
use crate::crypto::{CipherKeys, padded_len};
use crate::types::{Curve25519PublicKey, base64_decode, base64_encode};

use super::{SessionId, SessionKeys};

/// The version byte of a normal message with an 8-byte MAC (libolm, session config v1).
pub(crate) const VERSION_TRUNCATED_MAC: u8 = 3;
/// The version byte of a normal message with a full 32-byte MAC (session config v2).
pub(crate) const VERSION_FULL_MAC: u8 = 4;
/// The version byte of every pre-key message.
const PRE_KEY_VERSION: u8 = 3;

/// Why bytes could not be decoded as an Olm message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is not valid base64.
    #[error("the message is not valid base64")]
    Base64,
    /// The message is empty.
    #[error("the message is empty")]
    Empty,
    /// The version byte is not one this library speaks.
    #[error("unsupported message version {0}")]
    UnknownVersion(u8),
    /// The message is too short for its version's MAC.
    #[error("the message is too short ({0} bytes)")]
    TooShort(usize),
    /// A field the message needs is absent.
    #[error("the message has no {0}")]
    MissingField(&'static str),
    /// A key field does not hold 32 bytes.
    #[error("the {field} is {len} bytes long, not 32")]
    InvalidKeyLength {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A field is truncated or uses an encoding the format never uses.
    #[error("the message is malformed: {0}")]
    Malformed(&'static str),
    /// The message type is neither 0 (pre-key) nor 1 (normal).
    #[error("unknown Olm message type {0}")]
    UnknownMessageType(u64),
}

impl From<CodecError> for DecodeError {
    fn from(error: CodecError) -> Self {
        Self::Malformed(error.describe())
    }
}

fn key_field(field: &'static str, bytes: &[u8]) -> Result<Curve25519PublicKey, DecodeError> {
    Curve25519PublicKey::from_slice(bytes).map_err(|_| DecodeError::InvalidKeyLength { field, len: bytes.len() })
}

/// An Olm normal message: one ratchet step's ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8>,
    ratchet_key: Curve25519PublicKey,
    chain_index: u64,
    ciphertext_start: usize,
    ciphertext_end: usize,
    mac_len: usize,
}

impl Message {
    /// Encrypts `plaintext` under `keys` and encodes the result, in a single allocation.
    pub(crate) fn encrypt(
        version: u8,
        ratchet_key: &Curve25519PublicKey,
        chain_index: u32,
        keys: &CipherKeys,
        plaintext: &[u8],
    ) -> Self {
        let mac_len = mac_len(version).unwrap_or(32);
        let ct_len = padded_len(plaintext.len());
        let mut bytes = Vec::with_capacity(1 + 34 + 6 + 1 + varint_len(ct_len as u64) + ct_len + mac_len);
        bytes.push(version);
        write_bytes_field(&mut bytes, 0x0A, ratchet_key.as_bytes());
        write_varint_field(&mut bytes, 0x10, u64::from(chain_index));
        bytes.push(0x22);
        write_varint(&mut bytes, ct_len as u64);
        let ciphertext_start = bytes.len();
        let mac = keys.encrypt_then_mac_into(plaintext, &mut bytes);
        let ciphertext_end = bytes.len();
        bytes.extend_from_slice(mac.get(..mac_len).unwrap_or(&mac));
        Self {
            bytes,
            ratchet_key: *ratchet_key,
            chain_index: u64::from(chain_index),
            ciphertext_start,
            ciphertext_end,
            mac_len,
        }
    }

    /// Decodes a normal message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let version = *bytes.first().ok_or(DecodeError::Empty)?;
        let mac_len = mac_len(version).ok_or(DecodeError::UnknownVersion(version))?;
        if bytes.len() < 1 + mac_len {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        let body = bytes.get(1..bytes.len() - mac_len).ok_or(DecodeError::TooShort(bytes.len()))?;
        let (mut ratchet_key, mut chain_index, mut ciphertext) = (None, None, None);
        let mut reader = FieldReader::new(body);
        while let Some(field) = reader.next_field()? {
            match field {
                (1, FieldValue::Bytes(key)) => ratchet_key = Some(key_field("ratchet key", key)?),
                (2, FieldValue::Varint(index)) => chain_index = Some(index),
                (4, FieldValue::Bytes(ct)) => ciphertext = Some(ct),
                _ => {} // unknown fields are skipped, as libolm does
            }
        }
        let ratchet_key = ratchet_key.ok_or(DecodeError::MissingField("ratchet key"))?;
        let chain_index = chain_index.ok_or(DecodeError::MissingField("chain index"))?;
        let ciphertext = ciphertext.ok_or(DecodeError::MissingField("ciphertext"))?;
        // `ciphertext` borrows from `bytes`; its offset is a plain address difference.
        let ciphertext_start = ciphertext.as_ptr() as usize - bytes.as_ptr() as usize;
        Ok(Self {
            bytes: bytes.to_vec(),
            ratchet_key,
            chain_index,
            ciphertext_start,
            ciphertext_end: ciphertext_start + ciphertext.len(),
            mac_len,
        })
    }

    /// Decodes a normal message from unpadded base64.
    pub fn from_base64(input: &str) -> Result<Self, DecodeError> {
        Self::from_bytes(&base64_decode(input).map_err(|_| DecodeError::Base64)?)
    }

    /// The encoded message.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded message as unpadded base64 (the `body` of an `m.olm.v1` ciphertext).
    pub fn to_base64(&self) -> String {
        base64_encode(&self.bytes)
    }

    /// The version byte: 3 (8-byte MAC) or 4 (32-byte MAC).
    pub fn version(&self) -> u8 {
        self.bytes.first().copied().unwrap_or_default()
    }

    /// The sender's ratchet key.
    pub fn ratchet_key(&self) -> Curve25519PublicKey {
        self.ratchet_key
    }

    /// The message's index in its chain.
    pub fn chain_index(&self) -> u64 {
        self.chain_index
    }

    /// The AES-256-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        self.bytes.get(self.ciphertext_start..self.ciphertext_end).unwrap_or_default()
    }

    /// The MAC (8 bytes for version 3, 32 for version 4).
    pub fn mac(&self) -> &[u8] {
        self.bytes.get(self.bytes.len() - self.mac_len..).unwrap_or_default()
    }

    /// Everything the MAC covers: the received bytes without the MAC.
    pub(crate) fn authenticated(&self) -> &[u8] {
        self.bytes.get(..self.bytes.len() - self.mac_len).unwrap_or_default()
    }
}

fn mac_len(version: u8) -> Option<usize> {
    match version {
        VERSION_TRUNCATED_MAC => Some(8),
        VERSION_FULL_MAC => Some(32),
        _ => None,
    }
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Message")
            .field("version", &self.version())
            .field("ratchet_key", &self.ratchet_key)
            .field("chain_index", &self.chain_index)
            .field("ciphertext_len", &self.ciphertext().len())
            .finish_non_exhaustive()
    }
}

/// An Olm pre-key message: the first messages of a session, carrying the keys the receiver
/// needs to create its side of the session.
#[derive(Clone, PartialEq, Eq)]
pub struct PreKeyMessage {
    bytes: Vec<u8>,
    keys: SessionKeys,
    message: Message,
}

impl PreKeyMessage {
    pub(crate) fn new(keys: SessionKeys, message: Message) -> Self {
        let mut bytes =
            Vec::with_capacity(1 + 3 * 34 + 1 + varint_len(message.bytes.len() as u64) + message.bytes.len());
        bytes.push(PRE_KEY_VERSION);
        write_bytes_field(&mut bytes, 0x0A, keys.one_time_key.as_bytes());
        write_bytes_field(&mut bytes, 0x12, keys.base_key.as_bytes());
        write_bytes_field(&mut bytes, 0x1A, keys.identity_key.as_bytes());
        write_bytes_field(&mut bytes, 0x22, &message.bytes);
        Self { bytes, keys, message }
    }

    /// Decodes a pre-key message (and the normal message inside it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let version = *bytes.first().ok_or(DecodeError::Empty)?;
        if version != PRE_KEY_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let (mut one_time_key, mut base_key, mut identity_key, mut message) = (None, None, None, None);
        let mut reader = FieldReader::new(bytes.get(1..).unwrap_or_default());
        while let Some(field) = reader.next_field()? {
            match field {
                (1, FieldValue::Bytes(key)) => one_time_key = Some(key_field("one-time key", key)?),
                (2, FieldValue::Bytes(key)) => base_key = Some(key_field("base key", key)?),
                (3, FieldValue::Bytes(key)) => identity_key = Some(key_field("identity key", key)?),
                (4, FieldValue::Bytes(inner)) => message = Some(inner),
                _ => {}
            }
        }
        let keys = SessionKeys {
            one_time_key: one_time_key.ok_or(DecodeError::MissingField("one-time key"))?,
            base_key: base_key.ok_or(DecodeError::MissingField("base key"))?,
            identity_key: identity_key.ok_or(DecodeError::MissingField("identity key"))?,
        };
        let message = Message::from_bytes(message.ok_or(DecodeError::MissingField("message"))?)?;
        Ok(Self { bytes: bytes.to_vec(), keys, message })
    }

    /// Decodes a pre-key message from unpadded base64.
    pub fn from_base64(input: &str) -> Result<Self, DecodeError> {
        Self::from_bytes(&base64_decode(input).map_err(|_| DecodeError::Base64)?)
    }

    /// The encoded message.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded message as unpadded base64.
    pub fn to_base64(&self) -> String {
        base64_encode(&self.bytes)
    }

    /// The receiver's one-time (or fallback) key the sender used.
    pub fn one_time_key(&self) -> Curve25519PublicKey {
        self.keys.one_time_key
    }

    /// The sender's base key for this session.
    pub fn base_key(&self) -> Curve25519PublicKey {
        self.keys.base_key
    }

    /// The sender's identity key.
    pub fn identity_key(&self) -> Curve25519PublicKey {
        self.keys.identity_key
    }

    /// The three keys that identify the session.
    pub fn session_keys(&self) -> SessionKeys {
        self.keys
    }

    /// The id of the session this message belongs to (see [`SessionKeys::session_id`]).
    pub fn session_id(&self) -> SessionId {
        self.keys.session_id()
    }

    /// The normal message inside.
    pub fn message(&self) -> &Message {
        &self.message
    }
}

impl core::fmt::Debug for PreKeyMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyMessage").field("keys", &self.keys).field("message", &self.message).finish()
    }
}

impl SessionKeys {
    /// The session id: SHA-256(identity key ‖ base key ‖ one-time key), as libolm computes it.
    pub fn session_id(&self) -> SessionId {
        let mut sha = Sha256::new();
        sha.update(self.identity_key.as_bytes());
        sha.update(self.base_key.as_bytes());
        sha.update(self.one_time_key.as_bytes());
        SessionId::from_bytes(sha.finalize().into())
    }
}

/// The type of an Olm message, as carried in `m.room.encrypted` to-device events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Type 0: a pre-key message.
    PreKey = 0,
    /// Type 1: a normal message.
    Normal = 1,
}

impl TryFrom<u64> for MessageType {
    type Error = DecodeError;

    fn try_from(value: u64) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::PreKey),
            1 => Ok(Self::Normal),
            other => Err(DecodeError::UnknownMessageType(other)),
        }
    }
}

/// An Olm message of either type.
///
/// ```
/// use ferrolm::olm::{MessageType, OlmMessage};
/// // A message arrives as a type and a base64 body.
/// let error = OlmMessage::from_parts(MessageType::Normal, "AwoA").unwrap_err();
/// assert!(matches!(error, ferrolm::olm::DecodeError::TooShort(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OlmMessage {
    /// A normal message.
    Normal(Message),
    /// A pre-key message.
    PreKey(PreKeyMessage),
}

impl OlmMessage {
    /// Decodes a message from its type and base64 body.
    pub fn from_parts(message_type: MessageType, body: &str) -> Result<Self, DecodeError> {
        match message_type {
            MessageType::Normal => Message::from_base64(body).map(Self::Normal),
            MessageType::PreKey => PreKeyMessage::from_base64(body).map(Self::PreKey),
        }
    }

    /// The message's type and base64 body.
    pub fn to_parts(&self) -> (MessageType, String) {
        (self.message_type(), base64_encode(self.as_bytes()))
    }

    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Normal(_) => MessageType::Normal,
            Self::PreKey(_) => MessageType::PreKey,
        }
    }

    /// The encoded message.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Normal(m) => m.as_bytes(),
            Self::PreKey(m) => m.as_bytes(),
        }
    }

    /// The normal message (itself, or the one inside a pre-key message).
    pub fn message(&self) -> &Message {
        match self {
            Self::Normal(m) => m,
            Self::PreKey(m) => &m.message,
        }
    }
}

impl From<Message> for OlmMessage {
    fn from(message: Message) -> Self {
        Self::Normal(message)
    }
}

impl From<PreKeyMessage> for OlmMessage {
    fn from(message: PreKeyMessage) -> Self {
        Self::PreKey(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(seed: u8) -> CipherKeys {
        CipherKeys::derive(&[seed; 32], b"OLM_KEYS")
    }

    proptest! {
        #[test]
        fn normal_messages_round_trip(key: [u8; 32], index: u32, plaintext: Vec<u8>, full_mac: bool) {
            let version = if full_mac { VERSION_FULL_MAC } else { VERSION_TRUNCATED_MAC };
            let message = Message::encrypt(version, &Curve25519PublicKey::from_bytes(key), index, &keys(1), &plaintext);
            let decoded = Message::from_bytes(message.as_bytes()).unwrap();
            prop_assert_eq!(&decoded, &message);
            prop_assert_eq!(decoded.chain_index(), u64::from(index));
            prop_assert_eq!(decoded.mac().len(), if full_mac { 32 } else { 8 });
            prop_assert_eq!(keys(1).decrypt(decoded.ciphertext()).unwrap(), plaintext);
            prop_assert!(keys(1).verify_mac(decoded.authenticated(), decoded.mac()).is_ok());
        }

        #[test]
        fn pre_key_messages_round_trip(a: [u8; 32], b: [u8; 32], c: [u8; 32], index: u32, plaintext: Vec<u8>) {
            let keys_ = SessionKeys {
                identity_key: Curve25519PublicKey::from_bytes(a),
                base_key: Curve25519PublicKey::from_bytes(b),
                one_time_key: Curve25519PublicKey::from_bytes(c),
            };
            let inner = Message::encrypt(3, &Curve25519PublicKey::from_bytes(c), index, &keys(2), &plaintext);
            let message = PreKeyMessage::new(keys_, inner);
            let decoded = PreKeyMessage::from_bytes(message.as_bytes()).unwrap();
            prop_assert_eq!(&decoded, &message);
            prop_assert_eq!(decoded.session_id(), keys_.session_id());
            let (t, body) = OlmMessage::from(message.clone()).to_parts();
            prop_assert_eq!(OlmMessage::from_parts(t, &body).unwrap(), OlmMessage::PreKey(message));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = Message::from_bytes(&bytes);
            let _ = PreKeyMessage::from_bytes(&bytes);
        }

        #[test]
        fn truncations_and_bit_flips_never_panic(plaintext: Vec<u8>, cut: usize, flip: usize) {
            let inner = Message::encrypt(3, &Curve25519PublicKey::from_bytes([5; 32]), 7, &keys(3), &plaintext);
            let outer = PreKeyMessage::new(SessionKeys {
                identity_key: Curve25519PublicKey::from_bytes([1; 32]),
                base_key: Curve25519PublicKey::from_bytes([2; 32]),
                one_time_key: Curve25519PublicKey::from_bytes([3; 32]),
            }, inner.clone());
            for bytes in [inner.as_bytes(), outer.as_bytes()] {
                let cut_bytes = &bytes[..cut % (bytes.len() + 1)];
                let _ = Message::from_bytes(cut_bytes);
                let _ = PreKeyMessage::from_bytes(cut_bytes);
                let mut flipped = bytes.to_vec();
                let i = flip % flipped.len();
                flipped[i] ^= 1 << (flip % 8);
                let _ = Message::from_bytes(&flipped);
                let _ = PreKeyMessage::from_bytes(&flipped);
            }
        }
    }

    #[test]
    fn typed_errors_for_each_defect() {
        assert_eq!(Message::from_bytes(&[]), Err(DecodeError::Empty));
        assert_eq!(Message::from_bytes(&[9; 40]), Err(DecodeError::UnknownVersion(9)));
        assert_eq!(Message::from_bytes(&[3, 0, 0]), Err(DecodeError::TooShort(3)));
        // Ciphertext field present, no ratchet key.
        let mut no_key = vec![3, 0x10, 0x00, 0x22, 0x01, 0xaa];
        no_key.extend_from_slice(&[0; 8]);
        assert_eq!(Message::from_bytes(&no_key), Err(DecodeError::MissingField("ratchet key")));
        let mut short_key = vec![3, 0x0A, 0x01, 0x05, 0x10, 0x00, 0x22, 0x00];
        short_key.extend_from_slice(&[0; 8]);
        assert_eq!(
            Message::from_bytes(&short_key),
            Err(DecodeError::InvalidKeyLength { field: "ratchet key", len: 1 })
        );
        assert_eq!(PreKeyMessage::from_bytes(&[4]), Err(DecodeError::UnknownVersion(4)));
        assert_eq!(PreKeyMessage::from_bytes(&[3]), Err(DecodeError::MissingField("one-time key")));
        assert_eq!(MessageType::try_from(2), Err(DecodeError::UnknownMessageType(2)));
        assert_eq!(OlmMessage::from_parts(MessageType::Normal, "%%"), Err(DecodeError::Base64));
    }

    #[test]
    fn unknown_fields_are_skipped_and_covered_by_the_mac() {
        let message = Message::encrypt(3, &Curve25519PublicKey::from_bytes([5; 32]), 1, &keys(4), b"hi");
        let (body, _) = message.as_bytes().split_at(message.as_bytes().len() - 8);
        let mut extended = body.to_vec();
        extended.extend_from_slice(&[0x28, 0x07, 0x32, 0x02, 0xbe, 0xef]); // fields 5 (varint) and 6 (bytes)
        let mac = keys(4).mac(&extended);
        extended.extend_from_slice(&mac[..8]);
        let decoded = Message::from_bytes(&extended).unwrap();
        assert_eq!(decoded.ciphertext(), message.ciphertext());
        assert!(keys(4).verify_mac(decoded.authenticated(), decoded.mac()).is_ok());
    }
}
