//! Version 2 sessions (the full 32-byte MAC, message version byte 4) with vodozemac's
//! experimental configuration, in both directions; what happens when versions differ.
//!
//! - ferrolm → vodozemac and vodozemac → ferrolm: messages decrypt out of order and repeatedly,
//!   from the first key and from one shared later; exports (whose format carries no version) are
//!   byte-identical to those of version 1 sessions from the same key and import on the other
//!   side; ferrolm's batch decryption of vodozemac's messages equals one-by-one decryption.
//! - A version 2 message to a version 1 session and the reverse: ferrolm reports
//!   `DecryptionError::VersionMismatch` with both version bytes; vodozemac and libolm refuse too.
//! - The same key in both configurations gives sessions that do not compare or merge, and a
//!   version 2 session has no libolm pickle.

use ferrolm::megolm::{self as fm, DecryptionError, SessionOrdering};
use ferrolm::pickle::PickleError;

use crate::common::*;

#[test]
fn version_2_sessions_with_vodozemac_in_both_directions() {
    let seed = seed("version 2 sessions");
    let mut rng = TestRng::new(seed);
    for (sender_impl, receiver_impl) in [(Impl::Ferrolm, Impl::Vodozemac), (Impl::Vodozemac, Impl::Ferrolm)] {
        let context = format!("{sender_impl:?} → {receiver_impl:?}, version 2 (seed {seed})");
        let mut sender = Sender::new(sender_impl, Version::V2);
        let first_key = sender.session_key();
        let mut messages = Vec::new();
        let mut later_key = String::new();
        for n in 0..80 {
            if n == 30 {
                later_key = sender.session_key();
            }
            let plaintext = plaintext(&mut rng, n, 60);
            let wire = sender.encrypt(&plaintext);
            let parsed = fm::MegolmMessage::from_base64(&wire).unwrap();
            assert_eq!((parsed.version(), parsed.mac().len()), (4, 32), "{context}: version byte and MAC length");
            messages.push((wire, plaintext));
        }

        let mut receivers = [
            Receiver::new(receiver_impl, &first_key, Version::V2).unwrap(),
            Receiver::new(receiver_impl, &later_key, Version::V2).unwrap(),
        ];
        let mut order: Vec<usize> = (0..messages.len()).chain((0..20).map(|_| rng.below(messages.len()))).collect();
        rng.shuffle(&mut order);
        for n in order {
            for receiver in &mut receivers {
                let (wire, plaintext) = &messages[n];
                match receiver.decrypt(wire) {
                    Ok(decrypted) => assert_eq!(decrypted, (plaintext.clone(), n as u32), "{context}"),
                    Err(refused) => {
                        assert!(n < 30 && receiver.first_known_index() == 30, "{context}: {}", refused.detail);
                        assert_eq!(refused.failure, Failure::UnknownIndex, "{context}");
                    }
                }
            }
        }

        // Exports carry no version: a version 1 session from the same key exports the same bytes.
        let mut version_1 = Receiver::new(receiver_impl, &first_key, Version::V1).unwrap();
        for index in [0, 30, 79, 1000] {
            let export = receivers[0].export_at(index).unwrap();
            assert_eq!(version_1.export_at(index).unwrap(), export, "{context}: export at {index}");
            let mut imported = Receiver::import(sender_impl, &export, Version::V2).unwrap();
            if let Some((wire, plaintext)) = messages.get(index as usize) {
                assert_eq!(imported.decrypt(wire).unwrap(), (plaintext.clone(), index), "{context}: import at {index}");
            }
        }

        if receiver_impl == Impl::Ferrolm {
            let batch: Vec<fm::MegolmMessage> =
                messages.iter().rev().map(|(wire, _)| fm::MegolmMessage::from_base64(wire).unwrap()).collect();
            let session = receivers[1].ferrolm().clone();
            let one_by_one: Vec<_> = batch.iter().map(|m| session.clone().decrypt(m)).collect();
            assert_eq!(session.clone().decrypt_batch(&batch), one_by_one, "{context}: batch");
            assert_eq!(one_by_one.iter().filter(|r| r.is_ok()).count(), 50, "{context}");
        }
    }
}

