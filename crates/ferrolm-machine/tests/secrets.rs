//! Secret storage and secret gossip between own devices, through the test homeserver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{id, meet, of_kind, open_sessions, user};
use ferrolm::pk::PkDecryption;
use ferrolm::types::{Ed25519Keypair, base64_encode};
use ferrolm_machine::ruma::OwnedDeviceId;
use ferrolm_machine::secret_storage::{
    CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY,
};
use ferrolm_machine::{
    AccountData, AccountDataUpdate, KeyInput, LocalTrust, NewSecretStorageKey, OpenedSecretStorage, RequestKind,
    SecretImportFailure, SecretRefusal, SecretRequestRefusal, SecretStorageFailure, SecretStorageSetup,
};
use ferrolm_store::{BackupRecord, Changes, IdentityRecord, PrivateCrossSigningKeys, SecretBytes};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, memory_store, run_requests, sync};
use serde_json::{Value, json};

const USER: &str = "@alice:test.server";
const BACKUP_SEED: [u8; 32] = [0x42; 32];
const SEEDS: [[u8; 32]; 3] = [[1; 32], [2; 32], [3; 32]];

fn public_key_json(usage: &str, seed: &[u8; 32]) -> Vec<u8> {
    let key = Ed25519Keypair::from_seed(seed).public_key().to_base64();
    serde_json::to_vec(&json!({"user_id": USER, "usage": [usage], "keys": {format!("ed25519:{key}"): key}})).unwrap()
}

/// The own identity's public keys, as the cross-signing module stores them.
fn identity() -> IdentityRecord {
    IdentityRecord {
        user_id: USER.into(),
        master_key: public_key_json("master", &SEEDS[0]),
        self_signing_key: public_key_json("self_signing", &SEEDS[1]),
        user_signing_key: Some(public_key_json("user_signing", &SEEDS[2])),
        verified: true,
        previously_verified: true,
        pinned_master_key: None,
    }
}

fn backup_public_key() -> ferrolm::types::Curve25519PublicKey {
    PkDecryption::from_bytes(&BACKUP_SEED).public_key()
}

/// Writes `changes` into a device's store (as the cross-signing and backup modules would) and
/// reopens its machine.
fn seed(device: TestDevice, changes: Changes, rng_seed: u64) -> TestDevice {
    memory_store(device.backend.clone()).unwrap().save_changes(&changes).unwrap();
    device.restart(rng_seed).unwrap()
}

/// A device of Alice that holds every secret.
fn holder(hs: &mut Homeserver, device_id: &str, rng_seed: u64) -> TestDevice {
    let device = TestDevice::new(hs, USER, device_id, rng_seed, 1_000_000).unwrap();
    let changes = Changes {
        private_cross_signing_keys: Some(PrivateCrossSigningKeys {
            master: Some(SecretBytes::new(SEEDS[0])),
            self_signing: Some(SecretBytes::new(SEEDS[1])),
            user_signing: Some(SecretBytes::new(SEEDS[2])),
        }),
        backup: Some(BackupRecord {
            version: Some("1".into()),
            decryption_key: Some(PkDecryption::from_bytes(&BACKUP_SEED)),
        }),
        identities: vec![identity()],
        ..Changes::default()
    };
    seed(device, changes, rng_seed + 100)
}

/// A new device of Alice that knows the public keys only.
fn newcomer(hs: &mut Homeserver, device_id: &str, rng_seed: u64) -> TestDevice {
    let device = TestDevice::new(hs, USER, device_id, rng_seed, 1_000_000).unwrap();
    let mut device = seed(device, Changes { identities: vec![identity()], ..Changes::default() }, rng_seed + 100);
    device.machine.set_backup_for_secrets("1", backup_public_key());
    device
}

/// Sends the account data updates as the client would; returns the account data after.
fn write(hs: &mut Homeserver, device: &TestDevice, updates: &[AccountDataUpdate]) -> AccountData {
    let user = device.machine.user_id().to_owned();
    for update in updates {
        let http = update.to_http_request("https://test.server", "token", &user).unwrap();
        let response = hs.handle(&user, device.machine.device_id(), http);
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    }
    hs.global_account_data(&user)
}

fn all_secrets(setup: &SecretStorageSetup) -> Vec<String> {
    let mut names = setup.secrets.clone();
    names.sort();
    names
}

fn expected_names() -> Vec<String> {
    let mut names: Vec<String> =
        [CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING, MEGOLM_BACKUP_KEY]
            .map(str::to_owned)
            .to_vec();
    names.sort();
    names
}

