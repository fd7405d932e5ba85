//! Pickles: the encrypted, serialized state of accounts and sessions.
//!
//! Two formats exist side by side:
//!
//! - **ferrolm's own** (`pickle` / `from_pickle`), for storing state: a versioned envelope
//!   `version (1) ‖ kind (1) ‖ nonce (32) ‖ ciphertext ‖ HMAC-SHA-256 (32)`, unpadded base64.
//!   A fresh random nonce salts `HKDF-SHA-256(pickle key, "ferrolm pickle v1")`, which yields
//!   the AES-256-CBC key, the HMAC key and the IV, so no two pickles share keys or IV even
//!   under the same pickle key. The MAC covers everything before it and is checked (in
//!   constant time) before anything is decrypted. The kind byte stops an account pickle
//!   being read as a session, and vice versa.
//! - **libolm's** (`to_libolm_pickle` / `from_libolm_pickle`), for migrating to or from
//!   libolm or vodozemac: `HKDF(pickle key, "Pickle")` gives key, MAC key and IV, so the IV
//!   depends only on the key. Pickle keys of any length are accepted, as libolm does.
//!
//! ```
//! use ferrolm::{olm::Account, pickle::PickleKey};
//! let key = PickleKey::new();
//! let account = Account::new();
//! let pickle = account.pickle(&key);
//! let restored = Account::from_pickle(&pickle, &key)?;
//! assert_eq!(restored.identity_keys(), account.identity_keys());
//! # Ok::<(), ferrolm::pickle::PickleError>(())
//! ```

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::codec::{CodecError, PickleReader, PickleWriter};
use crate::crypto::{CipherError, CipherKeys};
use crate::types::{Ed25519Keypair, Ed25519PublicKey, Ed25519SecretKey, base64_decode, base64_encode};

/// A 32-byte key that encrypts ferrolm pickles. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct PickleKey(Zeroizing<[u8; 32]>);

impl PickleKey {
    /// A new random key from the operating system's generator.
    pub fn new() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut crate::rng::os_rng(), bytes.as_mut());
        Self(bytes)
    }

    /// Wraps 32 bytes the application already keeps (in a platform keystore, say).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Default for PickleKey {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for PickleKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PickleKey(<redacted>)")
    }
}

/// Why a pickle could not be written or read. No variant carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    /// The pickle is not valid base64.
    #[error("the pickle is not valid base64")]
    Base64,
    /// The pickle is too short to hold its envelope.
    #[error("the pickle is too short")]
    TooShort,
    /// The envelope's MAC does not match: wrong pickle key, or the pickle was altered.
    #[error("the pickle's MAC does not match: wrong pickle key or a corrupted pickle")]
    Mac,
    /// The ciphertext decrypted to invalid padding (after a valid MAC: a broken writer).
    #[error("the pickle's ciphertext has invalid padding")]
    Padding,
    /// The pickle's format version is not one this library reads.
    #[error("unsupported pickle version {0}")]
    UnknownVersion(u32),
    /// The pickle holds a different kind of object than the one being restored.
    #[error("the pickle holds a {got}, not a {expected}")]
    WrongKind {
        /// The kind being restored.
        expected: &'static str,
        /// The kind the pickle holds.
        got: &'static str,
    },
    /// The decrypted contents are malformed (truncated, trailing bytes, impossible values).
    #[error("the pickle's contents are malformed: {0}")]
    Corrupted(&'static str),
    /// The state cannot be expressed in libolm's format.
    #[error("libolm's pickle format cannot hold this state: {0}")]
    UnsupportedByLibolm(&'static str),
}

impl From<CodecError> for PickleError {
    fn from(error: CodecError) -> Self {
        match error {
            CodecError::Truncated => Self::Corrupted("truncated"),
            CodecError::VarintOverflow | CodecError::UnsupportedWireType(_) => Self::Corrupted("bad encoding"),
        }
    }
}

impl From<CipherError> for PickleError {
    fn from(error: CipherError) -> Self {
        match error {
            CipherError::Mac => Self::Mac,
            CipherError::Padding => Self::Padding,
        }
    }
}

/// The kinds of object a ferrolm pickle can hold (the envelope's kind byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PickleKind {
    Account = 1,
    Session = 2,
    GroupSession = 3,
    InboundGroupSession = 4,
    PkDecryption = 5,
}

impl PickleKind {
    fn name(byte: u8) -> &'static str {
        match byte {
            1 => "account",
            2 => "session",
            3 => "group session",
            4 => "inbound group session",
            5 => "PK decryption key",
            _ => "unknown object",
        }
    }
}