#[test]
fn version_mismatches_are_refused() {
    // A version 2 message to version 1 sessions.
    for v2_sender in [Impl::Ferrolm, Impl::Vodozemac] {
        let mut sender = Sender::new(v2_sender, Version::V2);
        let key = sender.session_key();
        let message = sender.encrypt(b"version 2");
        for receiver_impl in ALL {
            let context = format!("{v2_sender:?}'s version 2 message to a {receiver_impl:?} version 1 session");
            let mut receiver = Receiver::new(receiver_impl, &key, Version::V1).unwrap();
            let refused = receiver.decrypt(&message).unwrap_err();
            assert_eq!(refused.failure, Failure::Version, "{context}: {}", refused.detail);
            if receiver_impl == Impl::Ferrolm {
                let mismatch = DecryptionError::VersionMismatch { expected: 3, got: 4 };
                assert_eq!(refused.ferrolm, Some(mismatch.clone()), "{context}");
                let parsed = fm::MegolmMessage::from_base64(&message).unwrap();
                assert_eq!(receiver.ferrolm().decrypt_batch(&[parsed]), [Err(mismatch)], "{context}");
            }
        }
    }
    // Version 1 messages to version 2 sessions.
    for v1_sender in ALL {
        let mut sender = Sender::new(v1_sender, Version::V1);
        let key = sender.session_key();
        let message = sender.encrypt(b"version 1");
        for receiver_impl in [Impl::Ferrolm, Impl::Vodozemac] {
            let context = format!("{v1_sender:?}'s version 1 message to a {receiver_impl:?} version 2 session");
            let mut receiver = Receiver::new(receiver_impl, &key, Version::V2).unwrap();
            let refused = receiver.decrypt(&message).unwrap_err();
            assert_eq!(refused.failure, Failure::Version, "{context}: {}", refused.detail);
            if receiver_impl == Impl::Ferrolm {
                assert_eq!(
                    refused.ferrolm,
                    Some(DecryptionError::VersionMismatch { expected: 4, got: 3 }),
                    "{context}"
                );
            }
            // The same key in version 1 decrypts it.
            let mut right = Receiver::new(receiver_impl, &key, Version::V1).unwrap();
            assert_eq!(right.decrypt(&message).unwrap(), (b"version 1".to_vec(), 0), "{context}");
        }
    }
}

#[test]
fn configurations_do_not_mix() {
    let mut sender = Sender::new(Impl::Vodozemac, Version::V2);
    let key = fm::SessionKey::from_base64(&sender.session_key()).unwrap();
    sender.encrypt(b"advance");
    let v1 = fm::InboundGroupSession::new(&key, fm::SessionConfig::version_1());
    let v2 = fm::InboundGroupSession::new(&key, fm::SessionConfig::version_2());
    assert_eq!(v1.compare(&v2), SessionOrdering::Unconnected);
    assert_eq!(v2.compare(&v1), SessionOrdering::Unconnected);
    assert!(v1.merge(&v2).is_none());
    assert_eq!(v2.compare(&v2.clone()), SessionOrdering::Equal);

    let unsupported = |result: Result<String, PickleError>| matches!(result, Err(PickleError::UnsupportedByLibolm(_)));
    assert!(unsupported(v2.to_libolm_pickle(b"key")), "no libolm pickle for a version 2 inbound session");
    let outbound = fm::GroupSession::new(fm::SessionConfig::version_2());
    assert!(unsupported(outbound.to_libolm_pickle(b"key")), "no libolm pickle for a version 2 outbound session");
    assert!(v1.to_libolm_pickle(b"key").is_ok());
}
