//! The QR code of `m.qr_code.show.v1` / `m.qr_code.scan.v1` ("QR code format").
//!
//! ```text
//! "MATRIX" | 0x02 (version) | mode (1) | flow id length (u16, big-endian) | flow id |
//! key 1 (32) | key 2 (32) | shared secret (the rest, at least 8 bytes)
//! ```
//!
//! The flow id is the transaction id of a to-device verification or the event id of the
//! in-room request. The keys depend on the mode ([`QrMode`]). The scanner sends the secret back
//! in `m.key.verification.start` (method `m.reciprocate.v1`); the displaying side compares it
//! in constant time ([`secrets_match`]): a wrong secret means someone else answered the code.
//!
//! ```
//! use ferrolm_machine::verification::qr::{QrCode, QrMode};
//! let code = QrCode {
//!     mode: QrMode::SelfTrusted,
//!     flow_id: "txn1".into(),
//!     key_1: [1; 32],
//!     key_2: [2; 32],
//!     secret: vec![3; 16].into(),
//! };
//! let bytes = code.to_bytes()?;
//! assert_eq!(&bytes[..8], b"MATRIX\x02\x01");
//! assert_eq!(QrCode::from_bytes(&bytes)?, code);
//! # Ok::<(), ferrolm_machine::verification::qr::QrError>(())
//! ```

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The header of every Matrix verification QR code.
pub const QR_HEADER: &[u8; 6] = b"MATRIX";
/// The format version this module reads and writes.
pub const QR_VERSION: u8 = 0x02;
/// The shortest shared secret accepted.
pub const MIN_SECRET_LENGTH: usize = 8;

/// What a QR code's two keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QrMode {
    /// Mode 0x00, verifying another user: key 1 is the displaying user's master key, key 2
    /// the master key it believes the scanning user has.
    OtherUser,
    /// Mode 0x01, self-verification by a device that trusts the master key: key 1 is the
    /// user's master key, key 2 the Ed25519 key it believes the other device has.
    SelfTrusted,
    /// Mode 0x02, self-verification by a device that does not trust the master key yet: key 1
    /// is its own Ed25519 key, key 2 the master key it was told.
    SelfUntrusted,
}

impl QrMode {
    /// The mode byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::OtherUser => 0x00,
            Self::SelfTrusted => 0x01,
            Self::SelfUntrusted => 0x02,
        }
    }

    /// The mode of a mode byte.
    pub fn from_byte(byte: u8) -> Result<Self, QrError> {
        match byte {
            0x00 => Ok(Self::OtherUser),
            0x01 => Ok(Self::SelfTrusted),
            0x02 => Ok(Self::SelfUntrusted),
            other => Err(QrError::UnknownMode(other)),
        }
    }
}

/// Why bytes are not a verification QR code: one variant per malformed part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// It does not start with `MATRIX`.
    #[error("the code does not start with MATRIX")]
    BadHeader,
    /// Another version than 0x02.
    #[error("unsupported QR code version {0}")]
    UnsupportedVersion(u8),
    /// A mode byte other than 0, 1, 2.
    #[error("unknown QR code mode {0}")]
    UnknownMode(u8),
    /// The code ends inside the named part.
    #[error("the code ends inside the {0}")]
    Truncated(&'static str),
    /// The flow id is empty or not UTF-8.
    #[error("the flow id is empty or not UTF-8")]
    InvalidFlowId,
    /// The flow id is longer than a u16 length can say (when encoding).
    #[error("the flow id is too long")]
    FlowIdTooLong,
    /// The shared secret is shorter than [`MIN_SECRET_LENGTH`].
    #[error("the shared secret is {0} bytes, fewer than 8")]
    SecretTooShort(usize),
}

