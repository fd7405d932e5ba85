//! Public-key encryption and signing as libolm's `olm_pk_*` API does it.
//!
//! - [`PkEncryption`] / [`PkDecryption`]: the `m.megolm_backup.v1.curve25519-aes-sha2` scheme
//!   server-side key backups use. An ephemeral X25519 key and the backup's public key give a
//!   shared secret; `HKDF(salt = 0, secret, info = "", 80)` gives an AES-256-CBC key, an
//!   HMAC-SHA-256 key and an IV.
//! - [`PkSigning`]: Ed25519 keys from a 32-byte seed, as cross-signing keys are made.
//!
//! **libolm's MAC defect, kept on purpose.** libolm computes the backup MAC over an *empty*
//! input instead of the ciphertext, so the 8-byte MAC authenticates nothing about the message;
//! every existing backup carries such MACs, and every client checks them that way. ferrolm
//! does the same so it can read and write real backups. The scheme is therefore
//! unauthenticated encryption: anyone who knows the backup's public key (the server does) can
//! make a message that decrypts. The layer above must treat backed-up room keys as
//! unverified (as the specification says) and check what it can, such as session ids and
//! signing keys against the keys inside. See SECURITY.md.
//!
//! ```
//! use ferrolm::pk::{PkDecryption, PkEncryption};
//! let backup_key = PkDecryption::new();
//! let message = PkEncryption::from_key(backup_key.public_key())?.encrypt(b"{\"session_key\":\"...\"}");
//! assert_eq!(backup_key.decrypt(&message)?, b"{\"session_key\":\"...\"}");
//! # Ok::<(), ferrolm::pk::PkError>(())
//! ```

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::codec::{PickleReader, PickleWriter};
use crate::crypto::{CipherError, CipherKeys};
use crate::pickle::{PickleError, PickleKey, PickleKind};
use crate::types::{
    Curve25519Keypair, Curve25519PublicKey, Curve25519SecretKey, Ed25519Keypair, Ed25519PublicKey, Ed25519Signature,
    base64_decode, base64_encode,
};

const MAC_LENGTH: usize = 8;
/// How many messages a [`PkDecryption::decrypt_many`] worker takes at a time: small enough to
/// even out the cores' shares, large enough that taking a block costs nothing.
const DECRYPT_MANY_BLOCK: usize = 256;

/// Why a PK message could not be decoded or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkError {
    /// A field is not valid base64.
    #[error("the {0} is not valid base64")]
    Base64(&'static str),
    /// The ephemeral key is not 32 bytes.
    #[error("the ephemeral key is {0} bytes long, not 32")]
    InvalidKeyLength(usize),
    /// The MAC is not 8 bytes.
    #[error("the MAC is {0} bytes long, not 8")]
    InvalidMacLength(usize),
    /// The ephemeral key is of small order.
    #[error("the ephemeral key is of small order (non-contributory)")]
    NonContributoryKey,
    /// The MAC does not match: the message was made for another backup key (the MAC covers
    /// no message content; see the module documentation).
    #[error("the MAC does not match (wrong backup key)")]
    InvalidMac,
    /// The ciphertext decrypted to invalid padding (wrong key, or a corrupted ciphertext).
    #[error("the ciphertext's padding is invalid (corrupted ciphertext)")]
    InvalidPadding,
}

/// A backed-up room key could not be decrypted. Deliberately carries no reason: see
/// [`PkDecryption::decrypt_backup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the backed-up room key could not be decrypted")]
pub struct UndecryptableBackup;

/// An encrypted backup message: ciphertext, the (8-byte) MAC and the ephemeral key, each sent
/// as unpadded base64 in `session_data`.
#[derive(Clone, PartialEq, Eq)]
pub struct PkMessage {
    /// The AES-256-CBC ciphertext.
    pub ciphertext: Vec<u8>,
    /// libolm's MAC (over an empty input: see the module documentation).
    pub mac: [u8; MAC_LENGTH],
    /// The sender's ephemeral Curve25519 key.
    pub ephemeral_key: Curve25519PublicKey,
}

