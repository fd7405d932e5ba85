//! The store cipher, used by every back end: value sealing, keyed hashing of lookup keys, and
//! wrapping of the store key by a passphrase or a raw key.
//!
//! - **Store key**: 32 random bytes from the operating system, created with the store. Three
//!   keys are derived from it with HKDF-SHA-256 (distinct `info` strings): the value key, the
//!   lookup-hash key and the pickle key.
//! - **Values**: XChaCha20-Poly1305 under the value key, a fresh random 24-byte nonce per
//!   value, associated data = table id ‖ row key. A value moved to another row or table, or
//!   altered, fails to open. Layout: `version (1) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
//! - **Lookup keys** (user, device, room and session ids, sender keys, secret names, request
//!   ids): HMAC-SHA-256 under the lookup-hash key over a one-byte domain ‖ the identifier,
//!   truncated to 16 bytes. The file holds no Matrix identifier in the clear.
//! - **Key wrapping**: the store key is sealed (XChaCha20-Poly1305) under a key-encryption key
//!   derived from a passphrase with Argon2id (memory cost, iterations, lanes and a 16-byte salt
//!   stored beside it), or from a raw 32-byte key with HKDF-SHA-256 and the salt. The header
//!   (kind, parameters, salt) is the associated data, so altered parameters fail like a wrong
//!   secret. Changing the secret rewrites only this wrapping.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ferrolm::pickle::PickleKey;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::backend::Table;
use crate::error::{Result, StoreError};

/// Length of a keyed hash of a lookup key.
pub(crate) const HASH_LEN: usize = 16;
/// A keyed hash of a lookup key.
pub(crate) type LookupHash = [u8; HASH_LEN];

const VALUE_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// The secret that unlocks a store: a passphrase, or a raw 32-byte key kept by the platform
/// (a keychain or keystore). Zeroized on drop; `Debug` is redacted.
///
/// ```
/// use ferrolm_store::StoreSecret;
/// let by_passphrase = StoreSecret::passphrase("correct horse battery staple");
/// let by_key = StoreSecret::key([0x42; 32]);
/// assert_eq!(format!("{by_passphrase:?}"), "StoreSecret::Passphrase(<redacted>)");
/// assert_eq!(format!("{by_key:?}"), "StoreSecret::Key(<redacted>)");
/// ```
#[derive(Clone)]
pub struct StoreSecret(SecretInner);

#[derive(Clone)]
enum SecretInner {
    Passphrase(Zeroizing<String>),
    Key(Zeroizing<[u8; 32]>),
}

impl StoreSecret {
    /// A passphrase (stretched with Argon2id).
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        Self(SecretInner::Passphrase(Zeroizing::new(passphrase.into())))
    }

    /// A raw 32-byte key (from a platform keystore; not stretched).
    pub fn key(key: [u8; 32]) -> Self {
        Self(SecretInner::Key(Zeroizing::new(key)))
    }

    fn kind_name(&self) -> &'static str {
        match self.0 {
            SecretInner::Passphrase(_) => "passphrase",
            SecretInner::Key(_) => "raw key",
        }
    }
}

impl core::fmt::Debug for StoreSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            SecretInner::Passphrase(_) => f.write_str("StoreSecret::Passphrase(<redacted>)"),
            SecretInner::Key(_) => f.write_str("StoreSecret::Key(<redacted>)"),
        }
    }
}

/// Argon2id parameters for passphrase-wrapped stores. They are stored beside the wrapped key,
/// so a store opens with the parameters it was created with.
///
/// The default is memory-hard: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommendation,
/// single-lane). Tests use [`KdfParams::new`] with small values to stay fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    iterations: u32,
    lanes: u32,
}

/// The largest memory cost a stored parameter set may ask for (4 GiB), so a tampered file
/// cannot make opening it allocate without bound.
pub const MAX_KDF_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// The largest pass count a stored parameter set may ask for.
pub const MAX_KDF_ITERATIONS: u32 = 64;
/// The largest lane count a stored parameter set may ask for.
pub const MAX_KDF_LANES: u32 = 16;

