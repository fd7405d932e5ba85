//! Secret gossip (`m.secret.request` / `m.secret.send`) between a ferrolm device and a
//! matrix-sdk-crypto device of the same user, each having verified the other locally.

use ferrolm::pk::PkDecryption;
use ferrolm::types::{Curve25519PublicKey, base64_encode};
use ferrolm_machine::ruma::events::secret::request::SecretName;
use ferrolm_machine::secret_storage::{
    CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY,
};
use ferrolm_machine::{LocalTrust, SecretRefusal, SecretRequestRefusal};
use ferrolm_store::RequestKind;
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, bootstrap_cross_signing, run_requests, sync};
use matrix_sdk_crypto::CollectStrategy;
use matrix_sdk_crypto::store::types::BackupDecryptionKey;
use matrix_sdk_crypto::types::requests::ToDeviceRequest;

use crate::common::fe_open_sessions;
use crate::msc::{MscDevice, block_on};
use crate::{ALICE, BACKUP_SEED, alice, device_id, fe_device, fe_with_backup_key, meet, msc_bootstrap_cross_signing};

/// Both devices verify each other (local trust) and open Olm sessions with each other.
fn verify_and_connect(hs: &mut Homeserver, fe: &mut TestDevice, msc: &MscDevice) {
    connect(hs, fe, msc, true, true);
}

/// The devices open Olm sessions with each other; each verifies the other (local trust) if told.
fn connect(hs: &mut Homeserver, fe: &mut TestDevice, msc: &MscDevice, fe_verifies: bool, msc_verifies: bool) {
    let alice = alice();
    if fe_verifies {
        fe.machine.set_local_trust(&alice, &device_id("MSCDEVICE"), LocalTrust::Verified).unwrap();
    }
    if msc_verifies {
        let fe_device = msc.device(&alice, &device_id("FERROLM")).expect("msc knows the ferrolm device");
        block_on(fe_device.set_local_trust(matrix_sdk_crypto::LocalTrust::Verified)).unwrap();
    }
    assert_eq!(msc.device(&alice, &device_id("FERROLM")).unwrap().is_verified(), msc_verifies);
    assert_eq!(fe_open_sessions(hs, &mut fe.machine, &[alice.clone()]), 1);
    assert!(msc.open_sessions(hs, &[alice]));
}

/// An msc device of Alice holding a backup key (version "1") of its own; returns its public key.
fn msc_with_backup_key(hs: &mut Homeserver) -> (MscDevice, Curve25519PublicKey) {
    let mut msc = MscDevice::new(hs, ALICE, "MSCDEVICE");
    msc.settle(hs, 1);
    let backup = BackupDecryptionKey::new();
    block_on(msc.machine.backup_machine().save_decryption_key(Some(backup.clone()), Some("1".into()))).unwrap();
    (msc, Curve25519PublicKey::from_base64(&backup.megolm_v1_public_key().to_base64()).unwrap())
}

#[test]
fn ferrolm_asks_and_matrix_sdk_crypto_answers() {
    let mut hs = Homeserver::new();
    let mut msc = MscDevice::new(&mut hs, ALICE, "MSCDEVICE");
    msc.settle(&mut hs, 1);
    msc_bootstrap_cross_signing(&mut hs, &msc);
    let backup = BackupDecryptionKey::new();
    block_on(msc.machine.backup_machine().save_decryption_key(Some(backup.clone()), Some("1".into()))).unwrap();
    let backup_public = Curve25519PublicKey::from_base64(&backup.megolm_v1_public_key().to_base64()).unwrap();

    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    meet(&mut hs, &mut fe, &mut msc);
    fe.machine.set_backup_for_secrets("1", backup_public);
    // Not verified yet: ferrolm asks nobody.
    assert!(fe.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap().sent_to.is_empty());
    verify_and_connect(&mut hs, &mut fe, &msc);

    for name in [MEGOLM_BACKUP_KEY, CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING] {
        let request = fe.machine.request_secret(name).unwrap();
        assert_eq!(request.sent_to, vec![device_id("MSCDEVICE")], "{name}");
        run_requests(&mut hs, &mut fe.machine).unwrap();
        // msc reads the request and answers it over Olm.
        let kinds = {
            msc.sync(&mut hs);
            msc.run_requests(&mut hs)
        };
        assert!(kinds.contains(&"to_device"), "msc answers {name}: {kinds:?}");
        let outcome = sync(&mut hs, &mut fe.machine).unwrap();
        let [secret] = outcome.secrets.as_slice() else { panic!("{name}: {:?}", outcome.secrets) };
        assert_eq!(secret.name.as_deref(), Some(name));
        assert_eq!(secret.request_id, request.request_id);
        assert_eq!(secret.sender_device, Some(device_id("MSCDEVICE")));
        assert_eq!(secret.result, Ok(()), "{name}");
    }

    // Each secret checked (against the backup and msc's published identity) and stored.
    let store = fe.machine.store();
    assert_eq!(store.backup().unwrap().unwrap().decryption_key.unwrap().public_key(), backup_public);
    let keys = store.private_cross_signing_keys().unwrap().unwrap();
    let exported = |name: &str| block_on(msc.machine.store().export_secret(&SecretName::from(name))).unwrap().unwrap();
    assert_eq!(base64_encode(keys.master.unwrap().as_bytes()), exported(CROSS_SIGNING_MASTER));
    assert_eq!(base64_encode(keys.self_signing.unwrap().as_bytes()), exported(CROSS_SIGNING_SELF_SIGNING));
    assert_eq!(base64_encode(keys.user_signing.unwrap().as_bytes()), exported(CROSS_SIGNING_USER_SIGNING));
}

