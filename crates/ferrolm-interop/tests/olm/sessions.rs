//! Session establishment between ferrolm and each peer, in both directions: from one-time
//! keys and fallback keys, the pre-key phase, key consumption, signatures, and version-2
//! (full MAC) sessions with vodozemac.

use ferrolm::olm as fo;
use ferrolm_interop::libolm;
use proptest::prelude::*;

use crate::common::*;

/// Both directions for every peer.
fn directions() -> Vec<(Impl, Impl)> {
    PEERS.iter().flat_map(|&peer| [(Impl::Ferrolm, peer), (peer, Impl::Ferrolm)]).collect()
}

/// Whether a ferrolm receiver recognises a later pre-key message as belonging to its
/// session (`None` for the other implementations).
fn ferrolm_matches(receiver: &dyn PeerSession, message: &Wire) -> Option<bool> {
    let session = receiver.as_ferrolm()?;
    let fo::OlmMessage::PreKey(pre_key) = message.to_ferrolm().unwrap() else { panic!("a pre-key message") };
    assert_eq!(pre_key.session_id(), session.session_id());
    Some(session.matches(&pre_key))
}

#[test]
fn sessions_from_one_time_and_fallback_keys_in_both_directions() {
    for (initiator, receiver) in directions() {
        for key in [KeyKind::OneTime, KeyKind::Fallback] {
            let context = format!("{initiator:?} → {receiver:?} from a {key:?} key");
            let mut pair = establish(initiator, receiver, Version::V1, key);

            // Until the receiver answers, the initiator keeps sending pre-key messages, which
            // the receiver decrypts with the session it already has.
            assert!(pair.receiver.has_received_message(), "{context}");
            assert!(!pair.initiator.has_received_message(), "{context}");
            for i in 0..3 {
                let message = pair.initiator.encrypt(format!("pre-key {i}").as_bytes());
                assert!(message.is_pre_key(), "{context}");
                if let Some(matches) = ferrolm_matches(pair.receiver.as_ref(), &message) {
                    assert!(matches, "{context}: ferrolm matches the pre-key message to its session");
                }
                assert_eq!(pair.receiver.decrypt(&message).unwrap(), format!("pre-key {i}").as_bytes(), "{context}");
            }

            // The receiver's messages are normal ones from the start.
            let reply = send(pair.receiver.as_mut(), pair.initiator.as_mut(), b"reply");
            assert!(!reply.is_pre_key(), "{context}");
            assert!(pair.initiator.has_received_message(), "{context}");
            let normal = send(pair.initiator.as_mut(), pair.receiver.as_mut(), b"normal now");
            assert!(!normal.is_pre_key(), "{context}");
            ping_pong(pair.initiator.as_mut(), pair.receiver.as_mut(), 5);

            // A one-time key is used up; a fallback key can open another session.
            let another = new_account(initiator);
            let mut second =
                another.create_outbound(Version::V1, &pair.receiver_account.curve25519_key(), &pair.claimed_key);
            let message = second.encrypt(b"second session");
            let result = pair.receiver_account.create_inbound(Version::V1, &another.curve25519_key(), &message);
            match key {
                KeyKind::OneTime => {
                    let error =
                        result.err().unwrap_or_else(|| panic!("{context}: a one-time key opens only one session"));
                    if receiver == Impl::Ferrolm {
                        assert!(error.starts_with("MissingOneTimeKey"), "{context}: {error}");
                    }
                }
                KeyKind::Fallback => {
                    let (mut session, plaintext) = result.unwrap_or_else(|e| panic!("{context}: {e}"));
                    assert_eq!(plaintext, b"second session");
                    ping_pong(second.as_mut(), session.as_mut(), 2);
                }
            }
        }
    }
}

