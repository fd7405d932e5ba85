//! The FFI surface, exercised from Rust exactly as a binding calls it: base64 at the edge,
//! objects behind `Arc`, typed errors for every kind of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests

use std::collections::HashSet;
use std::sync::Arc;

use ferrolm_ffi::SessionVersion;
use ferrolm_ffi::key_export::{FerrolmKeyExportError, key_export_decrypt, key_export_encrypt, key_export_rounds};
use ferrolm_ffi::megolm::{BatchDecryption, FerrolmMegolmError, GroupSession, InboundGroupSession, SessionOrdering};
use ferrolm_ffi::olm::{
    Account, ConsumedKey, FerrolmOlmError, MessageType, OlmMessage, Session, message_type_from_int,
    message_type_to_int, olm_message_from_parts,
};
use ferrolm_ffi::pickle::FerrolmPickleError;
use ferrolm_ffi::pk::{FerrolmPkError, PkBatchDecryption, PkDecryption, PkEncryption, PkMessage, PkSigning};
use ferrolm_ffi::sas::{FerrolmSasError, Sas};
use ferrolm_ffi::secret_storage::{EncryptedSecret, FerrolmSecretStorageError, KeyCheck, SecretStorageKey};
use ferrolm_ffi::utility::{FerrolmUtilityError, base64_decode, base64_encode, ed25519_verify};

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
    let alice_session = alice.create_outbound_session(bob.curve25519_key(), one_time_key(&bob), Some(version)).unwrap();
    let first = alice_session.encrypt(b"hello".to_vec());
    assert_eq!(first.message_type, MessageType::PreKey);
    let created = bob.create_inbound_session(alice.curve25519_key(), first.body, Some(version)).unwrap();
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
    let v1 = Some(SessionVersion::V1);
    assert_eq!(
        alice.create_outbound_session("not base64!".into(), otk.clone(), v1).err(),
        Some(FerrolmOlmError::InvalidBase64)
    );
    assert_eq!(
        alice.create_outbound_session(base64_encode(vec![1; 31]), otk.clone(), v1).err(),
        Some(FerrolmOlmError::InvalidKeyLength { expected: 32, got: 31 })
    );
    assert_eq!(
        alice.create_outbound_session(bob.curve25519_key(), base64_encode(vec![0; 32]), v1).err(),
        Some(FerrolmOlmError::NonContributoryKey)
    );

    let session = alice.create_outbound_session(bob.curve25519_key(), otk.clone(), v1).unwrap();
    let first = session.encrypt(b"first".to_vec());
    // The event's sender key must be the identity key inside the message.
    let stranger = Account::new().curve25519_key();
    assert_eq!(
        bob.create_inbound_session(stranger.clone(), first.body.clone(), None).err(),
        Some(FerrolmOlmError::MismatchedIdentityKey { expected: stranger, got: alice.curve25519_key() })
    );
    assert!(matches!(
        bob.create_inbound_session(alice.curve25519_key(), "AwoA".into(), None),
        Err(FerrolmOlmError::Malformed { .. })
    ));
    let bob_session = bob.create_inbound_session(alice.curve25519_key(), first.body.clone(), None).unwrap().session;
    assert!(bob_session.matches(first.body.clone()).unwrap());
    // The one-time key is used up.
    assert_eq!(
        bob.create_inbound_session(alice.curve25519_key(), first.body.clone(), None).err(),
        Some(FerrolmOlmError::MissingOneTimeKey { key: otk })
    );

    let message = bob_session.encrypt(b"reply".to_vec());
    // Malformed and undecodable bodies.
    for body in ["", "AwoA", "%%%", "BAoA"] {
        let error = session.decrypt(OlmMessage { message_type: MessageType::Normal, body: body.into() }).unwrap_err();
        assert!(
            matches!(
                error,
                FerrolmOlmError::Malformed { .. }
                    | FerrolmOlmError::InvalidBase64
                    | FerrolmOlmError::UnknownMessageVersion { .. }
            ),
            "{body:?}: {error:?}"
        );
    }
    assert_eq!(
        session.decrypt(OlmMessage { message_type: MessageType::Normal, body: base64_encode(vec![9, 1, 2]) }).err(),
        Some(FerrolmOlmError::UnknownMessageVersion { version: 9 })
    );
    // A flipped ciphertext bit: the MAC catches it, and the session is unchanged.
    let mut bytes = base64_decode(message.body.clone()).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    let tampered = OlmMessage { message_type: message.message_type, body: base64_encode(bytes) };
    assert_eq!(session.decrypt(tampered).err(), Some(FerrolmOlmError::InvalidMac));
    assert_eq!(session.decrypt(message.clone()).unwrap(), b"reply");
    // A replay.
    assert_eq!(session.decrypt(message).err(), Some(FerrolmOlmError::MissingMessageKey { index: 0 }));
}