#[test]
fn matrix_sdk_crypto_asks_and_ferrolm_answers() {
    let mut hs = Homeserver::new();
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    bootstrap_cross_signing(&mut hs, &mut fe.machine, false).unwrap();
    let mut fe = fe_with_backup_key(fe, 2);
    let mut msc = MscDevice::new(&mut hs, ALICE, "MSCDEVICE");
    meet(&mut hs, &mut fe, &mut msc);
    verify_and_connect(&mut hs, &mut fe, &msc);

    // msc asks its other devices for every secret it lacks (three keys and the backup key).
    assert!(block_on(msc.machine.query_missing_secrets_from_other_sessions()).unwrap());
    msc.run_requests(&mut hs);
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    let mut answered: Vec<&str> = outcome
        .secret_requests
        .iter()
        .map(|r| {
            assert_eq!(r.result, Ok(()), "{r:?}");
            assert_eq!(r.requesting_device_id, Some(device_id("MSCDEVICE")));
            r.name.as_deref().unwrap()
        })
        .collect();
    answered.sort();
    let mut names =
        vec![CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY];
    names.sort();
    assert_eq!(answered, names);
    run_requests(&mut hs, &mut fe.machine).unwrap();

    let answered = msc.sync(&mut hs);
    assert_eq!(answered.undecryptable(), 0);
    // msc imports the cross-signing keys (it checks them against ferrolm's published identity)...
    let status = block_on(msc.machine.cross_signing_status());
    assert!(status.has_master && status.has_self_signing && status.has_user_signing, "{status:?}");
    let held = fe.machine.store().private_cross_signing_keys().unwrap().unwrap();
    let exported = |name: &str| block_on(msc.machine.store().export_secret(&SecretName::from(name))).unwrap().unwrap();
    assert_eq!(exported(CROSS_SIGNING_MASTER), base64_encode(held.master.unwrap().as_bytes()));
    assert_eq!(exported(CROSS_SIGNING_USER_SIGNING), base64_encode(held.user_signing.unwrap().as_bytes()));
    // ...and puts the backup key in its secret inbox (it decides about backups elsewhere).
    let inbox = block_on(msc.machine.store().get_secrets_from_inbox(&SecretName::RecoveryKey)).unwrap();
    let [secret] = inbox.as_slice() else { panic!("{} secrets in the inbox", inbox.len()) };
    let key = BackupDecryptionKey::from_base64(secret).unwrap();
    assert_eq!(key.megolm_v1_public_key().to_base64(), PkDecryption::from_bytes(&BACKUP_SEED).public_key().to_base64());

    // Answered, msc cancels its requests at its other devices; ferrolm reads the
    // cancellations as such (nothing to answer, nothing malformed).
    let kinds = msc.run_requests(&mut hs);
    assert!(kinds.contains(&"to_device"), "{kinds:?}");
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    let plaintext = outcome
        .to_device
        .iter()
        .filter(|o| matches!(o, ferrolm_machine::ToDeviceOutcome::Plaintext(raw) if raw.json().get().contains("request_cancellation")))
        .count();
    assert!(plaintext >= 1, "{:?}", outcome.to_device);
    assert!(outcome.secret_requests.is_empty(), "{:?}", outcome.secret_requests);
    run_requests(&mut hs, &mut fe.machine).unwrap();
}