/// ferrolm's layout for an Ed25519 key pair: form (0 = seed, 1 = libolm's expanded key),
/// the secret, then the public key (kept, so restoring does not multiply).
pub(crate) fn write_ed25519(w: &mut PickleWriter, pair: &Ed25519Keypair) {
    match pair.secret_key().seed() {
        Some(seed) => {
            w.u8(0);
            w.bytes(seed.as_ref());
        }
        None => {
            w.u8(1);
            w.bytes(pair.secret_key().to_expanded().as_ref());
        }
    }
    w.bytes(pair.public_key().as_bytes());
}

pub(crate) fn read_ed25519(r: &mut PickleReader<'_>) -> Result<Ed25519Keypair, PickleError> {
    let secret = match r.u8()? {
        0 => Ed25519SecretKey::from_seed(&*r.secret::<32>()?),
        1 => Ed25519SecretKey::from_expanded(&*r.secret::<64>()?),
        _ => return Err(PickleError::Corrupted("unknown Ed25519 key form")),
    };
    Ed25519Keypair::from_pickled(secret, read_ed25519_public(r)?).ok_or(MISMATCHED_KEY)
}

/// A pickle's public key is not its secret key's.
pub(crate) const MISMATCHED_KEY: PickleError = PickleError::Corrupted("a public key does not match its secret key");

pub(crate) fn read_ed25519_public(r: &mut PickleReader<'_>) -> Result<Ed25519PublicKey, PickleError> {
    Ed25519PublicKey::from_bytes(&r.array()?).map_err(|_| PickleError::Corrupted("invalid Ed25519 key"))
}

const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 2 + NONCE_LEN;
const FERROLM_INFO: &[u8] = b"ferrolm pickle v1";

fn envelope_keys(key: &PickleKey, nonce: &[u8]) -> CipherKeys {
    CipherKeys::derive_salted(nonce, key.as_bytes(), FERROLM_INFO)
}

/// Encrypts `plaintext` into ferrolm's envelope and encodes it as base64.
pub(crate) fn seal(kind: PickleKind, plaintext: &[u8], key: &PickleKey, rng: &mut impl CryptoRngCore) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let keys = envelope_keys(key, &nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16 + MAC_LEN);
    out.push(ENVELOPE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&nonce);
    keys.encrypt_into(plaintext, &mut out);
    let mac = keys.mac(&out);
    out.extend_from_slice(&mac);
    base64_encode(out)
}

/// Checks and decrypts ferrolm's envelope.
pub(crate) fn open(kind: PickleKind, pickle: &str, key: &PickleKey) -> Result<Zeroizing<Vec<u8>>, PickleError> {
    let bytes = base64_decode(pickle).map_err(|_| PickleError::Base64)?;
    if bytes.len() < HEADER_LEN + 16 + MAC_LEN {
        return Err(PickleError::TooShort);
    }
    let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    let (header, ciphertext) = body.split_at(HEADER_LEN);
    let (version_and_kind, nonce) = header.split_at(2);
    let keys = envelope_keys(key, nonce);
    keys.verify_mac(body, tag)?;
    match version_and_kind {
        [ENVELOPE_VERSION, k] if *k == kind as u8 => {}
        [ENVELOPE_VERSION, k] => {
            return Err(PickleError::WrongKind { expected: PickleKind::name(kind as u8), got: PickleKind::name(*k) });
        }
        [v, _] => return Err(PickleError::UnknownVersion(u32::from(*v))),
        _ => return Err(PickleError::TooShort),
    }
    Ok(Zeroizing::new(keys.decrypt(ciphertext)?))
}

const LIBOLM_INFO: &[u8] = b"Pickle";
const LIBOLM_MAC_LEN: usize = 8;

/// Encrypts a libolm pickle: AES-256-CBC, then an 8-byte truncated HMAC of the ciphertext.
pub(crate) fn seal_libolm(plaintext: &[u8], key: &[u8]) -> String {
    let keys = CipherKeys::derive(key, LIBOLM_INFO);
    let mut out = keys.encrypt(plaintext);
    let mac = keys.mac(&out);
    out.extend_from_slice(mac.get(..LIBOLM_MAC_LEN).unwrap_or_default());
    base64_encode(out)
}

