//! No secret survives in freed heap memory.
//!
//! This test binary installs a global allocator that wraps the system allocator and, while
//! recording, copies every block it frees into a log: on `dealloc`, and on `realloc`, which it
//! always performs as allocate-copy-free so that the old block is freed too (the worst case a
//! real `realloc` may produce). The scenario then runs every part of the core where secrets
//! flow: accounts with 100 one-time keys and fallback keys, Olm sessions with skipped message
//! keys, Megolm sessions, SAS, PK (backup) decryption, key export files, secret storage, and
//! the pickling and unpickling of every type in both formats. Objects are also moved through
//! heap blocks that are then freed (a `Box` moved out of, a `Vec` that grows), as a store's
//! caches would move them.
//!
//! The test learns the secrets through the public API only: it decrypts libolm pickles (a
//! documented format) and ferrolm pickles with the pickle keys it chose, reads exported Megolm
//! ratchets, PK and secret storage keys, and derives from those the message keys the core
//! derives in passing. When everything has been dropped, recording stops and the log is
//! scanned: any 16-byte run of any secret in any freed block is a leak. A canary that the test
//! leaks on purpose proves the scan sees what it must.
//!
//! It is its own test target so that its allocator is scoped to it; it needs `unsafe` for the
//! `GlobalAlloc` implementation, which the library itself never uses.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use aes::Aes256;
use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use ferrolm::megolm::{self, GroupSession, InboundGroupSession};
use ferrolm::olm::{self, Account, OlmMessage, Session, SessionConfig};
use ferrolm::pickle::PickleKey;
use ferrolm::pk::{PkDecryption, PkEncryption, PkMessage};
use ferrolm::sas::Sas;
use ferrolm::secret_storage::SecretStorageKey;
use ferrolm::types::{Curve25519PublicKey, base64_decode};

// ---------------------------------------------------------------------------------------------
// The spy allocator.

struct Spy;

#[global_allocator]
static ALLOCATOR: Spy = Spy;

static RECORDING: AtomicBool = AtomicBool::new(false);
static LOG: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static LOG_USED: AtomicUsize = AtomicUsize::new(0);
static LOG_OVERFLOW: AtomicUsize = AtomicUsize::new(0);
static FREED_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static FREED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The log's size. The scenario frees about 5 MiB; pages the log does not use are never touched.
const LOG_CAPACITY: usize = 64 << 20;
const HEADER: usize = 8;

/// Copies a block that is about to be freed into the log: its length, then its bytes.
///
/// # Safety
/// `ptr` must be valid for reads of `size` bytes.
unsafe fn record(ptr: *const u8, size: usize) {
    let log = LOG.load(Ordering::Acquire);
    if log.is_null() || size == 0 {
        return;
    }
    FREED_BLOCKS.fetch_add(1, Ordering::Relaxed);
    FREED_BYTES.fetch_add(size, Ordering::Relaxed);
    let entry = HEADER + size.next_multiple_of(HEADER);
    let start = LOG_USED.fetch_add(entry, Ordering::Relaxed);
    if start + entry > LOG_CAPACITY {
        LOG_OVERFLOW.fetch_add(size, Ordering::Relaxed);
        return;
    }
    // SAFETY: `start..start + entry` lies inside the log and was reserved for this thread
    // alone by the `fetch_add` above; `ptr` is readable for `size` bytes.
    unsafe {
        log.add(start).cast::<u64>().write(size as u64);
        core::ptr::copy_nonoverlapping(ptr, log.add(start + HEADER), size);
    }
}

// SAFETY: every method forwards to `System` with the caller's layout; `realloc` while
// recording allocates the new block with the same alignment, copies the smaller of the two
// sizes and frees the old block with its own layout, which is what `realloc` may do.
unsafe impl GlobalAlloc for Spy {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if RECORDING.load(Ordering::Acquire) {
            unsafe { record(ptr, layout.size()) };
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !RECORDING.load(Ordering::Acquire) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Always move, so that the old block is freed: the worst case of a real realloc.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                record(ptr, layout.size());
                System.dealloc(ptr, layout);
            }
        }
        new
    }
}

fn start_recording() {
    let layout = Layout::from_size_align(LOG_CAPACITY, HEADER).unwrap();
    // SAFETY: a non-zero size; the block is freed in `stop_recording` with the same layout.
    let log = unsafe { System.alloc_zeroed(layout) };
    assert!(!log.is_null(), "could not reserve the log");
    LOG.store(log, Ordering::Release);
    RECORDING.store(true, Ordering::SeqCst);
}

/// Stops recording and hands the logged blocks to `scan`, then frees the log.
fn stop_recording<R>(scan: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> R) -> R {
    RECORDING.store(false, Ordering::SeqCst);
    let log = LOG.swap(core::ptr::null_mut(), Ordering::SeqCst);
    let used = LOG_USED.load(Ordering::SeqCst).min(LOG_CAPACITY);
    let mut position = 0;
    let mut blocks = core::iter::from_fn(|| {
        if position + HEADER > used {
            return None;
        }
        // SAFETY: entries were written whole below `used` (entries that did not fit were not
        // written, and only the last ones can fail to fit); recording has stopped.
        let size = unsafe { log.add(position).cast::<u64>().read() } as usize;
        let entry = HEADER + size.next_multiple_of(HEADER);
        if size == 0 || position + entry > used {
            return None;
        }
        let block = unsafe { core::slice::from_raw_parts(log.add(position + HEADER), size) };
        position += entry;
        Some(block)
    });
    let result = scan(&mut blocks);
    // SAFETY: allocated in `start_recording` with this layout; no one writes to it any more.
    unsafe { System.dealloc(log, Layout::from_size_align(LOG_CAPACITY, HEADER).unwrap()) };
    result
}

