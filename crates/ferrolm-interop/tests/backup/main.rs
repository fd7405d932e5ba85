//! Server-side key backups and key export files between ferrolm-machine and matrix-sdk-crypto
//! 0.18, machine to machine: what one uploads (the body of its `PUT /room_keys/keys`) the other
//! restores from the same JSON a `GET /room_keys/keys` returns, with the recovery key as the
//! user would type it; a key export file written by one machine is imported by the other. Each
//! restored key is checked to decrypt a message of its sender.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ferrolm::megolm::{GroupSession, MegolmMessage, SessionConfig};
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId};
use ferrolm_machine::{BackupDecryptionKey, BackupInfo, EncryptionSettings, Env, OlmMachine};
use ferrolm_store::{KdfParams, MemoryBackend, MemoryStore, StoreSecret};
use matrix_sdk_crypto::olm::{ExportedRoomKey, InboundGroupSession as SdkSession, SenderData};
use matrix_sdk_crypto::store::types::BackupDecryptionKey as SdkKey;
use matrix_sdk_crypto::types::EventEncryptionAlgorithm;
use matrix_sdk_crypto::vodozemac;
use serde_json::{Value, json};

/// Runs a matrix-sdk-crypto future on this thread (its in-memory store never needs waking).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000_000u32 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
    panic!("a matrix-sdk-crypto future never completed");
}

fn ferrolm_machine(device: &str) -> OlmMachine<MemoryBackend> {
    let store =
        MemoryStore::create(MemoryBackend::new(), &StoreSecret::key([3; 32]), KdfParams::new(64, 1, 1).unwrap())
            .unwrap();
    OlmMachine::open(
        OwnedUserId::try_from("@alice:example.org").unwrap(),
        OwnedDeviceId::from(device),
        store,
        Env::system(),
    )
    .unwrap()
}

fn sdk_machine(device: &str) -> matrix_sdk_crypto::OlmMachine {
    let user = ruma::OwnedUserId::try_from("@alice:example.org").unwrap();
    block_on(matrix_sdk_crypto::OlmMachine::new(&user, &ruma::OwnedDeviceId::from(device)))
}

fn room(i: usize) -> OwnedRoomId {
    OwnedRoomId::try_from(format!("!room{i}:example.org")).unwrap()
}

