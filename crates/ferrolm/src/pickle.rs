//! Pickles: the encrypted, serialized state of accounts and sessions.
//!
//! Two formats exist side by side:
//!
//! - **ferrolm's own** (`pickle` / `from_pickle` in base64, `pickle_bytes` /
//!   `from_pickle_bytes` as raw bytes), for storing state: a versioned envelope
//!   `version (1) ‖ kind (1) ‖ nonce (32) ‖ ciphertext ‖ HMAC-SHA-256 (32)`. The version byte
//!   is read first and selects the key derivation: a fresh random nonce salts
//!   `HKDF-SHA-256(pickle key, "ferrolm pickle v2")`, which yields the AES-256-CBC key, the
//!   HMAC key and the IV, so no two pickles share keys or IV even under the same pickle key.
//!   The MAC covers the caller's *associated data* (length-prefixed; not stored) and
//!   everything before the MAC, and is checked in constant time before anything is
//!   decrypted: a store that passes a row's table and key as associated data detects a pickle
//!   moved to another row. The kind byte stops an account pickle being read as a session,
//!   and vice versa. Version 1 envelopes (`"ferrolm pickle v1"`, no associated data) are
//!   still read.
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
//!
//! // Bound to where it is stored: the same bytes under another row key are refused.
//! let stored = account.pickle_bytes(&key, b"account/row-1");
//! assert!(Account::from_pickle_bytes(&stored, &key, b"account/row-1").is_ok());
//! assert!(Account::from_pickle_bytes(&stored, &key, b"account/row-2").is_err());
//! # Ok::<(), ferrolm::pickle::PickleError>(())
//! ```

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::codec::{CodecError, PickleReader, PickleWriter};
use crate::crypto::{CipherError, CipherKeys};
use crate::types::{Ed25519Keypair, Ed25519PublicKey, Ed25519SecretKey, base64_decode, base64_encode};

/// A 32-byte key that encrypts ferrolm pickles. Zeroized on drop; `Debug` is redacted. Kept
/// on the heap, so moving a `PickleKey` copies a pointer, not the key.
#[derive(Clone)]
pub struct PickleKey(Box<Zeroizing<[u8; 32]>>);

impl PickleKey {
    /// A new random key from the operating system's generator.
    pub fn new() -> Self {
        let mut bytes = Box::new(Zeroizing::new([0u8; 32]));
        rand_core::RngCore::fill_bytes(&mut crate::rng::os_rng(), bytes.as_mut().as_mut());
        Self(bytes)
    }

    /// Wraps 32 bytes the application already keeps (in a platform keystore, say). The
    /// argument itself is a copy on the caller's stack, which the caller must wipe.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Box::new(Zeroizing::new(bytes)))
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
    /// The envelope's MAC does not match: wrong pickle key, an altered pickle, or associated
    /// data other than the pickle was sealed with.
    #[error("the pickle's MAC does not match: wrong pickle key, other associated data or a corrupted pickle")]
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

/// The envelope version written today: keys from `"ferrolm pickle v2"`, associated data
/// under the MAC.
const ENVELOPE_VERSION: u8 = 2;
/// The first envelope (keys from `"ferrolm pickle v1"`, no associated data): still read.
const ENVELOPE_VERSION_1: u8 = 1;
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
const HEADER_LEN: usize = 2 + NONCE_LEN;
const MIN_LEN: usize = HEADER_LEN + 16 + MAC_LEN;

/// The HKDF info string of each envelope version. The version byte is read first and picks
/// the derivation, so a future version can change it without being confused with this one.
fn envelope_info(version: u8) -> Option<&'static [u8]> {
    match version {
        ENVELOPE_VERSION_1 => Some(INFO_V1),
        ENVELOPE_VERSION => Some(INFO_V2),
        _ => None,
    }
}
const INFO_V1: &[u8] = b"ferrolm pickle v1";
const INFO_V2: &[u8] = b"ferrolm pickle v2";

/// The length prefix that makes `associated data ‖ envelope` unambiguous under the MAC.
fn associated_data_len(associated_data: &[u8]) -> [u8; 8] {
    (associated_data.len() as u64).to_be_bytes()
}

/// Encrypts `plaintext` into ferrolm's envelope (version 2) and encodes it as base64.
#[cfg(any(test, fuzzing))]
pub(crate) fn seal(kind: PickleKind, plaintext: &[u8], key: &PickleKey, rng: &mut impl CryptoRngCore) -> String {
    base64_encode(seal_bytes(kind, plaintext, key, &[], rng))
}