#[test]
fn bootstrap_with_a_recovery_key_is_read_back_and_imported_by_a_new_device() {
    let mut hs = Homeserver::new();
    let mut alice1 = holder(&mut hs, "ALICE1", 1);
    let setup = alice1.machine.bootstrap_secret_storage(NewSecretStorageKey::RecoveryKey).unwrap();
    assert_eq!(all_secrets(&setup), expected_names());
    assert!(!format!("{setup:?}").contains(setup.recovery_key.as_str()), "Debug redacts the recovery key");
    let data = write(&mut hs, &alice1, &setup.account_data);
    assert_eq!(data["m.secret_storage.default_key"], json!({"key": setup.key_id}));
    let description = &data[&format!("m.secret_storage.key.{}", setup.key_id)];
    assert_eq!(description["algorithm"], "m.secret_storage.v1.aes-hmac-sha2");
    assert!(description["iv"].is_string() && description["mac"].is_string(), "{description}");
    assert!(description.get("passphrase").is_none());
    // No secret in the clear on the server.
    let on_server = serde_json::to_string(&data).unwrap();
    assert!(!on_server.contains(&base64_encode(BACKUP_SEED)));
    assert!(!on_server.contains(&base64_encode(SEEDS[0])));

    // Read back with the recovery key as the user types it.
    let opened = OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&setup.recovery_key)).unwrap();
    assert_eq!(opened.read_secret(&data, MEGOLM_BACKUP_KEY).unwrap().as_str(), base64_encode(BACKUP_SEED));
    assert_eq!(opened.read_secret(&data, CROSS_SIGNING_USER_SIGNING).unwrap().as_str(), base64_encode(SEEDS[2]));

    // A new device imports everything, each secret checked against its public key.
    let mut alice2 = newcomer(&mut hs, "ALICE2", 2);
    let report = alice2.machine.import_secrets_from_storage(&data, &opened).unwrap();
    assert!(report.iter().all(|r| r.result.is_ok()), "{report:?}");
    let store = alice2.machine.store();
    let backup = store.backup().unwrap().unwrap();
    assert_eq!(backup.version.as_deref(), Some("1"));
    assert_eq!(backup.decryption_key.unwrap().public_key(), backup_public_key());
    let keys = store.private_cross_signing_keys().unwrap().unwrap();
    assert_eq!(keys.master.unwrap().as_bytes(), &SEEDS[0]);
    assert_eq!(keys.user_signing.unwrap().as_bytes(), &SEEDS[2]);
}

#[test]
fn bootstrap_from_a_passphrase_and_wrong_passphrases_or_recovery_keys() {
    let mut hs = Homeserver::new();
    let mut alice1 = holder(&mut hs, "ALICE1", 1);
    let setup = alice1
        .machine
        .bootstrap_secret_storage(NewSecretStorageKey::Passphrase { passphrase: "correct horse", iterations: 1000 })
        .unwrap();
    let data = write(&mut hs, &alice1, &setup.account_data);
    let passphrase = &data[&format!("m.secret_storage.key.{}", setup.key_id)]["passphrase"];
    assert_eq!(passphrase["algorithm"], "m.pbkdf2");
    assert_eq!(passphrase["iterations"], 1000);
    assert!(passphrase["salt"].as_str().is_some_and(|s| s.len() >= 16));

    let opened = OpenedSecretStorage::open(&data, KeyInput::Passphrase("correct horse")).unwrap();
    assert_eq!(opened.read_secret(&data, CROSS_SIGNING_MASTER).unwrap().as_str(), base64_encode(SEEDS[0]));
    // The recovery key of the passphrase key opens it too.
    OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&setup.recovery_key)).unwrap();

    assert_eq!(
        OpenedSecretStorage::open(&data, KeyInput::Passphrase("wrong horse")).unwrap_err(),
        SecretStorageFailure::WrongKey
    );
    let other = ferrolm::secret_storage::SecretStorageKey::from_bytes([9; 32]).to_recovery_key();
    assert_eq!(
        OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&other)).unwrap_err(),
        SecretStorageFailure::WrongKey
    );
    assert!(matches!(
        OpenedSecretStorage::open(&data, KeyInput::RecoveryKey("EsTc not a recovery key")).unwrap_err(),
        SecretStorageFailure::InvalidRecoveryKey(_)
    ));
}