#[test]
fn a_ferrolm_backup_restores_in_matrix_sdk_crypto() {
    let mut alice = ferrolm_machine("FERROLM");
    let me = [alice.user_id().to_owned()];
    for i in 0..3 {
        alice.share_room_key(&room(i), &me, EncryptionSettings::default()).unwrap();
    }
    let new = alice.create_backup_version().unwrap();
    alice.mark_request_as_sent_json(&new.request.request_id, br#"{"version": "1"}"#).unwrap();
    let upload = alice.backup().unwrap().unwrap();
    let body: Value = serde_json::from_str(&upload.body_json().unwrap()).unwrap();
    alice.mark_request_as_sent_json(&upload.request_id, br#"{"etag": "1", "count": 3}"#).unwrap();
    assert!(alice.backup().unwrap().is_none());

    // The SDK reads the version's auth_data and the recovery key as the user types it.
    let key = SdkKey::from_base58(&new.decryption_key.to_recovery_key()).unwrap();
    let info: matrix_sdk_crypto::types::RoomKeyBackupInfo = serde_json::from_value(
        json!({"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": new.auth_data}),
    )
    .unwrap();
    assert!(key.backup_key_matches(&info));
    let rooms: BTreeMap<ruma::OwnedRoomId, ruma::api::client::backup::RoomKeyBackup> =
        serde_json::from_value(body["rooms"].clone()).unwrap();
    let mut exported = Vec::new();
    for (room_id, backup) in rooms {
        for (session_id, data) in backup.sessions {
            let data: ruma::api::client::backup::KeyBackupData = data.deserialize().unwrap();
            let room_key = key.decrypt_session_data(data.session_data).unwrap();
            exported.push(ExportedRoomKey::from_backed_up_room_key(room_id.clone(), session_id, room_key));
        }
    }
    let sdk = sdk_machine("SDK");
    let result = block_on(sdk.store().import_room_keys(exported, Some("1"), |_, _| {})).unwrap();
    assert_eq!((result.imported_count, result.total_count), (3, 3));

    // Each of ferrolm's room keys decrypts, in the SDK, a message of its outbound session.
    for record in alice.store().all_inbound_group_sessions().unwrap() {
        let session = block_on(sdk.store().get_inbound_group_session(
            &ruma::OwnedRoomId::try_from(record.room_id.as_str()).unwrap(),
            &record.session_id(),
        ))
        .unwrap()
        .expect("the SDK has the key");
        let ours = record.session.export_at_first_known_index().to_bytes();
        let theirs = block_on(session.export_at_index(0)).session_key.to_bytes();
        assert_eq!(ours.as_slice(), theirs.as_slice());
    }
}

#[test]
fn a_matrix_sdk_crypto_backup_restores_in_ferrolm() {
    let sdk = sdk_machine("SDK");
    let sender = vodozemac::olm::Account::new();
    let mut outbound = Vec::new();
    let mut sessions = Vec::new();
    for i in 0..3 {
        let session = GroupSession::new(SessionConfig::version_1());
        let key = vodozemac::megolm::SessionKey::from_bytes(&session.session_key().to_bytes()).unwrap();
        let room_id = ruma::OwnedRoomId::try_from(room(i).as_str()).unwrap();
        let inbound = SdkSession::new(
            sender.curve25519_key(),
            sender.ed25519_key(),
            &room_id,
            &key,
            SenderData::unknown(),
            None,
            EventEncryptionAlgorithm::MegolmV1AesSha2,
            None,
            false,
        )
        .unwrap();
        sessions.push(block_on(inbound.export()));
        outbound.push((room(i), session));
    }
    block_on(sdk.store().import_exported_room_keys(sessions, |_, _| {})).unwrap();
    // The SDK's own backup: a new key, a version, its upload request.
    let key = SdkKey::new();
    let public = key.megolm_v1_public_key();
    public.set_version("7".to_owned());
    block_on(sdk.backup_machine().enable_backup_v1(public)).unwrap();
    let (_, request) = block_on(sdk.backup_machine().backup()).unwrap().expect("keys to back up");
    let body = json!({ "rooms": serde_json::to_value(&request.rooms).unwrap() });
    let mut info = serde_json::to_value(key.to_backup_info()).unwrap();
    info["version"] = json!("7");

    let mut alice = ferrolm_machine("FERROLM");
    let info = BackupInfo::from_json(info.to_string().as_bytes()).unwrap();
    let recovery_key = BackupDecryptionKey::from_recovery_key(&key.to_base58()).unwrap();
    let mut seen = Vec::new();
    let report =
        alice.restore_backup(&info, &recovery_key, body.to_string().as_bytes(), |d, t| seen.push((d, t))).unwrap();
    assert_eq!((report.imported, report.failed), (3, 0));
    assert_eq!(seen.last(), Some(&(3, 3)));
    for (room_id, mut session) in outbound {
        let message = session.encrypt(b"{\"type\":\"m.room.message\"}");
        let record = alice.store().inbound_group_session(&room_id.as_str().into(), &session.session_id().to_base64());
        let mut record = record.unwrap().expect("restored");
        let message = MegolmMessage::from_bytes(message.as_bytes()).unwrap();
        assert_eq!(record.session.decrypt(&message).unwrap().plaintext.as_slice(), b"{\"type\":\"m.room.message\"}");
    }
}

#[test]
fn key_export_files_cross_between_the_machines() {
    // ferrolm → the SDK.
    let mut alice = ferrolm_machine("FERROLM");
    let me = [alice.user_id().to_owned()];
    for i in 0..2 {
        alice.share_room_key(&room(i), &me, EncryptionSettings::default()).unwrap();
    }
    let file = alice.export_room_keys("passphrase", 1_000, |_| true).unwrap();
    let keys = matrix_sdk_crypto::decrypt_room_key_export(Cursor::new(file.as_bytes()), "passphrase").unwrap();
    let sdk = sdk_machine("SDK");
    let result = block_on(sdk.store().import_exported_room_keys(keys, |_, _| {})).unwrap();
    assert_eq!(result.imported_count, 2);

    // The SDK → ferrolm.
    let exported = block_on(sdk.store().export_room_keys(|_| true)).unwrap();
    let file = matrix_sdk_crypto::encrypt_room_key_export(&exported, "other", 1_000).unwrap();
    let mut bob = ferrolm_machine("FERROLM2");
    let report = bob.import_room_keys(&file, "other", |_, _| {}).unwrap();
    assert_eq!((report.imported, report.failed), (2, 0));
    let room0 = RoomId::parse(room(0).as_str()).unwrap();
    let theirs = bob.store().inbound_group_sessions_in_room(&room0.as_str().into()).unwrap();
    let ours = alice.store().inbound_group_sessions_in_room(&room0.as_str().into()).unwrap();
    assert_eq!(theirs[0].session_id(), ours[0].session_id());
    assert_eq!(theirs[0].sender_key, ours[0].sender_key);
}