impl PkMessage {
    /// Reads a message from its three base64 fields.
    pub fn from_base64(ciphertext: &str, mac: &str, ephemeral_key: &str) -> Result<Self, PkError> {
        let ciphertext = base64_decode(ciphertext).map_err(|_| PkError::Base64("ciphertext"))?;
        let mac = base64_decode(mac).map_err(|_| PkError::Base64("MAC"))?;
        let mac = <[u8; MAC_LENGTH]>::try_from(mac.as_slice()).map_err(|_| PkError::InvalidMacLength(mac.len()))?;
        let key = base64_decode(ephemeral_key).map_err(|_| PkError::Base64("ephemeral key"))?;
        let ephemeral_key = Curve25519PublicKey::from_slice(&key).map_err(|_| PkError::InvalidKeyLength(key.len()))?;
        Ok(Self { ciphertext, mac, ephemeral_key })
    }

    /// The three fields as unpadded base64: (ciphertext, MAC, ephemeral key).
    pub fn to_base64(&self) -> (String, String, String) {
        (base64_encode(&self.ciphertext), base64_encode(self.mac), self.ephemeral_key.to_base64())
    }
}

impl core::fmt::Debug for PkMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PkMessage")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("ephemeral_key", &self.ephemeral_key)
            .finish_non_exhaustive()
    }
}

fn libolm_mac(keys: &CipherKeys) -> [u8; MAC_LENGTH] {
    // The defect, on purpose: the MAC of an empty input (see the module documentation).
    let full = keys.mac(&[]);
    let mut mac = [0u8; MAC_LENGTH];
    mac.copy_from_slice(full.get(..MAC_LENGTH).unwrap_or(&[0; MAC_LENGTH]));
    mac
}

/// Encrypts to a backup's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkEncryption {
    /// Checked not to be of small order, so every exchange with it is contributory.
    recipient: Curve25519PublicKey,
}

impl PkEncryption {
    /// Encryption to `recipient` (the backup's `auth_data.public_key`). A key of small order
    /// is refused: messages to it would be readable by anyone.
    pub fn from_key(recipient: Curve25519PublicKey) -> Result<Self, PkError> {
        if recipient.is_small_order() { Err(PkError::NonContributoryKey) } else { Ok(Self { recipient }) }
    }

    /// The recipient's public key.
    pub fn recipient(&self) -> Curve25519PublicKey {
        self.recipient
    }

    /// Encrypts `plaintext` under a fresh ephemeral key.
    pub fn encrypt(&self, plaintext: &[u8]) -> PkMessage {
        self.encrypt_inner(plaintext, &mut crate::rng::os_rng())
    }

    /// [`PkEncryption::encrypt`] with the caller's randomness: 32 bytes for the ephemeral key
    /// (libolm's `olm_pk_encrypt`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn encrypt_with_rng(&self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> PkMessage {
        self.encrypt_inner(plaintext, rng)
    }

    fn encrypt_inner(&self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> PkMessage {
        let ephemeral = Curve25519Keypair::generate(rng);
        let shared = ephemeral.secret.diffie_hellman_unchecked(&self.recipient);
        let keys = CipherKeys::derive(shared.as_bytes(), b"");
        PkMessage { ciphertext: keys.encrypt(plaintext), mac: libolm_mac(&keys), ephemeral_key: ephemeral.public }
    }
}

/// A backup's private key: decrypts what [`PkEncryption`] encrypted to its public key.
/// Zeroized on drop; `Debug` redacted.
#[derive(Clone)]
pub struct PkDecryption {
    key: Curve25519Keypair,
}

impl PkDecryption {
    /// A new random key.
    pub fn new() -> Self {
        Self::new_inner(&mut crate::rng::os_rng())
    }

    /// [`PkDecryption::new`] with the caller's randomness: 32 bytes (libolm's
    /// `olm_pk_key_from_private`).
    #[cfg(feature = "caller-supplied-randomness")]
    pub fn new_with_rng(rng: &mut impl CryptoRngCore) -> Self {
        Self::new_inner(rng)
    }

    fn new_inner(rng: &mut impl CryptoRngCore) -> Self {
        Self { key: Curve25519Keypair::generate(rng) }
    }

