//! Session keys across implementations.
//!
//! - Exports at random indices: byte-identical from all three implementations, importable by
//!   all three (unverified, first known index = the export's), decrypting from that index on and
//!   refusing what came before, and re-exporting identically at that index and later ones.
//! - Signed session keys from each implementation's sender are accepted by all three; ferrolm
//!   re-encodes them byte for byte.
//! - A session key with any one bit flipped is refused by all three; ferrolm says why, by
//!   where the bit is.
//! - Compare and merge: sessions from the same key at different indices, one imported from
//!   another implementation's export, compare Better/Worse/Equal in ferrolm (and in vodozemac,
//!   the other way round); merging gives the earlier index, verified if either side is. Forged
//!   exports (right session id, a ratchet that is not the session's) are Unconnected and do not
//!   merge — unless the advance to the other session's index overwrites the forged part, where
//!   ferrolm and vodozemac agree that the forgery connects.

use ferrolm::megolm::{self as fm, DecodeError, SessionOrdering};
use ferrolm::types::base64_encode;
use vodozemac::megolm as vm;

use crate::common::*;

#[test]
fn exports_at_random_indices_are_identical_and_import_everywhere() {
    let seed = seed("exports at random indices");
    let mut rng = TestRng::new(seed);
    for sender_impl in ALL {
        let context = format!("{sender_impl:?} sender (seed {seed})");
        let mut sender = Sender::new(sender_impl, Version::V1);
        let key = sender.session_key();
        let mut receivers: Vec<Receiver> = ALL.iter().map(|&i| Receiver::new(i, &key, Version::V1).unwrap()).collect();
        let messages: Vec<(String, Vec<u8>)> = (0..200)
            .map(|n| {
                let plaintext = plaintext(&mut rng, n, 30);
                (sender.encrypt(&plaintext), plaintext)
            })
            .collect();

        let mut indices = vec![0, 199, 1000 + rng.below(100_000) as u32];
        indices.extend((0..6).map(|_| rng.below(200) as u32));
        for index in indices {
            let exports: Vec<String> = receivers.iter_mut().map(|r| r.export_at(index).unwrap()).collect();
            assert!(exports.iter().all(|e| *e == exports[0]), "{context}: exports at {index} differ: {exports:#?}");
            let export = &exports[0];
            assert_eq!(export_parts(export).0, index, "{context}");
            assert_eq!(bytes(export)[133..], bytes(&sender.session_id())[..], "{context}: the export ends in the key");

            for importer in ALL {
                let context = format!("{context}, export at {index} imported by {importer:?}");
                let mut imported = Receiver::import(importer, export, Version::V1).unwrap();
                assert_eq!(imported.first_known_index(), index, "{context}");
                assert_eq!(imported.session_id(), sender.session_id(), "{context}");
                assert!(!imported.is_verified(), "{context}: an export carries no signature");
                assert_eq!(imported.export_at(index).as_ref(), Some(export), "{context}");
                let later = index + rng.below(300) as u32;
                assert_eq!(imported.export_at(later), receivers[0].export_at(later), "{context}: export at {later}");
                if index > 0 {
                    assert_eq!(imported.export_at(index - 1), None, "{context}");
                    let (wire, _) = &messages[rng.below(index.min(200) as usize)];
                    assert_eq!(imported.decrypt(wire).map_err(|e| e.failure), Err(Failure::UnknownIndex), "{context}");
                }
                if (index as usize) < messages.len() {
                    for n in [index as usize, index as usize + rng.below(200 - index as usize)] {
                        let (wire, plaintext) = &messages[n];
                        let decrypted = imported.decrypt(wire).unwrap_or_else(|e| panic!("{context}: {}", e.detail));
                        assert_eq!(decrypted, (plaintext.clone(), n as u32), "{context}");
                    }
                }
            }
        }
    }
}