// ---------------------------------------------------------------------------------------------
// What the test knows.

/// The secrets learned so far, each under a label saying what it is. Every copy the test makes
/// is zeroizing and exactly sized, so that the test itself frees no secret.
struct Secrets {
    known: Vec<(&'static str, Zeroizing<Vec<u8>>)>,
}

/// The shortest run of a secret that counts as a leak.
const WINDOW: usize = 16;

impl Secrets {
    fn new() -> Self {
        Self { known: Vec::with_capacity(1 << 14) }
    }

    fn add(&mut self, label: &'static str, bytes: &[u8]) {
        assert!(bytes.len() >= WINDOW, "{label}: a secret shorter than the scan window");
        let mut copy = Zeroizing::new(Vec::with_capacity(bytes.len()));
        copy.extend_from_slice(bytes);
        self.known.push((label, copy));
    }

    /// An X25519 secret as stored, and clamped as x25519-dalek uses it.
    fn add_curve25519(&mut self, label: &'static str, secret: &[u8]) {
        self.add(label, secret);
        let mut clamped = Zeroizing::new([0u8; 32]);
        clamped.copy_from_slice(secret);
        clamped[0] &= 248;
        clamped[31] &= 127;
        clamped[31] |= 64;
        self.add(label, clamped.as_ref());
    }

    /// An Ed25519 seed with the expanded key and reduced scalar ed25519-dalek computes from it.
    fn add_ed25519_seed(&mut self, seed: &[u8]) {
        self.add("Ed25519 seed", seed);
        let mut expanded = Zeroizing::new([0u8; 64]);
        expanded.copy_from_slice(&Sha512::digest(seed));
        expanded[0] &= 248;
        expanded[31] &= 63;
        expanded[31] |= 64;
        self.add_ed25519_expanded(expanded.as_ref());
    }

    /// libolm's expanded Ed25519 key (clamped scalar ‖ hash prefix) and its reduced scalar.
    fn add_ed25519_expanded(&mut self, expanded: &[u8]) {
        self.add("Ed25519 expanded key", expanded);
        let bytes: &[u8; 64] = expanded.try_into().unwrap();
        let key = ed25519_dalek::hazmat::ExpandedSecretKey::from_bytes(bytes); // zeroized on drop
        self.add("Ed25519 expanded key", key.scalar.as_bytes());
    }

    /// An Olm chain key, and the next message keys (and their AES key, HMAC key and IV) that
    /// the core derives from it.
    fn add_chain_key(&mut self, chain_key: &[u8], following: usize) {
        let mut chain = Zeroizing::new(<[u8; 32]>::try_from(chain_key).unwrap());
        for i in 0..=following {
            self.add("Olm chain key", chain.as_ref());
            if i == following {
                break;
            }
            let message_key = Zeroizing::new(hmac_sha256(chain.as_ref(), &[1]));
            self.add_olm_message_key(message_key.as_ref());
            *chain = hmac_sha256(chain.as_ref(), &[2]);
        }
    }

    fn add_olm_message_key(&mut self, message_key: &[u8]) {
        self.add("Olm message key", message_key);
        let okm = hkdf80(&[], message_key, b"OLM_KEYS");
        self.add("Olm message key", &okm[..]);
    }

    /// A Megolm ratchet (128 bytes) and the AES key, HMAC key and IV of its message.
    fn add_megolm_ratchet(&mut self, ratchet: &[u8]) {
        self.add("Megolm ratchet", ratchet);
        let okm = hkdf80(&[], ratchet, b"MEGOLM_KEYS");
        self.add("Megolm message key", &okm[..]);
    }