impl KdfParams {
    /// Argon2id with `memory_kib` KiB of memory, `iterations` passes and `lanes` lanes.
    /// `memory_kib` must be at least `8 × lanes`, and every value at most the `MAX_KDF_*`
    /// bounds.
    pub fn new(memory_kib: u32, iterations: u32, lanes: u32) -> Result<Self> {
        let params = Self { memory_kib, iterations, lanes };
        params.validate()?;
        Ok(params)
    }

    /// The memory cost in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// The number of passes.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The number of lanes.
    pub fn lanes(&self) -> u32 {
        self.lanes
    }

    fn validate(&self) -> Result<()> {
        if self.lanes == 0 || self.lanes > MAX_KDF_LANES {
            return Err(StoreError::InvalidKdfParams("lanes must be between 1 and 16"));
        }
        if self.iterations == 0 || self.iterations > MAX_KDF_ITERATIONS {
            return Err(StoreError::InvalidKdfParams("iterations must be between 1 and 64"));
        }
        if self.memory_kib < 8 * self.lanes || self.memory_kib > MAX_KDF_MEMORY_KIB {
            return Err(StoreError::InvalidKdfParams("memory must be between 8 KiB per lane and 4 GiB"));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.lanes, Some(32))
            .map_err(|_| StoreError::InvalidKdfParams("rejected by Argon2"))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
            .map_err(|_| StoreError::InvalidKdfParams("rejected by Argon2"))?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self { memory_kib: 64 * 1024, iterations: 3, lanes: 1 }
    }
}

/// How the store key is wrapped, as shown by `inspect` (no secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapKind {
    /// By a passphrase, with these Argon2id parameters.
    Passphrase(KdfParams),
    /// By a raw 32-byte key.
    RawKey,
}

const WRAP_VERSION: u8 = 1;
const WRAP_PASSPHRASE: u8 = 1;
const WRAP_RAW_KEY: u8 = 2;
const SALT_LEN: usize = 16;
const WRAP_INFO: &[u8] = b"ferrolm-store key wrap v1";

/// The wrapped store key as stored in the meta table:
/// `version ‖ kind ‖ [memory ‖ iterations ‖ lanes (u32 LE each)] ‖ salt (16) ‖ nonce (24) ‖ sealed key (48)`.
pub(crate) fn wrap_store_key(store_key: &[u8; 32], secret: &StoreSecret, kdf: KdfParams) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut header = vec![WRAP_VERSION];
    let kek = match &secret.0 {
        SecretInner::Passphrase(passphrase) => {
            kdf.validate()?;
            header.push(WRAP_PASSPHRASE);
            header.extend_from_slice(&kdf.memory_kib.to_le_bytes());
            header.extend_from_slice(&kdf.iterations.to_le_bytes());
            header.extend_from_slice(&kdf.lanes.to_le_bytes());
            kdf.derive(passphrase, &salt)?
        }
        SecretInner::Key(key) => {
            header.push(WRAP_RAW_KEY);
            hkdf_32(key.as_ref(), &salt, WRAP_INFO)
        }
    };
    header.extend_from_slice(&salt);
    let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
    let nonce = random_nonce();
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: store_key, aad: &header })
        .map_err(|_| StoreError::MalformedMeta("could not seal the store key"))?;
    let mut out = header;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

struct ParsedWrap<'a> {
    header: &'a [u8],
    kind: WrapKind,
    salt: &'a [u8],
    nonce: &'a [u8],
    sealed: &'a [u8],
}

fn parse_wrap(bytes: &[u8]) -> Result<ParsedWrap<'_>> {
    const BAD: StoreError = StoreError::MalformedMeta("the wrapped store key is malformed");
    let (&version, rest) = bytes.split_first().ok_or(BAD)?;
    if version != WRAP_VERSION {
        return Err(StoreError::MalformedMeta("unknown key-wrapping version"));
    }
    let (&kind, rest) = rest.split_first().ok_or(BAD)?;
    let (kind, rest) = match kind {
        WRAP_PASSPHRASE => {
            let (params, rest) = rest.split_at_checked(12).ok_or(BAD)?;
            let word = |i: usize| -> Result<u32> {
                let b: [u8; 4] = params.get(i * 4..i * 4 + 4).and_then(|s| s.try_into().ok()).ok_or(BAD)?;
                Ok(u32::from_le_bytes(b))
            };
            let kdf = KdfParams { memory_kib: word(0)?, iterations: word(1)?, lanes: word(2)? };
            kdf.validate()
                .map_err(|_| StoreError::MalformedMeta("the stored key-derivation parameters are out of bounds"))?;
            (WrapKind::Passphrase(kdf), rest)
        }
        WRAP_RAW_KEY => (WrapKind::RawKey, rest),
        _ => return Err(StoreError::MalformedMeta("unknown key-wrapping kind")),
    };
    let header_len = bytes.len() - rest.len();
    let (salt, rest) = rest.split_at_checked(SALT_LEN).ok_or(BAD)?;
    let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(BAD)?;
    if sealed.len() != 32 + TAG_LEN {
        return Err(BAD);
    }
    let header = bytes.get(..header_len + SALT_LEN).ok_or(BAD)?;
    Ok(ParsedWrap { header, kind, salt, nonce, sealed })
}

