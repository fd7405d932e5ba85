//! A recipient's side of a Megolm session.

use subtle::ConstantTimeEq;

use super::group_session::{MEGOLM_KEYS_INFO, read_ratchet, write_ratchet};
use super::message::MegolmMessage;
use super::ratchet::Ratchet;
use super::{
    DecryptedMessage, DecryptionError, ExportedSessionKey, SessionConfig, SessionId, SessionKey, SessionOrdering,
};
use crate::codec::{PickleReader, PickleWriter};
use crate::crypto::{CipherError, CipherKeys};
use crate::pickle::{PickleError, PickleKey, PickleKind, read_ed25519_public};
use crate::types::{Ed25519PublicKey, verify_batch};

/// An inbound Megolm session: decrypts a room's messages from one sender's session.
///
/// It keeps the earliest ratchet it knows (so older messages still decrypt) and a cached later
/// one (so decrypting messages in order does not re-hash from the start each time). The cache
/// is only an optimisation: every verdict is the same with or without it, and the `&self`
/// methods ([`decrypt_readonly`](Self::decrypt_readonly),
/// [`decrypt_batch_readonly`](Self::decrypt_batch_readonly)) decrypt without touching it, for a
/// store that shares sessions under a read lock.
///
/// ```
/// use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig, SessionOrdering};
/// let mut outbound = GroupSession::new(SessionConfig::version_1());
/// let early = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
/// outbound.encrypt(b"first");
/// let late = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
/// assert_eq!(late.first_known_index(), 1);
/// assert_eq!(early.compare(&late), SessionOrdering::Better);
/// // A key exported at index 1 can be imported elsewhere (no signature: unverified).
/// let exported = early.export_at(1).unwrap();
/// let imported = InboundGroupSession::import(&exported, SessionConfig::version_1());
/// assert!(!imported.is_verified());
/// assert_eq!(imported.compare(&late), SessionOrdering::Equal);
/// ```
#[derive(Clone)]
pub struct InboundGroupSession {
    // Boxed, so that moving the session does not leave copies of the ratchets behind.
    initial: Box<Ratchet>,
    latest: Box<Ratchet>,
    signing_key: Ed25519PublicKey,
    verified: bool,
    config: SessionConfig,
}

/// The results of a batch, and the ratchet of its highest-indexed message that decrypted
/// (what `decrypt` would have cached).
type BatchOutcome = (Vec<Result<DecryptedMessage, DecryptionError>>, Option<Ratchet>);

impl InboundGroupSession {
    /// A session from a signed session key (an `m.room_key`), whose signature was checked
    /// when it was decoded. The session counts as verified: the key came from its creator.
    pub fn new(key: &SessionKey, config: SessionConfig) -> Self {
        Self::from_parts(key.ratchet.clone(), key.signing_key, true, config)
    }

    /// A session from an exported key (forwarded keys, backups, key export files). There is
    /// no signature, so the session is not verified until merged with a verified one.
    pub fn import(key: &ExportedSessionKey, config: SessionConfig) -> Self {
        Self::from_parts(key.ratchet.clone(), key.signing_key, false, config)
    }

    fn from_parts(ratchet: Box<Ratchet>, signing_key: Ed25519PublicKey, verified: bool, config: SessionConfig) -> Self {
        Self { initial: ratchet.clone(), latest: ratchet, signing_key, verified, config }
    }

    /// The session id: the sender session's signing key.
    pub fn session_id(&self) -> SessionId {
        SessionId::from(self.signing_key)
    }

    /// The sender session's Ed25519 signing key.
    pub fn signing_key(&self) -> Ed25519PublicKey {
        self.signing_key
    }

    /// The first message index this session can decrypt.
    pub fn first_known_index(&self) -> u32 {
        self.initial.index()
    }

    /// Whether the session comes from a signed session key (directly or by merging), rather
    /// than only from an unsigned export.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// The session's configuration.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// The ratchet at `index`, if this session knows it: from the cached later ratchet when it
    /// is not past `index`, otherwise from the earliest one.
    fn ratchet_at(&self, index: u32) -> Option<Ratchet> {
        if index < self.initial.index() {
            return None;
        }
        let mut ratchet = if self.latest.index() <= index { (*self.latest).clone() } else { (*self.initial).clone() };
        ratchet.advance_to(index);
        Some(ratchet)
    }

