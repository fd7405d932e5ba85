//! What the Megolm interop tests share: one interface over the three implementations' sending
//! ([`Sender`]) and receiving ([`Receiver`]) sessions, failures in shared terms ([`Failure`]),
//! and helpers to place a sender at a chosen ratchet index.
//!
//! Everything crosses between implementations only as it would between Matrix clients:
//! messages as the unpadded base64 `ciphertext` of an `m.megolm.v1.aes-sha2` event, signed
//! session keys as the `session_key` of `m.room_key`, exported keys as in forwarded keys and
//! key backups (unpadded base64).

use ferrolm::megolm as fm;
use ferrolm::types::{base64_decode, base64_encode};
use ferrolm_interop::libolm;
use vodozemac::megolm as vm;

use crate::envelope;
pub use crate::rng::{TestRng, seed};

/// One of the three Megolm implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Impl {
    Ferrolm,
    Vodozemac,
    Libolm,
}

pub const ALL: [Impl; 3] = [Impl::Ferrolm, Impl::Vodozemac, Impl::Libolm];

/// The implementations ferrolm is tested against.
pub const PEERS: [Impl; 2] = [Impl::Vodozemac, Impl::Libolm];

/// The session (message) format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// libolm's, 8-byte MAC (message version byte 3).
    V1,
    /// Full MAC (version byte 4); ferrolm and vodozemac only.
    V2,
}

pub fn ferrolm_config(version: Version) -> fm::SessionConfig {
    match version {
        Version::V1 => fm::SessionConfig::version_1(),
        Version::V2 => fm::SessionConfig::version_2(),
    }
}

pub fn vodozemac_config(version: Version) -> vm::SessionConfig {
    match version {
        Version::V1 => vm::SessionConfig::version_1(),
        Version::V2 => vm::SessionConfig::version_2(),
    }
}

/// Pickle keys of the lengths libolm users have been seen to use.
pub fn pickle_keys() -> [Vec<u8>; 4] {
    [Vec::new(), b"12345".to_vec(), (0..32).collect(), (0..100).map(|i| (i * 7) as u8).collect()]
}

/// The bytes of a base64 message or key.
pub fn bytes(base64: &str) -> Vec<u8> {
    base64_decode(base64).expect("valid base64")
}

/// `base64` with bit `bit` (0 = the lowest bit of byte 0) flipped.
pub fn flip_bit(base64: &str, bit: usize) -> String {
    let mut raw = bytes(base64);
    raw[bit / 8] ^= 1 << (bit % 8);
    base64_encode(raw)
}