    /// The key from its 32 secret bytes (a backup recovery key decodes to these).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self { key: Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(secret)) }
    }

    /// The 32 secret bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.key.secret.to_bytes()
    }

    /// The public key, published in the backup's `auth_data`.
    pub fn public_key(&self) -> Curve25519PublicKey {
        self.key.public
    }

    /// Decrypts one message: checks the MAC (libolm's way), then decrypts.
    pub fn decrypt(&self, message: &PkMessage) -> Result<Vec<u8>, PkError> {
        let shared = self.key.secret.diffie_hellman(&message.ephemeral_key).map_err(|_| PkError::NonContributoryKey)?;
        let keys = CipherKeys::derive(shared.as_bytes(), b"");
        if !crate::crypto::ct_eq(&libolm_mac(&keys), &message.mac) {
            return Err(PkError::InvalidMac);
        }
        keys.decrypt(&message.ciphertext).map_err(|e| match e {
            CipherError::Mac => PkError::InvalidMac,
            CipherError::Padding => PkError::InvalidPadding,
        })
    }

    /// Decrypts one backed-up room key with a single, reasonless failure: what a client
    /// restoring a backup should use.
    ///
    /// The backup MAC covers no ciphertext (see the module documentation), so the server can
    /// alter a ciphertext at will. Were "bad padding" distinguishable from "decrypted, but not
    /// a valid room key", from the error or from what the client does next, the client would
    /// be a CBC padding oracle that decrypts its own backup for the server, block by block.
    /// Here a non-contributory ephemeral key, a wrong MAC and bad padding are all
    /// [`UndecryptableBackup`], and the ciphertext is decrypted even when the MAC failed, so
    /// the failures also cost the same work. The caller must fold its own later failures
    /// (invalid JSON, a session key that does not parse, a session id that does not match)
    /// into the same outcome, and report failures only as a count.
    pub fn decrypt_backup(&self, message: &PkMessage) -> Result<Zeroizing<Vec<u8>>, UndecryptableBackup> {
        let (keys, contributory) = match self.key.secret.diffie_hellman(&message.ephemeral_key) {
            Ok(shared) => (CipherKeys::derive(shared.as_bytes(), b""), true),
            // Same work as a contributory exchange: derive from a fixed input.
            Err(_) => (CipherKeys::derive(&[0; 32], b""), false),
        };
        let mac_ok = crate::crypto::ct_eq(&libolm_mac(&keys), &message.mac);
        let decrypted = keys.decrypt(&message.ciphertext).map(Zeroizing::new);
        match decrypted {
            Ok(plaintext) if mac_ok & contributory => Ok(plaintext),
            _ => Err(UndecryptableBackup),
        }
    }

    /// [`Self::decrypt_backup`] for many messages, on every core, in order (as
    /// [`Self::decrypt_many`]).
    pub fn decrypt_backup_many(&self, messages: &[PkMessage]) -> Vec<Result<Zeroizing<Vec<u8>>, UndecryptableBackup>> {
        self.decrypt_many_with(messages, |m| self.decrypt_backup(m), || Err(UndecryptableBackup))
    }

    /// Decrypts many messages (restoring a backup) on every core, in order; one result per
    /// message. Each decryption is independent (one X25519 exchange each), so this scales
    /// with the number of cores.
    ///
    /// The calling thread works too, beside one spawned thread per further core. Workers take
    /// blocks of 256 messages from a shared counter rather than one fixed
    /// share each, so a core that is slowed down (another process, a noisy virtual machine)
    /// does less of the work instead of holding up the others.
    pub fn decrypt_many(&self, messages: &[PkMessage]) -> Vec<Result<Vec<u8>, PkError>> {
        self.decrypt_many_with(messages, |m| self.decrypt(m), || Err(PkError::InvalidPadding))
    }

    /// Runs `decrypt` over `messages` on every core, in order; `missing` stands in for the
    /// results of a worker that died (it cannot: `decrypt` does not panic).
    fn decrypt_many_with<T: Send>(
        &self,
        messages: &[PkMessage],
        decrypt: impl Fn(&PkMessage) -> T + Sync,
        missing: impl Fn() -> T,
    ) -> Vec<T> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let blocks = messages.len().div_ceil(DECRYPT_MANY_BLOCK);
        if threads < 2 || blocks < 2 {
            return messages.iter().map(&decrypt).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let block = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(part) = messages.chunks(DECRYPT_MANY_BLOCK).nth(block) else { break };
                done.push((block, part.iter().map(&decrypt).collect::<Vec<_>>()));
            }
            done
        };
        let mut finished = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads.min(blocks)).map(|_| scope.spawn(work)).collect();
            let mut finished = work();
            // A helper only panics if `decrypt` does, which it never does; its blocks are
            // then missing and reported as undecryptable below rather than propagated.
            for helper in helpers {
                finished.extend(helper.join().unwrap_or_default());
            }
            finished
        });
        finished.sort_unstable_by_key(|(block, _)| *block);
        let mut results = Vec::with_capacity(messages.len());
        let mut finished = finished.into_iter().peekable();
        for (block, part) in messages.chunks(DECRYPT_MANY_BLOCK).enumerate() {
            match finished.next_if(|(done, _)| *done == block) {
                Some((_, decrypted)) => results.extend(decrypted),
                None => results.extend(part.iter().map(|_| missing())),
            }
        }
        results
    }

    /// Encrypts the key into ferrolm's pickle format.
    pub fn pickle(&self, key: &PickleKey) -> String {
        crate::types::base64_encode(self.pickle_bytes(key, &[]))
    }

    /// Encrypts the key into ferrolm's pickle format under `key`, as raw bytes, with
    /// `associated_data` bound into the MAC (not stored): [`Self::from_pickle_bytes`] must be
    /// given the same associated data. A store passes the row's table and key, so that a
    /// pickle moved to another row is refused.
    pub fn pickle_bytes(&self, key: &PickleKey, associated_data: &[u8]) -> Vec<u8> {
        crate::pickle::seal_bytes(
            PickleKind::PkDecryption,
            &self.encode(),
            key,
            associated_data,
            &mut crate::rng::os_rng(),
        )
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = PickleWriter::new();
        w.u8(FORMAT_VERSION);
        self.write_key_pair(&mut w);
        w.finish()
    }

    /// Restores a key from [`PkDecryption::pickle`]'s output.
    pub fn from_pickle(pickle: &str, key: &PickleKey) -> Result<Self, PickleError> {
        Self::from_pickle_bytes(&crate::pickle::decode_base64(pickle)?, key, &[])
    }

    /// Restores a key from [`Self::pickle_bytes`]'s output, given the same associated data.
    pub fn from_pickle_bytes(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
        Self::decode(&crate::pickle::open_bytes(PickleKind::PkDecryption, pickle, key, associated_data)?)
    }

    fn decode(bytes: &[u8]) -> Result<Self, PickleError> {
        let mut r = PickleReader::new(bytes);
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(PickleError::UnknownVersion(u32::from(version)));
        }
        Self::read_key_pair(&mut r)
    }

    /// The key's state, unencrypted, for a store that encrypts at rest itself (ferrolm-store
    /// seals it with XChaCha20-Poly1305, bound to its row). **Secret**: never write it anywhere
    /// unencrypted; use [`Self::pickle_bytes`] when in doubt. Zeroized on drop.
    pub fn to_unencrypted_state(&self) -> Zeroizing<Vec<u8>> {
        crate::pickle::state_bytes(PickleKind::PkDecryption, &self.encode())
    }

    /// Restores a key from [`Self::to_unencrypted_state`]'s output. The input must come from
    /// an authenticated source (a store's AEAD): it is decoded as ferrolm's own pickle contents,
    /// checked for well-formedness but not for having been written by ferrolm.
    pub fn from_unencrypted_state(state: &[u8]) -> Result<Self, PickleError> {
        Self::decode(crate::pickle::open_state(PickleKind::PkDecryption, state)?)
    }

    /// Encrypts the key into libolm's `PkDecryption` pickle (version 1).
    pub fn to_libolm_pickle(&self, key: &[u8]) -> String {
        let mut w = PickleWriter::new();
        w.u32(LIBOLM_VERSION);
        self.write_key_pair(&mut w);
        crate::pickle::seal_libolm(&w.finish(), key)
    }

    /// Restores a key from libolm's `PkDecryption` pickle (version 1).
    pub fn from_libolm_pickle(pickle: &str, key: &[u8]) -> Result<Self, PickleError> {
        let bytes = crate::pickle::open_libolm(pickle, key)?;
        let mut r = PickleReader::new(&bytes);
        let version = r.u32()?;
        if version != LIBOLM_VERSION {
            return Err(PickleError::UnknownVersion(version));
        }
        Self::read_key_pair(&mut r)
    }

    /// The key pair as both formats lay it out: public ‖ secret.
    fn write_key_pair(&self, w: &mut PickleWriter) {
        w.bytes(self.key.public.as_bytes());
        w.bytes(self.key.secret.to_bytes().as_ref());
    }

    fn read_key_pair(r: &mut PickleReader<'_>) -> Result<Self, PickleError> {
        let public = r.array::<32>()?;
        let secret = r.secret::<32>()?;
        if !r.is_empty() {
            return Err(PickleError::Corrupted("trailing bytes"));
        }
        // The public key is what clients compare with the backup's auth_data and encrypt new
        // backups to: recompute it rather than trust the pickle.
        let key = Curve25519Keypair::from_secret(Curve25519SecretKey::from_bytes(&secret));
        if key.public.as_bytes() != &public {
            return Err(crate::pickle::MISMATCHED_KEY);
        }
        Ok(Self { key })
    }
}

