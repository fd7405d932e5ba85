//! Dehydrated devices (MSC3814) created by one machine and rehydrated by the other: Bob (a
//! ferrolm device) shares a room key with Alice's dehydrated device while none of her devices
//! is there; her new device, of the other implementation, rehydrates it, reads its to-device
//! events, and decrypts Bob's message.
//!
//! Both write `org.matrix.msc3814.v2` (vodozemac's dehydrated-device pickle). msc also reads
//! `org.matrix.msc3814.v1.olm` (a libolm pickle under a key derived from the pickle key and the
//! device id), which msc no longer writes and ferrolm does not read: that direction is checked
//! to fail with a typed error, not a panic.

use ferrolm_machine::dehydrated::DEHYDRATED_DEVICE_PATH;
use ferrolm_machine::ruma::api::client::dehydrated_device::DehydratedDeviceData;
use ferrolm_machine::ruma::events::AnyToDeviceEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId, UserId};
use ferrolm_machine::{DehydratedDeviceFailure, EncryptionSettings, RoomKeyOutcome, TrustRequirement};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, bootstrap_cross_signing, run_requests, sync_with_timelines};
use matrix_sdk_crypto::store::types::DehydratedDeviceKey;
use serde_json::{Value, json};

use crate::common::{fe_say, fe_share};
use crate::msc::{MscDevice, block_on, decryption_settings};
use crate::{ALICE, BASE, alice, fe_device, msc_bootstrap_cross_signing};

const KEY: [u8; 32] = [0x3c; 32];
const BOB: &str = "@bob:test.server";