/// The index and the 128 ratchet bytes of an exported session key
/// (`0x01 ‖ index (BE) ‖ R (128) ‖ Ed25519 key (32)`).
pub fn export_parts(exported: &str) -> (u32, [u8; 128]) {
    let raw = bytes(exported);
    assert_eq!(raw.len(), 165, "an exported session key is 165 bytes");
    assert_eq!(raw[0], 1, "exported session key version");
    (u32::from_be_bytes(raw[1..5].try_into().unwrap()), raw[5..133].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Senders

/// An outbound group session, whichever implementation holds it.
pub enum Sender {
    Ferrolm(fm::GroupSession),
    Vodozemac(vm::GroupSession),
    Libolm(libolm::OutboundGroupSession),
}

impl Sender {
    pub fn new(implementation: Impl, version: Version) -> Self {
        match implementation {
            Impl::Ferrolm => Self::Ferrolm(fm::GroupSession::new(ferrolm_config(version))),
            Impl::Vodozemac => Self::Vodozemac(vm::GroupSession::new(vodozemac_config(version))),
            Impl::Libolm => {
                assert_eq!(version, Version::V1, "libolm has only version 1 sessions");
                Self::Libolm(libolm::OutboundGroupSession::new().expect("libolm creates a group session"))
            }
        }
    }

    pub fn implementation(&self) -> Impl {
        match self {
            Self::Ferrolm(_) => Impl::Ferrolm,
            Self::Vodozemac(_) => Impl::Vodozemac,
            Self::Libolm(_) => Impl::Libolm,
        }
    }

    pub fn session_id(&self) -> String {
        match self {
            Self::Ferrolm(s) => s.session_id().to_base64(),
            Self::Vodozemac(s) => s.session_id(),
            Self::Libolm(s) => s.session_id().expect("libolm session id"),
        }
    }

    pub fn message_index(&self) -> u32 {
        match self {
            Self::Ferrolm(s) => s.message_index(),
            Self::Vodozemac(s) => s.message_index(),
            Self::Libolm(s) => s.message_index(),
        }
    }

    /// The signed session key at the current index, base64.
    pub fn session_key(&self) -> String {
        match self {
            Self::Ferrolm(s) => s.session_key().to_base64().to_string(),
            Self::Vodozemac(s) => s.session_key().to_base64(),
            Self::Libolm(s) => s.session_key().expect("libolm session key").to_string(),
        }
    }

    /// Encrypts `plaintext`; the message as base64.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> String {
        match self {
            Self::Ferrolm(s) => s.encrypt(plaintext).to_base64(),
            Self::Vodozemac(s) => s.encrypt(plaintext).to_base64(),
            Self::Libolm(s) => s.encrypt(plaintext).expect("libolm encrypts"),
        }
    }

    /// The same session (signing key included) with its ratchet replaced by the one in
    /// `exported` (an exported session key of this session, taken from an inbound session at
    /// any index): the next message has the export's index.
    ///
    /// vodozemac's session moves through its serde pickle (`ratchet.counter`, `ratchet.inner`);
    /// ferrolm's and libolm's through their libolm pickles, opened and re-sealed by the tests'
    /// own implementation of libolm's envelope ([`envelope`]).
    pub fn moved_to(self, exported: &str) -> Self {
        let session_id = self.session_id();
        let (index, ratchet) = export_parts(exported);
        assert_eq!(bytes(exported)[133..], bytes(&session_id)[..], "the export belongs to this session");
        const KEY: &[u8] = b"moving the ratchet";
        let moved = match self {
            Self::Vodozemac(session) => {
                let mut json = serde_json::to_value(session.pickle()).expect("vodozemac pickles serialize");
                let ratchet_json = json.get_mut("ratchet").expect("the pickle has a ratchet");
                assert_eq!(ratchet_json["inner"].as_array().map(Vec::len), Some(128), "{ratchet_json}");
                ratchet_json["counter"] = index.into();
                ratchet_json["inner"] = ratchet.iter().map(|&b| serde_json::Value::from(b)).collect();
                let pickle: vm::GroupSessionPickle = serde_json::from_value(json).expect("the edited pickle parses");
                Self::Vodozemac(vm::GroupSession::from_pickle(pickle))
            }
            Self::Ferrolm(session) => {
                let pickle = session.to_libolm_pickle(KEY).expect("a version 1 session");
                let pickle = envelope::OutboundPickle::open(&pickle, KEY).with_ratchet(ratchet, index).seal(KEY);
                Self::Ferrolm(
                    fm::GroupSession::from_libolm_pickle(&pickle, KEY).expect("ferrolm reads the edited pickle"),
                )
            }
            Self::Libolm(session) => {
                let pickle = session.pickle(KEY).expect("libolm pickles");
                let pickle = envelope::OutboundPickle::open(&pickle, KEY).with_ratchet(ratchet, index).seal(KEY);
                Self::Libolm(
                    libolm::OutboundGroupSession::unpickle(&pickle, KEY).expect("libolm reads the edited pickle"),
                )
            }
        };
        assert_eq!(moved.message_index(), index);
        assert_eq!(moved.session_id(), session_id);
        moved
    }
}

// ---------------------------------------------------------------------------------------------
// Receivers

/// Why a message did not decrypt, in terms the three implementations share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Before the session's first known index.
    UnknownIndex,
    /// Not signed by the session's key (forged or altered).
    Signature,
    /// Signed, but the MAC does not match.
    Mac,
    /// The wrong message version for the session (vodozemac: the wrong MAC length).
    Version,
    /// Not a Megolm message.
    Malformed,
    Other,
}

