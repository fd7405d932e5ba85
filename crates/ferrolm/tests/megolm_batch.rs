//! `decrypt_batch` gives exactly the verdicts of `decrypt`, message by message, and leaves the
//! session as decrypting one by one would, for every input a room member can craft: a session
//! key whose signing key has a small-order component, signatures whose `R` has one, forged,
//! foreign, altered and misversioned messages. Also the read-only paths, `Debug` redaction and
//! session ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ferrolm::megolm::{
    DecryptedMessage, DecryptionError, GroupSession, InboundGroupSession, MegolmMessage, SessionConfig, SessionId,
    SessionKey,
};
use ferrolm::pickle::PickleKey;
use ferrolm::types::{Ed25519PublicKey, Ed25519Signature, KeyError};
use proptest::prelude::*;
use sha2::{Digest, Sha512};

const V1: SessionConfig = SessionConfig::version_1();

/// Ed25519 signing with any scalar and public key, and a chosen small-order point added to
/// `R`: what the holder of a session's signing key can do.
fn raw_sign(a: &Scalar, public: &[u8; 32], nonce: u64, r_torsion: usize, message: &[u8]) -> [u8; 64] {
    let r = Scalar::from(nonce) * Scalar::from_bytes_mod_order([0x5a; 32]);
    let r_point = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[r_torsion]).compress();
    let mut hash = Sha512::new();
    hash.update(r_point.as_bytes());
    hash.update(public);
    hash.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(r_point.as_bytes());
    signature[32..].copy_from_slice((r + k * a).as_bytes());
    signature
}

fn strictly_valid(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    Ed25519PublicKey::from_bytes(public).unwrap().verify(message, &Ed25519Signature::from_bytes(signature)).is_ok()
}

/// A sender whose session signing key is `aB + T` for a chosen small-order `T` (`T = 0` for
/// a clean key), and a real outbound session for the ratchet and the ciphertexts.
struct Sender {
    a: Scalar,
    public: [u8; 32],
    outbound: GroupSession,
    nonce: u64,
}

impl Sender {
    fn new(key_torsion: usize, seed: u64) -> Self {
        let a = Scalar::from(seed | 1) * Scalar::from_bytes_mod_order([0x33; 32]);
        let public = (EdwardsPoint::mul_base(&a) + EIGHT_TORSION[key_torsion]).compress().to_bytes();
        Self { a, public, outbound: GroupSession::new(V1), nonce: seed << 20 }
    }

    fn sign(&mut self, message: &[u8], r_torsion: usize) -> [u8; 64] {
        self.nonce += 1;
        raw_sign(&self.a, &self.public, self.nonce, r_torsion, message)
    }

    /// The session key at the current index under the crafted signing key, signed so that it
    /// passes its own strict check (with a small-order component in the key, that takes a
    /// few nonces: the check passes when `k` is a multiple of the component's order).
    fn session_key(&mut self) -> SessionKey {
        let mut bytes = self.outbound.session_key().to_bytes().to_vec();
        bytes[133..165].copy_from_slice(&self.public);
        let signed = bytes[..165].to_vec();
        let signature = loop {
            let signature = self.sign(&signed, 0);
            if strictly_valid(&self.public, &signed, &signature) {
                break signature;
            }
        };
        bytes[165..].copy_from_slice(&signature);
        SessionKey::from_bytes(&bytes).unwrap()
    }

    /// The next message, signed with the crafted key and `R` carrying `EIGHT_TORSION[r_torsion]`.
    fn encrypt(&mut self, plaintext: &[u8], r_torsion: usize) -> MegolmMessage {
        let genuine = self.outbound.encrypt(plaintext);
        self.resign(&genuine, r_torsion, |_| {})
    }

    /// `message` with its signed part altered by `alter`, then signed again.
    fn resign(&mut self, message: &MegolmMessage, r_torsion: usize, alter: impl FnOnce(&mut Vec<u8>)) -> MegolmMessage {
        let bytes = message.as_bytes();
        let mut signed = bytes[..bytes.len() - 64].to_vec();
        alter(&mut signed);
        let signature = self.sign(&signed, r_torsion);
        signed.extend_from_slice(&signature);
        MegolmMessage::from_bytes(&signed).unwrap()
    }
}

type Results = Vec<Result<DecryptedMessage, DecryptionError>>;

