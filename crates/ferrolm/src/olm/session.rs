//! An Olm session: the double ratchet between two devices.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::codec::{PickleReader, PickleWriter};
use crate::crypto::CipherError;
use crate::pickle::{PickleError, PickleKey, PickleKind};
use crate::secret_list::SecretList;
use crate::types::{Curve25519Keypair, Curve25519PublicKey, Curve25519SecretKey};

use super::messages::{Message, OlmMessage, PreKeyMessage, VERSION_FULL_MAC, VERSION_TRUNCATED_MAC};
use super::ratchet::{ChainKey, MessageKey, RootKey, derive_initial, ratchet_step};
use super::{DecryptionError, SessionConfig, SessionId, SessionKeys};

/// How many receiving chains a session keeps (older ones are forgotten).
pub const MAX_RECEIVER_CHAINS: usize = 5;
/// How many skipped message keys each receiving chain keeps for out-of-order messages.
pub const MAX_SKIPPED_MESSAGE_KEYS: usize = 40;
/// The largest forward jump in a chain a message may ask for; larger gaps are refused
/// (deriving the keys would cost a sender-chosen amount of work).
pub const MAX_MESSAGE_GAP: u64 = 2000;
/// libolm keeps this many skipped message keys per session, across all chains.
const LIBOLM_MAX_SKIPPED_KEYS: usize = 40;

/// Our ratchet key. Its public key is computed at most once per chain and then kept, so that
/// encrypting never multiplies: at creation for chains we start while encrypting, at the
/// first encryption for the initiator's first chain (creating a session does not need it).
#[derive(Clone)]
struct RatchetKey {
    secret: Curve25519SecretKey,
    public: Option<Curve25519PublicKey>,
}

impl RatchetKey {
    fn public(&mut self) -> Curve25519PublicKey {
        let Self { secret, public } = self;
        *public.get_or_insert_with(|| secret.public_key())
    }

    /// The public key without caching it (for pickling through `&self`).
    fn public_now(&self) -> Curve25519PublicKey {
        self.public.unwrap_or_else(|| self.secret.public_key())
    }
}

impl From<Curve25519Keypair> for RatchetKey {
    fn from(pair: Curve25519Keypair) -> Self {
        Self { secret: pair.secret, public: Some(pair.public) }
    }
}

/// Our sending side of the ratchet. Its secrets are boxed (as in [`ReceiverChain`] and
/// [`Session`]): the session's own bytes hold only pointers and public keys, so moving a session
/// never copies a secret.
#[derive(Clone)]
enum SendingChain {
    /// Our current ratchet key and chain key.
    Active { ratchet: RatchetKey, chain_key: Box<ChainKey> },
    /// We have received a new ratchet key and not sent since: the next message starts a new
    /// sending chain against `their_ratchet_key` (a key already checked not to be of small
    /// order, so the exchange with it is contributory for every private key).
    Pending { their_ratchet_key: Curve25519PublicKey },
}

#[derive(Clone)]
struct ReceiverChain {
    ratchet_key: Curve25519PublicKey,
    chain_key: Box<ChainKey>,
    /// Keys of messages skipped over, oldest first: at most [`MAX_SKIPPED_MESSAGE_KEYS`], in a
    /// block allocated once at that size and zeroized before it is freed.
    skipped: SecretList<MessageKey>,
}

impl ReceiverChain {
    fn new(ratchet_key: Curve25519PublicKey, chain_key: ChainKey) -> Self {
        Self {
            ratchet_key,
            chain_key: Box::new(chain_key),
            skipped: SecretList::with_capacity(MAX_SKIPPED_MESSAGE_KEYS),
        }
    }