/// An MSC3814 request by `user`'s `device`; the body of the 200 answer.
fn call(
    hs: &mut Homeserver,
    user: &UserId,
    device: &str,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> Vec<u8> {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{BASE}{DEHYDRATED_DEVICE_PATH}{path}"))
        .body(body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default())
        .unwrap();
    let response = hs.handle(user, &OwnedDeviceId::from(device), request);
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    response.into_body()
}

/// The to-device events the dehydrated device `id` received, read by `device` (one page; the
/// next is empty).
fn events(hs: &mut Homeserver, device: &str, id: &OwnedDeviceId) -> Vec<Raw<AnyToDeviceEvent>> {
    let path = format!("/{id}/events");
    let page: Value =
        serde_json::from_slice(&call(hs, &alice(), device, http::Method::POST, &path, Some(json!({})))).unwrap();
    let next: Value = serde_json::from_slice(&call(
        hs,
        &alice(),
        device,
        http::Method::POST,
        &path,
        Some(json!({"next_batch": page["next_batch"]})),
    ))
    .unwrap();
    assert_eq!(next["events"], json!([]));
    serde_json::from_value(page["events"].clone()).unwrap()
}

/// Bob, a ferrolm device, in a room with Alice, learns her devices (the dehydrated one among
/// them), shares a room key with all of them and writes `body`; returns the room and the
/// session id.
fn bob_writes(hs: &mut Homeserver, dehydrated: &OwnedDeviceId, body: &str) -> (TestDevice, OwnedRoomId, String) {
    let mut bob = TestDevice::new(hs, BOB, "BOB", 7, 1_000_000).unwrap();
    let room = hs.create_room(bob.machine.user_id()).unwrap();
    hs.join(&room, &alice());
    let members: Vec<OwnedUserId> = hs.members(&room);
    bob.machine.update_tracked_users(&members).unwrap();
    bob.settle(hs, 2).unwrap();
    assert!(bob.machine.device(&alice(), dehydrated).unwrap().is_some(), "Bob sees the dehydrated device");
    let share = fe_share(hs, &mut bob.machine, &room, &members, EncryptionSettings::default());
    fe_say(hs, &mut bob.machine, &room, body);
    let session_id = share.session_id.clone();
    (bob, room, session_id)
}

#[test]
fn a_ferrolm_dehydrated_device_is_rehydrated_by_matrix_sdk_crypto() {
    let mut hs = Homeserver::new();
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    let upload = fe.machine.create_dehydrated_device(&KEY, "Backup device").unwrap();
    let response = hs.handle(&alice(), fe.machine.device_id(), upload.to_http_request(BASE, "token").unwrap());
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    let (_bob, room, session_id) = bob_writes(&mut hs, &upload.device_id, "while you were away");
    run_requests(&mut hs, &mut fe.machine).unwrap();

    // A new msc device of Alice rehydrates it from the server's answer.
    // (No sync before the events are read: its first sync then carries Bob's message.)
    let mut msc = MscDevice::new(&mut hs, ALICE, "MSCDEVICE");
    let answer: Value =
        serde_json::from_slice(&call(&mut hs, &alice(), "MSCDEVICE", http::Method::GET, "", None)).unwrap();
    let id = OwnedDeviceId::from(answer["device_id"].as_str().unwrap());
    assert_eq!(id, upload.device_id);
    let data = || -> Raw<DehydratedDeviceData> { Raw::new(&answer["device_data"]).unwrap().cast_unchecked() };
    let dehydrated = msc.machine.dehydrated_devices();
    assert!(block_on(dehydrated.rehydrate(&DehydratedDeviceKey::from_bytes(&[0; 32]), &id, data())).is_err());
    let rehydrated = block_on(dehydrated.rehydrate(&DehydratedDeviceKey::from_bytes(&KEY), &id, data())).unwrap();

    let events = events(&mut hs, "MSCDEVICE", &id);
    assert_eq!(events.len(), 1, "Bob's room key");
    let keys = block_on(rehydrated.receive_events(events, &decryption_settings())).unwrap();
    let [key] = keys.as_slice() else { panic!("{keys:?}") };
    assert_eq!(key.session_id, session_id);
    assert_eq!(key.room_id, room);

    // msc holds the key now: Bob's message decrypts.
    let sync = msc.sync(&mut hs);
    let message = sync.timelines[&room].last().unwrap();
    let decrypted = msc.decrypt(message, &room).unwrap();
    assert_eq!(crate::common::msc_body(&decrypted), "while you were away");
}

#[test]
fn a_matrix_sdk_crypto_dehydrated_device_is_rehydrated_by_ferrolm() {
    let mut hs = Homeserver::new();
    let mut msc = MscDevice::new(&mut hs, ALICE, "MSCDEVICE");
    msc.settle(&mut hs, 1);
    // msc signs its dehydrated device with its self-signing key: it needs cross-signing.
    msc_bootstrap_cross_signing(&mut hs, &msc);
    let device = block_on(msc.machine.dehydrated_devices().create()).unwrap();
    let request =
        block_on(device.keys_for_upload("Backup device".to_owned(), &DehydratedDeviceKey::from_bytes(&KEY))).unwrap();
    let dehydrated_id = request.device_id.clone();
    let body = json!({
        "device_id": request.device_id,
        "device_data": request.device_data,
        "device_keys": request.device_keys,
        "one_time_keys": request.one_time_keys,
        "fallback_keys": request.fallback_keys,
        "initial_device_display_name": request.initial_device_display_name,
    });
    assert_eq!(body["device_data"]["algorithm"], "org.matrix.msc3814.v2");
    assert_eq!(body["device_keys"]["dehydrated"], true);
    call(&mut hs, &alice(), "MSCDEVICE", http::Method::PUT, "", Some(body));
    let (_bob, room, session_id) = bob_writes(&mut hs, &dehydrated_id, "while you were away");

    // A new ferrolm device of Alice rehydrates it.
    let mut fe = TestDevice::new(&mut hs, ALICE, "FERROLM", 1, 1_000_000).unwrap();
    let answer = call(&mut hs, &alice(), "FERROLM", http::Method::GET, "", None);
    assert!(matches!(fe.machine.rehydrate_device(&answer, &[0; 32]), Err(DehydratedDeviceFailure::Pickle(_))));
    let mut rehydrated = fe.machine.rehydrate_device(&answer, &KEY).unwrap();
    assert_eq!(rehydrated.device_id, dehydrated_id);
    let events = events(&mut hs, "FERROLM", &dehydrated_id);
    assert_eq!(events.len(), 1, "Bob's room key");
    let received = fe.machine.receive_rehydrated_events(&mut rehydrated, &events).unwrap();
    assert!(received.refused.is_empty(), "{received:?}");
    let [RoomKeyOutcome::Accepted(info)] = received.room_keys.as_slice() else { panic!("{received:?}") };
    assert_eq!(info.session_id, session_id);

    let (_, timelines) = sync_with_timelines(&mut hs, &mut fe.machine).unwrap();
    let message = timelines[&room].last().unwrap();
    let decrypted = fe.machine.decrypt_room_event(message, &room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(decrypted.content["body"], "while you were away");
}

#[test]
fn the_libolm_pickle_dehydrated_device_msc_still_reads_is_refused_by_ferrolm() {
    // `org.matrix.msc3814.v1.olm`: a libolm account pickle; msc reads it (never writes it),
    // ferrolm does not implement it.
    let mut hs = Homeserver::new();
    let fe = fe_device(&mut hs, "FERROLM", 1);
    let answer = json!({
        "device_id": "OLDDEHYDRATED",
        "device_data": {"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "AAAA"},
    });
    let result = fe.machine.rehydrate_device(&serde_json::to_vec(&answer).unwrap(), &KEY);
    assert_eq!(result.unwrap_err(), DehydratedDeviceFailure::UnsupportedAlgorithm("org.matrix.msc3814.v1.olm".into()));
}

/// Bob on matrix-sdk-crypto shares a room key with Alice's ferrolm-created dehydrated device
/// (msc withholds room keys from a dehydrated device its owner has not cross-signed); a new
/// ferrolm device rehydrates it and decrypts Bob's message.
#[test]
fn a_ferrolm_dehydrated_device_receives_room_keys_from_matrix_sdk_crypto() {
    let mut hs = Homeserver::new();
    let mut fe = fe_device(&mut hs, "FERROLM", 1);
    bootstrap_cross_signing(&mut hs, &mut fe.machine, false).unwrap();
    let upload = fe.machine.create_dehydrated_device(&KEY, "Backup device").unwrap();
    let response = hs.handle(&alice(), fe.machine.device_id(), upload.to_http_request(BASE, "token").unwrap());
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));

    let mut bob = MscDevice::new(&mut hs, BOB, "BOB");
    let room = hs.create_room(&bob.user_id()).unwrap();
    hs.join(&room, &alice());
    let members = hs.members(&room);
    bob.track(&members);
    bob.settle(&mut hs, 2);
    let dehydrated = bob.device(&alice(), &upload.device_id).expect("Bob sees the dehydrated device");
    assert!(dehydrated.is_dehydrated());
    assert!(dehydrated.is_cross_signed_by_owner(), "msc sees the dehydrated device signed by Alice's self-signing key");
    let shares = bob.share(&mut hs, &room, &members, matrix_sdk_crypto::EncryptionSettings::default());
    let to_dehydrated = shares
        .iter()
        .filter(|r| r.event_type.to_string() == "m.room.encrypted")
        .flat_map(|r| r.messages.get(&alice()).into_iter().flat_map(|m| m.keys()))
        .any(|d| d.to_string() == upload.device_id.as_str());
    assert!(to_dehydrated, "msc sends the room key to the dehydrated device: {shares:?}");
    bob.say(&mut hs, &room, "while you were away");

    let mut fe2 = TestDevice::new(&mut hs, ALICE, "FERROLM2", 3, 1_000_000).unwrap();
    let answer = call(&mut hs, &alice(), "FERROLM2", http::Method::GET, "", None);
    let mut rehydrated = fe2.machine.rehydrate_device(&answer, &KEY).unwrap();
    let events = events(&mut hs, "FERROLM2", &upload.device_id);
    let received = fe2.machine.receive_rehydrated_events(&mut rehydrated, &events).unwrap();
    assert!(received.refused.is_empty(), "{received:?}");
    let [RoomKeyOutcome::Accepted(info)] = received.room_keys.as_slice() else { panic!("{received:?}") };
    assert_eq!(info.sender_key.to_base64(), bob.machine.identity_keys().curve25519.to_base64());

    let (_, timelines) = sync_with_timelines(&mut hs, &mut fe2.machine).unwrap();
    let message = timelines[&room].last().unwrap();
    let decrypted = fe2.machine.decrypt_room_event(message, &room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(decrypted.content["body"], "while you were away");
}