/// Checks and decrypts a libolm pickle.
pub(crate) fn open_libolm(pickle: &str, key: &[u8]) -> Result<Zeroizing<Vec<u8>>, PickleError> {
    let bytes = base64_decode(pickle).map_err(|_| PickleError::Base64)?;
    if bytes.len() < 16 + LIBOLM_MAC_LEN {
        return Err(PickleError::TooShort);
    }
    let (ciphertext, tag) = bytes.split_at(bytes.len() - LIBOLM_MAC_LEN);
    let keys = CipherKeys::derive(key, LIBOLM_INFO);
    keys.verify_mac(ciphertext, tag)?;
    Ok(Zeroizing::new(keys.decrypt(ciphertext)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_refuse_tampering() {
        let key = PickleKey::from_bytes([3; 32]);
        let sealed = seal(PickleKind::Session, b"state", &key, &mut crate::rng::os_rng());
        assert_eq!(open(PickleKind::Session, &sealed, &key).unwrap().as_slice(), b"state");
        // A second pickle of the same state under the same key looks unrelated (fresh nonce).
        let again = seal(PickleKind::Session, b"state", &key, &mut crate::rng::os_rng());
        assert_ne!(sealed, again);

        assert_eq!(open(PickleKind::Session, &sealed, &PickleKey::from_bytes([4; 32])), Err(PickleError::Mac));
        assert!(matches!(open(PickleKind::Account, &sealed, &key), Err(PickleError::WrongKind { .. })));
        let mut bytes = base64_decode(&sealed).unwrap();
        for i in [0, 1, 2, 40, bytes.len() - 1] {
            bytes[i] ^= 1;
            assert!(open(PickleKind::Session, &base64_encode(&bytes), &key).is_err(), "flip at {i}");
            bytes[i] ^= 1;
        }
        assert_eq!(open(PickleKind::Session, "AAAA", &key), Err(PickleError::TooShort));
        assert_eq!(open(PickleKind::Session, "not base64!", &key), Err(PickleError::Base64));
    }

    #[test]
    fn libolm_envelopes_take_keys_of_any_length() {
        for key in [&b""[..], b"k", &[9u8; 32], &[1u8; 200]] {
            let sealed = seal_libolm(b"libolm state", key);
            assert_eq!(open_libolm(&sealed, key).unwrap().as_slice(), b"libolm state");
            assert_eq!(open_libolm(&sealed, b"other"), Err(PickleError::Mac));
        }
    }

    /// Re-seals a libolm pickle with the 32 bytes at `offset` replaced by another valid public
    /// key (a valid MAC, as if made by someone holding the pickle key).
    fn substituted(pickle: &str, key: &[u8], offset: usize, other: &[u8; 32]) -> String {
        let mut plaintext = open_libolm(pickle, key).unwrap().to_vec();
        plaintext[offset..offset + 32].copy_from_slice(other);
        seal_libolm(&plaintext, key)
    }

    #[test]
    fn public_keys_that_do_not_match_their_secret_are_refused() {
        let other_ed25519 = *Ed25519Keypair::new().public_key().as_bytes();
        let other_curve25519 = crate::types::Curve25519SecretKey::new().public_key().to_bytes();

        let account = crate::olm::Account::new();
        let pickle = account.to_libolm_pickle(b"k").unwrap();
        // version (4) ‖ Ed25519 public (32) ‖ Ed25519 secret (64) ‖ Curve25519 public (32) ‖ …
        for (offset, other) in [(4, &other_ed25519), (4 + 32 + 64, &other_curve25519)] {
            let error =
                crate::olm::Account::from_libolm_pickle(&substituted(&pickle, b"k", offset, other), b"k").unwrap_err();
            assert_eq!(error, MISMATCHED_KEY, "offset {offset}");
        }
        // The same account's ferrolm pickle, seed form: tag (1) after the version, seed (32),
        // then the public key.
        let key = PickleKey::from_bytes([1; 32]);
        let mut plaintext = open(PickleKind::Account, &account.pickle(&key), &key).unwrap().to_vec();
        plaintext[2 + 32..2 + 64].copy_from_slice(&other_ed25519);
        let resealed = seal(PickleKind::Account, &plaintext, &key, &mut crate::rng::os_rng());
        assert_eq!(crate::olm::Account::from_pickle(&resealed, &key).unwrap_err(), MISMATCHED_KEY);

        let group = crate::megolm::GroupSession::new(crate::megolm::SessionConfig::version_1());
        let pickle = group.to_libolm_pickle(b"k").unwrap();
        // version (4) ‖ ratchet (128) ‖ counter (4) ‖ Ed25519 public (32) ‖ secret (64)
        let tampered = substituted(&pickle, b"k", 4 + 128 + 4, &other_ed25519);
        assert_eq!(crate::megolm::GroupSession::from_libolm_pickle(&tampered, b"k").unwrap_err(), MISMATCHED_KEY);

        let backup = crate::pk::PkDecryption::new();
        let pickle = backup.to_libolm_pickle(b"k");
        let tampered = substituted(&pickle, b"k", 4, &other_curve25519);
        assert_eq!(crate::pk::PkDecryption::from_libolm_pickle(&tampered, b"k").unwrap_err(), MISMATCHED_KEY);
    }

    #[test]
    fn debug_never_reveals_the_key() {
        let key = PickleKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{key:?}"), "PickleKey(<redacted>)");
    }
}