#[test]
fn a_tampered_or_forged_secret_is_refused_and_nothing_is_imported() {
    let mut hs = Homeserver::new();
    let mut alice1 = holder(&mut hs, "ALICE1", 1);
    let setup = alice1.machine.bootstrap_secret_storage(NewSecretStorageKey::RecoveryKey).unwrap();
    let mut data = write(&mut hs, &alice1, &setup.account_data);
    let opened = OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&setup.recovery_key)).unwrap();

    // The server alters the backup key's ciphertext: the MAC does not match.
    let mut content = data[MEGOLM_BACKUP_KEY].clone();
    content["encrypted"][&setup.key_id]["ciphertext"] = json!(base64_encode([7u8; 43]));
    hs.set_global_account_data(alice1.machine.user_id(), MEGOLM_BACKUP_KEY, content);
    // Someone with the key (an old device, say) stores another master key: it decrypts, but
    // is not the private key of the published master key.
    let forged = ferrolm_machine::secret_storage::encrypt_secret(
        &setup.key_id,
        &opened.key,
        CROSS_SIGNING_MASTER,
        &base64_encode([9u8; 32]),
        &mut rand_core::OsRng,
    );
    hs.set_global_account_data(alice1.machine.user_id(), CROSS_SIGNING_MASTER, forged.content);
    data = hs.global_account_data(alice1.machine.user_id());

    let mut alice2 = newcomer(&mut hs, "ALICE2", 2);
    let report = alice2.machine.import_secrets_from_storage(&data, &opened).unwrap();
    let result = |name: &str| report.iter().find(|r| r.name == name).unwrap().result.clone();
    assert_eq!(
        result(MEGOLM_BACKUP_KEY),
        Err(SecretImportFailure::Storage(SecretStorageFailure::MacMismatch(MEGOLM_BACKUP_KEY.into())))
    );
    assert_eq!(result(CROSS_SIGNING_MASTER), Err(SecretImportFailure::Refused(SecretRefusal::CrossSigningKeyMismatch)));
    assert_eq!(result(CROSS_SIGNING_SELF_SIGNING), Ok(()));
    let store = alice2.machine.store();
    assert!(store.backup().unwrap().is_none(), "the altered backup key is not stored");
    let keys = store.private_cross_signing_keys().unwrap().unwrap();
    assert!(keys.master.is_none(), "the forged master key is not stored");
    assert_eq!(keys.self_signing.unwrap().as_bytes(), &SEEDS[1]);
}

#[test]
fn the_default_key_changes_and_every_secret_moves_to_it() {
    let mut hs = Homeserver::new();
    let mut alice1 = holder(&mut hs, "ALICE1", 1);
    let first = alice1.machine.bootstrap_secret_storage(NewSecretStorageKey::RecoveryKey).unwrap();
    let mut data = write(&mut hs, &alice1, &first.account_data);
    // An app-defined secret under the old key moves too.
    let old = OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&first.recovery_key)).unwrap();
    let extra = ferrolm_machine::secret_storage::encrypt_secret(
        &old.key_id,
        &old.key,
        "org.example.secret",
        "hunter2",
        &mut rand_core::OsRng,
    );
    data = write(&mut hs, &alice1, &[extra]);

    let second = alice1
        .machine
        .change_secret_storage_key(&data, &old, NewSecretStorageKey::Passphrase { passphrase: "new", iterations: 1000 })
        .unwrap();
    assert_ne!(second.key_id, first.key_id);
    let mut names = all_secrets(&second);
    names.retain(|n| n != "org.example.secret");
    assert_eq!(names, expected_names());
    assert!(second.secrets.iter().any(|n| n == "org.example.secret"));
    let data = write(&mut hs, &alice1, &second.account_data);
    assert_eq!(data["m.secret_storage.default_key"]["key"], json!(second.key_id));

    // The old recovery key no longer opens the default key; the new passphrase does.
    assert_eq!(
        OpenedSecretStorage::open(&data, KeyInput::RecoveryKey(&first.recovery_key)).unwrap_err(),
        SecretStorageFailure::WrongKey
    );
    let new = OpenedSecretStorage::open(&data, KeyInput::Passphrase("new")).unwrap();
    assert_eq!(new.read_secret(&data, MEGOLM_BACKUP_KEY).unwrap().as_str(), base64_encode(BACKUP_SEED));
    assert_eq!(new.read_secret(&data, "org.example.secret").unwrap().as_str(), "hunter2");
    // The old key still opens its description, but no secret is encrypted under it any more.
    let old_again =
        OpenedSecretStorage::open_key(&data, &first.key_id, KeyInput::RecoveryKey(&first.recovery_key)).unwrap();
    assert!(matches!(
        old_again.read_secret(&data, MEGOLM_BACKUP_KEY).unwrap_err(),
        SecretStorageFailure::NotEncryptedForKey { .. }
    ));

    // A change from a key that does not open every secret produces nothing to write.
    let mut broken = data.clone();
    broken.get_mut(CROSS_SIGNING_MASTER).unwrap()["encrypted"][&second.key_id]["mac"] = json!(base64_encode([0u8; 32]));
    assert_eq!(
        alice1.machine.change_secret_storage_key(&broken, &new, NewSecretStorageKey::RecoveryKey).unwrap_err(),
        SecretStorageFailure::MacMismatch(CROSS_SIGNING_MASTER.into())
    );
}

