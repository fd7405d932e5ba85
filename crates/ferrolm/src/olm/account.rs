//! An Olm account: a device's identity keys and its one-time and fallback keys.

use std::collections::{BTreeMap, VecDeque};

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::codec::{PickleReader, PickleWriter};
use crate::pickle::{
    MISMATCHED_KEY, PickleError, PickleKey, PickleKind, read_ed25519, read_ed25519_public, write_ed25519,
};
use crate::types::{
    Curve25519Keypair, Curve25519PublicKey, Curve25519SecretKey, Ed25519Keypair, Ed25519PublicKey, Ed25519SecretKey,
    Ed25519Signature, KeyError, KeyId,
};

use super::{DecryptionError, PreKeyMessage, Session, SessionConfig, SessionKeys};

mod dehydrated;

pub use dehydrated::{DEHYDRATED_DEVICE_PICKLE_VERSION, DehydratedDeviceError, DehydratedDevicePickle};

/// How many one-time keys an account keeps at most; generating more evicts the oldest. It is
/// also the most one call to [`Account::generate_one_time_keys`] creates.
pub const MAX_STORED_ONE_TIME_KEYS: usize = 5000;
/// How many one-time keys a client should keep uploaded on its homeserver.
pub const RECOMMENDED_ONE_TIME_KEY_COUNT: usize = 50;
/// libolm's account holds at most this many one-time keys.
const LIBOLM_MAX_ONE_TIME_KEYS: usize = 100;

/// A device's two identity keys, as published in its device keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityKeys {
    /// The Ed25519 fingerprint key (`ed25519:DEVICEID`).
    pub ed25519: Ed25519PublicKey,
    /// The Curve25519 identity key (`curve25519:DEVICEID`).
    pub curve25519: Curve25519PublicKey,
}

#[derive(Clone)]
struct OneTimeKey {
    id: KeyId,
    published: bool,
    key: Curve25519Keypair,
}

/// What [`Account::generate_one_time_keys`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeKeyGenerationResult {
    /// The new keys' public halves: as many as were asked for, up to
    /// [`MAX_STORED_ONE_TIME_KEYS`].
    pub created: Vec<Curve25519PublicKey>,
    /// Old keys evicted to stay within [`MAX_STORED_ONE_TIME_KEYS`].
    pub removed: Vec<Curve25519PublicKey>,
}

/// A session created from a pre-key message, with that message's plaintext and the key of the
/// account it used.
///
/// Its `Debug` output shows the plaintext's length, never its contents (a first message can
/// carry an `m.room_key`).
pub struct InboundCreationResult {
    /// The new session.
    pub session: Session,
    /// The decrypted first message.
    pub plaintext: Vec<u8>,
    /// The account's key the session was made with: a store updates that key's row (deletes
    /// a one-time key) in the same transaction that saves the session.
    pub consumed_key: ConsumedKey,
}

impl core::fmt::Debug for InboundCreationResult {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InboundCreationResult")
            .field("session", &self.session)
            .field("plaintext", &format_args!("<{} bytes, redacted>", self.plaintext.len()))
            .field("consumed_key", &self.consumed_key)
            .finish()
    }
}

/// Which of the account's keys a pre-key message used to create a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumedKey {
    /// A one-time key, now removed from the account.
    OneTime(KeyId),
    /// The current fallback key, which stays (fallback keys can be used more than once).
    Fallback(KeyId),
    /// The previous fallback key, which stays until [`Account::forget_fallback_key`].
    PreviousFallback(KeyId),
}

