//! Dehydrated devices (MSC3814) through the test homeserver's MSC3814 endpoints: Bob shares a
//! room key with Alice's dehydrated device; her new device rehydrates it, reads its events and
//! Bob's message, and uploads a fresh dehydrated device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{meet, open_sessions, user};
use ferrolm_machine::dehydrated::DEHYDRATED_DEVICE_PATH;
use ferrolm_machine::ruma::OwnedUserId;
use ferrolm_machine::ruma::events::AnyToDeviceEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::signing::verify_json;
use ferrolm_machine::{DehydratedDeviceFailure, EncryptionSettings, RoomKeyOutcome, TrustRequirement};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, sync_with_timelines};
use serde_json::{Value, json};

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
    let http = upload.to_http_request("https://test.server", "token").unwrap();
    let response = hs.handle(&alice, alice1.machine.device_id(), http);
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));

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
    // A new device of Alice rehydrates it (GET …/dehydrated_device) and reads its events.
    let mut alice2 = TestDevice::new(&mut hs, "@alice:test.server", "ALICE2", 3, 1_000_000).unwrap();
    let answer = call(&mut hs, &alice2, http::Method::GET, "", None);
    assert!(matches!(alice2.machine.rehydrate_device(&answer, &[0; 32]), Err(DehydratedDeviceFailure::Pickle(_))));
    let mut rehydrated = alice2.machine.rehydrate_device(&answer, &KEY).unwrap();
    assert_eq!(rehydrated.device_id, upload.device_id);
    assert!(!format!("{rehydrated:?}").contains("account"), "Debug shows the id only");
    let events_path = format!("/{}/events", upload.device_id);
    let page: Value =
        serde_json::from_slice(&call(&mut hs, &alice2, http::Method::POST, &events_path, Some(json!({})))).unwrap();
    let events: Vec<Raw<AnyToDeviceEvent>> = serde_json::from_value(page["events"].clone()).unwrap();
    assert_eq!(events.len(), 1, "the room key");
    let next = json!({"next_batch": page["next_batch"]});
    let empty: Value =
        serde_json::from_slice(&call(&mut hs, &alice2, http::Method::POST, &events_path, Some(next))).unwrap();
    assert_eq!(empty["events"], json!([]), "a page is delivered once");
    let received = alice2.machine.receive_rehydrated_events(&mut rehydrated, &events).unwrap();
    assert!(received.refused.is_empty(), "{received:?}");
    let [RoomKeyOutcome::Accepted(info)] = received.room_keys.as_slice() else { panic!("{received:?}") };
    assert_eq!(info.session_id, share.session_id);
    assert_eq!(info.sender_key, bob.machine.identity_keys().curve25519);

    let (_, timelines) = sync_with_timelines(&mut hs, &mut alice2.machine).unwrap();
    let message = timelines[&room].last().unwrap();
    let decrypted = alice2.machine.decrypt_room_event(message, &room, TrustRequirement::Untrusted).unwrap().unwrap();
    assert_eq!(decrypted.content["body"], "while you were away");

    // Replaced by a fresh one: new keys, new id; the server serves the new one.
    let fresh = alice2.machine.create_dehydrated_device(&KEY, "Backup device").unwrap();
    assert_ne!(fresh.device_id, upload.device_id);
    let response =
        hs.handle(&alice, alice2.machine.device_id(), fresh.to_http_request("https://test.server", "t").unwrap());
    assert_eq!(response.status(), 200);
    let served: Value = serde_json::from_slice(&call(&mut hs, &alice2, http::Method::GET, "", None)).unwrap();
    assert_eq!(served["device_id"], json!(fresh.device_id));
    let device = alice2.machine.rehydrate_device(&serde_json::to_vec(&served).unwrap(), &KEY).unwrap();
    assert_eq!(device.device_id, fresh.device_id);
}

/// An MSC3814 request as the client sends it; the body of the 200 answer.
fn call(hs: &mut Homeserver, device: &TestDevice, method: http::Method, path: &str, body: Option<Value>) -> Vec<u8> {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("https://test.server{DEHYDRATED_DEVICE_PATH}{path}"))
        .body(body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default())
        .unwrap();
    let response = hs.handle(device.machine.user_id(), device.machine.device_id(), request);
    assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    response.into_body()
}
