//! Behaviour of Megolm sessions: encryption, late joiners, every decryption failure, session
//! keys, exports, compare and merge, bulk decryption and pickles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use ferrolm::megolm::{
    DecodeError, DecryptedMessage, DecryptionError, ExportedSessionKey, GroupSession, InboundGroupSession,
    MegolmMessage, SessionConfig, SessionKey, SessionOrdering,
};
use ferrolm::pickle::{PickleError, PickleKey};
use proptest::prelude::*;

const V1: SessionConfig = SessionConfig::version_1();
const V2: SessionConfig = SessionConfig::version_2();

#[test]
fn a_room_with_a_late_joiner_in_both_configs() {
    for config in [V1, V2] {
        let mut outbound = GroupSession::new(config);
        let mut early = InboundGroupSession::new(&outbound.session_key(), config);
        let messages: Vec<MegolmMessage> = (0..20).map(|i| outbound.encrypt(format!("m{i}").as_bytes())).collect();
        let mut late = InboundGroupSession::new(&outbound.session_key(), config);
        let later = outbound.encrypt(b"after the join");
        assert_eq!(late.first_known_index(), 20);
        assert_eq!(later.version(), if config == V2 { 4 } else { 3 });
        assert_eq!(later.mac().len(), if config == V2 { 32 } else { 8 });

        // Out of order, and each message more than once (Megolm does not consume keys).
        for i in [19, 0, 5, 5, 18, 0] {
            let d = early.decrypt(&messages[i]).unwrap();
            assert_eq!(d, DecryptedMessage { plaintext: format!("m{i}").into_bytes(), message_index: i as u32 });
        }
        assert_eq!(
            late.decrypt(&messages[3]),
            Err(DecryptionError::UnknownMessageIndex { first_known: 20, requested: 3 })
        );
        assert_eq!(late.decrypt(&later).unwrap().plaintext, b"after the join");
        assert_eq!(early.decrypt(&later).unwrap().message_index, 20);
    }
}

#[test]
fn forgeries_tampering_and_version_mismatch_are_typed_errors() {
    let mut outbound = GroupSession::new(V1);
    let mut inbound = InboundGroupSession::new(&outbound.session_key(), V1);
    let message = outbound.encrypt(b"genuine");

    // Another session's message under this session's id: the signature fails.
    let impostor = GroupSession::new(V1).encrypt(b"forged");
    assert_eq!(inbound.decrypt(&impostor), Err(DecryptionError::InvalidSignature));
    // Any flipped bit breaks the signature first.
    for i in [0, 3, 20, message.as_bytes().len() - 70, message.as_bytes().len() - 1] {
        let mut bytes = message.as_bytes().to_vec();
        bytes[i] ^= 0x04;
        if let Ok(m) = MegolmMessage::from_bytes(&bytes) {
            assert!(inbound.decrypt(&m).is_err(), "flip at {i}");
        }
    }
    let v2_message = GroupSession::new(V2).encrypt(b"v2");
    assert_eq!(inbound.decrypt(&v2_message), Err(DecryptionError::VersionMismatch { expected: 3, got: 4 }));
    assert_eq!(inbound.decrypt(&message).unwrap().plaintext, b"genuine");
}

#[test]
fn message_decoding_errors() {
    assert_eq!(MegolmMessage::from_bytes(&[]), Err(DecodeError::Empty));
    assert_eq!(MegolmMessage::from_bytes(&[5; 100]), Err(DecodeError::UnknownVersion(5)));
    assert_eq!(MegolmMessage::from_bytes(&[3; 50]), Err(DecodeError::TooShort(50)));
    let mut no_index = vec![3, 0x12, 0x01, 0xaa];
    no_index.extend_from_slice(&[0; 72]);
    assert_eq!(MegolmMessage::from_bytes(&no_index), Err(DecodeError::MissingField("message index")));
    let mut huge_index = vec![3, 0x08, 0x80, 0x80, 0x80, 0x80, 0x10, 0x12, 0x00];
    huge_index.extend_from_slice(&[0; 72]);
    assert_eq!(MegolmMessage::from_bytes(&huge_index), Err(DecodeError::InvalidIndex(1 << 32)));
    assert_eq!(MegolmMessage::from_base64("%"), Err(DecodeError::Base64));
}