impl ConsumedKey {
    /// The key's id.
    pub fn key_id(self) -> KeyId {
        match self {
            Self::OneTime(id) | Self::Fallback(id) | Self::PreviousFallback(id) => id,
        }
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionCreationError {
    /// The pre-key message names an identity key other than the one the caller expects
    /// (the sender key of the event).
    #[error("the pre-key message's identity key {got} is not the expected {expected}")]
    MismatchedIdentityKey {
        /// The key the caller expected.
        expected: Curve25519PublicKey,
        /// The key in the message.
        got: Curve25519PublicKey,
    },
    /// The pre-key message used a one-time key this account does not have (already used,
    /// evicted, or never ours).
    #[error("no one-time or fallback key {0} in this account")]
    MissingOneTimeKey(Curve25519PublicKey),
    /// The pre-key message is in another session format than the one the caller expects: the
    /// receiver decides the format it accepts, not the sender.
    #[error("the pre-key message uses session version {}, not the expected {}", got.version(), expected.version())]
    MismatchedSessionConfig {
        /// The configuration the caller expects.
        expected: SessionConfig,
        /// The configuration of the message.
        got: SessionConfig,
    },
    /// One of the other side's keys is of small order.
    #[error("a key of the other side is of small order (non-contributory)")]
    NonContributoryKey,
    /// The pre-key message did not decrypt; the one-time key was kept.
    #[error("the pre-key message did not decrypt: {0}")]
    Decryption(#[from] DecryptionError),
}

impl From<KeyError> for SessionCreationError {
    fn from(_: KeyError) -> Self {
        Self::NonContributoryKey
    }
}

/// A device's Olm account.
///
/// ```
/// use ferrolm::olm::Account;
/// let mut account = Account::new();
/// let identity = account.identity_keys();
///
/// // Sign the device keys JSON (canonical JSON is the caller's job).
/// let signature = account.sign(b"{\"device_id\":\"ABC\"}");
/// identity.ed25519.verify(b"{\"device_id\":\"ABC\"}", &signature).unwrap();
///
/// // Keep the server stocked with one-time keys, and a fallback key for when it runs out.
/// account.generate_one_time_keys(account.max_number_of_one_time_keys());
/// account.generate_fallback_key();
/// let upload = account.one_time_keys(); // key id → key, for /keys/upload
/// assert_eq!(upload.len(), 50);
/// account.mark_keys_as_published();
/// assert!(account.one_time_keys().is_empty());
/// ```
#[derive(Clone)]
pub struct Account {
    signing_key: Ed25519Keypair,
    identity_key: Curve25519Keypair,
    /// Oldest first.
    one_time_keys: VecDeque<OneTimeKey>,
    next_key_id: u32,
    fallback_key: Option<OneTimeKey>,
    previous_fallback_key: Option<OneTimeKey>,
}

impl Account {
    /// A new account with fresh identity keys.
    pub fn new() -> Self {
        Self::new_inner(&mut crate::rng::os_rng())
    }

    /// [`Account::new`] with the caller's randomness: 32 bytes for the Ed25519 seed, then 32
    /// for the Curve25519 key (libolm's `olm_create_account`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn new_with_rng(rng: &mut impl CryptoRngCore) -> Self {
        Self::new_inner(rng)
    }

    fn new_inner(rng: &mut impl CryptoRngCore) -> Self {
        // One draw for both keys (one system call with the OS generator), in libolm's order.
        let mut random = Zeroizing::new([[0u8; 32]; 2]);
        rng.fill_bytes(random.as_flattened_mut());
        let [seed, curve25519] = &*random;
        let signing_key = Ed25519Keypair::from_seed(seed);
        let identity_key = Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(curve25519));
        Self {
            signing_key,
            identity_key,
            one_time_keys: VecDeque::new(),
            next_key_id: 0,
            fallback_key: None,
            previous_fallback_key: None,
        }
    }

    /// Both identity keys.
    pub fn identity_keys(&self) -> IdentityKeys {
        IdentityKeys { ed25519: self.signing_key.public_key(), curve25519: self.identity_key.public }
    }

    /// The Ed25519 fingerprint key.
    pub fn ed25519_key(&self) -> Ed25519PublicKey {
        self.signing_key.public_key()
    }

    /// The Curve25519 identity key.
    pub fn curve25519_key(&self) -> Curve25519PublicKey {
        self.identity_key.public
    }

    /// Signs `message` with the Ed25519 fingerprint key.
    pub fn sign(&self, message: &[u8]) -> Ed25519Signature {
        self.signing_key.sign(message)
    }

    /// How many one-time keys to keep uploaded ([`RECOMMENDED_ONE_TIME_KEY_COUNT`]). Upload
    /// `max_number_of_one_time_keys() - count_on_server` new keys when the server's count
    /// falls.
    pub fn max_number_of_one_time_keys(&self) -> usize {
        RECOMMENDED_ONE_TIME_KEY_COUNT
    }

    /// How many one-time keys the account holds, published or not.
    pub fn stored_one_time_key_count(&self) -> usize {
        self.one_time_keys.len()
    }

    /// Generates `count` one-time keys, at most [`MAX_STORED_ONE_TIME_KEYS`] (a larger count
    /// creates that many: any more would evict keys of the same call). Past
    /// [`MAX_STORED_ONE_TIME_KEYS`] stored keys the oldest are evicted; the result lists the
    /// keys created and those evicted (so their uploads can be forgotten).
    ///
    /// The randomness for the whole batch is drawn at once, one system call.
    pub fn generate_one_time_keys(&mut self, count: usize) -> OneTimeKeyGenerationResult {
        self.generate_one_time_keys_inner(count, &mut crate::rng::os_rng())
    }

    /// [`Account::generate_one_time_keys`] with the caller's randomness: 32 bytes per key
    /// created, in order, in one `fill_bytes` call (libolm's
    /// `olm_account_generate_one_time_keys`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn generate_one_time_keys_with_rng(
        &mut self,
        count: usize,
        rng: &mut impl CryptoRngCore,
    ) -> OneTimeKeyGenerationResult {
        self.generate_one_time_keys_inner(count, rng)
    }