/// Decrypts `messages` one by one, with `decrypt_batch`, and with both read-only paths, each
/// on its own copy of `session`; asserts that all four agree message by message and that the
/// batch leaves the session exactly as one by one does (compared through libolm's
/// deterministic pickle); returns the results.
fn assert_batch_equals_one_by_one(session: &InboundGroupSession, messages: &[MegolmMessage]) -> Results {
    let mut one_by_one = session.clone();
    let expected: Results = messages.iter().map(|m| one_by_one.decrypt(m)).collect();
    let mut batched = session.clone();
    let results = batched.decrypt_batch(messages);
    for (i, (got, want)) in results.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "message {i}");
    }
    assert_eq!(results.len(), messages.len());
    assert_eq!(batched.to_libolm_pickle(b"k").unwrap(), one_by_one.to_libolm_pickle(b"k").unwrap(), "state after");

    assert_eq!(session.decrypt_batch_readonly(messages), expected);
    let readonly: Results = messages.iter().map(|m| session.decrypt_readonly(m)).collect();
    assert_eq!(readonly, expected);
    expected
}

/// The issue's reproduction: a session key whose signing key has an order-8 component passes
/// its own check; of the messages its holder signs, `decrypt` accepts about one in eight. The
/// batch must accept exactly those, alone or with a foreign message in the batch.
#[test]
fn a_session_key_with_a_torsioned_signing_key_gets_one_by_one_verdicts() {
    let mut sender = Sender::new(1, 7);
    let session = InboundGroupSession::new(&sender.session_key(), V1);
    let mut messages: Vec<MegolmMessage> = (0..128).map(|i| sender.encrypt(format!("{i}").as_bytes(), 0)).collect();
    let results = assert_batch_equals_one_by_one(&session, &messages);
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    // One in eight on average; all 128 or none would be astronomically unlikely.
    assert!((1..128).contains(&accepted), "{accepted} of 128 accepted");
    for r in &results {
        assert!(matches!(r, Ok(_) | Err(DecryptionError::InvalidSignature)));
    }

    messages.push(GroupSession::new(V1).encrypt(b"foreign"));
    let with_foreign = assert_batch_equals_one_by_one(&session, &messages);
    assert_eq!(with_foreign[..128], results[..]);
    assert_eq!(with_foreign[128], Err(DecryptionError::InvalidSignature));
}

/// Signatures whose `R` carries a small-order component pass the cofactored equation but not
/// strict verification: refused, each on its own, among genuine messages.
#[test]
fn signatures_with_a_torsioned_nonce_are_refused_in_batches() {
    let mut sender = Sender::new(0, 11);
    let session = InboundGroupSession::new(&sender.session_key(), V1);
    let messages: Vec<MegolmMessage> = (0..16).map(|i| sender.encrypt(b"m", i % 8)).collect();
    let results = assert_batch_equals_one_by_one(&session, &messages);
    for (i, result) in results.iter().enumerate() {
        if i % 8 == 0 {
            assert_eq!(result.as_ref().unwrap().plaintext, b"m");
        } else {
            assert_eq!(result, &Err(DecryptionError::InvalidSignature), "message {i}");
        }
    }
}

/// A signed message whose MAC is wrong fails alone and does not move the cached ratchet: the
/// session after the batch is the session after decrypting one by one.
#[test]
fn a_message_that_fails_its_mac_in_a_batch_leaves_the_cache_alone() {
    let mut sender = Sender::new(0, 13);
    let mut session = InboundGroupSession::new(&sender.session_key(), V1);
    let messages: Vec<MegolmMessage> = (0..11).map(|_| sender.encrypt(b"m", 0)).collect();
    let bad_mac = sender.resign(&messages[10], 0, |signed| {
        let last = signed.len() - 1;
        signed[last] ^= 1;
    });
    let before = session.to_libolm_pickle(b"k").unwrap();
    let results = assert_batch_equals_one_by_one(&session, &[messages[3].clone(), bad_mac.clone()]);
    assert_eq!(results[1], Err(DecryptionError::InvalidMac));

    // Alone, the failed message changes nothing at all.
    assert_eq!(session.decrypt_batch(std::slice::from_ref(&bad_mac)), vec![Err(DecryptionError::InvalidMac)]);
    assert_eq!(session.to_libolm_pickle(b"k").unwrap(), before);
}