    /// Decrypts a message of this chain. Nothing changes unless the message authenticates.
    fn decrypt(&mut self, message: &Message) -> Result<Vec<u8>, DecryptionError> {
        let index = message.chain_index();
        let current = u64::from(self.chain_key.index);
        if index < current {
            let position = self
                .skipped
                .iter()
                .position(|key| u64::from(key.index) == index)
                .ok_or(DecryptionError::MissingMessageKey(index))?;
            let plaintext = self.skipped.get(position).map(|key| decrypt_with(key, message));
            let plaintext = plaintext.ok_or(DecryptionError::MissingMessageKey(index))??;
            self.skipped.remove(position);
            return Ok(plaintext);
        }
        let gap = index - current;
        if gap > MAX_MESSAGE_GAP || index > u64::from(u32::MAX) {
            return Err(DecryptionError::TooBigMessageGap { gap, max: MAX_MESSAGE_GAP });
        }
        let mut chain_key = ChainKey::clone(&self.chain_key);
        let mut skipped = SecretList::with_capacity((gap as usize).min(MAX_SKIPPED_MESSAGE_KEYS));
        while u64::from(chain_key.index) < index {
            if index - u64::from(chain_key.index) > MAX_SKIPPED_MESSAGE_KEYS as u64 {
                chain_key.advance(); // this key could not be kept anyway
            } else {
                skipped.push_evicting_oldest(chain_key.next_message_key());
            }
        }
        let key = chain_key.next_message_key();
        let plaintext = decrypt_with(&key, message)?;
        *self.chain_key = chain_key;
        self.skipped.append_evicting_oldest(&mut skipped);
        Ok(plaintext)
    }
}

fn decrypt_with(key: &MessageKey, message: &Message) -> Result<Vec<u8>, DecryptionError> {
    let keys = key.cipher_keys();
    keys.verify_mac(message.authenticated(), message.mac()).map_err(|_| DecryptionError::InvalidMac)?;
    keys.decrypt(message.ciphertext()).map_err(|error| match error {
        CipherError::Mac => DecryptionError::InvalidMac,
        CipherError::Padding => DecryptionError::InvalidPadding,
    })
}

/// An Olm session with another device.
///
/// Create one with [`Account::create_outbound_session`](super::Account::create_outbound_session)
/// or [`Account::create_inbound_session`](super::Account::create_inbound_session). Until it
/// has received a message from the other side, [`Session::encrypt`] produces pre-key
/// messages; afterwards, normal messages.
///
/// A failed [`Session::decrypt`] changes nothing: the session stays exactly as it was.
/// Persist the session after every successful encryption or decryption
/// ([`Session::pickle`]).
///
/// ```
/// use ferrolm::olm::{Account, OlmMessage, SessionConfig};
/// let alice = Account::new();
/// let mut bob = Account::new();
/// bob.generate_one_time_keys(1);
/// let otk = *bob.one_time_keys().values().next().unwrap();
/// let mut outbound = alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)?;
/// let OlmMessage::PreKey(m) = outbound.encrypt(b"first") else { unreachable!() };
/// let mut inbound = bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &m)?.session;
/// assert_eq!(outbound.session_id(), inbound.session_id());
/// assert!(inbound.matches(&m));
/// let reply = inbound.encrypt(b"second");
/// assert_eq!(outbound.decrypt(&reply)?, b"second");
/// assert!(outbound.has_received_message());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Session {
    config: SessionConfig,
    keys: SessionKeys,
    /// `keys.session_id()`, kept: a machine looks sessions up by id many times per message.
    id: SessionId,
    received_message: bool,
    root_key: Box<RootKey>,
    sending: SendingChain,
    /// Newest first.
    receiving: VecDeque<ReceiverChain>,
}

impl Session {
    /// Alice's side, from the 3DH secret and her first ratchet key.
    pub(crate) fn new_outbound(
        config: SessionConfig,
        keys: SessionKeys,
        shared: &[u8; 96],
        ratchet: Curve25519SecretKey,
    ) -> Self {
        let (root_key, chain_key) = derive_initial(shared);
        Self {
            config,
            keys,
            id: keys.session_id(),
            received_message: false,
            root_key: Box::new(root_key),
            sending: SendingChain::Active {
                // The public key now: the first message needs it and so does every pickle
                // (a store saves a new session before it encrypts), which cannot cache it.
                ratchet: RatchetKey::from(Curve25519Keypair::from_secret(ratchet)),
                chain_key: Box::new(chain_key),
            },
            receiving: VecDeque::new(),
        }
    }