#[test]
fn olm_version_mismatch_is_reported() {
    let (_, _, alice_v1, _) = olm_pair(SessionVersion::V1);
    let (_, _, _, bob_v2) = olm_pair(SessionVersion::V2);
    assert_eq!(bob_v2.version(), SessionVersion::V2);
    let message = bob_v2.encrypt(b"v2".to_vec());
    let error = alice_v1.decrypt(message).unwrap_err();
    assert_eq!(error, FerrolmOlmError::VersionMismatch { expected: SessionVersion::V1, got: SessionVersion::V2 });
    assert_eq!(error.describe(), "the message is a v2 message, but the session is v1");
}

#[test]
fn inbound_olm_sessions_refuse_another_version_when_created() {
    let (alice, bob) = (Account::new(), Account::new());
    let otk = one_time_key(&bob);
    let v2 = alice.create_outbound_session(bob.curve25519_key(), otk.clone(), Some(SessionVersion::V2)).unwrap();
    let first = v2.encrypt(b"v2 hello".to_vec());
    // The default is v1: a v2 pre-key message is refused at creation, naming both versions.
    let error = bob.create_inbound_session(alice.curve25519_key(), first.body.clone(), None).err().unwrap();
    assert_eq!(error, FerrolmOlmError::VersionMismatch { expected: SessionVersion::V1, got: SessionVersion::V2 });
    assert_eq!(error.describe(), "the message is a v2 message, but the session is v1");
    // The refusal used nothing up: asking for v2 creates the session with the same key.
    let created =
        bob.create_inbound_session(alice.curve25519_key(), first.body.clone(), Some(SessionVersion::V2)).unwrap();
    assert_eq!((created.plaintext.as_slice(), created.session.version()), (&b"v2 hello"[..], SessionVersion::V2));
    // And a v1 message asked for as v2 is refused the same way.
    let otk = one_time_key(&bob);
    let v1 = alice.create_outbound_session(bob.curve25519_key(), otk, None).unwrap();
    assert_eq!(v1.version(), SessionVersion::V1);
    assert_eq!(
        bob.create_inbound_session(alice.curve25519_key(), v1.encrypt(b"x".to_vec()).body, Some(SessionVersion::V2))
            .err(),
        Some(FerrolmOlmError::VersionMismatch { expected: SessionVersion::V2, got: SessionVersion::V1 })
    );
}

#[test]
fn inbound_sessions_report_the_key_they_consumed() {
    let (alice, bob) = (Account::new(), Account::new());
    bob.generate_one_time_keys(1);
    let (otk_id, otk) = bob.one_time_keys().into_iter().next().unwrap();
    bob.generate_fallback_key();
    let (fallback_id, fallback) = bob.fallback_key().into_iter().next().unwrap();
    bob.mark_keys_as_published();
    let first = alice.create_outbound_session(bob.curve25519_key(), otk, None).unwrap().encrypt(b"1".to_vec());
    let created = bob.create_inbound_session(alice.curve25519_key(), first.body, None).unwrap();
    assert_eq!(created.consumed_key, ConsumedKey::OneTime { key_id: otk_id });
    for _ in 0..2 {
        let session = alice.create_outbound_session(bob.curve25519_key(), fallback.clone(), None).unwrap();
        let created =
            bob.create_inbound_session(alice.curve25519_key(), session.encrypt(b"2".to_vec()).body, None).unwrap();
        assert_eq!(created.consumed_key, ConsumedKey::Fallback { key_id: fallback_id.clone() });
    }
    bob.generate_fallback_key();
    let session = alice.create_outbound_session(bob.curve25519_key(), fallback, None).unwrap();
    let created =
        bob.create_inbound_session(alice.curve25519_key(), session.encrypt(b"3".to_vec()).body, None).unwrap();
    assert_eq!(created.consumed_key, ConsumedKey::PreviousFallback { key_id: fallback_id });
}