/// How a stored wrapping is keyed (for `inspect`).
pub(crate) fn wrap_kind(bytes: &[u8]) -> Result<WrapKind> {
    parse_wrap(bytes).map(|p| p.kind)
}

/// Unwraps the store key. A wrong secret, or altered parameters, salt or sealed key: `WrongSecret`.
pub(crate) fn unwrap_store_key(bytes: &[u8], secret: &StoreSecret) -> Result<Zeroizing<[u8; 32]>> {
    let parsed = parse_wrap(bytes)?;
    let kek = match (&parsed.kind, &secret.0) {
        (WrapKind::Passphrase(kdf), SecretInner::Passphrase(passphrase)) => kdf.derive(passphrase, parsed.salt)?,
        (WrapKind::RawKey, SecretInner::Key(key)) => hkdf_32(key.as_ref(), parsed.salt, WRAP_INFO),
        (WrapKind::Passphrase(_), _) | (WrapKind::RawKey, _) => {
            let expected = if matches!(parsed.kind, WrapKind::RawKey) { "raw key" } else { "passphrase" };
            return Err(StoreError::WrongSecretKind { expected, given: secret.kind_name() });
        }
    };
    let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(XNonce::from_slice(parsed.nonce), Payload { msg: parsed.sealed, aad: parsed.header })
            .map_err(|_| StoreError::WrongSecret)?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(StoreError::WrongSecret);
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

fn random_nonce() -> XNonce {
    let mut nonce = XNonce::default();
    OsRng.fill_bytes(&mut nonce);
    nonce
}

fn hkdf_32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA-256 output length.
    let _ = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, out.as_mut());
    out
}

/// The keys derived from the store key. Zeroized on drop (the AEAD zeroizes its own key),
/// except the lookup-hash HMAC state, see [`StoreCipher::lookup`].
pub(crate) struct StoreCipher {
    store_key: Zeroizing<[u8; 32]>,
    values: XChaCha20Poly1305,
    /// HMAC-SHA-256 already keyed with the lookup-hash key (its inner and outer SHA-256 states
    /// after absorbing `key ⊕ ipad` and `key ⊕ opad`), cloned per hash so each hash costs two
    /// compressions fewer than keying from the key. These states are key material: whoever has
    /// them can compute lookup hashes. The `hmac` crate does not zeroize them, so they live in
    /// this one heap allocation for the store's lifetime (never moved, so never copied
    /// elsewhere) and are NOT wiped when it is freed; the per-hash clones live on the stack
    /// and are consumed by `finalize`. The lookup-hash key itself is wiped right after keying.
    lookup: Box<Hmac<Sha256>>,
    pickle: PickleKey,
}

impl core::fmt::Debug for StoreCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StoreCipher(<redacted>)")
    }
}

/// A 32-byte store key, fresh from the operating system.
pub(crate) fn new_store_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(key.as_mut());
    key
}