    /// Decrypts a message: checks its signature, then its MAC, then decrypts. On success the
    /// session caches the message's ratchet if it is past the cached one, so that the next
    /// messages in order cost one step each; on failure nothing changes.
    pub fn decrypt(&mut self, message: &MegolmMessage) -> Result<DecryptedMessage, DecryptionError> {
        let (decrypted, ratchet) = self.decrypt_inner(message)?;
        self.cache(ratchet);
        Ok(decrypted)
    }

    /// [`decrypt`](Self::decrypt) without caching: the same result for every message, through
    /// a shared reference. It walks the ratchet from the nearest point the session keeps (the
    /// cached ratchet, or the earliest one for older messages), so a session that is never
    /// cached into pays up to 255 hashes per ratchet part for each message.
    pub fn decrypt_readonly(&self, message: &MegolmMessage) -> Result<DecryptedMessage, DecryptionError> {
        self.decrypt_inner(message).map(|(decrypted, _)| decrypted)
    }

    fn decrypt_inner(&self, message: &MegolmMessage) -> Result<(DecryptedMessage, Ratchet), DecryptionError> {
        self.check_version(message)?;
        self.signing_key
            .verify(message.signed_part(), message.signature())
            .map_err(|_| DecryptionError::InvalidSignature)?;
        let ratchet = self.ratchet_at(message.message_index()).ok_or(self.unknown_index(message))?;
        let plaintext = decrypt_with(&ratchet, message)?;
        Ok((DecryptedMessage { plaintext, message_index: message.message_index() }, ratchet))
    }

    /// Decrypts a batch of messages of this session, such as a timeline being back-filled,
    /// faster than one by one: the signatures are checked together (see below) and the
    /// ratchet is walked forward once, in index order, instead of once per message.
    ///
    /// Returns one result per message, in the input order, and each is exactly what
    /// [`decrypt`](Self::decrypt) returns for that message: a forged signature, a wrong MAC or
    /// an index before the first known one is reported for that message alone, whatever else
    /// the batch holds. The session ends in the state decrypting the messages one by one would
    /// leave it in (only messages that decrypted move the cache). The signatures are verified
    /// strictly, as one by one, from tables of the session's key built once for the batch
    /// (SECURITY.md, "Batched signature verification").
    ///
    /// ```
    /// use ferrolm::megolm::{GroupSession, InboundGroupSession, MegolmMessage, SessionConfig, DecryptionError};
    /// let mut outbound = GroupSession::new(SessionConfig::version_1());
    /// let mut inbound = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
    /// let mut messages: Vec<MegolmMessage> = (0..10).map(|i| outbound.encrypt(format!("{i}").as_bytes())).collect();
    /// let impostor = GroupSession::new(SessionConfig::version_1()).encrypt(b"forged");
    /// messages[3] = impostor;
    /// let results = inbound.decrypt_batch(&messages);
    /// assert_eq!(results[3], Err(DecryptionError::InvalidSignature));
    /// assert_eq!(results[9].as_ref().unwrap().plaintext, b"9");
    /// ```
    pub fn decrypt_batch(&mut self, messages: &[MegolmMessage]) -> Vec<Result<DecryptedMessage, DecryptionError>> {
        let (results, best) = self.decrypt_batch_inner(messages);
        if let Some(ratchet) = best {
            self.cache(ratchet);
        }
        results
    }

    /// [`decrypt_batch`](Self::decrypt_batch) without caching, through a shared reference: the
    /// same results.
    pub fn decrypt_batch_readonly(&self, messages: &[MegolmMessage]) -> Vec<Result<DecryptedMessage, DecryptionError>> {
        self.decrypt_batch_inner(messages).0
    }

    fn decrypt_batch_inner(&self, messages: &[MegolmMessage]) -> BatchOutcome {
        let mut results: Vec<Result<DecryptedMessage, DecryptionError>> = messages
            .iter()
            .map(|m| Err(self.check_version(m).err().unwrap_or(DecryptionError::InvalidSignature)))
            .collect();

        let candidates: Vec<usize> =
            (0..messages.len()).filter(|&i| messages.get(i).is_some_and(|m| self.check_version(m).is_ok())).collect();
        let items: Vec<(&[u8], &crate::types::Ed25519Signature)> =
            candidates.iter().filter_map(|&i| messages.get(i)).map(|m| (m.signed_part(), m.signature())).collect();
        let verdicts = verify_batch(&self.signing_key, &items);

        let mut signed: Vec<usize> =
            candidates.into_iter().zip(verdicts).filter(|(_, ok)| *ok).map(|(i, _)| i).collect();
        signed.sort_by_key(|&i| messages.get(i).map(MegolmMessage::message_index));

        // The walk reuses each message's ratchet for the next, whether or not that message
        // decrypted (the ratchet at an index does not depend on the message); only a message
        // that decrypted may become the cached ratchet, as with `decrypt`.
        let mut walker: Option<Ratchet> = None;
        let mut best: Option<Ratchet> = None;
        for i in signed {
            let (Some(message), Some(result)) = (messages.get(i), results.get_mut(i)) else { continue };
            let index = message.message_index();
            let ratchet = match walker.take() {
                Some(mut ratchet) if ratchet.index() <= index => {
                    ratchet.advance_to(index);
                    Some(ratchet)
                }
                _ => self.ratchet_at(index),
            };
            let Some(ratchet) = ratchet else {
                *result = Err(self.unknown_index(message));
                continue;
            };
            *result =
                decrypt_with(&ratchet, message).map(|plaintext| DecryptedMessage { plaintext, message_index: index });
            if result.is_ok() {
                best = Some(ratchet.clone());
            }
            walker = Some(ratchet);
        }
        (results, best)
    }

