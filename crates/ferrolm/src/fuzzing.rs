//! Entry points for the fuzz targets in `fuzz/`, compiled only under `cfg(fuzzing)` (which
//! cargo-fuzz sets). Pickles are authenticated, so bytes from a fuzzer never get past the
//! MAC; these hooks seal the fuzzer's bytes with a known key first, so that the decoders
//! behind the MAC are what gets fuzzed.

use crate::pickle::{PickleKey, PickleKind, seal, seal_libolm};
use crate::{megolm, olm, pk};

/// A generator that always yields zeros: the envelope's nonce does not matter here, and a
/// fixed one keeps runs reproducible.
struct Zeros;

impl rand_core::RngCore for Zeros {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(0);
        Ok(())
    }
}

impl rand_core::CryptoRng for Zeros {}

/// Feeds `plaintext`, as if it were a decrypted ferrolm pickle, to every unpickler.
pub fn unpickle_ferrolm(plaintext: &[u8]) {
    let key = PickleKey::from_bytes([0x5a; 32]);
    let _ = olm::Account::from_pickle(&seal(PickleKind::Account, plaintext, &key, &mut Zeros), &key);
    let _ = olm::Session::from_pickle(&seal(PickleKind::Session, plaintext, &key, &mut Zeros), &key);
    let _ = megolm::GroupSession::from_pickle(&seal(PickleKind::GroupSession, plaintext, &key, &mut Zeros), &key);
    let _ = megolm::InboundGroupSession::from_pickle(
        &seal(PickleKind::InboundGroupSession, plaintext, &key, &mut Zeros),
        &key,
    );
    let _ = pk::PkDecryption::from_pickle(&seal(PickleKind::PkDecryption, plaintext, &key, &mut Zeros), &key);
}

/// Feeds `plaintext`, as if it were a decrypted libolm pickle, to every libolm unpickler.
pub fn unpickle_libolm(plaintext: &[u8]) {
    let sealed = seal_libolm(plaintext, b"fuzz");
    let _ = olm::Account::from_libolm_pickle(&sealed, b"fuzz");
    let _ = olm::Session::from_libolm_pickle(&sealed, b"fuzz");
    let _ = megolm::GroupSession::from_libolm_pickle(&sealed, b"fuzz");
    let _ = megolm::InboundGroupSession::from_libolm_pickle(&sealed, b"fuzz");
    let _ = pk::PkDecryption::from_libolm_pickle(&sealed, b"fuzz");
}

/// Decrypted pickles of every type, in both formats, as seed inputs for the pickle fuzzers:
/// (ferrolm's format, libolm's format).
pub fn seed_pickles() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use crate::pickle::{open, open_libolm};
    let key = PickleKey::from_bytes([0x5a; 32]);
    let mut alice = olm::Account::new();
    let mut bob = olm::Account::new();
    bob.generate_one_time_keys(3);
    bob.generate_fallback_key();
    bob.generate_fallback_key();
    alice.generate_one_time_keys(1);
    let otk = bob.one_time_keys().into_values().next().unwrap_or(alice.curve25519_key());
    let mut ferrolm = Vec::new();
    let mut libolm = Vec::new();
    let mut push = |kind, pickle: String, libolm_pickle: Option<String>| {
        if let Ok(plaintext) = open(kind, &pickle, &key) {
            ferrolm.push(plaintext.to_vec());
        }
        if let Some(Ok(plaintext)) = libolm_pickle.map(|p| open_libolm(&p, b"fuzz")) {
            libolm.push(plaintext.to_vec());
        }
    };
    push(PickleKind::Account, bob.pickle(&key), bob.to_libolm_pickle(b"fuzz").ok());
    if let Ok(mut session) = alice.create_outbound_session(olm::SessionConfig::version_1(), bob.curve25519_key(), otk) {
        let first = session.encrypt(b"seed");
        push(PickleKind::Session, session.pickle(&key), session.to_libolm_pickle(b"fuzz").ok());
        let created = match &first {
            olm::OlmMessage::PreKey(first) => {
                bob.create_inbound_session(olm::SessionConfig::version_1(), alice.curve25519_key(), first).ok()
            }
            olm::OlmMessage::Normal(_) => None,
        };
        if let Some(created) = created {
            let mut inbound = created.session;
            let _ = session.decrypt(&inbound.encrypt(b"reply"));
            for _ in 0..3 {
                let _ = inbound.encrypt(b"skipped");
            }
            let _ = session.decrypt(&inbound.encrypt(b"later"));
            push(PickleKind::Session, inbound.pickle(&key), inbound.to_libolm_pickle(b"fuzz").ok());
            push(PickleKind::Session, session.pickle(&key), session.to_libolm_pickle(b"fuzz").ok());
        }
    }
    let mut group = megolm::GroupSession::new(megolm::SessionConfig::version_1());
    let mut inbound = megolm::InboundGroupSession::new(&group.session_key(), megolm::SessionConfig::version_1());
    let message = group.encrypt(b"seed");
    let _ = inbound.decrypt(&message);
    push(PickleKind::GroupSession, group.pickle(&key), group.to_libolm_pickle(b"fuzz").ok());
    push(PickleKind::InboundGroupSession, inbound.pickle(&key), inbound.to_libolm_pickle(b"fuzz").ok());
    let backup = pk::PkDecryption::new();
    push(PickleKind::PkDecryption, backup.pickle(&key), Some(backup.to_libolm_pickle(b"fuzz")));
    (ferrolm, libolm)
}