impl StoreCipher {
    pub(crate) fn new(store_key: &[u8; 32]) -> Self {
        let values = hkdf_32(store_key, b"", b"ferrolm-store values v1");
        let lookup = hkdf_32(store_key, b"", b"ferrolm-store lookup hashes v1");
        let pickle = hkdf_32(store_key, b"", b"ferrolm-store pickles v1");
        // HMAC takes keys of any length, so keying it cannot fail; the fallback (an HMAC keyed
        // with zeros) is unreachable.
        let lookup = Box::new(
            <Hmac<Sha256> as Mac>::new_from_slice(lookup.as_ref())
                .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default())),
        );
        Self {
            store_key: Zeroizing::new(*store_key),
            values: XChaCha20Poly1305::new(values.as_ref().into()),
            lookup,
            pickle: PickleKey::from_bytes(*pickle),
        }
    }

    /// The store key itself (to re-wrap it under a new secret).
    pub(crate) fn store_key(&self) -> &[u8; 32] {
        &self.store_key
    }

    /// The key that encrypts the core's pickles.
    pub(crate) fn pickle_key(&self) -> &PickleKey {
        &self.pickle
    }

    /// The keyed hash of one identifier in a domain.
    pub(crate) fn hash(&self, domain: u8, id: &[u8]) -> LookupHash {
        let mut mac = Hmac::<Sha256>::clone(&self.lookup);
        mac.update(&[domain]);
        mac.update(id);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; HASH_LEN];
        out.copy_from_slice(full.get(..HASH_LEN).unwrap_or(&[0; HASH_LEN]));
        out
    }

    /// Seals a value for one row.
    pub(crate) fn seal(&self, table: Table, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_nonce();
        let aad = associated_data(table, key);
        // Encrypted in place in the row's buffer, sized for it first: no second allocation,
        // and the plaintext's bytes are overwritten where they were copied.
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.push(VALUE_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let too_large = StoreError::InvalidRecord("value too large to seal");
        let body = out.get_mut(1 + NONCE_LEN..).ok_or(too_large.clone())?;
        let tag = self.values.encrypt_in_place_detached(&nonce, &aad, body).map_err(|_| too_large)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a value read from one row.
    pub(crate) fn open(&self, table: Table, key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let rejected = StoreError::ValueRejected { table };
        let (&version, rest) = sealed.split_first().ok_or(rejected.clone())?;
        if version != VALUE_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(rejected);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(table, key);
        self.values
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| rejected)
    }
}