#[derive(Debug, Clone)]
enum Kind {
    /// The sender's message with this index (0..30; the session knows 5 on).
    Genuine(usize),
    /// Re-signed with a small-order component in `R`.
    TorsionedNonce(usize, usize),
    /// Another session's message.
    Foreign,
    /// One bit flipped anywhere in the message.
    BitFlip(usize, usize),
    /// A valid signature over a wrong MAC.
    SignedBadMac(usize),
    /// A version 2 message.
    WrongVersion,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        5 => (0usize..30).prop_map(Kind::Genuine),
        2 => ((0usize..30), (1usize..8)).prop_map(|(i, t)| Kind::TorsionedNonce(i, t)),
        1 => Just(Kind::Foreign),
        2 => ((0usize..30), any::<usize>()).prop_map(|(i, bit)| Kind::BitFlip(i, bit)),
        1 => (0usize..30).prop_map(Kind::SignedBadMac),
        1 => Just(Kind::WrongVersion),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Mixed batches, in any order and with repeats, on sessions whose cached ratchet sits
    /// anywhere, under a clean or a torsioned signing key: the batch, the read-only batch and
    /// the read-only single path all give `decrypt`'s result for every message, and the batch
    /// leaves the session as one by one does.
    #[test]
    fn batches_equal_one_by_one(
        kinds in proptest::collection::vec(kind(), 1..24), key_torsion in prop_oneof![Just(0usize), 1usize..8],
        cached in proptest::option::of(5usize..30), seed: u64,
    ) {
        let mut sender = Sender::new(key_torsion, seed);
        let early: Vec<MegolmMessage> = (0..5).map(|i| sender.encrypt(format!("{i}").as_bytes(), 0)).collect();
        let mut session = InboundGroupSession::new(&sender.session_key(), V1);
        let mut genuine = early;
        genuine.extend((5..30).map(|i| sender.encrypt(format!("{i}").as_bytes(), 0)));
        if let Some(index) = cached {
            let _ = session.decrypt(&genuine[index]);
        }
        let v2 = GroupSession::new(SessionConfig::version_2()).encrypt(b"v2");
        let messages: Vec<MegolmMessage> = kinds.iter().map(|kind| match *kind {
            Kind::Genuine(i) => genuine[i].clone(),
            Kind::TorsionedNonce(i, t) => sender.resign(&genuine[i], t, |_| {}),
            Kind::Foreign => GroupSession::new(V1).encrypt(b"foreign"),
            Kind::BitFlip(i, bit) => {
                let mut bytes = genuine[i].as_bytes().to_vec();
                let bit = bit % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                MegolmMessage::from_bytes(&bytes).unwrap_or_else(|_| genuine[i].clone())
            }
            Kind::SignedBadMac(i) => sender.resign(&genuine[i], 0, |signed| {
                let last = signed.len() - 1;
                signed[last] ^= 0x80;
            }),
            Kind::WrongVersion => v2.clone(),
        }).collect();
        let results = assert_batch_equals_one_by_one(&session, &messages);
        if key_torsion == 0 {
            for (kind, result) in kinds.iter().zip(&results) {
                match kind {
                    Kind::Genuine(i) if *i >= 5 => prop_assert_eq!(&result.as_ref().unwrap().plaintext, &format!("{i}").into_bytes()),
                    Kind::Genuine(i) => prop_assert_eq!(result, &Err(DecryptionError::UnknownMessageIndex { first_known: 5, requested: *i as u32 })),
                    Kind::TorsionedNonce(..) | Kind::Foreign => prop_assert_eq!(result, &Err(DecryptionError::InvalidSignature)),
                    Kind::WrongVersion => prop_assert_eq!(result, &Err(DecryptionError::VersionMismatch { expected: 3, got: 4 })),
                    Kind::SignedBadMac(i) if *i >= 5 => prop_assert_eq!(result, &Err(DecryptionError::InvalidMac)),
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn debug_of_a_decrypted_message_does_not_print_the_plaintext() {
    let mut outbound = GroupSession::new(V1);
    let inbound = InboundGroupSession::new(&outbound.session_key(), V1);
    let plaintext = br#"{"type":"m.room_key","content":{"session_key":"AgAAAADxKHa9uFxcXzwYoNueL5Xqi69IkD4sni8L"}}"#;
    let decrypted = inbound.decrypt_readonly(&outbound.encrypt(plaintext)).unwrap();
    let printed = format!("{decrypted:?} {decrypted:#?}");
    assert!(!printed.contains("m.room_key") && !printed.contains("session_key"), "{printed}");
    assert!(!printed.contains("123"), "no bytes printed as numbers: {printed}");
    assert!(printed.contains(&format!("<{} bytes>", plaintext.len())), "{printed}");
    assert!(printed.contains("message_index: 0"), "{printed}");
}

#[test]
fn the_read_only_path_decrypts_without_caching() {
    let mut outbound = GroupSession::new(V1);
    let mut inbound = InboundGroupSession::new(&outbound.session_key(), V1);
    let messages: Vec<MegolmMessage> = (0..300).map(|i| outbound.encrypt(format!("{i}").as_bytes())).collect();
    let before = inbound.to_libolm_pickle(b"k").unwrap();
    let shared = &inbound;
    assert_eq!(shared.decrypt_readonly(&messages[299]).unwrap().plaintext, b"299");
    assert_eq!(shared.decrypt_batch_readonly(&messages[100..200]).len(), 100);
    assert_eq!(inbound.to_libolm_pickle(b"k").unwrap(), before, "the read-only paths change nothing");
    // The caching path moves the cache, and then decrypts the same.
    inbound.decrypt(&messages[299]).unwrap();
    assert_ne!(inbound.to_libolm_pickle(b"k").unwrap(), before);
    assert_eq!(inbound.decrypt_readonly(&messages[5]).unwrap().plaintext, b"5");
}

#[test]
fn session_ids_are_typed_and_print_as_base64() {
    let outbound = GroupSession::new(V1);
    let key = outbound.session_key();
    let inbound = InboundGroupSession::new(&key, V1);
    let id = outbound.session_id();
    assert_eq!(inbound.session_id(), id);
    assert_eq!(key.session_id(), id);
    assert_eq!(inbound.export_at_first_known_index().session_id(), id);
    assert_eq!(id.as_bytes(), inbound.signing_key().as_bytes());
    assert_eq!(id.to_base64(), inbound.signing_key().to_base64());
    assert_eq!(id.to_string(), id.to_base64());
    assert_eq!(format!("{id:?}"), format!("SessionId({})", id.to_base64()));
    assert_eq!(SessionId::from_base64(&id.to_base64()), Ok(id));
    assert_eq!(SessionId::from_bytes(*id.as_bytes()), id);
    assert_eq!(SessionId::from(inbound.signing_key()), id);
    assert!(matches!(SessionId::from_base64("not base64!"), Err(KeyError::Base64(_))));
    assert_eq!(SessionId::from_base64("AAAA"), Err(KeyError::InvalidLength { expected: 32, got: 3 }));
    // Ordered and hashed by bytes: usable as a map key.
    let (low, high) = (SessionId::from_bytes([1; 32]), SessionId::from_bytes([2; 32]));
    assert!(low < high);
    let set: std::collections::BTreeSet<SessionId> = [high, low, high].into_iter().collect();
    assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![low, high]);
}

/// Restoring ferrolm's own pickle takes the cached ratchet as sealed (no walk); the restored
/// session decrypts old and new messages as the original does.
#[test]
fn a_restored_used_session_decrypts_like_the_original() {
    let mut outbound = GroupSession::new(V1);
    let mut inbound = InboundGroupSession::new(&outbound.session_key(), V1);
    let messages: Vec<MegolmMessage> = (0..1000).map(|i| outbound.encrypt(format!("{i}").as_bytes())).collect();
    inbound.decrypt(&messages[999]).unwrap();
    let key = PickleKey::new();
    let mut restored = InboundGroupSession::from_pickle(&inbound.pickle(&key), &key).unwrap();
    assert_eq!(restored.to_libolm_pickle(b"k").unwrap(), inbound.to_libolm_pickle(b"k").unwrap());
    for i in [0, 500, 998, 999] {
        assert_eq!(restored.decrypt(&messages[i]).unwrap().plaintext, format!("{i}").into_bytes());
    }
    let restored = InboundGroupSession::from_libolm_pickle(&inbound.to_libolm_pickle(b"k").unwrap(), b"k").unwrap();
    assert_eq!(restored.decrypt_readonly(&messages[999]).unwrap().plaintext, b"999");
}