#[test]
fn signed_session_keys_are_accepted_by_every_implementation() {
    for sender_impl in ALL {
        let mut sender = Sender::new(sender_impl, Version::V1);
        for advance in [0, 1, 300] {
            for _ in 0..advance {
                sender.encrypt(b"advancing");
            }
            let index = sender.message_index();
            let context = format!("{sender_impl:?} sender at index {index}");
            let key = sender.session_key();
            let raw = bytes(&key);
            assert_eq!(raw.len(), 229, "{context}");
            assert_eq!(raw[0], 2, "{context}: session key version");
            assert_eq!(u32::from_be_bytes(raw[1..5].try_into().unwrap()), index, "{context}");
            assert_eq!(raw[133..165], bytes(&sender.session_id())[..], "{context}");

            let decoded = fm::SessionKey::from_base64(&key).unwrap();
            assert_eq!(decoded.index(), index, "{context}");
            assert_eq!(decoded.session_id().to_base64(), sender.session_id(), "{context}");
            assert_eq!(*decoded.to_base64(), key, "{context}: ferrolm re-encodes the key byte for byte");

            let message = sender.encrypt(b"after sharing the key");
            for receiver_impl in ALL {
                let context = format!("{context}, received by {receiver_impl:?}");
                let mut receiver = Receiver::new(receiver_impl, &key, Version::V1).unwrap();
                assert_eq!(receiver.first_known_index(), index, "{context}");
                assert!(receiver.is_verified(), "{context}");
                assert_eq!(receiver.session_id(), sender.session_id(), "{context}");
                // The export at the key's index is the key without its signature.
                let export = bytes(&receiver.export_at(index).unwrap());
                assert_eq!((export[0], &export[1..]), (1, &raw[1..165]), "{context}");
                assert_eq!(
                    receiver.decrypt(&message).unwrap(),
                    (b"after sharing the key".to_vec(), index),
                    "{context}"
                );
            }
        }
    }
}

#[test]
fn session_keys_with_a_flipped_bit_are_refused() {
    for sender_impl in ALL {
        let mut sender = Sender::new(sender_impl, Version::V1);
        sender.encrypt(b"one");
        let key = sender.session_key();
        let mut refused_key = 0;
        for bit in 0..229 * 8 {
            let altered = flip_bit(&key, bit);
            let context = format!("{sender_impl:?}'s session key with bit {bit} (byte {}) flipped", bit / 8);
            let error = fm::SessionKey::from_base64(&altered).unwrap_err();
            match bit / 8 {
                0 => assert_eq!(error, DecodeError::UnknownVersion(2u8 ^ (1u8 << bit)), "{context}"),
                1..133 | 165..229 => assert_eq!(error, DecodeError::InvalidSignature, "{context}"),
                _ => {
                    assert!(
                        matches!(error, DecodeError::InvalidSignature | DecodeError::InvalidSigningKey),
                        "{context}"
                    );
                    refused_key += usize::from(error == DecodeError::InvalidSigningKey);
                }
            }
            for peer in PEERS {
                assert!(Receiver::new(peer, &altered, Version::V1).is_err(), "{context}: {peer:?} accepts it");
            }
        }
        eprintln!("{sender_impl:?}: {refused_key} flips in the Ed25519 key gave an invalid point");

        // Wrong lengths, and an export where a signed key belongs.
        let raw = bytes(&key);
        let short = base64_encode(&raw[..228]);
        assert_eq!(
            fm::SessionKey::from_base64(&short).unwrap_err(),
            DecodeError::InvalidLength { expected: 229, got: 228 }
        );
        let mut long = raw.clone();
        long.push(0);
        let long = base64_encode(long);
        assert_eq!(
            fm::SessionKey::from_base64(&long).unwrap_err(),
            DecodeError::InvalidLength { expected: 229, got: 230 }
        );
        let export = Receiver::new(Impl::Ferrolm, &key, Version::V1).unwrap().export_at(1).unwrap();
        assert_eq!(fm::SessionKey::from_base64(&export).unwrap_err(), DecodeError::UnknownVersion(1));
        assert_eq!(fm::ExportedSessionKey::from_base64(&key).unwrap_err(), DecodeError::UnknownVersion(2));
        for peer in PEERS {
            for refused in [&short, &long, &export] {
                assert!(Receiver::new(peer, refused, Version::V1).is_err(), "{sender_impl:?} key, {peer:?}");
            }
            assert!(Receiver::import(peer, &key, Version::V1).is_err(), "{peer:?} imports a signed key as an export");
        }
    }
}

