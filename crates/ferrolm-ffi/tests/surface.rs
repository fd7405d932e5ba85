//! The FFI surface, exercised from Rust exactly as a binding calls it: base64 at the edge,
//! objects behind `Arc`, typed errors for every kind of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use std::collections::HashSet;
use std::sync::Arc;

use ferrolm_ffi::SessionVersion;
use ferrolm_ffi::key_export::{KeyExportError, key_export_decrypt, key_export_encrypt, key_export_rounds};
use ferrolm_ffi::megolm::{BatchDecryption, GroupSession, InboundGroupSession, MegolmError, SessionOrdering};
use ferrolm_ffi::olm::{Account, MessageType, OlmError, OlmMessage, Session};
use ferrolm_ffi::pickle::PickleError;
use ferrolm_ffi::pk::{PkBatchDecryption, PkDecryption, PkEncryption, PkError, PkMessage, PkSigning};
use ferrolm_ffi::sas::{Sas, SasError};
use ferrolm_ffi::secret_storage::{EncryptedSecret, KeyCheck, SecretStorageError, SecretStorageKey};
use ferrolm_ffi::utility::{KeyError, base64_decode, base64_encode, ed25519_verify};

const PICKLE_KEY: [u8; 32] = [7; 32];

fn one_time_key(account: &Account) -> String {
    account.generate_one_time_keys(1);
    let key = account.one_time_keys().into_values().next().expect("one key");
    account.mark_keys_as_published();
    key
}

/// Alice's session to Bob, and Bob's from her first message.
fn olm_pair(version: SessionVersion) -> (Arc<Account>, Arc<Account>, Arc<Session>, Arc<Session>) {
    let (alice, bob) = (Account::new(), Account::new());
    let alice_session = alice.create_outbound_session(bob.curve25519_key(), one_time_key(&bob), version).unwrap();
    let first = alice_session.encrypt(b"hello".to_vec());
    assert_eq!(first.message_type, MessageType::PreKey);
    let created = bob.create_inbound_session(alice.curve25519_key(), first.body).unwrap();
    assert_eq!(created.plaintext, b"hello");
    (alice, bob, alice_session, created.session)
}

#[test]
fn olm_messages_flow_both_ways_and_out_of_order() {
    let (_, _, alice, bob) = olm_pair(SessionVersion::V1);
    assert_eq!(alice.session_id(), bob.session_id());
    assert_eq!(alice.session_keys(), bob.session_keys());
    for round in 0..5 {
        let mut batch: Vec<(usize, OlmMessage)> =
            (0..10).map(|i| (i, bob.encrypt(format!("b{round}-{i}").into_bytes()))).collect();
        batch.reverse();
        for (i, message) in batch {
            assert_eq!(alice.decrypt(message).unwrap(), format!("b{round}-{i}").into_bytes());
        }
        for i in 0..10 {
            let message = alice.encrypt(format!("a{round}-{i}").into_bytes());
            assert_eq!(message.message_type, MessageType::Normal);
            assert_eq!(bob.decrypt(message).unwrap(), format!("a{round}-{i}").into_bytes());
        }
    }
    assert!(alice.has_received_message() && bob.has_received_message());
}