    fn check_version(&self, message: &MegolmMessage) -> Result<(), DecryptionError> {
        let expected = self.config.message_version();
        if message.version() == expected {
            Ok(())
        } else {
            Err(DecryptionError::VersionMismatch { expected, got: message.version() })
        }
    }

    fn unknown_index(&self, message: &MegolmMessage) -> DecryptionError {
        DecryptionError::UnknownMessageIndex { first_known: self.initial.index(), requested: message.message_index() }
    }

    /// Keeps `ratchet` as the cached later ratchet if it is further along (in place: the old
    /// one is zeroized as it is overwritten).
    fn cache(&mut self, ratchet: Ratchet) {
        if ratchet.index() > self.latest.index() {
            *self.latest = ratchet;
        }
    }

    /// The session key at `index`, if this session knows that index.
    pub fn export_at(&self, index: u32) -> Option<ExportedSessionKey> {
        self.ratchet_at(index).map(|ratchet| ExportedSessionKey::new(&ratchet, self.signing_key))
    }

    /// The session key at the first known index.
    pub fn export_at_first_known_index(&self) -> ExportedSessionKey {
        ExportedSessionKey::new(&self.initial, self.signing_key)
    }

    /// Forgets every message key before `index` (the session can no longer decrypt them).
    /// Returns false, changing nothing, if `index` is before the first known index.
    pub fn advance_to(&mut self, index: u32) -> bool {
        match self.ratchet_at(index) {
            Some(ratchet) => {
                if self.latest.index() < index {
                    *self.latest = ratchet.clone();
                }
                *self.initial = ratchet;
                true
            }
            None => false,
        }
    }

    /// Whether the two sessions are the same ratchet: the same configuration and signing key,
    /// and the earlier one, advanced to the other's first index, equals it (compared in
    /// constant time).
    fn connected(&self, other: &Self) -> bool {
        if self.config != other.config || self.signing_key != other.signing_key {
            return false;
        }
        let (earlier, later) =
            if self.first_known_index() <= other.first_known_index() { (self, other) } else { (other, self) };
        earlier.ratchet_at(later.first_known_index()).is_some_and(|r| bool::from(r.ct_eq(&later.initial)))
    }

    /// How this session relates to `other` (another session with the same session id).
    pub fn compare(&self, other: &Self) -> SessionOrdering {
        if !self.connected(other) {
            return SessionOrdering::Unconnected;
        }
        match self.first_known_index().cmp(&other.first_known_index()) {
            core::cmp::Ordering::Less => SessionOrdering::Better,
            core::cmp::Ordering::Equal => SessionOrdering::Equal,
            core::cmp::Ordering::Greater => SessionOrdering::Worse,
        }
    }

    /// Merges two connected sessions into one with the earlier first index, verified if
    /// either is. `None` if they are not connected.
    ///
    /// "Connected" proves that the earlier ratchet advances to the later one, and no more:
    /// advancing re-derives the lower ratchet parts from the higher ones at each turnover, so
    /// an export whose lower parts were altered can still connect when the other session
    /// starts past the next turnover. Such a merged session cannot decrypt the altered range
    /// (the MACs fail: nothing decrypts wrongly), but it denies those messages and carries
    /// the other session's verified flag. Prefer keys from verified sources for the early
    /// range, as the Matrix specification's forwarding rules require.
    pub fn merge(&self, other: &Self) -> Option<Self> {
        let best = match self.compare(other) {
            SessionOrdering::Equal | SessionOrdering::Better => self,
            SessionOrdering::Worse => other,
            SessionOrdering::Unconnected => return None,
        };
        Some(Self::from_parts(best.initial.clone(), self.signing_key, self.verified || other.verified, self.config))
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
            PickleKind::InboundGroupSession,
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
        write_ratchet(&mut w, &self.initial);
        write_ratchet(&mut w, &self.latest);
        w.bytes(self.signing_key.as_bytes());
        w.bool(self.verified);
        w.finish()
    }