/// The expected ordering of a session first knowing `a` against one first knowing `b`.
fn ordering(a: u32, b: u32) -> SessionOrdering {
    match a.cmp(&b) {
        core::cmp::Ordering::Less => SessionOrdering::Better,
        core::cmp::Ordering::Equal => SessionOrdering::Equal,
        core::cmp::Ordering::Greater => SessionOrdering::Worse,
    }
}

fn vodozemac_ordering(ordering: vm::SessionOrdering) -> SessionOrdering {
    match ordering {
        vm::SessionOrdering::Equal => SessionOrdering::Equal,
        vm::SessionOrdering::Better => SessionOrdering::Better,
        vm::SessionOrdering::Worse => SessionOrdering::Worse,
        vm::SessionOrdering::Unconnected => SessionOrdering::Unconnected,
    }
}

/// Exports with a genuine session id but a ratchet that is not the session's at their index:
/// one bit of part 0 flipped, or the index moved by 2^16. Both differences survive every advance
/// below 2^24 (part 0 changes only at multiples of 2^24; see the next test for forgeries that
/// do not survive).
fn forgeries(export: &str) -> [String; 2] {
    let mut wrong_index = bytes(export);
    wrong_index[2] ^= 1;
    [flip_bit(export, (5 + 10) * 8 + 3), base64_encode(wrong_index)]
}