#[test]
fn session_keys_are_checked() {
    let mut outbound = GroupSession::new(V1);
    outbound.encrypt(b"advance");
    let key = outbound.session_key();
    let bytes = key.to_bytes();
    assert_eq!(bytes.len(), 229);
    assert_eq!(bytes[0], 2);
    assert_eq!(&bytes[1..5], &[0, 0, 0, 1]);
    let decoded = SessionKey::from_base64(&key.to_base64()).unwrap();
    assert_eq!(decoded.index(), 1);
    assert_eq!(decoded.session_id(), outbound.session_id());

    // Every flipped bit in the signed part or the signature is caught.
    for i in [5, 100, 140, 170, 228] {
        let mut tampered = bytes.to_vec();
        tampered[i] ^= 1;
        assert!(
            matches!(
                SessionKey::from_bytes(&tampered),
                Err(DecodeError::InvalidSignature | DecodeError::InvalidSigningKey)
            ),
            "flip at {i}"
        );
    }
    assert_eq!(
        SessionKey::from_bytes(&bytes[..228]).err(),
        Some(DecodeError::InvalidLength { expected: 229, got: 228 })
    );
    let exported =
        ExportedSessionKey::from_bytes(&InboundGroupSession::new(&key, V1).export_at(1).unwrap().to_bytes()).unwrap();
    assert_eq!(exported.to_bytes().len(), 165);
    // The wrong kind of key: version bytes differ.
    assert_eq!(SessionKey::from_bytes(&exported.to_bytes()).err(), Some(DecodeError::UnknownVersion(1)));
    assert_eq!(ExportedSessionKey::from_bytes(&bytes).err(), Some(DecodeError::UnknownVersion(2)));
    assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
}

#[test]
fn exports_imports_compare_and_merge() {
    // The four orderings, from one session started at 0.
    let (mut sender, first) = {
        let mut s = GroupSession::new(V1);
        let k = s.session_key();
        let ms: Vec<MegolmMessage> = (0..10).map(|i| s.encrypt(&[i])).collect();
        (ms, k)
    };
    let at0 = InboundGroupSession::new(&first, V1);
    let at5 = InboundGroupSession::import(&at0.export_at(5).unwrap(), V1);
    let at5_again = InboundGroupSession::import(&at0.export_at(5).unwrap(), V1);
    let stranger = InboundGroupSession::new(&GroupSession::new(V1).session_key(), V1);
    assert_eq!(at0.compare(&at5), SessionOrdering::Better);
    assert_eq!(at5.compare(&at0), SessionOrdering::Worse);
    assert_eq!(at5.compare(&at5_again), SessionOrdering::Equal);
    assert_eq!(at0.compare(&stranger), SessionOrdering::Unconnected);
    assert!(at0.is_verified() && !at5.is_verified());

    // A forged export: right session id, wrong ratchet. Unconnected, never merged.
    let forged_bytes = {
        let mut b = at5.export_at_first_known_index().to_bytes().to_vec();
        b[50] ^= 1;
        b
    };
    let forged = InboundGroupSession::import(&ExportedSessionKey::from_bytes(&forged_bytes).unwrap(), V1);
    assert_eq!(forged.session_id(), at5.session_id());
    assert_eq!(at0.compare(&forged), SessionOrdering::Unconnected);
    assert!(at0.merge(&forged).is_none());

    // Merging keeps the earlier index and the verified flag of either.
    let merged = at5.merge(&at0).unwrap();
    assert_eq!(merged.first_known_index(), 0);
    assert!(merged.is_verified());
    let mut merged_late = at5.merge(&at5_again).unwrap();
    assert!(!merged_late.is_verified());
    assert_eq!(merged_late.decrypt(&sender[7]).unwrap().plaintext, vec![7]);
    assert!(merged_late.decrypt(&sender[2]).is_err());

    // advance_to forgets earlier keys.
    let mut forgetful = at0.clone();
    assert!(forgetful.advance_to(8));
    assert!(!forgetful.advance_to(3));
    assert_eq!(forgetful.first_known_index(), 8);
    assert!(matches!(forgetful.decrypt(&sender[7]), Err(DecryptionError::UnknownMessageIndex { .. })));
    assert!(forgetful.export_at(7).is_none());
    sender.clear();
}

#[test]
fn bulk_decryption_matches_one_by_one_and_isolates_bad_messages() {
    let mut outbound = GroupSession::new(V1);
    outbound.encrypt(b"before the key");
    let key = outbound.session_key();
    let mut messages: Vec<MegolmMessage> =
        (0..300).map(|i| outbound.encrypt(format!("message {i}").as_bytes())).collect();
    // Shuffle deterministically.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..messages.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        messages.swap(i, (state % (i as u64 + 1)) as usize);
    }
    // Insert bad ones: a forgery and a v2 message.
    messages.insert(10, GroupSession::new(V1).encrypt(b"forged"));
    messages.insert(20, GroupSession::new(V2).encrypt(b"v2"));

    let mut batch_session = InboundGroupSession::new(&key, V1);
    let mut single_session = InboundGroupSession::new(&key, V1);
    let batch = batch_session.decrypt_batch(&messages);
    assert_eq!(batch.len(), messages.len());
    for (message, result) in messages.iter().zip(&batch) {
        assert_eq!(result, &single_session.decrypt(message));
    }
    assert_eq!(batch[10], Err(DecryptionError::InvalidSignature));
    assert_eq!(batch[20], Err(DecryptionError::VersionMismatch { expected: 3, got: 4 }));
    assert_eq!(batch.iter().filter(|r| r.is_ok()).count(), 300);

    // Messages before the first known index fail alone.
    let late = InboundGroupSession::import(&batch_session.export_at(150).unwrap(), V1);
    let results = late.clone().decrypt_batch(&messages);
    for (message, result) in messages.iter().zip(&results) {
        assert_eq!(result, &late.clone().decrypt(message));
    }
    assert!(batch_session.decrypt_batch(&[]).is_empty());
}