#[test]
fn olm_errors_are_typed() {
    let (alice, bob) = (Account::new(), Account::new());
    let otk = one_time_key(&bob);
    let v1 = SessionVersion::V1;
    assert_eq!(
        alice.create_outbound_session("not base64!".into(), otk.clone(), v1).err(),
        Some(OlmError::InvalidBase64)
    );
    assert_eq!(
        alice.create_outbound_session(base64_encode(vec![1; 31]), otk.clone(), v1).err(),
        Some(OlmError::InvalidKeyLength { expected: 32, got: 31 })
    );
    assert_eq!(
        alice.create_outbound_session(bob.curve25519_key(), base64_encode(vec![0; 32]), v1).err(),
        Some(OlmError::NonContributoryKey)
    );

    let session = alice.create_outbound_session(bob.curve25519_key(), otk.clone(), v1).unwrap();
    let first = session.encrypt(b"first".to_vec());
    // The event's sender key must be the identity key inside the message.
    let stranger = Account::new().curve25519_key();
    assert_eq!(
        bob.create_inbound_session(stranger.clone(), first.body.clone()).err(),
        Some(OlmError::MismatchedIdentityKey { expected: stranger, got: alice.curve25519_key() })
    );
    assert!(matches!(
        bob.create_inbound_session(alice.curve25519_key(), "AwoA".into()),
        Err(OlmError::Malformed { .. })
    ));
    let bob_session = bob.create_inbound_session(alice.curve25519_key(), first.body.clone()).unwrap().session;
    assert!(bob_session.matches(first.body.clone()).unwrap());
    // The one-time key is used up.
    assert_eq!(
        bob.create_inbound_session(alice.curve25519_key(), first.body.clone()).err(),
        Some(OlmError::MissingOneTimeKey { key: otk })
    );

    let message = bob_session.encrypt(b"reply".to_vec());
    // Malformed and undecodable bodies.
    for body in ["", "AwoA", "%%%", "BAoA"] {
        let error = session.decrypt(OlmMessage { message_type: MessageType::Normal, body: body.into() }).unwrap_err();
        assert!(
            matches!(
                error,
                OlmError::Malformed { .. } | OlmError::InvalidBase64 | OlmError::UnknownMessageVersion { .. }
            ),
            "{body:?}: {error:?}"
        );
    }
    assert_eq!(
        session.decrypt(OlmMessage { message_type: MessageType::Normal, body: base64_encode(vec![9, 1, 2]) }).err(),
        Some(OlmError::UnknownMessageVersion { version: 9 })
    );
    // A flipped ciphertext bit: the MAC catches it, and the session is unchanged.
    let mut bytes = base64_decode(message.body.clone()).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    let tampered = OlmMessage { message_type: message.message_type, body: base64_encode(bytes) };
    assert_eq!(session.decrypt(tampered).err(), Some(OlmError::InvalidMac));
    assert_eq!(session.decrypt(message.clone()).unwrap(), b"reply");
    // A replay.
    assert_eq!(session.decrypt(message).err(), Some(OlmError::MissingMessageKey { index: 0 }));
}

#[test]
fn olm_version_mismatch_is_reported() {
    let (_, _, alice_v1, _) = olm_pair(SessionVersion::V1);
    let (_, _, _, bob_v2) = olm_pair(SessionVersion::V2);
    assert_eq!(bob_v2.version(), SessionVersion::V2);
    let message = bob_v2.encrypt(b"v2".to_vec());
    assert_eq!(alice_v1.decrypt(message).err(), Some(OlmError::VersionMismatch { expected: 3, got: 4 }));
}

#[test]
fn account_keys_signatures_and_fallback_keys() {
    let account = Account::new();
    let identity = account.identity_keys();
    assert_eq!(identity.ed25519, account.ed25519_key());
    assert_eq!(identity.curve25519, account.curve25519_key());
    let signature = account.sign(b"{\"device_id\":\"ABC\"}".to_vec());
    ed25519_verify(identity.ed25519.clone(), b"{\"device_id\":\"ABC\"}".to_vec(), signature.clone()).unwrap();
    assert_eq!(
        ed25519_verify(identity.ed25519.clone(), b"{}".to_vec(), signature.clone()),
        Err(KeyError::InvalidSignature)
    );
    assert_eq!(
        ed25519_verify(identity.ed25519, b"{}".to_vec(), "AAAA".into()),
        Err(KeyError::InvalidKeyLength { expected: 64, got: 3 })
    );
    assert_eq!(ed25519_verify("@@".into(), vec![], signature), Err(KeyError::InvalidBase64));

    assert_eq!(account.max_number_of_one_time_keys(), 50);
    let generated = account.generate_one_time_keys(5);
    assert_eq!(generated.created.len(), 5);
    assert!(generated.removed.is_empty());
    let keys = account.one_time_keys();
    assert_eq!(keys.len(), 5);
    assert!(keys.contains_key("AAAAAQ"));
    assert_eq!(account.stored_one_time_key_count(), 5);
    assert_eq!(account.generate_fallback_key(), None);
    assert_eq!(account.fallback_key().len(), 1);
    account.mark_keys_as_published();
    assert!(account.one_time_keys().is_empty() && account.fallback_key().is_empty());
    assert_eq!(account.generate_fallback_key(), None);
    assert!(account.generate_fallback_key().is_some());
    assert!(account.forget_fallback_key());
    assert!(!account.forget_fallback_key());
}