#[test]
fn sessions_compare_and_merge_across_implementations() {
    const INDICES: [u32; 3] = [0, 10, 300];
    for peer in PEERS {
        for sender_impl in [Impl::Ferrolm, peer] {
            let context = format!("{sender_impl:?} sender, ferrolm and {peer:?} receivers");
            let mut sender = Sender::new(sender_impl, Version::V1);
            let mut keys = Vec::new();
            let mut messages = Vec::new();
            for n in 0..=INDICES[2] {
                if INDICES.contains(&n) {
                    keys.push(sender.session_key());
                }
                messages.push(sender.encrypt(format!("#{n}").as_bytes()));
            }
            let ferrolm_native: Vec<fm::InboundGroupSession> = keys
                .iter()
                .map(|k| {
                    fm::InboundGroupSession::new(
                        &fm::SessionKey::from_base64(k).unwrap(),
                        fm::SessionConfig::version_1(),
                    )
                })
                .collect();
            let mut theirs = Receiver::new(peer, &keys[0], Version::V1).unwrap();

            for (i, &a) in INDICES.iter().enumerate() {
                let export = theirs.export_at(a).unwrap();
                let imported = fm::InboundGroupSession::import(
                    &fm::ExportedSessionKey::from_base64(&export).unwrap(),
                    fm::SessionConfig::version_1(),
                );
                for (native, &b) in ferrolm_native.iter().zip(&INDICES) {
                    let context = format!("{context}: {peer:?}'s export at {a} against ferrolm's session from {b}");
                    assert_eq!(imported.compare(native), ordering(a, b), "{context}");
                    assert_eq!(native.compare(&imported), ordering(b, a), "{context}");
                }

                // Merging the unverified import with the verified session from a later key: the
                // earlier index, verified.
                let later = &ferrolm_native[(i + 1).min(2)];
                let merged = later.merge(&imported).expect("connected sessions merge");
                assert_eq!(merged.first_known_index(), a.min(later.first_known_index()), "{context}");
                assert!(merged.is_verified(), "{context}: merged with a verified session");
                assert!(!imported.merge(&imported.clone()).unwrap().is_verified(), "{context}");
                let first = merged.first_known_index();
                assert_eq!(
                    *merged.export_at(first).unwrap().to_base64(),
                    theirs.export_at(first).unwrap(),
                    "{context}"
                );
                let mut merged = merged;
                let message = fm::MegolmMessage::from_base64(&messages[first as usize]).unwrap();
                assert_eq!(merged.decrypt(&message).unwrap().plaintext, format!("#{first}").into_bytes(), "{context}");

                for forged in forgeries(&export) {
                    let forged = fm::InboundGroupSession::import(
                        &fm::ExportedSessionKey::from_base64(&forged).unwrap(),
                        fm::SessionConfig::version_1(),
                    );
                    assert_eq!(forged.session_id().to_base64(), sender.session_id(), "{context}");
                    for native in &ferrolm_native {
                        assert_eq!(forged.compare(native), SessionOrdering::Unconnected, "{context}: forged export");
                        assert_eq!(native.compare(&forged), SessionOrdering::Unconnected, "{context}: forged export");
                        assert!(native.merge(&forged).is_none(), "{context}: a forged export merged");
                    }
                    assert_eq!(forged.compare(&imported), SessionOrdering::Unconnected, "{context}");
                }
            }

            // The other way round: vodozemac compares its sessions with ferrolm's exports.
            if let Receiver::Vodozemac(_) = theirs {
                let mut vodozemac_native: Vec<vm::InboundGroupSession> = keys
                    .iter()
                    .map(|k| {
                        vm::InboundGroupSession::new(
                            &vm::SessionKey::from_base64(k).unwrap(),
                            vm::SessionConfig::version_1(),
                        )
                    })
                    .collect();
                for &a in &INDICES {
                    let export = ferrolm_native[0].export_at(a).unwrap().to_base64();
                    let mut imported = vm::InboundGroupSession::import(
                        &vm::ExportedSessionKey::from_base64(&export).unwrap(),
                        vm::SessionConfig::version_1(),
                    );
                    for (native, &b) in vodozemac_native.iter_mut().zip(&INDICES) {
                        let context =
                            format!("{context}: ferrolm's export at {a} against vodozemac's session from {b}");
                        assert_eq!(vodozemac_ordering(imported.compare(native)), ordering(a, b), "{context}");
                        assert_eq!(vodozemac_ordering(native.compare(&mut imported)), ordering(b, a), "{context}");
                        let mut merged = native.merge(&mut imported).unwrap();
                        assert!(vodozemac_verified_flag(&merged), "{context}");
                        let first = a.min(b);
                        let merged_export = merged.export_at(first).unwrap().to_base64();
                        assert_eq!(
                            merged_export,
                            *ferrolm_native[0].export_at(first).unwrap().to_base64(),
                            "{context}"
                        );
                    }
                    for forged in forgeries(&export) {
                        let mut forged = vm::InboundGroupSession::import(
                            &vm::ExportedSessionKey::from_base64(&forged).unwrap(),
                            vm::SessionConfig::version_1(),
                        );
                        for native in &mut vodozemac_native {
                            assert_eq!(forged.compare(native), vm::SessionOrdering::Unconnected, "{context}: forged");
                        }
                    }
                }
            }
        }
    }
}

