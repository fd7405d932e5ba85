//! The sender's side of a Megolm session.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::message::MegolmMessage;
use super::ratchet::{RATCHET_LENGTH, Ratchet};
use super::{SessionConfig, SessionId, SessionKey};
use crate::codec::{PickleReader, PickleWriter};
use crate::crypto::CipherKeys;
use crate::pickle::{
    MISMATCHED_KEY, PickleError, PickleKey, PickleKind, read_ed25519, read_ed25519_public, write_ed25519,
};
use crate::types::{Ed25519Keypair, Ed25519SecretKey};

pub(crate) const MEGOLM_KEYS_INFO: &[u8] = b"MEGOLM_KEYS";

/// An outbound Megolm session: the sender's ratchet and signing key for a room.
///
/// Share [`GroupSession::session_key`] with every member (over Olm), then encrypt. Rotate the
/// session (create a new one) when members leave, after a number of messages or a period of
/// time, as the room's `m.room.encryption` settings say.
///
/// ```
/// use ferrolm::megolm::{GroupSession, SessionConfig};
/// let mut session = GroupSession::new(SessionConfig::version_1());
/// assert_eq!(session.message_index(), 0);
/// let message = session.encrypt(b"hi");
/// assert_eq!(message.message_index(), 0);
/// assert_eq!(session.message_index(), 1);
/// ```
#[derive(Clone)]
pub struct GroupSession {
    // Boxed, so that moving the session does not leave copies of the ratchet behind.
    ratchet: Box<Ratchet>,
    signing_key: Ed25519Keypair,
    config: SessionConfig,
}

impl GroupSession {
    /// A new session with a random ratchet and signing key.
    pub fn new(config: SessionConfig) -> Self {
        Self::new_inner(config, &mut crate::rng::os_rng())
    }