    /// A pickle key and, for libolm's format, what HKDF derives from it.
    fn add_libolm_pickle_key(&mut self, key: &[u8]) {
        self.add("pickle key", key);
        let okm = hkdf80(&[], key, b"Pickle");
        self.add("pickle key", &okm[..]);
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hkdf80(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 80]> {
    let mut okm = Zeroizing::new([0u8; 80]);
    let salt = if salt.is_empty() { None } else { Some(salt) };
    hkdf::Hkdf::<Sha256>::new(salt, ikm).expand(info, okm.as_mut()).unwrap();
    okm
}

/// AES-256-CBC decryption in a zeroizing buffer of exactly the ciphertext's size.
fn cbc_decrypt(keys: &[u8; 80], ciphertext: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    buf.extend_from_slice(ciphertext);
    let decryptor = cbc::Decryptor::<Aes256>::new(keys[..32].into(), keys[64..80].into());
    let len = decryptor.decrypt_padded_mut::<Pkcs7>(&mut buf).expect("padding").len();
    buf.truncate(len);
    buf
}

/// The plaintext of a libolm pickle (`HKDF(key, "Pickle")`, AES-256-CBC, an 8-byte MAC).
fn open_libolm(pickle: &str, key: &[u8]) -> Zeroizing<Vec<u8>> {
    let bytes = base64_decode(pickle).unwrap();
    let keys = hkdf80(&[], key, b"Pickle");
    cbc_decrypt(&keys, &bytes[..bytes.len() - 8])
}

/// The plaintext of a ferrolm pickle: `version ‖ kind ‖ nonce (32) ‖ ciphertext ‖ MAC (32)`,
/// keys from `HKDF(salt = nonce, pickle key, "ferrolm pickle v<version>")`. The MAC is the
/// library's to check; the test only needs the plaintext.
fn open_ferrolm(pickle: &str, key: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let bytes = base64_decode(pickle).unwrap();
    let info = format!("ferrolm pickle v{}", bytes[0]);
    let keys = hkdf80(&bytes[2..34], key, info.as_bytes());
    cbc_decrypt(&keys, &bytes[34..bytes.len() - 32])
}

/// Reads a pickle's plaintext field by field.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }

    fn done(&self) {
        assert!(self.0.is_empty(), "trailing bytes in a pickle: the layout read here is out of date");
    }
}

/// libolm's account pickle (version 4).
fn learn_libolm_account(secrets: &mut Secrets, plaintext: &[u8]) {
    let mut r = Reader(plaintext);
    assert_eq!(r.u32(), 4);
    r.take(32);
    secrets.add_ed25519_expanded(r.take(64));
    r.take(32);
    secrets.add_curve25519("identity Curve25519 key", r.take(32));
    for _ in 0..r.u32() {
        r.take(4 + 1 + 32);
        secrets.add_curve25519("one-time key", r.take(32));
    }
    for _ in 0..r.u8() {
        r.take(4 + 1 + 32);
        secrets.add_curve25519("fallback key", r.take(32));
    }
    r.u32();
    r.done();
}

/// ferrolm's account pickle (version 1).
fn learn_ferrolm_account(secrets: &mut Secrets, plaintext: &[u8]) {
    let mut r = Reader(plaintext);
    assert_eq!(r.u8(), 1);
    match r.u8() {
        0 => secrets.add_ed25519_seed(r.take(32)),
        _ => secrets.add_ed25519_expanded(r.take(64)),
    }
    r.take(32);
    r.take(32);
    secrets.add_curve25519("identity Curve25519 key", r.take(32));
    r.u32();
    for _ in 0..r.u32() {
        r.take(4 + 1 + 32);
        secrets.add_curve25519("one-time key", r.take(32));
    }
    for _ in 0..r.u8() {
        r.take(4 + 1 + 32);
        secrets.add_curve25519("fallback key", r.take(32));
    }
    r.done();
}

/// How many message keys past each learned chain key the test derives.
const FOLLOWING: usize = 4;

/// libolm's session pickle (version 1).
fn learn_libolm_session(secrets: &mut Secrets, plaintext: &[u8]) {
    let mut r = Reader(plaintext);
    assert_eq!(r.u32(), 1);
    r.u8();
    r.take(96);
    secrets.add("root key", r.take(32));
    for _ in 0..r.u32() {
        r.take(32);
        secrets.add_curve25519("ratchet key", r.take(32));
        secrets.add_chain_key(r.take(32), FOLLOWING);
        r.u32();
    }
    for _ in 0..r.u32() {
        r.take(32);
        secrets.add_chain_key(r.take(32), FOLLOWING);
        r.u32();
    }
    for _ in 0..r.u32() {
        r.take(32);
        secrets.add_olm_message_key(r.take(32));
        r.u32();
    }
    r.done();
}

/// ferrolm's session pickle (version 1).
fn learn_ferrolm_session(secrets: &mut Secrets, plaintext: &[u8]) {
    let mut r = Reader(plaintext);
    assert_eq!(r.u8(), 1);
    r.u8();
    r.take(96);
    r.u8();
    secrets.add("root key", r.take(32));
    if r.u8() == 1 {
        r.take(32);
        secrets.add_curve25519("ratchet key", r.take(32));
        secrets.add_chain_key(r.take(32), FOLLOWING);
        r.u32();
    } else {
        r.take(32);
    }
    for _ in 0..r.u8() {
        r.take(32);
        secrets.add_chain_key(r.take(32), FOLLOWING);
        r.u32();
        for _ in 0..r.u8() {
            r.u32();
            secrets.add_olm_message_key(r.take(32));
        }
    }
    r.done();
}

/// A Megolm ratchet as pickled: 128 bytes, then its counter.
fn learn_ratchet(secrets: &mut Secrets, r: &mut Reader<'_>) {
    secrets.add_megolm_ratchet(r.take(128));
    r.u32();
}

fn learn_libolm_group_session(secrets: &mut Secrets, plaintext: &[u8]) {
    let mut r = Reader(plaintext);
    assert_eq!(r.u32(), 1);
    learn_ratchet(secrets, &mut r);
    r.take(32);
    secrets.add_ed25519_expanded(r.take(64));
    r.done();
}

fn learn_ferrolm_group_session(secrets: &mut Secrets, plaintext: &[u8]) {
    let mut r = Reader(plaintext);
    assert_eq!(r.u8(), 1);
    r.u8();
    learn_ratchet(secrets, &mut r);
    match r.u8() {
        0 => secrets.add_ed25519_seed(r.take(32)),
        _ => secrets.add_ed25519_expanded(r.take(64)),
    }
    r.take(32);
    r.done();
}

fn learn_inbound_group_session(secrets: &mut Secrets, plaintext: &[u8], libolm: bool) {
    let mut r = Reader(plaintext);
    if libolm {
        assert_eq!(r.u32(), 2);
    } else {
        assert_eq!(r.u8(), 1);
        r.u8();
    }
    learn_ratchet(secrets, &mut r);
    learn_ratchet(secrets, &mut r);
    r.take(32);
    r.u8();
    r.done();
}

fn learn_pk(secrets: &mut Secrets, plaintext: &[u8], libolm: bool) {
    let mut r = Reader(plaintext);
    if libolm {
        assert_eq!(r.u32(), 1);
    } else {
        assert_eq!(r.u8(), 1);
    }
    r.take(32);
    secrets.add_curve25519("PK decryption key", r.take(32));
    r.done();
}

/// Pickling keys the test uses throughout.
struct Keys {
    ferrolm: PickleKey,
    ferrolm_bytes: Zeroizing<[u8; 32]>,
    libolm: Zeroizing<[u8; 32]>,
}

impl Keys {
    fn new(secrets: &mut Secrets) -> Self {
        let ferrolm = PickleKey::new();
        let ferrolm_bytes = Zeroizing::new(*ferrolm.as_bytes());
        let libolm = Zeroizing::new(*PickleKey::new().as_bytes());
        secrets.add("pickle key", ferrolm_bytes.as_ref());
        secrets.add_libolm_pickle_key(libolm.as_ref());
        Self { ferrolm, ferrolm_bytes, libolm }
    }
}

/// Learns an account's secrets from both its pickles, and restores it from each.
fn learn_account(secrets: &mut Secrets, keys: &Keys, account: &Account) -> (Account, Account) {
    let libolm = account.to_libolm_pickle(keys.libolm.as_ref()).unwrap();
    learn_libolm_account(secrets, &open_libolm(&libolm, keys.libolm.as_ref()));
    let ferrolm = account.pickle(&keys.ferrolm);
    learn_ferrolm_account(secrets, &open_ferrolm(&ferrolm, &keys.ferrolm_bytes));
    (
        Account::from_libolm_pickle(&libolm, keys.libolm.as_ref()).unwrap(),
        Account::from_pickle(&ferrolm, &keys.ferrolm).unwrap(),
    )
}

/// Learns a session's secrets from its pickles (libolm's too for version 1), and restores it.
fn learn_session(secrets: &mut Secrets, keys: &Keys, session: &Session) -> Vec<Session> {
    let mut restored = Vec::new();
    if session.config() == SessionConfig::version_1() {
        let libolm = session.to_libolm_pickle(keys.libolm.as_ref()).unwrap();
        learn_libolm_session(secrets, &open_libolm(&libolm, keys.libolm.as_ref()));
        restored.push(Session::from_libolm_pickle(&libolm, keys.libolm.as_ref()).unwrap());
    }
    let ferrolm = session.pickle(&keys.ferrolm);
    learn_ferrolm_session(secrets, &open_ferrolm(&ferrolm, &keys.ferrolm_bytes));
    restored.push(Session::from_pickle(&ferrolm, &keys.ferrolm).unwrap());
    restored
}

fn learn_group_session(secrets: &mut Secrets, keys: &Keys, session: &GroupSession) -> Vec<GroupSession> {
    let mut restored = Vec::new();
    if session.config() == megolm::SessionConfig::version_1() {
        let libolm = session.to_libolm_pickle(keys.libolm.as_ref()).unwrap();
        learn_libolm_group_session(secrets, &open_libolm(&libolm, keys.libolm.as_ref()));
        restored.push(GroupSession::from_libolm_pickle(&libolm, keys.libolm.as_ref()).unwrap());
    }
    let ferrolm = session.pickle(&keys.ferrolm);
    learn_ferrolm_group_session(secrets, &open_ferrolm(&ferrolm, &keys.ferrolm_bytes));
    restored.push(GroupSession::from_pickle(&ferrolm, &keys.ferrolm).unwrap());
    restored
}

fn learn_inbound(secrets: &mut Secrets, keys: &Keys, session: &InboundGroupSession) -> Vec<InboundGroupSession> {
    let mut restored = Vec::new();
    if session.config() == megolm::SessionConfig::version_1() {
        let libolm = session.to_libolm_pickle(keys.libolm.as_ref()).unwrap();
        learn_inbound_group_session(secrets, &open_libolm(&libolm, keys.libolm.as_ref()), true);
        restored.push(InboundGroupSession::from_libolm_pickle(&libolm, keys.libolm.as_ref()).unwrap());
    }
    let ferrolm = session.pickle(&keys.ferrolm);
    learn_inbound_group_session(secrets, &open_ferrolm(&ferrolm, &keys.ferrolm_bytes), false);
    restored.push(InboundGroupSession::from_pickle(&ferrolm, &keys.ferrolm).unwrap());
    // Every ratchet from the first known index on, as exports give them.
    let first = session.first_known_index();
    for index in first..first + 24 {
        let export = session.export_at(index).unwrap();
        let bytes = export.to_bytes();
        secrets.add_megolm_ratchet(&bytes[5..133]);
        secrets.add("Megolm session key (base64)", export.to_base64().as_bytes());
    }
    restored
}

/// A libolm account pickle with a valid MAC whose plaintext (the account's secrets) ends in
/// invalid padding, as only someone holding the pickle key could make: the core decrypts it,
/// refuses it, and must not free the decrypted secrets.
fn unpickle_with_bad_padding(secrets: &mut Secrets, keys: &Keys, account: &Account) {
    use aes::cipher::{BlockEncryptMut, block_padding::NoPadding};
    let pickle = account.to_libolm_pickle(keys.libolm.as_ref()).unwrap();
    let plaintext = open_libolm(&pickle, keys.libolm.as_ref());
    learn_libolm_account(secrets, &plaintext);
    let padded_len = plaintext.len().next_multiple_of(16) + 16;
    let mut buf = Zeroizing::new(Vec::with_capacity(padded_len + 8));
    buf.extend_from_slice(&plaintext);
    buf.resize(padded_len, 0); // a last byte of 0 is never valid PKCS#7
    let derived = hkdf80(&[], keys.libolm.as_ref(), b"Pickle");
    let encryptor = cbc::Encryptor::<Aes256>::new(derived[..32].into(), derived[64..80].into());
    encryptor.encrypt_padded_mut::<NoPadding>(&mut buf, padded_len).unwrap();
    let mac = hmac_sha256(&derived[32..64], &buf);
    buf.extend_from_slice(&mac[..8]);
    let forged = ferrolm::types::base64_encode(buf.as_slice());
    assert_eq!(
        Account::from_libolm_pickle(&forged, keys.libolm.as_ref()).unwrap_err(),
        ferrolm::pickle::PickleError::Padding
    );
}

/// Moves a value into a heap block and out again, freeing the block without dropping the
/// value: what a store's cache does when it hands an object back. Whatever the value holds
/// inline ends up in freed memory.
fn through_heap<T>(value: T) -> T {
    let boxed = Box::new(value);
    *boxed
}

/// Moves values through a vector that reallocates as it grows (a cache filling up).
fn through_growing_vec<T>(values: Vec<T>) -> Vec<T> {
    let mut grown = Vec::with_capacity(1);
    for value in values {
        grown.push(value);
    }
    grown
}

fn zeroizing_text(parts: &[&str]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        text.push_str(part);
    }
    text
}

fn pre_key(message: OlmMessage) -> olm::PreKeyMessage {
    match message {
        OlmMessage::PreKey(m) => m,
        OlmMessage::Normal(_) => panic!("expected a pre-key message"),
    }
}

fn one_time_key(account: &Account) -> Curve25519PublicKey {
    *account.one_time_keys().values().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The scenario.

fn olm_scenario(secrets: &mut Secrets, keys: &Keys) -> Vec<Zeroizing<Vec<u8>>> {
    let mut plaintexts = Vec::with_capacity(256);
    let mut alice = through_heap(Account::new());
    let mut bob = Account::new();
    bob.generate_one_time_keys(100);
    bob.generate_fallback_key();
    let (restored, _) = learn_account(secrets, keys, &bob);
    // A second fallback key: the first becomes the previous one.
    bob.generate_fallback_key();
    let bob_fallback = *bob.fallback_key().values().next().unwrap();
    let bob_previous_fallback = {
        let restored_fallbacks = restored.fallback_key();
        *restored_fallbacks.values().next().unwrap()
    };
    let mut accounts = through_growing_vec(vec![restored]);
    alice.generate_one_time_keys(10);
    alice.generate_fallback_key();
    learn_account(secrets, keys, &alice);
    let (mut bob_libolm, mut bob_ferrolm) = learn_account(secrets, keys, &bob);
    let mut bob_accounts = through_growing_vec(vec![through_heap(bob_libolm.clone()), bob_ferrolm.clone()]);

    // Alice opens sessions with a one-time key, the fallback key and the previous one.
    let claimed = [one_time_key(&bob), bob_fallback, bob_previous_fallback];
    bob.mark_keys_as_published();
    let mut sessions = Vec::new();
    for (i, key) in claimed.into_iter().enumerate() {
        let config = if i == 1 { SessionConfig::version_2() } else { SessionConfig::version_1() };
        let mut outbound = alice.create_outbound_session(config, bob.curve25519_key(), key).unwrap();
        learn_session(secrets, keys, &outbound);
        let first = pre_key(outbound.encrypt(b"first message"));
        // Bob's three copies of his account all accept it.
        for account in [&mut bob_libolm, &mut bob_ferrolm] {
            let created = account.create_inbound_session(config, alice.curve25519_key(), &first).unwrap();
            plaintexts.push(Zeroizing::new(created.plaintext));
        }
        let created = bob.create_inbound_session(config, alice.curve25519_key(), &first).unwrap();
        plaintexts.push(Zeroizing::new(created.plaintext));
        let mut inbound = through_heap(created.session);
        learn_session(secrets, keys, &inbound);

        // Bob answers; Alice sends 31 messages; Bob reads the last first (30 skipped keys),
        // then some of the skipped ones out of order.
        let reply = inbound.encrypt(b"reply");
        plaintexts.push(Zeroizing::new(outbound.decrypt(&reply).unwrap()));
        let messages: Vec<OlmMessage> = (0..31).map(|i| outbound.encrypt(format!("m{i}").as_bytes())).collect();
        plaintexts.push(Zeroizing::new(inbound.decrypt(&messages[30]).unwrap()));
        for restored in learn_session(secrets, keys, &inbound) {
            let mut restored = through_heap(restored);
            plaintexts.push(Zeroizing::new(restored.decrypt(&messages[12]).unwrap()));
            learn_session(secrets, keys, &restored);
        }
        for i in [3, 17, 0, 29] {
            plaintexts.push(Zeroizing::new(inbound.decrypt(&messages[i]).unwrap()));
            learn_session(secrets, keys, &inbound);
        }
        // A message far ahead whose MAC fails: the keys derived to reach it are dropped.
        let ahead: Vec<OlmMessage> = (0..20).map(|_| outbound.encrypt(b"ahead")).collect();
        let mut tampered = ahead[19].as_bytes().to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        let tampered = OlmMessage::from_parts(ahead[19].message_type(), &ferrolm::types::base64_encode(&tampered));
        assert!(inbound.decrypt(&tampered.unwrap()).is_err());
        plaintexts.push(Zeroizing::new(inbound.decrypt(&ahead[19]).unwrap()));
        learn_session(secrets, keys, &inbound);
        // A few ratchet steps, each pickled.
        for round in 0..3 {
            let to_alice = inbound.encrypt(format!("round {round}").as_bytes());
            plaintexts.push(Zeroizing::new(outbound.decrypt(&to_alice).unwrap()));
            learn_session(secrets, keys, &outbound);
            let to_bob = outbound.encrypt(b"and back");
            plaintexts.push(Zeroizing::new(inbound.decrypt(&to_bob).unwrap()));
            learn_session(secrets, keys, &inbound);
        }
        sessions.push(outbound);
        sessions.push(inbound);
    }
    let mut sessions = through_growing_vec(sessions);
    for session in &sessions {
        learn_session(secrets, keys, session);
    }
    // Restored sessions carry on.
    let mut restored: Vec<Session> = sessions.iter().flat_map(|s| learn_session(secrets, keys, s)).collect();
    for session in &mut restored {
        let _ = session.encrypt(b"after restore");
    }
    sessions.append(&mut restored);
    learn_account(secrets, keys, &bob);
    // Fallback keys rotate out and are forgotten.
    bob.generate_fallback_key();
    learn_account(secrets, keys, &bob);
    assert!(bob.forget_fallback_key());
    unpickle_with_bad_padding(secrets, keys, &bob);
    accounts.append(&mut bob_accounts);
    accounts.push(bob);
    accounts.push(alice);
    for account in through_growing_vec(accounts) {
        learn_account(secrets, keys, &account);
    }
    plaintexts
}

fn megolm_scenario(secrets: &mut Secrets, keys: &Keys) -> Vec<Zeroizing<Vec<u8>>> {
    let mut plaintexts = Vec::with_capacity(256);
    let mut sessions = Vec::new();
    let mut inbounds = Vec::new();
    for config in [megolm::SessionConfig::version_1(), megolm::SessionConfig::version_2()] {
        let mut outbound = through_heap(GroupSession::new(config));
        learn_group_session(secrets, keys, &outbound);
        let session_key = outbound.session_key();
        secrets.add("Megolm session key (base64)", session_key.to_base64().as_bytes());
        secrets.add_megolm_ratchet(&session_key.to_bytes()[5..133]);
        // A mangled key (a bad last character) is refused after most of it was decoded.
        for base64 in
            [session_key.to_base64(), InboundGroupSession::new(&session_key, config).export_at(0).unwrap().to_base64()]
        {
            let mut mangled = Zeroizing::new(String::with_capacity(base64.len()));
            mangled.push_str(&base64[..base64.len() - 1]);
            mangled.push('!');
            assert!(megolm::SessionKey::from_base64(&mangled).is_err());
            assert!(megolm::ExportedSessionKey::from_base64(&mangled).is_err());
        }
        let mut inbound = through_heap(InboundGroupSession::new(&session_key, config));
        let messages: Vec<megolm::MegolmMessage> =
            (0..20).map(|i| outbound.encrypt(format!("room message {i}").as_bytes())).collect();
        for i in [3, 0, 19, 7] {
            plaintexts.push(Zeroizing::new(inbound.decrypt(&messages[i]).unwrap().plaintext));
        }
        for result in inbound.decrypt_batch(&messages) {
            plaintexts.push(Zeroizing::new(result.unwrap().plaintext));
        }
        let late = InboundGroupSession::import(&inbound.export_at(5).unwrap(), config);
        let merged = late.merge(&inbound).unwrap();
        learn_group_session(secrets, keys, &outbound);
        for session in [&inbound, &late, &merged] {
            for mut restored in learn_inbound(secrets, keys, session) {
                plaintexts.push(Zeroizing::new(restored.decrypt(&messages[10]).unwrap().plaintext));
            }
        }
        for mut restored in learn_group_session(secrets, keys, &outbound) {
            let message = restored.encrypt(b"from a restored session");
            plaintexts.push(Zeroizing::new(inbound.decrypt(&message).unwrap().plaintext));
        }
        sessions.push(outbound);
        inbounds.extend([inbound, late, merged]);
    }
    let sessions = through_growing_vec(sessions);
    let inbounds = through_growing_vec(inbounds);
    for session in &sessions {
        learn_group_session(secrets, keys, session);
    }
    for session in &inbounds {
        learn_inbound(secrets, keys, session);
    }
    plaintexts
}

/// A room key sent over Olm, as `m.room_key` carries it: the session key's base64 is secret.
fn room_key_over_olm(secrets: &mut Secrets) -> Vec<Zeroizing<Vec<u8>>> {
    let outbound = GroupSession::new(megolm::SessionConfig::version_1());
    let session_key = outbound.session_key().to_base64();
    secrets.add("Megolm session key (base64)", session_key.as_bytes());
    let json = zeroizing_text(&[r#"{"type":"m.room_key","content":{"session_key":""#, &session_key, r#""}}"#]);
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let mut to_bob =
        alice.create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), one_time_key(&bob)).unwrap();
    let first = pre_key(to_bob.encrypt(json.as_bytes()));
    let created = bob.create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), &first).unwrap();
    let mut plaintexts = vec![Zeroizing::new(created.plaintext)];
    let mut from_alice = created.session;
    let second = to_bob.encrypt(json.as_bytes());
    plaintexts.push(Zeroizing::new(from_alice.decrypt(&second).unwrap()));
    let imported = megolm::SessionKey::from_base64(&session_key).unwrap();
    let inbound = InboundGroupSession::new(&imported, megolm::SessionConfig::version_1());
    assert_eq!(inbound.session_id(), outbound.session_id());
    plaintexts
}