    fn generate_one_time_keys_inner(
        &mut self,
        count: usize,
        rng: &mut impl CryptoRngCore,
    ) -> OneTimeKeyGenerationResult {
        let count = count.min(MAX_STORED_ONE_TIME_KEYS);
        let mut result = OneTimeKeyGenerationResult { created: Vec::with_capacity(count), removed: Vec::new() };
        if count == 0 {
            return result;
        }
        // One draw for the batch, 32 bytes per key in order, into a buffer of fixed size that
        // zeroizes itself.
        let mut random = Zeroizing::new(vec![[0u8; 32]; count]);
        rng.fill_bytes(random.as_flattened_mut());
        for bytes in random.iter() {
            let key = self.new_key(Curve25519SecretKey::from_bytes(bytes));
            result.created.push(key.key.public);
            if self.one_time_keys.len() == MAX_STORED_ONE_TIME_KEYS {
                if let Some(old) = self.one_time_keys.pop_front() {
                    result.removed.push(old.key.public);
                }
            }
            self.one_time_keys.push_back(key);
        }
        result
    }

    fn new_key(&mut self, secret: Curve25519SecretKey) -> OneTimeKey {
        self.next_key_id = self.next_key_id.wrapping_add(1);
        OneTimeKey { id: KeyId(self.next_key_id), published: false, key: Curve25519Keypair::from_secret(secret) }
    }

    /// The one-time keys not yet marked as published, by key id.
    pub fn one_time_keys(&self) -> BTreeMap<KeyId, Curve25519PublicKey> {
        self.one_time_keys.iter().filter(|k| !k.published).map(|k| (k.id, k.key.public)).collect()
    }

    /// Generates a new fallback key. The current one becomes the previous one (still usable
    /// by senders that claimed it), and the previous one is forgotten and returned.
    pub fn generate_fallback_key(&mut self) -> Option<Curve25519PublicKey> {
        self.generate_fallback_key_inner(&mut crate::rng::os_rng())
    }

    /// [`Account::generate_fallback_key`] with the caller's randomness: 32 bytes.
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn generate_fallback_key_with_rng(&mut self, rng: &mut impl CryptoRngCore) -> Option<Curve25519PublicKey> {
        self.generate_fallback_key_inner(rng)
    }

