//! Dehydrated devices (MSC3814) through the test homeserver: Bob shares a room key with
//! Alice's dehydrated device while she has no other device; her new device rehydrates it and
//! reads Bob's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{meet, open_sessions, user};
use ferrolm_machine::ruma::OwnedUserId;
use ferrolm_machine::ruma::events::AnyToDeviceEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::signing::verify_json;
use ferrolm_machine::{DehydratedDeviceFailure, EncryptionSettings, RoomKeyOutcome, TrustRequirement};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, sync_with_timelines};
use serde_json::json;

const KEY: [u8; 32] = [0x3c; 32];

#[test]
fn a_room_key_sent_to_the_dehydrated_device_reaches_the_next_device() {
    let mut hs = Homeserver::new();
    let mut alice1 = TestDevice::new(&mut hs, "@alice:test.server", "ALICE1", 1, 1_000_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", 2, 1_000_000).unwrap();
    let room = meet(&mut hs, &mut [&mut alice1, &mut bob]);
    let alice: OwnedUserId = user(&alice1);

    // ALICE1 creates a dehydrated device; the server publishes it as one of Alice's devices.
    let upload = alice1.machine.create_dehydrated_device(&KEY, "Backup device").unwrap();
    let body = &upload.body;
    assert_eq!(body["device_data"]["algorithm"], "org.matrix.msc3814.v2");
    assert_eq!(body["device_keys"]["dehydrated"], true);
    assert_eq!(body["one_time_keys"].as_object().unwrap().len(), 50);
    assert_eq!(body["fallback_keys"].as_object().unwrap().len(), 1);
    let device_keys = body["device_keys"].as_object().unwrap();
    let ed25519 = device_keys["keys"][format!("ed25519:{}", upload.device_id)].as_str().unwrap();
    let ed25519 = ferrolm::types::Ed25519PublicKey::from_base64(ed25519).unwrap();
    verify_json(device_keys, alice.as_str(), &format!("ed25519:{}", upload.device_id), &ed25519).unwrap();
    hs.login(&alice, &upload.device_id);
    hs.serve_device_keys(&alice, &upload.device_id, body["device_keys"].clone());
    let (key_id, key) = body["one_time_keys"].as_object().unwrap().iter().next().unwrap();
    hs.serve_one_time_key(&alice, &upload.device_id, key_id, key.clone());

    // Bob learns the device, opens a session with it, shares his room key and writes.
    bob.settle(&mut hs, 2).unwrap();
    assert!(bob.machine.device(&alice, &upload.device_id).unwrap().is_some());
    open_sessions(&mut hs, &mut bob, std::slice::from_ref(&alice));
    let members = hs.members(&room);
    let share = bob.machine.share_room_key(&room, &members, EncryptionSettings::default()).unwrap();
    run_requests(&mut hs, &mut bob.machine).unwrap();
    let content =
        bob.machine.encrypt_room_event(&room, "m.room.message", &json!({"body": "while you were away"})).unwrap();
    hs.send_room_event(&room, bob.machine.user_id(), "m.room.encrypted", content).unwrap();
    let events: Vec<Raw<AnyToDeviceEvent>> = hs
        .to_device_queue(&alice, &upload.device_id)
        .unwrap()
        .iter()
        .map(|q| Raw::from_json(serde_json::value::to_raw_value(&q.event).unwrap()))
        .collect();
    assert_eq!(events.len(), 1, "the room key");

    // A new device of Alice rehydrates it (GET …/dehydrated_device) and reads its events.
    let mut alice2 = TestDevice::new(&mut hs, "@alice:test.server", "ALICE2", 3, 1_000_000).unwrap();
    let answer =
        serde_json::to_vec(&json!({"device_id": upload.device_id, "device_data": body["device_data"]})).unwrap();
    assert!(matches!(alice2.machine.rehydrate_device(&answer, &[0; 32]), Err(DehydratedDeviceFailure::Pickle(_))));
    let mut rehydrated = alice2.machine.rehydrate_device(&answer, &KEY).unwrap();
    assert_eq!(rehydrated.device_id, upload.device_id);
    assert!(!format!("{rehydrated:?}").contains("account"), "Debug shows the id only");
    let keys = alice2.machine.receive_rehydrated_events(&mut rehydrated, &events).unwrap();
    let [RoomKeyOutcome::Accepted(info)] = keys.as_slice() else { panic!("{keys:?}") };
    assert_eq!(info.session_id, share.session_id);
    assert_eq!(info.sender_key, bob.machine.identity_keys().curve25519);

    let (_, timelines) = sync_with_timelines(&mut hs, &mut alice2.machine).unwrap();
    let message = timelines[&room].last().unwrap();
    let decrypted = alice2.machine.decrypt_room_event(message, &room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(decrypted.content["body"], "while you were away");

    // Replaced by a fresh one: new keys, new id.
    let fresh = alice1.machine.create_dehydrated_device(&KEY, "Backup device").unwrap();
    assert_ne!(fresh.device_id, upload.device_id);
}