#[test]
fn pickles_round_trip_in_both_formats() {
    let (alice, bob, alice_session, bob_session) = olm_pair(SessionVersion::V1);
    let key = PICKLE_KEY.to_vec();

    let restored = Account::from_pickle(alice.pickle(key.clone()).unwrap(), key.clone()).unwrap();
    assert_eq!(restored.identity_keys(), alice.identity_keys());
    let restored =
        Account::from_libolm_pickle(bob.to_libolm_pickle(b"any length".to_vec()).unwrap(), b"any length".to_vec())
            .unwrap();
    assert_eq!(restored.identity_keys(), bob.identity_keys());

    let alice2 = Session::from_pickle(alice_session.pickle(key.clone()).unwrap(), key.clone()).unwrap();
    let bob2 = Session::from_libolm_pickle(bob_session.to_libolm_pickle(vec![]).unwrap(), vec![]).unwrap();
    let message = bob2.encrypt(b"after restore".to_vec());
    assert_eq!(alice2.decrypt(message).unwrap(), b"after restore");

    let outbound = GroupSession::new(SessionVersion::V1);
    let inbound = InboundGroupSession::new(outbound.session_key(), SessionVersion::V1).unwrap();
    let outbound2 = GroupSession::from_pickle(outbound.pickle(key.clone()).unwrap(), key.clone()).unwrap();
    let outbound3 =
        GroupSession::from_libolm_pickle(outbound.to_libolm_pickle(key.clone()).unwrap(), key.clone()).unwrap();
    assert_eq!(outbound2.session_id(), outbound3.session_id());
    let inbound2 = InboundGroupSession::from_pickle(inbound.pickle(key.clone()).unwrap(), key.clone()).unwrap();
    let inbound3 =
        InboundGroupSession::from_libolm_pickle(inbound.to_libolm_pickle(key.clone()).unwrap(), key.clone()).unwrap();
    let message = outbound2.encrypt(b"room".to_vec());
    assert_eq!(inbound2.decrypt(message.clone()).unwrap().plaintext, b"room");
    assert_eq!(inbound3.decrypt(message).unwrap().message_index, 0);

    let pk = PkDecryption::new();
    assert_eq!(
        PkDecryption::from_pickle(pk.pickle(key.clone()).unwrap(), key.clone()).unwrap().public_key(),
        pk.public_key()
    );
    assert_eq!(
        PkDecryption::from_libolm_pickle(pk.to_libolm_pickle(key.clone()), key.clone()).unwrap().public_key(),
        pk.public_key()
    );
}

#[test]
fn bad_pickles_and_pickle_keys_are_typed_errors() {
    let account = Account::new();
    let key = PICKLE_KEY.to_vec();
    assert_eq!(account.pickle(vec![1; 31]).err(), Some(PickleError::InvalidKeyLength { expected: 32, got: 31 }));
    assert_eq!(account.pickle(vec![]).err(), Some(PickleError::InvalidKeyLength { expected: 32, got: 0 }));
    let pickle = account.pickle(key.clone()).unwrap();
    assert_eq!(Account::from_pickle(pickle.clone(), vec![8; 32]).err(), Some(PickleError::InvalidMac));
    assert_eq!(
        Account::from_pickle(pickle.clone(), vec![8; 33]).err(),
        Some(PickleError::InvalidKeyLength { expected: 32, got: 33 })
    );
    assert_eq!(Account::from_pickle("!!!".into(), key.clone()).err(), Some(PickleError::InvalidBase64));
    assert_eq!(Account::from_pickle("AAAA".into(), key.clone()).err(), Some(PickleError::TooShort));
    assert_eq!(
        Session::from_pickle(pickle.clone(), key.clone()).err(),
        Some(PickleError::WrongKind { expected: "session".into(), got: "account".into() })
    );
    // Every truncation and every flipped byte is refused without a panic.
    for len in 0..pickle.len() {
        assert!(Account::from_pickle(pickle[..len].to_owned(), key.clone()).is_err());
    }
    let libolm = account.to_libolm_pickle(key.clone()).unwrap();
    for len in 0..libolm.len() {
        assert!(Account::from_libolm_pickle(libolm[..len].to_owned(), key.clone()).is_err());
    }
    assert_eq!(Account::from_libolm_pickle(libolm, vec![1]).err(), Some(PickleError::InvalidMac));

    let v2 = GroupSession::new(SessionVersion::V2);
    assert!(matches!(v2.to_libolm_pickle(key.clone()), Err(PickleError::UnsupportedByLibolm { .. })));
    let (_, _, v2_session, _) = olm_pair(SessionVersion::V2);
    assert!(matches!(v2_session.to_libolm_pickle(key), Err(PickleError::UnsupportedByLibolm { .. })));
}