    fn generate_fallback_key_inner(&mut self, rng: &mut impl CryptoRngCore) -> Option<Curve25519PublicKey> {
        let key = self.new_key(Curve25519SecretKey::generate(rng));
        let removed = self.previous_fallback_key.take().map(|k| k.key.public);
        self.previous_fallback_key = self.fallback_key.replace(key);
        removed
    }

    /// The current fallback key, if it has not been marked as published.
    pub fn fallback_key(&self) -> BTreeMap<KeyId, Curve25519PublicKey> {
        self.fallback_key.iter().filter(|k| !k.published).map(|k| (k.id, k.key.public)).collect()
    }

    /// Forgets the previous fallback key; returns whether there was one. Call it once
    /// senders have had time to switch to the current one.
    pub fn forget_fallback_key(&mut self) -> bool {
        self.previous_fallback_key.take().is_some()
    }

    /// Marks every one-time key and the current fallback key as published.
    pub fn mark_keys_as_published(&mut self) {
        for key in &mut self.one_time_keys {
            key.published = true;
        }
        if let Some(key) = &mut self.fallback_key {
            key.published = true;
        }
    }

    /// Creates a session to the device with `identity_key`, using one of its one-time (or
    /// fallback) keys claimed from the server.
    pub fn create_outbound_session(
        &self,
        config: SessionConfig,
        identity_key: Curve25519PublicKey,
        one_time_key: Curve25519PublicKey,
    ) -> Result<Session, SessionCreationError> {
        self.create_outbound_session_inner(config, identity_key, one_time_key, &mut crate::rng::os_rng())
    }

    /// [`Account::create_outbound_session`] with the caller's randomness: 32 bytes for the
    /// base key, then 32 for the first ratchet key (libolm's `olm_create_outbound_session`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn create_outbound_session_with_rng(
        &self,
        config: SessionConfig,
        identity_key: Curve25519PublicKey,
        one_time_key: Curve25519PublicKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Session, SessionCreationError> {
        self.create_outbound_session_inner(config, identity_key, one_time_key, rng)
    }

    fn create_outbound_session_inner(
        &self,
        config: SessionConfig,
        identity_key: Curve25519PublicKey,
        one_time_key: Curve25519PublicKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Session, SessionCreationError> {
        // One draw for both keys, in libolm's order: the base key, then the first ratchet key.
        let mut random = Zeroizing::new([[0u8; 32]; 2]);
        rng.fill_bytes(random.as_flattened_mut());
        let [base, ratchet] = &*random;
        let base_key = Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(base));
        let ratchet_key = Curve25519SecretKey::from_bytes(ratchet);
        let mut shared = Zeroizing::new([0u8; 96]);
        let parts = [
            self.identity_key.secret.diffie_hellman(&one_time_key)?,
            base_key.secret.diffie_hellman(&identity_key)?,
            base_key.secret.diffie_hellman(&one_time_key)?,
        ];
        for (chunk, part) in shared.chunks_exact_mut(32).zip(&parts) {
            chunk.copy_from_slice(part.as_bytes());
        }
        let keys = SessionKeys { identity_key: self.identity_key.public, base_key: base_key.public, one_time_key };
        Ok(Session::new_outbound(config, keys, &shared, ratchet_key))
    }