    /// Bob's side, from the 3DH secret and Alice's first ratchet key (checked by the caller
    /// not to be of small order).
    pub(crate) fn new_inbound(
        config: SessionConfig,
        keys: SessionKeys,
        shared: &[u8; 96],
        their_ratchet_key: Curve25519PublicKey,
    ) -> Self {
        let (root_key, chain_key) = derive_initial(shared);
        Self {
            config,
            keys,
            id: keys.session_id(),
            received_message: false,
            root_key: Box::new(root_key),
            sending: SendingChain::Pending { their_ratchet_key },
            receiving: VecDeque::from([ReceiverChain::new(their_ratchet_key, chain_key)]),
        }
    }

    /// The session id: the same on both sides, derived from the three keys that created it.
    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// The keys that created the session.
    pub fn session_keys(&self) -> SessionKeys {
        self.keys
    }

    /// The session's configuration (message format).
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Whether a message from the other side has been decrypted. Until then, encryption
    /// produces pre-key messages.
    pub fn has_received_message(&self) -> bool {
        self.received_message
    }

    /// Whether `message` belongs to this session: it was created from the same three keys.
    /// Use it to find the existing session for an incoming pre-key message.
    pub fn matches(&self, message: &PreKeyMessage) -> bool {
        message.session_keys() == self.keys
    }