#[test]
fn megolm_sessions_share_keys_decrypt_and_merge() {
    let outbound = GroupSession::new(SessionVersion::V1);
    assert_eq!(outbound.version(), SessionVersion::V1);
    let inbound = InboundGroupSession::new(outbound.session_key(), SessionVersion::V1).unwrap();
    assert_eq!(inbound.session_id(), outbound.session_id());
    assert_eq!(inbound.signing_key(), outbound.session_id());
    assert!(inbound.is_verified());

    let messages: Vec<String> = (0..20).map(|i| outbound.encrypt(format!("m{i}").into_bytes())).collect();
    assert_eq!(outbound.message_index(), 20);
    for (i, message) in messages.iter().enumerate().rev() {
        let decrypted = inbound.decrypt(message.clone()).unwrap();
        assert_eq!((decrypted.plaintext, decrypted.message_index), (format!("m{i}").into_bytes(), i as u32));
    }

    // A batch with a forgery, garbage and a good message: each fails or succeeds alone.
    let forged = GroupSession::new(SessionVersion::V1).encrypt(b"forged".to_vec());
    let batch =
        inbound.decrypt_batch(vec![messages[3].clone(), forged, "%%".into(), "AAAA".into(), messages[4].clone()]);
    assert!(matches!(&batch[0], BatchDecryption::Decrypted { message } if message.plaintext == b"m3"));
    assert_eq!(batch[1], BatchDecryption::Failed { error: MegolmError::InvalidSignature });
    assert_eq!(batch[2], BatchDecryption::Failed { error: MegolmError::InvalidBase64 });
    assert!(matches!(&batch[3], BatchDecryption::Failed { error: MegolmError::UnknownVersion { version: 0 } }));
    assert!(matches!(&batch[4], BatchDecryption::Decrypted { message } if message.message_index == 4));

    // Export at 10, import elsewhere: unverified, and knows nothing before 10.
    let exported = inbound.export_at(10).unwrap();
    assert_eq!(inbound.export_at_first_known_index(), inbound.export_at(0).unwrap());
    let imported = InboundGroupSession::from_exported_key(exported, SessionVersion::V1).unwrap();
    assert!(!imported.is_verified());
    assert_eq!(imported.first_known_index(), 10);
    assert_eq!(
        imported.decrypt(messages[2].clone()).err(),
        Some(MegolmError::UnknownMessageIndex { first_known: 10, requested: 2 })
    );
    assert_eq!(imported.decrypt(messages[12].clone()).unwrap().plaintext, b"m12");
    assert_eq!(inbound.compare(imported.clone()), SessionOrdering::Better);
    assert_eq!(imported.compare(inbound.clone()), SessionOrdering::Worse);
    // Comparing or merging a session with itself must not deadlock on its own lock.
    assert_eq!(inbound.compare(inbound.clone()), SessionOrdering::Equal);
    let merged = imported.merge(inbound.clone()).unwrap();
    assert!(merged.is_verified());
    assert_eq!(merged.first_known_index(), 0);
    let stranger =
        InboundGroupSession::new(GroupSession::new(SessionVersion::V1).session_key(), SessionVersion::V1).unwrap();
    assert_eq!(stranger.compare(inbound.clone()), SessionOrdering::Unconnected);
    assert!(stranger.merge(inbound.clone()).is_none());
    assert!(imported.advance_to(15));
    assert!(!imported.advance_to(3));
    assert_eq!(imported.first_known_index(), 15);
}