    /// Creates the session a pre-key message opens, and decrypts the message.
    ///
    /// `config` is the session format the caller expects (what it offers in its device keys);
    /// a message in another format is refused ([`SessionCreationError::MismatchedSessionConfig`]),
    /// so the sender cannot choose a format the receiver did not agree to. `their_identity_key`
    /// is the sender key of the event that carried the message; it must match the one inside.
    /// The one-time key used is removed only once the message has decrypted (fallback keys
    /// stay); the result says which key was used.
    pub fn create_inbound_session(
        &mut self,
        config: SessionConfig,
        their_identity_key: Curve25519PublicKey,
        message: &PreKeyMessage,
    ) -> Result<InboundCreationResult, SessionCreationError> {
        if message.identity_key() != their_identity_key {
            return Err(SessionCreationError::MismatchedIdentityKey {
                expected: their_identity_key,
                got: message.identity_key(),
            });
        }
        let inner = message.message();
        // The decoder accepts only the two versions there are.
        let got = SessionConfig::from_message_version(inner.version()).unwrap_or(SessionConfig::version_1());
        if got != config {
            return Err(SessionCreationError::MismatchedSessionConfig { expected: config, got });
        }
        let one_time_key = message.one_time_key();
        let (consumed_key, secret) = if let Some(k) = self.one_time_keys.iter().find(|k| k.key.public == one_time_key) {
            (ConsumedKey::OneTime(k.id), &k.key.secret)
        } else if let Some(k) = self.fallback_key.as_ref().filter(|k| k.key.public == one_time_key) {
            (ConsumedKey::Fallback(k.id), &k.key.secret)
        } else if let Some(k) = self.previous_fallback_key.as_ref().filter(|k| k.key.public == one_time_key) {
            (ConsumedKey::PreviousFallback(k.id), &k.key.secret)
        } else {
            return Err(SessionCreationError::MissingOneTimeKey(one_time_key));
        };

        let their_ratchet_key = inner.ratchet_key();
        if their_ratchet_key.is_small_order() {
            return Err(SessionCreationError::NonContributoryKey);
        }
        let mut shared = Zeroizing::new([0u8; 96]);
        let parts = [
            secret.diffie_hellman(&their_identity_key)?,
            self.identity_key.secret.diffie_hellman(&message.base_key())?,
            secret.diffie_hellman(&message.base_key())?,
        ];
        for (chunk, part) in shared.chunks_exact_mut(32).zip(&parts) {
            chunk.copy_from_slice(part.as_bytes());
        }
        let mut session = Session::new_inbound(config, message.session_keys(), &shared, their_ratchet_key);
        let plaintext = session.decrypt_message(inner)?;
        if let ConsumedKey::OneTime(id) = consumed_key {
            self.one_time_keys.retain(|k| k.id != id);
        }
        Ok(InboundCreationResult { session, plaintext, consumed_key })
    }

    /// Encrypts the account into ferrolm's pickle format under `key`.
    pub fn pickle(&self, key: &PickleKey) -> String {
        crate::types::base64_encode(self.pickle_bytes(key, &[]))
    }

    /// Encrypts the account into ferrolm's pickle format under `key`, as raw bytes, with
    /// `associated_data` bound into the MAC (not stored): [`Self::from_pickle_bytes`] must be
    /// given the same associated data. A store passes the row's table and key, so that a
    /// pickle moved to another row is refused.
    pub fn pickle_bytes(&self, key: &PickleKey, associated_data: &[u8]) -> Vec<u8> {
        crate::pickle::seal_bytes(PickleKind::Account, &self.encode(), key, associated_data, &mut crate::rng::os_rng())
    }

    /// Restores an account from [`Account::pickle`]'s output.
    pub fn from_pickle(pickle: &str, key: &PickleKey) -> Result<Self, PickleError> {
        Self::from_pickle_bytes(&crate::pickle::decode_base64(pickle)?, key, &[])
    }

    /// Restores a account from [`Self::pickle_bytes`]'s output, given the same associated data.
    pub fn from_pickle_bytes(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
        Self::decode(&crate::pickle::open_bytes(PickleKind::Account, pickle, key, associated_data)?)
    }

    /// The account's state, unencrypted, for a store that encrypts at rest itself (ferrolm-store
    /// seals it with XChaCha20-Poly1305, bound to its row). **Secret**: never write it anywhere
    /// unencrypted; use [`Self::pickle_bytes`] when in doubt. Zeroized on drop.
    pub fn to_unencrypted_state(&self) -> zeroize::Zeroizing<Vec<u8>> {
        crate::pickle::state_bytes(PickleKind::Account, &self.encode())
    }

