//! Failures that cross implementations: altered messages give ferrolm's typed
//! `DecryptionError::InvalidMac` (and are refused by the peers), wrong pickle keys give
//! `PickleError::Mac` (and are refused by the peers). A failure never changes a session.

use ferrolm::olm as fo;
use ferrolm::pickle::PickleError;
use ferrolm_interop::libolm;

use crate::common::*;

/// Bit flips that must break the MAC: the last MAC byte, the first MAC byte, and the last
/// ciphertext byte.
fn flips(mac_len: usize) -> [usize; 3] {
    [1, mac_len, mac_len + 1]
}

#[test]
fn altered_pre_key_messages_from_peers_give_invalid_mac_and_keep_the_one_time_key() {
    for peer in PEERS {
        let mut bob = fo::Account::new();
        bob.generate_one_time_keys(1);
        let otk = *bob.one_time_keys().values().next().unwrap();
        bob.mark_keys_as_published();
        let alice = new_account(peer);
        let mut outbound = alice.create_outbound(Version::V1, &bob.curve25519_key().to_base64(), &otk.to_base64());
        let message = outbound.encrypt(b"genuine");
        let alice_key = ferrolm_key(&alice.curve25519_key());
        for offset in flips(8) {
            let fo::OlmMessage::PreKey(altered) = message.with_flipped_bit(offset).to_ferrolm().unwrap() else {
                panic!()
            };
            assert_eq!(
                bob.create_inbound_session(fo::SessionConfig::version_1(), alice_key, &altered).unwrap_err(),
                fo::SessionCreationError::Decryption(fo::DecryptionError::InvalidMac),
                "{peer:?}, bit flipped {offset} bytes from the end"
            );
            assert_eq!(bob.stored_one_time_key_count(), 1, "the one-time key survives a failed creation");
        }
        let fo::OlmMessage::PreKey(genuine) = message.to_ferrolm().unwrap() else { panic!() };
        let created = bob.create_inbound_session(fo::SessionConfig::version_1(), alice_key, &genuine).unwrap();
        assert_eq!(created.plaintext, b"genuine");
        assert_eq!(bob.stored_one_time_key_count(), 0);
        let mut inbound = FerrolmSession(created.session);
        ping_pong(outbound.as_mut(), &mut inbound, 2);
    }
}

#[test]
fn altered_messages_from_peers_give_invalid_mac_and_change_nothing() {
    let cases = [(Impl::Vodozemac, Version::V1, 8), (Impl::Libolm, Version::V1, 8), (Impl::Vodozemac, Version::V2, 32)];
    for (peer, version, mac_len) in cases {
        for ferrolm_initiates in [true, false] {
            let pair = if ferrolm_initiates {
                establish(Impl::Ferrolm, peer, version, KeyKind::OneTime)
            } else {
                establish(peer, Impl::Ferrolm, version, KeyKind::OneTime)
            };
            let (mut ferrolm, mut other) =
                if ferrolm_initiates { (pair.initiator, pair.receiver) } else { (pair.receiver, pair.initiator) };
            let context = format!("{peer:?} {version:?}, ferrolm initiates: {ferrolm_initiates}");
            ping_pong(ferrolm.as_mut(), other.as_mut(), 1);

            // Peer → ferrolm: a new chain's first message, then a message inside the chain.
            for _ in 0..2 {
                let message = other.encrypt(b"genuine");
                for offset in flips(mac_len) {
                    let altered = message.with_flipped_bit(offset).to_ferrolm().unwrap();
                    let session = ferrolm.as_ferrolm_mut().unwrap();
                    assert_eq!(
                        session.decrypt(&altered),
                        Err(fo::DecryptionError::InvalidMac),
                        "{context}, offset {offset}"
                    );
                }
                assert_eq!(ferrolm.decrypt(&message).unwrap(), b"genuine", "{context}");
            }

            // ferrolm → peer: the peer refuses the altered message and still takes the real one.
            let message = ferrolm.encrypt(b"from ferrolm");
            for offset in flips(mac_len) {
                let error = other.decrypt(&message.with_flipped_bit(offset)).unwrap_err();
                match peer {
                    Impl::Libolm => assert!(error.contains("BadMessageMac"), "{context}: {error}"),
                    _ => assert!(error.contains("InvalidMAC"), "{context}: {error}"),
                }
            }
            assert_eq!(other.decrypt(&message).unwrap(), b"from ferrolm", "{context}");
            ping_pong(ferrolm.as_mut(), other.as_mut(), 2);
        }
    }
}