/// Table id ‖ row key: what every value (and every pickle inside it) is bound to.
pub(crate) fn associated_data(table: Table, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + key.len());
    aad.push(table.id());
    aad.extend_from_slice(key);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams::new(64, 1, 1).unwrap()
    }

    #[test]
    fn a_sealed_value_is_version_nonce_and_the_aeads_ciphertext_and_tag() {
        let cipher = StoreCipher::new(&[1; 32]);
        let plaintext = vec![0x5a; 1_000];
        let sealed = cipher.seal(Table::OlmSessions, b"row", &plaintext).unwrap();
        assert_eq!(sealed.len(), SEAL_OVERHEAD + plaintext.len());
        assert_eq!(sealed[0], VALUE_VERSION);
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let aad = associated_data(Table::OlmSessions, b"row");
        let expected = cipher.values.encrypt(nonce, Payload { msg: &plaintext, aad: &aad }).unwrap();
        assert_eq!(&sealed[1 + NONCE_LEN..], &expected[..]);
        assert_eq!(&*cipher.open(Table::OlmSessions, b"row", &sealed).unwrap(), &plaintext[..]);
    }

    #[test]
    fn values_are_bound_to_their_row_and_table() {
        let cipher = StoreCipher::new(&[1; 32]);
        let sealed = cipher.seal(Table::Devices, b"row", b"value").unwrap();
        assert_eq!(sealed.len(), b"value".len() + SEAL_OVERHEAD);
        assert_eq!(cipher.open(Table::Devices, b"row", &sealed).unwrap().as_slice(), b"value");
        assert_ne!(sealed, cipher.seal(Table::Devices, b"row", b"value").unwrap(), "fresh nonce");
        assert_eq!(
            cipher.open(Table::Devices, b"rox", &sealed),
            Err(StoreError::ValueRejected { table: Table::Devices })
        );
        assert!(cipher.open(Table::Identities, b"row", &sealed).is_err());
        assert!(StoreCipher::new(&[2; 32]).open(Table::Devices, b"row", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x10;
            assert!(cipher.open(Table::Devices, b"row", &flipped).is_err(), "flip at {i}");
        }
        assert!(cipher.open(Table::Devices, b"row", &sealed[..20]).is_err());
        assert!(cipher.open(Table::Devices, b"row", &[]).is_err());
    }

    #[test]
    fn lookup_hashes_are_keyed_and_domain_separated() {
        let a = StoreCipher::new(&[1; 32]);
        let b = StoreCipher::new(&[2; 32]);
        assert_eq!(a.hash(1, b"@alice:example.org"), a.hash(1, b"@alice:example.org"));
        assert_ne!(a.hash(1, b"@alice:example.org"), a.hash(2, b"@alice:example.org"));
        assert_ne!(a.hash(1, b"@alice:example.org"), b.hash(1, b"@alice:example.org"));
    }

    #[test]
    fn precomputed_lookup_state_gives_the_same_hashes_as_keying_per_call() {
        // The hash the store has always written: HMAC keyed from the derived key, over
        // domain ‖ id, truncated. Existing files are indexed by these values.
        let key = hkdf_32(&[1; 32], b"", b"ferrolm-store lookup hashes v1");
        let cipher = StoreCipher::new(&[1; 32]);
        for (domain, id) in [(1u8, &b"@alice:example.org"[..]), (4, b""), (9, &[0xAB; 200][..])] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).unwrap();
            mac.update(&[domain]);
            mac.update(id);
            let full = mac.finalize().into_bytes();
            assert_eq!(cipher.hash(domain, id).as_slice(), &full[..HASH_LEN]);
            // Hashing does not consume the keyed state.
            assert_eq!(cipher.hash(domain, id), cipher.hash(domain, id));
        }
    }

    #[test]
    fn passphrase_wrapping() {
        let key = new_store_key();
        let secret = StoreSecret::passphrase("hunter2");
        let wrapped = wrap_store_key(&key, &secret, fast()).unwrap();
        assert_eq!(*unwrap_store_key(&wrapped, &secret).unwrap(), *key);
        assert_eq!(wrap_kind(&wrapped).unwrap(), WrapKind::Passphrase(fast()));
        assert_eq!(unwrap_store_key(&wrapped, &StoreSecret::passphrase("hunter3")), Err(StoreError::WrongSecret));
        assert_eq!(
            unwrap_store_key(&wrapped, &StoreSecret::key([0; 32])),
            Err(StoreError::WrongSecretKind { expected: "passphrase", given: "raw key" })
        );
        // Altered parameters (here: one more pass) derive another key: refused as a wrong secret.
        let mut altered = wrapped.clone();
        altered[6] ^= 2;
        assert_eq!(unwrap_store_key(&altered, &secret), Err(StoreError::WrongSecret));
        // Parameters out of bounds are refused before any work.
        let mut huge = wrapped.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(unwrap_store_key(&huge, &secret), Err(StoreError::MalformedMeta(_))));
        for len in [0, 1, 2, 10, wrapped.len() - 1] {
            assert!(unwrap_store_key(&wrapped[..len], &secret).is_err());
        }
    }

    #[test]
    fn raw_key_wrapping() {
        let key = new_store_key();
        let secret = StoreSecret::key([9; 32]);
        let wrapped = wrap_store_key(&key, &secret, KdfParams::default()).unwrap();
        assert_eq!(wrap_kind(&wrapped).unwrap(), WrapKind::RawKey);
        assert_eq!(*unwrap_store_key(&wrapped, &secret).unwrap(), *key);
        assert_eq!(unwrap_store_key(&wrapped, &StoreSecret::key([8; 32])), Err(StoreError::WrongSecret));
        assert!(matches!(
            unwrap_store_key(&wrapped, &StoreSecret::passphrase("x")),
            Err(StoreError::WrongSecretKind { .. })
        ));
    }

    #[test]
    fn kdf_parameter_bounds() {
        assert!(KdfParams::new(8, 1, 1).is_ok());
        assert!(KdfParams::new(7, 1, 1).is_err());
        assert!(KdfParams::new(64, 0, 1).is_err());
        assert!(KdfParams::new(64, 1, 0).is_err());
        assert!(KdfParams::new(MAX_KDF_MEMORY_KIB + 1, 1, 1).is_err());
        assert_eq!(KdfParams::default().memory_kib(), 65536);
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", StoreCipher::new(&[1; 32])), "StoreCipher(<redacted>)");
    }
}
