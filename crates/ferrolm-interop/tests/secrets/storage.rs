//! Secret storage written by one machine, read by the other from the account data's JSON.

use ferrolm::pk::PkDecryption;
use ferrolm::types::{Curve25519PublicKey, base64_encode};
use ferrolm_machine::ruma::events::AnyGlobalAccountDataEvent;
use ferrolm_machine::ruma::events::secret::request::SecretName;
use ferrolm_machine::secret_storage::{
    CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY,
};
use ferrolm_machine::{AccountData, KeyInput, NewSecretStorageKey, OpenedSecretStorage, SecretStorageFailure};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::bootstrap_cross_signing;
use matrix_sdk_crypto::secret_storage::{AesHmacSha2EncryptedData, SecretStorageKey};
use matrix_sdk_crypto::store::types::{BackupDecryptionKey, CrossSigningKeyExport};
use serde_json::json;

use crate::msc::{MscDevice, block_on};
use crate::{ALICE, BACKUP_SEED, alice, fe_device, fe_with_backup_key, meet, msc_bootstrap_cross_signing};

const NAMES: [&str; 4] =
    [CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY];

/// matrix-sdk-crypto opens the default key of `data` with `input` (a recovery key or a
/// passphrase) as its key description says.
fn msc_open(
    data: &AccountData,
    input: &str,
) -> Result<SecretStorageKey, matrix_sdk_crypto::secret_storage::DecodeError> {
    let key_id = data["m.secret_storage.default_key"]["key"].as_str().unwrap();
    // The event as sync delivers it: ruma takes the key id from the event type.
    let event_type = format!("m.secret_storage.key.{key_id}");
    let event = json!({"type": event_type, "content": data[&event_type]});
    let Ok(AnyGlobalAccountDataEvent::SecretStorageKey(event)) = serde_json::from_value(event) else {
        panic!("msc's types do not read the key description {}", data[&event_type])
    };
    assert_eq!(event.content.key_id, key_id);
    SecretStorageKey::from_account_data(input, event.content)
}

/// matrix-sdk-crypto decrypts the secret `name` of `data` (MAC checked).
fn msc_read(data: &AccountData, key: &SecretStorageKey, name: &str) -> String {
    let encrypted: AesHmacSha2EncryptedData =
        serde_json::from_value(data[name]["encrypted"][key.key_id()].clone()).unwrap();
    String::from_utf8(key.decrypt(&encrypted, &SecretName::from(name)).unwrap()).unwrap()
}

#[test]
fn ferrolm_secret_storage_opens_in_matrix_sdk_crypto() {
    let mut hs = Homeserver::new();
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    bootstrap_cross_signing(&mut hs, &mut fe.machine, false).unwrap();
    let mut fe = fe_with_backup_key(fe, 2);
    let mut msc = MscDevice::new(&mut hs, ALICE, "MSCDEVICE");
    meet(&mut hs, &mut fe, &mut msc);

    let held = fe.machine.store().private_cross_signing_keys().unwrap().unwrap();
    let expected = [
        base64_encode(held.master.unwrap().as_bytes()),
        base64_encode(held.self_signing.unwrap().as_bytes()),
        base64_encode(held.user_signing.unwrap().as_bytes()),
        base64_encode(BACKUP_SEED),
    ];
    let backup_public = PkDecryption::from_bytes(&BACKUP_SEED).public_key().to_base64();

    let keys = [
        NewSecretStorageKey::RecoveryKey,
        NewSecretStorageKey::Passphrase { passphrase: "correct horse battery", iterations: 1000 },
    ];
    for (i, new_key) in keys.into_iter().enumerate() {
        let setup = fe.machine.bootstrap_secret_storage(new_key).unwrap();
        let data = crate::write_account_data(&mut hs, &fe, &setup.account_data);
        let description = &data[&format!("m.secret_storage.key.{}", setup.key_id)];

        // msc opens it with what the user has: the recovery key (as ferrolm shows it) or the
        // passphrase; a wrong one fails msc's key check.
        let input = if i == 0 { setup.recovery_key.to_string() } else { "correct horse battery".to_owned() };
        let key = msc_open(&data, &input).unwrap();
        assert_eq!(key.key_id(), setup.key_id);
        assert!(msc_open(&data, "incorrect horse battery").is_err());
        if i == 1 {
            assert_eq!(description["passphrase"]["iterations"], 1000, "{description}");
            // The recovery key of a passphrase key opens it in msc too.
            msc_open(&data, &setup.recovery_key).unwrap();
        }

        // Every secret decrypts in msc to what ferrolm holds, in the spec's encoding.
        let read: Vec<String> = NAMES.iter().map(|name| msc_read(&data, &key, name)).collect();
        assert_eq!(read, expected, "key {i}");
        // And msc uses them: the cross-signing keys match the identity ferrolm published...
        let status = block_on(msc.machine.import_cross_signing_keys(CrossSigningKeyExport {
            master_key: Some(read[0].clone()),
            self_signing_key: Some(read[1].clone()),
            user_signing_key: Some(read[2].clone()),
        }))
        .unwrap();
        assert!(status.has_master && status.has_self_signing && status.has_user_signing, "{status:?}");
        // ...and the backup key is the private key of ferrolm's backup.
        let backup = BackupDecryptionKey::from_base64(&read[3]).unwrap();
        assert_eq!(backup.megolm_v1_public_key().to_base64(), backup_public);
    }
}