/// Compare can only check a forged export at the other session's index, so a difference the
/// advance to that index overwrites goes unseen: part 3 is re-derived from part 2 at every
/// multiple of 2^8 (part 2 from part 1 at multiples of 2^16, and so on). A forgery at index 10
/// with part 3 altered, or the genuine ratchet at 10 labelled 11, is Unconnected to a genuine
/// session from 0 but "Better" than a verified one from 300, in ferrolm and vodozemac alike;
/// merged, the session counts as verified, keeps the forged ratchet, refuses (bad MAC) the
/// messages below 256 it claims to know, and decrypts from 256 on. Nothing decrypts wrongly:
/// messages are signed and MACed.
#[test]
fn forgeries_overwritten_by_a_turnover_connect_past_it_in_ferrolm_and_vodozemac() {
    let mut sender = Sender::new(Impl::Vodozemac, Version::V1);
    let first_key = sender.session_key();
    let mut messages: Vec<String> = (0..300).map(|n| sender.encrypt(format!("#{n}").as_bytes())).collect();
    let key_at_300 = sender.session_key();
    messages.push(sender.encrypt(b"#300"));
    let mut genuine = Receiver::new(Impl::Ferrolm, &first_key, Version::V1).unwrap();
    let at_10 = genuine.export_at(10).unwrap();
    let mut relabelled = bytes(&at_10);
    relabelled[4] = 11;
    let forgeries =
        [("part 3 altered", flip_bit(&at_10, (5 + 96 + 7) * 8)), ("labelled 11", base64_encode(relabelled))];

    let ferrolm_import = |key: &str| {
        fm::InboundGroupSession::import(
            &fm::ExportedSessionKey::from_base64(key).unwrap(),
            fm::SessionConfig::version_1(),
        )
    };
    let vodozemac_import = |key: &str| {
        vm::InboundGroupSession::import(
            &vm::ExportedSessionKey::from_base64(key).unwrap(),
            vm::SessionConfig::version_1(),
        )
    };
    let ferrolm_from_0 = genuine.ferrolm().clone();
    let ferrolm_from_300 = fm::InboundGroupSession::new(
        &fm::SessionKey::from_base64(&key_at_300).unwrap(),
        fm::SessionConfig::version_1(),
    );
    let vodozemac_new = |key: &str| {
        vm::InboundGroupSession::new(&vm::SessionKey::from_base64(key).unwrap(), vm::SessionConfig::version_1())
    };
    let mut vodozemac_from_0 = vodozemac_new(&first_key);
    let mut vodozemac_from_300 = vodozemac_new(&key_at_300);

    for (name, forged) in forgeries {
        let ferrolm_forged = ferrolm_import(&forged);
        let mut vodozemac_forged = vodozemac_import(&forged);
        assert_eq!(ferrolm_forged.compare(&ferrolm_from_0), SessionOrdering::Unconnected, "{name}");
        assert_eq!(vodozemac_forged.compare(&mut vodozemac_from_0), vm::SessionOrdering::Unconnected, "{name}");
        assert_eq!(ferrolm_forged.compare(&ferrolm_from_300), SessionOrdering::Better, "{name}");
        assert_eq!(vodozemac_forged.compare(&mut vodozemac_from_300), vm::SessionOrdering::Better, "{name}");

        let mut merged = ferrolm_from_300.merge(&ferrolm_forged).unwrap();
        let first = merged.first_known_index() as usize;
        assert!(merged.is_verified(), "{name}: verified, from the genuine session");
        let message = |n: usize| fm::MegolmMessage::from_base64(&messages[n]).unwrap();
        assert_eq!(merged.decrypt(&message(first)), Err(fm::DecryptionError::InvalidMac), "{name}");
        assert_eq!(merged.decrypt(&message(255)), Err(fm::DecryptionError::InvalidMac), "{name}");
        assert_eq!(merged.decrypt(&message(256)).unwrap().plaintext, b"#256", "{name}");
        let mut vodozemac_merged = vodozemac_from_300.merge(&mut vodozemac_forged).unwrap();
        assert!(vodozemac_verified_flag(&vodozemac_merged), "{name}");
        let vodozemac_message = |n: usize| vm::MegolmMessage::from_base64(&messages[n]).unwrap();
        assert!(matches!(vodozemac_merged.decrypt(&vodozemac_message(first)), Err(vm::DecryptionError::InvalidMAC(_))));
        assert_eq!(vodozemac_merged.decrypt(&vodozemac_message(256)).unwrap().plaintext, b"#256", "{name}");
    }
}