struct Gossip {
    hs: Homeserver,
    alice1: TestDevice,
    alice2: TestDevice,
    alice3: TestDevice,
}

/// ALICE1 and ALICE3 hold the secrets, ALICE2 is new; every pair has an Olm session.
fn gossip() -> Gossip {
    let mut hs = Homeserver::new();
    let mut alice1 = holder(&mut hs, "ALICE1", 1);
    let mut alice2 = newcomer(&mut hs, "ALICE2", 2);
    let mut alice3 = holder(&mut hs, "ALICE3", 3);
    meet(&mut hs, &mut [&mut alice1, &mut alice2, &mut alice3]);
    for d in [&mut alice1, &mut alice2, &mut alice3] {
        d.settle(&mut hs, 2).unwrap();
    }
    let own = [user(&alice1)];
    for d in [&mut alice1, &mut alice2, &mut alice3] {
        open_sessions(&mut hs, d, &own);
        // Each writes once to the others, so both sides of every pair have a session.
        let others: Vec<_> = ["ALICE1", "ALICE2", "ALICE3"]
            .into_iter()
            .filter(|o| *o != d.machine.device_id().as_str())
            .map(|o| (user(d), OwnedDeviceId::from(o)))
            .collect();
        d.machine.encrypt_to_device(&others, "org.example.hello", &json!({})).unwrap();
        run_requests(&mut hs, &mut d.machine).unwrap();
    }
    for d in [&mut alice1, &mut alice2, &mut alice3] {
        sync(&mut hs, &mut d.machine).unwrap();
    }
    Gossip { hs, alice1, alice2, alice3 }
}

fn trust(device: &mut TestDevice, other: &str) {
    let me = user(device);
    device.machine.set_local_trust(&me, &OwnedDeviceId::from(other), LocalTrust::Verified).unwrap();
}

/// The `m.secret.request` events queued for a device.
fn queued_secret_requests(hs: &mut Homeserver, device: &TestDevice) -> Vec<Value> {
    let queue = hs.to_device_queue(&user(device), device.machine.device_id()).unwrap();
    queue.iter().filter(|q| q.event["type"] == "m.secret.request").map(|q| q.event["content"].clone()).collect()
}