    /// Encrypts `plaintext`.
    ///
    /// Within a sending chain this costs two HMACs, an HKDF, AES-CBC and one more HMAC: no
    /// scalar multiplication, because the ratchet's public key is computed once per chain and
    /// kept beside its secret. The first message after receiving a new ratchet key from the
    /// other side starts a new chain, which generates a key pair and does one Diffie-Hellman
    /// exchange (the ratchet step itself, at the point where libolm does it); the
    /// initiator's very first message computes its first ratchet public key.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> OlmMessage {
        self.encrypt_inner(plaintext, &mut crate::rng::os_rng())
    }

    /// [`Session::encrypt`] with the caller's randomness: 32 bytes when a new sending chain
    /// starts, none otherwise (libolm's `olm_encrypt_random_length`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn encrypt_with_rng(&mut self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> OlmMessage {
        self.encrypt_inner(plaintext, rng)
    }

    /// How many bytes of randomness the next encryption consumes: 32 when it starts a new
    /// sending chain, otherwise 0.
    pub fn encrypt_random_length(&self) -> usize {
        match self.sending {
            SendingChain::Active { .. } => 0,
            SendingChain::Pending { .. } => 32,
        }
    }

    fn encrypt_inner(&mut self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> OlmMessage {
        let (ratchet_key, message_key) = match &mut self.sending {
            SendingChain::Active { ratchet, chain_key } => (ratchet.public(), chain_key.next_message_key()),
            SendingChain::Pending { their_ratchet_key } => {
                let their_ratchet_key = *their_ratchet_key;
                let ratchet = Curve25519Keypair::generate(rng);
                // Contributory: `their_ratchet_key` was checked not to be of small order.
                let shared = ratchet.secret.diffie_hellman_unchecked(&their_ratchet_key);
                let (root_key, mut chain_key) = ratchet_step(&self.root_key, &shared);
                let message_key = chain_key.next_message_key();
                let public = ratchet.public;
                *self.root_key = root_key;
                self.sending = SendingChain::Active { ratchet: ratchet.into(), chain_key: Box::new(chain_key) };
                (public, message_key)
            }
        };
        let keys = message_key.cipher_keys();
        let message =
            Message::encrypt(self.config.message_version(), &ratchet_key, message_key.index, &keys, plaintext);
        if self.received_message {
            OlmMessage::Normal(message)
        } else {
            OlmMessage::PreKey(PreKeyMessage::new(self.keys, message))
        }
    }

    /// Decrypts a message from the other side.
    ///
    /// On any error the session is unchanged. Each failure has its own variant: a wrong
    /// version for this session's configuration, a bad MAC, a message whose key was already
    /// used or dropped, a gap larger than [`MAX_MESSAGE_GAP`], or a ratchet key the protocol
    /// does not allow yet.
    pub fn decrypt(&mut self, message: &OlmMessage) -> Result<Vec<u8>, DecryptionError> {
        self.decrypt_message(message.message())
    }

    pub(crate) fn decrypt_message(&mut self, message: &Message) -> Result<Vec<u8>, DecryptionError> {
        let expected = self.config.message_version();
        if message.version() != expected {
            return Err(DecryptionError::VersionMismatch { expected, got: message.version() });
        }
        let ratchet_key = message.ratchet_key();
        let plaintext = if let Some(chain) = self.receiving.iter_mut().find(|c| c.ratchet_key == ratchet_key) {
            chain.decrypt(message)?
        } else {
            // A new chain: the other side has stepped the ratchet against our sending key.
            let SendingChain::Active { ratchet, .. } = &self.sending else {
                // They cannot step again before we have sent on a new chain (libolm refuses too).
                return Err(DecryptionError::UnexpectedRatchetKey);
            };
            let shared =
                ratchet.secret.diffie_hellman(&ratchet_key).map_err(|_| DecryptionError::NonContributoryKey)?;
            let (root_key, chain_key) = ratchet_step(&self.root_key, &shared);
            let mut chain = ReceiverChain::new(ratchet_key, chain_key);
            let plaintext = chain.decrypt(message)?;
            *self.root_key = root_key;
            self.receiving.push_front(chain);
            self.receiving.truncate(MAX_RECEIVER_CHAINS);
            self.sending = SendingChain::Pending { their_ratchet_key: ratchet_key };
            plaintext
        };
        self.received_message = true;
        Ok(plaintext)
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
        crate::pickle::seal_bytes(PickleKind::Session, &self.encode(), key, associated_data, &mut crate::rng::os_rng())
    }

    /// Restores a session from [`Session::pickle`]'s output.
    pub fn from_pickle(pickle: &str, key: &PickleKey) -> Result<Self, PickleError> {
        Self::from_pickle_bytes(&crate::pickle::decode_base64(pickle)?, key, &[])
    }

    /// Restores a session from [`Self::pickle_bytes`]'s output, given the same associated data.
    pub fn from_pickle_bytes(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
        Self::decode(&crate::pickle::open_bytes(PickleKind::Session, pickle, key, associated_data)?)
    }

    /// The session's state, unencrypted, for a store that encrypts at rest itself (ferrolm-store
    /// seals it with XChaCha20-Poly1305, bound to its row). **Secret**: never write it anywhere
    /// unencrypted; use [`Self::pickle_bytes`] when in doubt. Zeroized on drop.
    pub fn to_unencrypted_state(&self) -> zeroize::Zeroizing<Vec<u8>> {
        crate::pickle::state_bytes(PickleKind::Session, &self.encode())
    }

    /// Restores a session from [`Self::to_unencrypted_state`]'s output. The input must come from
    /// an authenticated source (a store's AEAD): it is decoded as ferrolm's own pickle contents,
    /// checked for well-formedness but not for having been written by ferrolm.
    pub fn from_unencrypted_state(state: &[u8]) -> Result<Self, PickleError> {
        Self::decode(crate::pickle::open_state(PickleKind::Session, state)?)
    }

    /// Encrypts the session into libolm's pickle format (version 1), readable by libolm's
    /// `olm_unpickle_session` and vodozemac's `Session::from_libolm_pickle`.
    ///
    /// libolm keeps 40 skipped message keys per session, where ferrolm keeps 40 per chain:
    /// the 40 newest are written. Version 2 sessions have no libolm form.
    pub fn to_libolm_pickle(&self, key: &[u8]) -> Result<String, PickleError> {
        Ok(crate::pickle::seal_libolm(&self.encode_libolm()?, key))
    }

    /// Restores a session from a libolm pickle (versions 1 and `0x80000001`).
    pub fn from_libolm_pickle(pickle: &str, key: &[u8]) -> Result<Self, PickleError> {
        Self::decode_libolm(&crate::pickle::open_libolm(pickle, key)?)
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let sending = match self.sending {
            SendingChain::Active { .. } => 1 + 32 + 32 + CHAIN_KEY_LEN,
            SendingChain::Pending { .. } => 1 + 32,
        };
        let receiving: usize = self.receiving.iter().map(|c| 32 + CHAIN_KEY_LEN + 1 + (4 + 32) * c.skipped.len()).sum();
        let capacity = 1 + 1 + 96 + 1 + 32 + sending + 1 + receiving;
        let mut w = PickleWriter::with_capacity(capacity);
        w.u8(FORMAT_VERSION);
        w.u8(self.config.version());
        write_keys(&mut w, &self.keys);
        w.bool(self.received_message);
        w.bytes(&self.root_key.0);
        match &self.sending {
            SendingChain::Active { ratchet, chain_key } => {
                w.u8(1);
                w.bytes(ratchet.public_now().as_bytes());
                w.bytes(ratchet.secret.to_bytes().as_ref());
                write_chain_key(&mut w, chain_key);
            }
            SendingChain::Pending { their_ratchet_key } => {
                w.u8(0);
                w.bytes(their_ratchet_key.as_bytes());
            }
        }
        w.u8(self.receiving.len() as u8);
        for chain in &self.receiving {
            w.bytes(chain.ratchet_key.as_bytes());
            write_chain_key(&mut w, &chain.chain_key);
            w.u8(chain.skipped.len() as u8);
            for key in chain.skipped.iter() {
                w.u32(key.index);
                w.bytes(&key.key);
            }
        }
        debug_assert_eq!(w.len(), capacity);
        w.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Self, PickleError> {
        let mut r = PickleReader::new(bytes);
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(PickleError::UnknownVersion(u32::from(version)));
        }
        let config = SessionConfig::from_version(r.u8()?).ok_or(PickleError::Corrupted("unknown session config"))?;
        let keys = read_keys(&mut r)?;
        let received_message = r.bool()?;
        let root_key = Box::new(RootKey(*r.secret::<32>()?));
        let sending = match r.u8()? {
            1 => {
                let public = r.array::<32>()?;
                let secret = r.secret::<32>()?;
                SendingChain::Active {
                    ratchet: Curve25519Keypair::from_pickled(&secret, public).into(),
                    chain_key: Box::new(read_chain_key(&mut r)?),
                }
            }
            0 => SendingChain::Pending { their_ratchet_key: Curve25519PublicKey::from_bytes(r.array()?) },
            _ => return Err(PickleError::Corrupted("unknown sending chain state")),
        };
        let count = usize::from(r.u8()?);
        if count > MAX_RECEIVER_CHAINS {
            return Err(PickleError::Corrupted("too many receiver chains"));
        }
        let mut receiving = VecDeque::with_capacity(count);
        for _ in 0..count {
            let mut chain = ReceiverChain::new(Curve25519PublicKey::from_bytes(r.array()?), read_chain_key(&mut r)?);
            let skipped = usize::from(r.u8()?);
            if skipped > MAX_SKIPPED_MESSAGE_KEYS {
                return Err(PickleError::Corrupted("too many skipped message keys"));
            }
            for _ in 0..skipped {
                let index = r.u32()?;
                chain.skipped.push_evicting_oldest(MessageKey { index, key: *r.secret::<32>()? });
            }
            receiving.push_back(chain);
        }
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        Self::checked(Self { config, keys, id: keys.session_id(), received_message, root_key, sending, receiving })
    }

    /// Checks the invariants a pickle cannot be trusted to keep.
    fn checked(self) -> Result<Self, PickleError> {
        if let SendingChain::Pending { their_ratchet_key } = &self.sending {
            if self.receiving.front().map(|c| c.ratchet_key) != Some(*their_ratchet_key) {
                return Err(PickleError::Corrupted("no sending chain and no matching receiving chain"));
            }
            if their_ratchet_key.is_small_order() {
                return Err(PickleError::Corrupted("a ratchet key has small order"));
            }
        }
        Ok(self)
    }

    fn encode_libolm(&self) -> Result<Zeroizing<Vec<u8>>, PickleError> {
        if self.config != SessionConfig::version_1() {
            return Err(PickleError::UnsupportedByLibolm("only version 1 sessions exist in libolm"));
        }
        let newest = self.receiving.iter().map(|c| c.skipped.len()).sum::<usize>().min(LIBOLM_MAX_SKIPPED_KEYS);
        let sending = match self.sending {
            SendingChain::Active { .. } => 32 + 32 + CHAIN_KEY_LEN,
            SendingChain::Pending { .. } => 0,
        };
        let capacity = 4
            + 1
            + 96
            + 32
            + 4
            + sending
            + 4
            + (32 + CHAIN_KEY_LEN) * self.receiving.len()
            + 4
            + (32 + 32 + 4) * newest;
        let mut w = PickleWriter::with_capacity(capacity);
        w.u32(LIBOLM_SESSION_VERSION);
        w.bool(self.received_message);
        write_keys(&mut w, &self.keys);
        w.bytes(&self.root_key.0);
        match &self.sending {
            SendingChain::Active { ratchet, chain_key } => {
                w.u32(1);
                w.bytes(ratchet.public_now().as_bytes());
                w.bytes(ratchet.secret.to_bytes().as_ref());
                write_chain_key(&mut w, chain_key);
            }
            SendingChain::Pending { .. } => w.u32(0),
        }
        w.u32(self.receiving.len() as u32);
        for chain in &self.receiving {
            w.bytes(chain.ratchet_key.as_bytes());
            write_chain_key(&mut w, &chain.chain_key);
        }
        // libolm keeps one list for the session, newest first (it inserts at the front and
        // evicts from the back): newest chain first, each chain's keys newest first, 40 at most.
        let newest: Vec<(&Curve25519PublicKey, &MessageKey)> = self
            .receiving
            .iter()
            .flat_map(|c| c.skipped.iter().rev().map(move |k| (&c.ratchet_key, k)))
            .take(LIBOLM_MAX_SKIPPED_KEYS)
            .collect();
        w.u32(newest.len() as u32);
        for (ratchet_key, key) in newest {
            w.bytes(ratchet_key.as_bytes());
            w.bytes(&key.key);
            w.u32(key.index);
        }
        debug_assert_eq!(w.len(), capacity);
        Ok(w.finish())
    }

    fn decode_libolm(bytes: &[u8]) -> Result<Self, PickleError> {
        let mut r = PickleReader::new(bytes);
        let includes_chain_index = match r.u32()? {
            LIBOLM_SESSION_VERSION => false,
            0x8000_0001 => true,
            other => return Err(PickleError::UnknownVersion(other)),
        };
        let received_message = r.bool()?;
        let keys = read_keys(&mut r)?;
        let root_key = Box::new(RootKey(*r.secret::<32>()?));
        let sender = match r.u32()? {
            0 => None,
            1 => {
                let public = r.array::<32>()?;
                let secret = r.secret::<32>()?;
                Some((Curve25519Keypair::from_pickled(&secret, public), read_chain_key(&mut r)?))
            }
            _ => return Err(PickleError::Corrupted("more than one sender chain")),
        };
        let count = r.u32()? as usize;
        if count > MAX_RECEIVER_CHAINS {
            return Err(PickleError::Corrupted("too many receiver chains"));
        }
        let mut receiving = VecDeque::with_capacity(count);
        for _ in 0..count {
            receiving
                .push_back(ReceiverChain::new(Curve25519PublicKey::from_bytes(r.array()?), read_chain_key(&mut r)?));
        }
        let skipped = r.u32()? as usize;
        if skipped > LIBOLM_MAX_SKIPPED_KEYS {
            return Err(PickleError::Corrupted("too many skipped message keys"));
        }
        for _ in 0..skipped {
            let ratchet_key = Curve25519PublicKey::from_bytes(r.array()?);
            let key = *r.secret::<32>()?;
            let index = r.u32()?;
            // libolm never looks up a skipped key whose chain is gone, so neither do we.
            if let Some(chain) = receiving.iter_mut().find(|c| c.ratchet_key == ratchet_key) {
                // libolm's list is newest first; each chain here keeps its keys oldest first.
                chain.skipped.push_oldest(MessageKey { key, index });
            }
        }
        if includes_chain_index {
            r.u32()?;
        }
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        let sending = match sender {
            Some((ratchet, chain_key)) => {
                SendingChain::Active { ratchet: ratchet.into(), chain_key: Box::new(chain_key) }
            }
            None => SendingChain::Pending {
                their_ratchet_key: receiving
                    .front()
                    .map(|c| c.ratchet_key)
                    .ok_or(PickleError::Corrupted("neither a sending nor a receiving chain"))?,
            },
        };
        Self::checked(Self {
            config: SessionConfig::version_1(),
            keys,
            id: keys.session_id(),
            received_message,
            root_key,
            sending,
            receiving,
        })
    }
}

