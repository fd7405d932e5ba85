//! The session keys a Megolm session is shared as.
//!
//! ```text
//! SessionKey (m.room_key, v2):         0x02 ‖ index (u32 BE) ‖ R (128) ‖ Ed25519 key (32) ‖ signature (64)
//! ExportedSessionKey (forwarded keys,
//! backups, key export files):          0x01 ‖ index (u32 BE) ‖ R (128) ‖ Ed25519 key (32)
//! ```
//!
//! The signature covers the 165 bytes before it and is made with the session's signing key,
//! proving the key was shared by the session's creator. An exported key carries no signature.

use zeroize::Zeroizing;

use super::ratchet::{RATCHET_LENGTH, Ratchet};
use super::{DecodeError, SessionId};
use crate::types::{Ed25519Keypair, Ed25519PublicKey, Ed25519Signature, base64_decode_secret, base64_encode};

const SIGNED_VERSION: u8 = 2;
const EXPORTED_VERSION: u8 = 1;
const EXPORTED_LENGTH: usize = 1 + 4 + RATCHET_LENGTH + 32;
const SIGNED_LENGTH: usize = EXPORTED_LENGTH + 64;

fn encode(version: u8, ratchet: &Ratchet, signing_key: &Ed25519PublicKey) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(SIGNED_LENGTH));
    bytes.push(version);
    bytes.extend_from_slice(&ratchet.index().to_be_bytes());
    bytes.extend_from_slice(ratchet.to_bytes().as_ref());
    bytes.extend_from_slice(signing_key.as_bytes());
    bytes
}

/// Splits `0x0V ‖ index ‖ R ‖ key` into its ratchet and key.
fn decode_common(bytes: &[u8], version: u8, length: usize) -> Result<(Box<Ratchet>, Ed25519PublicKey), DecodeError> {
    let got = *bytes.first().ok_or(DecodeError::Empty)?;
    if got != version {
        return Err(DecodeError::UnknownVersion(got));
    }
    if bytes.len() != length {
        return Err(DecodeError::InvalidLength { expected: length, got: bytes.len() });
    }
    let index = bytes.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok()).ok_or(DecodeError::TooShort(bytes.len()))?;
    let ratchet = bytes
        .get(5..5 + RATCHET_LENGTH)
        .and_then(|b| <&[u8; RATCHET_LENGTH]>::try_from(b).ok())
        .ok_or(DecodeError::TooShort(bytes.len()))?;
    let key = bytes.get(5 + RATCHET_LENGTH..EXPORTED_LENGTH).ok_or(DecodeError::TooShort(bytes.len()))?;
    let key = Ed25519PublicKey::from_slice(key).map_err(|_| DecodeError::InvalidSigningKey)?;
    Ok((Box::new(Ratchet::from_bytes(ratchet, u32::from_be_bytes(index))), key))
}

/// A Megolm session key as shared in `m.room_key` events: signed by the session's creator.
/// Secret; zeroized on drop; `Debug` redacted.
#[derive(Clone)]
pub struct SessionKey {
    // Boxed, so that moving the key does not leave copies of the ratchet behind.
    pub(crate) ratchet: Box<Ratchet>,
    pub(crate) signing_key: Ed25519PublicKey,
    signature: Ed25519Signature,
}

impl SessionKey {
    pub(crate) fn new(ratchet: &Ratchet, signing_key: &Ed25519Keypair) -> Self {
        let signature = signing_key.sign(&encode(SIGNED_VERSION, ratchet, &signing_key.public_key()));
        Self { ratchet: Box::new(ratchet.clone()), signing_key: signing_key.public_key(), signature }
    }

    /// Decodes a session key and verifies its signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (ratchet, signing_key) = decode_common(bytes, SIGNED_VERSION, SIGNED_LENGTH)?;
        let (signed, signature) = bytes.split_at(EXPORTED_LENGTH);
        let signature = Ed25519Signature::from_slice(signature).map_err(|_| DecodeError::InvalidSignature)?;
        signing_key.verify(signed, &signature).map_err(|_| DecodeError::InvalidSignature)?;
        Ok(Self { ratchet, signing_key, signature })
    }

    /// Decodes a session key from base64 and verifies its signature.
    pub fn from_base64(input: &str) -> Result<Self, DecodeError> {
        let bytes = base64_decode_secret(input).map_err(|_| DecodeError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// The encoded key (229 bytes), in a buffer that zeroizes itself.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = encode(SIGNED_VERSION, &self.ratchet, &self.signing_key);
        bytes.extend_from_slice(&self.signature.to_bytes());
        bytes
    }

    /// The encoded key as unpadded base64 (the `session_key` of `m.room_key`).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64_encode(self.to_bytes().as_slice()))
    }

    /// The first message index the key can decrypt.
    pub fn index(&self) -> u32 {
        self.ratchet.index()
    }

    /// The session id: the session's Ed25519 signing key.
    pub fn session_id(&self) -> SessionId {
        SessionId::from(self.signing_key)
    }
}

impl core::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionKey")
            .field("session_id", &self.session_id())
            .field("index", &self.index())
            .finish_non_exhaustive()
    }
}

/// A Megolm session key exported at some index, without a signature (forwarded room keys,
/// backups, key export files). Secret; zeroized on drop; `Debug` redacted.
#[derive(Clone)]
pub struct ExportedSessionKey {
    // Boxed, so that moving the key does not leave copies of the ratchet behind.
    pub(crate) ratchet: Box<Ratchet>,
    pub(crate) signing_key: Ed25519PublicKey,
}

impl ExportedSessionKey {
    pub(crate) fn new(ratchet: &Ratchet, signing_key: Ed25519PublicKey) -> Self {
        Self { ratchet: Box::new(ratchet.clone()), signing_key }
    }

    /// Decodes an exported session key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (ratchet, signing_key) = decode_common(bytes, EXPORTED_VERSION, EXPORTED_LENGTH)?;
        Ok(Self { ratchet, signing_key })
    }

    /// Decodes an exported session key from base64.
    pub fn from_base64(input: &str) -> Result<Self, DecodeError> {
        let bytes = base64_decode_secret(input).map_err(|_| DecodeError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// The encoded key (165 bytes), in a buffer that zeroizes itself.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encode(EXPORTED_VERSION, &self.ratchet, &self.signing_key)
    }

    /// The encoded key as unpadded base64.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64_encode(self.to_bytes().as_slice()))
    }

    /// The first message index the key can decrypt.
    pub fn index(&self) -> u32 {
        self.ratchet.index()
    }

    /// The session id: the session's Ed25519 signing key.
    pub fn session_id(&self) -> SessionId {
        SessionId::from(self.signing_key)
    }
}

impl core::fmt::Debug for ExportedSessionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExportedSessionKey")
            .field("session_id", &self.session_id())
            .field("index", &self.index())
            .finish_non_exhaustive()
    }
}