#[test]
fn a_backup_key_is_gossiped_between_verified_own_devices_and_cancelled_at_the_others() {
    let mut w = gossip();
    for other in ["ALICE1", "ALICE3"] {
        trust(&mut w.alice2, other);
    }
    trust(&mut w.alice1, "ALICE2");
    trust(&mut w.alice3, "ALICE2");

    let request = w.alice2.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap();
    let request_id = request.request_id.clone().unwrap();
    assert_eq!(request.sent_to, ["ALICE1", "ALICE3"].map(OwnedDeviceId::from));
    assert_eq!(w.alice2.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap().request_id, None, "once");
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();

    // ALICE1 answers first.
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    let [answered] = outcome.secret_requests.as_slice() else { panic!("{outcome:#?}") };
    assert_eq!((answered.request_id.as_str(), answered.result.clone()), (request_id.as_str(), Ok(())));
    assert_eq!(answered.name.as_deref(), Some(MEGOLM_BACKUP_KEY));
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();

    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    let [received] = outcome.secrets.as_slice() else { panic!("{outcome:#?}") };
    assert_eq!(received.result, Ok(()));
    assert_eq!(received.name.as_deref(), Some(MEGOLM_BACKUP_KEY));
    assert_eq!(received.sender_device.as_deref(), Some("ALICE1".into()));
    // The app sees the event, never the secret in it.
    assert!(!format!("{outcome:?}").contains(&base64_encode(BACKUP_SEED)));
    let store = w.alice2.machine.store();
    assert_eq!(store.backup().unwrap().unwrap().decryption_key.unwrap().public_key(), backup_public_key());
    let inbox = store.secrets_in_inbox(MEGOLM_BACKUP_KEY).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!((inbox[0].id.as_str(), inbox[0].sender_device.as_str()), (request_id.as_str(), "ALICE1"));
    assert_eq!(inbox[0].secret.expose(), base64_encode(BACKUP_SEED));
    assert!(store.outgoing_requests().unwrap().is_empty(), "answered requests are forgotten");

    // The request is cancelled at ALICE3 (not at ALICE1, which answered).
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let at_alice3 = queued_secret_requests(&mut w.hs, &w.alice3);
    assert_eq!(at_alice3.len(), 2, "{at_alice3:?}");
    assert_eq!(
        at_alice3[1],
        json!({"action": "request_cancellation", "request_id": request_id, "requesting_device_id": "ALICE2"})
    );
    assert!(!queued_secret_requests(&mut w.hs, &w.alice1).iter().any(|c| c["action"] == "request_cancellation"));
    // ALICE3 answers the request before seeing the cancellation (both in one sync): that late
    // answer answers nothing any more.
    let outcome = sync(&mut w.hs, &mut w.alice3.machine).unwrap();
    assert_eq!(outcome.secret_requests.len(), 1, "the cancellation needs no answer: {outcome:#?}");
    run_requests(&mut w.hs, &mut w.alice3.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    let [late] = outcome.secrets.as_slice() else { panic!("{outcome:#?}") };
    assert_eq!(late.result, Err(SecretRefusal::NotRequested));
    assert_eq!(w.alice2.machine.store().secrets_in_inbox(MEGOLM_BACKUP_KEY).unwrap().len(), 1);
}

#[test]
fn a_cross_signing_key_is_gossiped_and_checked_against_the_published_key() {
    let mut w = gossip();
    trust(&mut w.alice2, "ALICE1");
    trust(&mut w.alice1, "ALICE2");
    let request = w.alice2.machine.request_secret(CROSS_SIGNING_SELF_SIGNING).unwrap();
    assert_eq!(request.sent_to, [OwnedDeviceId::from("ALICE1")], "ALICE3 is not verified");
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert!(queued_secret_requests(&mut w.hs, &w.alice3).is_empty(), "nothing asked of an unverified device");
    sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Ok(()));
    let keys = w.alice2.machine.store().private_cross_signing_keys().unwrap().unwrap();
    assert_eq!(keys.self_signing.unwrap().as_bytes(), &SEEDS[1]);
    assert!(keys.master.is_none());

    // A verified device answering with another key than the published one is refused, and
    // the request stays open for another answer.
    let request_id = w.alice2.machine.request_secret(CROSS_SIGNING_MASTER).unwrap().request_id.unwrap();
    let forged = json!({"request_id": request_id, "secret": base64_encode([8u8; 32])});
    w.alice1.machine.encrypt_to_device(&[id(&w.alice2)], "m.secret.send", &forged).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::CrossSigningKeyMismatch));
    let keys = w.alice2.machine.store().private_cross_signing_keys().unwrap().unwrap();
    assert!(keys.master.is_none());
    assert!(w.alice2.machine.store().outgoing_request(&request_id).unwrap().is_some());
}

#[test]
fn a_forged_backup_key_from_a_verified_device_is_refused() {
    let mut w = gossip();
    trust(&mut w.alice2, "ALICE1");
    let request_id = w.alice2.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap().request_id.unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let forged = json!({"request_id": request_id, "secret": base64_encode([0x66u8; 32])});
    w.alice1.machine.encrypt_to_device(&[id(&w.alice2)], "m.secret.send", &forged).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::BackupKeyMismatch));
    assert!(w.alice2.machine.store().backup().unwrap().is_none(), "nothing stored");
    assert!(w.alice2.machine.store().secrets_in_inbox(MEGOLM_BACKUP_KEY).unwrap().is_empty());
    assert!(w.alice2.machine.store().outgoing_request(&request_id).unwrap().is_some(), "still open");

    // Without a backup declared, a backup key cannot be checked: refused too.
    let w2 = w.alice2.restart(77).unwrap();
    w.alice2 = w2;
    w.alice1
        .machine
        .encrypt_to_device(
            &[id(&w.alice2)],
            "m.secret.send",
            &json!({"request_id": request_id, "secret": base64_encode(BACKUP_SEED)}),
        )
        .unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::NoBackupToCheck));
}

