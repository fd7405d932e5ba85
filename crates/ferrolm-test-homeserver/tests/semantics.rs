//! The homeserver behaves like a real one where the machine's tests rely on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::forge::RawDevice;
use ruma::api::client::keys::{claim_keys, get_keys, upload_keys};
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::ToDeviceEventType;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedOneTimeKeyId, OwnedTransactionId, OwnedUserId, device_id};
use serde_json::{Value, json};

fn user(id: &str) -> OwnedUserId {
    OwnedUserId::try_from(id).unwrap()
}

fn claim(hs: &mut Homeserver, user: &OwnedUserId, device: &str) -> Option<(String, Value)> {
    let mut wanted = BTreeMap::new();
    wanted.insert(user.clone(), BTreeMap::from([(OwnedDeviceId::from(device), OneTimeKeyAlgorithm::SignedCurve25519)]));
    let response = hs.claim_keys(claim_keys::v3::Request::new(wanted)).unwrap();
    let keys = response.one_time_keys.get(user)?.get(device_id!(device).as_str())?;
    keys.iter().next().map(|(id, raw)| (id.to_string(), serde_json::from_str(raw.json().get()).unwrap()))
}

fn raw<T>(value: &Value) -> Raw<T> {
    Raw::from_json(serde_json::value::to_raw_value(value).unwrap())
}

#[test]
fn one_time_keys_are_removed_on_claim_then_the_fallback_key_is_served_again_and_again() {
    let mut hs = Homeserver::new();
    let bob = user("@bob:test.server");
    let mut device = RawDevice::new(&mut hs, &bob, "BOB", 1);
    device.upload(&mut hs, 2).unwrap();
    let mut request = upload_keys::v3::Request::new();
    let fallback = device.signed(json!({"key": "ZmFsbGJhY2s", "fallback": true}));
    request.fallback_keys.insert(OwnedOneTimeKeyId::try_from("signed_curve25519:AAAAZA").unwrap(), raw(&fallback));
    hs.upload_keys(&bob, device_id!("BOB"), request).unwrap();

    let first = claim(&mut hs, &bob, "BOB").unwrap();
    let second = claim(&mut hs, &bob, "BOB").unwrap();
    assert_ne!(first, second);
    assert_eq!(hs.one_time_key_count(&bob, device_id!("BOB")), 0);
    assert!(!hs.fallback_key(&bob, device_id!("BOB")).unwrap().2);
    for _ in 0..3 {
        assert_eq!(claim(&mut hs, &bob, "BOB").unwrap(), ("signed_curve25519:AAAAZA".to_owned(), fallback.clone()));
    }
    assert!(hs.fallback_key(&bob, device_id!("BOB")).unwrap().2, "reported used");
    let sync = hs.sync(&bob, device_id!("BOB"), None).unwrap();
    assert_eq!(sync.device_unused_fallback_key_types, Some(vec![]));
    assert_eq!(
        sync.device_one_time_keys_count.get(&OneTimeKeyAlgorithm::SignedCurve25519).map(|c| u64::from(*c)),
        Some(0)
    );
}

#[test]
fn a_one_time_key_id_uploaded_again_with_other_content_is_refused() {
    let mut hs = Homeserver::new();
    let bob = user("@bob:test.server");
    let _device = RawDevice::new(&mut hs, &bob, "BOB", 1);
    let id = OwnedOneTimeKeyId::try_from("signed_curve25519:AAAAAQ").unwrap();
    let mut request = upload_keys::v3::Request::new();
    request.one_time_keys.insert(id.clone(), raw(&json!({"key": "a", "signatures": {}})));
    hs.upload_keys(&bob, device_id!("BOB"), request.clone()).unwrap();
    // The same content again: accepted (a client retrying).
    hs.upload_keys(&bob, device_id!("BOB"), request).unwrap();
    let mut other = upload_keys::v3::Request::new();
    other.one_time_keys.insert(id, raw(&json!({"key": "b", "signatures": {}})));
    let error = hs.upload_keys(&bob, device_id!("BOB"), other).unwrap_err();
    assert_eq!((error.status, error.errcode.as_str()), (400, "M_INVALID_PARAM"));
    assert_eq!(hs.one_time_keys(&bob, device_id!("BOB")).values().next().unwrap()["key"], "a");
}

#[test]
fn changed_device_keys_are_accepted_and_served_and_announced() {
    let mut hs = Homeserver::new();
    let (alice, bob) = (user("@alice:test.server"), user("@bob:test.server"));
    let _a = RawDevice::new(&mut hs, &alice, "ALICE", 1);
    let mut b = RawDevice::new(&mut hs, &bob, "BOB", 2);
    let room = hs.create_room(&alice).unwrap();
    hs.join(&room, &bob);
    b.upload(&mut hs, 0).unwrap();
    let since = hs.sync(&alice, device_id!("ALICE"), None).unwrap().next_batch;
    // Someone uploads other identity keys for BOB.
    let mut impostor = RawDevice::new(&mut hs, &bob, "BOB", 3);
    impostor.upload(&mut hs, 0).unwrap();
    let sync = hs.sync(&alice, device_id!("ALICE"), Some(&since)).unwrap();
    assert_eq!(sync.device_lists.changed, vec![bob.clone()]);
    let mut query = get_keys::v3::Request::new();
    query.device_keys.insert(bob.clone(), vec![]);
    let served = hs.query_keys(query).unwrap();
    let keys: Value = serde_json::from_str(served.device_keys[&bob][device_id!("BOB")].json().get()).unwrap();
    assert_eq!(keys, impostor.device_keys());
}