#[test]
fn session_versions_default_to_v1() {
    assert_eq!(SessionVersion::default(), SessionVersion::V1);
    let outbound = GroupSession::new(None);
    assert_eq!(outbound.version(), SessionVersion::V1);
    let inbound = InboundGroupSession::new(outbound.session_key(), None).unwrap();
    assert_eq!(inbound.version(), SessionVersion::V1);
    assert_eq!(inbound.decrypt(outbound.encrypt(b"v1".to_vec())).unwrap().plaintext, b"v1");
    let imported = InboundGroupSession::from_exported_key(inbound.export_at(0).unwrap(), None).unwrap();
    assert_eq!(imported.version(), SessionVersion::V1);
    let (alice, bob) = (Account::new(), Account::new());
    let session = alice.create_outbound_session(bob.curve25519_key(), one_time_key(&bob), None).unwrap();
    assert_eq!(session.version(), SessionVersion::V1);
    // libolm reads what the defaults write.
    session.to_libolm_pickle(vec![1]).unwrap();
    outbound.to_libolm_pickle(vec![1]).unwrap();
}

#[test]
fn message_types_cross_as_matrix_integers() {
    let (_, _, alice, bob) = olm_pair(SessionVersion::V1);
    let message = bob.encrypt(b"as JSON".to_vec());
    assert_eq!(message_type_to_int(message.message_type), 1);
    assert_eq!(message_type_to_int(MessageType::PreKey), 0);
    assert_eq!(message_type_from_int(0), Ok(MessageType::PreKey));
    assert_eq!(message_type_from_int(1), Ok(MessageType::Normal));
    // `{"type": 1, "body": "…"}` as it arrives.
    let parsed = olm_message_from_parts(1, message.body.clone()).unwrap();
    assert_eq!(parsed, message);
    assert_eq!(alice.decrypt(parsed).unwrap(), b"as JSON");
    for unknown in [2, 3, u32::MAX] {
        let error = olm_message_from_parts(unknown, message.body.clone()).unwrap_err();
        assert_eq!(error, FerrolmOlmError::UnknownMessageType { message_type: unknown });
        assert_eq!(
            error.describe(),
            format!("unknown Olm message type {unknown}: 0 is a pre-key message, 1 a normal message")
        );
        assert_eq!(message_type_from_int(unknown).err(), Some(error));
    }
    // The body is checked too, against the type it is said to be.
    assert_eq!(olm_message_from_parts(0, "%%".into()).err(), Some(FerrolmOlmError::InvalidBase64));
    assert!(matches!(olm_message_from_parts(0, message.body), Err(FerrolmOlmError::Malformed { .. })));
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
        Err(FerrolmUtilityError::InvalidSignature)
    );
    assert_eq!(
        ed25519_verify(identity.ed25519, b"{}".to_vec(), "AAAA".into()),
        Err(FerrolmUtilityError::InvalidKeyLength { expected: 64, got: 3 })
    );
    assert_eq!(ed25519_verify("@@".into(), vec![], signature), Err(FerrolmUtilityError::InvalidBase64));

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

    let outbound = GroupSession::new(Some(SessionVersion::V1));
    let inbound = InboundGroupSession::new(outbound.session_key(), Some(SessionVersion::V1)).unwrap();
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
    assert_eq!(account.pickle(vec![1; 31]).err(), Some(FerrolmPickleError::InvalidKeyLength { expected: 32, got: 31 }));
    assert_eq!(account.pickle(vec![]).err(), Some(FerrolmPickleError::InvalidKeyLength { expected: 32, got: 0 }));
    let pickle = account.pickle(key.clone()).unwrap();
    assert_eq!(Account::from_pickle(pickle.clone(), vec![8; 32]).err(), Some(FerrolmPickleError::InvalidMac));
    assert_eq!(
        Account::from_pickle(pickle.clone(), vec![8; 33]).err(),
        Some(FerrolmPickleError::InvalidKeyLength { expected: 32, got: 33 })
    );
    assert_eq!(Account::from_pickle("!!!".into(), key.clone()).err(), Some(FerrolmPickleError::InvalidBase64));
    assert_eq!(Account::from_pickle("AAAA".into(), key.clone()).err(), Some(FerrolmPickleError::TooShort));
    assert_eq!(
        Session::from_pickle(pickle.clone(), key.clone()).err(),
        Some(FerrolmPickleError::WrongKind { expected: "session".into(), got: "account".into() })
    );
    // Every truncation and every flipped byte is refused without a panic.
    for len in 0..pickle.len() {
        assert!(Account::from_pickle(pickle[..len].to_owned(), key.clone()).is_err());
    }
    let libolm = account.to_libolm_pickle(key.clone()).unwrap();
    for len in 0..libolm.len() {
        assert!(Account::from_libolm_pickle(libolm[..len].to_owned(), key.clone()).is_err());
    }
    assert_eq!(Account::from_libolm_pickle(libolm, vec![1]).err(), Some(FerrolmPickleError::InvalidMac));

    let v2 = GroupSession::new(Some(SessionVersion::V2));
    assert!(matches!(v2.to_libolm_pickle(key.clone()), Err(FerrolmPickleError::UnsupportedByLibolm { .. })));
    let (_, _, v2_session, _) = olm_pair(SessionVersion::V2);
    assert!(matches!(v2_session.to_libolm_pickle(key), Err(FerrolmPickleError::UnsupportedByLibolm { .. })));
}