const FORMAT_VERSION: u8 = 1;
const LIBOLM_VERSION: u32 = 1;

impl Default for PkDecryption {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for PkDecryption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PkDecryption").field("public_key", &self.key.public).finish_non_exhaustive()
    }
}

/// An Ed25519 signing key from a 32-byte seed (libolm's `olm_pk_signing`), as the master,
/// self-signing and user-signing cross-signing keys are.
///
/// ```
/// use ferrolm::pk::PkSigning;
/// let key = PkSigning::from_seed(&[1; 32]);
/// let signature = key.sign(b"{}");
/// assert!(key.public_key().verify(b"{}", &signature).is_ok());
/// ```
#[derive(Clone)]
pub struct PkSigning {
    pair: Ed25519Keypair,
}

impl PkSigning {
    /// A new random key.
    pub fn new() -> Self {
        Self { pair: Ed25519Keypair::new() }
    }

    /// The key of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { pair: Ed25519Keypair::from_seed(seed) }
    }

    /// The seed (what secret storage keeps for cross-signing keys).
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        self.pair.secret_key().seed().unwrap_or_else(|| Zeroizing::new([0; 32]))
    }

    /// The public key.
    pub fn public_key(&self) -> Ed25519PublicKey {
        self.pair.public_key()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Ed25519Signature {
        self.pair.sign(message)
    }
}

