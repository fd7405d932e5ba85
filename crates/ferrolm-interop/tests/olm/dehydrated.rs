//! Dehydrated devices (MSC3814, `org.matrix.msc3814.v2`): an account dehydrated by ferrolm is
//! rehydrated by vodozemac and the other way round, and the rehydrated account opens the
//! sessions senders made with the dehydrated device's published one-time and fallback keys.

use ferrolm::olm as fo;
use vodozemac::olm as vo;

use crate::common::*;

const KEY: [u8; 32] = [0x5a; 32];

/// Each sender implementation opens a session with `rehydrated` from `key`, which must decrypt.
fn opens_sessions(rehydrated: &mut dyn PeerAccount, keys: &[String], context: &str) {
    for (i, key) in keys.iter().enumerate() {
        for sender in [Impl::Ferrolm, Impl::Vodozemac] {
            let sender = new_account(sender);
            let mut session = sender.create_outbound(Version::V1, &rehydrated.curve25519_key(), key);
            let plaintext = format!("to the dehydrated device, key {i}");
            let message = session.encrypt(plaintext.as_bytes());
            let (_, decrypted) = rehydrated
                .create_inbound(Version::V1, &sender.curve25519_key(), &message)
                .unwrap_or_else(|e| panic!("{context}: key {i}: {e}"));
            assert_eq!(decrypted, plaintext.as_bytes(), "{context}");
            if i == 0 {
                break; // a one-time key opens one session only
            }
        }
    }
}

#[test]
fn a_device_dehydrated_by_ferrolm_is_rehydrated_by_vodozemac() {
    let mut dehydrated = FerrolmAccount(fo::Account::new());
    let one_time_key = dehydrated.publish_one_time_key();
    let fallback_key = dehydrated.publish_fallback_key();
    let pickle = dehydrated.0.to_dehydrated_device(&KEY).unwrap();

    let mut rehydrated =
        VodozemacAccount(vo::Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &KEY).unwrap());
    assert_eq!(rehydrated.curve25519_key(), dehydrated.curve25519_key());
    assert_eq!(rehydrated.ed25519_key(), dehydrated.ed25519_key());
    assert_eq!(rehydrated.sign(b"device keys"), dehydrated.sign(b"device keys"));
    opens_sessions(&mut rehydrated, &[one_time_key, fallback_key], "ferrolm → vodozemac");

    assert!(vo::Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &[0; 32]).is_err());
}

#[test]
fn a_device_dehydrated_by_vodozemac_is_rehydrated_by_ferrolm() {
    let mut dehydrated = VodozemacAccount(vo::Account::new());
    let one_time_key = dehydrated.publish_one_time_key();
    let fallback_key = dehydrated.publish_fallback_key();
    let pickle = dehydrated.0.to_dehydrated_device(&KEY).unwrap();

    let mut rehydrated =
        FerrolmAccount(fo::Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &KEY).unwrap());
    assert_eq!(rehydrated.curve25519_key(), dehydrated.curve25519_key());
    assert_eq!(rehydrated.ed25519_key(), dehydrated.ed25519_key());
    assert_eq!(rehydrated.sign(b"device keys"), dehydrated.sign(b"device keys"));
    opens_sessions(&mut rehydrated, &[one_time_key, fallback_key], "vodozemac → ferrolm");

    assert_eq!(
        fo::Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &[0; 32]).err(),
        Some(fo::DehydratedDeviceError::Decryption)
    );
}

#[test]
fn many_one_time_keys_survive_both_ways() {
    let mut account = fo::Account::new();
    account.generate_one_time_keys(50);
    account.generate_fallback_key();
    let publics: Vec<String> = account.one_time_keys().values().map(|k| k.to_base64()).collect();
    let pickle = account.to_dehydrated_device(&KEY).unwrap();
    let vodozemac = vo::Account::from_dehydrated_device(&pickle.ciphertext, &pickle.nonce, &KEY).unwrap();
    // Back through vodozemac's own dehydration, into ferrolm again: the last key still works.
    let again = vodozemac.to_dehydrated_device(&KEY).unwrap();
    let mut back = FerrolmAccount(fo::Account::from_dehydrated_device(&again.ciphertext, &again.nonce, &KEY).unwrap());
    assert_eq!(back.0.identity_keys(), account.identity_keys());
    assert_eq!(back.0.stored_one_time_key_count(), 50);
    opens_sessions(&mut back, &publics[49..], "ferrolm → vodozemac → ferrolm");
}