#[test]
fn megolm_sessions_share_keys_decrypt_and_merge() {
    let outbound = GroupSession::new(Some(SessionVersion::V1));
    assert_eq!(outbound.version(), SessionVersion::V1);
    let inbound = InboundGroupSession::new(outbound.session_key(), Some(SessionVersion::V1)).unwrap();
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
    let forged = GroupSession::new(Some(SessionVersion::V1)).encrypt(b"forged".to_vec());
    let batch =
        inbound.decrypt_batch(vec![messages[3].clone(), forged, "%%".into(), "AAAA".into(), messages[4].clone()]);
    assert!(matches!(&batch[0], BatchDecryption::Decrypted { message } if message.plaintext == b"m3"));
    assert_eq!(batch[1], BatchDecryption::Failed { error: FerrolmMegolmError::InvalidSignature });
    assert_eq!(batch[2], BatchDecryption::Failed { error: FerrolmMegolmError::InvalidBase64 });
    assert!(matches!(&batch[3], BatchDecryption::Failed { error: FerrolmMegolmError::UnknownVersion { version: 0 } }));
    assert!(matches!(&batch[4], BatchDecryption::Decrypted { message } if message.message_index == 4));

    // Export at 10, import elsewhere: unverified, and knows nothing before 10.
    let exported = inbound.export_at(10).unwrap();
    assert_eq!(inbound.export_at_first_known_index(), inbound.export_at(0).unwrap());
    let imported = InboundGroupSession::from_exported_key(exported, Some(SessionVersion::V1)).unwrap();
    assert!(!imported.is_verified());
    assert_eq!(imported.first_known_index(), 10);
    assert_eq!(
        imported.decrypt(messages[2].clone()).err(),
        Some(FerrolmMegolmError::UnknownMessageIndex { first_known: 10, requested: 2 })
    );
    assert_eq!(imported.decrypt(messages[12].clone()).unwrap().plaintext, b"m12");
    assert_eq!(inbound.compare(imported.clone()), SessionOrdering::Better);
    assert_eq!(imported.compare(inbound.clone()), SessionOrdering::Worse);
    // Comparing or merging a session with itself must not deadlock on its own lock.
    assert_eq!(inbound.compare(inbound.clone()), SessionOrdering::Equal);
    let merged = imported.merge(inbound.clone()).unwrap();
    assert!(merged.is_verified());
    assert_eq!(merged.first_known_index(), 0);
    let stranger = InboundGroupSession::new(GroupSession::new(Some(SessionVersion::V1)).session_key(), None).unwrap();
    assert_eq!(stranger.compare(inbound.clone()), SessionOrdering::Unconnected);
    assert!(stranger.merge(inbound.clone()).is_none());
    assert!(imported.advance_to(15));
    assert!(!imported.advance_to(3));
    assert_eq!(imported.first_known_index(), 15);
}