#[test]
fn ferrolm_refuses_peer_pickles_under_the_wrong_key() {
    let key = b"the right pickle key";
    let wrong = b"the wrong pickle key";

    let mut account = libolm::Account::new().unwrap();
    account.generate_one_time_keys(3).unwrap();
    let pickle = account.pickle(key).unwrap();
    assert!(fo::Account::from_libolm_pickle(&pickle, key).is_ok());
    assert_eq!(fo::Account::from_libolm_pickle(&pickle, wrong).unwrap_err(), PickleError::Mac);
    assert_eq!(fo::Account::from_libolm_pickle(&pickle, b"").unwrap_err(), PickleError::Mac);

    let pair = establish(Impl::Libolm, Impl::Ferrolm, Version::V1, KeyKind::OneTime);
    let libolm_session = pair.initiator.as_libolm().unwrap().pickle(key).unwrap();
    assert!(fo::Session::from_libolm_pickle(&libolm_session, key).is_ok());
    assert_eq!(fo::Session::from_libolm_pickle(&libolm_session, wrong).unwrap_err(), PickleError::Mac);

    let vodozemac_pickle = vodozemac::olm::Account::new().to_libolm_pickle(key).unwrap();
    assert!(fo::Account::from_libolm_pickle(&vodozemac_pickle, key).is_ok());
    assert_eq!(fo::Account::from_libolm_pickle(&vodozemac_pickle, wrong).unwrap_err(), PickleError::Mac);

    // An altered pickle fails the same way.
    let mut bytes = ferrolm::types::base64_decode(&pickle).unwrap();
    bytes[10] ^= 0x80;
    let altered = ferrolm::types::base64_encode(bytes);
    assert_eq!(fo::Account::from_libolm_pickle(&altered, key).unwrap_err(), PickleError::Mac);

    // ferrolm's own format too.
    let pickle = fo::Account::new().pickle(&ferrolm::pickle::PickleKey::from_bytes([1; 32]));
    assert_eq!(
        fo::Account::from_pickle(&pickle, &ferrolm::pickle::PickleKey::from_bytes([2; 32])).unwrap_err(),
        PickleError::Mac
    );
}

#[test]
fn peers_refuse_ferrolm_pickles_under_the_wrong_key() {
    let key = [5u8; 32];
    let wrong = [6u8; 32];
    let mut account = fo::Account::new();
    account.generate_one_time_keys(2);
    let pickle = account.to_libolm_pickle(&key).unwrap();
    assert!(libolm::Account::unpickle(&pickle, &key).is_ok());
    assert_eq!(libolm::Account::unpickle(&pickle, &wrong).unwrap_err().code, libolm::ErrorCode::BadAccountKey);
    assert!(vodozemac::olm::Account::from_libolm_pickle(&pickle, &key).is_ok());
    assert!(matches!(
        vodozemac::olm::Account::from_libolm_pickle(&pickle, &wrong),
        Err(vodozemac::LibolmPickleError::Decryption(_))
    ));

    let pair = establish(Impl::Ferrolm, Impl::Libolm, Version::V1, KeyKind::OneTime);
    let pickle = pair.initiator.as_ferrolm().unwrap().to_libolm_pickle(&key).unwrap();
    assert!(libolm::Session::unpickle(&pickle, &key).is_ok());
    assert_eq!(libolm::Session::unpickle(&pickle, &wrong).unwrap_err().code, libolm::ErrorCode::BadAccountKey);
    assert!(vodozemac::olm::Session::from_libolm_pickle(&pickle, &key).is_ok());
    assert!(vodozemac::olm::Session::from_libolm_pickle(&pickle, &wrong).is_err());
}