    /// Restores a account from [`Self::to_unencrypted_state`]'s output. The input must come from
    /// an authenticated source (a store's AEAD): it is decoded as ferrolm's own pickle contents,
    /// checked for well-formedness but not for having been written by ferrolm.
    pub fn from_unencrypted_state(state: &[u8]) -> Result<Self, PickleError> {
        Self::decode(crate::pickle::open_state(PickleKind::Account, state)?)
    }

    /// Encrypts the account into libolm's pickle format (version 4), readable by libolm's
    /// `olm_unpickle_account` and vodozemac's `Account::from_libolm_pickle`.
    ///
    /// libolm holds at most 100 one-time keys; an account holding more cannot be written.
    pub fn to_libolm_pickle(&self, key: &[u8]) -> Result<String, PickleError> {
        Ok(crate::pickle::seal_libolm(&self.encode_libolm()?, key))
    }

    /// Restores an account from a libolm pickle (versions 2, 3 and 4).
    pub fn from_libolm_pickle(pickle: &str, key: &[u8]) -> Result<Self, PickleError> {
        Self::decode_libolm(&crate::pickle::open_libolm(pickle, key)?)
    }

    /// How many keys pickles hold after the one-time keys: the fallback keys.
    fn fallback_count(&self) -> usize {
        usize::from(self.fallback_key.is_some()) + usize::from(self.previous_fallback_key.is_some())
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        // Ed25519: form, then a 32-byte seed or libolm's 64-byte expanded key, then the public key.
        let ed25519_secret = if self.signing_key.secret_key().seed().is_some() { 32 } else { 64 };
        let ed25519 = 1 + ed25519_secret + 32;
        let capacity = 1
            + ed25519
            + 64
            + 4
            + 4
            + ONE_TIME_KEY_LEN * self.one_time_keys.len()
            + 1
            + ONE_TIME_KEY_LEN * self.fallback_count();
        let mut w = PickleWriter::with_capacity(capacity);
        w.u8(FORMAT_VERSION);
        write_ed25519(&mut w, &self.signing_key);
        write_keypair(&mut w, &self.identity_key);
        w.u32(self.next_key_id);
        w.u32(self.one_time_keys.len() as u32);
        for key in &self.one_time_keys {
            write_one_time_key(&mut w, key);
        }
        let fallbacks: Vec<&OneTimeKey> =
            [&self.fallback_key, &self.previous_fallback_key].into_iter().flatten().collect();
        w.u8(fallbacks.len() as u8);
        for key in fallbacks {
            write_one_time_key(&mut w, key);
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
        let signing_key = read_ed25519(&mut r)?;
        let identity_key = read_checked_keypair(&mut r)?;
        let next_key_id = r.u32()?;
        let count = r.u32()? as usize;
        if count > MAX_STORED_ONE_TIME_KEYS {
            return Err(PickleError::Corrupted("too many one-time keys"));
        }
        let mut one_time_keys = VecDeque::with_capacity(count);
        for _ in 0..count {
            one_time_keys.push_back(read_one_time_key(&mut r)?);
        }
        let (fallback_key, previous_fallback_key) = match r.u8()? {
            0 => (None, None),
            1 => (Some(read_one_time_key(&mut r)?), None),
            2 => (Some(read_one_time_key(&mut r)?), Some(read_one_time_key(&mut r)?)),
            _ => return Err(PickleError::Corrupted("too many fallback keys")),
        };
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        Ok(Self { signing_key, identity_key, one_time_keys, next_key_id, fallback_key, previous_fallback_key })
    }

    fn encode_libolm(&self) -> Result<Zeroizing<Vec<u8>>, PickleError> {
        if self.one_time_keys.len() > LIBOLM_MAX_ONE_TIME_KEYS {
            return Err(PickleError::UnsupportedByLibolm("libolm holds at most 100 one-time keys"));
        }
        let capacity = 4
            + 32
            + 64
            + 64
            + 4
            + ONE_TIME_KEY_LEN * self.one_time_keys.len()
            + 1
            + ONE_TIME_KEY_LEN * self.fallback_count()
            + 4;
        let mut w = PickleWriter::with_capacity(capacity);
        w.u32(LIBOLM_ACCOUNT_VERSION);
        w.bytes(self.signing_key.public_key().as_bytes());
        w.bytes(self.signing_key.secret_key().to_expanded().as_ref());
        write_keypair(&mut w, &self.identity_key);
        w.u32(self.one_time_keys.len() as u32);
        // libolm keeps its list newest first.
        for key in self.one_time_keys.iter().rev() {
            write_one_time_key(&mut w, key);
        }
        let fallbacks: Vec<&OneTimeKey> =
            [&self.fallback_key, &self.previous_fallback_key].into_iter().flatten().collect();
        w.u8(fallbacks.len() as u8);
        for key in fallbacks {
            write_one_time_key(&mut w, key);
        }
        w.u32(self.next_key_id);
        debug_assert_eq!(w.len(), capacity);
        Ok(w.finish())
    }

    fn decode_libolm(bytes: &[u8]) -> Result<Self, PickleError> {
        let mut r = PickleReader::new(bytes);
        let version = r.u32()?;
        if !(2..=4).contains(&version) {
            return Err(PickleError::UnknownVersion(version));
        }
        let public = read_ed25519_public(&mut r)?;
        let secret = Ed25519SecretKey::from_expanded(&*r.secret::<64>()?);
        let signing_key = Ed25519Keypair::from_pickled(secret, public).ok_or(MISMATCHED_KEY)?;
        let identity_key = read_checked_keypair(&mut r)?;
        let count = r.u32()? as usize;
        if count > LIBOLM_MAX_ONE_TIME_KEYS {
            return Err(PickleError::Corrupted("too many one-time keys"));
        }
        let mut one_time_keys = VecDeque::with_capacity(count);
        for _ in 0..count {
            one_time_keys.push_front(read_one_time_key(&mut r)?);
        }
        let (fallback_key, previous_fallback_key) = match version {
            2 => (None, None),
            3 => {
                // Version 3 always stored both keys; the published flag said which existed.
                let current = read_one_time_key(&mut r)?;
                let previous = read_one_time_key(&mut r)?;
                match (current.published, previous.published) {
                    (false, _) => (None, None),
                    (true, false) => (Some(current), None),
                    (true, true) => (Some(current), Some(previous)),
                }
            }
            _ => match r.u8()? {
                0 => (None, None),
                1 => (Some(read_one_time_key(&mut r)?), None),
                2 => (Some(read_one_time_key(&mut r)?), Some(read_one_time_key(&mut r)?)),
                _ => return Err(PickleError::Corrupted("too many fallback keys")),
            },
        };
        let next_key_id = r.u32()?;
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        Ok(Self { signing_key, identity_key, one_time_keys, next_key_id, fallback_key, previous_fallback_key })
    }
}

impl Default for Account {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Account {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Account")
            .field("identity_keys", &self.identity_keys())
            .field("one_time_keys", &self.one_time_keys.len())
            .field("fallback_key", &self.fallback_key.as_ref().map(|k| k.key.public))
            .finish_non_exhaustive()
    }
}

const FORMAT_VERSION: u8 = 1;
const LIBOLM_ACCOUNT_VERSION: u32 = 4;
/// A pickled one-time or fallback key: id, published flag, public key, secret key.
const ONE_TIME_KEY_LEN: usize = 4 + 1 + 32 + 32;

/// A key pair as libolm lays it out (public, then secret); ferrolm's format does the same,
/// as it does for one-time keys (id, published flag, key pair).
fn write_keypair(w: &mut PickleWriter, pair: &Curve25519Keypair) {
    w.bytes(pair.public.as_bytes());
    w.bytes(pair.secret.to_bytes().as_ref());
}

fn read_keypair(r: &mut PickleReader<'_>) -> Result<Curve25519Keypair, PickleError> {
    let public = r.array::<32>()?;
    let secret = r.secret::<32>()?;
    Ok(Curve25519Keypair::from_pickled(&secret, public))
}

/// A long-lived key pair (the identity key), with its public key recomputed and compared:
/// one scalar multiplication, paid once per account restore. One-time keys are not checked,
/// to keep restoring fast; a wrong one only makes the sessions that use it fail.
fn read_checked_keypair(r: &mut PickleReader<'_>) -> Result<Curve25519Keypair, PickleError> {
    let pair = read_keypair(r)?;
    if pair.secret.public_key() == pair.public { Ok(pair) } else { Err(MISMATCHED_KEY) }
}

fn write_one_time_key(w: &mut PickleWriter, key: &OneTimeKey) {
    w.u32(key.id.0);
    w.bool(key.published);
    write_keypair(w, &key.key);
}

fn read_one_time_key(r: &mut PickleReader<'_>) -> Result<OneTimeKey, PickleError> {
    let id = KeyId(r.u32()?);
    let published = r.bool()?;
    Ok(OneTimeKey { id, published, key: read_keypair(r)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator that records the length of every draw.
    struct Recording {
        next: u8,
        draws: Vec<usize>,
    }

    impl Recording {
        fn new() -> Self {
            Self { next: 0, draws: Vec::new() }
        }
    }

    impl rand_core::RngCore for Recording {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            self.draws.push(dest.len());
            for byte in dest {
                *byte = self.next;
                self.next = self.next.wrapping_add(1);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for Recording {}

    /// The byte stream `Recording` produces, from `start`, 32 bytes at a time.
    fn stream(start: usize, keys: usize) -> Vec<[u8; 32]> {
        (0..keys).map(|k| core::array::from_fn(|i| (start + 32 * k + i) as u8)).collect()
    }

    #[test]
    fn a_batch_of_one_time_keys_is_one_draw_in_libolms_order() {
        let mut rng = Recording::new();
        let mut account = Account::new_inner(&mut rng);
        assert_eq!(rng.draws, [64], "both identity keys in one draw");
        let expected_identity = Curve25519SecretKey::from_bytes(&stream(32, 1)[0]).public_key();
        assert_eq!(account.curve25519_key(), expected_identity);
        assert_eq!(account.ed25519_key(), Ed25519Keypair::from_seed(&stream(0, 1)[0]).public_key());

        let result = account.generate_one_time_keys_inner(50, &mut rng);
        assert_eq!(rng.draws, [64, 50 * 32], "fifty keys in one draw");
        // Key i is made of bytes 32 i .. 32 i + 32 of the draw, as libolm reads its buffer.
        let expected: Vec<Curve25519PublicKey> =
            stream(64, 50).iter().map(|bytes| Curve25519SecretKey::from_bytes(bytes).public_key()).collect();
        assert_eq!(result.created, expected);

        let session = account
            .create_outbound_session_inner(SessionConfig::version_1(), expected[0], expected[1], &mut rng)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(rng.draws, [64, 1600, 64], "base key and first ratchet key in one draw");
        let base = Curve25519SecretKey::from_bytes(&stream(64 + 1600, 1)[0]).public_key();
        assert_eq!(session.session_keys().base_key, base);

        account.generate_one_time_keys_inner(0, &mut rng);
        assert_eq!(rng.draws.len(), 3, "no draw for no keys");
    }

    #[test]
    fn pickles_are_written_into_buffers_of_their_exact_size() {
        let mut account = Account::new();
        account.generate_one_time_keys(7);
        account.generate_fallback_key();
        account.generate_fallback_key();
        for (bytes, name) in [(account.encode(), "ferrolm"), (account.encode_libolm().unwrap_or_default(), "libolm")] {
            assert_eq!(bytes.capacity(), bytes.len(), "{name}");
        }
        let from_libolm =
            Account::decode_libolm(&account.encode_libolm().unwrap_or_default()).unwrap_or_else(|_| unreachable!());
        let bytes = from_libolm.encode();
        assert_eq!(bytes.capacity(), bytes.len(), "an expanded Ed25519 key");
    }
}