#[test]
fn megolm_errors_are_typed() {
    let outbound = GroupSession::new(Some(SessionVersion::V1));
    let key = outbound.session_key();
    assert_eq!(
        InboundGroupSession::new("not base64!".into(), Some(SessionVersion::V1)).err(),
        Some(FerrolmMegolmError::InvalidBase64)
    );
    let mut bytes = base64_decode(key.clone()).unwrap();
    assert!(matches!(
        InboundGroupSession::new(base64_encode(bytes[..100].to_vec()), None),
        Err(FerrolmMegolmError::InvalidKeyLength { got: 100, .. })
    ));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        InboundGroupSession::new(base64_encode(bytes), Some(SessionVersion::V1)).err(),
        Some(FerrolmMegolmError::InvalidSignature)
    );
    assert!(matches!(
        InboundGroupSession::from_exported_key(key.clone(), Some(SessionVersion::V1)),
        Err(FerrolmMegolmError::InvalidKeyLength { .. } | FerrolmMegolmError::UnknownVersion { .. })
    ));

    let inbound = InboundGroupSession::new(key, Some(SessionVersion::V1)).unwrap();
    let message = outbound.encrypt(b"x".to_vec());
    let raw = base64_decode(message.clone()).unwrap();
    // Every truncation of a real message is refused with a typed error, never a panic.
    for len in 0..raw.len() {
        assert!(inbound.decrypt(base64_encode(raw[..len].to_vec())).is_err(), "{len}");
    }
    assert!(matches!(inbound.decrypt(String::new()), Err(FerrolmMegolmError::Malformed { .. })));
    let mut flipped = raw.clone();
    flipped[5] ^= 1;
    assert_eq!(inbound.decrypt(base64_encode(flipped)).err(), Some(FerrolmMegolmError::InvalidSignature));

    let v2_inbound = InboundGroupSession::new(outbound.session_key(), Some(SessionVersion::V2)).unwrap();
    let error = v2_inbound.decrypt(message).unwrap_err();
    assert_eq!(error, FerrolmMegolmError::VersionMismatch { expected: SessionVersion::V2, got: SessionVersion::V1 });
    assert_eq!(error.describe(), "the message is a v1 message, but the session is v2");

    // An index the session does not know is a typed error, as for decryption.
    let imported = InboundGroupSession::from_exported_key(inbound.export_at(3).unwrap(), None).unwrap();
    let error = imported.export_at(2).unwrap_err();
    assert_eq!(error, FerrolmMegolmError::UnknownMessageIndex { first_known: 3, requested: 2 });
    assert_eq!(error.describe(), "index 2 is before this session's first known index 3");
    assert!(imported.export_at(3).is_ok() && imported.export_at(u32::MAX).is_ok());
}

