//! libolm's pickle envelope and its two Megolm pickle layouts, implemented here from the
//! libolm sources' description with RustCrypto primitives, independently of ferrolm:
//!
//! - envelope: `HKDF-SHA-256(salt = none, ikm = pickle key, info = "Pickle")` → AES-256 key
//!   (32) ‖ HMAC key (32) ‖ IV (16); AES-256-CBC with PKCS#7 padding; the ciphertext followed by
//!   the first 8 bytes of HMAC-SHA-256 over it; unpadded base64. The IV depends only on the key,
//!   so equal plaintexts under equal keys give equal pickles.
//! - outbound group session (version 1): `u32 version ‖ ratchet (128) ‖ u32 counter ‖ Ed25519
//!   public key (32) ‖ Ed25519 expanded secret key (64)`, integers big-endian.
//! - inbound group session (version 2): `u32 version ‖ initial ratchet (128) ‖ u32 counter ‖
//!   latest ratchet (128) ‖ u32 counter ‖ Ed25519 public key (32) ‖ verified (1 byte)`;
//!   version 1 lacks the verified byte.
//!
//! The tests use it to compare the plaintexts of pickles written by different implementations
//! field by field, and to place outbound sessions at chosen ratchet indices.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use ferrolm::types::{base64_decode, base64_encode};
use hmac::Mac;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn keys(pickle_key: &[u8]) -> [u8; 80] {
    let mut okm = [0u8; 80];
    hkdf::Hkdf::<sha2::Sha256>::new(None, pickle_key).expand(b"Pickle", &mut okm).expect("80 bytes is a valid length");
    okm
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 8] {
    let mut hmac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    hmac.update(data);
    hmac.finalize().into_bytes()[..8].try_into().unwrap()
}

/// Seals `plaintext` in libolm's pickle envelope.
pub fn seal(plaintext: &[u8], pickle_key: &[u8]) -> String {
    let okm = keys(pickle_key);
    let mut out = Aes256CbcEnc::new(okm[..32].into(), okm[64..].into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let tag = mac(&okm[32..64], &out);
    out.extend_from_slice(&tag);
    base64_encode(out)
}

/// Opens libolm's pickle envelope; panics if the MAC does not match.
pub fn open(pickle: &str, pickle_key: &[u8]) -> Vec<u8> {
    let okm = keys(pickle_key);
    let raw = base64_decode(pickle).expect("pickles are base64");
    let (ciphertext, tag) = raw.split_at(raw.len() - 8);
    assert_eq!(mac(&okm[32..64], ciphertext), tag, "the pickle's MAC matches");
    Aes256CbcDec::new(okm[..32].into(), okm[64..].into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .expect("valid padding")
}

fn u32_at(raw: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(raw[at..at + 4].try_into().unwrap())
}

/// A Megolm ratchet as pickled: 128 bytes and the counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatchetState {
    pub bytes: Vec<u8>,
    pub counter: u32,
}

impl RatchetState {
    fn read(raw: &[u8], at: usize) -> Self {
        Self { bytes: raw[at..at + 128].to_vec(), counter: u32_at(raw, at + 128) }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(&self.counter.to_be_bytes());
    }
}

/// The plaintext of a libolm outbound group session pickle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundPickle {
    pub ratchet: RatchetState,
    pub public_key: Vec<u8>,
    pub expanded_secret_key: Vec<u8>,
}

impl OutboundPickle {
    pub fn open(pickle: &str, pickle_key: &[u8]) -> Self {
        let raw = open(pickle, pickle_key);
        assert_eq!(raw.len(), 232, "an outbound group session pickle holds 232 bytes");
        assert_eq!(u32_at(&raw, 0), 1, "outbound group session pickle version");
        Self {
            ratchet: RatchetState::read(&raw, 4),
            public_key: raw[136..168].to_vec(),
            expanded_secret_key: raw[168..232].to_vec(),
        }
    }

    pub fn with_ratchet(mut self, bytes: [u8; 128], counter: u32) -> Self {
        self.ratchet = RatchetState { bytes: bytes.to_vec(), counter };
        self
    }

    pub fn seal(&self, pickle_key: &[u8]) -> String {
        let mut raw = 1u32.to_be_bytes().to_vec();
        self.ratchet.write(&mut raw);
        raw.extend_from_slice(&self.public_key);
        raw.extend_from_slice(&self.expanded_secret_key);
        seal(&raw, pickle_key)
    }
}

/// The plaintext of a libolm inbound group session pickle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPickle {
    pub version: u32,
    pub initial: RatchetState,
    pub latest: RatchetState,
    pub signing_key: Vec<u8>,
    /// Absent from version 1 pickles.
    pub verified: Option<bool>,
}

impl InboundPickle {
    pub fn open(pickle: &str, pickle_key: &[u8]) -> Self {
        let raw = open(pickle, pickle_key);
        let version = u32_at(&raw, 0);
        let verified = match version {
            1 => {
                assert_eq!(raw.len(), 300, "an inbound group session pickle (version 1) holds 300 bytes");
                None
            }
            2 => {
                assert_eq!(raw.len(), 301, "an inbound group session pickle (version 2) holds 301 bytes");
                assert!(raw[300] <= 1, "the verified flag is a boolean byte");
                Some(raw[300] == 1)
            }
            other => panic!("unknown inbound group session pickle version {other}"),
        };
        Self {
            version,
            initial: RatchetState::read(&raw, 4),
            latest: RatchetState::read(&raw, 136),
            signing_key: raw[268..300].to_vec(),
            verified,
        }
    }

    pub fn seal(&self, pickle_key: &[u8]) -> String {
        let mut raw = self.version.to_be_bytes().to_vec();
        self.initial.write(&mut raw);
        self.latest.write(&mut raw);
        raw.extend_from_slice(&self.signing_key);
        if let Some(verified) = self.verified {
            raw.push(u8::from(verified));
        }
        seal(&raw, pickle_key)
    }
}