    /// [`GroupSession::new`] with the caller's randomness: 128 bytes of ratchet, then a 32-byte
    /// Ed25519 seed (libolm's `olm_init_outbound_group_session`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn new_with_rng(config: SessionConfig, rng: &mut impl CryptoRngCore) -> Self {
        Self::new_inner(config, rng)
    }

    fn new_inner(config: SessionConfig, rng: &mut impl CryptoRngCore) -> Self {
        // One draw for everything (one system call with the OS generator), in libolm's
        // layout: the 128-byte ratchet, then the 32-byte Ed25519 seed.
        let mut random = Zeroizing::new([0u8; RATCHET_LENGTH + 32]);
        rng.fill_bytes(random.as_mut());
        let (mut ratchet, mut seed) = (Zeroizing::new([0u8; RATCHET_LENGTH]), Zeroizing::new([0u8; 32]));
        for (to, from) in ratchet.iter_mut().chain(seed.iter_mut()).zip(random.iter()) {
            *to = *from;
        }
        Self {
            ratchet: Box::new(Ratchet::from_bytes(&ratchet, 0)),
            signing_key: Ed25519Keypair::from_seed(&seed),
            config,
        }
    }

    /// The session id: the signing key.
    pub fn session_id(&self) -> SessionId {
        SessionId::from(self.signing_key.public_key())
    }

    /// The index the next message will have.
    pub fn message_index(&self) -> u32 {
        self.ratchet.index()
    }

    /// The session's configuration.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// The signed session key at the current index, for `m.room_key`.
    pub fn session_key(&self) -> SessionKey {
        SessionKey::new(&self.ratchet, &self.signing_key)
    }

    /// The signing key, for tests that must craft signed but otherwise broken messages.
    #[cfg(test)]
    pub(crate) fn signing_key_for_tests(&self) -> &Ed25519Keypair {
        &self.signing_key
    }

    /// Encrypts `plaintext` and advances the ratchet.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> MegolmMessage {
        let keys = CipherKeys::derive(self.ratchet.to_bytes().as_ref(), MEGOLM_KEYS_INFO);
        let message = MegolmMessage::encrypt(
            self.config.message_version(),
            self.ratchet.index(),
            &keys,
            &self.signing_key,
            plaintext,
        );
        self.ratchet.advance();
        message
    }

    /// Encrypts the session into ferrolm's pickle format under `key`.
    pub fn pickle(&self, key: &PickleKey) -> String {
        crate::types::base64_encode(self.pickle_bytes(key, &[]))
    }

    /// Encrypts the session into ferrolm's pickle format under `key`, as raw bytes, with
    /// `associated_data` bound into the MAC (not stored): [`Self::from_pickle_bytes`] must be
    /// given the same associated data. A store passes the row's table and key, so that a
    /// pickle moved to another row is refused.
    pub fn pickle_bytes(&self, key: &PickleKey, associated_data: &[u8]) -> Vec<u8> {
        crate::pickle::seal_bytes(
            PickleKind::GroupSession,
            &self.encode(),
            key,
            associated_data,
            &mut crate::rng::os_rng(),
        )
    }

    fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut w = PickleWriter::new();
        w.u8(FORMAT_VERSION);
        w.u8(self.config.version());
        write_ratchet(&mut w, &self.ratchet);
        write_ed25519(&mut w, &self.signing_key);
        w.finish()
    }

    /// Restores a session from [`GroupSession::pickle`]'s output.
    pub fn from_pickle(pickle: &str, key: &PickleKey) -> Result<Self, PickleError> {
        Self::from_pickle_bytes(&crate::pickle::decode_base64(pickle)?, key, &[])
    }

    /// Restores a session from [`Self::pickle_bytes`]'s output, given the same associated data.
    pub fn from_pickle_bytes(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
        Self::decode(&crate::pickle::open_bytes(PickleKind::GroupSession, pickle, key, associated_data)?)
    }

    fn decode(bytes: &[u8]) -> Result<Self, PickleError> {
        let mut r = PickleReader::new(bytes);
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(PickleError::UnknownVersion(u32::from(version)));
        }
        let config = SessionConfig::from_version(r.u8()?).ok_or(PickleError::Corrupted("unknown session config"))?;
        let ratchet = read_ratchet(&mut r)?;
        let signing_key = read_ed25519(&mut r)?;
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        Ok(Self { ratchet, signing_key, config })
    }

    /// The session's state, unencrypted, for a store that encrypts at rest itself (ferrolm-store
    /// seals it with XChaCha20-Poly1305, bound to its row). **Secret**: never write it anywhere
    /// unencrypted; use [`Self::pickle_bytes`] when in doubt. Zeroized on drop.
    pub fn to_unencrypted_state(&self) -> zeroize::Zeroizing<Vec<u8>> {
        crate::pickle::state_bytes(PickleKind::GroupSession, &self.encode())
    }

    /// Restores a session from [`Self::to_unencrypted_state`]'s output. The input must come from
    /// an authenticated source (a store's AEAD): it is decoded as ferrolm's own pickle contents,
    /// checked for well-formedness but not for having been written by ferrolm.
    pub fn from_unencrypted_state(state: &[u8]) -> Result<Self, PickleError> {
        Self::decode(crate::pickle::open_state(PickleKind::GroupSession, state)?)
    }

    /// Encrypts the session into libolm's outbound group session pickle (version 1).
    pub fn to_libolm_pickle(&self, key: &[u8]) -> Result<String, PickleError> {
        if self.config != SessionConfig::version_1() {
            return Err(PickleError::UnsupportedByLibolm("only version 1 sessions exist in libolm"));
        }
        let mut w = PickleWriter::new();
        w.u32(LIBOLM_VERSION);
        write_ratchet(&mut w, &self.ratchet);
        w.bytes(self.signing_key.public_key().as_bytes());
        w.bytes(self.signing_key.secret_key().to_expanded().as_ref());
        Ok(crate::pickle::seal_libolm(&w.finish(), key))
    }

    /// Restores a session from libolm's outbound group session pickle (version 1).
    pub fn from_libolm_pickle(pickle: &str, key: &[u8]) -> Result<Self, PickleError> {
        let bytes = crate::pickle::open_libolm(pickle, key)?;
        let mut r = PickleReader::new(&bytes);
        let version = r.u32()?;
        if version != LIBOLM_VERSION {
            return Err(PickleError::UnknownVersion(version));
        }
        let ratchet = read_ratchet(&mut r)?;
        let public = read_ed25519_public(&mut r)?;
        let secret = Ed25519SecretKey::from_expanded(&*r.secret::<64>()?);
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        let signing_key = Ed25519Keypair::from_pickled(secret, public).ok_or(MISMATCHED_KEY)?;
        Ok(Self { ratchet, signing_key, config: SessionConfig::version_1() })
    }
}

const FORMAT_VERSION: u8 = 1;
const LIBOLM_VERSION: u32 = 1;

/// libolm's ratchet layout, shared by ferrolm's format: 128 bytes, then the counter.
pub(crate) fn write_ratchet(w: &mut PickleWriter, ratchet: &Ratchet) {
    w.bytes(ratchet.to_bytes().as_ref());
    w.u32(ratchet.index());
}

pub(crate) fn read_ratchet(r: &mut PickleReader<'_>) -> Result<Box<Ratchet>, PickleError> {
    let bytes = r.secret::<RATCHET_LENGTH>()?;
    Ok(Box::new(Ratchet::from_bytes(&bytes, r.u32()?)))
}

impl core::fmt::Debug for GroupSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupSession")
            .field("session_id", &self.session_id())
            .field("message_index", &self.message_index())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
