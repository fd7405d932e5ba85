//! Secret gossip (`m.secret.request` / `m.secret.send`) between a ferrolm device and a
//! matrix-sdk-crypto device of the same user, each having verified the other locally.

use ferrolm::pk::PkDecryption;
use ferrolm::types::{Curve25519PublicKey, base64_encode};
use ferrolm_machine::LocalTrust;
use ferrolm_machine::ruma::events::secret::request::SecretName;
use ferrolm_machine::secret_storage::{
    CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY,
};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, bootstrap_cross_signing, run_requests, sync};
use matrix_sdk_crypto::store::types::BackupDecryptionKey;

use crate::common::fe_open_sessions;
use crate::msc::{MscDevice, block_on};
use crate::{ALICE, BACKUP_SEED, alice, device_id, fe_device, fe_with_backup_key, meet, msc_bootstrap_cross_signing};

/// Both devices verify each other (local trust) and open Olm sessions with each other.
fn verify_and_connect(hs: &mut Homeserver, fe: &mut TestDevice, msc: &MscDevice) {
    let alice = alice();
    fe.machine.set_local_trust(&alice, &device_id("MSCDEVICE"), LocalTrust::Verified).unwrap();
    let fe_device = msc.device(&alice, &device_id("FERROLM")).expect("msc knows the ferrolm device");
    block_on(fe_device.set_local_trust(matrix_sdk_crypto::LocalTrust::Verified)).unwrap();
    assert!(msc.device(&alice, &device_id("FERROLM")).unwrap().is_verified());
    assert_eq!(fe_open_sessions(hs, &mut fe.machine, &[alice.clone()]), 1);
    assert!(msc.open_sessions(hs, &[alice]));
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

    let sync = msc.sync(&mut hs);
    assert_eq!(sync.undecryptable(), 0);
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
}
