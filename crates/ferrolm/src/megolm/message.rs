//! The Megolm message format.
//!
//! ```text
//! version ‖ 0x08 varint message_index ‖ 0x12 varint len ciphertext ‖ mac ‖ Ed25519 signature (64)
//! ```
//!
//! Version 3 carries an 8-byte truncated MAC (libolm, session config v1), version 4 the full
//! 32-byte MAC (v2). The MAC covers everything before it; the signature everything before it,
//! MAC included. The decoder skips unknown fields and keeps the received bytes, so MAC and
//! signature are checked over exactly what was sent.

use crate::codec::{CodecError, FieldReader, FieldValue, varint_len, write_varint, write_varint_field};
use crate::crypto::{CipherKeys, padded_len};
use crate::types::{Ed25519Keypair, Ed25519Signature, base64_decode, base64_encode};

pub(crate) const VERSION_TRUNCATED_MAC: u8 = 3;
pub(crate) const VERSION_FULL_MAC: u8 = 4;
const SIGNATURE_LENGTH: usize = Ed25519Signature::LENGTH;

/// Why bytes could not be decoded as a Megolm message or session key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is not valid base64.
    #[error("the input is not valid base64")]
    Base64,
    /// The input is empty.
    #[error("the input is empty")]
    Empty,
    /// The version byte is not one this library reads.
    #[error("unsupported version {0}")]
    UnknownVersion(u8),
    /// The input is too short for its version.
    #[error("the input is too short ({0} bytes)")]
    TooShort(usize),
    /// The input has the wrong length for its fixed-size format.
    #[error("the input is {got} bytes long, not {expected}")]
    InvalidLength {
        /// The format's length.
        expected: usize,
        /// The input's length.
        got: usize,
    },
    /// A field the message needs is absent.
    #[error("the message has no {0}")]
    MissingField(&'static str),
    /// The message index does not fit in 32 bits.
    #[error("the message index {0} does not fit in 32 bits")]
    InvalidIndex(u64),
    /// The embedded Ed25519 key is not a valid point.
    #[error("the session's Ed25519 key is invalid")]
    InvalidSigningKey,
    /// The session key's signature does not verify.
    #[error("the session key's signature is invalid")]
    InvalidSignature,
    /// A field is truncated or uses an encoding the format never uses.
    #[error("the message is malformed: {0}")]
    Malformed(&'static str),
}

impl From<CodecError> for DecodeError {
    fn from(error: CodecError) -> Self {
        Self::Malformed(error.describe())
    }
}

/// A Megolm message: one group ratchet step's ciphertext, MAC and signature.
#[derive(Clone, PartialEq, Eq)]
pub struct MegolmMessage {
    bytes: Vec<u8>,
    message_index: u32,
    ciphertext_start: usize,
    ciphertext_end: usize,
    mac_len: usize,
    signature: Ed25519Signature,
}

fn mac_len(version: u8) -> Option<usize> {
    match version {
        VERSION_TRUNCATED_MAC => Some(8),
        VERSION_FULL_MAC => Some(32),
        _ => None,
    }
}

impl MegolmMessage {
    /// Encrypts, MACs and signs `plaintext` in a single allocation.
    pub(crate) fn encrypt(
        version: u8,
        message_index: u32,
        keys: &CipherKeys,
        signing_key: &Ed25519Keypair,
        plaintext: &[u8],
    ) -> Self {
        let mac_len = mac_len(version).unwrap_or(32);
        let ct_len = padded_len(plaintext.len());
        let mut bytes = Vec::with_capacity(1 + 6 + 1 + varint_len(ct_len as u64) + ct_len + mac_len + SIGNATURE_LENGTH);
        bytes.push(version);
        write_varint_field(&mut bytes, 0x08, u64::from(message_index));
        bytes.push(0x12);
        write_varint(&mut bytes, ct_len as u64);
        let ciphertext_start = bytes.len();
        let mac = keys.encrypt_then_mac_into(plaintext, &mut bytes);
        let ciphertext_end = bytes.len();
        bytes.extend_from_slice(mac.get(..mac_len).unwrap_or(&mac));
        let signature = signing_key.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        Self { bytes, message_index, ciphertext_start, ciphertext_end, mac_len, signature }
    }

    /// Decodes a Megolm message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let version = *bytes.first().ok_or(DecodeError::Empty)?;
        let mac_len = mac_len(version).ok_or(DecodeError::UnknownVersion(version))?;
        let suffix = mac_len + SIGNATURE_LENGTH;
        if bytes.len() < 1 + suffix {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        let body = bytes.get(1..bytes.len() - suffix).ok_or(DecodeError::TooShort(bytes.len()))?;
        let (mut index, mut ciphertext) = (None, None);
        let mut reader = FieldReader::new(body);
        while let Some(field) = reader.next_field()? {
            match field {
                (1, FieldValue::Varint(value)) => index = Some(value),
                (2, FieldValue::Bytes(ct)) => ciphertext = Some(ct),
                _ => {}
            }
        }
        let index = index.ok_or(DecodeError::MissingField("message index"))?;
        let message_index = u32::try_from(index).map_err(|_| DecodeError::InvalidIndex(index))?;
        let ciphertext = ciphertext.ok_or(DecodeError::MissingField("ciphertext"))?;
        let ciphertext_start = ciphertext.as_ptr() as usize - bytes.as_ptr() as usize;
        let signature = Ed25519Signature::from_slice(bytes.get(bytes.len() - SIGNATURE_LENGTH..).unwrap_or_default())
            .map_err(|_| DecodeError::TooShort(bytes.len()))?;
        Ok(Self {
            bytes: bytes.to_vec(),
            message_index,
            ciphertext_start,
            ciphertext_end: ciphertext_start + ciphertext.len(),
            mac_len,
            signature,
        })
    }

    /// Decodes a Megolm message from unpadded base64 (the `ciphertext` of an
    /// `m.megolm.v1.aes-sha2` event).
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

    /// The version byte: 3 (8-byte MAC) or 4 (32-byte MAC).
    pub fn version(&self) -> u8 {
        self.bytes.first().copied().unwrap_or_default()
    }

    /// The message's index in the group ratchet.
    pub fn message_index(&self) -> u32 {
        self.message_index
    }

    /// The AES-256-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        self.bytes.get(self.ciphertext_start..self.ciphertext_end).unwrap_or_default()
    }

    /// The MAC.
    pub fn mac(&self) -> &[u8] {
        let end = self.bytes.len() - SIGNATURE_LENGTH;
        self.bytes.get(end - self.mac_len..end).unwrap_or_default()
    }

    /// The sender's signature.
    pub fn signature(&self) -> &Ed25519Signature {
        &self.signature
    }

    /// What the MAC covers.
    pub(crate) fn mac_input(&self) -> &[u8] {
        self.bytes.get(..self.bytes.len() - SIGNATURE_LENGTH - self.mac_len).unwrap_or_default()
    }

    /// What the signature covers.
    pub(crate) fn signed_part(&self) -> &[u8] {
        self.bytes.get(..self.bytes.len() - SIGNATURE_LENGTH).unwrap_or_default()
    }
}

impl core::fmt::Debug for MegolmMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MegolmMessage")
            .field("version", &self.version())
            .field("message_index", &self.message_index)
            .field("ciphertext_len", &self.ciphertext().len())
            .finish_non_exhaustive()
    }
}