#[test]
fn device_list_changes_and_membership_appear_in_sync() {
    let mut hs = Homeserver::new();
    let (alice, bob, carol) = (user("@alice:test.server"), user("@bob:test.server"), user("@carol:test.server"));
    let _a = RawDevice::new(&mut hs, &alice, "ALICE", 1);
    let mut b = RawDevice::new(&mut hs, &bob, "BOB", 2);
    let mut c = RawDevice::new(&mut hs, &carol, "CAROL", 3);
    let room = hs.create_room(&alice).unwrap();
    let s0 = hs.sync(&alice, device_id!("ALICE"), None).unwrap().next_batch;
    hs.join(&room, &bob);
    let s1 = hs.sync(&alice, device_id!("ALICE"), Some(&s0)).unwrap();
    assert_eq!(s1.device_lists.changed, vec![bob.clone()], "a new room member is announced");
    // Carol (no shared room) changes her devices: not announced; Bob's are.
    c.upload(&mut hs, 0).unwrap();
    b.upload(&mut hs, 0).unwrap();
    let s2 = hs.sync(&alice, device_id!("ALICE"), Some(&s1.next_batch)).unwrap();
    assert_eq!(s2.device_lists.changed, vec![bob.clone()]);
    hs.leave(&room, &bob);
    let s3 = hs.sync(&alice, device_id!("ALICE"), Some(&s2.next_batch)).unwrap();
    assert_eq!(s3.device_lists.left, vec![bob]);
    assert!(s3.device_lists.changed.is_empty());
}

#[test]
fn to_device_messages_are_queued_per_device_with_idempotent_transactions() {
    let mut hs = Homeserver::new();
    let (alice, bob) = (user("@alice:test.server"), user("@bob:test.server"));
    let _a = RawDevice::new(&mut hs, &alice, "ALICE", 1);
    let _b1 = RawDevice::new(&mut hs, &bob, "BOB1", 2);
    let _b2 = RawDevice::new(&mut hs, &bob, "BOB2", 3);
    let send = |hs: &mut Homeserver, txn: &str, target: DeviceIdOrAllDevices| {
        let mut messages = BTreeMap::new();
        messages.insert(bob.clone(), BTreeMap::from([(target, raw(&json!({"n": txn})))]));
        let request = send_event_to_device::v3::Request::new_raw(
            ToDeviceEventType::from("org.example"),
            OwnedTransactionId::from(txn),
            messages,
        );
        hs.send_to_device(&alice, device_id!("ALICE"), request).unwrap();
    };
    send(&mut hs, "t1", DeviceIdOrAllDevices::DeviceId(OwnedDeviceId::from("BOB1")));
    send(&mut hs, "t1", DeviceIdOrAllDevices::DeviceId(OwnedDeviceId::from("BOB1")));
    send(&mut hs, "t2", DeviceIdOrAllDevices::AllDevices);
    let one = hs.sync(&bob, device_id!("BOB1"), None).unwrap();
    let two = hs.sync(&bob, device_id!("BOB2"), None).unwrap();
    assert_eq!(one.to_device.events.len(), 2, "t1 once, t2");
    assert_eq!(two.to_device.events.len(), 1);
    let event: Value = serde_json::from_str(one.to_device.events[0].json().get()).unwrap();
    assert_eq!(event, json!({"type": "org.example", "sender": "@alice:test.server", "content": {"n": "t1"}}));
    // Delivered again until a later sync acknowledges them.
    assert_eq!(hs.sync(&bob, device_id!("BOB1"), None).unwrap().to_device.events.len(), 2);
    let next = hs.sync(&bob, device_id!("BOB1"), Some(&one.next_batch)).unwrap();
    assert!(next.to_device.events.is_empty());
}

#[test]
fn room_events_reach_joined_members_only() {
    let mut hs = Homeserver::new();
    let (alice, bob, carol) = (user("@alice:test.server"), user("@bob:test.server"), user("@carol:test.server"));
    for (u, d) in [(&alice, "A"), (&bob, "B"), (&carol, "C")] {
        hs.login(u, device_id!(d));
    }
    let room = hs.create_room(&alice).unwrap();
    hs.join(&room, &bob);
    let event_id = hs.send_room_event(&room, &alice, "m.room.message", json!({"body": "hi"})).unwrap();
    assert!(hs.send_room_event(&room, &carol, "m.room.message", json!({})).is_err());
    let sync = hs.sync(&bob, device_id!("B"), None).unwrap();
    let events = &sync.rooms.join[&room].timeline.events;
    let event: Value = serde_json::from_str(events[0].json().get()).unwrap();
    assert_eq!(event["event_id"], event_id.as_str());
    assert!(hs.sync(&carol, device_id!("C"), None).unwrap().rooms.join.is_empty());
    assert_eq!(hs.members(&room), vec![alice, bob]);
}

#[test]
fn unknown_endpoints_and_bad_bodies_are_errors() {
    let mut hs = Homeserver::new();
    let alice = user("@alice:test.server");
    hs.login(&alice, device_id!("A"));
    let request = |path: &str, body: &str| {
        http::Request::builder()
            .method("POST")
            .uri(format!("https://test.server/_matrix/client/v3/{path}"))
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    assert_eq!(hs.handle(&alice, device_id!("A"), request("nope", "{}")).status(), 404);
    assert_eq!(hs.handle(&alice, device_id!("A"), request("keys/upload", "{")).status(), 400);
    assert_eq!(hs.handle(&alice, device_id!("A"), request("keys/upload", "{}")).status(), 200);
}