fn sas_scenario(secrets: &mut Secrets) {
    let (alice, bob) = (through_heap(Sas::new()), Sas::new());
    let (alice_key, bob_key) = (alice.public_key(), bob.public_key());
    let alice = through_heap(alice.diffie_hellman(bob_key).unwrap());
    let bob = bob.diffie_hellman(alice_key).unwrap();
    for length in [32, 64, 256] {
        let bytes = alice.generate_bytes("MATRIX_KEY_VERIFICATION_SAS|info", length).unwrap();
        secrets.add("SAS output", &bytes);
        assert_eq!(bob.generate_bytes("MATRIX_KEY_VERIFICATION_SAS|info", length).unwrap(), bytes);
    }
    let mac = alice.calculate_mac("ed25519:KEY", "MATRIX_KEY_VERIFICATION_MAC");
    bob.verify_mac("ed25519:KEY", "MATRIX_KEY_VERIFICATION_MAC", &mac).unwrap();
    let legacy = alice.calculate_mac_invalid_base64("ed25519:KEY", "MATRIX_KEY_VERIFICATION_MAC");
    bob.verify_mac_invalid_base64("ed25519:KEY", "MATRIX_KEY_VERIFICATION_MAC", &legacy).unwrap();
    let _ = through_growing_vec(vec![alice, bob]);
}