#[test]
fn matrix_sdk_crypto_does_not_answer_a_ferrolm_device_it_has_not_verified() {
    let mut hs = Homeserver::new();
    let (mut msc, backup_public) = msc_with_backup_key(&mut hs);
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    meet(&mut hs, &mut fe, &mut msc);
    fe.machine.set_backup_for_secrets("1", backup_public);
    connect(&mut hs, &mut fe, &msc, true, false);

    let request = fe.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap();
    assert_eq!(request.sent_to, vec![device_id("MSCDEVICE")]);
    run_requests(&mut hs, &mut fe.machine).unwrap();
    msc.sync(&mut hs);
    assert!(!msc.run_requests(&mut hs).contains(&"to_device"), "msc sends nothing");
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    assert!(outcome.secrets.is_empty(), "{:?}", outcome.secrets);
    assert!(fe.machine.store().backup().unwrap().and_then(|b| b.decryption_key).is_none());
}

#[test]
fn ferrolm_does_not_answer_a_matrix_sdk_crypto_device_it_has_not_verified() {
    let mut hs = Homeserver::new();
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    bootstrap_cross_signing(&mut hs, &mut fe.machine, false).unwrap();
    let mut fe = fe_with_backup_key(fe, 2);
    let mut msc = MscDevice::new(&mut hs, ALICE, "MSCDEVICE");
    meet(&mut hs, &mut fe, &mut msc);
    connect(&mut hs, &mut fe, &msc, false, true);

    assert!(block_on(msc.machine.query_missing_secrets_from_other_sessions()).unwrap());
    msc.run_requests(&mut hs);
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    assert_eq!(outcome.secret_requests.len(), 4, "{:?}", outcome.secret_requests);
    for refused in &outcome.secret_requests {
        assert_eq!(refused.result, Err(SecretRequestRefusal::UnverifiedDevice), "{refused:?}");
    }
    run_requests(&mut hs, &mut fe.machine).unwrap();
    msc.sync(&mut hs);
    let status = block_on(msc.machine.cross_signing_status());
    assert!(!status.has_master && !status.has_self_signing && !status.has_user_signing, "{status:?}");
    assert!(block_on(msc.machine.store().get_secrets_from_inbox(&SecretName::RecoveryKey)).unwrap().is_empty());
}

#[test]
fn ferrolm_refuses_an_unrequested_secret_and_a_backup_key_of_another_backup_from_matrix_sdk_crypto() {
    let mut hs = Homeserver::new();
    let (mut msc, msc_backup) = msc_with_backup_key(&mut hs);
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    meet(&mut hs, &mut fe, &mut msc);
    // ferrolm's backup is another one than the one msc holds the key of.
    let declared = PkDecryption::from_bytes(&BACKUP_SEED).public_key();
    assert_ne!(declared, msc_backup);
    fe.machine.set_backup_for_secrets("1", declared);
    verify_and_connect(&mut hs, &mut fe, &msc);

    // msc (a verified own device) sends an `m.secret.send` nobody asked for, over Olm.
    let alice = alice();
    let device = msc.device(&alice, &device_id("FERROLM")).unwrap();
    let content = serde_json::json!({"request_id": "NOT-ASKED", "secret": base64_encode(BACKUP_SEED)});
    let encrypted = block_on(device.encrypt_event_raw("m.secret.send", &content, CollectStrategy::AllDevices)).unwrap();
    let request = ToDeviceRequest::new(&alice, device_id("FERROLM"), "m.room.encrypted", encrypted.cast());
    msc.send_to_device(&mut hs, &request);
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    let [forged] = outcome.secrets.as_slice() else { panic!("{:?}", outcome.secrets) };
    assert_eq!(forged.result, Err(SecretRefusal::NotRequested));
    assert_eq!(forged.sender_device, Some(device_id("MSCDEVICE")));
    assert!(fe.machine.store().backup().unwrap().and_then(|b| b.decryption_key).is_none(), "not stored");

    // Asked, msc answers with the key it holds, which is not the declared backup's: refused.
    fe.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap();
    run_requests(&mut hs, &mut fe.machine).unwrap();
    msc.sync(&mut hs);
    assert!(msc.run_requests(&mut hs).contains(&"to_device"));
    let outcome = sync(&mut hs, &mut fe.machine).unwrap();
    let [answer] = outcome.secrets.as_slice() else { panic!("{:?}", outcome.secrets) };
    assert_eq!(answer.name.as_deref(), Some(MEGOLM_BACKUP_KEY));
    assert_eq!(answer.result, Err(SecretRefusal::BackupKeyMismatch));
    assert!(fe.machine.store().backup().unwrap().and_then(|b| b.decryption_key).is_none(), "not stored");
    // The request stays open for another device to answer.
    let pending = fe.machine.store().outgoing_requests().unwrap();
    assert!(pending.iter().any(|r| matches!(&r.kind, RequestKind::Secret { name } if name == MEGOLM_BACKUP_KEY)));
}