impl Default for PkSigning {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for PkSigning {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PkSigning").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_typed_errors() {
        let backup = PkDecryption::new();
        let message = PkEncryption::from_key(backup.public_key()).unwrap().encrypt(b"room key");
        let (c, m, e) = message.to_base64();
        assert_eq!(backup.decrypt(&PkMessage::from_base64(&c, &m, &e).unwrap()).unwrap(), b"room key");
        assert_eq!(PkDecryption::new().decrypt(&message), Err(PkError::InvalidMac));
        let mut corrupted = message.clone();
        corrupted.ciphertext[0] ^= 1; // the MAC does not cover it: caught by the padding, if at all
        assert!(backup.decrypt(&corrupted).map(|p| p != b"room key").unwrap_or(true));
        assert_eq!(PkMessage::from_base64(&c, "AAAA", &e), Err(PkError::InvalidMacLength(3)));
        assert_eq!(PkMessage::from_base64("!", &m, &e), Err(PkError::Base64("ciphertext")));
        assert_eq!(PkMessage::from_base64(&c, &m, "AAAA"), Err(PkError::InvalidKeyLength(3)));
        let small = PkMessage { ephemeral_key: Curve25519PublicKey::from_bytes([0; 32]), ..message };
        assert_eq!(backup.decrypt(&small), Err(PkError::NonContributoryKey));
        assert_eq!(PkEncryption::from_key(Curve25519PublicKey::from_bytes([0; 32])), Err(PkError::NonContributoryKey));
    }