/// A verification QR code's content.
#[derive(Clone, PartialEq, Eq)]
pub struct QrCode {
    /// What the keys are.
    pub mode: QrMode,
    /// The transaction id (to-device) or the request's event id (in-room).
    pub flow_id: String,
    /// The first key (see [`QrMode`]).
    pub key_1: [u8; 32],
    /// The second key (see [`QrMode`]).
    pub key_2: [u8; 32],
    /// The shared secret the scanner sends back.
    pub secret: Zeroizing<Vec<u8>>,
}

impl QrCode {
    /// The code's bytes (to render as a QR code in byte mode).
    pub fn to_bytes(&self) -> Result<Vec<u8>, QrError> {
        let flow = self.flow_id.as_bytes();
        let length = u16::try_from(flow.len()).map_err(|_| QrError::FlowIdTooLong)?;
        if flow.is_empty() {
            return Err(QrError::InvalidFlowId);
        }
        if self.secret.len() < MIN_SECRET_LENGTH {
            return Err(QrError::SecretTooShort(self.secret.len()));
        }
        let mut out = Vec::with_capacity(6 + 2 + 2 + flow.len() + 64 + self.secret.len());
        out.extend_from_slice(QR_HEADER);
        out.push(QR_VERSION);
        out.push(self.mode.to_byte());
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(flow);
        out.extend_from_slice(&self.key_1);
        out.extend_from_slice(&self.key_2);
        out.extend_from_slice(&self.secret);
        Ok(out)
    }

    /// Reads scanned bytes. Untrusted input: every malformed part is a typed error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, QrError> {
        let rest = bytes.strip_prefix(QR_HEADER.as_slice()).ok_or(QrError::BadHeader)?;
        let (&version, rest) = rest.split_first().ok_or(QrError::Truncated("version"))?;
        if version != QR_VERSION {
            return Err(QrError::UnsupportedVersion(version));
        }
        let (&mode, rest) = rest.split_first().ok_or(QrError::Truncated("mode"))?;
        let mode = QrMode::from_byte(mode)?;
        let (length, rest) = split(rest, 2, "flow id length")?;
        let length = usize::from(u16::from_be_bytes([
            length.first().copied().unwrap_or(0),
            length.get(1).copied().unwrap_or(0),
        ]));
        let (flow, rest) = split(rest, length, "flow id")?;
        let flow_id = std::str::from_utf8(flow).map_err(|_| QrError::InvalidFlowId)?;
        if flow_id.is_empty() {
            return Err(QrError::InvalidFlowId);
        }
        let (key_1, rest) = split(rest, 32, "first key")?;
        let (key_2, secret) = split(rest, 32, "second key")?;
        if secret.len() < MIN_SECRET_LENGTH {
            return Err(QrError::SecretTooShort(secret.len()));
        }
        Ok(Self {
            mode,
            flow_id: flow_id.to_owned(),
            key_1: key_1.try_into().map_err(|_| QrError::Truncated("first key"))?,
            key_2: key_2.try_into().map_err(|_| QrError::Truncated("second key"))?,
            secret: Zeroizing::new(secret.to_vec()),
        })
    }
}

fn split<'a>(bytes: &'a [u8], n: usize, part: &'static str) -> Result<(&'a [u8], &'a [u8]), QrError> {
    if bytes.len() < n { Err(QrError::Truncated(part)) } else { Ok(bytes.split_at(n)) }
}

/// Whether the secret sent back in `m.reciprocate.v1` is the one shown, in constant time
/// (lengths are not secret).
pub fn secrets_match(shown: &[u8], received: &[u8]) -> bool {
    shown.len() == received.len() && bool::from(shown.ct_eq(received))
}