#[test]
fn secrets_from_unverified_devices_unasked_or_in_the_clear_are_refused() {
    let mut w = gossip();
    trust(&mut w.alice2, "ALICE1");
    let request_id = w.alice2.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap().request_id.unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let answer = json!({"request_id": request_id, "secret": base64_encode(BACKUP_SEED)});

    // From ALICE3, which ALICE2 did not verify (and did not ask).
    w.alice3.machine.encrypt_to_device(&[id(&w.alice2)], "m.secret.send", &answer).unwrap();
    run_requests(&mut w.hs, &mut w.alice3.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::UnverifiedDevice));
    assert_eq!(outcome.secrets[0].sender_device.as_deref(), Some("ALICE3".into()));

    // From ALICE1 (verified), for a request ALICE2 never sent.
    let unasked = json!({"request_id": "not-a-request", "secret": base64_encode(BACKUP_SEED)});
    w.alice1.machine.encrypt_to_device(&[id(&w.alice2)], "m.secret.send", &unasked).unwrap();
    run_requests(&mut w.hs, &mut w.alice1.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::NotRequested));

    // In the clear, claiming to be ALICE1, with the right request id.
    let me = user(&w.alice2);
    w.hs.forge_to_device(
        &me,
        w.alice2.machine.device_id(),
        json!({"type": "m.secret.send", "sender": USER, "content": answer}),
    );
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::NotEncrypted));

    // From another user's device.
    let mut bob = TestDevice::new(&mut w.hs, "@bob:test.server", "BOB", 9, 1_000_000).unwrap();
    bob.settle(&mut w.hs, 1).unwrap();
    bob.machine.update_tracked_users(&[me.clone()]).unwrap();
    bob.settle(&mut w.hs, 1).unwrap();
    open_sessions(&mut w.hs, &mut bob, &[me.clone()]);
    bob.machine.encrypt_to_device(&[id(&w.alice2)], "m.secret.send", &answer).unwrap();
    run_requests(&mut w.hs, &mut bob.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice2.machine).unwrap();
    assert_eq!(outcome.secrets[0].result, Err(SecretRefusal::OtherUser));

    let store = w.alice2.machine.store();
    assert!(store.backup().unwrap().is_none());
    assert!(store.secrets_in_inbox(MEGOLM_BACKUP_KEY).unwrap().is_empty());
    assert!(store.outgoing_request(&request_id).unwrap().is_some(), "the request is still open");
}

#[test]
fn requests_are_answered_only_for_verified_own_devices_and_held_secrets() {
    let mut w = gossip();
    trust(&mut w.alice2, "ALICE1");
    // ALICE1 has not verified ALICE2: the request is refused.
    w.alice2.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap().request_id.unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.secret_requests[0].result, Err(SecretRequestRefusal::UnverifiedDevice));
    assert!(of_kind(&w.alice1.machine.outgoing_requests().unwrap(), RequestKind::ToDevice).is_empty(), "nothing sent");

    // Verified, but for a secret ALICE1 does not hold.
    trust(&mut w.alice1, "ALICE2");
    w.alice2.machine.request_secret("org.example.unknown").unwrap().request_id.unwrap();
    run_requests(&mut w.hs, &mut w.alice2.machine).unwrap();
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.secret_requests[0].result, Err(SecretRequestRefusal::NotHeld));

    // A request from another user, even in the right shape, is refused.
    let me = user(&w.alice1);
    let forged = json!({"type": "m.secret.request", "sender": "@mallory:test.server", "content": {
        "action": "request", "name": MEGOLM_BACKUP_KEY, "request_id": "x", "requesting_device_id": "ALICE2"}});
    w.hs.forge_to_device(&me, w.alice1.machine.device_id(), forged);
    let outcome = sync(&mut w.hs, &mut w.alice1.machine).unwrap();
    assert_eq!(outcome.secret_requests[0].result, Err(SecretRequestRefusal::OtherUser));
    assert!(of_kind(&w.alice1.machine.outgoing_requests().unwrap(), RequestKind::ToDevice).is_empty(), "nothing sent");

    // No own device verified: nothing is requested.
    assert_eq!(w.alice3.machine.request_secret(MEGOLM_BACKUP_KEY).unwrap().request_id, None);
}