#[test]
fn megolm_errors_are_typed() {
    let outbound = GroupSession::new(SessionVersion::V1);
    let key = outbound.session_key();
    assert_eq!(
        InboundGroupSession::new("not base64!".into(), SessionVersion::V1).err(),
        Some(MegolmError::InvalidBase64)
    );
    let mut bytes = base64_decode(key.clone()).unwrap();
    assert!(matches!(
        InboundGroupSession::new(base64_encode(bytes[..100].to_vec()), SessionVersion::V1),
        Err(MegolmError::InvalidKeyLength { got: 100, .. })
    ));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        InboundGroupSession::new(base64_encode(bytes), SessionVersion::V1).err(),
        Some(MegolmError::InvalidSignature)
    );
    assert!(matches!(
        InboundGroupSession::from_exported_key(key.clone(), SessionVersion::V1),
        Err(MegolmError::InvalidKeyLength { .. } | MegolmError::UnknownVersion { .. })
    ));

    let inbound = InboundGroupSession::new(key, SessionVersion::V1).unwrap();
    let message = outbound.encrypt(b"x".to_vec());
    let raw = base64_decode(message.clone()).unwrap();
    // Every truncation of a real message is refused with a typed error, never a panic.
    for len in 0..raw.len() {
        assert!(inbound.decrypt(base64_encode(raw[..len].to_vec())).is_err(), "{len}");
    }
    assert!(matches!(inbound.decrypt(String::new()), Err(MegolmError::Malformed { .. })));
    let mut flipped = raw.clone();
    flipped[5] ^= 1;
    assert_eq!(inbound.decrypt(base64_encode(flipped)).err(), Some(MegolmError::InvalidSignature));

    let v2_inbound = InboundGroupSession::new(outbound.session_key(), SessionVersion::V2).unwrap();
    assert_eq!(v2_inbound.decrypt(message).err(), Some(MegolmError::VersionMismatch { expected: 4, got: 3 }));
}

#[test]
fn sas_emoji_and_macs_agree_and_misuse_is_typed() {
    let (alice, bob) = (Sas::new(), Sas::new());
    assert_eq!(alice.diffie_hellman("%%".into()).err(), Some(SasError::InvalidBase64));
    assert_eq!(
        alice.diffie_hellman(base64_encode(vec![1; 16])).err(),
        Some(SasError::InvalidKeyLength { expected: 32, got: 16 })
    );
    // Parse errors consume nothing: the exchange still completes.
    let alice_done = alice.diffie_hellman(bob.public_key()).unwrap();
    let bob_done = bob.diffie_hellman(alice.public_key()).unwrap();
    assert_eq!(alice.diffie_hellman(bob.public_key()).err(), Some(SasError::AlreadyUsed));
    assert_eq!(alice_done.our_public_key(), bob_done.their_public_key());

    let info = "MATRIX_KEY_VERIFICATION_SAS|@alice:x|A|@bob:x|B|txn".to_owned();
    let (a, b) = (alice_done.bytes(info.clone()), bob_done.bytes(info.clone()));
    assert_eq!(a, b);
    assert_eq!(a.emoji_indices.len(), 7);
    assert!(a.emoji_indices.iter().all(|&i| i < 64));
    assert!(a.decimals.iter().all(|&d| (1000..=9191).contains(&d)));
    assert_eq!(alice_done.generate_bytes(info.clone(), 6).unwrap(), a.bytes);
    assert_eq!(alice_done.generate_bytes(info, 8161).err(), Some(SasError::OutputTooLong { max: 8160 }));

    let mac = alice_done.calculate_mac("key".into(), "mac info".into());
    bob_done.verify_mac("key".into(), "mac info".into(), mac.clone()).unwrap();
    assert_eq!(bob_done.verify_mac("key2".into(), "mac info".into(), mac).err(), Some(SasError::InvalidMac));
    assert_eq!(bob_done.verify_mac("key".into(), "mac info".into(), "AAAA".into()).err(), Some(SasError::MalformedMac));
    let legacy = bob_done.calculate_mac_invalid_base64("key".into(), "i".into());
    alice_done.verify_mac_invalid_base64("key".into(), "i".into(), legacy).unwrap();

    let small = Sas::new();
    assert_eq!(small.diffie_hellman(base64_encode(vec![0; 32])).err(), Some(SasError::NonContributoryKey));
    assert_eq!(small.diffie_hellman(bob.public_key()).err(), Some(SasError::AlreadyUsed));
}

