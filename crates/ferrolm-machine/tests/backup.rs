//! Server-side key backups and key export files through the test homeserver: create a version,
//! upload, restore on a new device with progress, the trust rule, bad backups and bad files,
//! the merge rule, and what is (not) uploaded again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::user;
use ferrolm::megolm::{InboundGroupSession, SessionConfig};
use ferrolm::types::{base64_decode, base64_encode};
use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedRoomId, RoomId};
use ferrolm_machine::{
    BackupDecryptionKey, BackupError, BackupInfo, BackupTrust, BackupTrustSource, EncryptionSettings, KeyFileError,
    LocalTrust, RequestKind, RoomKeyImportReport, TrustRequirement,
};
use ferrolm_store::{InboundGroupSessionRecord, RoomKeySource};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, send};
use serde_json::{Value, json};

const ALICE: &str = "@alice:test.server";

/// Alice's first device with a room key in each of `rooms` rooms, and one encrypted event in
/// each (as the homeserver serves it).
fn alice_with_keys(
    hs: &mut Homeserver,
    device: &str,
    rooms: usize,
) -> (TestDevice, Vec<(OwnedRoomId, Raw<AnySyncTimelineEvent>)>) {
    let mut alice = TestDevice::new(hs, ALICE, device, 1, 1_000_000).unwrap();
    alice.settle(hs, 1).unwrap();
    let mut events = Vec::new();
    for i in 0..rooms {
        let room = hs.create_room(alice.machine.user_id()).unwrap();
        alice.machine.share_room_key(&room, &[user(&alice)], EncryptionSettings::default()).unwrap();
        let content =
            alice.machine.encrypt_room_event(&room, "m.room.message", &json!({"body": format!("hello {i}")})).unwrap();
        let event_id = hs.send_room_event(&room, alice.machine.user_id(), "m.room.encrypted", content.clone()).unwrap();
        let event = json!({
            "type": "m.room.encrypted", "event_id": event_id, "sender": ALICE,
            "origin_server_ts": 1, "content": content,
        });
        events.push((room, Raw::from_json(serde_json::value::to_raw_value(&event).unwrap())));
    }
    (alice, events)
}

/// Creates a backup version for `device` through the homeserver; returns its key.
fn create_backup(hs: &mut Homeserver, device: &mut TestDevice) -> BackupDecryptionKey {
    let new = device.machine.create_backup_version().unwrap();
    assert_eq!(new.request.kind(), RequestKind::BackupVersionCreate);
    send(hs, &mut device.machine, &new.request).unwrap();
    new.decryption_key
}

/// Uploads until the machine has nothing left; returns how many requests it took.
fn upload_all(hs: &mut Homeserver, device: &mut TestDevice) -> usize {
    let mut requests = 0;
    while let Some(request) = device.machine.backup().unwrap() {
        assert_eq!((request.kind(), request.method()), (RequestKind::KeysBackup, "PUT"));
        send(hs, &mut device.machine, &request).unwrap();
        requests += 1;
        assert!(requests < 1_000);
    }
    requests
}

/// `GET /room_keys/version` over the wire.
fn latest_version(hs: &mut Homeserver, device: &TestDevice) -> BackupInfo {
    let request =
        http::Request::get("https://test.server/_matrix/client/v3/room_keys/version").body(Vec::new()).unwrap();
    let response = hs.handle(device.machine.user_id(), device.machine.device_id(), request);
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    BackupInfo::from_json(response.body()).unwrap()
}

/// `GET /room_keys/keys?version=` over the wire.
fn download(hs: &mut Homeserver, device: &TestDevice, version: &str) -> Vec<u8> {
    let uri = format!("https://test.server/_matrix/client/v3/room_keys/keys?version={version}");
    let request = http::Request::get(uri).body(Vec::new()).unwrap();
    let response = hs.handle(device.machine.user_id(), device.machine.device_id(), request);
    assert_eq!(response.status(), 200);
    response.into_body()
}