/// Encrypts `plaintext` into ferrolm's envelope (version 2), binding `associated_data` into
/// the MAC: `version ‖ kind ‖ nonce ‖ AES-256-CBC ciphertext ‖ HMAC-SHA-256`, where the MAC
/// covers `len(associated_data) (u64 BE) ‖ associated_data ‖ version ‖ kind ‖ nonce ‖
/// ciphertext`. The associated data itself is not stored.
pub(crate) fn seal_bytes(
    kind: PickleKind,
    plaintext: &[u8],
    key: &PickleKey,
    associated_data: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let keys = CipherKeys::derive_salted(&nonce, key.as_bytes(), INFO_V2);
    let mut out = Vec::with_capacity(HEADER_LEN + crate::crypto::padded_len(plaintext.len()) + MAC_LEN);
    out.push(ENVELOPE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&nonce);
    keys.encrypt_into(plaintext, &mut out);
    let mac = keys.mac_parts(&[&associated_data_len(associated_data), associated_data, &out]);
    out.extend_from_slice(&mac);
    out
}

/// Decodes a base64 pickle and checks and decrypts ferrolm's envelope (no associated data).
#[cfg(any(test, fuzzing))]
pub(crate) fn open(kind: PickleKind, pickle: &str, key: &PickleKey) -> Result<Zeroizing<Vec<u8>>, PickleError> {
    open_bytes(kind, &decode_base64(pickle)?, key, &[])
}

/// A base64 pickle's bytes.
pub(crate) fn decode_base64(pickle: &str) -> Result<Vec<u8>, PickleError> {
    base64_decode(pickle).map_err(|_| PickleError::Base64)
}

/// Checks and decrypts ferrolm's envelope, version 1 or 2.
///
/// The version byte is read before any key is derived and selects the derivation; an unknown
/// version is refused without touching the key. The MAC (over the associated data too, for
/// version 2) is checked in constant time before anything is decrypted, and only then the
/// kind byte, so a wrong key, an altered pickle and other associated data all give
/// [`PickleError::Mac`]. Version 1 envelopes carry no associated data: opening one with
/// non-empty associated data fails with [`PickleError::Mac`] too.
pub(crate) fn open_bytes(
    kind: PickleKind,
    bytes: &[u8],
    key: &PickleKey,
    associated_data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PickleError> {
    let (Some(&version), true) = (bytes.first(), bytes.len() >= MIN_LEN) else { return Err(PickleError::TooShort) };
    let info = envelope_info(version).ok_or(PickleError::UnknownVersion(u32::from(version)))?;
    let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    let (header, ciphertext) = body.split_at(HEADER_LEN);
    let (version_and_kind, nonce) = header.split_at(2);
    let keys = CipherKeys::derive_salted(nonce, key.as_bytes(), info);
    if version == ENVELOPE_VERSION_1 {
        if !associated_data.is_empty() {
            return Err(PickleError::Mac);
        }
        keys.verify_mac(body, tag)?;
    } else {
        keys.verify_mac_parts(&[&associated_data_len(associated_data), associated_data, body], tag)?;
    }
    match version_and_kind {
        [_, k] if *k == kind as u8 => {}
        [_, k] => {
            return Err(PickleError::WrongKind { expected: PickleKind::name(kind as u8), got: PickleKind::name(*k) });
        }
        _ => return Err(PickleError::TooShort),
    }
    Ok(Zeroizing::new(keys.decrypt(ciphertext)?))
}

/// The unencrypted state of an object, for a store that encrypts at rest itself:
/// `kind (1) ‖ the plaintext a ferrolm pickle would hold`.
pub(crate) fn state_bytes(kind: PickleKind, plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(1 + plaintext.len()));
    out.push(kind as u8);
    out.extend_from_slice(plaintext);
    out
}