const FORMAT_VERSION: u8 = 1;
const LIBOLM_SESSION_VERSION: u32 = 1;
/// A pickled chain key: the key, then its index.
const CHAIN_KEY_LEN: usize = 32 + 4;

fn write_keys(w: &mut PickleWriter, keys: &SessionKeys) {
    w.bytes(keys.identity_key.as_bytes());
    w.bytes(keys.base_key.as_bytes());
    w.bytes(keys.one_time_key.as_bytes());
}

fn read_keys(r: &mut PickleReader<'_>) -> Result<SessionKeys, PickleError> {
    Ok(SessionKeys {
        identity_key: Curve25519PublicKey::from_bytes(r.array()?),
        base_key: Curve25519PublicKey::from_bytes(r.array()?),
        one_time_key: Curve25519PublicKey::from_bytes(r.array()?),
    })
}

fn write_chain_key(w: &mut PickleWriter, chain_key: &ChainKey) {
    w.bytes(&chain_key.key);
    w.u32(chain_key.index);
}

fn read_chain_key(r: &mut PickleReader<'_>) -> Result<ChainKey, PickleError> {
    let key = *r.secret::<32>()?;
    Ok(ChainKey { key, index: r.u32()? })
}

impl SessionConfig {
    pub(crate) fn message_version(self) -> u8 {
        if self == Self::version_2() { VERSION_FULL_MAC } else { VERSION_TRUNCATED_MAC }
    }