#[test]
fn pk_backup_encryption_and_signing() {
    let backup = PkDecryption::new();
    let encryption = PkEncryption::from_key(backup.public_key()).unwrap();
    assert_eq!(encryption.public_key(), backup.public_key());
    let message = encryption.encrypt(b"{\"session_key\":\"...\"}".to_vec());
    assert_eq!(backup.decrypt(message.clone()).unwrap(), b"{\"session_key\":\"...\"}");
    let same = PkDecryption::from_bytes(backup.to_bytes()).unwrap();
    assert_eq!(same.public_key(), backup.public_key());

    assert_eq!(PkDecryption::new().decrypt(message.clone()).err(), Some(PkError::InvalidMac));
    assert_eq!(
        backup.decrypt(PkMessage { mac: "AAAA".into(), ..message.clone() }).err(),
        Some(PkError::InvalidMacLength { expected: 8, got: 3 })
    );
    assert_eq!(
        backup.decrypt(PkMessage { ephemeral_key: "%".into(), ..message.clone() }).err(),
        Some(PkError::InvalidBase64 { field: "ephemeral key".into() })
    );
    assert_eq!(
        backup.decrypt(PkMessage { ephemeral_key: base64_encode(vec![5; 33]), ..message }).err(),
        Some(PkError::InvalidKeyLength { expected: 32, got: 33 })
    );
    assert_eq!(PkDecryption::from_bytes(vec![1; 31]).err(), Some(PkError::InvalidKeyLength { expected: 32, got: 31 }));
    assert_eq!(PkEncryption::from_key(base64_encode(vec![0; 32])).err(), Some(PkError::NonContributoryKey));
    assert_eq!(PkEncryption::from_key("%".into()).err(), Some(PkError::InvalidBase64 { field: "public key".into() }));

    let signing = PkSigning::from_seed(vec![1; 32]).unwrap();
    assert_eq!(signing.seed(), vec![1; 32]);
    let signature = signing.sign(b"{}".to_vec());
    ed25519_verify(signing.public_key(), b"{}".to_vec(), signature).unwrap();
    assert_eq!(PkSigning::from_seed(vec![1; 64]).err(), Some(PkError::InvalidKeyLength { expected: 32, got: 64 }));
    assert_ne!(PkSigning::new().public_key(), signing.public_key());
}

#[test]
fn pk_decrypt_many_keeps_order_and_fails_alone() {
    let backup = PkDecryption::new();
    let encryption = PkEncryption::from_key(backup.public_key()).unwrap();
    // More than two of the core's blocks of work, so the parallel path runs where it can.
    let mut messages: Vec<PkMessage> = (0..600u32).map(|i| encryption.encrypt(i.to_be_bytes().to_vec())).collect();
    messages[3].mac = "%".into();
    messages[400] = encryption.encrypt(b"other".to_vec());
    messages[400].mac = messages[401].mac.clone();
    let results = backup.decrypt_many(messages);
    assert_eq!(results.len(), 600);
    for (i, result) in results.into_iter().enumerate() {
        let expected = match i {
            3 => PkBatchDecryption::Failed { error: PkError::InvalidBase64 { field: "MAC".into() } },
            400 => PkBatchDecryption::Failed { error: PkError::InvalidMac },
            _ => PkBatchDecryption::Decrypted { plaintext: (i as u32).to_be_bytes().to_vec() },
        };
        assert_eq!(result, expected, "message {i}");
    }
    assert!(backup.decrypt_many(Vec::new()).is_empty());
}