#[test]
fn matrix_sdk_crypto_secret_storage_opens_in_ferrolm() {
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

    let exported: Vec<String> = NAMES
        .iter()
        .map(|name| block_on(msc.machine.store().export_secret(&SecretName::from(*name))).unwrap().unwrap())
        .collect();

    for (i, key) in [SecretStorageKey::new(), SecretStorageKey::new_from_passphrase("correct horse battery")]
        .into_iter()
        .enumerate()
    {
        // What an msc client writes: the key description, each secret, the default key.
        let user = alice();
        let description = serde_json::to_value(key.event_content()).unwrap();
        hs.set_global_account_data(&user, &format!("m.secret_storage.key.{}", key.key_id()), description);
        for (name, secret) in NAMES.iter().zip(&exported) {
            let encrypted = key.encrypt(secret.clone().into_bytes(), &SecretName::from(*name));
            let content = json!({"encrypted": {key.key_id(): encrypted}});
            hs.set_global_account_data(&user, name, content);
        }
        hs.set_global_account_data(&user, "m.secret_storage.default_key", json!({"key": key.key_id()}));
        let data = hs.global_account_data(&user);
        if i == 1 {
            let passphrase = &data[&format!("m.secret_storage.key.{}", key.key_id())]["passphrase"];
            assert_eq!(passphrase["algorithm"], "m.pbkdf2");
            assert_eq!(passphrase["iterations"], 500_000, "msc's iterations, which ferrolm derives with");
        }

        // ferrolm opens it with msc's recovery key as msc shows it, or the passphrase.
        let recovery_key = key.to_base58();
        let opened = OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&recovery_key)).unwrap();
        assert_eq!(opened.key_id, key.key_id());
        if i == 1 {
            OpenedSecretStorage::open(&data, KeyInput::Passphrase("correct horse battery")).unwrap();
            assert_eq!(
                OpenedSecretStorage::open(&data, KeyInput::Passphrase("incorrect horse battery")).unwrap_err(),
                SecretStorageFailure::WrongKey
            );
        } else {
            assert_eq!(
                OpenedSecretStorage::open(&data, KeyInput::Passphrase("correct horse battery")).unwrap_err(),
                SecretStorageFailure::NotAPassphraseKey
            );
        }
        for (name, secret) in NAMES.iter().zip(&exported) {
            assert_eq!(opened.read_secret(&data, name).unwrap().as_str(), secret, "{name}");
        }

        // ferrolm imports them, each checked against msc's published identity and backup.
        let report = fe.machine.import_secrets_from_storage(&data, &opened).unwrap();
        assert_eq!(report.len(), 4);
        assert!(report.iter().all(|r| r.result.is_ok()), "{report:?}");
        let store = fe.machine.store();
        let keys = store.private_cross_signing_keys().unwrap().unwrap();
        assert_eq!(base64_encode(keys.master.unwrap().as_bytes()), exported[0]);
        assert_eq!(base64_encode(keys.self_signing.unwrap().as_bytes()), exported[1]);
        assert_eq!(base64_encode(keys.user_signing.unwrap().as_bytes()), exported[2]);
        let stored = store.backup().unwrap().unwrap();
        assert_eq!(stored.decryption_key.unwrap().public_key(), backup_public);
        assert_eq!(stored.version.as_deref(), Some("1"));
    }
}