#[test]
fn pickles_round_trip_in_both_formats() {
    let key = PickleKey::new();
    let mut outbound = GroupSession::new(V1);
    let mut inbound = InboundGroupSession::new(&outbound.session_key(), V1);
    let messages: Vec<MegolmMessage> = (0..5).map(|i| outbound.encrypt(&[i])).collect();
    inbound.decrypt(&messages[4]).unwrap(); // moves the cached ratchet

    let restored = GroupSession::from_pickle(&outbound.pickle(&key), &key).unwrap();
    let from_libolm =
        GroupSession::from_libolm_pickle(&outbound.to_libolm_pickle(b"libolm key").unwrap(), b"libolm key").unwrap();
    for mut copy in [restored, from_libolm] {
        assert_eq!(copy.session_id(), outbound.session_id());
        assert_eq!(copy.message_index(), 5);
        let next = copy.encrypt(b"next");
        assert_eq!(inbound.decrypt(&next).unwrap().plaintext, b"next");
    }
    let restored = InboundGroupSession::from_pickle(&inbound.pickle(&key), &key).unwrap();
    let from_libolm = InboundGroupSession::from_libolm_pickle(&inbound.to_libolm_pickle(b"").unwrap(), b"").unwrap();
    for mut copy in [restored, from_libolm] {
        assert_eq!(copy.first_known_index(), 0);
        assert!(copy.is_verified());
        assert_eq!(copy.decrypt(&messages[1]).unwrap().plaintext, vec![1]);
    }

    assert!(matches!(
        InboundGroupSession::from_pickle(&outbound.pickle(&key), &key),
        Err(PickleError::WrongKind { .. })
    ));
    assert_eq!(GroupSession::from_pickle(&outbound.pickle(&key), &PickleKey::new()).unwrap_err(), PickleError::Mac);
    assert_eq!(
        InboundGroupSession::from_libolm_pickle(&outbound.to_libolm_pickle(b"k").unwrap(), b"k").unwrap_err(),
        PickleError::Corrupted("truncated")
    );
    assert!(matches!(GroupSession::new(V2).to_libolm_pickle(b"k"), Err(PickleError::UnsupportedByLibolm(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decoders_never_panic(bytes: Vec<u8>) {
        let _ = MegolmMessage::from_bytes(&bytes);
        let _ = SessionKey::from_bytes(&bytes);
        let _ = ExportedSessionKey::from_bytes(&bytes);
    }

    #[test]
    fn messages_round_trip_and_mutations_never_panic(plaintext: Vec<u8>, full_mac: bool, cut: usize, flip: usize) {
        let config = if full_mac { V2 } else { V1 };
        let mut outbound = GroupSession::new(config);
        let mut inbound = InboundGroupSession::new(&outbound.session_key(), config);
        let message = outbound.encrypt(&plaintext);
        let decoded = MegolmMessage::from_base64(&message.to_base64()).unwrap();
        prop_assert_eq!(&decoded, &message);
        prop_assert_eq!(inbound.decrypt(&decoded).unwrap().plaintext, plaintext);
        let bytes = message.as_bytes();
        let _ = MegolmMessage::from_bytes(&bytes[..cut % (bytes.len() + 1)]);
        let mut flipped = bytes.to_vec();
        flipped[flip % bytes.len()] ^= 1 << (flip % 8);
        if let Ok(m) = MegolmMessage::from_bytes(&flipped) {
            prop_assert!(inbound.decrypt(&m).is_err());
        }
    }

    /// Inbound sessions created at random indices decrypt exactly the messages from their index on.
    #[test]
    fn random_starting_indices(start in 0u32..40, probes in prop::collection::vec(0usize..48, 1..12)) {
        let mut outbound = GroupSession::new(V1);
        let mut messages = Vec::new();
        let mut key = None;
        for i in 0..48u32 {
            if i == start {
                key = Some(outbound.session_key());
            }
            messages.push(outbound.encrypt(&i.to_be_bytes()));
        }
        let mut inbound = InboundGroupSession::new(&key.unwrap(), V1);
        for p in probes {
            let result = inbound.decrypt(&messages[p]);
            if (p as u32) < start {
                prop_assert_eq!(result, Err(DecryptionError::UnknownMessageIndex { first_known: start, requested: p as u32 }));
            } else {
                prop_assert_eq!(result.unwrap().plaintext, (p as u32).to_be_bytes().to_vec());
            }
        }
    }
}