    /// The configuration whose normal messages carry `version`.
    pub(crate) fn from_message_version(version: u8) -> Option<Self> {
        match version {
            VERSION_TRUNCATED_MAC => Some(Self::version_1()),
            VERSION_FULL_MAC => Some(Self::version_2()),
            _ => None,
        }
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id())
            .field("config", &self.config)
            .field("received_message", &self.received_message)
            .field("receiver_chains", &self.receiving.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::olm::Account;

    #[test]
    fn failed_decryptions_leave_the_state_byte_for_byte_unchanged() {
        let alice = Account::new();
        let mut bob = Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap_or_else(|| unreachable!());
        let mut outbound =
            alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk).unwrap();
        let OlmMessage::PreKey(first) = outbound.encrypt(b"1") else { unreachable!() };
        let mut inbound =
            bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap().session;
        let messages: Vec<OlmMessage> = (0..MAX_MESSAGE_GAP as usize + 5).map(|_| outbound.encrypt(b"m")).collect();

        let before = inbound.encode();
        let mut tampered = messages[3].message().as_bytes().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let failures = [
            OlmMessage::Normal(Message::from_bytes(&tampered).unwrap()),
            messages.last().unwrap().clone(), // gap too big
        ];
        for failure in &failures {
            assert!(inbound.decrypt(failure).is_err());
            assert_eq!(*inbound.encode(), *before);
        }
        // A new-chain message that fails its MAC must not step the root key either.
        let reply = inbound.encrypt(b"reply");
        let mut tampered = reply.as_bytes().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let before = outbound.encode();
        let tampered = OlmMessage::Normal(Message::from_bytes(&tampered).unwrap());
        assert_eq!(outbound.decrypt(&tampered), Err(DecryptionError::InvalidMac));
        assert_eq!(*outbound.encode(), *before);
        assert_eq!(outbound.decrypt(&reply).unwrap(), b"reply");
    }
}