/// Every error has a human message, the same `describe()` the bindings show as the
/// language's own message; none is empty or a dump of fields.
#[test]
fn errors_have_human_messages() {
    let (_, _, alice, bob) = olm_pair(SessionVersion::V1);
    let message = bob.encrypt(b"x".to_vec());
    let mut bytes = base64_decode(message.body.clone()).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    let tampered = alice.decrypt(OlmMessage { message_type: message.message_type, body: base64_encode(bytes) });
    let cases: Vec<(String, &str)> = vec![
        (
            tampered.unwrap_err().describe(),
            "the message's MAC does not match: it was altered, or is not for this session",
        ),
        (
            alice
                .decrypt(OlmMessage { message_type: MessageType::Normal, body: "AwoA".into() })
                .unwrap_err()
                .describe(),
            "the message is malformed: the message is too short (3 bytes)",
        ),
        (
            InboundGroupSession::new("@".into(), None).err().unwrap().describe(),
            "the message or key is not valid base64",
        ),
        (Account::new().pickle(vec![1; 31]).unwrap_err().describe(), "the pickle key is 31 bytes long, not 32"),
        (
            Account::from_pickle(Account::new().pickle(PICKLE_KEY.to_vec()).unwrap(), vec![9; 32])
                .err()
                .unwrap()
                .describe(),
            "the pickle's MAC does not match: wrong pickle key or a corrupted pickle",
        ),
        (
            Sas::new().diffie_hellman("%".into()).err().unwrap().describe(),
            "the other side's public key is not valid base64",
        ),
        (
            PkDecryption::new()
                .decrypt(PkEncryption::from_key(PkDecryption::new().public_key()).unwrap().encrypt(vec![]))
                .unwrap_err()
                .describe(),
            "the MAC does not match: the message is for another backup key",
        ),
        (SecretStorageKey::from_bytes(vec![0; 16]).err().unwrap().describe(), "the key is 16 bytes long, not 32"),
        (
            key_export_decrypt("hello".into(), "x".into()).unwrap_err().describe(),
            "the file has no BEGIN MEGOLM SESSION DATA line",
        ),
        (base64_decode("b2x!".into()).unwrap_err().describe(), "the input is not valid base64"),
        (
            ed25519_verify(Account::new().ed25519_key(), vec![], "AAAA".into()).unwrap_err().describe(),
            "the key or signature is 3 bytes long, not 64",
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
    // describe() is Display.
    let error = FerrolmOlmError::MissingMessageKey { index: 4 };
    assert_eq!(error.describe(), error.to_string());
    assert_eq!(error.describe(), "no key for message 4 of its chain: a replay, or skipped too long ago");
}

/// The FFI's error types, by the names the bindings give them, collide with no built-in or
/// standard exception type of the target languages (Python's `KeyError` was one).
#[test]
fn error_names_collide_with_nothing_in_the_target_languages() {
    fn short<T>() -> &'static str {
        let name = std::any::type_name::<T>();
        name.rsplit("::").next().unwrap_or(name)
    }
    let names = [
        short::<FerrolmOlmError>(),
        short::<FerrolmMegolmError>(),
        short::<FerrolmSasError>(),
        short::<FerrolmPkError>(),
        short::<FerrolmPickleError>(),
        short::<FerrolmKeyExportError>(),
        short::<FerrolmSecretStorageError>(),
        short::<FerrolmUtilityError>(),
    ];
    // Python's built-in exceptions and the standard library's most imported ones (pickle's
    // PickleError among them), JavaScript's global error constructors, Swift's standard
    // library and Foundation errors, and Kotlin/Java's (Kotlin names `FooError` `FooException`).
    let taken = [
        "KeyError",
        "LookupError",
        "ValueError",
        "TypeError",
        "IndexError",
        "RuntimeError",
        "OSError",
        "IOError",
        "EOFError",
        "MemoryError",
        "NameError",
        "SyntaxError",
        "SystemError",
        "ReferenceError",
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "BufferError",
        "ImportError",
        "NotImplementedError",
        "OverflowError",
        "UnicodeError",
        "PickleError",
        "PicklingError",
        "UnpicklingError",
        "Error",
        "EvalError",
        "RangeError",
        "URIError",
        "AggregateError",
        "InternalError",
        "DOMException",
        "DecodingError",
        "EncodingError",
        "CocoaError",
        "URLError",
        "POSIXError",
        "CancellationError",
        "CryptoKitError",
        "Exception",
        "KeyException",
        "SignatureException",
        "InvalidKeyException",
        "GeneralSecurityException",
        "IllegalStateException",
        "IllegalArgumentException",
        "RuntimeException",
        "IOException",
        "InternalException",
    ];
    for name in names {
        let kotlin = name.replace("Error", "Exception");
        assert!(name.starts_with("Ferrolm") && name.ends_with("Error"), "{name}");
        assert!(!taken.contains(&name) && !taken.contains(&kotlin.as_str()), "{name} collides");
    }
}

#[test]
fn sas_emoji_and_macs_agree_and_misuse_is_typed() {
    let (alice, bob) = (Sas::new(), Sas::new());
    assert_eq!(alice.diffie_hellman("%%".into()).err(), Some(FerrolmSasError::InvalidBase64));
    assert_eq!(
        alice.diffie_hellman(base64_encode(vec![1; 16])).err(),
        Some(FerrolmSasError::InvalidKeyLength { expected: 32, got: 16 })
    );
    // Parse errors consume nothing: the exchange still completes.
    let alice_done = alice.diffie_hellman(bob.public_key()).unwrap();
    let bob_done = bob.diffie_hellman(alice.public_key()).unwrap();
    assert_eq!(alice.diffie_hellman(bob.public_key()).err(), Some(FerrolmSasError::AlreadyUsed));
    assert_eq!(alice_done.our_public_key(), bob_done.their_public_key());

    let info = "MATRIX_KEY_VERIFICATION_SAS|@alice:x|A|@bob:x|B|txn".to_owned();
    let (a, b) = (alice_done.bytes(info.clone()), bob_done.bytes(info.clone()));
    assert_eq!(a, b);
    assert_eq!(a.emoji_indices.len(), 7);
    assert!(a.emoji_indices.iter().all(|&i| i < 64));
    assert!(a.decimals.iter().all(|&d| (1000..=9191).contains(&d)));
    assert_eq!(alice_done.generate_bytes(info.clone(), 6).unwrap(), a.bytes);
    assert_eq!(alice_done.generate_bytes(info, 8161).err(), Some(FerrolmSasError::OutputTooLong { max: 8160 }));

    let mac = alice_done.calculate_mac("key".into(), "mac info".into());
    bob_done.verify_mac("key".into(), "mac info".into(), mac.clone()).unwrap();
    assert_eq!(bob_done.verify_mac("key2".into(), "mac info".into(), mac).err(), Some(FerrolmSasError::InvalidMac));
    assert_eq!(
        bob_done.verify_mac("key".into(), "mac info".into(), "AAAA".into()).err(),
        Some(FerrolmSasError::MalformedMac)
    );
    let legacy = bob_done.calculate_mac_invalid_base64("key".into(), "i".into());
    alice_done.verify_mac_invalid_base64("key".into(), "i".into(), legacy).unwrap();

    let small = Sas::new();
    assert_eq!(small.diffie_hellman(base64_encode(vec![0; 32])).err(), Some(FerrolmSasError::NonContributoryKey));
    assert_eq!(small.diffie_hellman(bob.public_key()).err(), Some(FerrolmSasError::AlreadyUsed));
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

    assert_eq!(PkDecryption::new().decrypt(message.clone()).err(), Some(FerrolmPkError::InvalidMac));
    assert_eq!(
        backup.decrypt(PkMessage { mac: "AAAA".into(), ..message.clone() }).err(),
        Some(FerrolmPkError::InvalidMacLength { expected: 8, got: 3 })
    );
    assert_eq!(
        backup.decrypt(PkMessage { ephemeral_key: "%".into(), ..message.clone() }).err(),
        Some(FerrolmPkError::InvalidBase64 { field: "ephemeral key".into() })
    );
    assert_eq!(
        backup.decrypt(PkMessage { ephemeral_key: base64_encode(vec![5; 33]), ..message }).err(),
        Some(FerrolmPkError::InvalidKeyLength { expected: 32, got: 33 })
    );
    assert_eq!(
        PkDecryption::from_bytes(vec![1; 31]).err(),
        Some(FerrolmPkError::InvalidKeyLength { expected: 32, got: 31 })
    );
    assert_eq!(PkEncryption::from_key(base64_encode(vec![0; 32])).err(), Some(FerrolmPkError::NonContributoryKey));
    assert_eq!(
        PkEncryption::from_key("%".into()).err(),
        Some(FerrolmPkError::InvalidBase64 { field: "public key".into() })
    );

    let signing = PkSigning::from_seed(vec![1; 32]).unwrap();
    assert_eq!(signing.seed(), vec![1; 32]);
    let signature = signing.sign(b"{}".to_vec());
    ed25519_verify(signing.public_key(), b"{}".to_vec(), signature).unwrap();
    assert_eq!(
        PkSigning::from_seed(vec![1; 64]).err(),
        Some(FerrolmPkError::InvalidKeyLength { expected: 32, got: 64 })
    );
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
            3 => PkBatchDecryption::Failed { error: FerrolmPkError::InvalidBase64 { field: "MAC".into() } },
            400 => PkBatchDecryption::Failed { error: FerrolmPkError::InvalidMac },
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
    assert_eq!(key_export_decrypt(file.clone(), "wrong".into()).err(), Some(FerrolmKeyExportError::InvalidMac));
    assert_eq!(key_export_decrypt("hello".into(), "x".into()).err(), Some(FerrolmKeyExportError::MissingHeader));
    let truncated = file.lines().take(2).collect::<Vec<_>>().join("\n");
    assert_eq!(key_export_decrypt(truncated, "x".into()).err(), Some(FerrolmKeyExportError::MissingFooter));
    assert_eq!(
        key_export_encrypt(vec![], "x".into(), 0).err(),
        Some(FerrolmKeyExportError::InvalidRounds { rounds: 0 })
    );
    assert_eq!(ferrolm_ffi::key_export::key_export_default_rounds(), 500_000);
}

#[test]
fn secret_storage_keys_and_secrets() {
    let key = SecretStorageKey::new();
    let encrypted = key.encrypt("m.cross_signing.master".into(), b"seed".to_vec());
    assert_eq!(key.decrypt("m.cross_signing.master".into(), encrypted.clone()).unwrap(), b"seed");
    assert_eq!(key.decrypt("m.other".into(), encrypted.clone()).err(), Some(FerrolmSecretStorageError::InvalidMac));
    assert_eq!(
        key.decrypt("n".into(), EncryptedSecret { iv: "%".into(), ..encrypted.clone() }).err(),
        Some(FerrolmSecretStorageError::InvalidBase64 { field: "IV".into() })
    );
    assert_eq!(
        key.decrypt("n".into(), EncryptedSecret { mac: "AAAA".into(), ..encrypted }).err(),
        Some(FerrolmSecretStorageError::InvalidLength { field: "MAC".into(), got: 3, expected: 32 })
    );

    let recovery = key.to_recovery_key();
    let restored = SecretStorageKey::from_recovery_key(recovery.clone()).unwrap();
    assert_eq!(restored.to_bytes(), key.to_bytes());
    restored.verify_key_check(key.key_check()).unwrap();
    assert_eq!(
        SecretStorageKey::new().verify_key_check(key.key_check()).err(),
        Some(FerrolmSecretStorageError::InvalidMac)
    );
    assert!(matches!(
        key.verify_key_check(KeyCheck { iv: "AAAA".into(), mac: "AAAA".into() }),
        Err(FerrolmSecretStorageError::InvalidLength { .. })
    ));

    assert_eq!(
        SecretStorageKey::from_recovery_key(recovery.replacen(|c: char| c.is_alphanumeric(), "0", 1)).err(),
        Some(FerrolmSecretStorageError::InvalidRecoveryKeyCharacter { character: "0".into() })
    );
    assert!(matches!(
        SecretStorageKey::from_recovery_key("EsT".into()),
        Err(FerrolmSecretStorageError::InvalidRecoveryKeyLength { .. })
    ));
    assert_eq!(
        SecretStorageKey::from_bytes(vec![0; 16]).err(),
        Some(FerrolmSecretStorageError::InvalidKeyLength { expected: 32, got: 16 })
    );
    let a = SecretStorageKey::from_passphrase("pass".into(), "salt".into(), 10).unwrap();
    let b = SecretStorageKey::from_passphrase("pass".into(), "salt".into(), 10).unwrap();
    assert!(matches!(
        SecretStorageKey::from_passphrase("pass".into(), "salt".into(), 0),
        Err(FerrolmSecretStorageError::InvalidIterations { iterations: 0 })
    ));
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn objects_are_usable_from_many_threads() {
    let outbound = GroupSession::new(Some(SessionVersion::V1));
    let inbound = InboundGroupSession::new(outbound.session_key(), Some(SessionVersion::V1)).unwrap();
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
    assert_eq!(base64_decode("b2x!".into()), Err(FerrolmUtilityError::InvalidBase64));
}

#[test]
fn debug_output_never_shows_decrypted_plaintext() {
    let outbound = GroupSession::new(None);
    let inbound = InboundGroupSession::new(outbound.session_key(), None).unwrap();
    let decrypted = inbound.decrypt(outbound.encrypt(b"the secret room message".to_vec())).unwrap();
    let printed = format!("{decrypted:?}");
    assert!(!printed.contains("115, 101, 99, 114, 101, 116"), "{printed}"); // "secret" as bytes
    assert_eq!(printed, "DecryptedMessage { plaintext: <23 bytes, redacted>, message_index: 0 }");

    let backup = PkDecryption::new();
    let message = PkEncryption::from_key(backup.public_key()).unwrap().encrypt(b"{\"session_key\":\"AQ\"}".to_vec());
    let results = backup.decrypt_many(vec![message]);
    assert_eq!(format!("{:?}", results[0]), "Decrypted { plaintext: <20 bytes, redacted> }");
}