/// A refused message: the shared classification, the implementation's own error, and for
/// ferrolm the typed error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub failure: Failure,
    pub detail: String,
    pub ferrolm: Option<fm::DecryptionError>,
}

impl Refused {
    fn from_ferrolm(error: fm::DecryptionError) -> Self {
        let failure = match error {
            fm::DecryptionError::VersionMismatch { .. } => Failure::Version,
            fm::DecryptionError::InvalidSignature => Failure::Signature,
            fm::DecryptionError::InvalidMac => Failure::Mac,
            fm::DecryptionError::InvalidPadding => Failure::Other,
            fm::DecryptionError::UnknownMessageIndex { .. } => Failure::UnknownIndex,
        };
        Self { failure, detail: format!("{error:?}"), ferrolm: Some(error) }
    }

    fn from_vodozemac(error: vm::DecryptionError) -> Self {
        let failure = match error {
            vm::DecryptionError::Signature(_) => Failure::Signature,
            vm::DecryptionError::InvalidMAC(_) => Failure::Mac,
            vm::DecryptionError::InvalidMACLength(..) => Failure::Version,
            vm::DecryptionError::UnknownMessageIndex(..) => Failure::UnknownIndex,
            _ => Failure::Other,
        };
        Self { failure, detail: format!("{error:?}"), ferrolm: None }
    }

    fn from_libolm(error: libolm::Error) -> Self {
        let failure = match error.code {
            libolm::ErrorCode::UnknownMessageIndex => Failure::UnknownIndex,
            libolm::ErrorCode::BadSignature => Failure::Signature,
            libolm::ErrorCode::BadMessageMac => Failure::Mac,
            libolm::ErrorCode::BadMessageVersion => Failure::Version,
            libolm::ErrorCode::BadMessageFormat | libolm::ErrorCode::InvalidBase64 => Failure::Malformed,
            _ => Failure::Other,
        };
        Self { failure, detail: error.to_string(), ferrolm: None }
    }

    fn malformed(detail: String) -> Self {
        Self { failure: Failure::Malformed, detail, ferrolm: None }
    }
}

/// A decrypted message: plaintext and message index.
pub type Decrypted = (Vec<u8>, u32);

/// An inbound group session, whichever implementation holds it.
#[allow(clippy::large_enum_variant)] // tests hold a handful; boxing would only add noise
pub enum Receiver {
    Ferrolm(fm::InboundGroupSession),
    Vodozemac(vm::InboundGroupSession),
    Libolm(libolm::InboundGroupSession),
}

impl Receiver {
    /// From a signed session key (`m.room_key`).
    pub fn new(implementation: Impl, session_key: &str, version: Version) -> Result<Self, String> {
        Ok(match implementation {
            Impl::Ferrolm => {
                let key = fm::SessionKey::from_base64(session_key).map_err(|e| format!("{e:?}"))?;
                Self::Ferrolm(fm::InboundGroupSession::new(&key, ferrolm_config(version)))
            }
            Impl::Vodozemac => {
                let key = vm::SessionKey::from_base64(session_key).map_err(|e| format!("{e:?}"))?;
                Self::Vodozemac(vm::InboundGroupSession::new(&key, vodozemac_config(version)))
            }
            Impl::Libolm => {
                assert_eq!(version, Version::V1, "libolm has only version 1 sessions");
                Self::Libolm(libolm::InboundGroupSession::new(session_key).map_err(|e| e.to_string())?)
            }
        })
    }

    /// From an exported session key (unsigned).
    pub fn import(implementation: Impl, exported: &str, version: Version) -> Result<Self, String> {
        Ok(match implementation {
            Impl::Ferrolm => {
                let key = fm::ExportedSessionKey::from_base64(exported).map_err(|e| format!("{e:?}"))?;
                Self::Ferrolm(fm::InboundGroupSession::import(&key, ferrolm_config(version)))
            }
            Impl::Vodozemac => {
                let key = vm::ExportedSessionKey::from_base64(exported).map_err(|e| format!("{e:?}"))?;
                Self::Vodozemac(vm::InboundGroupSession::import(&key, vodozemac_config(version)))
            }
            Impl::Libolm => {
                assert_eq!(version, Version::V1, "libolm has only version 1 sessions");
                Self::Libolm(libolm::InboundGroupSession::import(exported).map_err(|e| e.to_string())?)
            }
        })
    }