    /// Restores a session from [`InboundGroupSession::pickle`]'s output.
    pub fn from_pickle(pickle: &str, key: &PickleKey) -> Result<Self, PickleError> {
        Self::from_pickle_bytes(&crate::pickle::decode_base64(pickle)?, key, &[])
    }

    /// Restores a session from [`Self::pickle_bytes`]'s output, given the same associated data.
    pub fn from_pickle_bytes(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
        Self::decode(&crate::pickle::open_bytes(PickleKind::InboundGroupSession, pickle, key, associated_data)?)
    }

    fn decode(bytes: &[u8]) -> Result<Self, PickleError> {
        let mut r = PickleReader::new(bytes);
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(PickleError::UnknownVersion(u32::from(version)));
        }
        let config = SessionConfig::from_version(r.u8()?).ok_or(PickleError::Corrupted("unknown session config"))?;
        Self::read_body(&mut r, config, true)
    }

    /// The session's state, unencrypted, for a store that encrypts at rest itself (ferrolm-store
    /// seals it with XChaCha20-Poly1305, bound to its row). **Secret**: never write it anywhere
    /// unencrypted; use [`Self::pickle_bytes`] when in doubt. Zeroized on drop.
    pub fn to_unencrypted_state(&self) -> zeroize::Zeroizing<Vec<u8>> {
        crate::pickle::state_bytes(PickleKind::InboundGroupSession, &self.encode())
    }

    /// Restores a session from [`Self::to_unencrypted_state`]'s output. The input must come from
    /// an authenticated source (a store's AEAD): it is decoded as ferrolm's own pickle contents,
    /// checked for well-formedness but not for having been written by ferrolm.
    pub fn from_unencrypted_state(state: &[u8]) -> Result<Self, PickleError> {
        Self::decode(crate::pickle::open_state(PickleKind::InboundGroupSession, state)?)
    }

    /// Encrypts the session into libolm's inbound group session pickle (version 2).
    pub fn to_libolm_pickle(&self, key: &[u8]) -> Result<String, PickleError> {
        if self.config != SessionConfig::version_1() {
            return Err(PickleError::UnsupportedByLibolm("only version 1 sessions exist in libolm"));
        }
        let mut w = PickleWriter::new();
        w.u32(LIBOLM_VERSION);
        write_ratchet(&mut w, &self.initial);
        write_ratchet(&mut w, &self.latest);
        w.bytes(self.signing_key.as_bytes());
        w.bool(self.verified);
        Ok(crate::pickle::seal_libolm(&w.finish(), key))
    }

    /// Restores a session from libolm's inbound group session pickle (versions 1 and 2;
    /// version 1 sessions, which predate unsigned imports, count as verified).
    pub fn from_libolm_pickle(pickle: &str, key: &[u8]) -> Result<Self, PickleError> {
        let bytes = crate::pickle::open_libolm(pickle, key)?;
        let mut r = PickleReader::new(&bytes);
        match r.u32()? {
            1 => Self::read_libolm_body(&mut r, false),
            LIBOLM_VERSION => Self::read_libolm_body(&mut r, true),
            other => Err(PickleError::UnknownVersion(other)),
        }
    }

    /// initial ratchet ‖ latest ratchet ‖ signing key ‖ [verified flag]: libolm's layout,
    /// which ferrolm's format shares.
    ///
    /// The cached ratchet is taken as written: a ferrolm pickle is sealed with an
    /// authenticated cipher under the application's pickle key, so its contents are the state
    /// ferrolm wrote (whoever holds the pickle key can write any state anyway). A cached
    /// ratchet that does not descend from the earliest one could only make decryption fail (a
    /// wrong message key fails the MAC). Input from elsewhere goes through
    /// [`Self::read_libolm_body`].
    fn read_body(r: &mut PickleReader<'_>, config: SessionConfig, has_flag: bool) -> Result<Self, PickleError> {
        let initial = read_ratchet(r)?;
        let latest = read_ratchet(r)?;
        let signing_key = read_ed25519_public(r)?;
        let verified = if has_flag { r.bool()? } else { true };
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        if latest.index() < initial.index() {
            return Err(CACHED_RATCHET_MISMATCH);
        }
        Ok(Self { initial, latest, signing_key, verified, config })
    }

    /// [`Self::read_body`] for a libolm pickle, which comes from another program: the later
    /// ratchet must descend from the earlier one, or decryption would use keys the sender
    /// never made. Checking it walks the earlier ratchet forward (up to 255 hashes per part).
    fn read_libolm_body(r: &mut PickleReader<'_>, has_flag: bool) -> Result<Self, PickleError> {
        let session = Self::read_body(r, SessionConfig::version_1(), has_flag)?;
        let mut check = (*session.initial).clone();
        check.advance_to(session.latest.index());
        if bool::from(check.ct_eq(&session.latest)) { Ok(session) } else { Err(CACHED_RATCHET_MISMATCH) }
    }
}