fn pk_scenario(secrets: &mut Secrets, keys: &Keys) -> Vec<Zeroizing<Vec<u8>>> {
    let backup = through_heap(PkDecryption::new());
    secrets.add_curve25519("PK decryption key", backup.to_bytes().as_ref());
    let encryption = PkEncryption::from_key(backup.public_key()).unwrap();
    // Backed-up room keys: their session keys are secret.
    let mut messages = Vec::with_capacity(600);
    for i in 0..600 {
        let session = GroupSession::new(megolm::SessionConfig::version_1());
        let key = session.session_key().to_base64();
        if i % 50 == 0 {
            secrets.add("Megolm session key (base64)", key.as_bytes());
        }
        let json = zeroizing_text(&[r#"{"session_key":""#, &key, r#""}"#]);
        messages.push(encryption.encrypt(json.as_bytes()));
    }
    let mut plaintexts = Vec::with_capacity(1300);
    for message in messages.iter().take(50) {
        let (c, m, e) = message.to_base64();
        plaintexts.push(Zeroizing::new(backup.decrypt(&PkMessage::from_base64(&c, &m, &e).unwrap()).unwrap()));
    }
    for result in backup.decrypt_many(&messages) {
        plaintexts.push(Zeroizing::new(result.unwrap()));
    }
    let libolm = backup.to_libolm_pickle(keys.libolm.as_ref());
    learn_pk(secrets, &open_libolm(&libolm, keys.libolm.as_ref()), true);
    let ferrolm = backup.pickle(&keys.ferrolm);
    learn_pk(secrets, &open_ferrolm(&ferrolm, &keys.ferrolm_bytes), false);
    let restored = [
        PkDecryption::from_libolm_pickle(&libolm, keys.libolm.as_ref()).unwrap(),
        PkDecryption::from_pickle(&ferrolm, &keys.ferrolm).unwrap(),
        PkDecryption::from_bytes(&backup.to_bytes()),
    ];
    for key in through_growing_vec(restored.into_iter().collect()) {
        plaintexts.push(Zeroizing::new(key.decrypt(&messages[7]).unwrap()));
    }
    let signing = ferrolm::pk::PkSigning::new();
    secrets.add_ed25519_seed(signing.seed().as_ref());
    let _ = through_heap(signing).sign(b"{}");
    plaintexts
}

fn key_export_scenario(secrets: &mut Secrets) -> Zeroizing<Vec<u8>> {
    let inbound = InboundGroupSession::new(
        &GroupSession::new(megolm::SessionConfig::version_1()).session_key(),
        megolm::SessionConfig::version_1(),
    );
    let exported = inbound.export_at_first_known_index().to_base64();
    secrets.add("Megolm session key (base64)", exported.as_bytes());
    let json = zeroizing_text(&[r#"[{"algorithm":"m.megolm.v1.aes-sha2","session_key":""#, &exported, r#""}]"#]);
    let passphrase = zeroizing_text(&["a passphrase only the user knows"]);
    secrets.add("key export passphrase", passphrase.as_bytes());
    let file = ferrolm::key_export::encrypt(json.as_bytes(), &passphrase, 1000).unwrap();
    let decrypted = ferrolm::key_export::decrypt(&file, &passphrase).unwrap();
    assert_eq!(decrypted.as_slice(), json.as_bytes());
    decrypted
}

fn secret_storage_scenario(secrets: &mut Secrets) -> Vec<Zeroizing<Vec<u8>>> {
    let key = through_heap(SecretStorageKey::new());
    secrets.add("secret storage key", key.as_bytes());
    let recovery = key.to_recovery_key();
    secrets.add("recovery key", recovery.as_bytes());
    let restored = SecretStorageKey::from_recovery_key(&recovery).unwrap();
    let from_passphrase = SecretStorageKey::from_passphrase("correct horse battery staple", "salt", 1000).unwrap();
    secrets.add("secret storage key", from_passphrase.as_bytes());
    let backup_key = PkDecryption::new();
    secrets.add_curve25519("PK decryption key", backup_key.to_bytes().as_ref());
    let mut plaintexts = Vec::new();
    for storage in through_growing_vec(vec![key, restored, from_passphrase]) {
        let encrypted = storage.encrypt("m.megolm_backup.v1", backup_key.to_bytes().as_ref());
        let (iv, ct, mac) = encrypted.to_base64();
        let parsed = ferrolm::secret_storage::EncryptedSecret::from_base64(&iv, &ct, &mac).unwrap();
        plaintexts.push(storage.decrypt("m.megolm_backup.v1", &parsed).unwrap());
        storage.verify_key_check(&storage.key_check()).unwrap();
    }
    plaintexts
}

// ---------------------------------------------------------------------------------------------
// The scan.

/// A hasher for keys that are already uniformly random (8 bytes of a secret).
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// For each freed block, the set of secrets (by index into `known`) it holds 16 bytes of.
fn scan(blocks: &mut dyn Iterator<Item = &[u8]>, known: &[(&'static str, Zeroizing<Vec<u8>>)]) -> Vec<HashSet<usize>> {
    let mut windows: HashMap<u64, Vec<(usize, usize)>, BuildHasherDefault<Identity>> = HashMap::default();
    for (i, (_, secret)) in known.iter().enumerate() {
        for offset in 0..=secret.len() - WINDOW {
            let key = u64::from_le_bytes(secret[offset..offset + 8].try_into().unwrap());
            windows.entry(key).or_default().push((i, offset));
        }
    }
    let mut hits = Vec::new();
    for block in blocks {
        let mut found = HashSet::new();
        for start in 0..block.len().saturating_sub(WINDOW - 1) {
            let key = u64::from_le_bytes(block[start..start + 8].try_into().unwrap());
            if let Some(candidates) = windows.get(&key) {
                for &(i, offset) in candidates {
                    if block[start..start + WINDOW] == known[i].1[offset..offset + WINDOW] {
                        found.insert(i);
                    }
                }
            }
        }
        if !found.is_empty() {
            hits.push(found);
        }
    }
    hits
}

#[test]
fn no_secret_survives_in_freed_heap_memory() {
    let mut secrets = Secrets::new();
    start_recording();

    // The canaries: one block freed with a secret in it, and one left behind by a vector
    // that grew, prove that the scan sees dealloc and realloc.
    let canary = Zeroizing::new(*PickleKey::new().as_bytes());
    secrets.add("canary (freed on purpose)", canary.as_ref());
    drop(canary.to_vec());
    let grown_canary = Zeroizing::new(*PickleKey::new().as_bytes());
    secrets.add("canary (left by a realloc)", grown_canary.as_ref());
    let mut grown = Zeroizing::new(Vec::with_capacity(32));
    grown.extend_from_slice(grown_canary.as_ref());
    grown.extend_from_slice(&[0; 100]);
    drop(grown);

    let keys = Keys::new(&mut secrets);
    let olm_plaintexts = olm_scenario(&mut secrets, &keys);
    let megolm_plaintexts = megolm_scenario(&mut secrets, &keys);
    let room_key_plaintexts = room_key_over_olm(&mut secrets);
    sas_scenario(&mut secrets);
    let pk_plaintexts = pk_scenario(&mut secrets, &keys);
    let export_plaintext = key_export_scenario(&mut secrets);
    let storage_plaintexts = secret_storage_scenario(&mut secrets);
    drop((olm_plaintexts, megolm_plaintexts, room_key_plaintexts, pk_plaintexts, export_plaintext));
    drop((storage_plaintexts, keys));

    let hits = stop_recording(|blocks| scan(blocks, &secrets.known));
    let (blocks, bytes) = (FREED_BLOCKS.load(Ordering::SeqCst), FREED_BYTES.load(Ordering::SeqCst));
    assert_eq!(LOG_OVERFLOW.load(Ordering::SeqCst), 0, "the log overflowed: raise LOG_CAPACITY");

    // Distinct secrets per label, and for each label how many of them leaked, into how many
    // freed blocks.
    let mut distinct: BTreeMap<&str, HashSet<&[u8]>> = BTreeMap::new();
    for (label, secret) in &secrets.known {
        distinct.entry(label).or_default().insert(secret.as_slice());
    }
    let mut leaked: BTreeMap<&str, (HashSet<&[u8]>, usize)> = BTreeMap::new();
    for block in &hits {
        let mut labels_in_block = HashSet::new();
        for &i in block {
            let (label, secret) = &secrets.known[i];
            leaked.entry(label).or_default().0.insert(secret.as_slice());
            labels_in_block.insert(*label);
        }
        for label in labels_in_block {
            leaked.entry(label).or_default().1 += 1;
        }
    }
    let mut report = format!("{blocks} blocks ({bytes} bytes) freed while recording\n");
    for (label, all) in &distinct {
        let (found, in_blocks) = leaked.get(label).map_or((0, 0), |(s, b)| (s.len(), *b));
        report.push_str(&format!("  {label:32} {found:5} of {:5} leaked, in {in_blocks} freed blocks\n", all.len()));
    }
    eprintln!("{report}");

    for canary in ["canary (freed on purpose)", "canary (left by a realloc)"] {
        assert!(leaked.contains_key(canary), "the scan missed the {canary}:\n{report}");
    }
    let leaks: Vec<&&str> = leaked.keys().filter(|label| !label.starts_with("canary")).collect();
    assert!(leaks.is_empty(), "secrets found in freed heap memory: {leaks:?}\n{report}");
    drop(secrets);
}