fn decrypts(device: &mut TestDevice, room: &RoomId, event: &Raw<AnySyncTimelineEvent>) -> bool {
    device.machine.decrypt_room_event(event, room, TrustRequirement::Untrusted).unwrap().is_ok()
}

fn stored_keys(device: &TestDevice) -> Vec<InboundGroupSessionRecord> {
    device.machine.store().all_inbound_group_sessions().unwrap()
}

#[test]
fn a_backup_goes_up_in_batches_and_restores_on_a_new_device_with_progress() {
    let mut hs = Homeserver::new();
    let (mut alice1, events) = alice_with_keys(&mut hs, "ALICE1", 3);
    assert_eq!(alice1.machine.backup().unwrap().map(|r| r.kind()), None, "no backup active yet");
    let key = create_backup(&mut hs, &mut alice1);
    assert_eq!(alice1.machine.backup_version(), Some("1"));
    // The version on the server is signed by the device that made it.
    let info = latest_version(&mut hs, &alice1);
    assert_eq!((info.version.as_str(), info.public_key), ("1", key.public_key()));
    assert_eq!(alice1.machine.verify_backup(&info).unwrap(), BackupTrust::Trusted(BackupTrustSource::DecryptionKey));
    assert!(info.auth_data["signatures"][ALICE]["ed25519:ALICE1"].is_string());

    assert_eq!(alice1.machine.room_key_counts().unwrap().backed_up, 0);
    assert_eq!(upload_all(&mut hs, &mut alice1), 1);
    let counts = alice1.machine.room_key_counts().unwrap();
    assert_eq!((counts.total, counts.backed_up), (3, 3));
    assert_eq!(latest_version(&mut hs, &alice1).count, Some(3));

    // A new device restores from the recovery key, as the user types it.
    let mut alice2 = TestDevice::new(&mut hs, ALICE, "ALICE2", 2, 1_000_000).unwrap();
    let recovery_key = key.to_recovery_key();
    let key = BackupDecryptionKey::from_recovery_key(&recovery_key).unwrap();
    let info = latest_version(&mut hs, &alice2);
    let body = download(&mut hs, &alice2, &info.version);
    for (room, event) in &events {
        assert!(!decrypts(&mut alice2, room, event));
    }
    let mut seen = Vec::new();
    let report = alice2.machine.restore_backup(&info, &key, &body, |done, total| seen.push((done, total))).unwrap();
    assert_eq!(report, RoomKeyImportReport { total: 3, imported: 3, not_better: 0, failed: 0 });
    assert_eq!(seen.last(), Some(&(3, 3)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    for (room, event) in &events {
        assert!(decrypts(&mut alice2, room, event));
    }
    for record in stored_keys(&alice2) {
        assert_eq!(record.source, RoomKeySource::Backup);
        assert!(!record.session.is_verified(), "a restored key is not from its sender");
        assert!(record.backed_up);
    }
    // The restored version is now the active one, and its keys are not uploaded again
    // (matrix-rust-sdk #3447).
    assert_eq!(alice2.machine.backup_version(), Some("1"));
    assert!(alice2.machine.backup().unwrap().is_none());
    // Restoring again changes nothing.
    let again = alice2.machine.restore_backup(&info, &key, &body, |_, _| {}).unwrap();
    assert_eq!((again.imported, again.not_better), (0, 3));
    // The backup stays active across a restart (the store holds its key).
    let alice2 = alice2.restart(9).unwrap();
    assert_eq!(alice2.machine.backup_version(), Some("1"));
    assert_eq!(alice2.machine.backup_decryption_key().unwrap().unwrap().public_key(), key.public_key());
}

#[test]
fn keys_are_marked_backed_up_only_when_the_upload_is_acknowledged() {
    let mut hs = Homeserver::new();
    let (mut alice, _) = alice_with_keys(&mut hs, "ALICE1", 2);
    create_backup(&mut hs, &mut alice);
    let first = alice.machine.backup().unwrap().unwrap();
    // Not answered yet: the same request again, nothing marked.
    let again = alice.machine.backup().unwrap().unwrap();
    assert_eq!(first.request_id, again.request_id);
    assert_eq!(alice.machine.room_key_counts().unwrap().backed_up, 0);
    // A restart loses the request: the same keys go up in a new one.
    let mut alice = alice.restart(5).unwrap();
    assert_eq!(alice.machine.backup_version(), Some("1"));
    let second = alice.machine.backup().unwrap().unwrap();
    assert_ne!(second.request_id, first.request_id);
    let body: Value = serde_json::from_str(&second.body_json().unwrap()).unwrap();
    assert_eq!(body["rooms"].as_object().unwrap().len(), 2);
    assert!(second.path().unwrap().starts_with("/_matrix/client/v3/room_keys/keys?version=1"));
    // The server refuses it (say, a newer version exists): still nothing marked.
    let other = hs.create_backup_version(alice.machine.user_id(), json!({"algorithm": "x", "auth_data": {}}));
    assert!(send(&mut hs, &mut alice.machine, &second).is_err());
    assert_eq!(alice.machine.room_key_counts().unwrap().backed_up, 0);
    assert_eq!(other, "2");
}

#[test]
fn a_new_backup_version_makes_every_key_due_again() {
    let mut hs = Homeserver::new();
    let (mut alice, events) = alice_with_keys(&mut hs, "ALICE1", 3);
    create_backup(&mut hs, &mut alice);
    upload_all(&mut hs, &mut alice);
    assert_eq!(alice.machine.room_key_counts().unwrap().backed_up, 3);
    let key2 = create_backup(&mut hs, &mut alice);
    assert_eq!(alice.machine.backup_version(), Some("2"));
    assert_eq!(alice.machine.room_key_counts().unwrap().backed_up, 0);
    upload_all(&mut hs, &mut alice);
    assert_eq!(alice.machine.room_key_counts().unwrap().backed_up, 3);
    // Version 2 holds every key.
    let mut fresh = TestDevice::new(&mut hs, ALICE, "ALICE3", 3, 1_000_000).unwrap();
    let info = latest_version(&mut hs, &fresh);
    let body = download(&mut hs, &fresh, "2");
    let report = fresh.machine.restore_backup(&info, &key2, &body, |_, _| {}).unwrap();
    assert_eq!(report.imported, 3);
    for (room, event) in &events {
        assert!(decrypts(&mut fresh, room, event));
    }
}

#[test]
fn a_wrong_recovery_key_is_refused_before_anything_is_imported() {
    let mut hs = Homeserver::new();
    let (mut alice1, _) = alice_with_keys(&mut hs, "ALICE1", 2);
    create_backup(&mut hs, &mut alice1);
    upload_all(&mut hs, &mut alice1);
    let (mut alice2, _) = alice_with_keys(&mut hs, "ALICE2", 1);
    let before = stored_keys(&alice2).len();
    let info = latest_version(&mut hs, &alice2);
    let body = download(&mut hs, &alice2, &info.version);
    let wrong = BackupDecryptionKey::from_bytes(&[1; 32]);
    let mut calls = 0;
    let result = alice2.machine.restore_backup(&info, &wrong, &body, |_, _| calls += 1);
    assert!(matches!(result, Err(BackupError::WrongKey)), "{result:?}");
    assert_eq!((calls, stored_keys(&alice2).len()), (0, before));
    assert_eq!(alice2.machine.backup_version(), None);
    // A recovery key with a typo is its own typed error.
    let mut typed = BackupDecryptionKey::from_bytes(&[1; 32]).to_recovery_key().to_string();
    typed.replace_range(5..6, if &typed[5..6] == "a" { "b" } else { "a" });
    assert!(matches!(BackupDecryptionKey::from_recovery_key(&typed), Err(BackupError::InvalidRecoveryKey(_))));
    // A body that is not a backup is refused as a whole.
    let key = BackupDecryptionKey::from_bytes(&[1; 32]);
    let own = BackupInfo::from_parts("9".into(), "m.megolm_backup.v1.curve25519-aes-sha2", {
        let mut m = serde_json::Map::new();
        m.insert("public_key".into(), key.public_key().to_base64().into());
        m
    })
    .unwrap();
    assert!(matches!(
        alice2.machine.restore_backup(&own, &key, b"{\"rooms\": []}", |_, _| {}),
        Err(BackupError::MalformedBackup(_))
    ));
    assert_eq!(stored_keys(&alice2).len(), before);
}

/// Flips a byte of one base64 field of a stored backup entry.
fn tamper(entry: &mut Value, field: &str) {
    let data = entry["session_data"][field].as_str().unwrap();
    let mut bytes = base64_decode(data).unwrap();
    bytes[0] ^= 0x01;
    entry["session_data"][field] = base64_encode(&bytes).into();
}

#[test]
fn tampered_entries_are_counted_and_the_rest_is_restored() {
    let mut hs = Homeserver::new();
    let (mut alice1, events) = alice_with_keys(&mut hs, "ALICE1", 4);
    let key = create_backup(&mut hs, &mut alice1);
    upload_all(&mut hs, &mut alice1);
    // The server alters two entries: a MAC, a ciphertext.
    let keys = hs.backup_keys_mut(alice1.machine.user_id(), "1").unwrap();
    let mut entries: Vec<&mut Value> = keys.values_mut().flat_map(|s| s.values_mut()).collect();
    tamper(entries[0], "mac");
    tamper(entries[1], "ciphertext");

    let mut alice2 = TestDevice::new(&mut hs, ALICE, "ALICE2", 2, 1_000_000).unwrap();
    let info = latest_version(&mut hs, &alice2);
    let body = download(&mut hs, &alice2, "1");
    let mut seen = Vec::new();
    let report = alice2.machine.restore_backup(&info, &key, &body, |d, t| seen.push((d, t))).unwrap();
    assert_eq!(report, RoomKeyImportReport { total: 4, imported: 2, not_better: 0, failed: 2 });
    assert_eq!(seen.last(), Some(&(4, 4)));
    let readable = events.iter().filter(|(room, event)| decrypts(&mut alice2, room, event)).count();
    assert_eq!(readable, 2);

    // A backup in which nothing decrypts: an error, and nothing stored or enabled.
    let keys = hs.backup_keys_mut(alice1.machine.user_id(), "1").unwrap();
    for entry in keys.values_mut().flat_map(|s| s.values_mut()) {
        tamper(entry, "ephemeral");
    }
    let mut alice3 = TestDevice::new(&mut hs, ALICE, "ALICE3", 3, 1_000_000).unwrap();
    let body = download(&mut hs, &alice3, "1");
    let result = alice3.machine.restore_backup(&info, &key, &body, |_, _| {});
    assert!(matches!(result, Err(BackupError::NothingDecrypted { failed: 4 })), "{result:?}");
    assert!(stored_keys(&alice3).is_empty());
    assert_eq!(alice3.machine.backup_version(), None);
}

#[test]
fn only_a_trusted_backup_version_is_written_to() {
    let mut hs = Homeserver::new();
    let (mut alice1, _) = alice_with_keys(&mut hs, "ALICE1", 1);
    let mut alice2 = TestDevice::new(&mut hs, ALICE, "ALICE2", 2, 1_000_000).unwrap();
    alice2.settle(&mut hs, 1).unwrap();
    alice1.settle(&mut hs, 2).unwrap();
    assert!(alice1.machine.device(alice2.machine.user_id(), alice2.machine.device_id()).unwrap().is_some());

    // The server slips in a version of its own (its key, no valid signature).
    let server_key = BackupDecryptionKey::from_bytes(&[66; 32]);
    hs.create_backup_version(
        alice1.machine.user_id(),
        json!({"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
               "auth_data": {"public_key": server_key.public_key().to_base64(),
                             "signatures": {ALICE: {"ed25519:ALICE1": "AAAA"}}}}),
    );
    let forged = latest_version(&mut hs, &alice1);
    assert_eq!(alice1.machine.verify_backup(&forged).unwrap(), BackupTrust::Untrusted);
    assert!(matches!(alice1.machine.enable_backup(&forged, None), Err(BackupError::Untrusted)));
    assert_eq!(alice1.machine.backup_version(), None);
    assert!(alice1.machine.backup().unwrap().is_none(), "nothing goes to an untrusted backup");

    // A version made by Alice's other device: trusted once she verified that device.
    let new = alice2.machine.create_backup_version().unwrap();
    send(&mut hs, &mut alice2.machine, &new.request).unwrap();
    let info = latest_version(&mut hs, &alice1);
    assert_eq!(info.version, "2");
    assert_eq!(alice1.machine.verify_backup(&info).unwrap(), BackupTrust::Untrusted);
    assert!(matches!(alice1.machine.enable_backup(&info, None), Err(BackupError::Untrusted)));
    alice1.machine.set_local_trust(alice2.machine.user_id(), alice2.machine.device_id(), LocalTrust::Verified).unwrap();
    let trust = alice1.machine.enable_backup(&info, None).unwrap();
    assert_eq!(
        trust,
        BackupTrust::Trusted(BackupTrustSource::VerifiedOwnDevice(alice2.machine.device_id().to_owned()))
    );
    assert_eq!(upload_all(&mut hs, &mut alice1), 1);
    // What alice1 uploaded is readable with the key alice2 made.
    let mut alice3 = TestDevice::new(&mut hs, ALICE, "ALICE3", 3, 1_000_000).unwrap();
    let body = download(&mut hs, &alice3, "2");
    assert_eq!(alice3.machine.restore_backup(&info, &new.decryption_key, &body, |_, _| {}).unwrap().imported, 1);
    // The untrusted version could still be read with its key (a held key makes it trusted),
    // but a wrong key for the trusted one is refused.
    assert!(matches!(alice1.machine.enable_backup(&info, Some(&server_key)), Err(BackupError::WrongKey)));
}

/// A key export file of `keys` (room, session, sender key), written by the test itself.
fn export_file(keys: &[(&str, &InboundGroupSession, &InboundGroupSessionRecord)], passphrase: &str) -> String {
    let list: Vec<Value> = keys
        .iter()
        .map(|(room, session, like)| {
            json!({
                "algorithm": "m.megolm.v1.aes-sha2", "room_id": room, "session_id": session.session_id().to_base64(),
                "sender_key": like.sender_key.to_base64(),
                "session_key": session.export_at_first_known_index().to_base64().as_str(),
                "sender_claimed_keys": {"ed25519": like.claimed_signing_key.unwrap().to_base64()},
                "forwarding_curve25519_key_chain": [],
            })
        })
        .collect();
    ferrolm::key_export::encrypt(Value::Array(list).to_string().as_bytes(), passphrase, 100).unwrap()
}

#[test]
fn key_export_files_round_trip_with_progress_and_the_merge_rule() {
    let mut hs = Homeserver::new();
    let (mut alice1, events) = alice_with_keys(&mut hs, "ALICE1", 3);
    let file = alice1.machine.export_room_keys("correct horse", 1_000, |_| true).unwrap();
    assert!(file.starts_with("-----BEGIN MEGOLM SESSION DATA-----"));
    let one_room = events[0].0.clone();
    let partial = alice1.machine.export_room_keys("pw", 1_000, |r| r.room_id.as_str() == one_room.as_str()).unwrap();

    let mut alice2 = TestDevice::new(&mut hs, ALICE, "ALICE2", 2, 1_000_000).unwrap();
    let wrong = alice2.machine.import_room_keys(&file, "wrong", |_, _| {});
    assert!(matches!(wrong, Err(KeyFileError::File(ferrolm::key_export::KeyExportError::Mac))), "{wrong:?}");
    assert!(stored_keys(&alice2).is_empty());

    let report = alice2.machine.import_room_keys(&partial, "pw", |_, _| {}).unwrap();
    assert_eq!((report.total, report.imported), (1, 1));
    let mut seen = Vec::new();
    let report = alice2.machine.import_room_keys(&file, "correct horse", |d, t| seen.push((d, t))).unwrap();
    assert_eq!(report, RoomKeyImportReport { total: 3, imported: 2, not_better: 1, failed: 0 });
    assert_eq!(seen, [(3, 3)]);
    for (room, event) in &events {
        assert!(decrypts(&mut alice2, room, event));
    }
    for record in stored_keys(&alice2) {
        assert_eq!((record.source, record.backed_up), (RoomKeySource::FileImport, false));
    }

    // The merge rule against what is stored: a later start is not stored, an earlier one is;
    // an unconnected key of the same session id fails. Nothing better is ever lost.
    let stored = stored_keys(&alice2).into_iter().find(|r| r.room_id.as_str() == one_room.as_str()).unwrap();
    let mut later = stored.session.clone();
    assert!(later.advance_to(1));
    let worse = export_file(&[(one_room.as_str(), &later, &stored)], "pw");
    let report = alice2.machine.import_room_keys(&worse, "pw", |_, _| {}).unwrap();
    assert_eq!((report.imported, report.not_better), (0, 1));
    let now = alice2.machine.store().inbound_group_session(&stored.room_id, &stored.session_id()).unwrap().unwrap();
    assert_eq!(now.first_known_index(), 0);

    let mut alice3 = TestDevice::new(&mut hs, ALICE, "ALICE3", 3, 1_000_000).unwrap();
    alice3.machine.import_room_keys(&worse, "pw", |_, _| {}).unwrap();
    assert!(!decrypts(&mut alice3, &events[0].0, &events[0].1), "index 0 is before the stored key");
    let better = export_file(&[(one_room.as_str(), &stored.session, &stored)], "pw");
    let report = alice3.machine.import_room_keys(&better, "pw", |_, _| {}).unwrap();
    assert_eq!(report.imported, 1);
    assert!(decrypts(&mut alice3, &events[0].0, &events[0].1));

    let forged_session = InboundGroupSession::import(
        &ferrolm::megolm::ExportedSessionKey::from_bytes(&{
            let mut bytes = stored.session.export_at_first_known_index().to_bytes().to_vec();
            bytes[10] ^= 1; // another ratchet, the same session id
            bytes
        })
        .unwrap(),
        SessionConfig::version_1(),
    );
    let forged = export_file(&[(one_room.as_str(), &forged_session, &stored)], "pw");
    let report = alice3.machine.import_room_keys(&forged, "pw", |_, _| {}).unwrap();
    assert_eq!((report.imported, report.not_better, report.failed), (0, 0, 1));
    assert!(decrypts(&mut alice3, &events[0].0, &events[0].1));
}

#[test]
fn restored_keys_never_replace_better_stored_ones() {
    let mut hs = Homeserver::new();
    let (mut alice1, events) = alice_with_keys(&mut hs, "ALICE1", 2);
    let key = create_backup(&mut hs, &mut alice1);
    upload_all(&mut hs, &mut alice1);
    // alice2 already has both keys (from a file), one of them at a later index.
    let stored = stored_keys(&alice1);
    let mut later = stored[0].session.clone();
    later.advance_to(1);
    let file = export_file(
        &[
            (stored[0].room_id.as_str(), &later, &stored[0]),
            (stored[1].room_id.as_str(), &stored[1].session, &stored[1]),
        ],
        "pw",
    );
    let mut alice2 = TestDevice::new(&mut hs, ALICE, "ALICE2", 2, 1_000_000).unwrap();
    alice2.machine.import_room_keys(&file, "pw", |_, _| {}).unwrap();
    let info = latest_version(&mut hs, &alice2);
    let body = download(&mut hs, &alice2, "1");
    let report = alice2.machine.restore_backup(&info, &key, &body, |_, _| {}).unwrap();
    assert_eq!((report.imported, report.not_better), (1, 1));
    let improved =
        alice2.machine.store().inbound_group_session(&stored[0].room_id, &stored[0].session_id()).unwrap().unwrap();
    assert_eq!((improved.first_known_index(), improved.source, improved.backed_up), (0, RoomKeySource::Backup, true));
    let kept =
        alice2.machine.store().inbound_group_session(&stored[1].room_id, &stored[1].session_id()).unwrap().unwrap();
    assert_eq!(kept.source, RoomKeySource::FileImport);
    for (room, event) in &events {
        assert!(decrypts(&mut alice2, room, event));
    }
    // The key kept from the file is not in this backup's count: it is uploaded (the backup
    // holds an equal copy, which the server keeps).
    assert_eq!(upload_all(&mut hs, &mut alice2), 1);
    assert!(alice2.machine.backup().unwrap().is_none());
}

#[test]
fn a_large_restore_commits_in_chunks_and_reports_progress_after_each() {
    use ferrolm::megolm::GroupSession;
    const KEYS: usize = 10_001;
    let key = BackupDecryptionKey::from_bytes(&[0x42; 32]);
    let encryption = ferrolm::pk::PkEncryption::from_key(key.public_key()).unwrap();
    let sender = ferrolm::olm::Account::new();
    let mut rooms = serde_json::Map::new();
    let mut ids = Vec::new();
    for i in 0..KEYS {
        let inbound = InboundGroupSession::new(
            &GroupSession::new(SessionConfig::version_1()).session_key(),
            SessionConfig::version_1(),
        );
        let plaintext = json!({
            "algorithm": "m.megolm.v1.aes-sha2", "sender_key": sender.curve25519_key().to_base64(),
            "session_key": inbound.export_at_first_known_index().to_base64().as_str(),
            "sender_claimed_keys": {"ed25519": sender.ed25519_key().to_base64()},
        });
        let (ciphertext, mac, ephemeral) = encryption.encrypt(plaintext.to_string().as_bytes()).to_base64();
        let room = format!("!room{}:test.server", i % 97);
        let entry = json!({"first_message_index": 0, "forwarded_count": 0, "is_verified": false,
                           "session_data": {"ephemeral": ephemeral, "ciphertext": ciphertext, "mac": mac}});
        let sessions = rooms.entry(room.clone()).or_insert_with(|| json!({"sessions": {}}));
        sessions["sessions"][inbound.session_id().to_base64()] = entry;
        ids.push((room, inbound.session_id().to_base64()));
    }
    let body = json!({ "rooms": rooms }).to_string();
    let mut auth_data = serde_json::Map::new();
    auth_data.insert("public_key".into(), key.public_key().to_base64().into());
    let info = BackupInfo::from_parts("3".into(), "m.megolm_backup.v1.curve25519-aes-sha2", auth_data).unwrap();

    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, ALICE, "ALICE1", 1, 1_000_000).unwrap();
    let mut seen = Vec::new();
    let report = alice.machine.restore_backup(&info, &key, body.as_bytes(), |d, t| seen.push((d, t))).unwrap();
    assert_eq!(report, RoomKeyImportReport { total: KEYS, imported: KEYS, not_better: 0, failed: 0 });
    assert_eq!(seen, [(10_000, KEYS), (KEYS, KEYS)]);
    let counts = alice.machine.room_key_counts().unwrap();
    assert_eq!((counts.total, counts.backed_up), (KEYS as u64, KEYS as u64));
    for (room, session) in ids.iter().step_by(997) {
        let record = alice.machine.store().inbound_group_session(&room.as_str().into(), session).unwrap().unwrap();
        assert_eq!((record.source, record.sender_key), (RoomKeySource::Backup, sender.curve25519_key()));
    }
    assert_eq!(alice.machine.backup_version(), Some("3"));
}