const CACHED_RATCHET_MISMATCH: PickleError =
    PickleError::Corrupted("the cached ratchet does not match the initial one");

fn decrypt_with(ratchet: &Ratchet, message: &MegolmMessage) -> Result<Vec<u8>, DecryptionError> {
    let keys = CipherKeys::derive(ratchet.to_bytes().as_ref(), MEGOLM_KEYS_INFO);
    keys.verify_mac(message.mac_input(), message.mac()).map_err(|_| DecryptionError::InvalidMac)?;
    keys.decrypt(message.ciphertext()).map_err(|error| match error {
        CipherError::Mac => DecryptionError::InvalidMac,
        CipherError::Padding => DecryptionError::InvalidPadding,
    })
}

const FORMAT_VERSION: u8 = 1;
const LIBOLM_VERSION: u32 = 2;

impl core::fmt::Debug for InboundGroupSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundGroupSession")
            .field("session_id", &self.session_id())
            .field("first_known_index", &self.first_known_index())
            .field("verified", &self.verified)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::megolm::GroupSession;

    /// A message the session's key signed, but whose MAC is wrong (a broken sender).
    #[test]
    fn a_signed_message_with_a_bad_mac_is_an_invalid_mac() {
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        let mut inbound = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
        let message = outbound.encrypt(b"hello");
        let mut bytes = message.signed_part().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // the MAC's last byte
        let signature = outbound.signing_key_for_tests().sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        let broken = MegolmMessage::from_bytes(&bytes).unwrap();
        assert_eq!(inbound.decrypt(&broken), Err(DecryptionError::InvalidMac));
        assert_eq!(inbound.decrypt_batch(&[broken, message.clone()])[0], Err(DecryptionError::InvalidMac));
        assert_eq!(inbound.decrypt(&message).unwrap().plaintext, b"hello");
    }

    /// libolm pickles come from another program: a cached ratchet that does not descend from
    /// the initial one is refused. ferrolm's own pickles are authenticated and taken as
    /// written (no walk), except for an impossible order of indices.
    #[test]
    fn libolm_pickles_with_an_unrelated_cached_ratchet_are_refused() {
        let outbound = GroupSession::new(SessionConfig::version_1());
        let other = GroupSession::new(SessionConfig::version_1());
        let mut session = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
        session.latest = InboundGroupSession::new(&other.session_key(), SessionConfig::version_1()).initial;
        session.latest.advance_to(5);
        let pickle = session.to_libolm_pickle(b"key").unwrap();
        assert!(matches!(InboundGroupSession::from_libolm_pickle(&pickle, b"key"), Err(PickleError::Corrupted(_))));

        let key = PickleKey::from_bytes([1; 32]);
        let restored = InboundGroupSession::from_pickle(&session.pickle(&key), &key).unwrap();
        assert!(bool::from(restored.latest.ct_eq(&session.latest)), "taken as written");

        // A descendant passes the libolm check.
        let mut consistent = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
        consistent.latest.advance_to(300);
        let pickle = consistent.to_libolm_pickle(b"key").unwrap();
        let restored = InboundGroupSession::from_libolm_pickle(&pickle, b"key").unwrap();
        assert_eq!(restored.latest.index(), 300);

        // A cached ratchet before the initial one is refused in both formats.
        let mut backwards = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
        backwards.initial.advance_to(10);
        let pickle = backwards.pickle(&key);
        assert!(matches!(InboundGroupSession::from_pickle(&pickle, &key), Err(PickleError::Corrupted(_))));
        let pickle = backwards.to_libolm_pickle(b"key").unwrap();
        assert!(matches!(InboundGroupSession::from_libolm_pickle(&pickle, b"key"), Err(PickleError::Corrupted(_))));
    }
}