#[test]
fn ferrolm_keeps_the_previous_fallback_key_until_told_to_forget_it() {
    for peer in PEERS {
        let mut bob = fo::Account::new();
        bob.generate_fallback_key();
        let old = *bob.fallback_key().values().next().unwrap();
        bob.mark_keys_as_published();
        assert_eq!(bob.generate_fallback_key(), None, "no previous key was forgotten");
        let new = *bob.fallback_key().values().next().unwrap();
        assert_ne!(old, new);

        for claimed in [old, new] {
            let alice = new_account(peer);
            let mut outbound =
                alice.create_outbound(Version::V1, &bob.curve25519_key().to_base64(), &claimed.to_base64());
            let fo::OlmMessage::PreKey(m) = outbound.encrypt(b"hi").to_ferrolm().unwrap() else { panic!() };
            let created = bob
                .create_inbound_session(fo::SessionConfig::version_1(), ferrolm_key(&alice.curve25519_key()), &m)
                .unwrap();
            assert_eq!(created.plaintext, b"hi");
            let mut inbound = FerrolmSession(created.session);
            ping_pong(outbound.as_mut(), &mut inbound, 2);
        }

        assert!(bob.forget_fallback_key());
        let alice = new_account(peer);
        let mut outbound = alice.create_outbound(Version::V1, &bob.curve25519_key().to_base64(), &old.to_base64());
        let fo::OlmMessage::PreKey(m) = outbound.encrypt(b"too late").to_ferrolm().unwrap() else { panic!() };
        assert_eq!(
            bob.create_inbound_session(fo::SessionConfig::version_1(), ferrolm_key(&alice.curve25519_key()), &m)
                .unwrap_err(),
            fo::SessionCreationError::MissingOneTimeKey(old),
            "{peer:?}"
        );
    }
}

#[test]
fn libolm_and_ferrolm_agree_on_pre_key_matching() {
    // libolm's olm_matches_inbound_session on ferrolm's pre-key messages.
    let mut bob = libolm::Account::new().unwrap();
    bob.generate_one_time_keys(2).unwrap();
    let keys: Vec<String> = bob.one_time_keys().unwrap().into_values().collect();
    bob.mark_keys_as_published().unwrap();
    let bob_key = bob.identity_keys().unwrap().curve25519;
    let alice = fo::Account::new();
    let mut to_bob = alice
        .create_outbound_session(fo::SessionConfig::version_1(), ferrolm_key(&bob_key), ferrolm_key(&keys[0]))
        .unwrap();
    let mut other = alice
        .create_outbound_session(fo::SessionConfig::version_1(), ferrolm_key(&bob_key), ferrolm_key(&keys[1]))
        .unwrap();
    let (_, first) = to_bob.encrypt(b"one").to_parts();
    let (_, unrelated) = other.encrypt(b"two").to_parts();
    let alice_key = alice.curve25519_key().to_base64();
    let mut session = libolm::Session::create_inbound_from(&bob, &alice_key, &first).unwrap();
    assert!(session.matches_inbound_session(&first).unwrap());
    assert!(session.matches_inbound_session_from(&alice_key, &first).unwrap());
    assert!(!session.matches_inbound_session(&unrelated).unwrap());
    assert_eq!(session.decrypt(libolm::MessageType::PreKey, &first).unwrap(), b"one");
    assert_eq!(session.session_id().unwrap(), to_bob.session_id().to_base64());

    // ferrolm matching libolm's pre-key messages.
    let mut carol = fo::Account::new();
    carol.generate_one_time_keys(1);
    let otk = *carol.one_time_keys().values().next().unwrap();
    let dave = libolm::Account::new().unwrap();
    let mut from_dave =
        libolm::Session::create_outbound(&dave, &carol.curve25519_key().to_base64(), &otk.to_base64()).unwrap();
    let (_, first) = from_dave.encrypt(b"first").unwrap();
    let (_, second) = from_dave.encrypt(b"second").unwrap();
    let first = fo::PreKeyMessage::from_base64(&first).unwrap();
    let second = fo::PreKeyMessage::from_base64(&second).unwrap();
    let dave_key = ferrolm_key(&dave.identity_keys().unwrap().curve25519);
    let mut created = carol.create_inbound_session(fo::SessionConfig::version_1(), dave_key, &first).unwrap();
    assert!(created.session.matches(&second));
    assert_eq!(first.session_id().to_base64(), from_dave.session_id().unwrap());
    assert_eq!(created.session.decrypt(&second.into()).unwrap(), b"second");
}

#[test]
fn signatures_verify_across_implementations() {
    let message = b"{\"algorithms\":[\"m.olm.v1.curve25519-aes-sha2\"],\"device_id\":\"FERROLM\"}";
    let ferrolm = fo::Account::new();
    let signature = ferrolm.sign(message);
    let key = ferrolm.ed25519_key();
    libolm::Utility::new().ed25519_verify(&key.to_base64(), message, &signature.to_base64()).unwrap();
    let error = libolm::Utility::new().ed25519_verify(&key.to_base64(), b"other", &signature.to_base64()).unwrap_err();
    assert_eq!(error.code, libolm::ErrorCode::BadMessageMac);
    vodozemac::Ed25519PublicKey::from_base64(&key.to_base64())
        .unwrap()
        .verify(message, &vodozemac::Ed25519Signature::from_base64(&signature.to_base64()).unwrap())
        .unwrap();

    for peer in PEERS {
        let account = new_account(peer);
        let signature = ferrolm::types::Ed25519Signature::from_base64(&account.sign(message)).unwrap();
        let key = ferrolm::types::Ed25519PublicKey::from_base64(&account.ed25519_key()).unwrap();
        key.verify(message, &signature).unwrap();
        assert!(key.verify(b"other", &signature).is_err(), "{peer:?}");
    }
}

