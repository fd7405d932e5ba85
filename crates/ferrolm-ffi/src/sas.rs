//! SAS (`m.sas.v1`): the short authentication string of interactive device verification.
//!
//! Each side creates a [`Sas`], sends its public key, and completes the exchange with the
//! other side's key ([`Sas::diffie_hellman`]), which gives an [`EstablishedSas`]. Both show
//! [`EstablishedSas::bytes`] as emoji or numbers; when the users confirm a match, each MACs
//! the keys it verifies and the other checks the MACs. The info strings are the caller's (the
//! specification builds them from user ids, device ids, keys and the transaction id).

use std::sync::{Arc, Mutex};

use ferrolm::sas::{self as core, SasError as CoreSasError, SasMac};
use ferrolm::types::Curve25519PublicKey;

use crate::convert::{KeyParseError, curve25519_key, len32, lock};

/// Why a SAS step failed.
///
/// Every value has a human message (Rust's `Display`, the same text in every language:
/// `e.message` in Kotlin and JavaScript, `localizedDescription`/`description` in Swift,
/// `describe()` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FerrolmSasError {
    /// The other side's public key is not valid base64.
    #[error("the other side's public key is not valid base64")]
    InvalidBase64,
    /// The other side's public key is not 32 bytes long.
    #[error("the other side's public key is {got} bytes long, not {expected}")]
    InvalidKeyLength {
        /// The length the key must have (32).
        expected: u32,
        /// The length that was given.
        got: u32,
    },
    /// The other side's key is of small order: the exchange would not be secret.
    #[error("the other side's key is of small order (non-contributory): the exchange would not be secret")]
    NonContributoryKey,
    /// [`Sas::diffie_hellman`] was already called on this object: each SAS key is used once.
    #[error("this SAS object's key was already used: each SAS key is used once")]
    AlreadyUsed,
    /// The MAC does not match: the keys differ from what the other side saw, or an attacker
    /// is in the middle.
    #[error("the MAC does not match: the keys differ from what the other side saw")]
    InvalidMac,
    /// The MAC is not valid base64 or not 32 bytes long.
    #[error("the MAC is malformed: not base64, or not 32 bytes")]
    MalformedMac,
    /// More output bytes were asked of [`EstablishedSas::generate_bytes`] than HKDF can give.
    #[error("at most {max} bytes can be generated")]
    OutputTooLong {
        /// The limit (8160 bytes).
        max: u32,
    },
}

#[uniffi::export]
impl FerrolmSasError {
    /// The error's human message (its Rust `Display`), the same text in every language.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl From<KeyParseError> for FerrolmSasError {
    fn from(error: KeyParseError) -> Self {
        match error {
            KeyParseError::Base64 => Self::InvalidBase64,
            KeyParseError::Length { expected, got } => Self::InvalidKeyLength { expected, got },
        }
    }
}

impl From<CoreSasError> for FerrolmSasError {
    fn from(error: CoreSasError) -> Self {
        match error {
            CoreSasError::NonContributoryKey => Self::NonContributoryKey,
            CoreSasError::InvalidMac => Self::InvalidMac,
            CoreSasError::MalformedMac => Self::MalformedMac,
        }
    }
}

/// The short authentication string: 6 bytes of HKDF output, shown as emoji or numbers.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SasBytes {
    /// The raw 6 bytes.
    pub bytes: Vec<u8>,
    /// Seven indices (0–63) into the specification's emoji table.
    pub emoji_indices: Vec<u8>,
    /// Three numbers, 1000–9191.
    pub decimals: Vec<u16>,
}

impl From<core::SasBytes> for SasBytes {
    fn from(bytes: core::SasBytes) -> Self {
        let (a, b, c) = bytes.decimals();
        Self {
            bytes: bytes.as_bytes().to_vec(),
            emoji_indices: bytes.emoji_indices().to_vec(),
            decimals: vec![a, b, c],
        }
    }
}

/// Our side of a SAS exchange before the other side's key is known.
#[derive(uniffi::Object)]
pub struct Sas {
    public_key: Curve25519PublicKey,
    /// Taken (and the secret consumed) by the first [`Sas::diffie_hellman`].
    inner: Mutex<Option<core::Sas>>,
}

#[uniffi::export]
impl Sas {
    /// A new ephemeral key pair.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        let sas = core::Sas::new();
        Arc::new(Self { public_key: sas.public_key(), inner: Mutex::new(Some(sas)) })
    }

    /// Our ephemeral public key (base64), sent in `m.key.verification.key`.
    pub fn public_key(&self) -> String {
        self.public_key.to_base64()
    }

    /// Completes the exchange with the other side's public key (base64). Consumes the
    /// ephemeral secret: a second call fails with `AlreadyUsed`, and so does a call after one
    /// that was refused a small-order key. A key that does not parse consumes nothing.
    pub fn diffie_hellman(&self, their_public_key: String) -> Result<Arc<EstablishedSas>, FerrolmSasError> {
        let their_public_key = curve25519_key(&their_public_key)?;
        let sas = lock(&self.inner).take().ok_or(FerrolmSasError::AlreadyUsed)?;
        Ok(Arc::new(EstablishedSas { inner: sas.diffie_hellman(their_public_key)? }))
    }
}

/// A SAS exchange with the shared secret established.
#[derive(uniffi::Object)]
pub struct EstablishedSas {
    inner: core::EstablishedSas,
}

#[uniffi::export]
impl EstablishedSas {
    /// Our ephemeral public key (base64).
    pub fn our_public_key(&self) -> String {
        self.inner.our_public_key().to_base64()
    }

    /// The other side's ephemeral public key (base64).
    pub fn their_public_key(&self) -> String {
        self.inner.their_public_key().to_base64()
    }

    /// The short authentication string for `info`.
    pub fn bytes(&self, info: String) -> SasBytes {
        self.inner.bytes(&info).into()
    }

    /// `length` bytes of HKDF output for `info` (libolm's `olm_sas_generate_bytes`).
    pub fn generate_bytes(&self, info: String, length: u32) -> Result<Vec<u8>, FerrolmSasError> {
        const MAX: usize = 255 * 32;
        let bytes = self
            .inner
            .generate_bytes(&info, length as usize)
            .ok_or(FerrolmSasError::OutputTooLong { max: len32(MAX) })?;
        Ok(bytes.to_vec())
    }

    /// The `hkdf-hmac-sha256.v2` MAC of `input` (base64).
    pub fn calculate_mac(&self, input: String, info: String) -> String {
        self.inner.calculate_mac(&input, &info).to_base64()
    }

    /// Checks a `hkdf-hmac-sha256.v2` MAC (base64), in constant time.
    pub fn verify_mac(&self, input: String, info: String, mac: String) -> Result<(), FerrolmSasError> {
        let mac = SasMac::from_base64(&mac)?;
        Ok(self.inner.verify_mac(&input, &info, &mac)?)
    }

    /// The MAC of `input` for the legacy method `hkdf-hmac-sha256`, in the malformed base64
    /// libolm produces. Only for clients that offer nothing newer.
    pub fn calculate_mac_invalid_base64(&self, input: String, info: String) -> String {
        self.inner.calculate_mac_invalid_base64(&input, &info)
    }

    /// Checks a legacy `hkdf-hmac-sha256` MAC in libolm's malformed base64.
    pub fn verify_mac_invalid_base64(&self, input: String, info: String, mac: String) -> Result<(), FerrolmSasError> {
        Ok(self.inner.verify_mac_invalid_base64(&input, &info, &mac)?)
    }
}