    #[test]
    fn backup_decryption_has_one_failure_for_every_cause() {
        let backup = PkDecryption::new();
        let message = PkEncryption::from_key(backup.public_key()).unwrap().encrypt(b"{\"session_key\":\"k\"}");
        assert_eq!(backup.decrypt_backup(&message).unwrap().as_slice(), b"{\"session_key\":\"k\"}");
        // Find a ciphertext alteration that breaks the padding, and one that does not: the
        // legacy API tells them apart (the padding oracle), the backup API does not.
        let mut bad_padding = None;
        let mut good_padding = None;
        for byte in 0..=255u8 {
            let mut altered = message.clone();
            let last_block = altered.ciphertext.len() - 32;
            altered.ciphertext[last_block + 15] ^= byte;
            match backup.decrypt(&altered) {
                Err(PkError::InvalidPadding) => bad_padding = Some(altered),
                Ok(_) if byte != 0 => good_padding = Some(altered),
                _ => {}
            }
        }
        let (bad_padding, good_padding) = (bad_padding.unwrap(), good_padding.unwrap());
        assert_eq!(backup.decrypt(&bad_padding), Err(PkError::InvalidPadding));
        assert_eq!(backup.decrypt_backup(&bad_padding), Err(UndecryptableBackup));
        // Decrypts to garbage: the caller's JSON check must give the same outcome.
        assert!(backup.decrypt_backup(&good_padding).is_ok());
        let wrong_key = PkDecryption::new();
        assert_eq!(wrong_key.decrypt(&message), Err(PkError::InvalidMac));
        assert_eq!(wrong_key.decrypt_backup(&message), Err(UndecryptableBackup));
        let small = PkMessage { ephemeral_key: Curve25519PublicKey::from_bytes([0; 32]), ..message.clone() };
        assert_eq!(backup.decrypt_backup(&small), Err(UndecryptableBackup));
        assert_eq!(UndecryptableBackup.to_string(), "the backed-up room key could not be decrypted");
        let many = backup.decrypt_backup_many(&[message.clone(), bad_padding, message]);
        assert_eq!(many.iter().map(Result::is_ok).collect::<Vec<_>>(), vec![true, false, true]);
    }

    #[test]
    fn parallel_decryption_keeps_order_and_isolates_failures() {
        let backup = PkDecryption::new();
        let encryption = PkEncryption::from_key(backup.public_key()).unwrap();
        // Four blocks of work, the last one partial, with failures in two of them.
        let count = 3 * DECRYPT_MANY_BLOCK + 37;
        let mut messages: Vec<PkMessage> = (0..count as u32).map(|i| encryption.encrypt(&i.to_be_bytes())).collect();
        let broken = [77, 2 * DECRYPT_MANY_BLOCK + 5];
        for i in broken {
            messages[i].mac[0] ^= 1;
        }
        let results = backup.decrypt_many(&messages);
        assert_eq!(results.len(), count);
        for (i, result) in results.iter().enumerate() {
            if broken.contains(&i) {
                assert_eq!(result, &Err(PkError::InvalidMac));
            } else {
                assert_eq!(result.as_ref().unwrap(), &(i as u32).to_be_bytes().to_vec());
            }
        }
        // Fewer than two blocks: decrypted on the calling thread, with the same results.
        let few = &messages[..100];
        assert_eq!(backup.decrypt_many(few), few.iter().map(|m| backup.decrypt(m)).collect::<Vec<_>>());
    }

    #[test]
    fn pickles_in_both_formats() {
        let backup = PkDecryption::new();
        let key = PickleKey::new();
        assert_eq!(PkDecryption::from_pickle(&backup.pickle(&key), &key).unwrap().public_key(), backup.public_key());
        let libolm = PkDecryption::from_libolm_pickle(&backup.to_libolm_pickle(b"k"), b"k").unwrap();
        assert_eq!(*libolm.to_bytes(), *backup.to_bytes());
        assert_eq!(
            PkDecryption::from_libolm_pickle(&backup.to_libolm_pickle(b"k"), b"j").unwrap_err(),
            PickleError::Mac
        );
        assert!(PkDecryption::from_pickle(&backup.to_libolm_pickle(b"k"), &key).is_err());
        assert!(!format!("{backup:?}").contains(&base64_encode(*backup.to_bytes())));
    }
}