#[test]
fn version_2_sessions_with_vodozemac() {
    for (initiator, receiver) in [(Impl::Ferrolm, Impl::Vodozemac), (Impl::Vodozemac, Impl::Ferrolm)] {
        for key in [KeyKind::OneTime, KeyKind::Fallback] {
            let context = format!("{initiator:?} → {receiver:?}, {key:?} key, version 2");
            let mut pair = establish(initiator, receiver, Version::V2, key);
            for (i, message) in [
                pair.initiator.encrypt(b"pre-key, full MAC"),
                send(pair.receiver.as_mut(), pair.initiator.as_mut(), b"reply, full MAC"),
                send(pair.initiator.as_mut(), pair.receiver.as_mut(), b"normal, full MAC"),
            ]
            .into_iter()
            .enumerate()
            {
                let decoded = message.to_ferrolm().unwrap();
                assert_eq!(decoded.message().version(), 4, "{context}: message {i} has version byte 4");
                assert_eq!(decoded.message().mac().len(), 32, "{context}: message {i} has a 32-byte MAC");
            }
            let ferrolm_side = match initiator {
                Impl::Ferrolm => pair.initiator.as_ferrolm(),
                _ => pair.receiver.as_ferrolm(),
            };
            let ferrolm_side = ferrolm_side.unwrap();
            assert_eq!(ferrolm_side.config(), fo::SessionConfig::version_2(), "{context}");
            assert!(
                matches!(
                    ferrolm_side.to_libolm_pickle(b"key"),
                    Err(ferrolm::pickle::PickleError::UnsupportedByLibolm(_))
                ),
                "{context}: libolm's format has no version-2 sessions"
            );
            ping_pong(pair.initiator.as_mut(), pair.receiver.as_mut(), 5);
        }
    }
}

#[test]
fn version_mismatches_are_refused() {
    // A ferrolm version-2 session refuses vodozemac's version-1 messages, and the reverse.
    let v2 = establish(Impl::Ferrolm, Impl::Vodozemac, Version::V2, KeyKind::OneTime);
    let mut v1 = establish(Impl::Ferrolm, Impl::Vodozemac, Version::V1, KeyKind::OneTime);
    let message = v1.receiver.encrypt(b"version 1").to_ferrolm().unwrap();
    let mut ferrolm_v2 = v2.initiator.as_ferrolm().unwrap().clone();
    assert_eq!(ferrolm_v2.decrypt(&message), Err(fo::DecryptionError::VersionMismatch { expected: 4, got: 3 }));

    // libolm has no version 2: it refuses ferrolm's version-2 pre-key messages.
    let mut bob = libolm::Account::new().unwrap();
    bob.generate_one_time_keys(1).unwrap();
    let otk = bob.one_time_keys().unwrap().into_values().next().unwrap();
    let alice = fo::Account::new();
    let mut session = alice
        .create_outbound_session(
            fo::SessionConfig::version_2(),
            ferrolm_key(&bob.identity_keys().unwrap().curve25519),
            ferrolm_key(&otk),
        )
        .unwrap();
    let (_, body) = session.encrypt(b"full MAC").to_parts();
    let refused =
        libolm::Session::create_inbound(&bob, &body).and_then(|mut s| s.decrypt(libolm::MessageType::PreKey, &body));
    assert!(refused.is_err(), "libolm cannot read version 2");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Plaintexts of every length and content survive the trip both ways.
    #[test]
    fn any_plaintext_crosses(plaintext in proptest::collection::vec(any::<u8>(), 0..600), peer_index in 0usize..2, ferrolm_first in any::<bool>()) {
        let peer = PEERS[peer_index];
        let (a, b) = if ferrolm_first { (Impl::Ferrolm, peer) } else { (peer, Impl::Ferrolm) };
        let mut pair = establish(a, b, Version::V1, KeyKind::OneTime);
        send(pair.initiator.as_mut(), pair.receiver.as_mut(), &plaintext);
        send(pair.receiver.as_mut(), pair.initiator.as_mut(), &plaintext);
        send(pair.initiator.as_mut(), pair.receiver.as_mut(), &plaintext);
    }
}