/// The plaintext inside [`state_bytes`]' output, once its kind byte is checked.
pub(crate) fn open_state(kind: PickleKind, state: &[u8]) -> Result<&[u8], PickleError> {
    match state.split_first() {
        Some((k, plaintext)) if *k == kind as u8 => Ok(plaintext),
        Some((k, _)) => {
            Err(PickleError::WrongKind { expected: PickleKind::name(kind as u8), got: PickleKind::name(*k) })
        }
        None => Err(PickleError::TooShort),
    }
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

    /// The version 1 envelope as earlier releases wrote it.
    fn seal_v1(kind: PickleKind, plaintext: &[u8], key: &PickleKey) -> String {
        let nonce = [7u8; NONCE_LEN];
        let keys = CipherKeys::derive_salted(&nonce, key.as_bytes(), INFO_V1);
        let mut out = vec![ENVELOPE_VERSION_1, kind as u8];
        out.extend_from_slice(&nonce);
        keys.encrypt_into(plaintext, &mut out);
        let mac = keys.mac(&out);
        out.extend_from_slice(&mac);
        base64_encode(out)
    }

    #[test]
    fn version_1_envelopes_are_still_read_but_carry_no_associated_data() {
        let key = PickleKey::from_bytes([5; 32]);
        let old = seal_v1(PickleKind::Session, b"old state", &key);
        assert_eq!(open(PickleKind::Session, &old, &key).unwrap().as_slice(), b"old state");
        let bytes = base64_decode(&old).unwrap();
        assert_eq!(open_bytes(PickleKind::Session, &bytes, &key, b"row").unwrap_err(), PickleError::Mac);
        // New pickles are version 2.
        let new = seal_bytes(PickleKind::Session, b"state", &key, &[], &mut crate::rng::os_rng());
        assert_eq!(new[0], ENVELOPE_VERSION);
    }

    #[test]
    fn associated_data_is_bound_into_the_mac() {
        let key = PickleKey::from_bytes([6; 32]);
        let sealed = seal_bytes(PickleKind::Account, b"state", &key, b"accounts/1", &mut crate::rng::os_rng());
        assert_eq!(open_bytes(PickleKind::Account, &sealed, &key, b"accounts/1").unwrap().as_slice(), b"state");
        for other in [&b""[..], b"accounts/2", b"accounts/1\0", b"accounts/"] {
            assert_eq!(open_bytes(PickleKind::Account, &sealed, &key, other).unwrap_err(), PickleError::Mac);
        }
        // The length prefix: moving a byte between the associated data and the envelope is
        // not possible without breaking the MAC.
        let empty = seal_bytes(PickleKind::Account, b"state", &key, &[], &mut crate::rng::os_rng());
        assert_eq!(open_bytes(PickleKind::Account, &empty, &key, &[]).unwrap().as_slice(), b"state");
        assert_eq!(open_bytes(PickleKind::Account, &empty, &key, &[0]).unwrap_err(), PickleError::Mac);
    }

    #[test]
    fn the_version_is_read_before_any_key_is_derived() {
        let key = PickleKey::from_bytes([8; 32]);
        let mut sealed = seal_bytes(PickleKind::Account, b"state", &key, &[], &mut crate::rng::os_rng());
        for version in [0u8, 3, 255] {
            sealed[0] = version;
            assert_eq!(
                open_bytes(PickleKind::Account, &sealed, &key, &[]).unwrap_err(),
                PickleError::UnknownVersion(u32::from(version))
            );
        }
        // A known version byte with the other derivation fails the MAC.
        sealed[0] = ENVELOPE_VERSION_1;
        assert_eq!(open_bytes(PickleKind::Account, &sealed, &key, &[]).unwrap_err(), PickleError::Mac);
        assert_eq!(open_bytes(PickleKind::Account, &[], &key, &[]).unwrap_err(), PickleError::TooShort);
        assert_eq!(open_bytes(PickleKind::Account, &[2, 1, 0], &key, &[]).unwrap_err(), PickleError::TooShort);
        assert_eq!(
            open_bytes(PickleKind::Account, &[9; MIN_LEN], &key, &[]).unwrap_err(),
            PickleError::UnknownVersion(9)
        );
    }

    #[test]
    fn every_type_pickles_to_bytes_bound_to_its_row() {
        let key = PickleKey::from_bytes([9; 32]);
        let account = crate::olm::Account::new();
        let bytes = account.pickle_bytes(&key, b"a");
        assert_eq!(
            crate::olm::Account::from_pickle_bytes(&bytes, &key, b"a").unwrap().identity_keys(),
            account.identity_keys()
        );
        assert_eq!(crate::olm::Account::from_pickle_bytes(&bytes, &key, b"b").unwrap_err(), PickleError::Mac);

        let mut bob = crate::olm::Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        let session =
            account.create_outbound_session(crate::olm::SessionConfig::version_2(), bob.curve25519_key(), otk).unwrap();
        let bytes = session.pickle_bytes(&key, b"s");
        assert_eq!(
            crate::olm::Session::from_pickle_bytes(&bytes, &key, b"s").unwrap().session_id(),
            session.session_id()
        );
        assert_eq!(crate::olm::Session::from_pickle_bytes(&bytes, &key, b"t").unwrap_err(), PickleError::Mac);
        // An account pickle is not a session, even under the right associated data.
        assert!(matches!(
            crate::olm::Session::from_pickle_bytes(&account.pickle_bytes(&key, b"s"), &key, b"s"),
            Err(PickleError::WrongKind { .. })
        ));

        let group = crate::megolm::GroupSession::new(crate::megolm::SessionConfig::version_1());
        let bytes = group.pickle_bytes(&key, b"g");
        let restored = crate::megolm::GroupSession::from_pickle_bytes(&bytes, &key, b"g").unwrap();
        assert_eq!(restored.session_id(), group.session_id());
        assert_eq!(crate::megolm::GroupSession::from_pickle_bytes(&bytes, &key, b"h").unwrap_err(), PickleError::Mac);

        let inbound =
            crate::megolm::InboundGroupSession::new(&group.session_key(), crate::megolm::SessionConfig::version_1());
        let bytes = inbound.pickle_bytes(&key, b"i");
        let restored = crate::megolm::InboundGroupSession::from_pickle_bytes(&bytes, &key, b"i").unwrap();
        assert_eq!(restored.session_id(), inbound.session_id());
        assert_eq!(
            crate::megolm::InboundGroupSession::from_pickle_bytes(&bytes, &key, b"j").unwrap_err(),
            PickleError::Mac
        );

        let pk = crate::pk::PkDecryption::new();
        let bytes = pk.pickle_bytes(&key, b"p");
        assert_eq!(
            crate::pk::PkDecryption::from_pickle_bytes(&bytes, &key, b"p").unwrap().public_key(),
            pk.public_key()
        );
        assert_eq!(crate::pk::PkDecryption::from_pickle_bytes(&bytes, &key, b"q").unwrap_err(), PickleError::Mac);
        // The base64 form is the bytes form with empty associated data.
        assert!(
            crate::pk::PkDecryption::from_pickle_bytes(&base64_decode(pk.pickle(&key)).unwrap(), &key, &[]).is_ok()
        );
    }

    #[test]
    fn unencrypted_state_round_trips_and_checks_its_kind() {
        let account = crate::olm::Account::new();
        let state = account.to_unencrypted_state();
        assert_eq!(
            crate::olm::Account::from_unencrypted_state(&state).unwrap().identity_keys(),
            account.identity_keys()
        );
        // The state is the pickle's plaintext behind a kind byte.
        let key = PickleKey::from_bytes([2; 32]);
        let opened = open_bytes(PickleKind::Account, &account.pickle_bytes(&key, &[]), &key, &[]).unwrap();
        assert_eq!(&state[1..], opened.as_slice());
        assert!(matches!(crate::olm::Session::from_unencrypted_state(&state), Err(PickleError::WrongKind { .. })));
        assert_eq!(crate::olm::Account::from_unencrypted_state(&[]).unwrap_err(), PickleError::TooShort);
        assert!(crate::olm::Account::from_unencrypted_state(&state[..state.len() - 1]).is_err());

        let pk = crate::pk::PkDecryption::new();
        let restored = crate::pk::PkDecryption::from_unencrypted_state(&pk.to_unencrypted_state()).unwrap();
        assert_eq!(restored.public_key(), pk.public_key());

        let mut group = crate::megolm::GroupSession::new(crate::megolm::SessionConfig::version_1());
        let mut inbound =
            crate::megolm::InboundGroupSession::new(&group.session_key(), crate::megolm::SessionConfig::version_1());
        let restored = crate::megolm::GroupSession::from_unencrypted_state(&group.to_unencrypted_state()).unwrap();
        assert_eq!(restored.session_id(), group.session_id());
        let message = group.encrypt(b"hi");
        let mut restored =
            crate::megolm::InboundGroupSession::from_unencrypted_state(&inbound.to_unencrypted_state()).unwrap();
        assert_eq!(restored.decrypt(&message).unwrap().plaintext, inbound.decrypt(&message).unwrap().plaintext);
        assert!(matches!(
            crate::megolm::InboundGroupSession::from_unencrypted_state(&group.to_unencrypted_state()),
            Err(PickleError::WrongKind { .. })
        ));

        let mut bob = crate::olm::Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        let session =
            account.create_outbound_session(crate::olm::SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
        let restored = crate::olm::Session::from_unencrypted_state(&session.to_unencrypted_state()).unwrap();
        assert_eq!(restored.session_id(), session.session_id());
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