#[test]
fn key_export_files() {
    let file = key_export_encrypt(b"[]".to_vec(), "correct horse".into(), 1_000).unwrap();
    assert_eq!(key_export_rounds(file.clone()).unwrap(), 1_000);
    assert_eq!(key_export_decrypt(file.clone(), "correct horse".into()).unwrap(), b"[]");
    assert_eq!(key_export_decrypt(file.clone(), "wrong".into()).err(), Some(KeyExportError::InvalidMac));
    assert_eq!(key_export_decrypt("hello".into(), "x".into()).err(), Some(KeyExportError::MissingHeader));
    let truncated = file.lines().take(2).collect::<Vec<_>>().join("\n");
    assert_eq!(key_export_decrypt(truncated, "x".into()).err(), Some(KeyExportError::MissingFooter));
    assert_eq!(key_export_encrypt(vec![], "x".into(), 0).err(), Some(KeyExportError::InvalidRounds { rounds: 0 }));
    assert_eq!(ferrolm_ffi::key_export::key_export_default_rounds(), 500_000);
}

#[test]
fn secret_storage_keys_and_secrets() {
    let key = SecretStorageKey::new();
    let encrypted = key.encrypt("m.cross_signing.master".into(), b"seed".to_vec());
    assert_eq!(key.decrypt("m.cross_signing.master".into(), encrypted.clone()).unwrap(), b"seed");
    assert_eq!(key.decrypt("m.other".into(), encrypted.clone()).err(), Some(SecretStorageError::InvalidMac));
    assert_eq!(
        key.decrypt("n".into(), EncryptedSecret { iv: "%".into(), ..encrypted.clone() }).err(),
        Some(SecretStorageError::InvalidBase64 { field: "IV".into() })
    );
    assert_eq!(
        key.decrypt("n".into(), EncryptedSecret { mac: "AAAA".into(), ..encrypted }).err(),
        Some(SecretStorageError::InvalidLength { field: "MAC".into(), got: 3, expected: 32 })
    );

    let recovery = key.to_recovery_key();
    let restored = SecretStorageKey::from_recovery_key(recovery.clone()).unwrap();
    assert_eq!(restored.to_bytes(), key.to_bytes());
    restored.verify_key_check(key.key_check()).unwrap();
    assert_eq!(SecretStorageKey::new().verify_key_check(key.key_check()).err(), Some(SecretStorageError::InvalidMac));
    assert!(matches!(
        key.verify_key_check(KeyCheck { iv: "AAAA".into(), mac: "AAAA".into() }),
        Err(SecretStorageError::InvalidLength { .. })
    ));

    assert_eq!(
        SecretStorageKey::from_recovery_key(recovery.replacen(|c: char| c.is_alphanumeric(), "0", 1)).err(),
        Some(SecretStorageError::InvalidRecoveryKeyCharacter { character: "0".into() })
    );
    assert!(matches!(
        SecretStorageKey::from_recovery_key("EsT".into()),
        Err(SecretStorageError::InvalidRecoveryKeyLength { .. })
    ));
    assert_eq!(
        SecretStorageKey::from_bytes(vec![0; 16]).err(),
        Some(SecretStorageError::InvalidKeyLength { expected: 32, got: 16 })
    );
    let a = SecretStorageKey::from_passphrase("pass".into(), "salt".into(), 10).unwrap();
    let b = SecretStorageKey::from_passphrase("pass".into(), "salt".into(), 10).unwrap();
    assert!(matches!(
        SecretStorageKey::from_passphrase("pass".into(), "salt".into(), 0),
        Err(SecretStorageError::InvalidIterations { iterations: 0 })
    ));
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn objects_are_usable_from_many_threads() {
    let outbound = GroupSession::new(SessionVersion::V1);
    let inbound = InboundGroupSession::new(outbound.session_key(), SessionVersion::V1).unwrap();
    let messages: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let outbound = outbound.clone();
                scope.spawn(move || (0..25).map(|_| outbound.encrypt(b"t".to_vec())).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let indices: HashSet<u32> = messages.into_iter().map(|m| inbound.decrypt(m).unwrap().message_index).collect();
    assert_eq!(indices, (0..100).collect());
}

#[test]
fn base64_helpers() {
    assert_eq!(base64_encode(b"olm".to_vec()), "b2xt");
    assert_eq!(base64_decode("b2xt".into()).unwrap(), b"olm");
    assert_eq!(base64_decode("b2xtIQ==".into()).unwrap(), b"olm!");
    assert_eq!(base64_decode("b2x!".into()), Err(KeyError::InvalidBase64));
}