impl core::fmt::Debug for QrCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QrCode")
            .field("mode", &self.mode)
            .field("flow_id", &self.flow_id)
            .field("key_1", &ferrolm::types::base64_encode(self.key_1))
            .field("key_2", &ferrolm::types::base64_encode(self.key_2))
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn code() -> QrCode {
        QrCode {
            mode: QrMode::OtherUser,
            flow_id: "$event:example.org".into(),
            key_1: [0xaa; 32],
            key_2: [0xbb; 32],
            secret: Zeroizing::new(b"0123456789abcdef".to_vec()),
        }
    }

    #[test]
    fn exact_byte_layout() {
        let bytes = code().to_bytes().unwrap();
        let flow = b"$event:example.org";
        assert_eq!(&bytes[..6], b"MATRIX");
        assert_eq!(bytes[6], 0x02);
        assert_eq!(bytes[7], 0x00);
        assert_eq!(&bytes[8..10], &(flow.len() as u16).to_be_bytes());
        assert_eq!(&bytes[10..10 + flow.len()], flow);
        let at = 10 + flow.len();
        assert_eq!(&bytes[at..at + 32], &[0xaa; 32]);
        assert_eq!(&bytes[at + 32..at + 64], &[0xbb; 32]);
        assert_eq!(&bytes[at + 64..], b"0123456789abcdef");
        assert_eq!(QrCode::from_bytes(&bytes).unwrap(), code());
    }

    #[test]
    fn every_malformed_part_has_its_error() {
        let good = code().to_bytes().unwrap();
        let flow_end = 10 + 18;
        let mut bad_header = good.clone();
        bad_header[0] = b'N';
        assert_eq!(QrCode::from_bytes(&bad_header), Err(QrError::BadHeader));
        let mut bad_version = good.clone();
        bad_version[6] = 0x01;
        assert_eq!(QrCode::from_bytes(&bad_version), Err(QrError::UnsupportedVersion(1)));
        let mut bad_mode = good.clone();
        bad_mode[7] = 0x03;
        assert_eq!(QrCode::from_bytes(&bad_mode), Err(QrError::UnknownMode(3)));
        assert_eq!(QrCode::from_bytes(&good[..6]), Err(QrError::Truncated("version")));
        assert_eq!(QrCode::from_bytes(&good[..7]), Err(QrError::Truncated("mode")));
        assert_eq!(QrCode::from_bytes(&good[..9]), Err(QrError::Truncated("flow id length")));
        assert_eq!(QrCode::from_bytes(&good[..20]), Err(QrError::Truncated("flow id")));
        assert_eq!(QrCode::from_bytes(&good[..flow_end + 31]), Err(QrError::Truncated("first key")));
        assert_eq!(QrCode::from_bytes(&good[..flow_end + 63]), Err(QrError::Truncated("second key")));
        assert_eq!(QrCode::from_bytes(&good[..flow_end + 64 + 7]), Err(QrError::SecretTooShort(7)));
        let mut not_utf8 = good.clone();
        not_utf8[10] = 0xff;
        assert_eq!(QrCode::from_bytes(&not_utf8), Err(QrError::InvalidFlowId));
        let mut empty_flow = b"MATRIX\x02\x00\x00\x00".to_vec();
        empty_flow.extend_from_slice(&[0; 72]);
        assert_eq!(QrCode::from_bytes(&empty_flow), Err(QrError::InvalidFlowId));
        assert_eq!(QrCode::from_bytes(&[]), Err(QrError::BadHeader));
    }

    #[test]
    fn modes_round_trip_and_secrets_compare() {
        for mode in [QrMode::OtherUser, QrMode::SelfTrusted, QrMode::SelfUntrusted] {
            assert_eq!(QrMode::from_byte(mode.to_byte()), Ok(mode));
            let c = QrCode { mode, ..code() };
            assert_eq!(QrCode::from_bytes(&c.to_bytes().unwrap()).unwrap().mode, mode);
        }
        assert!(secrets_match(b"12345678", b"12345678"));
        assert!(!secrets_match(b"12345678", b"12345679"));
        assert!(!secrets_match(b"12345678", b"1234567"));
        assert!(!format!("{:?}", code()).contains("0123456789abcdef"));
    }
}