    pub fn implementation(&self) -> Impl {
        match self {
            Self::Ferrolm(_) => Impl::Ferrolm,
            Self::Vodozemac(_) => Impl::Vodozemac,
            Self::Libolm(_) => Impl::Libolm,
        }
    }

    pub fn session_id(&self) -> String {
        match self {
            Self::Ferrolm(s) => s.session_id().to_base64(),
            Self::Vodozemac(s) => s.session_id(),
            Self::Libolm(s) => s.session_id().expect("libolm session id"),
        }
    }

    pub fn first_known_index(&self) -> u32 {
        match self {
            Self::Ferrolm(s) => s.first_known_index(),
            Self::Vodozemac(s) => s.first_known_index(),
            Self::Libolm(s) => s.first_known_index(),
        }
    }

    /// Whether the session counts its signing key as verified. vodozemac keeps the flag
    /// private; its serde pickle shows it.
    pub fn is_verified(&self) -> bool {
        match self {
            Self::Ferrolm(s) => s.is_verified(),
            Self::Vodozemac(s) => vodozemac_verified_flag(s),
            Self::Libolm(s) => s.is_verified(),
        }
    }

    pub fn decrypt(&mut self, message: &str) -> Result<Decrypted, Refused> {
        match self {
            Self::Ferrolm(s) => {
                let message =
                    fm::MegolmMessage::from_base64(message).map_err(|e| Refused::malformed(format!("{e:?}")))?;
                s.decrypt(&message).map(|d| (d.plaintext, d.message_index)).map_err(Refused::from_ferrolm)
            }
            Self::Vodozemac(s) => {
                let message =
                    vm::MegolmMessage::from_base64(message).map_err(|e| Refused::malformed(format!("{e:?}")))?;
                s.decrypt(&message).map(|d| (d.plaintext, d.message_index)).map_err(Refused::from_vodozemac)
            }
            Self::Libolm(s) => s.decrypt(message).map(|d| (d.plaintext, d.message_index)).map_err(Refused::from_libolm),
        }
    }

    /// The exported session key at `index` (base64), if the session knows that index.
    pub fn export_at(&mut self, index: u32) -> Option<String> {
        match self {
            Self::Ferrolm(s) => s.export_at(index).map(|k| k.to_base64().to_string()),
            Self::Vodozemac(s) => s.export_at(index).map(|k| k.to_base64()),
            Self::Libolm(s) => match s.export_at(index) {
                Ok(key) => Some(key.to_string()),
                Err(error) => {
                    assert_eq!(error.code, libolm::ErrorCode::UnknownMessageIndex, "{error}");
                    None
                }
            },
        }
    }

    /// The ferrolm session (panics for the others).
    pub fn ferrolm(&mut self) -> &mut fm::InboundGroupSession {
        match self {
            Self::Ferrolm(s) => s,
            _ => panic!("not a ferrolm session"),
        }
    }
}

/// vodozemac's `signing_key_verified`, read from its serde pickle.
pub fn vodozemac_verified_flag(session: &vm::InboundGroupSession) -> bool {
    let json = serde_json::to_value(session.pickle()).expect("vodozemac pickles serialize");
    json["signing_key_verified"].as_bool().expect("the pickle has a verified flag")
}

/// A message's plaintext in the tests: its number first, then `len` random bytes.
pub fn plaintext(rng: &mut TestRng, number: usize, max_len: usize) -> Vec<u8> {
    let mut plaintext = format!("#{number}:").into_bytes();
    let len = rng.below(max_len + 1);
    plaintext.extend(rng.bytes(len));
    plaintext
}
